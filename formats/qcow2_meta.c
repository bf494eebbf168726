/* qcow2_meta.c: qcow2 metadata written back: the header with its extensions, a grown L1 table,
 * and the flush of every dirty table (L2s, refcount blocks and table, L1, header) with the file
 * extended over clusters claimed but never written. Callers hold s->lock. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_state.h"

static const struct { uint8_t type, bit; const char *name; } qcow2_feature_names[] = {
	{ 0, 0, "dirty bit" }, { 0, 1, "corrupt bit" }, { 0, 2, "external data file" },
	{ 0, 3, "compression type" }, { 0, 4, "extended L2 entries" }, { 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" }, { 2, 1, "raw external data" },
};

static size_t qcow2_put_ext(uint8_t *p, uint32_t type, const void *data, uint32_t len)
{
	fmt_put32(p, type);
	fmt_put32(p + 4, len);
	memcpy(p + 8, data, len);
	size_t padded = (len + 7u) & ~7u;
	memset(p + 8 + len, 0, padded - len);
	return 8 + padded;
}

/* Write cluster 0 from the state: header fields, extensions (backing format, crypto, feature
 * names when they fit, the ones we kept), end marker, backing file name. */
int qcow2_write_header(struct qcow2_state *s)
{
	struct fmt_image *img = s->img;
	uint8_t *h = calloc(1, s->cluster_size);
	size_t pos, blen = img->backing_spec ? strlen(img->backing_spec) : 0;
	int ret;

	if (!h) {
		fmt_error("%s: out of memory", img->spec);
		return -ENOMEM;
	}
	fmt_put32(h, QCOW_MAGIC);
	fmt_put32(h + 4, s->version);
	fmt_put32(h + 20, s->cluster_bits);
	fmt_put64(h + 24, s->size);
	fmt_put32(h + 32, s->crypt_method);
	fmt_put32(h + 36, s->l1_size);
	fmt_put64(h + 40, s->l1_offset);
	fmt_put64(h + 48, s->rt_offset);
	fmt_put32(h + 56, s->rt_clusters);
	fmt_put32(h + 60, s->nb_snapshots);
	fmt_put64(h + 64, s->snapshots_offset);
	if (s->version >= 3) {
		fmt_put64(h + 72, s->incompat);
		fmt_put64(h + 80, s->compat);
		fmt_put64(h + 88, s->autoclear);
		fmt_put32(h + 96, s->refcount_order);
		if (s->header_length < 112)
			s->header_length = 112;
		fmt_put32(h + 100, s->header_length);
		h[104] = s->compression_type;
		pos = s->header_length;
	} else {
		pos = 72;
	}

	size_t need = pos + 8 + blen + s->unknown_ext_len;
	if (img->backing_fmt)
		need += 8 + ((strlen(img->backing_fmt) + 7) & ~7ul);
	if (s->crypt_method == QCOW2_CRYPT_LUKS)
		need += 24;
	if (need > s->cluster_size) {
		fmt_error("%s: header and backing file name do not fit in one cluster", img->spec);
		free(h);
		return -EINVAL;
	}
	if (img->backing_fmt)
		pos += qcow2_put_ext(h + pos, QCOW2_EXT_BACKING_FMT, img->backing_fmt, strlen(img->backing_fmt));
	if (s->crypt_method == QCOW2_CRYPT_LUKS) {
		uint8_t c[16];
		fmt_put64(c, s->crypto_off);
		fmt_put64(c + 8, s->crypto_len);
		pos += qcow2_put_ext(h + pos, QCOW2_EXT_CRYPTO, c, 16);
	}
	if (s->version >= 3 && need + 8 + 48 * 8 <= s->cluster_size) {
		uint8_t t[48 * 8];
		memset(t, 0, sizeof(t));
		for (size_t i = 0; i < 8; i++) {
			t[48 * i] = qcow2_feature_names[i].type;
			t[48 * i + 1] = qcow2_feature_names[i].bit;
			strncpy((char *)t + 48 * i + 2, qcow2_feature_names[i].name, 45);
		}
		pos += qcow2_put_ext(h + pos, QCOW2_EXT_FEATURES, t, sizeof(t));
	}
	if (s->unknown_ext_len)
		memcpy(h + pos, s->unknown_ext, s->unknown_ext_len);
	pos += s->unknown_ext_len;
	pos += 8;  /* end marker: already zero */
	if (blen) {
		fmt_put64(h + 8, pos);
		fmt_put32(h + 16, blen);
		memcpy(h + pos, img->backing_spec, blen);
		pos += blen;
	}
	ret = fmt_store_pwrite(img->store, h, pos, 0);
	if (ret >= 0)
		qcow2_note_write(s, pos);
	if (ret >= 0)
		s->header_dirty = false;
	free(h);
	return ret < 0 ? ret : 0;
}

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
