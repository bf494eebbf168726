build/obj/lib/logger.o: lib/logger.c include/logger.h
include/logger.h:
