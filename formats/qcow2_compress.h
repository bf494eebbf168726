/* qcow2_compress.h: compressed clusters of qcow2 and qcow (v1): raw deflate with a 4 KiB window,
 * or zstd frames (qcow2 compression_type=zstd); and the magic both formats open with.
 * Defined in qcow2_compress.c. */
#ifndef FMT_QCOW2_COMPRESS_H
#define FMT_QCOW2_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QCOW_MAGIC                 0x514649FBu

#define QCOW2_COMPRESS_ZLIB        0
#define QCOW2_COMPRESS_ZSTD        1

/* decompress src into exactly dlen bytes of dst (raw deflate -12 or zstd); -EIO on bad data */
int qcow2_decompress(int type, void *dst, size_t dlen, const void *src, size_t slen);
/* compress; returns compressed length, or 0 if it would not fit in dlen */
size_t qcow2_compress(int type, void *dst, size_t dlen, const void *src, size_t slen);

/* a compressed write's cluster: checked (one aligned cluster at off, no encryption), padded with
 * zeros to cluster_size and compressed into a malloc'd *out of *clen bytes (0: does not shrink) */
int qcow2_compress_cluster(const char *spec, int type, uint32_t cluster_size, bool encrypted, const void *buf,
			   size_t len, uint64_t off, uint8_t **out, size_t *clen);

#endif
