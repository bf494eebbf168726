/* qcow2_refcount.c: qcow2 refcounts: the refcount table and its blocks (loaded lazily, written
 * back on flush by qcow2_meta.c), 1..64-bit entries, and cluster allocation (first fit from a
 * hint; new refcount blocks describe themselves by sitting at the first cluster they cover).
 * Callers hold s->lock. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_state.h"

uint64_t qcow2_refblock_get(const struct qcow2_state *s, const uint8_t *rb, uint64_t i)
{
	switch (s->refcount_order) {
	case 6: return fmt_be64(rb + 8 * i);
	case 5: return fmt_be32(rb + 4 * i);
	case 4: return fmt_be16(rb + 2 * i);
	case 3: return rb[i];
	default: {
		uint32_t bits = 1u << s->refcount_order;
		uint64_t bit = i * bits;
		return (rb[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
	}
	}
}

void qcow2_refblock_set(const struct qcow2_state *s, uint8_t *rb, uint64_t i, uint64_t v)
{
	switch (s->refcount_order) {
	case 6: fmt_put64(rb + 8 * i, v); break;
	case 5: fmt_put32(rb + 4 * i, v); break;
	case 4: fmt_put16(rb + 2 * i, v); break;
	case 3: rb[i] = v; break;
	default: {
		uint32_t bits = 1u << s->refcount_order;
		uint64_t bit = i * bits;
		uint8_t mask = ((1u << bits) - 1) << (bit % 8);
		rb[bit / 8] = (rb[bit / 8] & ~mask) | ((v << (bit % 8)) & mask);
	}
	}
}

static uint64_t qcow2_refcount_max(const struct qcow2_state *s)
{
	return s->refcount_order == 6 ? UINT64_MAX : (1ull << (1u << s->refcount_order)) - 1;
}

/* Load the refcount table. bad == NULL: an invalid entry is an error (opening read/write);
 * otherwise invalid entries are counted in *bad and treated as absent (check). */
int qcow2_load_refcounts(struct qcow2_state *s, uint64_t *bad)
{
	size_t bytes = (size_t)s->rt_clusters << s->cluster_bits;
	int ret;

	s->rt = malloc(bytes);
	s->refblocks = calloc(s->rt_size, sizeof(*s->refblocks));
	s->refblock_dirty = calloc(s->rt_size, sizeof(*s->refblock_dirty));
	if (!s->rt || !s->refblocks || !s->refblock_dirty) {
		fmt_error("%s: out of memory for the refcount table", s->img->spec);
		return -ENOMEM;
	}
	ret = fmt_store_pread(s->img->store, s->rt, bytes, s->rt_offset);
	if (ret < 0)
		return ret;
	for (uint64_t i = 0; i < s->rt_size; i++) {
		uint64_t e = be64toh(s->rt[i]);
		s->rt[i] = e;
		if (!e)
			continue;
		if ((e & 511) || (e & (s->cluster_size - 1)) || e >= s->file_size) {
			if (!bad) {
				fmt_error("%s: refcount block %" PRIu64 " offset %#" PRIx64 " invalid", s->img->spec, i, e);
				return -EIO;
			}
			(*bad)++;
			s->rt[i] = 0;
		}
	}
	s->free_hint = 0;
	return 0;
}

/* drop the in-memory refcount table and blocks (unwritten changes are lost) */
void qcow2_free_refcounts(struct qcow2_state *s)
{
	if (s->refblocks)
		for (uint64_t i = 0; i < s->rt_size; i++)
			free(s->refblocks[i]);
	free(s->refblocks);
	free(s->refblock_dirty);
	free(s->rt);
	s->refblocks = NULL;
	s->refblock_dirty = NULL;
	s->rt = NULL;
}

/* the refblock for table index idx, NULL if none allocated */
static int qcow2_refblock(struct qcow2_state *s, uint64_t idx, uint8_t **rb)
{
	*rb = NULL;
	if (idx >= s->rt_size || !s->rt[idx])
		return 0;
	if (!s->refblocks[idx]) {
		uint8_t *b = malloc(s->cluster_size);
		if (!b) {
			fmt_error("%s: out of memory for refcount blocks", s->img->spec);
			return -ENOMEM;
		}
		int ret = fmt_store_pread(s->img->store, b, s->cluster_size, s->rt[idx]);
		if (ret < 0) {
			free(b);
			return ret;
		}
		s->refblocks[idx] = b;
	}
	*rb = s->refblocks[idx];
	return 0;
}

int qcow2_refcount_get(struct qcow2_state *s, uint64_t cluster, uint64_t *ref)
{
	uint8_t *rb;
	int ret = qcow2_refblock(s, cluster / s->refs_per_block, &rb);
	*ref = 0;
	if (ret < 0)
		return ret;
	if (rb)
		*ref = qcow2_refblock_get(s, rb, cluster % s->refs_per_block);
	return 0;
}

static int qcow2_grow_refcount_table(struct qcow2_state *s, uint64_t min_entries);

static bool qcow2_refblock_missing(const struct qcow2_state *s, uint64_t idx)
{
	return idx >= s->rt_size || !s->rt[idx];
}

int qcow2_refcount_add(struct qcow2_state *s, uint64_t cluster, int64_t delta)
{
	uint64_t idx = cluster / s->refs_per_block;
	uint8_t *rb;
	int ret;

	ret = qcow2_refblock(s, idx, &rb);
	if (ret < 0)
		return ret;
	if (!rb) {
		fmt_error("%s: no refcount block for cluster %" PRIu64 " (image corrupt)", s->img->spec, cluster);
		return -EIO;
	}
	uint64_t i = cluster % s->refs_per_block;
	uint64_t v = qcow2_refblock_get(s, rb, i);
	if ((delta < 0 && v < (uint64_t)-delta) || (delta > 0 && qcow2_refcount_max(s) - v < (uint64_t)delta)) {
		fmt_error("%s: refcount of cluster %" PRIu64 " out of range (%" PRIu64 " %+" PRId64 ")", s->img->spec,
			  cluster, v, delta);
		return -EIO;
	}
	v += delta;
	qcow2_refblock_set(s, rb, i, v);
	s->refblock_dirty[idx] = true;
	if (!v && cluster < s->free_hint)
		s->free_hint = cluster;
	return 0;
}

/* refblocks missing for the clusters [start, end) */
static uint64_t qcow2_missing_refblocks(const struct qcow2_state *s, uint64_t start, uint64_t end)
{
	uint64_t m = 0;
	for (uint64_t idx = start / s->refs_per_block; idx <= (end - 1) / s->refs_per_block; idx++)
		m += qcow2_refblock_missing(s, idx);
	return m;
}

/* Claim exactly [start, start+n). Refblocks that do not exist yet are placed right after the
 * run (and count themselves). 0 = claimed, 1 = not free, 2 = the refcount table grew: retry. */
static int qcow2_claim_clusters(struct qcow2_state *s, uint64_t start, uint64_t n)
{
	uint64_t m = 0, m2, ref;
	int ret;

	while ((m2 = qcow2_missing_refblocks(s, start, start + n + m)) != m)
		m = m2;
	for (uint64_t c = start; c < start + n + m; c++) {
		ret = qcow2_refcount_get(s, c, &ref);
		if (ret < 0)
			return ret;
		if (ref)
			return 1;
	}
	uint64_t last_idx = (start + n + m - 1) / s->refs_per_block;
	if (last_idx >= s->rt_size) {
		ret = qcow2_grow_refcount_table(s, last_idx + 1);
		return ret < 0 ? ret : 2;
	}
	/* new refblocks, then every refcount of the run and of the new blocks */
	uint64_t place = start + n;
	for (uint64_t idx = start / s->refs_per_block; idx <= last_idx; idx++) {
		if (!qcow2_refblock_missing(s, idx))
			continue;
		uint8_t *b = calloc(1, s->cluster_size);
		if (!b) {
			fmt_error("%s: out of memory for refcount blocks", s->img->spec);
			return -ENOMEM;
		}
		s->rt[idx] = place++ << s->cluster_bits;
		s->refblocks[idx] = b;
		s->refblock_dirty[idx] = true;
		s->rt_dirty = true;
	}
	for (uint64_t c = start; c < start + n + m; c++) {
		ret = qcow2_refcount_add(s, c, 1);
		if (ret < 0)
			return ret;
	}
	if ((start + n + m) << s->cluster_bits > s->file_size)
		s->file_size = (start + n + m) << s->cluster_bits;
	return 0;
}

/* n contiguous free clusters, refcount set to 1; returns the host offset */
int64_t qcow2_alloc_clusters(struct qcow2_state *s, uint64_t n)
{
	uint64_t c = s->free_hint;
	bool from_hint = true;

	for (;;) {
		uint64_t run = 0, ref;
		int ret;

		while (run < n) {
			ret = qcow2_refcount_get(s, c + run, &ref);
			if (ret < 0)
				return ret;
			if (ref) {
				c += run + 1;
				run = 0;
				if (from_hint)
					s->free_hint = c;
			} else {
				run++;
			}
			if (c + run > (1ull << (56 - s->cluster_bits))) {
				fmt_error("%s: image file would exceed the qcow2 offset limit", s->img->spec);
				return -EFBIG;
			}
		}
		ret = qcow2_claim_clusters(s, c, n);
		if (ret < 0)
			return ret;
		if (ret == 0) {
			if (c == s->free_hint)
				s->free_hint = c + n;
			return (int64_t)(c << s->cluster_bits);
		}
		if (ret == 1) {   /* the blocks after the run are taken: look further */
			c++;
			from_hint = false;
		}
	}
}

static int qcow2_grow_refcount_table(struct qcow2_state *s, uint64_t min_entries)
{
	uint64_t end_cluster = (s->file_size + s->cluster_size - 1) >> s->cluster_bits;
	uint64_t want = min_entries > s->rt_size * 2 ? min_entries : s->rt_size * 2;
	uint64_t new_clusters, old_off = s->rt_offset, old_clusters = s->rt_clusters;
	int64_t off;

	/* the new table (placed at the end at worst) and its refblocks must lie inside what it covers */
	for (;;) {
		new_clusters = (want * 8 + s->cluster_size - 1) >> s->cluster_bits;
		uint64_t need = (end_cluster + new_clusters + 64) / s->refs_per_block + 2;
		if (want >= need)
			break;
		want = need;
	}
	want = ((uint64_t)new_clusters << s->cluster_bits) / 8;
	if ((new_clusters << s->cluster_bits) > QCOW2_MAX_RT_BYTES) {
		fmt_error("%s: Reference count table too large", s->img->spec);
		return -EFBIG;
	}
	uint64_t *rt = realloc(s->rt, want * 8);
	uint8_t **rbs = rt ? realloc(s->refblocks, want * sizeof(*rbs)) : NULL;
	if (rt)
		s->rt = rt;
	if (rbs)
		s->refblocks = rbs;
	bool *dirty = rbs ? realloc(s->refblock_dirty, want * sizeof(*dirty)) : NULL;
	if (!dirty) {
		fmt_error("%s: out of memory for the refcount table", s->img->spec);
		return -ENOMEM;
	}
	s->refblock_dirty = dirty;
	memset(s->rt + s->rt_size, 0, (want - s->rt_size) * 8);
	memset(s->refblocks + s->rt_size, 0, (want - s->rt_size) * sizeof(*rbs));
	memset(s->refblock_dirty + s->rt_size, 0, (want - s->rt_size) * sizeof(*dirty));
	s->rt_size = want;
	off = qcow2_alloc_clusters(s, new_clusters);
	if (off < 0)
		return (int)off;
	s->rt_offset = off;
	s->rt_clusters = new_clusters;
	s->rt_dirty = true;
	s->header_dirty = true;
	for (uint64_t i = 0; i < old_clusters; i++) {
		int ret = qcow2_refcount_add(s, (old_off >> s->cluster_bits) + i, -1);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* byte-granular space for compressed data: continue in the current cluster when it fits */
int64_t qcow2_alloc_bytes(struct qcow2_state *s, uint64_t len)
{
	uint64_t ref;
	int ret;

	if (s->comp_next & (s->cluster_size - 1)) {
		uint64_t c = s->comp_next >> s->cluster_bits;
		uint64_t rem = s->cluster_size - (s->comp_next & (s->cluster_size - 1));
		ret = qcow2_refcount_get(s, c, &ref);
		if (ret < 0)
			return ret;
		if (ref >= 1 && ref < qcow2_refcount_max(s)) {
			if (len > rem) {
				uint64_t extra = (len - rem + s->cluster_size - 1) >> s->cluster_bits;
				ret = qcow2_claim_clusters(s, c + 1, extra);
				if (ret < 0)
					return ret;
			} else {
				ret = 0;
			}
			if (ret == 0) {
				ret = qcow2_refcount_add(s, c, 1);
				if (ret < 0)
					return ret;
				int64_t at = s->comp_next;
				s->comp_next += len;
				return at;
			}
		}
	}
	int64_t at = qcow2_alloc_clusters(s, (len + s->cluster_size - 1) >> s->cluster_bits);
	if (at < 0)
		return at;
	s->comp_next = at + len;
	return at;
}
