build/obj/lib/ring.o: lib/ring.c include/ring.h include/internal_proto.h \
 include/sheepdog_proto.h
include/ring.h:
include/internal_proto.h:
include/sheepdog_proto.h:
