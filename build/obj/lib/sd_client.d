build/obj/lib/sd_client.o: lib/sd_client.c include/internal_proto.h \
 include/sheepdog_proto.h include/net.h include/internal_proto.h \
 include/sd_client.h include/util.h
include/internal_proto.h:
include/sheepdog_proto.h:
include/net.h:
include/internal_proto.h:
include/sd_client.h:
include/util.h:
