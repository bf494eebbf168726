/* qcow2_compress.c: cluster compression for qcow2 and qcow: raw deflate with a 4 KiB window
 * (window bits -12, as qemu) and zstd frames. Decompression must produce exactly one cluster and
 * tolerates trailing bytes (compressed lengths are only known to sector granularity). */
#include <errno.h>
#include <zlib.h>
#include <zstd.h>

#include <stdlib.h>
#include <string.h>

#include "inflate.h"
#include "formats.h"
#include "qcow2_compress.h"

int qcow2_decompress(int type, void *dst, size_t dlen, const void *src, size_t slen)
{
	if (type == QCOW2_COMPRESS_ZSTD) {
		ZSTD_DCtx *z = ZSTD_createDCtx();
		ZSTD_inBuffer in = { src, slen, 0 };
		ZSTD_outBuffer out = { dst, dlen, 0 };
		int ret = 0;

		if (!z)
			return -ENOMEM;
		while (out.pos < out.size) {
			size_t ipos = in.pos, opos = out.pos;
			size_t r = ZSTD_decompressStream(z, &out, &in);
			if (ZSTD_isError(r) || (in.pos == ipos && out.pos == opos)) {
				ret = -EIO;
				break;
			}
		}
		ZSTD_freeDCtx(z);
		return ret;
	}

	size_t out;
	/* the cluster must be full; trailing bytes after it are fine */
	int ret = fmt_inflate(FMT_INFLATE_RAW12, src, slen, dst, dlen, &out);
	if (ret == -ENOMEM)
		return ret;
	return ret >= 0 && out == dlen ? 0 : -EIO;
}

size_t qcow2_compress(int type, void *dst, size_t dlen, const void *src, size_t slen)
{
	if (type == QCOW2_COMPRESS_ZSTD) {
		size_t r = ZSTD_compress(dst, dlen, src, slen, ZSTD_CLEVEL_DEFAULT);
		if (ZSTD_isError(r) || r >= dlen)
			return 0;
		return r;
	}

	z_stream zs = { 0 };
	size_t out = 0;

	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	zs.next_in = (Bytef *)src;
	zs.avail_in = slen;
	zs.next_out = dst;
	zs.avail_out = dlen;
	if (deflate(&zs, Z_FINISH) == Z_STREAM_END)
		out = dlen - zs.avail_out;
	deflateEnd(&zs);
	return out < dlen ? out : 0;
}

int qcow2_compress_cluster(const char *spec, int type, uint32_t cluster_size, bool encrypted, const void *buf,
			   size_t len, uint64_t off, uint8_t **out, size_t *clen)
{
	const uint8_t *src = buf;
	uint8_t *padded = NULL;

	if ((off & (cluster_size - 1)) || len > cluster_size) {
		fmt_error("%s: compressed write must be one aligned cluster", spec);
		return -EINVAL;
	}
	if (encrypted) {
		fmt_error("%s: compression is not supported with encryption", spec);
		return -ENOTSUP;
	}
	if (len < cluster_size) {
		padded = calloc(1, cluster_size);
		if (!padded)
			return -ENOMEM;
		memcpy(padded, buf, len);
		src = padded;
	}
	*out = malloc(cluster_size);
	if (!*out) {
		free(padded);
		return -ENOMEM;
	}
	*clen = qcow2_compress(type, *out, cluster_size - 1, src, cluster_size);
	free(padded);
	return 0;
}
