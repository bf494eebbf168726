build/obj/lib/work.o: lib/work.c include/event.h include/logger.h \
 include/work.h include/util.h
include/event.h:
include/logger.h:
include/work.h:
include/util.h:
