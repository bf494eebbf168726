/* qcow2_check.c: consistency check as qemu-img check counts it: rebuild every cluster's
 * reference count from the header, L1/L2 tables (active and snapshots), refcount structures,
 * snapshot table, LUKS header and bitmaps, then compare with the stored refcounts: stored <
 * referenced is a corruption, stored > referenced a leak. Also COPIED flags, alignment and
 * v2 zero flags. Read-only: nothing is repaired. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_state.h"

struct qcow2_checker {
	struct qcow2_state *s;
	struct fmt_check_result *res;
	uint16_t *refs;          /* computed, saturating */
	uint64_t nb;             /* entries in refs */
};

/* count one reference to the clusters covering [off, off+len) */
static int qcow2_check_ref(struct qcow2_checker *c, uint64_t off, uint64_t len)
{
	if (!len)
		return 0;
	uint64_t first = off >> c->s->cluster_bits, last = (off + len - 1) >> c->s->cluster_bits;
	if (last >= c->nb) {
		uint64_t nb = last + 1 + c->nb / 4;
		/* a reference far past the end of the file is a corruption, not a reason to allocate */
		if (off >= c->s->file_size + (1ull << 30)) {
			c->res->corruptions++;
			return 0;
		}
		uint16_t *n = realloc(c->refs, nb * sizeof(*n));
		if (!n) {
			fmt_error("%s: out of memory for the check", c->s->img->spec);
			return -ENOMEM;
		}
		memset(n + c->nb, 0, (nb - c->nb) * sizeof(*n));
		c->refs = n;
		c->nb = nb;
	}
	for (uint64_t i = first; i <= last; i++)
		if (c->refs[i] != UINT16_MAX)
			c->refs[i]++;
	return 0;
}

/* walk one L1 table; active: count the guest statistics and check COPIED later */
static int qcow2_check_l1(struct qcow2_checker *c, const uint64_t *l1, uint32_t l1_size, bool active)
{
	struct qcow2_state *s = c->s;
	uint64_t *l2 = malloc(s->cluster_size);
	uint64_t contiguous = 0, *prev_host = &contiguous;
	int ret = 0;

	if (!l2)
		return -ENOMEM;
	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t l2_off = l1[i] & QCOW2_OFFSET_MASK;
		if (l1[i] & QCOW2_L1_RESERVED)
			c->res->corruptions++;   /* L1 entry with reserved bits set */
		if (!l2_off)
			continue;
		if (l2_off & (s->cluster_size - 1)) {
			c->res->corruptions++;
			continue;
		}
		ret = qcow2_check_ref(c, l2_off, s->cluster_size);
		if (ret < 0)
			goto out;
		if (l2_off >= s->file_size) {
			c->res->corruptions++;
			continue;
		}
		if (fmt_store_pread(s->img->store, l2, s->cluster_size, l2_off) < 0) {
			c->res->check_errors++;
			continue;
		}
		for (uint32_t j = 0; j < s->l2_entries; j++) {
			uint64_t e = be64toh(l2[s->ext_l2 ? 2 * j : j]);
			if (e & QCOW2_OFLAG_COMPRESSED) {
				uint64_t coff = e & s->coffset_mask;
				uint64_t nsect = ((e >> s->csize_shift) & s->csize_mask) + 1;
				if (e & QCOW2_OFLAG_COPIED)
					c->res->corruptions++;
				ret = qcow2_check_ref(c, coff & ~511ull, nsect * 512);
				if (ret < 0)
					goto out;
				if (active) {
					c->res->allocated_clusters++;
					c->res->compressed_clusters++;
					c->res->fragmented_clusters++;
				}
				continue;
			}
			uint64_t off = e & QCOW2_OFFSET_MASK;
			if (!s->ext_l2 && (e & QCOW2_L2_RESERVED))
				c->res->corruptions++;   /* l2 entry with reserved bits set */
			if (!off) {
				/* in an external data file, offset 0 with COPIED is the first cluster */
				if (active && s->data_store && (e & QCOW2_OFLAG_COPIED))
					c->res->allocated_clusters++;
				continue;
			}
			if (off & (s->cluster_size - 1)) {
				c->res->corruptions++;
				continue;
			}
			if (s->data_store) {   /* clusters of an external data file have no refcounts */
				if (active)
					c->res->allocated_clusters++;
				continue;
			}
			ret = qcow2_check_ref(c, off, s->cluster_size);
			if (ret < 0)
				goto out;
			if (active) {
				c->res->allocated_clusters++;
				if (*prev_host && off != *prev_host + s->cluster_size)
					c->res->fragmented_clusters++;
				*prev_host = off;
			}
		}
	}
