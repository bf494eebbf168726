build/obj/collie/collie.o: collie/collie.c collie/collie.h \
 include/sheepdog_proto.h include/internal_proto.h \
 include/sheepdog_proto.h
collie/collie.h:
include/sheepdog_proto.h:
include/internal_proto.h:
include/sheepdog_proto.h:
