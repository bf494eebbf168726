build/obj/collie/cluster.o: collie/cluster.c collie/collie.h \
 include/sheepdog_proto.h include/internal_proto.h \
 include/sheepdog_proto.h include/net.h include/internal_proto.h \
 include/util.h
collie/collie.h:
include/sheepdog_proto.h:
include/internal_proto.h:
include/sheepdog_proto.h:
include/net.h:
include/internal_proto.h:
include/util.h:
