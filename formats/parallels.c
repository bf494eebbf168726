/* parallels.c: Parallels (.hds) images, read only: "WithoutFreeSpace" (BAT in sectors) and
 * "WithouFreSpacExt" (BAT in clusters). The format extension is ignored, as qemu does.
 *
 * Layout (little-endian): a 64-byte header, then the BAT (u32 per cluster, 0 = unallocated,
 * reads as zeros). The whole BAT is read and checked at open.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

#define PARALLELS_MAGIC_OLD "WithoutFreeSpace"
#define PARALLELS_MAGIC_EXT "WithouFreSpacExt"
#define PARALLELS_VERSION   2
#define PARALLELS_HDR_SIZE  64

struct parallels_header {
	char magic[16];
	uint32_t version;
	uint32_t heads;
	uint32_t cylinders;
	uint32_t tracks;
	uint32_t bat_entries;
	uint64_t nb_sectors;
	uint32_t inuse;
	uint32_t data_off;
	uint32_t flags;
	uint64_t ext_off;
} __attribute__((packed));

_Static_assert(sizeof(struct parallels_header) == PARALLELS_HDR_SIZE, "parallels header size");

struct parallels_state {
	uint32_t cluster_size;
	uint32_t bat_entries;
	uint32_t *bat;          /* host order */
	uint64_t multiplier;    /* bytes per BAT unit */
	uint64_t data_end;      /* end of the header and BAT area (data_off) */
};

static int parallels_probe(const uint8_t *buf, size_t len, const char *spec)
{
	if (len < PARALLELS_HDR_SIZE)
		return 0;
	/* the magic alone: open refuses other versions with their own message */
	if (!memcmp(buf, PARALLELS_MAGIC_OLD, 16) || !memcmp(buf, PARALLELS_MAGIC_EXT, 16))
		return 100;
	return 0;
}

static void parallels_close(struct fmt_image *img)
{
	struct parallels_state *s = img->priv;
	if (!s)
		return;
	free(s->bat);
	free(s);
	img->priv = NULL;
}

static int parallels_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct parallels_header h;
	struct parallels_state *s;
	uint64_t fsize = img->store->size, sectors;
	uint32_t tracks;
	bool ext;
	int ret;

	ret = fmt_image_read_header(img, &h, sizeof(h), "Parallels");
	if (ret < 0)
		return ret;
	if (memcmp(h.magic, PARALLELS_MAGIC_OLD, 16) && memcmp(h.magic, PARALLELS_MAGIC_EXT, 16)) {
		fmt_error("%s: Image not in Parallels format", img->spec);
		return -EINVAL;
	}
	if (le32toh(h.version) != PARALLELS_VERSION) {
		fmt_error("%s: Unsupported Parallels version %u", img->spec, le32toh(h.version));
		return -ENOTSUP;
	}
	ext = !memcmp(h.magic, PARALLELS_MAGIC_EXT, 16);
	tracks = le32toh(h.tracks);
	if (tracks == 0) {
		fmt_error("%s: Invalid image: Zero sectors per track", img->spec);
		return -EINVAL;
	}
	if (tracks > INT32_MAX / 513) {
		fmt_error("%s: Invalid image: Too big cluster", img->spec);
		return -EFBIG;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	img->priv = s;
	s->cluster_size = tracks * 512;
	s->multiplier = ext ? s->cluster_size : 512;
	s->bat_entries = le32toh(h.bat_entries);
	ret = -EINVAL;
	if (s->bat_entries > INT32_MAX / 4) {
		fmt_error("%s: Catalog too large", img->spec);
		ret = -EFBIG;
		goto fail;
	}
	if ((uint64_t)s->bat_entries * 4 > fsize - sizeof(h)) {
		fmt_error("%s: BAT of %u entries is past the end of the file", img->spec, s->bat_entries);
		goto fail;
	}
	sectors = ext ? le64toh(h.nb_sectors) : (le64toh(h.nb_sectors) & 0xffffffffu);
	if (sectors > (UINT64_MAX >> 10)) {
		fmt_error("%s: disk size of %" PRIu64 " sectors is too large", img->spec, sectors);
		goto fail;
	}
	if ((uint64_t)s->bat_entries * s->cluster_size < sectors * 512) {
		fmt_error("%s: Catalog of %u entries is too small for %" PRIu64 " sectors", img->spec,
			  s->bat_entries, sectors);
		goto fail;
	}
	s->bat = malloc((size_t)s->bat_entries * 4 + 1);
	if (!s->bat) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, s->bat, (size_t)s->bat_entries * 4, sizeof(h));
	if (ret < 0)
		goto fail;
	for (uint32_t i = 0; i < s->bat_entries; i++) {
		uint64_t off;
		s->bat[i] = le32toh(s->bat[i]);
		if (!s->bat[i])
			continue;
		off = s->bat[i] * s->multiplier;
		if (off < sizeof(h) + (uint64_t)s->bat_entries * 4 || off >= fsize) {
			fmt_error("%s: BAT entry %u (cluster at %" PRIu64 ") is outside the data area", img->spec,
				  i, off);
			ret = -EINVAL;
			goto fail;
		}
	}
	s->data_end = le32toh(h.data_off) ? (uint64_t)le32toh(h.data_off) * 512
					     : ((sizeof(h) + (uint64_t)s->bat_entries * 4 + 511) & ~511ull);
	img->virtual_size = sectors * 512;
	img->cluster_size = s->cluster_size;
	return 0;
fail:
	parallels_close(img);
	return ret;
}

/* the cluster holding off: where the BAT points, or zeros */
static int parallels_map(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
			 uint64_t *host, uint64_t *n)
{
	struct parallels_state *s = img->priv;
	uint64_t idx = off / s->cluster_size, in = off % s->cluster_size;

	*n = s->cluster_size - in;
	if (idx >= s->bat_entries || !s->bat[idx]) {
		*bits = FMT_BS_ZERO;
	} else {
		*bits = FMT_BS_DATA | FMT_BS_ALLOCATED;
		*host = s->bat[idx] * s->multiplier + in;
	}
	return 0;
}

/* like qemu's parallels check: clusters past the end of the file are corruptions, file space
 * after the last cluster is a leak; fragmentation is counted in BAT order */
static int parallels_check(struct fmt_image *img, struct fmt_check_result *res)
{
	struct parallels_state *s = img->priv;
	uint64_t size = img->store->size, high = 0, prev = 0;

	res->total_clusters = s->bat_entries;
	for (uint32_t i = 0; i < s->bat_entries; i++) {
		uint64_t off = s->bat[i] * s->multiplier;
		if (!off) {
			prev = 0;
			continue;
		}
		if (off + s->cluster_size > size) {
			res->corruptions++;
			continue;
		}
		res->allocated_clusters++;
		if (off > high)
			high = off;
		if (prev && prev + s->cluster_size != off)
			res->fragmented_clusters++;
		prev = off;
	}
	res->image_end_offset = high ? high + s->cluster_size : s->data_end;
	if (size > res->image_end_offset)
		res->leaks += (size - res->image_end_offset + s->cluster_size - 1) / s->cluster_size;
	return 0;
}

const struct fmt_driver fmt_parallels_driver = {
	.name = "parallels",
	.probe = parallels_probe,
	.open = parallels_open,
	.map = parallels_map,
	.check = parallels_check,
	.close = parallels_close,
};
