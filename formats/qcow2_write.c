/* qcow2_write.c: qcow2 writes: refcount blocks and table (loaded lazily, written back on flush),
 * cluster allocation (first fit from a hint; new refcount blocks describe themselves by sitting
 * at the first cluster they cover), copy-on-write of shared or compressed clusters and shared L2
 * tables, compressed cluster writes packed at byte granularity, and flush.
 * Invariant after flush: every cluster's refcount equals its references, so qemu-img check is
 * clean. Writes hold s->lock throughout; compression runs outside it. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

/* ---- refcounts ------------------------------------------------------------------------------ */

uint64_t qcow2_refblock_get(const struct qcow2_state *s, const uint8_t *rb, uint64_t i)
{
	switch (s->refcount_order) {
	case 6: return qcow2_be64(rb + 8 * i);
	case 5: return qcow2_be32(rb + 4 * i);
	case 4: return qcow2_be16(rb + 2 * i);
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
	case 6: qcow2_put64(rb + 8 * i, v); break;
	case 5: qcow2_put32(rb + 4 * i, v); break;
	case 4: qcow2_put16(rb + 2 * i, v); break;
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

/* ---- L1/L2 for writing ------------------------------------------------------------------------ */

/* the cache slot for a new L2 table at off: a copy of copy_from, or empty; dirty */
static int qcow2_l2_new(struct qcow2_state *s, uint64_t off, const uint64_t *copy_from, uint64_t **table)
{
	uint64_t *t;
	int ret = qcow2_l2_claim(s, off, &t);

	if (ret < 0)
		return ret;
	/* if copy_from's own slot was the one claimed, t is copy_from with its contents intact */
	if (!copy_from)
		memset(t, 0, s->cluster_size);
	else if (t != copy_from)
		memcpy(t, copy_from, s->cluster_size);
	qcow2_l2_slot_of(s, t)->dirty = true;
	*table = t;
	return 0;
}

/* the L2 table for l1_index, allocated or copied so that it is ours alone */
static int qcow2_l2_for_write(struct qcow2_state *s, uint64_t l1_index, uint64_t **table)
{
	uint64_t l2_off = s->l1[l1_index] & QCOW2_OFFSET_MASK, ref;
	int64_t n;
	int ret;

	if (l2_off) {
		if (l2_off & (s->cluster_size - 1)) {
			fmt_error("%s: L2 table offset %#" PRIx64 " unaligned", s->img->spec, l2_off);
			return -EIO;
		}
		ret = qcow2_refcount_get(s, l2_off >> s->cluster_bits, &ref);
		if (ret < 0)
			return ret;
		if (ref == 1) {
			ret = qcow2_l2_load(s, l2_off, table);
			if (ret >= 0 && !(s->l1[l1_index] & QCOW2_OFLAG_COPIED)) {
				s->l1[l1_index] |= QCOW2_OFLAG_COPIED;
				s->l1_dirty = true;
			}
			return ret;
		}
		if (ref == 0) {
			fmt_error("%s: L2 table at %#" PRIx64 " has refcount 0 (image corrupt)", s->img->spec, l2_off);
			return -EIO;
		}
	}
	n = qcow2_alloc_clusters(s, 1);
	if (n < 0)
		return (int)n;
	if (l2_off) {
		uint64_t *old;
		ret = qcow2_l2_load(s, l2_off, &old);
		if (ret < 0)
			return ret;
		ret = qcow2_l2_new(s, n, old, table);
		if (ret >= 0)
			ret = qcow2_refcount_add(s, l2_off >> s->cluster_bits, -1);
	} else {
		ret = qcow2_l2_new(s, n, NULL, table);
	}
	if (ret < 0)
		return ret;
	s->l1[l1_index] = (uint64_t)n | QCOW2_OFLAG_COPIED;
	s->l1_dirty = true;
	return 0;
}

/* drop the references an L2 entry held */
static int qcow2_release_entry(struct qcow2_state *s, uint64_t entry)
{
	if (entry & QCOW2_OFLAG_COMPRESSED) {
		uint64_t coff = entry & s->coffset_mask;
		uint64_t nsect = ((entry >> s->csize_shift) & s->csize_mask) + 1;
		uint64_t first = (coff & ~511ull) >> s->cluster_bits;
		uint64_t last = ((coff & ~511ull) + nsect * 512 - 1) >> s->cluster_bits;
		for (uint64_t c = first; c <= last; c++) {
			int ret = qcow2_refcount_add(s, c, -1);
			if (ret < 0)
				return ret;
		}
		return 0;
	}
	uint64_t off = entry & QCOW2_OFFSET_MASK;
	return off ? qcow2_refcount_add(s, off >> s->cluster_bits, -1) : 0;
}

/* the current contents of one guest cluster (for read-modify-write), lock held */
static int qcow2_cluster_contents(struct qcow2_state *s, uint64_t entry, uint64_t guest, uint8_t *buf)
{
	uint64_t off = entry & QCOW2_OFFSET_MASK;
	int ret;

	if (entry & QCOW2_OFLAG_COMPRESSED)
		return qcow2_read_compressed(s, entry, buf);
	if ((entry & QCOW2_OFLAG_ZERO) && s->version >= 3) {
		memset(buf, 0, s->cluster_size);
		return 0;
	}
	if (off) {
		ret = fmt_store_pread(s->img->store, buf, s->cluster_size, off);
		if (ret >= 0 && s->cipher)
			ret = fmt_cipher_crypt(s->cipher, false, buf, s->cluster_size,
					       (s->crypt_method == QCOW2_CRYPT_AES ? guest : off) >> 9);
		return ret < 0 ? ret : 0;
	}
	return fmt_image_read_backing(s->img, buf, s->cluster_size, guest);
}

static int qcow2_pwrite_data(struct qcow2_state *s, const uint8_t *buf, size_t len, uint64_t host, uint64_t guest,
			     uint8_t **bounce, size_t *bounce_len)
{
	int ret;

	if (s->cipher) {
		if (*bounce_len < len) {
			uint8_t *b = realloc(*bounce, len);
			if (!b) {
				fmt_error("%s: out of memory", s->img->spec);
				return -ENOMEM;
			}
			*bounce = b;
			*bounce_len = len;
		}
		memcpy(*bounce, buf, len);
		ret = fmt_cipher_crypt(s->cipher, true, *bounce, len,
				       (s->crypt_method == QCOW2_CRYPT_AES ? guest : host) >> 9);
		if (ret < 0)
			return ret;
		buf = *bounce;
	}
	ret = fmt_store_pwrite(s->img->store, buf, len, host);
	if (ret < 0)
		return ret;
	qcow2_note_write(s, host + len);
	return 0;
}

/* may this entry be overwritten in place? */
static int qcow2_in_place(struct qcow2_state *s, uint64_t entry, bool *yes)
{
	uint64_t off = entry & QCOW2_OFFSET_MASK, ref;
	int ret;

	*yes = false;
	if (!off || (entry & QCOW2_OFLAG_COMPRESSED) || ((entry & QCOW2_OFLAG_ZERO) && s->version >= 3))
		return 0;
	if (off & (s->cluster_size - 1)) {
		fmt_error("%s: data cluster offset %#" PRIx64 " unaligned", s->img->spec, off);
		return -EIO;
	}
	ret = qcow2_refcount_get(s, off >> s->cluster_bits, &ref);
	if (ret < 0)
		return ret;
	*yes = ref == 1;
	return 0;
}

static int qcow2_write_locked(struct qcow2_state *s, const uint8_t *buf, size_t len, uint64_t off)
{
	uint8_t *merge = NULL, *bounce = NULL;
	size_t bounce_len = 0;
	int ret = 0;

	while (len) {
		uint64_t cluster = off >> s->cluster_bits;
		uint64_t l1_index = cluster >> s->l2_bits;
		uint64_t idx = cluster & (s->l2_entries - 1);
		uint64_t in = off & (s->cluster_size - 1);
		uint64_t *table;
		bool inplace;

		if (l1_index >= s->l1_size) {
			fmt_error("%s: write at %" PRIu64 " beyond the L1 table", s->img->spec, off);
			ret = -EINVAL;
			goto out;
		}
		/* the L2 table first (as qemu lays files out), then the data; table stays valid
		 * meanwhile: allocating and writing data load no other L2 table */
		ret = qcow2_l2_for_write(s, l1_index, &table);
		if (ret < 0)
			goto out;
		uint64_t entry = be64toh(table[idx]);
		ret = qcow2_in_place(s, entry, &inplace);
		if (ret < 0)
			goto out;
		bool partial = in || len < s->cluster_size;

		if (inplace && !(partial && s->cipher)) {
			/* run of in-place clusters with contiguous host offsets */
			uint64_t host = (entry & QCOW2_OFFSET_MASK) + in;
			uint64_t n = s->cluster_size - in < len ? s->cluster_size - in : len;
			while (n < len && idx + 1 < s->l2_entries && len - n >= s->cluster_size) {
				uint64_t e2 = be64toh(table[idx + 1]);
				bool ip2;
				if ((e2 & QCOW2_OFFSET_MASK) != (entry & QCOW2_OFFSET_MASK) + s->cluster_size)
					break;
				ret = qcow2_in_place(s, e2, &ip2);
				if (ret < 0)
					goto out;
				if (!ip2)
					break;
				entry = e2;
				idx++;
				n += s->cluster_size;
			}
			ret = qcow2_pwrite_data(s, buf, n, host, off, &bounce, &bounce_len);
			if (ret < 0)
				goto out;
			buf += n;
			off += n;
			len -= n;
			continue;
		}

		if (partial) {
			/* read-modify-write of one cluster */
			uint64_t n = s->cluster_size - in < len ? s->cluster_size - in : len;
			uint64_t guest = off - in;
			int64_t host;
			if (!merge && !(merge = malloc(s->cluster_size))) {
				ret = -ENOMEM;
				fmt_error("%s: out of memory", s->img->spec);
				goto out;
			}
			ret = qcow2_cluster_contents(s, entry, guest, merge);
			if (ret < 0)
				goto out;
			memcpy(merge + in, buf, n);
			if (inplace) {
				host = entry & QCOW2_OFFSET_MASK;
			} else {
				host = qcow2_alloc_clusters(s, 1);
				if (host < 0) {
					ret = (int)host;
					goto out;
				}
			}
			ret = qcow2_pwrite_data(s, merge, s->cluster_size, host, guest, &bounce, &bounce_len);
			if (ret < 0)
				goto out;
			if (!inplace) {
				table[idx] = htobe64((uint64_t)host | QCOW2_OFLAG_COPIED);
				qcow2_l2_slot_of(s, table)->dirty = true;
				ret = qcow2_release_entry(s, entry);
				if (ret < 0)
					goto out;
			}
			buf += n;
			off += n;
			len -= n;
			continue;
		}

		/* run of whole clusters that need new space: one allocation, one write */
		uint64_t k = 1;
		while (idx + k < s->l2_entries && (k + 1) * s->cluster_size <= len) {
			bool ip2;
			ret = qcow2_in_place(s, be64toh(table[idx + k]), &ip2);
			if (ret < 0)
				goto out;
			if (ip2)
				break;
			k++;
		}
		int64_t host = qcow2_alloc_clusters(s, k);
		if (host < 0) {
			ret = (int)host;
			goto out;
		}
		ret = qcow2_pwrite_data(s, buf, k * s->cluster_size, host, off, &bounce, &bounce_len);
		if (ret < 0)
			goto out;
		for (uint64_t i = 0; i < k; i++) {
			uint64_t old = be64toh(table[idx + i]);
			table[idx + i] = htobe64(((uint64_t)host + i * s->cluster_size) | QCOW2_OFLAG_COPIED);
			ret = qcow2_release_entry(s, old);
			if (ret < 0)
				goto out;
		}
		qcow2_l2_slot_of(s, table)->dirty = true;
		buf += k * s->cluster_size;
		off += k * s->cluster_size;
		len -= k * s->cluster_size;
	}
out:
	free(merge);
	free(bounce);
	return ret;
}

int qcow2_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct qcow2_state *s = img->priv;
	int ret;

	pthread_mutex_lock(&s->lock);
	if (s->need_key) {
		fmt_error("%s: image is encrypted; no key given (encrypt.key-secret)", img->spec);
		ret = -EACCES;
	} else {
		ret = qcow2_write_locked(s, buf, len, off);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* byte-granular space for compressed data: continue in the current cluster when it fits */
static int64_t qcow2_alloc_bytes(struct qcow2_state *s, uint64_t len)
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

int qcow2_write_compressed(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct qcow2_state *s = img->priv;
	uint8_t *src = (uint8_t *)buf, *padded = NULL, *out = NULL;
	size_t clen;
	int ret;

	if (off & (s->cluster_size - 1) || len > s->cluster_size) {
		fmt_error("%s: compressed write must be one aligned cluster", img->spec);
		return -EINVAL;
	}
	if (s->crypt_method) {
		fmt_error("%s: compression is not supported with encryption", img->spec);
		return -ENOTSUP;
	}
	if (len < s->cluster_size) {
		padded = calloc(1, s->cluster_size);
		if (!padded)
			return -ENOMEM;
		memcpy(padded, buf, len);
		src = padded;
	}
	out = malloc(s->cluster_size);
	if (!out) {
		free(padded);
		return -ENOMEM;
	}
	clen = qcow2_compress(s->compression_type, out, s->cluster_size - 1, src, s->cluster_size);

	pthread_mutex_lock(&s->lock);
	if (!clen) {
		/* does not shrink: store it as a normal cluster (the image tail as is) */
		ret = qcow2_write_locked(s, buf, len, off);
		goto out;
	}
	uint64_t cluster = off >> s->cluster_bits;
	uint64_t l1_index = cluster >> s->l2_bits, idx = cluster & (s->l2_entries - 1), *table;
	if (l1_index >= s->l1_size) {
		fmt_error("%s: write at %" PRIu64 " beyond the L1 table", img->spec, off);
		ret = -EINVAL;
		goto out;
	}
	/* the L2 table before the data, as in qcow2_write_locked; table stays valid */
	ret = qcow2_l2_for_write(s, l1_index, &table);
	if (ret < 0)
		goto out;
	int64_t at = qcow2_alloc_bytes(s, clen);
	if (at < 0) {
		ret = (int)at;
		goto out;
	}
	ret = fmt_store_pwrite(img->store, out, clen, at);
	if (ret < 0)
		goto out;
	qcow2_note_write(s, at + clen);
	uint64_t nsect = (((uint64_t)at + clen - 1) >> 9) - ((uint64_t)at >> 9);
	uint64_t old = be64toh(table[idx]);
	table[idx] = htobe64((uint64_t)at | QCOW2_OFLAG_COMPRESSED | (nsect << s->csize_shift));
	qcow2_l2_slot_of(s, table)->dirty = true;
	ret = qcow2_release_entry(s, old);
out:
	pthread_mutex_unlock(&s->lock);
	free(out);
	free(padded);
	return ret < 0 ? ret : 0;
}

/* ---- L1 growth (create) and flush ------------------------------------------------------------ */

int qcow2_grow_l1(struct qcow2_state *s, uint32_t min_size)
{
	uint64_t bytes = ((uint64_t)min_size * 8 + s->cluster_size - 1) & ~(uint64_t)(s->cluster_size - 1);
	uint64_t old_off = s->l1_offset, old_clusters = ((uint64_t)s->l1_size * 8 + s->cluster_size - 1) >> s->cluster_bits;
	int64_t off;
	int ret;

	if (min_size <= s->l1_size)
		return 0;
	if ((uint64_t)min_size * 8 > QCOW2_MAX_L1_BYTES) {
		fmt_error("%s: Active L1 table too large", s->img->spec);
		return -EFBIG;
	}
	uint64_t *l1 = calloc(1, bytes);
	if (!l1) {
		fmt_error("%s: out of memory for the L1 table", s->img->spec);
		return -ENOMEM;
	}
	memcpy(l1, s->l1, (size_t)s->l1_size * 8);
	off = qcow2_alloc_clusters(s, bytes >> s->cluster_bits);
	if (off < 0) {
		free(l1);
		return (int)off;
	}
	free(s->l1);
	s->l1 = l1;
	s->l1_size = min_size;
	s->l1_offset = off;
	s->l1_dirty = true;
	s->header_dirty = true;
	/* write the whole table area now so the file covers it */
	uint64_t *be = calloc(1, bytes);
	if (!be)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->l1_size; i++)
		be[i] = htobe64(s->l1[i]);
	ret = fmt_store_pwrite(s->img->store, be, bytes, off);
	free(be);
	if (ret < 0)
		return ret;
	qcow2_note_write(s, off + bytes);
	s->l1_dirty = false;
	for (uint64_t i = 0; old_off && i < old_clusters; i++) {
		ret = qcow2_refcount_add(s, (old_off >> s->cluster_bits) + i, -1);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* write back every dirty table: L2s, refblocks, refcount table, L1, header. Lock held. */
int qcow2_flush_metadata(struct qcow2_state *s)
{
	struct fmt_store *st = s->img->store;
	int ret;

	for (uint32_t i = 0; i < s->l2_cache_slots; i++) {
		ret = qcow2_l2_writeback(s, &s->l2_cache[i]);
		if (ret < 0)
			return ret;
	}
	for (uint64_t i = 0; s->refblock_dirty && i < s->rt_size; i++) {
		if (!s->refblock_dirty[i])
			continue;
		ret = fmt_store_pwrite(st, s->refblocks[i], s->cluster_size, s->rt[i]);
		if (ret < 0)
			return ret;
		qcow2_note_write(s, s->rt[i] + s->cluster_size);
		s->refblock_dirty[i] = false;
	}
	if (s->rt_dirty) {
		size_t bytes = (size_t)s->rt_clusters << s->cluster_bits;
		uint64_t *be = calloc(1, bytes);
		if (!be)
			return -ENOMEM;
		for (uint64_t i = 0; i < s->rt_size && i < bytes / 8; i++)
			be[i] = htobe64(s->rt[i]);
		ret = fmt_store_pwrite(st, be, bytes, s->rt_offset);
		free(be);
		if (ret < 0)
			return ret;
		qcow2_note_write(s, s->rt_offset + bytes);
		s->rt_dirty = false;
	}
	if (s->l1_dirty) {
		uint64_t *be = malloc((size_t)s->l1_size * 8 + 8);
		if (!be)
			return -ENOMEM;
		for (uint32_t i = 0; i < s->l1_size; i++)
			be[i] = htobe64(s->l1[i]);
		ret = fmt_store_pwrite(st, be, (size_t)s->l1_size * 8, s->l1_offset);
		free(be);
		if (ret < 0)
			return ret;
		s->l1_dirty = false;
	}
	if (s->header_dirty) {
		ret = qcow2_write_header(s);
		if (ret < 0)
			return ret;
	}
	/* claimed but never written clusters (preallocation, a partly used compressed cluster)
	 * still have to lie inside the file */
	if (s->disk_end < s->file_size) {
		if (st->ops->truncate)
			ret = fmt_store_truncate(st, s->file_size);
		else
			ret = fmt_store_pwrite(st, "", 1, s->file_size - 1);
		if (ret < 0)
			return ret;
		s->disk_end = s->file_size;
	}
	return 0;
}

/* the metadata reaches the store; fmt_image_flush then flushes the store itself */
int qcow2_flush(struct fmt_image *img)
{
	struct qcow2_state *s = img->priv;
	int ret = 0;

	if (!img->writable)
		return 0;
	pthread_mutex_lock(&s->lock);
	ret = qcow2_flush_metadata(s);
	pthread_mutex_unlock(&s->lock);
	return ret < 0 ? ret : 0;
}
