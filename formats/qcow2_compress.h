/* qcow2_compress.h: compressed clusters of qcow2 and qcow (v1): raw deflate with a 4 KiB window,
 * or zstd frames (qcow2 compression_type=zstd); and the magic both formats open with.
 * Defined in qcow2_compress.c. */
#ifndef FMT_QCOW2_COMPRESS_H
#define FMT_QCOW2_COMPRESS_H

#include <stddef.h>

#define QCOW_MAGIC                 0x514649FBu

#define QCOW2_COMPRESS_ZLIB        0
#define QCOW2_COMPRESS_ZSTD        1

/* decompress src into exactly dlen bytes of dst (raw deflate -12 or zstd); -EIO on bad data */
int qcow2_decompress(int type, void *dst, size_t dlen, const void *src, size_t slen);
/* compress; returns compressed length, or 0 if it would not fit in dlen */
size_t qcow2_compress(int type, void *dst, size_t dlen, const void *src, size_t slen);

#endif