out:
	free(l2);
	return ret;
}

/* COPIED flags of the active tables must say "refcount is exactly 1" */
static int qcow2_check_copied(struct qcow2_checker *c)
{
	struct qcow2_state *s = c->s;
	uint64_t *l2 = malloc(s->cluster_size), ref;
	int ret = 0;

	if (!l2)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->l1_size; i++) {
		uint64_t l2_off = s->l1[i] & QCOW2_OFFSET_MASK;
		if (!l2_off || (l2_off & (s->cluster_size - 1)) || l2_off >= s->file_size)
			continue;
		ret = qcow2_refcount_get(s, l2_off >> s->cluster_bits, &ref);
		if (ret < 0)
			goto out;
		if ((ref == 1) != !!(s->l1[i] & QCOW2_OFLAG_COPIED))
			c->res->corruptions++;
		if (fmt_store_pread(s->img->store, l2, s->cluster_size, l2_off) < 0)
			continue;
		for (uint32_t j = 0; j < s->l2_entries; j++) {
			uint64_t e = be64toh(l2[s->ext_l2 ? 2 * j : j]);
			uint64_t off = e & QCOW2_OFFSET_MASK;
			if ((e & QCOW2_OFLAG_COMPRESSED) || !off || (off & (s->cluster_size - 1)) || s->data_store)
				continue;
			ret = qcow2_refcount_get(s, off >> s->cluster_bits, &ref);
			if (ret < 0)
				goto out;
			if ((ref == 1) != !!(e & QCOW2_OFLAG_COPIED))
				c->res->corruptions++;
		}
	}
out:
	free(l2);
	return ret;
}

static int qcow2_check_snapshots(struct qcow2_checker *c)
{
	struct qcow2_state *s = c->s;
	uint64_t pos = 0;
	uint8_t e[40];
	int ret;

	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		if (fmt_store_pread(s->img->store, e, sizeof(e), s->snapshots_offset + pos) < 0)
			return -EIO;
		uint64_t l1_off = fmt_be64(e);
		uint32_t l1_size = fmt_be32(e + 8);
		uint32_t len = 40 + fmt_be32(e + 36) + fmt_be16(e + 12) + fmt_be16(e + 14);
		pos += (len + 7) & ~7u;
		if ((uint64_t)l1_size * 8 > QCOW2_MAX_L1_BYTES || (l1_off & (s->cluster_size - 1)) ||
		    l1_off >= s->file_size || (uint64_t)l1_size * 8 > s->file_size - l1_off) {
			c->res->corruptions++;
			continue;
		}
		ret = qcow2_check_ref(c, l1_off, (uint64_t)l1_size * 8);
		if (ret < 0)
			return ret;
		uint64_t *l1 = malloc((size_t)l1_size * 8 + 8);
		if (!l1)
			return -ENOMEM;
		ret = fmt_store_pread(s->img->store, l1, (size_t)l1_size * 8, l1_off);
		for (uint32_t j = 0; ret >= 0 && j < l1_size; j++)
			l1[j] = be64toh(l1[j]);
		if (ret >= 0)
			ret = qcow2_check_l1(c, l1, l1_size, false);
		free(l1);
		if (ret < 0)
			return ret;
	}
	return qcow2_check_ref(c, s->snapshots_offset, s->nb_snapshots ? pos : 0);
}

static int qcow2_check_bitmaps(struct qcow2_checker *c)
{
	struct qcow2_state *s = c->s;
	uint8_t *dir;
	int ret = 0;

	if (!s->bitmaps_nr || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
		return 0;
	if (s->bitmaps_dir_size > (64u << 20) || s->bitmaps_dir_off >= s->file_size) {
		c->res->corruptions++;
		return 0;
	}
	dir = malloc(s->bitmaps_dir_size + 1);
	if (!dir)
		return -ENOMEM;
	if (fmt_store_pread(s->img->store, dir, s->bitmaps_dir_size, s->bitmaps_dir_off) < 0) {
		free(dir);
		return -EIO;
	}
	ret = qcow2_check_ref(c, s->bitmaps_dir_off, s->bitmaps_dir_size);
	uint64_t pos = 0;
	for (uint32_t i = 0; ret >= 0 && i < s->bitmaps_nr; i++) {
		if (pos + 24 > s->bitmaps_dir_size) {
			c->res->corruptions++;
			break;
		}
		uint64_t toff = fmt_be64(dir + pos);
		uint32_t tsize = fmt_be32(dir + pos + 8);
		uint32_t len = 24 + fmt_be32(dir + pos + 20) + fmt_be16(dir + pos + 18);
		pos += (len + 7) & ~7u;
		if (!toff || (uint64_t)tsize * 8 > (64u << 20) || toff >= s->file_size) {
			if (toff)
				c->res->corruptions++;
			continue;
		}
		ret = qcow2_check_ref(c, toff, (uint64_t)tsize * 8);
		uint64_t *t = malloc((size_t)tsize * 8 + 8);
		if (!t) {
			ret = -ENOMEM;
			break;
		}
		if (fmt_store_pread(s->img->store, t, (size_t)tsize * 8, toff) >= 0)
			for (uint32_t j = 0; ret >= 0 && j < tsize; j++) {
				uint64_t off = be64toh(t[j]) & QCOW2_OFFSET_MASK;
				if (off)
					ret = qcow2_check_ref(c, off, s->cluster_size);
			}
		free(t);
	}
	free(dir);
	return ret;
}

int qcow2_check(struct fmt_image *img, struct fmt_check_result *res)
{
	struct qcow2_state *s = img->priv;
	struct qcow2_checker c = { .s = s, .res = res };
	int ret;

	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&s->lock);
	if (!img->writable) {
		ret = qcow2_flush_metadata(s);   /* nothing dirty on a read-only image */
		if (ret < 0)
			goto out;
	} else {
		ret = qcow2_flush_metadata(s);
		if (ret < 0)
			goto out;
	}
	if (!s->rt) {
		ret = qcow2_load_refcounts(s, &res->corruptions);
		if (ret < 0)
			goto out;
	}
	c.nb = (s->file_size + s->cluster_size - 1) >> s->cluster_bits;
	c.refs = calloc(c.nb + 1, sizeof(*c.refs));
	if (!c.refs) {
		ret = -ENOMEM;
		goto out;
	}
	res->total_clusters = (s->size + s->cluster_size - 1) >> s->cluster_bits;

	if ((ret = qcow2_check_ref(&c, 0, s->cluster_size)) < 0 ||
	    (ret = qcow2_check_ref(&c, s->l1_offset, (uint64_t)s->l1_size * 8)) < 0 ||
	    (ret = qcow2_check_l1(&c, s->l1, s->l1_size, true)) < 0 ||
	    (ret = qcow2_check_snapshots(&c)) < 0 ||
	    (ret = qcow2_check_ref(&c, s->rt_offset, (uint64_t)s->rt_clusters << s->cluster_bits)) < 0 ||
	    (ret = qcow2_check_ref(&c, s->crypto_off, s->crypto_len)) < 0 ||
	    (ret = qcow2_check_bitmaps(&c)) < 0)
		goto out;
	for (uint64_t i = 0; i < s->rt_size; i++) {
		if (!s->rt[i])
			continue;
		ret = qcow2_check_ref(&c, s->rt[i], s->cluster_size);
		if (ret < 0)
			goto out;
	}

	/* compare with the stored refcounts, one refblock's range at a time */
	for (uint64_t idx = 0; idx < s->rt_size; idx++) {
		uint64_t start = idx * s->refs_per_block, end = start + s->refs_per_block;
		if (!s->rt[idx]) {
			/* no refblock: every cluster it would cover has refcount 0 */
			for (uint64_t i = start; i < end && i < c.nb; i++)
				if (c.refs[i])
					res->corruptions++;
			continue;
		}
		/* like qemu, stored refcounts past the end of the file are not looked at */
		if (end > c.nb)
			end = c.nb;
		for (uint64_t i = start; i < end; i++) {
			uint64_t stored, computed = c.refs[i];
			ret = qcow2_refcount_get(s, i, &stored);
			if (ret < 0) {
				res->check_errors++;
				break;
			}
			if (stored < computed)
				res->corruptions++;
			else if (stored > computed)
				res->leaks++;
			if (computed)
				res->image_end_offset = (i + 1) << s->cluster_bits;
		}
	}
	for (uint64_t i = s->rt_size * s->refs_per_block; i < c.nb; i++)
		if (c.refs[i])
			res->corruptions++;
	ret = 0;
	ret = qcow2_check_copied(&c);
out:
	pthread_mutex_unlock(&s->lock);
	free(c.refs);
	return ret < 0 ? ret : 0;
}

/* Rebuild the refcount structures from the references (an image left with the dirty bit by
 * lazy refcounts). The new table and blocks go after everything in use, the header switches
 * to them, and the dirty bit is cleared. Lock not needed: called from open. */
int qcow2_rebuild_refcounts(struct qcow2_state *s)
{
	struct fmt_check_result res;
	struct qcow2_checker c = { .s = s, .res = &res };
	uint8_t *blocks = NULL;
	uint64_t *table = NULL;
	int ret;

	memset(&res, 0, sizeof(res));
	c.nb = (s->file_size + s->cluster_size - 1) >> s->cluster_bits;
	c.refs = calloc(c.nb + 1, sizeof(*c.refs));
	if (!c.refs)
		return -ENOMEM;
	if ((ret = qcow2_check_ref(&c, 0, s->cluster_size)) < 0 ||
	    (ret = qcow2_check_ref(&c, s->l1_offset, (uint64_t)s->l1_size * 8)) < 0 ||
	    (ret = qcow2_check_l1(&c, s->l1, s->l1_size, true)) < 0 ||
	    (ret = qcow2_check_snapshots(&c)) < 0 ||
	    (ret = qcow2_check_ref(&c, s->crypto_off, s->crypto_len)) < 0 ||
	    (ret = qcow2_check_bitmaps(&c)) < 0)
		goto out;
	if (res.corruptions) {
		fmt_error("%s: the dirty bit is set and the tables are damaged; cannot rebuild the refcounts",
			  s->img->spec);
		ret = -EIO;
		goto out;
	}
	/* new blocks and table after the end of the file, covering themselves too */
	uint64_t start = c.nb, nblocks = 0, tclusters = 0;
	for (;;) {
		uint64_t total = start + nblocks + tclusters;
		uint64_t nb2 = (total + s->refs_per_block - 1) / s->refs_per_block;
		uint64_t tc2 = (nb2 * 8 + s->cluster_size - 1) >> s->cluster_bits;
		if (nb2 == nblocks && tc2 == tclusters)
			break;
		nblocks = nb2;
		tclusters = tc2;
	}
	if ((tclusters << s->cluster_bits) > QCOW2_MAX_RT_BYTES) {
		fmt_error("%s: Reference count table too large", s->img->spec);
		ret = -EFBIG;
		goto out;
	}
	blocks = calloc(nblocks, s->cluster_size);
	table = calloc(tclusters, s->cluster_size);
	if (!blocks || !table) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < start + nblocks + tclusters; i++) {
		uint64_t v = i < c.nb ? c.refs[i] : 1;
		qcow2_refblock_set(s, blocks + (i / s->refs_per_block) * s->cluster_size, i % s->refs_per_block, v);
	}
	for (uint64_t b = 0; b < nblocks; b++)
		table[b] = htobe64((start + b) << s->cluster_bits);
	ret = fmt_store_pwrite(s->img->store, blocks, nblocks << s->cluster_bits, start << s->cluster_bits);
	if (ret >= 0)
		ret = fmt_store_pwrite(s->img->store, table, tclusters << s->cluster_bits,
				       (start + nblocks) << s->cluster_bits);
	if (ret < 0)
		goto out;
	qcow2_note_write(s, (start + nblocks + tclusters) << s->cluster_bits);
	qcow2_free_refcounts(s);
	s->rt_offset = (start + nblocks) << s->cluster_bits;
	s->rt_clusters = tclusters;
	s->rt_size = (tclusters << s->cluster_bits) / 8;
	s->incompat &= ~QCOW2_INCOMPAT_DIRTY;
	ret = qcow2_write_header(s);
	if (ret >= 0)
		ret = qcow2_load_refcounts(s, NULL);
out:
	free(blocks);
	free(table);
	free(c.refs);
	return ret < 0 ? ret : 0;
}
