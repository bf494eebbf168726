/* vmdk.c: VMware VMDK images: monolithicSparse, monolithicFlat, twoGbMaxExtentSparse/Flat,
 * streamOptimized (zlib grains with markers) and vmfsSparse (COWD, read only).
 *
 * An image is a list of extents laid end to end (descriptor order). A FLAT extent maps bytes
 * straight into its file; a SPARSE (KDMV) extent maps grains through a grain directory (GD,
 * kept in memory) and grain tables (GTs, cached per extent and written back on flush/close to
 * both the primary and the redundant GD's tables). New grains go at the end of the extent file.
 * streamOptimized extents are append-only: a grain is written once, compressed, behind a
 * {lba, size} marker; partial writes to a grain collect in one pending grain buffer, and close
 * appends a footer (marker, header copy) and an end-of-stream marker as VMware expects.
 * Thread safety (FMT_DRV_THREADS): one mutex guards the tables, the caches and the pending
 * grain; stream grains are compressed outside it and only appended under it, so several
 * threads compress at once. Flat extents are written without the lock (no metadata).
 */
#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "formats.h"
#include "util.h"

#define VMDK_SECTOR          512u
#define VMDK4_MAGIC          "KDMV"
#define VMDK3_MAGIC          "COWD"
#define VMDK4_FLAG_NL_DETECT 0x1
#define VMDK4_FLAG_RGD       0x2
#define VMDK4_FLAG_ZERO_GRAIN 0x4
#define VMDK4_FLAG_COMPRESS  0x10000
#define VMDK4_FLAG_MARKER    0x20000
#define VMDK4_COMPRESS_DEFLATE 1
#define VMDK_GD_AT_END       0xffffffffffffffffull
#define VMDK_GTE_ZEROED      1u
#define VMDK_MARKER_EOS      0
#define VMDK_MARKER_GT       1
#define VMDK_MARKER_GD       2
#define VMDK_MARKER_FOOTER   3
#define VMDK_MAX_GRAIN       0x200000ull      /* sectors (1 GiB), qemu's limit */
#define VMDK_MAX_GTES        512u
#define VMDK_MAX_L1          (32u << 20)
#define VMDK_MAX_DESC        (1u << 20)
#define VMDK_MAX_EXTENTS     4096
#define VMDK_GT_CACHE        64
#define VMDK_SPLIT_SIZE      0x80000000ull    /* twoGbMaxExtent* files */
#define VMDK_DESC_SECTORS    20

struct vmdk4_header {
	char magic[4];
	uint32_t version;
	uint32_t flags;
	uint64_t capacity;
	uint64_t granularity;
	uint64_t desc_offset;
	uint64_t desc_size;
	uint32_t num_gtes_per_gt;
	uint64_t rgd_offset;
	uint64_t gd_offset;
	uint64_t grain_offset;
	uint8_t filler;
	uint8_t check_bytes[4];
	uint16_t compress_algorithm;
	uint8_t pad[433];
} __attribute__((packed));

struct vmdk3_header {
	char magic[4];
	uint32_t version;
	uint32_t flags;
	uint32_t disk_sectors;
	uint32_t granularity;
	uint32_t l1dir_offset;
	uint32_t l1dir_size;
	uint32_t file_sectors;
	uint32_t cylinders, heads, sectors_per_track;
} __attribute__((packed));

_Static_assert(sizeof(struct vmdk4_header) == VMDK_SECTOR, "VMDK4 header size");

enum vmdk_extent_type { VMDK_FLAT, VMDK_SPARSE, VMDK_COWD, VMDK_ZERO };

struct vmdk_gt_slot {
	uint64_t index;     /* GT number, UINT64_MAX = empty */
	bool dirty;
	uint32_t *gt;       /* host byte order */
};

struct vmdk_extent {
	enum vmdk_extent_type type;
	char *filename;             /* as in the descriptor */
	struct fmt_store *store;
	bool own_store;             /* false when it is img->store */
	uint64_t start;             /* virtual byte offset of the extent */
	uint64_t length;            /* bytes */
	uint64_t flat_offset;       /* FLAT: byte offset in the file */
	/* sparse */
	uint32_t version, flags;
	uint64_t grain;             /* bytes */
	uint32_t gtes;              /* entries per GT */
	uint32_t l1_size;
	uint32_t *gd, *rgd;         /* sector offsets of the GTs, host order; rgd may be NULL */
	uint64_t gd_offset, rgd_offset;   /* sectors */
	bool compressed, markers, zeroed_grain;
	uint64_t next_sector;       /* where the next grain (or GT) is appended */
	struct vmdk4_header header; /* KDMV only: as read (the footer's copy for stream files) */
	bool has_footer;            /* stream file ended in footer + EOS when opened */
	bool stream_dirty;          /* grains were appended: close rewrites the footer */
	struct vmdk_gt_slot cache[VMDK_GT_CACHE];
};

struct vmdk_state {
	struct vmdk_extent *ext;
	int nr_ext;
	char create_type[64];
	uint32_t cid, parent_cid;
	bool have_desc;
	uint8_t *grain_buf;         /* one grain, scratch for merges */
	size_t zbuf_size;           /* room for one compressed grain and its marker */
	size_t grain_buf_size;
	/* streamOptimized: a partly written grain not yet compressed */
	int pend_ext;               /* -1 = none */
	uint64_t pend_grain;        /* grain number within the extent */
	uint8_t *pend_buf;
	pthread_mutex_t lock;
};

extern const struct fmt_driver fmt_vmdk_driver;

/* ---- small helpers ------------------------------------------------------------------------ */

static int vmdk_probe(const uint8_t *buf, size_t len, const char *spec)
{
	size_t i = 0;
	if (len >= 4 && (!memcmp(buf, VMDK4_MAGIC, 4) || !memcmp(buf, VMDK3_MAGIC, 4)))
		return 100;
	/* a text descriptor: the first line that is neither blank nor a comment is version=N */
	while (i < len) {
		size_t end = i;
		while (end < len && buf[end] != '\n')
			end++;
		size_t l = end - i;
		if (l && buf[end - 1] == '\r')
			l--;
		if (l == 0 || buf[i] == '#') {
			i = end + 1;
			continue;
		}
		if (l == 9 && !memcmp(buf + i, "version=", 8) && buf[i + 8] >= '1' && buf[i + 8] <= '3' &&
		    end < len)
			return 100;
		return 0;
	}
	return 0;
}

static int vmdk_ensure_buffers(struct fmt_image *img, uint64_t grain)
{
	struct vmdk_state *s = img->priv;
	if (s->grain_buf_size >= grain)
		return 0;
	free(s->grain_buf);
	free(s->pend_buf);
	s->grain_buf = malloc(grain);
	s->pend_buf = malloc(grain);
	s->zbuf_size = compressBound(grain) + 2 * VMDK_SECTOR;
	if (!s->grain_buf || !s->pend_buf) {
		s->grain_buf_size = 0;
		return -ENOMEM;
	}
	s->grain_buf_size = grain;
	return 0;
}

/* ---- descriptor ---------------------------------------------------------------------------- */

/* value of "key = value" / key="value" lines; copies into out, unquoted */
static bool vmdk_desc_get(const char *desc, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = desc;
	while (p && *p) {
		const char *line = p, *eol = strchr(p, '\n');
		p = eol ? eol + 1 : NULL;
		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, key, klen))
			continue;
		const char *v = line + klen;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v != '=')
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		const char *end = eol ? eol : v + strlen(v);
		while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end - v >= 2 && *v == '"' && end[-1] == '"') {
			v++;
			end--;
		}
		size_t n = end - v;
		if (n >= outlen)
			n = outlen - 1;
		memcpy(out, v, n);
		out[n] = 0;
		return true;
	}
	return false;
}

static int vmdk_parse_cids(struct fmt_image *img, const char *desc)
{
	struct vmdk_state *s = img->priv;
	char v[64], *end;
	if (!vmdk_desc_get(desc, "CID", v, sizeof(v))) {
		fmt_error("%s: invalid VMDK image descriptor: no CID line", img->spec);
		return -EINVAL;
	}
	s->cid = strtoul(v, &end, 16);
	if (!vmdk_desc_get(desc, "parentCID", v, sizeof(v))) {
		fmt_error("%s: invalid VMDK image descriptor: no parentCID line", img->spec);
		return -EINVAL;
	}
	s->parent_cid = strtoul(v, &end, 16);
	if (vmdk_desc_get(desc, "parentFileNameHint", v, sizeof(v)) && *v) {
		char hint[4096];
		vmdk_desc_get(desc, "parentFileNameHint", hint, sizeof(hint));
		img->backing_spec = strdup(hint);
		img->backing_fmt = strdup("vmdk");
		if (!img->backing_spec || !img->backing_fmt)
			return -ENOMEM;
	}
	vmdk_desc_get(desc, "createType", s->create_type, sizeof(s->create_type));
	s->have_desc = true;
	return 0;
}

static struct vmdk_extent *vmdk_add_extent(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e;
	if (s->nr_ext >= VMDK_MAX_EXTENTS) {
		fmt_error("%s: too many extents", img->spec);
		return NULL;
	}
	e = realloc(s->ext, (s->nr_ext + 1) * sizeof(*e));
	if (!e)
		return NULL;
	s->ext = e;
	e = &s->ext[s->nr_ext++];
	memset(e, 0, sizeof(*e));
	for (int i = 0; i < VMDK_GT_CACHE; i++)
		e->cache[i].index = UINT64_MAX;
	return e;
}

/* ---- sparse extents ------------------------------------------------------------------------ */

static int vmdk_read_gd(struct fmt_image *img, struct vmdk_extent *e, uint64_t sector, uint32_t **out)
{
	uint64_t bytes = (uint64_t)e->l1_size * 4, fsize = e->store->size;
	uint32_t *gd;
	int ret;

	if (sector > fsize / VMDK_SECTOR || bytes > fsize - sector * VMDK_SECTOR) {
		fmt_error("%s: grain directory at sector %" PRIu64 " is past the end of the file",
			  e->store->spec, sector);
		return -EINVAL;
	}
	gd = malloc(bytes ? bytes : 1);
	if (!gd)
		return -ENOMEM;
	ret = fmt_store_pread(e->store, gd, bytes, sector * VMDK_SECTOR);
	if (ret < 0) {
		free(gd);
		return ret;
	}
	for (uint32_t i = 0; i < e->l1_size; i++) {
		gd[i] = le32toh(gd[i]);
		if (gd[i] && ((uint64_t)gd[i] > fsize / VMDK_SECTOR ||
			      (uint64_t)e->gtes * 4 > fsize - (uint64_t)gd[i] * VMDK_SECTOR)) {
			fmt_error("%s: grain table %u at sector %u is past the end of the file",
				  e->store->spec, i, gd[i]);
			free(gd);
			return -EINVAL;
		}
	}
	*out = gd;
	return 0;
}

static int vmdk_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* before writing: grain tables must not overlap each other (a shared table would make a write
 * to one range show up in another) nor the header and descriptor */
static int vmdk_check_gt_overlap(struct vmdk_extent *e)
{
	uint64_t gt_sectors = ((uint64_t)e->gtes * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
	uint32_t *v = malloc(((size_t)e->l1_size * 2 + 1) * 4);
	size_t n = 0;
	int ret = 0;

	if (!v)
		return -ENOMEM;
	for (int copy = 0; copy < 2; copy++) {
		uint32_t *gd = copy ? e->rgd : e->gd;
		for (uint32_t i = 0; gd && i < e->l1_size; i++)
			if (gd[i])
				v[n++] = gd[i];
	}
	qsort(v, n, 4, vmdk_cmp_u32);
	for (size_t i = 0; i < n; i++) {
		if (v[i] == 0 || (i && v[i] < v[i - 1] + gt_sectors)) {
			fmt_error("%s: grain tables overlap at sector %u; refusing to write", e->store->spec, v[i]);
			ret = -EINVAL;
			break;
		}
	}
	free(v);
	return ret;
}

/* a stream file written with "GD at end": the real header is the footer before the EOS marker */
static int vmdk_read_footer(struct fmt_image *img, struct vmdk_extent *e, struct vmdk4_header *h)
{
	uint8_t buf[3 * VMDK_SECTOR];
	uint64_t fsize = e->store->size;
	int ret;
	if (fsize < 4 * VMDK_SECTOR) {
		fmt_error("%s: Invalid footer", e->store->spec);
		return -EINVAL;
	}
	ret = fmt_store_pread(e->store, buf, sizeof(buf), fsize - sizeof(buf));
	if (ret < 0)
		return ret;
	if (le32toh(*(uint32_t *)(buf + 8)) != 0 || le32toh(*(uint32_t *)(buf + 12)) != VMDK_MARKER_FOOTER ||
	    memcmp(buf + VMDK_SECTOR, VMDK4_MAGIC, 4) ||
	    le64toh(*(uint64_t *)(buf + 2 * VMDK_SECTOR)) != 0 ||
	    le32toh(*(uint32_t *)(buf + 2 * VMDK_SECTOR + 8)) != 0 ||
	    le32toh(*(uint32_t *)(buf + 2 * VMDK_SECTOR + 12)) != VMDK_MARKER_EOS) {
		fmt_error("%s: Invalid footer", e->store->spec);
		return -EINVAL;
	}
	memcpy(h, buf + VMDK_SECTOR, sizeof(*h));
	return 0;
}

/* does the file end in footer marker + footer + EOS? (then new grains overwrite them) */
static bool vmdk_has_footer(struct vmdk_extent *e)
{
	uint8_t buf[3 * VMDK_SECTOR];
	uint64_t fsize = e->store->size;
	if (fsize < 4 * VMDK_SECTOR || fsize % VMDK_SECTOR)
		return false;
	if (fmt_store_pread(e->store, buf, sizeof(buf), fsize - sizeof(buf)) < 0)
		return false;
	return le32toh(*(uint32_t *)(buf + 12)) == VMDK_MARKER_FOOTER &&
	       !memcmp(buf + VMDK_SECTOR, VMDK4_MAGIC, 4) &&
	       le32toh(*(uint32_t *)(buf + 2 * VMDK_SECTOR + 12)) == VMDK_MARKER_EOS &&
	       le64toh(*(uint64_t *)(buf + 2 * VMDK_SECTOR)) == 0;
}

static int vmdk_open_sparse4(struct fmt_image *img, struct vmdk_extent *e, uint64_t desc_sectors)
{
	struct vmdk4_header h;
	uint64_t fsize = e->store->size, capacity, grain_sectors, l1;
	int ret;

	ret = fmt_store_pread(e->store, &h, sizeof(h), 0);
	if (ret < 0)
		return ret;
	if (le64toh(h.gd_offset) == VMDK_GD_AT_END) {
		if (img->writable) {
			fmt_error("%s: appending to a stream file with its grain directory at the end is not supported",
				  e->store->spec);
			return -ENOTSUP;
		}
		ret = vmdk_read_footer(img, e, &h);
		if (ret < 0)
			return ret;
	}
	e->version = le32toh(h.version);
	e->flags = le32toh(h.flags);
	if (e->version > 3) {
		fmt_error("%s: Unsupported VMDK version %u", e->store->spec, e->version);
		return -ENOTSUP;
	}
	e->compressed = le16toh(h.compress_algorithm) == VMDK4_COMPRESS_DEFLATE;
	if (e->version == 3 && img->writable && !e->compressed) {
		fmt_error("%s: VMDK version 3 must be read only", e->store->spec);
		return -EINVAL;
	}
	if (le16toh(h.compress_algorithm) > VMDK4_COMPRESS_DEFLATE) {
		fmt_error("%s: unsupported VMDK compression algorithm %u", e->store->spec,
			  le16toh(h.compress_algorithm));
		return -ENOTSUP;
	}
	e->markers = e->flags & VMDK4_FLAG_MARKER;
	e->zeroed_grain = e->flags & VMDK4_FLAG_ZERO_GRAIN;
	capacity = le64toh(h.capacity);
	grain_sectors = le64toh(h.granularity);
	e->gtes = le32toh(h.num_gtes_per_gt);
	if (grain_sectors == 0 || grain_sectors > VMDK_MAX_GRAIN) {
		fmt_error("%s: Invalid granularity, image cluster size %" PRIu64 " sectors",
			  e->store->spec, grain_sectors);
		return -EINVAL;
	}
	if (e->gtes == 0) {
		fmt_error("%s: L1 entry size is invalid", e->store->spec);
		return -EINVAL;
	}
	if (e->gtes > VMDK_MAX_GTES) {
		fmt_error("%s: L2 table size too big", e->store->spec);
		return -EFBIG;
	}
	if (capacity == 0) {
		fmt_error("%s: sparse extent with capacity 0 (embedded multi-extent descriptor) is not supported",
			  e->store->spec);
		return -ENOTSUP;
	}
	if (desc_sectors == 0)
		desc_sectors = capacity;
	if (desc_sectors > capacity) {
		fmt_error("%s: extent of %" PRIu64 " sectors is larger than its capacity %" PRIu64,
			  e->store->spec, desc_sectors, capacity);
		return -EINVAL;
	}
	if (capacity > UINT64_MAX / VMDK_SECTOR / 2) {
		fmt_error("%s: capacity %" PRIu64 " sectors is too large", e->store->spec, capacity);
		return -EFBIG;
	}
	e->grain = grain_sectors * VMDK_SECTOR;
	l1 = (desc_sectors + grain_sectors * e->gtes - 1) / (grain_sectors * e->gtes);
	if (l1 > VMDK_MAX_L1) {
		fmt_error("%s: L1 size too big", e->store->spec);
		return -EFBIG;
	}
	e->l1_size = l1;
	if (le64toh(h.grain_offset) > fsize / VMDK_SECTOR) {
		fmt_error("%s: File truncated, expecting at least %" PRIu64 " bytes", e->store->spec,
			  le64toh(h.grain_offset) * VMDK_SECTOR);
		return -EINVAL;
	}
	e->gd_offset = le64toh(h.gd_offset);
	ret = vmdk_read_gd(img, e, e->gd_offset, &e->gd);
	if (ret < 0)
		return ret;
	if (e->flags & VMDK4_FLAG_RGD) {
		e->rgd_offset = le64toh(h.rgd_offset);
		ret = vmdk_read_gd(img, e, e->rgd_offset, &e->rgd);
		if (ret < 0)
			return ret;
	}
	if (img->writable) {
		ret = vmdk_check_gt_overlap(e);
		if (ret < 0)
			return ret;
	}
	e->header = h;
	e->next_sector = (fsize + VMDK_SECTOR - 1) / VMDK_SECTOR;
	if (e->compressed && e->markers && vmdk_has_footer(e)) {
		e->has_footer = true;
		e->next_sector -= 3;
	}
	if (e->next_sector < le64toh(h.grain_offset))
		e->next_sector = le64toh(h.grain_offset);
	e->length = desc_sectors * VMDK_SECTOR;
	e->type = VMDK_SPARSE;
	return vmdk_ensure_buffers(img, e->grain);
}

static int vmdk_open_cowd(struct fmt_image *img, struct vmdk_extent *e)
{
	struct vmdk3_header h;
	int ret;
	ret = fmt_store_pread(e->store, &h, sizeof(h), 0);
	if (ret < 0)
		return ret;
	if (img->writable) {
		fmt_error("%s: writing to a vmfsSparse (COWD) extent is not supported", e->store->spec);
		return -ENOTSUP;
	}
	e->gtes = 4096;
	if (le32toh(h.granularity) == 0 || le32toh(h.granularity) > VMDK_MAX_GRAIN) {
		fmt_error("%s: Invalid granularity, image cluster size %u sectors", e->store->spec,
			  le32toh(h.granularity));
		return -EINVAL;
	}
	e->grain = (uint64_t)le32toh(h.granularity) * VMDK_SECTOR;
	e->l1_size = le32toh(h.l1dir_size);
	if (e->l1_size > VMDK_MAX_L1) {
		fmt_error("%s: L1 size too big", e->store->spec);
		return -EFBIG;
	}
	if ((uint64_t)e->l1_size * e->gtes * e->grain < (uint64_t)le32toh(h.disk_sectors) * VMDK_SECTOR) {
		fmt_error("%s: grain directory too small for %u sectors", e->store->spec,
			  le32toh(h.disk_sectors));
		return -EINVAL;
	}
	e->gd_offset = le32toh(h.l1dir_offset);
	ret = vmdk_read_gd(img, e, e->gd_offset, &e->gd);
	if (ret < 0)
		return ret;
	if (!e->length)
		e->length = (uint64_t)le32toh(h.disk_sectors) * VMDK_SECTOR;
	e->type = VMDK_COWD;
	return vmdk_ensure_buffers(img, e->grain);
}

/* write a dirty cached GT back to its table and the redundant copy */
static int vmdk_write_gt(struct vmdk_extent *e, struct vmdk_gt_slot *slot)
{
	uint32_t *le = malloc(e->gtes * 4);
	int ret;

	if (!le)
		return -ENOMEM;
	for (uint32_t i = 0; i < e->gtes; i++)
		le[i] = htole32(slot->gt[i]);
	ret = fmt_store_pwrite(e->store, le, e->gtes * 4, (uint64_t)e->gd[slot->index] * VMDK_SECTOR);
	if (ret >= 0 && e->rgd && e->rgd[slot->index])
		ret = fmt_store_pwrite(e->store, le, e->gtes * 4, (uint64_t)e->rgd[slot->index] * VMDK_SECTOR);
	free(le);
	if (ret < 0)
		return ret;
	slot->dirty = false;
	return 0;
}

/* GT number gt_idx of extent e, through the direct-mapped cache */
static int vmdk_get_gt(struct vmdk_extent *e, uint64_t gt_idx, struct vmdk_gt_slot **out)
{
	struct vmdk_gt_slot *slot = &e->cache[gt_idx % VMDK_GT_CACHE];
	int ret;

	if (slot->index == gt_idx) {
		*out = slot;
		return 0;
	}
	if (slot->dirty) {
		ret = vmdk_write_gt(e, slot);
		if (ret < 0)
			return ret;
	}
	if (!slot->gt) {
		slot->gt = malloc(e->gtes * 4);
		if (!slot->gt)
			return -ENOMEM;
	}
	slot->index = UINT64_MAX;
	ret = fmt_store_pread(e->store, slot->gt, e->gtes * 4, (uint64_t)e->gd[gt_idx] * VMDK_SECTOR);
	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < e->gtes; i++)
		slot->gt[i] = le32toh(slot->gt[i]);
	slot->index = gt_idx;
	*out = slot;
	return 0;
}

static int vmdk_flush_gts(struct vmdk_extent *e)
{
	for (int i = 0; i < VMDK_GT_CACHE; i++) {
		if (e->cache[i].dirty) {
			int ret = vmdk_write_gt(e, &e->cache[i]);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* grain table entry of grain g (0 when its GT is not allocated) */
static int vmdk_gte(struct vmdk_extent *e, uint64_t g, uint32_t *gte)
{
	uint64_t gt_idx = g / e->gtes;
	struct vmdk_gt_slot *slot;
	int ret;
	if (gt_idx >= e->l1_size || !e->gd[gt_idx]) {
		*gte = 0;
		return 0;
	}
	ret = vmdk_get_gt(e, gt_idx, &slot);
	if (ret < 0)
		return ret;
	*gte = slot->gt[g % e->gtes];
	return 0;
}

/* append a zeroed grain table for GT gt_idx (and its redundant copy), update both GDs */
static int vmdk_alloc_gt(struct vmdk_extent *e, uint64_t gt_idx)
{
	size_t bytes = ((size_t)e->gtes * 4 + VMDK_SECTOR - 1) & ~(size_t)(VMDK_SECTOR - 1);
	uint8_t *zero = calloc(1, bytes);
	uint32_t le;
	int ret;
	if (!zero)
		return -ENOMEM;
	for (int copy = 0; copy < (e->rgd ? 2 : 1); copy++) {
		uint32_t *gd = copy ? e->rgd : e->gd;
		uint64_t gd_sector = copy ? e->rgd_offset : e->gd_offset;
		if (e->next_sector + bytes / VMDK_SECTOR > UINT32_MAX) {
			fmt_error("%s: extent file full (2 TiB)", e->store->spec);
			free(zero);
			return -EFBIG;
		}
		ret = fmt_store_pwrite(e->store, zero, bytes, e->next_sector * VMDK_SECTOR);
		if (ret < 0)
			goto out;
		gd[gt_idx] = e->next_sector;
		e->next_sector += bytes / VMDK_SECTOR;
		le = htole32(gd[gt_idx]);
		ret = fmt_store_pwrite(e->store, &le, 4, gd_sector * VMDK_SECTOR + gt_idx * 4);
		if (ret < 0)
			goto out;
	}
	ret = 0;
out:
	free(zero);
	return ret;
}

static int vmdk_set_gte(struct vmdk_extent *e, uint64_t g, uint32_t val)
{
	uint64_t gt_idx = g / e->gtes;
	struct vmdk_gt_slot *slot;
	int ret;
	if (gt_idx >= e->l1_size) {
		fmt_error("%s: grain %" PRIu64 " is past the grain directory", e->store->spec, g);
		return -EINVAL;
	}
	if (!e->gd[gt_idx]) {
		ret = vmdk_alloc_gt(e, gt_idx);
		if (ret < 0)
			return ret;
	}
	ret = vmdk_get_gt(e, gt_idx, &slot);
	if (ret < 0)
		return ret;
	slot->gt[g % e->gtes] = val;
	slot->dirty = true;
	return 0;
}

/* read and inflate the compressed grain at sector gte into out (e->grain bytes) */
/* zbuf: s->zbuf_size bytes of scratch; needs no lock (a written grain never changes) */
static int vmdk_read_compressed(struct fmt_image *img, struct vmdk_extent *e, uint64_t g,
				uint32_t gte, uint8_t *out, uint8_t *zbuf)
{
	struct vmdk_state *s = img->priv;
	uint64_t off = (uint64_t)gte * VMDK_SECTOR, fsize = e->store->size, avail;
	size_t hdr = e->markers ? 12 : 0, clen;
	uLongf outlen = e->grain;
	int ret;

	if (off >= fsize) {
		fmt_error("%s: compressed grain %" PRIu64 " at sector %u is past the end of the file",
			  e->store->spec, g, gte);
		return -EIO;
	}
	avail = fsize - off;
	clen = s->zbuf_size < avail ? s->zbuf_size : avail;
	ret = fmt_store_pread(e->store, zbuf, clen, off);
	if (ret < 0)
		return ret;
	if (e->markers) {
		uint32_t size = le32toh(*(uint32_t *)(zbuf + 8));
		if (clen < hdr || size > clen - hdr) {
			fmt_error("%s: compressed grain %" PRIu64 " has a bad size %u", e->store->spec, g, size);
			return -EIO;
		}
		clen = size;
	}
	/* inflate one zlib stream; without markers the length is unknown and trailing bytes
	 * belong to the next grain */
	{
		z_stream z;
		uint64_t need = e->grain;
		memset(&z, 0, sizeof(z));
		if (inflateInit(&z) != Z_OK)
			return -ENOMEM;
		z.next_in = zbuf + hdr;
		z.avail_in = clen;
		z.next_out = out;
		z.avail_out = e->grain;
		ret = inflate(&z, Z_FINISH);
		outlen = e->grain - z.avail_out;
		inflateEnd(&z);
		/* a grain that sticks out past the extent may be stored short */
		if ((g + 1) * e->grain > e->length)
			need = e->length - g * e->grain;
		if ((ret != Z_STREAM_END && !(ret == Z_BUF_ERROR && z.avail_out == 0)) || outlen < need) {
			fmt_error("%s: corrupt compressed grain %" PRIu64 " at sector %u", e->store->spec, g, gte);
			return -EIO;
		}
	}
	if (outlen < e->grain)
		memset(out + outlen, 0, e->grain - outlen);
	return 0;
}

/* ---- image open/close ---------------------------------------------------------------------- */

static void vmdk_free_extent(struct vmdk_extent *e)
{
	for (int i = 0; i < VMDK_GT_CACHE; i++)
		free(e->cache[i].gt);
	free(e->gd);
	free(e->rgd);
	free(e->filename);
	if (e->own_store && e->store)
		fmt_store_close(e->store);
}

static int vmdk_finish_stream(struct fmt_image *img, struct vmdk_extent *e);
static int vmdk_flush_pending(struct fmt_image *img);

static void vmdk_close(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	if (!s)
		return;
	if (img->writable) {
		vmdk_flush_pending(img);
		for (int i = 0; i < s->nr_ext; i++) {
			vmdk_flush_gts(&s->ext[i]);
			if (s->ext[i].stream_dirty)
				vmdk_finish_stream(img, &s->ext[i]);
		}
	}
	for (int i = 0; i < s->nr_ext; i++)
		vmdk_free_extent(&s->ext[i]);
	free(s->ext);
	free(s->grain_buf);
	free(s->pend_buf);
	pthread_mutex_destroy(&s->lock);
	free(s);
	img->priv = NULL;
}

/* one extent line: ACCESS SECTORS TYPE "FILE" [OFFSET] */
static int vmdk_parse_extent_line(struct fmt_image *img, const char *line, uint64_t *vstart)
{
	char access[16], type[16], fname[4096];
	unsigned long long sectors, offset = 0;
	const char *q1, *q2;
	struct vmdk_extent *e;
	int n, ret;

	if (sscanf(line, "%15s %llu %15s", access, &sectors, type) != 3) {
		fmt_error("%s: invalid extent line '%.60s'", img->spec, line);
		return -EINVAL;
	}
	if (strcmp(type, "ZERO")) {
		q1 = strchr(line, '"');
		q2 = q1 ? strchr(q1 + 1, '"') : NULL;
		if (!q2 || q2 - q1 - 1 >= (long)sizeof(fname) || q2 == q1 + 1) {
			fmt_error("%s: invalid extent line '%.60s'", img->spec, line);
			return -EINVAL;
		}
		memcpy(fname, q1 + 1, q2 - q1 - 1);
		fname[q2 - q1 - 1] = 0;
		n = sscanf(q2 + 1, "%llu", &offset);
		if (n != 1)
			offset = 0;
		if (!strcmp(type, "FLAT") && n != 1) {
			fmt_error("%s: invalid extent line '%.60s' (FLAT needs an offset)", img->spec, line);
			return -EINVAL;
		}
	} else {
		fname[0] = 0;
	}
	if (sectors == 0 || sectors > (UINT64_MAX / VMDK_SECTOR - *vstart / VMDK_SECTOR) / 2 ||
	    offset > UINT64_MAX / VMDK_SECTOR / 2) {
		fmt_error("%s: invalid extent size in '%.60s'", img->spec, line);
		return -EINVAL;
	}
	if (strcmp(type, "FLAT") && strcmp(type, "VMFS") && strcmp(type, "SPARSE") &&
	    strcmp(type, "VMFSSPARSE") && strcmp(type, "ZERO")) {
		fmt_error("%s: unsupported extent type '%s'", img->spec, type);
		return -ENOTSUP;
	}
	if (strcmp(access, "RW") && strcmp(access, "RDONLY") && strcmp(access, "NOACCESS")) {
		fmt_error("%s: invalid extent access '%s'", img->spec, access);
		return -EINVAL;
	}
	if (!strcmp(access, "NOACCESS")) {
		fmt_error("%s: extent '%s' is NOACCESS", img->spec, fname);
		return -ENOTSUP;
	}
	e = vmdk_add_extent(img);
	if (!e)
		return -ENOMEM;
	e->start = *vstart;
	e->length = sectors * VMDK_SECTOR;
	e->filename = strdup(fname);
	if (!e->filename)
		return -ENOMEM;
	if (!strcmp(type, "ZERO")) {
		e->type = VMDK_ZERO;
		*vstart += e->length;
		return 0;
	}
	{
		char *path = fmt_store_sibling(img->spec, fname);
		if (!path)
			return -ENOMEM;
		ret = fmt_store_open(path, img->writable ? FMT_STORE_RDWR : FMT_STORE_RDONLY, &e->store);
		free(path);
		if (ret < 0)
			return ret;
		e->own_store = true;
	}
	if (!strcmp(type, "FLAT") || !strcmp(type, "VMFS")) {
		e->type = VMDK_FLAT;
		e->flat_offset = offset * VMDK_SECTOR;
	} else {
		char magic[4] = { 0 };
		ret = fmt_store_pread(e->store, magic, 4, 0);
		if (ret < 0)
			return ret;
		if (e->store->size >= VMDK_SECTOR && !memcmp(magic, VMDK4_MAGIC, 4))
			ret = vmdk_open_sparse4(img, e, sectors);
		else if (e->store->size >= sizeof(struct vmdk3_header) && !memcmp(magic, VMDK3_MAGIC, 4))
			ret = vmdk_open_cowd(img, e);
		else {
			fmt_error("%s: extent '%s' is not a sparse VMDK extent", img->spec, fname);
			ret = -EINVAL;
		}
		if (ret < 0)
			return ret;
		e->length = sectors * VMDK_SECTOR;
	}
	*vstart += e->length;
	return 0;
}

static const char *const vmdk_desc_types[] = {
	"monolithicFlat", "vmfs", "vmfsSparse", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
	"monolithicSparse", "streamOptimized", "custom", NULL
};

static int vmdk_open_descriptor_file(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	uint64_t size = img->store->size, vstart = 0;
	char *desc, *p;
	bool known = false;
	int ret;

	if (size > VMDK_MAX_DESC)
		size = VMDK_MAX_DESC;
	desc = malloc(size + 1);
	if (!desc)
		return -ENOMEM;
	ret = fmt_store_pread(img->store, desc, size, 0);
	if (ret < 0)
		goto out;
	desc[size] = 0;   /* qemu pads descriptor files with NULs: the text ends at the first one */
	if (!vmdk_desc_get(desc, "createType", s->create_type, sizeof(s->create_type))) {
		fmt_error("%s: invalid VMDK image descriptor", img->spec);
		ret = -EINVAL;
		goto out;
	}
	for (int i = 0; vmdk_desc_types[i]; i++)
		known |= !strcmp(s->create_type, vmdk_desc_types[i]);
	if (!known) {
		fmt_error("%s: Unsupported image type '%s'", img->spec, s->create_type);
		ret = -ENOTSUP;
		goto out;
	}
	ret = vmdk_parse_cids(img, desc);
	if (ret < 0)
		goto out;
	for (p = desc; p && *p;) {
		char *line = p, *eol = strchr(p, '\n');
		if (eol)
			*eol = 0;
		p = eol ? eol + 1 : NULL;
		while (*line == ' ' || *line == '\t')
			line++;
		if (!strncmp(line, "RW ", 3) || !strncmp(line, "RDONLY ", 7) || !strncmp(line, "NOACCESS ", 9)) {
			ret = vmdk_parse_extent_line(img, line, &vstart);
			if (ret < 0)
				goto out;
		}
	}
	if (s->nr_ext == 0) {
		fmt_error("%s: VMDK descriptor lists no extents", img->spec);
		ret = -EINVAL;
		goto out;
	}
	img->virtual_size = vstart;
	ret = 0;
out:
	free(desc);
	return ret;
}

/* a KDMV file: it is its own single extent; the embedded descriptor gives CIDs and the parent */
static int vmdk_open_monolithic(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = vmdk_add_extent(img);
	uint64_t doff, dsize;
	int ret;

	if (!e)
		return -ENOMEM;
	e->store = img->store;
	e->filename = strdup(img->spec);
	if (!e->filename)
		return -ENOMEM;
	if (img->store->size < VMDK_SECTOR) {
		fmt_error("%s: File truncated, expecting at least 512 bytes", img->spec);
		return -EINVAL;
	}
	ret = vmdk_open_sparse4(img, e, 0);
	if (ret < 0)
		return ret;
	doff = le64toh(e->header.desc_offset);
	dsize = le64toh(e->header.desc_size);
	if (doff && dsize) {
		char *desc;
		if (dsize > VMDK_MAX_DESC / VMDK_SECTOR || doff > img->store->size / VMDK_SECTOR ||
		    dsize * VMDK_SECTOR > img->store->size - doff * VMDK_SECTOR) {
			fmt_error("%s: embedded descriptor is past the end of the file", img->spec);
			return -EINVAL;
		}
		desc = malloc(dsize * VMDK_SECTOR + 1);
		if (!desc)
			return -ENOMEM;
		ret = fmt_store_pread(img->store, desc, dsize * VMDK_SECTOR, doff * VMDK_SECTOR);
		desc[dsize * VMDK_SECTOR] = 0;
		if (ret >= 0)
			ret = vmdk_parse_cids(img, desc);
		free(desc);
		if (ret < 0)
			return ret;
	}
	if (!s->create_type[0])
		snprintf(s->create_type, sizeof(s->create_type), "%s",
			 e->compressed ? "streamOptimized" : "monolithicSparse");
	img->virtual_size = e->length;
	return 0;
}

static int vmdk_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct vmdk_state *s;
	char magic[4] = { 0 };
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pend_ext = -1;
	pthread_mutex_init(&s->lock, NULL);
	img->priv = s;
	ret = fmt_store_pread(img->store, magic, 4, 0);
	if (ret < 0)
		goto fail;
	if (!memcmp(magic, VMDK4_MAGIC, 4)) {
		ret = vmdk_open_monolithic(img);
	} else if (!memcmp(magic, VMDK3_MAGIC, 4)) {
		struct vmdk_extent *e = vmdk_add_extent(img);
		ret = -ENOMEM;
		if (e) {
			e->store = img->store;
			e->filename = strdup(img->spec);
			ret = e->filename ? vmdk_open_cowd(img, e) : -ENOMEM;
			img->virtual_size = e->length;
			snprintf(s->create_type, sizeof(s->create_type), "vmfsSparse");
		}
	} else {
		ret = vmdk_open_descriptor_file(img);
	}
	if (ret < 0)
		goto fail;
	img->cluster_size = 0;
	for (int i = 0; i < s->nr_ext; i++)
		if (s->ext[i].grain && (!img->cluster_size || s->ext[i].grain < img->cluster_size))
			img->cluster_size = s->ext[i].grain;
	return 0;
fail:
	vmdk_close(img);
	return ret;
}

/* ---- read ------------------------------------------------------------------------------------ */

static int vmdk_find_extent(struct vmdk_state *s, uint64_t off)
{
	int lo = 0, hi = s->nr_ext - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (off < s->ext[mid].start)
			hi = mid - 1;
		else if (off >= s->ext[mid].start + s->ext[mid].length)
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

/* read within one sparse extent; runs of contiguous uncompressed grains become one pread */
static int vmdk_read_sparse(struct fmt_image *img, int ei, uint8_t *buf, size_t len, uint64_t eoff)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = &s->ext[ei];
	uint64_t run_host = 0, run_len = 0;
	uint8_t *run_buf = NULL;
	int ret;

	while (len) {
		uint64_t g = eoff / e->grain, in_grain = eoff % e->grain;
		size_t n = e->grain - in_grain;
		uint32_t gte;
		if (n > len)
			n = len;
		if (s->pend_ext == ei && s->pend_grain == g) {
			gte = UINT32_MAX;   /* pending stream grain */
		} else {
			ret = vmdk_gte(e, g, &gte);
			if (ret < 0)
				return ret;
		}
		bool plain = gte != 0 && gte != UINT32_MAX && !e->compressed &&
			     !(gte == VMDK_GTE_ZEROED && e->zeroed_grain);
		uint64_t host = (uint64_t)gte * VMDK_SECTOR + in_grain;
		if (run_len && (!plain || host != run_host + run_len)) {
			ret = fmt_store_pread(e->store, run_buf, run_len, run_host);
			if (ret < 0)
				return ret;
			run_len = 0;
		}
		if (plain) {
			if (host + n > e->store->size && host >= e->store->size) {
				fmt_error("%s: grain %" PRIu64 " at sector %u is past the end of the file",
					  e->store->spec, g, gte);
				return -EIO;
			}
			if (!run_len) {
				run_host = host;
				run_buf = buf;
			}
			run_len += n;
		} else if (gte == UINT32_MAX) {
			memcpy(buf, s->pend_buf + in_grain, n);
		} else if (gte == 0) {
			ret = fmt_image_read_backing(img, buf, n, e->start + eoff);
			if (ret < 0)
				return ret;
		} else if (gte == VMDK_GTE_ZEROED && e->zeroed_grain) {
			memset(buf, 0, n);
		} else {
			/* inflate outside the lock so several threads decompress at once */
			uint8_t *zb = malloc(s->zbuf_size), *gb = malloc(e->grain);
			if (!zb || !gb) {
				free(zb);
				free(gb);
				return -ENOMEM;
			}
			pthread_mutex_unlock(&s->lock);
			ret = vmdk_read_compressed(img, e, g, gte, gb, zb);
			pthread_mutex_lock(&s->lock);
			if (ret >= 0)
				memcpy(buf, gb + in_grain, n);
			free(zb);
			free(gb);
			if (ret < 0)
				return ret;
		}
		buf += n;
		eoff += n;
		len -= n;
	}
	if (run_len)
		return fmt_store_pread(e->store, run_buf, run_len, run_host);
	return 0;
}

static int vmdk_read_locked(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	struct vmdk_state *s = img->priv;
	uint8_t *p = buf;
	while (len) {
		int ei = vmdk_find_extent(s, off);
		struct vmdk_extent *e;
		size_t n;
		int ret;
		if (ei < 0) {
			memset(p, 0, len);
			return 0;
		}
		e = &s->ext[ei];
		n = e->start + e->length - off;
		if (n > len)
			n = len;
		switch (e->type) {
		case VMDK_FLAT:
			ret = fmt_store_pread(e->store, p, n, e->flat_offset + off - e->start);
			break;
		case VMDK_ZERO:
			memset(p, 0, n);
			ret = 0;
			break;
		default:
			ret = vmdk_read_sparse(img, ei, p, n, off - e->start);
			break;
		}
		if (ret < 0)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---- write ----------------------------------------------------------------------------------- */

/* compress grain g (e->grain bytes at data) behind its marker into a new buffer padded to
 * whole sectors; needs no lock */
static int vmdk_stream_compress(struct vmdk_extent *e, uint64_t g, const uint8_t *data, uint8_t **out,
				uint64_t *sectors)
{
	uLongf clen = compressBound(e->grain);
	size_t cap = 12 + clen + VMDK_SECTOR;
	uint8_t *z = malloc(cap);

	if (!z)
		return -ENOMEM;
	if (compress2(z + 12, &clen, data, e->grain, Z_DEFAULT_COMPRESSION) != Z_OK) {
		free(z);
		fmt_error("%s: compression failed", e->store->spec);
		return -EIO;
	}
	*(uint64_t *)z = htole64(g * (e->grain / VMDK_SECTOR));
	*(uint32_t *)(z + 8) = htole32(clen);
	*sectors = (12 + clen + VMDK_SECTOR - 1) / VMDK_SECTOR;
	memset(z + 12 + clen, 0, *sectors * VMDK_SECTOR - 12 - clen);
	*out = z;
	return 0;
}

/* stream extents are append-only: grain g must not be allocated yet (lock held) */
static int vmdk_stream_check_free(struct vmdk_extent *e, uint64_t g)
{
	uint32_t gte;
	int ret = vmdk_gte(e, g, &gte);

	if (ret >= 0 && gte) {
		fmt_error("%s: Could not write to allocated cluster for streamOptimized", e->store->spec);
		ret = -EIO;
	}
	return ret;
}

/* append an already compressed grain g (lock held): it must not be allocated yet */
static int vmdk_stream_append(struct fmt_image *img, int ei, uint64_t g, const uint8_t *z,
			      uint64_t sectors)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = &s->ext[ei];
	int ret;

	ret = vmdk_stream_check_free(e, g);
	if (ret < 0)
		return ret;
	if (s->pend_ext == ei && s->pend_grain == g)
		s->pend_ext = -1;    /* a whole grain replaces the partial one */
	if (e->next_sector + sectors > UINT32_MAX) {
		fmt_error("%s: extent file full (2 TiB)", e->store->spec);
		return -EFBIG;
	}
	ret = fmt_store_pwrite(e->store, z, sectors * VMDK_SECTOR, e->next_sector * VMDK_SECTOR);
	if (ret < 0)
		return ret;
	ret = vmdk_set_gte(e, g, e->next_sector);
	if (ret < 0)
		return ret;
	e->next_sector += sectors;
	e->stream_dirty = true;
	return 0;
}

/* compress and append grain g of stream extent ei; lock held iff locked */
static int vmdk_stream_put(struct fmt_image *img, int ei, uint64_t g, const uint8_t *data, bool locked)
{
	struct vmdk_state *s = img->priv;
	uint8_t *z;
	uint64_t sectors;
	int ret = vmdk_stream_compress(&s->ext[ei], g, data, &z, &sectors);
	if (ret < 0)
		return ret;
	if (!locked)
		pthread_mutex_lock(&s->lock);
	ret = vmdk_stream_append(img, ei, g, z, sectors);
	if (!locked)
		pthread_mutex_unlock(&s->lock);
	free(z);
	return ret;
}

static int vmdk_flush_pending(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	int ret;
	if (s->pend_ext < 0)
		return 0;
	int ei = s->pend_ext;
	s->pend_ext = -1;
	ret = vmdk_stream_put(img, ei, s->pend_grain, s->pend_buf, true);
	return ret;
}

/* footer marker + header copy + end-of-stream marker at the end of a stream extent */
static int vmdk_finish_stream(struct fmt_image *img, struct vmdk_extent *e)
{
	uint8_t buf[3 * VMDK_SECTOR];
	struct vmdk4_header h = e->header;
	int ret;

	memset(buf, 0, sizeof(buf));
	*(uint64_t *)buf = htole64(1);
	*(uint32_t *)(buf + 12) = htole32(VMDK_MARKER_FOOTER);
	h.gd_offset = htole64(e->gd_offset);
	memcpy(buf + VMDK_SECTOR, &h, sizeof(h));
	ret = fmt_store_pwrite(e->store, buf, sizeof(buf), e->next_sector * VMDK_SECTOR);
	if (ret < 0)
		return ret;
	e->stream_dirty = false;
	return 0;
}

/* called without the lock: whole grains are compressed in parallel, partial ones collect in the
 * pending grain under the lock */
static int vmdk_write_stream(struct fmt_image *img, int ei, const uint8_t *buf, size_t len,
			     uint64_t eoff)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = &s->ext[ei];
	int ret;

	while (len) {
		uint64_t g = eoff / e->grain, in_grain = eoff % e->grain;
		size_t n = e->grain - in_grain;
		if (n > len)
			n = len;
		if (n == e->grain && !img->backing && is_all_zero(buf, n)) {
			/* a zero grain never written stays unallocated (it reads as zeros) */
			pthread_mutex_lock(&s->lock);
			if (s->pend_ext == ei && s->pend_grain == g)
				s->pend_ext = -1;
			ret = vmdk_stream_check_free(e, g);
			pthread_mutex_unlock(&s->lock);
		} else if (n == e->grain) {
			ret = vmdk_stream_put(img, ei, g, buf, false);
		} else {
			pthread_mutex_lock(&s->lock);
			ret = 0;
			if (!(s->pend_ext == ei && s->pend_grain == g)) {
				ret = vmdk_stream_check_free(e, g);
				if (ret >= 0)
					ret = vmdk_flush_pending(img);
				if (ret >= 0)
					ret = fmt_image_read_backing(img, s->pend_buf, e->grain, e->start + g * e->grain);
				if (ret >= 0) {
					/* the tail grain past the disk end stays zero */
					if (e->start + (g + 1) * e->grain > img->virtual_size &&
					    img->virtual_size > e->start + g * e->grain)
						memset(s->pend_buf + (img->virtual_size - e->start - g * e->grain), 0,
						       e->start + (g + 1) * e->grain - img->virtual_size);
					s->pend_ext = ei;
					s->pend_grain = g;
				}
			}
			if (ret >= 0)
				memcpy(s->pend_buf + in_grain, buf, n);
			pthread_mutex_unlock(&s->lock);
		}
		if (ret < 0)
			return ret;
		buf += n;
		eoff += n;
		len -= n;
	}
	return 0;
}

static int vmdk_write_sparse(struct fmt_image *img, int ei, const uint8_t *buf, size_t len,
			     uint64_t eoff)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = &s->ext[ei];
	int ret;

	if (e->type == VMDK_COWD) {
		fmt_error("%s: writing to a vmfsSparse (COWD) extent is not supported", e->store->spec);
		return -ENOTSUP;
	}
	while (len) {
		uint64_t g = eoff / e->grain, in_grain = eoff % e->grain;
		size_t n = e->grain - in_grain;
		uint32_t gte;
		if (n > len)
			n = len;
		ret = vmdk_gte(e, g, &gte);
		if (ret < 0)
			return ret;
		if (((gte == 0 && !img->backing) || (gte == VMDK_GTE_ZEROED && e->zeroed_grain)) &&
		    is_all_zero(buf, n)) {
			ret = 0;    /* already reads as zeros */
		} else if (gte == 0 || (gte == VMDK_GTE_ZEROED && e->zeroed_grain)) {
			uint64_t sector = e->next_sector, gend = (sector * VMDK_SECTOR) + e->grain;
			if (sector + e->grain / VMDK_SECTOR > UINT32_MAX) {
				fmt_error("%s: extent file full (2 TiB)", e->store->spec);
				return -EFBIG;
			}
			if (n == e->grain) {
				ret = fmt_store_pwrite(e->store, buf, n, sector * VMDK_SECTOR);
			} else if (gte == 0 && img->backing) {
				/* copy the rest of the grain up from the parent */
				ret = fmt_image_read_backing(img, s->grain_buf, e->grain, e->start + g * e->grain);
				if (ret >= 0) {
					memcpy(s->grain_buf + in_grain, buf, n);
					ret = fmt_store_pwrite(e->store, s->grain_buf, e->grain, sector * VMDK_SECTOR);
				}
			} else {
				/* the rest of a new grain is a hole; make the file cover the whole grain */
				ret = fmt_store_pwrite(e->store, buf, n, sector * VMDK_SECTOR + in_grain);
				if (ret >= 0 && e->store->size < gend) {
					uint8_t zero[VMDK_SECTOR] = { 0 };
					ret = fmt_store_pwrite(e->store, zero, VMDK_SECTOR, gend - VMDK_SECTOR);
				}
			}
			if (ret < 0)
				return ret;
			e->next_sector += e->grain / VMDK_SECTOR;
			ret = vmdk_set_gte(e, g, sector);
		} else if ((uint64_t)gte < le64toh(e->header.grain_offset)) {
			fmt_error("%s: grain %" PRIu64 " points into the metadata (sector %u)", e->store->spec, g, gte);
			return -EINVAL;
		} else {
			ret = fmt_store_pwrite(e->store, buf, n, (uint64_t)gte * VMDK_SECTOR + in_grain);
		}
		if (ret < 0)
			return ret;
		buf += n;
		eoff += n;
		len -= n;
	}
	return 0;
}

static int vmdk_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct vmdk_state *s = img->priv;
	const uint8_t *p = buf;
	while (len) {
		int ei = vmdk_find_extent(s, off);
		struct vmdk_extent *e;
		size_t n;
		int ret;
		if (ei < 0) {
			fmt_error("%s: write at %" PRIu64 " is past the end of the disk", img->spec, off);
			return -EINVAL;
		}
		e = &s->ext[ei];
		n = e->start + e->length - off;
		if (n > len)
			n = len;
		switch (e->type) {
		case VMDK_FLAT:
			ret = fmt_store_pwrite(e->store, p, n, e->flat_offset + off - e->start);
			break;
		case VMDK_ZERO:
			fmt_error("%s: cannot write to a ZERO extent", img->spec);
			ret = -EINVAL;
			break;
		default:
			if (e->compressed) {
				ret = vmdk_write_stream(img, ei, p, n, off - e->start);
			} else {
				pthread_mutex_lock(&s->lock);
				ret = vmdk_write_sparse(img, ei, p, n, off - e->start);
				pthread_mutex_unlock(&s->lock);
			}
			break;
		}
		if (ret < 0)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* convert -c: whole grains (or the disk tail); only stream extents store them compressed,
 * other subformats write them plainly as qemu does */
static int vmdk_write_compressed(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct vmdk_state *s = img->priv;
	int ei = vmdk_find_extent(s, off);
	struct vmdk_extent *e;

	if (ei < 0)
		return vmdk_write(img, buf, len, off);
	e = &s->ext[ei];
	if (e->type == VMDK_SPARSE && e->compressed && len < e->grain && (off - e->start) % e->grain == 0 &&
	    off + len == img->virtual_size) {
		/* the tail: pad the grain with zeros */
		uint8_t *grain = calloc(1, e->grain);
		int ret;
		if (!grain)
			return -ENOMEM;
		memcpy(grain, buf, len);
		ret = vmdk_stream_put(img, ei, (off - e->start) / e->grain, grain, false);
		free(grain);
		return ret;
	}
	return vmdk_write(img, buf, len, off);
}

static int vmdk_flush_locked(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	int ret = 0;
	if (img->writable) {
		ret = vmdk_flush_pending(img);
		for (int i = 0; i < s->nr_ext && ret >= 0; i++)
			ret = vmdk_flush_gts(&s->ext[i]);
	}
	/* img->store is flushed by the generic layer; the extent files are ours */
	for (int i = 0; i < s->nr_ext && ret >= 0; i++)
		if (s->ext[i].store && s->ext[i].store != img->store)
			ret = fmt_store_flush(s->ext[i].store);
	return ret;
}

/* ---- block status ------------------------------------------------------------------------------ */

static int vmdk_block_status_locked(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
				    uint64_t *run)
{
	struct vmdk_state *s = img->priv;
	int ei = vmdk_find_extent(s, off);
	struct vmdk_extent *e;
	uint64_t end, eoff;
	unsigned first = 0;
	int ret;

	if (ei < 0) {
		*bits = FMT_BS_ZERO;
		*run = len;
		return 0;
	}
	e = &s->ext[ei];
	if (len > e->start + e->length - off)
		len = e->start + e->length - off;
	if (e->type == VMDK_FLAT || e->type == VMDK_ZERO) {
		*bits = e->type == VMDK_FLAT ? FMT_BS_DATA | FMT_BS_ALLOCATED : FMT_BS_ZERO | FMT_BS_ALLOCATED;
		*run = len;
		return 0;
	}
	eoff = off - e->start;
	end = eoff;
	while (end < eoff + len) {
		uint64_t g = end / e->grain;
		uint32_t gte;
		unsigned b;
		if (s->pend_ext == ei && s->pend_grain == g) {
			b = FMT_BS_DATA | FMT_BS_ALLOCATED;
		} else {
			ret = vmdk_gte(e, g, &gte);
			if (ret < 0)
				return ret;
			if (gte == 0)
				b = img->backing ? 0 : FMT_BS_ZERO;
			else if (gte == VMDK_GTE_ZEROED && e->zeroed_grain)
				b = FMT_BS_ZERO | FMT_BS_ALLOCATED;
			else
				b = FMT_BS_DATA | FMT_BS_ALLOCATED | (e->compressed ? FMT_BS_COMPRESSED : 0);
		}
		if (end == eoff)
			first = b;
		else if (b != first)
			break;
		end = (g + 1) * e->grain;
	}
	if (end > eoff + len)
		end = eoff + len;
	*bits = first;
	*run = end - eoff;
	return 0;
}

/* ---- info and check ------------------------------------------------------------------------------ */

static const char *vmdk_extent_format(const struct vmdk_extent *e)
{
	switch (e->type) {
	case VMDK_FLAT: return "FLAT";
	case VMDK_ZERO: return "ZERO";
	case VMDK_COWD: return "VMFSSPARSE";
	default: return "SPARSE";
	}
}

static int vmdk_info(struct fmt_image *img, void (*emit)(void *ctx, const char *key, const char *value),
		     void *ctx)
{
	struct vmdk_state *s = img->priv;
	char v[64], k[64];
	snprintf(v, sizeof(v), "%u", s->cid);
	emit(ctx, "cid", v);
	snprintf(v, sizeof(v), "%u", s->parent_cid);
	emit(ctx, "parent-cid", v);
	emit(ctx, "create-type", s->create_type);
	for (int i = 0; i < s->nr_ext; i++) {
		struct vmdk_extent *e = &s->ext[i];
		snprintf(k, sizeof(k), "extents.%d.filename", i);
		emit(ctx, k, e->filename);
		snprintf(k, sizeof(k), "extents.%d.format", i);
		emit(ctx, k, e->store == img->store ? "" : vmdk_extent_format(e));
		snprintf(k, sizeof(k), "extents.%d.virtual-size", i);
		snprintf(v, sizeof(v), "%" PRIu64, e->length);
		emit(ctx, k, v);
		if (e->grain) {
			snprintf(k, sizeof(k), "extents.%d.cluster-size", i);
			snprintf(v, sizeof(v), "%" PRIu64, e->grain);
			emit(ctx, k, v);
		}
		if (e->compressed) {
			snprintf(k, sizeof(k), "extents.%d.compressed", i);
			emit(ctx, k, "true");
		}
	}
	return 0;
}

/* as qemu's check: every allocated grain must lie inside its file; we also check GTs */
static int vmdk_check_locked(struct fmt_image *img, struct fmt_check_result *res)
{
	struct vmdk_state *s = img->priv;
	for (int i = 0; i < s->nr_ext; i++) {
		struct vmdk_extent *e = &s->ext[i];
		uint64_t grains, fsize;
		if (e->type != VMDK_SPARSE && e->type != VMDK_COWD)
			continue;
		fsize = e->store->size;
		grains = (e->length + e->grain - 1) / e->grain;
		res->total_clusters += grains;
		for (uint64_t g = 0; g < grains; g++) {
			uint32_t gte;
			int ret = vmdk_gte(e, g, &gte);
			if (ret < 0) {
				res->check_errors++;
				break;
			}
			if (gte == 0 || (gte == VMDK_GTE_ZEROED && e->zeroed_grain))
				continue;
			res->allocated_clusters++;
			if (e->compressed)
				res->compressed_clusters++;
			if ((uint64_t)gte * VMDK_SECTOR >= fsize)
				res->corruptions++;
		}
		if (e->store == img->store)
			res->image_end_offset = fsize;
	}
	return 0;
}

static int vmdk_read(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	struct vmdk_state *s = img->priv;
	pthread_mutex_lock(&s->lock);
	int ret = vmdk_read_locked(img, buf, len, off);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int vmdk_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
			     uint64_t *run)
{
	struct vmdk_state *s = img->priv;
	pthread_mutex_lock(&s->lock);
	int ret = vmdk_block_status_locked(img, off, len, bits, run);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int vmdk_flush(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	pthread_mutex_lock(&s->lock);
	int ret = vmdk_flush_locked(img);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int vmdk_check(struct fmt_image *img, struct fmt_check_result *res)
{
	struct vmdk_state *s = img->priv;
	pthread_mutex_lock(&s->lock);
	int ret = vmdk_check_locked(img, res);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* ---- create ------------------------------------------------------------------------------------- */

struct vmdk_create_params {
	const char *subformat;
	const char *adapter;
	const char *hwversion;
	const char *toolsversion;
	bool zeroed_grain;
	const char *backing;
	uint32_t parent_cid;
};

/* write a sparse extent file: header, (embedded descriptor), redundant GD + GTs, GD + GTs */
static int vmdk_create_sparse(const char *path, uint64_t size, bool compress, bool zeroed_grain,
			      const char *desc)
{
	struct vmdk4_header h;
	struct fmt_store *st = NULL;
	uint64_t grains, gt_size, gt_count, gd_sectors, sectors = size / VMDK_SECTOR;
	uint32_t *gd = NULL;
	int ret;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, VMDK4_MAGIC, 4);
	h.version = htole32(compress ? 3 : zeroed_grain ? 2 : 1);
	h.flags = htole32(VMDK4_FLAG_RGD | VMDK4_FLAG_NL_DETECT |
			  (compress ? VMDK4_FLAG_COMPRESS | VMDK4_FLAG_MARKER : 0) |
			  (zeroed_grain ? VMDK4_FLAG_ZERO_GRAIN : 0));
	h.compress_algorithm = htole16(compress ? VMDK4_COMPRESS_DEFLATE : 0);
	h.capacity = htole64(sectors);
	h.granularity = htole64(128);
	h.num_gtes_per_gt = htole32(512);
	grains = (sectors + 127) / 128;
	gt_size = (512 * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
	gt_count = (grains + 511) / 512;
	gd_sectors = (gt_count * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
	h.desc_offset = htole64(1);
	h.desc_size = htole64(VMDK_DESC_SECTORS);
	h.rgd_offset = htole64(1 + VMDK_DESC_SECTORS);
	h.gd_offset = htole64(1 + VMDK_DESC_SECTORS + gd_sectors + gt_size * gt_count);
	h.grain_offset = htole64((le64toh(h.gd_offset) + gd_sectors + gt_size * gt_count + 127) / 128 * 128);
	h.check_bytes[0] = 0xa;
	h.check_bytes[1] = 0x20;
	h.check_bytes[2] = 0xd;
	h.check_bytes[3] = 0xa;
	if (le64toh(h.grain_offset) > UINT32_MAX) {
		fmt_error("%s: image too large for a VMDK sparse extent", path);
		return -EFBIG;
	}
	ret = fmt_store_create(path, le64toh(h.grain_offset) * VMDK_SECTOR, &st);
	if (ret < 0)
		return ret;
	ret = fmt_store_pwrite(st, &h, sizeof(h), 0);
	if (ret < 0)
		goto out;
	if (desc) {
		ret = fmt_store_pwrite(st, desc, strlen(desc), VMDK_SECTOR);
		if (ret < 0)
			goto out;
	}
	gd = calloc(gd_sectors, VMDK_SECTOR);
	if (!gd) {
		ret = -ENOMEM;
		goto out;
	}
	for (int copy = 0; copy < 2; copy++) {
		uint64_t base = copy ? le64toh(h.gd_offset) : le64toh(h.rgd_offset);
		for (uint64_t i = 0; i < gt_count; i++)
			gd[i] = htole32(base + gd_sectors + i * gt_size);
		ret = fmt_store_pwrite(st, gd, gd_sectors * VMDK_SECTOR, base * VMDK_SECTOR);
		if (ret < 0)
			goto out;
	}
	/* the GTs are zero: the store was created at its full metadata size */
out:
	free(gd);
	fmt_store_close(st);
	return ret < 0 ? ret : 0;
}

static char *vmdk_make_desc(const struct vmdk_create_params *p, uint64_t size, const char *extents,
			    uint32_t cid)
{
	char *desc, parent[4200] = "";
	int heads = strcmp(p->adapter, "ide") ? 255 : 16;
	if (p->backing)
		snprintf(parent, sizeof(parent), "parentFileNameHint=\"%s\"\n", p->backing);
	if (asprintf(&desc,
		     "# Disk DescriptorFile\n"
		     "version=1\n"
		     "CID=%" PRIx32 "\n"
		     "parentCID=%" PRIx32 "\n"
		     "createType=\"%s\"\n"
		     "%s"
		     "\n"
		     "# Extent description\n"
		     "%s"
		     "\n"
		     "# The Disk Data Base\n"
		     "#DDB\n"
		     "\n"
		     "ddb.virtualHWVersion = \"%s\"\n"
		     "ddb.geometry.cylinders = \"%llu\"\n"
		     "ddb.geometry.heads = \"%d\"\n"
		     "ddb.geometry.sectors = \"63\"\n"
		     "ddb.adapterType = \"%s\"\n"
		     "ddb.toolsVersion = \"%s\"\n",
		     cid, p->backing ? p->parent_cid : 0xffffffffu, p->subformat, parent, extents,
		     p->hwversion, (unsigned long long)(size / (63ull * heads * VMDK_SECTOR)), heads, p->adapter,
		     p->toolsversion) < 0)
		return NULL;
	return desc;
}

static uint32_t vmdk_random_cid(void)
{
	uint32_t v = 0;
	FILE *f = fopen("/dev/urandom", "r");
	if (!f || fread(&v, 1, sizeof(v), f) != sizeof(v))
		v = (uint32_t)rand();
	if (f)
		fclose(f);
	return v;
}

/* "dir/name.ext" -> base "name.ext", stem "name" and extension ".ext" (may be empty): extent
 * files are named stem-s001.ext, stem-flat.ext as qemu names them */
static int vmdk_split_name(const char *spec, const char **base, char **stem, const char **ext)
{
	const char *slash = strrchr(spec, '/'), *dot;
	*base = slash ? slash + 1 : spec;
	dot = strrchr(*base, '.');
	*ext = dot ? dot : *base + strlen(*base);
	*stem = strndup(*base, *ext - *base);
	return *stem ? 0 : -ENOMEM;
}

static int vmdk_create(const char *spec, uint64_t size, const struct fmt_options *opts)
{
	struct vmdk_create_params p = { 0 };
	char *stem = NULL, *extents = NULL, *desc = NULL, *path = NULL;
	const char *base, *ext;
	bool compat6 = false, flat, split, stream;
	struct fmt_store *st = NULL;
	size_t ext_len = 0;
	uint32_t cid = vmdk_random_cid();
	int ret;

	static const char *const keys[] = { "subformat", "adapter_type", "hwversion", "toolsversion",
					    "compat6", "zeroed_grain", "backing_file", "backing_fmt" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		fmt_options_use(opts, keys[i]);
	p.subformat = fmt_options_get(opts, "subformat");
	if (!p.subformat)
		p.subformat = "monolithicSparse";
	if (strcmp(p.subformat, "monolithicSparse") && strcmp(p.subformat, "monolithicFlat") &&
	    strcmp(p.subformat, "twoGbMaxExtentSparse") && strcmp(p.subformat, "twoGbMaxExtentFlat") &&
	    strcmp(p.subformat, "streamOptimized")) {
		fmt_error("%s: invalid parameter value: %s", spec, p.subformat);
		return -EINVAL;
	}
	p.adapter = fmt_options_get(opts, "adapter_type");
	if (!p.adapter)
		p.adapter = "ide";
	if (strcmp(p.adapter, "ide") && strcmp(p.adapter, "lsilogic") && strcmp(p.adapter, "buslogic") &&
	    strcmp(p.adapter, "legacyESX")) {
		fmt_error("%s: invalid parameter value: %s", spec, p.adapter);
		return -EINVAL;
	}
	ret = fmt_options_get_bool(opts, "compat6", false, &compat6);
	if (ret < 0)
		return ret;
	ret = fmt_options_get_bool(opts, "zeroed_grain", false, &p.zeroed_grain);
	if (ret < 0)
		return ret;
	p.hwversion = fmt_options_get(opts, "hwversion");
	if (p.hwversion && compat6) {
		fmt_error("%s: compat6 cannot be enabled with hwversion set", spec);
		return -EINVAL;
	}
	if (!p.hwversion)
		p.hwversion = compat6 ? "6" : "4";
	for (const char *c = p.hwversion; *c; c++)
		if (!isdigit((unsigned char)*c) || c - p.hwversion > 8) {
			fmt_error("%s: invalid parameter value: %s", spec, p.hwversion);
			return -EINVAL;
		}
	p.toolsversion = fmt_options_get(opts, "toolsversion");
	if (!p.toolsversion)
		p.toolsversion = "2147483647";
	for (const char *c = p.toolsversion; *c; c++)
		if (!isdigit((unsigned char)*c) || c - p.toolsversion > 10) {
			fmt_error("%s: invalid parameter value: %s", spec, p.toolsversion);
			return -EINVAL;
		}
	flat = !strcmp(p.subformat, "monolithicFlat") || !strcmp(p.subformat, "twoGbMaxExtentFlat");
	split = !strncmp(p.subformat, "twoGb", 5);
	stream = !strcmp(p.subformat, "streamOptimized");
	p.backing = fmt_options_get(opts, "backing_file");
	if (p.backing) {
		const char *bfmt = fmt_options_get(opts, "backing_fmt");
		struct fmt_image *parent = NULL;
		char *ppath;
		if (flat) {
			fmt_error("%s: Flat image can't have backing file", spec);
			return -ENOTSUP;
		}
		if (bfmt && strcmp(bfmt, "vmdk")) {
			fmt_error("%s: backing_file must be a vmdk image (backing_fmt %s)", spec, bfmt);
			return -EINVAL;
		}
		ppath = fmt_store_sibling(spec, p.backing);
		if (!ppath)
			return -ENOMEM;
		ret = fmt_image_open(ppath, "vmdk", FMT_OPEN_NO_BACKING, NULL, &parent);
		free(ppath);
		if (ret < 0)
			return ret;
		if (parent->drv != &fmt_vmdk_driver) {
			fmt_image_close(parent);
			fmt_error("%s: backing_file must be a vmdk image", spec);
			return -EINVAL;
		}
		p.parent_cid = ((struct vmdk_state *)parent->priv)->cid;
		if (!size)
			size = parent->virtual_size;
		fmt_image_close(parent);
	}
	size = (size + VMDK_SECTOR - 1) & ~(uint64_t)(VMDK_SECTOR - 1);
	if (size / VMDK_SECTOR / 128 / 512 > VMDK_MAX_L1 && !flat) {
		fmt_error("%s: image size is too large for file format 'vmdk'", spec);
		return -EFBIG;
	}
	if (vmdk_split_name(spec, &base, &stem, &ext) < 0)
		return -ENOMEM;

	if (!split && !flat) {
		/* one file: header, embedded descriptor, tables */
		char line[4200];
		snprintf(line, sizeof(line), "RW %" PRIu64 " SPARSE \"%s\"\n", size / VMDK_SECTOR, base);
		desc = vmdk_make_desc(&p, size, line, cid);
		if (!desc) {
			ret = -ENOMEM;
			goto out;
		}
		if (strlen(desc) > VMDK_DESC_SECTORS * VMDK_SECTOR) {
			fmt_error("%s: descriptor too long", spec);
			ret = -EINVAL;
			goto out;
		}
		ret = vmdk_create_sparse(spec, size, stream, p.zeroed_grain, desc);
		goto out;
	}
	/* descriptor file plus extent files */
	{
		uint64_t left = size, chunk = split ? VMDK_SPLIT_SIZE : size;
		int idx = 1;
		do {
			uint64_t n = left < chunk ? left : chunk;
			char *name = NULL, *line = NULL, *grown;
			if (split)
				ret = asprintf(&name, "%s-%c%03d%s", stem, flat ? 'f' : 's', idx++, ext);
			else
				ret = asprintf(&name, "%s-flat%s", stem, ext);
			if (ret < 0) {
				ret = -ENOMEM;
				goto out;
			}
			ret = asprintf(&line, flat ? "RW %" PRIu64 " FLAT \"%s\" 0\n" : "RW %" PRIu64 " SPARSE \"%s\"\n",
				       n / VMDK_SECTOR, name);
			free(path);
			path = fmt_store_sibling(spec, name);
			free(name);
			if (ret < 0 || !path) {
				free(line);
				ret = -ENOMEM;
				goto out;
			}
			grown = realloc(extents, ext_len + strlen(line) + 1);
			if (!grown) {
				free(line);
				ret = -ENOMEM;
				goto out;
			}
			extents = grown;
			memcpy(extents + ext_len, line, strlen(line) + 1);
			ext_len += strlen(line);
			free(line);
			if (flat) {
				ret = fmt_store_create(path, n, NULL);
			} else {
				ret = vmdk_create_sparse(path, n, false, p.zeroed_grain, NULL);
			}
			if (ret < 0)
				goto out;
			left -= n;
		} while (left);
	}
	desc = vmdk_make_desc(&p, size, extents ? extents : "", cid);
	if (!desc) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fmt_store_create(spec, 0, &st);
	if (ret < 0)
		goto out;
	ret = fmt_store_pwrite(st, desc, strlen(desc), 0);
	fmt_store_close(st);
out:
	free(path);
	free(stem);
	free(extents);
	free(desc);
	return ret < 0 ? ret : 0;
}

const struct fmt_driver fmt_vmdk_driver = {
	.name = "vmdk",
	.flags = FMT_DRV_WRITE | FMT_DRV_CREATE | FMT_DRV_COMPRESS | FMT_DRV_THREADS,
	.probe = vmdk_probe,
	.open = vmdk_open,
	.read = vmdk_read,
	.write = vmdk_write,
	.write_compressed = vmdk_write_compressed,
	.block_status = vmdk_block_status,
	.create = vmdk_create,
	.info = vmdk_info,
	.check = vmdk_check,
	.flush = vmdk_flush,
	.close = vmdk_close,
};
