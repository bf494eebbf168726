/* cow.c: User-Mode-Linux COW v2 images (removed from QEMU in 2.2), read only.
 *
 * Layout (big-endian, natural C alignment, 1056 bytes): magic "OOOM", version 2, a 1024-byte
 * NUL-padded backing file name, mtime, size (bytes), sector size 512. A bitmap of one bit per
 * sector (LSB first) follows the header; sector n lives at data_offset + n*512 where
 * data_offset = round_up(1056 + bitmap bytes, 512). A clear bit means "read the backing file".
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

#define COW_MAGIC       0x4f4f4f4du
#define COW_VERSION     2
#define COW_HEADER_SIZE 1056
#define COW_MAX_SIZE    (1ull << 50)     /* the bitmap is read whole: 32 GiB of bitmap at most */
#define COW_MAX_BITMAP  (64u << 20)

struct cow_header {
	uint32_t magic;
	uint32_t version;
	char backing_file[1024];
	int32_t mtime;
	uint32_t pad1;
	uint64_t size;
	uint32_t sectorsize;
	uint32_t pad2;
} __attribute__((packed));

_Static_assert(sizeof(struct cow_header) == COW_HEADER_SIZE, "cow header size");

struct cow_state {
	uint8_t *bitmap;
	uint64_t sectors;
	uint64_t data_offset;
};

static int cow_probe(const uint8_t *buf, size_t len, const char *spec)
{
	if (len < 8)
		return 0;
	/* the magic alone: open refuses other versions with their own message */
	return be32toh(*(const uint32_t *)buf) == COW_MAGIC ? 100 : 0;
}

static void cow_close(struct fmt_image *img)
{
	struct cow_state *s = img->priv;
	if (!s)
		return;
	free(s->bitmap);
	free(s);
	img->priv = NULL;
}

static int cow_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct cow_header h;
	struct cow_state *s;
	uint64_t size, bm_bytes;
	int ret;

	ret = fmt_image_read_header(img, &h, sizeof(h), "COW");
	if (ret < 0)
		return ret;
	if (be32toh(h.magic) != COW_MAGIC) {
		fmt_error("%s: Image not in COW format", img->spec);
		return -EINVAL;
	}
	if (be32toh(h.version) != COW_VERSION) {
		fmt_error("%s: Unsupported COW version %u", img->spec, be32toh(h.version));
		return -ENOTSUP;
	}
	if (be32toh(h.sectorsize) != 512) {
		fmt_error("%s: unsupported COW sector size %u", img->spec, be32toh(h.sectorsize));
		return -ENOTSUP;
	}
	size = be64toh(h.size);
	if (size > COW_MAX_SIZE) {
		fmt_error("%s: COW disk size %" PRIu64 " is too large", img->spec, size);
		return -EFBIG;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	img->priv = s;
	s->sectors = (size + 511) / 512;
	bm_bytes = (s->sectors + 7) / 8;
	if (bm_bytes > COW_MAX_BITMAP) {
		fmt_error("%s: COW bitmap of %" PRIu64 " bytes is too large", img->spec, bm_bytes);
		ret = -EFBIG;
		goto fail;
	}
	if (bm_bytes > img->store->size - sizeof(h)) {
		fmt_error("%s: COW bitmap is past the end of the file", img->spec);
		ret = -EINVAL;
		goto fail;
	}
	s->bitmap = malloc(bm_bytes + 1);
	if (!s->bitmap) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, s->bitmap, bm_bytes, sizeof(h));
	if (ret < 0)
		goto fail;
	s->data_offset = (sizeof(h) + bm_bytes + 511) & ~511ull;
	if (h.backing_file[0]) {
		img->backing_spec = strndup(h.backing_file, sizeof(h.backing_file));
		if (!img->backing_spec) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	img->virtual_size = size;
	img->cluster_size = 512;
	return 0;
fail:
	cow_close(img);
	return ret;
}

static bool cow_present(struct cow_state *s, uint64_t sec)
{
	return sec < s->sectors && (s->bitmap[sec / 8] >> (sec % 8)) & 1;
}

/* the sectors from off with the same bit; a present sector n lives at data_offset + n*512 */
static int cow_map(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *host,
		   uint64_t *n)
{
	struct cow_state *s = img->priv;
	bool first = cow_present(s, off / 512);
	uint64_t end = (off / 512 + 1) * 512;
	while (end < off + len) {
		uint64_t sec = end / 512;
		if (sec >= s->sectors && !first) {
			end = off + len;
			break;
		}
		/* whole bitmap bytes at a time where they agree */
		if (sec % 8 == 0 && sec + 8 <= s->sectors && s->bitmap[sec / 8] == (first ? 0xff : 0)) {
			end += 8 * 512;
			continue;
		}
		if (cow_present(s, sec) != first)
			break;
		end += 512;
	}
	*n = end - off;
	*host = s->data_offset + off;
	if (first)
		*bits = FMT_BS_DATA | FMT_BS_ALLOCATED;
	else
		*bits = img->backing ? 0 : FMT_BS_ZERO;
	return 0;
}

const struct fmt_driver fmt_cow_driver = {
	.name = "cow",
	.probe = cow_probe,
	.open = cow_open,
	.map = cow_map,
	.close = cow_close,
};
