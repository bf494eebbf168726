/* qed.c: QED images, read only (backing file followed; zero clusters; NEED_CHECK ignored).
 *
 * Layout (little-endian): a header in cluster 0, an L1 table of table_size clusters of u64
 * offsets, L2 tables of the same size; data cluster offsets are cluster-aligned, 1 means a zero
 * cluster, 0 unallocated (backing file or zeros). The L1 is read at open; L2 tables go through a
 * small direct-mapped cache (tables over 4 MiB are read entry by entry instead).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

#define QED_MAGIC             0x00444551u   /* "QED\0" */
#define QED_F_BACKING_FILE    0x1
#define QED_F_NEED_CHECK      0x2
#define QED_F_BACKING_NO_PROBE 0x4
#define QED_FEATURES          (QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_NO_PROBE)
#define QED_MIN_CLUSTER       (4u << 10)
#define QED_MAX_CLUSTER       (64u << 20)
#define QED_MAX_TABLE         16u
#define QED_CLUSTER_ZERO      1
#define QED_CACHE             16
#define QED_CACHE_MAX_TABLE   (4u << 20)
#define QED_MAX_L1_BYTES      (64u << 20)

struct qed_header {
	uint32_t magic;
	uint32_t cluster_size;
	uint32_t table_size;
	uint32_t header_size;
	uint64_t features;
	uint64_t compat_features;
	uint64_t autoclear_features;
	uint64_t l1_table_offset;
	uint64_t image_size;
	uint32_t backing_filename_offset;
	uint32_t backing_filename_size;
} __attribute__((packed));

struct qed_state {
	uint64_t l1_offset;
	uint32_t header_clusters;
	uint32_t cluster_size;
	uint32_t cluster_bits;
	uint64_t table_bytes;
	uint64_t entries;        /* per table */
	uint64_t *l1;            /* host order */
	struct {
		uint64_t l1_index;   /* UINT64_MAX = empty */
		uint64_t *table;
	} cache[QED_CACHE];
};

static int qed_probe(const uint8_t *buf, size_t len, const char *spec)
{
	return len >= 4 && !memcmp(buf, "QED\0", 4) ? 100 : 0;
}

static bool qed_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static void qed_close(struct fmt_image *img)
{
	struct qed_state *s = img->priv;
	if (!s)
		return;
	for (int i = 0; i < QED_CACHE; i++)
		free(s->cache[i].table);
	free(s->l1);
	free(s);
	img->priv = NULL;
}

/* a table or data offset must be cluster-aligned and inside the file */
static bool qed_offset_ok(struct fmt_image *img, struct qed_state *s, uint64_t off, uint64_t len)
{
	return off && !(off & (s->cluster_size - 1)) && off <= img->store->size &&
	       len <= img->store->size - off;
}

static int qed_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct qed_header h;
	struct qed_state *s;
	uint64_t features, max_size;
	int ret;

	ret = fmt_image_read_header(img, &h, sizeof(h), "QED");
	if (ret < 0)
		return ret;
	if (le32toh(h.magic) != QED_MAGIC) {
		fmt_error("%s: Image not in QED format", img->spec);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	img->priv = s;
	for (int i = 0; i < QED_CACHE; i++)
		s->cache[i].l1_index = UINT64_MAX;
	ret = -EINVAL;
	features = le64toh(h.features);
	if (features & ~(uint64_t)QED_FEATURES) {
		fmt_error("%s: Unsupported QED features: %" PRIx64, img->spec, features & ~(uint64_t)QED_FEATURES);
		ret = -ENOTSUP;
		goto fail;
	}
	s->cluster_size = le32toh(h.cluster_size);
	if (!qed_pow2(s->cluster_size) || s->cluster_size < QED_MIN_CLUSTER || s->cluster_size > QED_MAX_CLUSTER) {
		fmt_error("%s: QED cluster size is invalid", img->spec);
		goto fail;
	}
	s->cluster_bits = __builtin_ctz(s->cluster_size);
	if (!qed_pow2(le32toh(h.table_size)) || le32toh(h.table_size) > QED_MAX_TABLE) {
		fmt_error("%s: QED table size is invalid", img->spec);
		goto fail;
	}
	s->table_bytes = (uint64_t)le32toh(h.table_size) * s->cluster_size;
	s->entries = s->table_bytes / 8;
	max_size = s->entries * s->entries * s->cluster_size;
	img->virtual_size = le64toh(h.image_size);
	if (img->virtual_size % 512 || img->virtual_size > max_size) {
		fmt_error("%s: QED image size is invalid", img->spec);
		goto fail;
	}
	if (le32toh(h.header_size) == 0 || le32toh(h.header_size) > 0x7fffffffu / s->cluster_size) {
		fmt_error("%s: QED header size is too large", img->spec);
		goto fail;
	}
	if (!qed_offset_ok(img, s, le64toh(h.l1_table_offset), s->table_bytes)) {
		fmt_error("%s: QED table offset is invalid", img->spec);
		goto fail;
	}
	if (s->table_bytes > QED_MAX_L1_BYTES) {
		fmt_error("%s: QED tables of %" PRIu64 " bytes are too large", img->spec, s->table_bytes);
		ret = -EFBIG;
		goto fail;
	}
	s->l1_offset = le64toh(h.l1_table_offset);
	s->header_clusters = le32toh(h.header_size);
	s->l1 = malloc(s->table_bytes);
	if (!s->l1) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, s->l1, s->table_bytes, le64toh(h.l1_table_offset));
	if (ret < 0)
		goto fail;
	for (uint64_t i = 0; i < s->entries; i++)
		s->l1[i] = le64toh(s->l1[i]);
	if (features & QED_F_BACKING_FILE) {
		uint32_t off = le32toh(h.backing_filename_offset), len = le32toh(h.backing_filename_size);
		uint64_t hdr = (uint64_t)le32toh(h.header_size) * s->cluster_size;
		if (len == 0 || len > 1023 || off > hdr || len > hdr - off || (uint64_t)off + len > img->store->size) {
			fmt_error("%s: QED backing filename offset is invalid", img->spec);
			ret = -EINVAL;
			goto fail;
		}
		img->backing_spec = calloc(1, len + 1);
		if (!img->backing_spec) {
			ret = -ENOMEM;
			goto fail;
		}
		ret = fmt_store_pread(img->store, img->backing_spec, len, off);
		if (ret < 0)
			goto fail;
		if (features & QED_F_BACKING_NO_PROBE)
			img->backing_fmt = strdup("raw");
	}
	img->cluster_size = s->cluster_size;
	return 0;
fail:
	qed_close(img);
	return ret;
}

/* the data offset of the cluster holding off: 0 unallocated, 1 zero, else a checked offset */
static int qed_lookup(struct fmt_image *img, uint64_t off, uint64_t *out)
{
	struct qed_state *s = img->priv;
	uint64_t cl = off >> s->cluster_bits, l1i = cl / s->entries, l2i = cl % s->entries, l2, v;
	int ret;

	if (l1i >= s->entries) {
		*out = 0;
		return 0;
	}
	l2 = s->l1[l1i];
	if (!l2) {
		*out = 0;
		return 0;
	}
	if (!qed_offset_ok(img, s, l2, s->table_bytes)) {
		fmt_error("%s: L2 table offset %" PRIu64 " is invalid", img->spec, l2);
		return -EIO;
	}
	if (s->table_bytes > QED_CACHE_MAX_TABLE) {
		ret = fmt_store_pread(img->store, &v, 8, l2 + l2i * 8);
		if (ret < 0)
			return ret;
		v = le64toh(v);
	} else {
		int slot = l1i % QED_CACHE;
		if (s->cache[slot].l1_index != l1i) {
			if (!s->cache[slot].table) {
				s->cache[slot].table = malloc(s->table_bytes);
				if (!s->cache[slot].table)
					return -ENOMEM;
			}
			s->cache[slot].l1_index = UINT64_MAX;
			ret = fmt_store_pread(img->store, s->cache[slot].table, s->table_bytes, l2);
			if (ret < 0)
				return ret;
			for (uint64_t i = 0; i < s->entries; i++)
				s->cache[slot].table[i] = le64toh(s->cache[slot].table[i]);
			s->cache[slot].l1_index = l1i;
		}
		v = s->cache[slot].table[l2i];
	}
	if (v > QED_CLUSTER_ZERO && !qed_offset_ok(img, s, v, 1)) {
		fmt_error("%s: data cluster offset %" PRIu64 " for disk offset %" PRIu64 " is invalid",
			  img->spec, v, off);
		return -EIO;
	}
	*out = v;
	return 0;
}

