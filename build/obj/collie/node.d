build/obj/collie/node.o: collie/node.c collie/collie.h \
 include/sheepdog_proto.h include/internal_proto.h \
 include/sheepdog_proto.h include/net.h include/internal_proto.h \
 include/sd_client.h include/util.h
collie/collie.h:
include/sheepdog_proto.h:
include/internal_proto.h:
include/sheepdog_proto.h:
include/net.h:
include/internal_proto.h:
include/sd_client.h:
include/util.h:
