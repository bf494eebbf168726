build/obj/lib/util.o: lib/util.c include/util.h
include/util.h:
