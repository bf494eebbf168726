/* qcow2_write.c: qcow2 writes: copy-on-write of shared or compressed clusters and shared L2
 * tables, compressed cluster writes packed at byte granularity, and the driver's flush.
 * Invariant after flush: every cluster's refcount equals its references, so qemu-img check is
 * clean. Writes hold s->lock throughout; compression runs outside it. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_state.h"

/* ---- L1/L2 for writing ------------------------------------------------------------------------ */

/* the refcount of the cluster at host offset off, which must be cluster-aligned (what names it) */
static int qcow2_aligned_refcount(struct qcow2_state *s, uint64_t off, const char *what, uint64_t *ref)
{
	if (off & (s->cluster_size - 1)) {
		fmt_error("%s: %s offset %#" PRIx64 " unaligned", s->img->spec, what, off);
		return -EIO;
	}
	return qcow2_refcount_get(s, off >> s->cluster_bits, ref);
}

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
		ret = qcow2_aligned_refcount(s, l2_off, "L2 table", &ref);
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
	ret = qcow2_aligned_refcount(s, off, "data cluster", &ref);
	if (ret < 0)
		return ret;
	*yes = ref == 1;
	return 0;
}

/* one step of a write: the L2 table and entry of the cluster at off, and the buffers the steps
 * reuse */
struct qcow2_wstep {
	uint64_t *table;
	uint64_t idx;          /* the cluster's entry in table */
	uint64_t entry;        /* its value, host order */
	uint64_t in;           /* off's place in the cluster */
	uint8_t *merge;        /* one cluster, for read-modify-write */
	uint8_t *bounce;       /* for encryption */
	size_t bounce_len;
};

/* a run of clusters written in place at contiguous host offsets; bytes written or -errno */
static int64_t qcow2_write_in_place(struct qcow2_state *s, struct qcow2_wstep *w, const uint8_t *buf, size_t len,
				    uint64_t off)
{
	uint64_t host = (w->entry & QCOW2_OFFSET_MASK) + w->in;
	uint64_t n = s->cluster_size - w->in < len ? s->cluster_size - w->in : len;
	uint64_t idx = w->idx, entry = w->entry;
	int ret;

	while (n < len && idx + 1 < s->l2_entries && len - n >= s->cluster_size) {
		uint64_t e2 = be64toh(w->table[idx + 1]);
		bool ip2;
		if ((e2 & QCOW2_OFFSET_MASK) != (entry & QCOW2_OFFSET_MASK) + s->cluster_size)
			break;
		ret = qcow2_in_place(s, e2, &ip2);
		if (ret < 0)
			return ret;
		if (!ip2)
			break;
		entry = e2;
		idx++;
		n += s->cluster_size;
	}
	ret = qcow2_pwrite_data(s, buf, n, host, off, &w->bounce, &w->bounce_len);
	return ret < 0 ? ret : (int64_t)n;
}

/* read-modify-write of part of one cluster (in place, or into a new cluster); bytes written */
static int64_t qcow2_write_partial(struct qcow2_state *s, struct qcow2_wstep *w, bool inplace, const uint8_t *buf,
				   size_t len, uint64_t off)
{
	uint64_t n = s->cluster_size - w->in < len ? s->cluster_size - w->in : len;
	uint64_t guest = off - w->in;
	int64_t host;
	int ret;

	if (!w->merge && !(w->merge = malloc(s->cluster_size))) {
		fmt_error("%s: out of memory", s->img->spec);
		return -ENOMEM;
	}
	ret = qcow2_cluster_contents(s, w->entry, guest, w->merge);
	if (ret < 0)
		return ret;
	memcpy(w->merge + w->in, buf, n);
	host = inplace ? (int64_t)(w->entry & QCOW2_OFFSET_MASK) : qcow2_alloc_clusters(s, 1);
	if (host < 0)
		return host;
	ret = qcow2_pwrite_data(s, w->merge, s->cluster_size, host, guest, &w->bounce, &w->bounce_len);
	if (ret < 0)
		return ret;
	if (!inplace) {
		w->table[w->idx] = htobe64((uint64_t)host | QCOW2_OFLAG_COPIED);
		qcow2_l2_slot_of(s, w->table)->dirty = true;
		ret = qcow2_release_entry(s, w->entry);
		if (ret < 0)
			return ret;
	}
	return (int64_t)n;
}

/* a run of whole clusters that need new space: one allocation, one write; bytes written */
static int64_t qcow2_write_new_run(struct qcow2_state *s, struct qcow2_wstep *w, const uint8_t *buf, size_t len,
				   uint64_t off)
{
	uint64_t k = 1;
	int ret;

	while (w->idx + k < s->l2_entries && (k + 1) * s->cluster_size <= len) {
		bool ip2;
		ret = qcow2_in_place(s, be64toh(w->table[w->idx + k]), &ip2);
		if (ret < 0)
			return ret;
		if (ip2)
			break;
		k++;
	}
	int64_t host = qcow2_alloc_clusters(s, k);
	if (host < 0)
		return host;
	ret = qcow2_pwrite_data(s, buf, k * s->cluster_size, host, off, &w->bounce, &w->bounce_len);
	if (ret < 0)
		return ret;
	for (uint64_t i = 0; i < k; i++) {
		uint64_t old = be64toh(w->table[w->idx + i]);
		w->table[w->idx + i] = htobe64(((uint64_t)host + i * s->cluster_size) | QCOW2_OFLAG_COPIED);
		ret = qcow2_release_entry(s, old);
		if (ret < 0)
			return ret;
	}
	qcow2_l2_slot_of(s, w->table)->dirty = true;
	return (int64_t)(k * s->cluster_size);
}

static int qcow2_write_locked(struct qcow2_state *s, const uint8_t *buf, size_t len, uint64_t off)
{
	struct qcow2_wstep w = { 0 };
	int64_t done = 0;

	while (len) {
		uint64_t cluster = off >> s->cluster_bits;
		uint64_t l1_index = cluster >> s->l2_bits;
		bool inplace;

		if (l1_index >= s->l1_size) {
			fmt_error("%s: write at %" PRIu64 " beyond the L1 table", s->img->spec, off);
			done = -EINVAL;
			break;
		}
		/* the L2 table first (as qemu lays files out), then the data; the table stays valid
		 * meanwhile: allocating and writing data load no other L2 table */
		done = qcow2_l2_for_write(s, l1_index, &w.table);
		if (done < 0)
			break;
		w.idx = cluster & (s->l2_entries - 1);
		w.in = off & (s->cluster_size - 1);
		w.entry = be64toh(w.table[w.idx]);
		done = qcow2_in_place(s, w.entry, &inplace);
		if (done < 0)
			break;
		bool partial = w.in || len < s->cluster_size;
		if (inplace && !(partial && s->cipher))
			done = qcow2_write_in_place(s, &w, buf, len, off);
		else if (partial)
			done = qcow2_write_partial(s, &w, inplace, buf, len, off);
		else
			done = qcow2_write_new_run(s, &w, buf, len, off);
		if (done < 0)
			break;
		buf += done;
		off += done;
		len -= done;
	}
	free(w.merge);
	free(w.bounce);
	return done < 0 ? (int)done : 0;
}

int qcow2_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct qcow2_state *s = img->priv;
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = s->need_key ? fmt_cipher_no_key(img->spec, "encrypt.key-secret") : qcow2_write_locked(s, buf, len, off);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int qcow2_write_compressed(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct qcow2_state *s = img->priv;
	uint8_t *out = NULL;
	size_t clen;
	int ret;

	ret = qcow2_compress_cluster(img->spec, s->compression_type, s->cluster_size, s->crypt_method, buf, len, off,
				     &out, &clen);
	if (ret < 0)
		return ret;

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
	return ret < 0 ? ret : 0;
}

/* ---- flush ------------------------------------------------------------------------------------ */

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
