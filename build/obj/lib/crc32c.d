build/obj/lib/crc32c.o: lib/crc32c.c include/crc32c.h
include/crc32c.h:
