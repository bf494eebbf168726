/* nbd.h: the NBD export (nbd.c). */
#ifndef SHEEP_NBD_H
#define SHEEP_NBD_H

int nbd_init(const char *addr, int port);

#endif
