/* cloop.c: compressed loop (cloop V2.0) images, read only.
 *
 * Layout (big-endian): a 128-byte shell-script preamble, u32 block_size, u32 n_blocks, then
 * n_blocks+1 u64 offsets; block i is the zlib stream in [off[i], off[i+1]) and inflates to
 * exactly block_size bytes. The offsets are checked at open (monotonic, inside the file,
 * bounded block length); the last inflated block is cached.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "inflate.h"
#include "formats.h"

#define CLOOP_PREAMBLE_SIZE 128
#define CLOOP_MAX_BLOCK     (64u << 20)
#define CLOOP_MAX_OFFSETS   (512u << 20)
#define CLOOP_MAGIC         "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"

struct cloop_state {
	uint32_t block_size;
	uint32_t n_blocks;
	uint64_t *offsets;
	uint8_t *cbuf;          /* compressed block */
	uint8_t *block;         /* inflated block */
	uint32_t cached;        /* index in block, or UINT32_MAX */
};

static int cloop_probe(const uint8_t *buf, size_t len, const char *spec)
{
	size_t n = sizeof(CLOOP_MAGIC) - 1;
	return len >= n && !memcmp(buf, CLOOP_MAGIC, n) ? 2 : 0;
}

static void cloop_close(struct fmt_image *img)
{
	struct cloop_state *s = img->priv;
	if (!s)
		return;
	free(s->offsets);
	free(s->cbuf);
	free(s->block);
	free(s);
	img->priv = NULL;
}

static int cloop_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct cloop_state *s;
	uint32_t hdr[2];
	uint64_t fsize = img->store->size, bytes, max_c = 0;
	int ret;

	if (fsize < CLOOP_PREAMBLE_SIZE + 8) {
		fmt_error("%s: File too small for a cloop header", img->spec);
		return -EINVAL;
	}
	ret = fmt_store_pread(img->store, hdr, 8, CLOOP_PREAMBLE_SIZE);
	if (ret < 0)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	img->priv = s;
	s->cached = UINT32_MAX;
	s->block_size = be32toh(hdr[0]);
	s->n_blocks = be32toh(hdr[1]);
	ret = -EINVAL;
	if (s->block_size % 512) {
		fmt_error("%s: block_size %u must be a multiple of 512", img->spec, s->block_size);
		goto fail;
	}
	if (s->block_size == 0) {
		fmt_error("%s: block_size cannot be zero", img->spec);
		goto fail;
	}
	if (s->block_size > CLOOP_MAX_BLOCK) {
		fmt_error("%s: block_size %u must be %u MB or less", img->spec, s->block_size,
			  CLOOP_MAX_BLOCK >> 20);
		goto fail;
	}
	if (s->n_blocks > (UINT32_MAX - 1) / 8) {
		fmt_error("%s: n_blocks %u must be %u or less", img->spec, s->n_blocks, (UINT32_MAX - 1) / 8);
		goto fail;
	}
	bytes = ((uint64_t)s->n_blocks + 1) * 8;
	if (bytes > CLOOP_MAX_OFFSETS) {
		fmt_error("%s: image requires too many offsets, try increasing block size", img->spec);
		goto fail;
	}
	if (bytes > fsize - CLOOP_PREAMBLE_SIZE - 8) {
		fmt_error("%s: offsets table (%u blocks) is past the end of the file", img->spec, s->n_blocks);
		goto fail;
	}
	s->offsets = malloc(bytes);
	if (!s->offsets) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, s->offsets, bytes, CLOOP_PREAMBLE_SIZE + 8);
	if (ret < 0)
		goto fail;
	ret = -EINVAL;
	for (uint32_t i = 0; i <= s->n_blocks; i++) {
		s->offsets[i] = be64toh(s->offsets[i]);
		if (s->offsets[i] > fsize) {
			fmt_error("%s: offset of block %u is past the end of the file", img->spec, i);
			goto fail;
		}
		if (i == 0)
			continue;
		if (s->offsets[i] < s->offsets[i - 1]) {
			fmt_error("%s: offsets not monotonically increasing at index %u, image file is corrupt",
				  img->spec, i);
			goto fail;
		}
		uint64_t c = s->offsets[i] - s->offsets[i - 1];
		if (c > 2ull * CLOOP_MAX_BLOCK) {
			fmt_error("%s: invalid compressed block size at index %u, image file is corrupt",
				  img->spec, i);
			goto fail;
		}
		if (c > max_c)
			max_c = c;
	}
	s->cbuf = malloc(max_c + 1);
	s->block = malloc(s->block_size);
	if (!s->cbuf || !s->block) {
		ret = -ENOMEM;
		goto fail;
	}
	img->virtual_size = (uint64_t)s->n_blocks * s->block_size;
	img->cluster_size = s->block_size;
	return 0;
fail:
	cloop_close(img);
	return ret;
}

static int cloop_load(struct fmt_image *img, uint32_t idx)
{
	struct cloop_state *s = img->priv;
	uint64_t clen = s->offsets[idx + 1] - s->offsets[idx];
	size_t out;
	int ret;

	if (s->cached == idx)
		return 0;
	s->cached = UINT32_MAX;
	ret = fmt_store_pread(img->store, s->cbuf, clen, s->offsets[idx]);
	if (ret < 0)
		return ret;
	ret = fmt_inflate(FMT_INFLATE_ZLIB, s->cbuf, clen, s->block, s->block_size, &out);
	if (ret == -ENOMEM)
		return ret;
	if (ret != 0 || out != s->block_size) {
		fmt_error("%s: corrupt compressed block %u", img->spec, idx);
		return -EIO;
	}
	s->cached = idx;
	return 0;
}

static int cloop_read(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	struct cloop_state *s = img->priv;
	uint8_t *p = buf;
	while (len) {
		uint32_t idx = off / s->block_size;
		uint64_t in = off % s->block_size;
		size_t n = s->block_size - in;
		int ret;
		if (n > len)
			n = len;
		ret = cloop_load(img, idx);
		if (ret < 0)
			return ret;
		memcpy(p, s->block + in, n);
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int cloop_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
			      uint64_t *run)
{
	*bits = FMT_BS_DATA | FMT_BS_ALLOCATED | FMT_BS_COMPRESSED;
	*run = len;
	return 0;
}

const struct fmt_driver fmt_cloop_driver = {
	.name = "cloop",
	.probe = cloop_probe,
	.open = cloop_open,
	.read = cloop_read,
	.block_status = cloop_block_status,
	.close = cloop_close,
};
