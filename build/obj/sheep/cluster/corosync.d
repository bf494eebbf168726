build/obj/sheep/cluster/corosync.o: sheep/cluster/corosync.c \
 sheep/cluster/../sheep_priv.h include/sheepdog_proto.h \
 include/internal_proto.h include/sheepdog_proto.h include/logger.h \
 include/event.h include/work.h include/util.h include/net.h \
 include/internal_proto.h include/ring.h include/util.h \
 sheep/cluster/../cluster.h
sheep/cluster/../sheep_priv.h:
include/sheepdog_proto.h:
include/internal_proto.h:
include/sheepdog_proto.h:
include/logger.h:
include/event.h:
include/work.h:
include/util.h:
include/net.h:
include/internal_proto.h:
include/ring.h:
include/util.h:
sheep/cluster/../cluster.h:
