build/obj/collie/common.o: collie/common.c collie/collie.h \
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