/* the cluster holding off: data, a zero cluster, or unallocated (the backing file's or zeros) */
static int qed_map(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *host,
		   uint64_t *n)
{
	struct qed_state *s = img->priv;
	uint64_t in = off & (s->cluster_size - 1), cl;
	int ret = qed_lookup(img, off, &cl);

	if (ret < 0)
		return ret;
	*n = s->cluster_size - in;
	if (cl == 0)
		*bits = img->backing ? 0 : FMT_BS_ZERO;
	else if (cl == QED_CLUSTER_ZERO)
		*bits = FMT_BS_ZERO | FMT_BS_ALLOCATED;
	else
		*bits = FMT_BS_DATA | FMT_BS_ALLOCATED;
	*host = cl + in;
	return 0;
}

/* mark clusters [first, first+n) used; a cluster used twice is a corruption */
static void qed_mark(uint8_t *used, uint64_t nclusters, uint64_t first, uint64_t n,
		     struct fmt_check_result *res)
{
	for (uint64_t c = first; c < first + n && c < nclusters; c++) {
		if (used[c / 8] & (1 << (c % 8)))
			res->corruptions++;
		used[c / 8] |= 1 << (c % 8);
	}
}

/* like qemu's qed check: tables and data clusters inside the file and aligned, no cluster used
 * twice; clusters of the file nothing points at are leaks */
static int qed_check(struct fmt_image *img, struct fmt_check_result *res)
{
	struct qed_state *s = img->priv;
	uint64_t nclusters = (img->store->size + s->cluster_size - 1) / s->cluster_size;
	uint64_t tclusters = s->table_bytes / s->cluster_size;
	uint64_t *l2 = malloc(s->table_bytes), prev = 0;
	uint8_t *used = calloc(nclusters / 8 + 1, 1);
	int ret = 0;

	if (!l2 || !used) {
		ret = -ENOMEM;
		goto out;
	}
	res->total_clusters = (img->virtual_size + s->cluster_size - 1) / s->cluster_size;
	qed_mark(used, nclusters, 0, s->header_clusters, res);
	qed_mark(used, nclusters, s->l1_offset / s->cluster_size, tclusters, res);
	for (uint64_t i = 0; i < s->entries; i++) {
		if (!s->l1[i])
			continue;
		if (!qed_offset_ok(img, s, s->l1[i], s->table_bytes)) {
			res->corruptions++;
			continue;
		}
		qed_mark(used, nclusters, s->l1[i] / s->cluster_size, tclusters, res);
		ret = fmt_store_pread(img->store, l2, s->table_bytes, s->l1[i]);
		if (ret < 0) {
			res->check_errors++;
			goto out;
		}
		for (uint64_t j = 0; j < s->entries; j++) {
			uint64_t v = le64toh(l2[j]);
			if (v <= QED_CLUSTER_ZERO)
				continue;
			if (!qed_offset_ok(img, s, v, 1)) {
				res->corruptions++;
				continue;
			}
			res->allocated_clusters++;
			if (prev && v != prev + s->cluster_size)
				res->fragmented_clusters++;
			prev = v;
			qed_mark(used, nclusters, v / s->cluster_size, 1, res);
		}
	}
	for (uint64_t c = 0; c < nclusters; c++)
		if (!(used[c / 8] & (1 << (c % 8))))
			res->leaks++;
	res->image_end_offset = img->store->size;
out:
	free(l2);
	free(used);
	return ret;
}

const struct fmt_driver fmt_qed_driver = {
	.name = "qed",
	.probe = qed_probe,
	.open = qed_open,
	.map = qed_map,
	.check = qed_check,
	.close = qed_close,
};
