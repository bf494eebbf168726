build/obj/lib/net.o: lib/net.c include/logger.h include/net.h \
 include/sheepdog_proto.h include/internal_proto.h include/util.h
include/logger.h:
include/net.h:
include/sheepdog_proto.h:
include/internal_proto.h:
include/util.h:
