/* inflate.h: one zlib stream inflated into a buffer in a single step, for the drivers of
 * compressed formats (cloop, dmg, vmdk, qcow2 and qcow). Defined in inflate.c. */
#ifndef FMT_INFLATE_H
#define FMT_INFLATE_H

#include <stddef.h>

#define FMT_INFLATE_ZLIB  15    /* window bits of a zlib stream with its header */
#define FMT_INFLATE_RAW12 (-12) /* raw deflate with a 4 KiB window, as qcow2 writes it */

/* src into dst: 0 when the stream ended, 1 when dst filled up before it did (trailing input
 * left), -EIO on bad or short data, -ENOMEM; *out is the number of bytes produced */
int fmt_inflate(int window_bits, const void *src, size_t slen, void *dst, size_t dlen, size_t *out);

#endif
