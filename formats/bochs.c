/* bochs.c: Bochs "growing" redolog images (v1 and v2 headers), read only.
 *
 * Layout (little-endian): a 512-byte header, a catalog of u32 extent numbers at header_size
 * (0xFFFFFFFF = unallocated), then the data area; each allocated extent is bitmap_blocks sectors
 * of per-sector presence bits (LSB first) followed by extent_blocks sectors of data. A sector
 * whose bit is clear reads as zeros, as qemu does.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

#define BOCHS_MAGIC       "Bochs Virtual HD Image"
#define BOCHS_REDOLOG     "Redolog"
#define BOCHS_GROWING     "Growing"
#define BOCHS_VERSION     0x00020000u
#define BOCHS_VERSION_V1  0x00010000u
#define BOCHS_MAX_CATALOG 0x100000u
#define BOCHS_MAX_EXTENT  0x800000u
#define BOCHS_UNALLOCATED 0xffffffffu

struct bochs_header {
	char magic[32];
	char type[16];
	char subtype[16];
	uint32_t version;
	uint32_t header_size;
	uint32_t catalog;
	uint32_t bitmap;
	uint32_t extent;
	union {
		struct {
			uint32_t timestamp;
			uint64_t disk;
		} __attribute__((packed)) v2;
		struct {
			uint64_t disk;
		} __attribute__((packed)) v1;
	} u;
	char padding[512 - 84 - 12];
} __attribute__((packed));

_Static_assert(sizeof(struct bochs_header) == 512, "bochs header size");

struct bochs_state {
	uint32_t *catalog;
	uint32_t catalog_size;
	uint64_t data_offset;
	uint32_t bitmap_blocks, extent_blocks, extent_size;
	uint32_t bm_extent;      /* catalog index whose bitmap is in bm, or UINT32_MAX */
	uint8_t *bm;
};

static bool bochs_header_ok(const struct bochs_header *h)
{
	return !strncmp(h->magic, BOCHS_MAGIC, sizeof(h->magic)) &&
	       !strncmp(h->type, BOCHS_REDOLOG, sizeof(h->type)) &&
	       !strncmp(h->subtype, BOCHS_GROWING, sizeof(h->subtype)) &&
	       (le32toh(h->version) == BOCHS_VERSION || le32toh(h->version) == BOCHS_VERSION_V1);
}

static int bochs_probe(const uint8_t *buf, size_t len, const char *spec)
{
	struct bochs_header h;
	if (len < sizeof(h))
		return 0;
	memcpy(&h, buf, sizeof(h));
	/* the magic alone: open refuses other types and versions with their own message */
	return !strncmp(h.magic, BOCHS_MAGIC, sizeof(h.magic)) ? 100 : 0;
}

static void bochs_close(struct fmt_image *img)
{
	struct bochs_state *s = img->priv;
	if (!s)
		return;
	free(s->catalog);
	free(s->bm);
	free(s);
	img->priv = NULL;
}

static int bochs_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct bochs_header h;
	struct bochs_state *s;
	uint64_t fsize = img->store->size, disk, hdr;
	int ret;

	ret = fmt_image_read_header(img, &h, sizeof(h), "Bochs");
	if (ret < 0)
		return ret;
	if (strncmp(h.magic, BOCHS_MAGIC, sizeof(h.magic))) {
		fmt_error("%s: Image not in Bochs format", img->spec);
		return -EINVAL;
	}
	if (!bochs_header_ok(&h)) {
		fmt_error("%s: Unsupported Bochs image: type '%.*s', subtype '%.*s', version %#x", img->spec,
			  (int)strnlen(h.type, sizeof(h.type)), h.type, (int)strnlen(h.subtype, sizeof(h.subtype)),
			  h.subtype, le32toh(h.version));
		return -ENOTSUP;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	img->priv = s;
	s->bm_extent = UINT32_MAX;
	ret = -EINVAL;
	disk = le32toh(h.version) == BOCHS_VERSION_V1 ? le64toh(h.u.v1.disk) : le64toh(h.u.v2.disk);
	s->catalog_size = le32toh(h.catalog);
	if (s->catalog_size > BOCHS_MAX_CATALOG) {
		fmt_error("%s: Catalog size is too large", img->spec);
		ret = -EFBIG;
		goto fail;
	}
	s->extent_size = le32toh(h.extent);
	if (s->extent_size < 512) {
		fmt_error("%s: Extent size must be at least 512", img->spec);
		goto fail;
	}
	if (s->extent_size & (s->extent_size - 1)) {
		fmt_error("%s: Extent size %u is not a power of two", img->spec, s->extent_size);
		goto fail;
	}
	if (s->extent_size > BOCHS_MAX_EXTENT) {
		fmt_error("%s: Extent size %u is too large", img->spec, s->extent_size);
		goto fail;
	}
	if (le32toh(h.bitmap) == 0 || le32toh(h.bitmap) > BOCHS_MAX_EXTENT) {
		fmt_error("%s: invalid bitmap size %u", img->spec, le32toh(h.bitmap));
		goto fail;
	}
	if (disk / 512 > (uint64_t)s->catalog_size * (s->extent_size / 512)) {
		fmt_error("%s: Catalog size is too small for this disk size", img->spec);
		goto fail;
	}
	hdr = le32toh(h.header_size);
	if (hdr < sizeof(h) || hdr > fsize || (uint64_t)s->catalog_size * 4 > fsize - hdr) {
		fmt_error("%s: catalog (%u entries at %" PRIu64 ") is past the end of the file", img->spec,
			  s->catalog_size, hdr);
		goto fail;
	}
	s->bitmap_blocks = 1 + (le32toh(h.bitmap) - 1) / 512;
	s->extent_blocks = 1 + (s->extent_size - 1) / 512;
	/* the bitmap must hold one bit per sector of the extent */
	if ((uint64_t)s->bitmap_blocks * 512 * 8 < s->extent_blocks) {
		fmt_error("%s: bitmap of %u bytes is too small for extents of %u bytes", img->spec,
			  le32toh(h.bitmap), s->extent_size);
		goto fail;
	}
	s->catalog = malloc((size_t)s->catalog_size * 4 + 1);
	s->bm = malloc((size_t)s->bitmap_blocks * 512);
	if (!s->catalog || !s->bm) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, s->catalog, (size_t)s->catalog_size * 4, hdr);
	if (ret < 0)
		goto fail;
	s->data_offset = hdr + (uint64_t)s->catalog_size * 4;
	for (uint32_t i = 0; i < s->catalog_size; i++) {
		s->catalog[i] = le32toh(s->catalog[i]);
		if (s->catalog[i] == BOCHS_UNALLOCATED)
			continue;
		uint64_t start = s->data_offset +
				 512ull * s->catalog[i] * (s->extent_blocks + s->bitmap_blocks);
		if (start >= fsize) {
			fmt_error("%s: catalog entry %u (extent %u) is past the end of the file", img->spec,
				  i, s->catalog[i]);
			ret = -EINVAL;
			goto fail;
		}
	}
	img->virtual_size = disk / 512 * 512;
	img->cluster_size = s->extent_size;
	return 0;
fail:
	bochs_close(img);
	return ret;
}

static bool bochs_present(const struct bochs_state *s, uint64_t sec)
{
	return (s->bm[sec / 8] >> (sec % 8)) & 1;
}

/* the run at off within its extent: the sectors with the same presence bit (a clear bit reads
 * as zeros), or the rest of an unallocated extent */
static int bochs_map(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *host,
		     uint64_t *n)
{
	struct bochs_state *s = img->priv;
	uint64_t idx = off / s->extent_size, ext_end = (idx + 1) * s->extent_size;
	uint64_t sec = (off % s->extent_size) / 512, base, end;
	bool present;
	int ret;

	*bits = FMT_BS_ZERO;
	if (idx >= s->catalog_size || s->catalog[idx] == BOCHS_UNALLOCATED) {
		*n = ext_end - off;
		return 0;
	}
	base = s->data_offset + 512ull * s->catalog[idx] * (s->extent_blocks + s->bitmap_blocks);
	if (s->bm_extent != idx) {
		s->bm_extent = UINT32_MAX;
		ret = fmt_store_pread(img->store, s->bm, (size_t)s->bitmap_blocks * 512, base);
		if (ret < 0)
			return ret;
		s->bm_extent = idx;
	}
	present = bochs_present(s, sec);
	for (end = (off / 512 + 1) * 512; end < ext_end && end < off + len; end += 512)
		if (bochs_present(s, (end % s->extent_size) / 512) != present)
			break;
	*n = end - off;
	if (present) {
		*bits = FMT_BS_DATA | FMT_BS_ALLOCATED;
		*host = base + 512ull * (s->bitmap_blocks + sec) + off % 512;
	}
	return 0;
}

const struct fmt_driver fmt_bochs_driver = {
	.name = "bochs",
	.probe = bochs_probe,
	.open = bochs_open,
	.map = bochs_map,
	.close = bochs_close,
};
