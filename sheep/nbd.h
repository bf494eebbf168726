/* nbd.h: the NBD export (nbd.c): started once at start-up when --nbd asks for it.
 * Everything else of it is internal to nbd.c. */
#ifndef SHEEP_NBD_H
#define SHEEP_NBD_H

int nbd_init(const char *addr, int port);

#endif
