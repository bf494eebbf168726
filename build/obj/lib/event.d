build/obj/lib/event.o: lib/event.c include/event.h include/logger.h
include/event.h:
include/logger.h:
