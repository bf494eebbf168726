/* vmdk.c: the VMware VMDK driver: probe, open (an image is a list of extents laid end to end in
 * descriptor order), reads and writes dispatched to flat, sparse (vmdk_sparse.c) and stream
 * (vmdk_stream.c) extents, block status, info, check, close and the driver table entry.
 * One mutex guards tables, caches and the pending grain; flat extents are written without it. */
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

#include "util.h"
#include "vmdk_state.h"

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

/* the extent *ei holding off (NULL past the end) and the *n bytes of len that lie in it */
static struct vmdk_extent *vmdk_extent_run(struct vmdk_state *s, uint64_t off, size_t len, int *ei, size_t *n)
{
	struct vmdk_extent *e;

	*ei = vmdk_find_extent(s, off);
	if (*ei < 0)
		return NULL;
	e = &s->ext[*ei];
	*n = e->start + e->length - off;
	if (*n > len)
		*n = len;
	return e;
}

typedef int (*vmdk_piece_fn)(struct fmt_image *img, int ei, uint8_t *p, size_t n, uint64_t in_extent);

/* fn on each extent's piece of [off, off+len); past the last extent a read gives zeros and a
 * write fails */
static int vmdk_each_piece(struct fmt_image *img, uint8_t *p, size_t len, uint64_t off, bool write,
			   vmdk_piece_fn fn)
{
	struct vmdk_state *s = img->priv;
	while (len) {
		int ei, ret;
		size_t n;
		struct vmdk_extent *e = vmdk_extent_run(s, off, len, &ei, &n);
		if (!e && write) {
			fmt_error("%s: write at %" PRIu64 " is past the end of the disk", img->spec, off);
			return -EINVAL;
		}
		if (!e) {
			memset(p, 0, len);
			return 0;
		}
		ret = fn(img, ei, p, n, off - e->start);
		if (ret < 0)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int vmdk_read_piece(struct fmt_image *img, int ei, uint8_t *p, size_t n, uint64_t in_extent)
{
	struct vmdk_extent *e = &((struct vmdk_state *)img->priv)->ext[ei];
	switch (e->type) {
	case VMDK_FLAT:
		return fmt_store_pread(e->store, p, n, e->flat_offset + in_extent);
	case VMDK_ZERO:
		memset(p, 0, n);
		return 0;
	default:
		return vmdk_read_sparse(img, ei, p, n, in_extent);
	}
}

static int vmdk_read_locked(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	return vmdk_each_piece(img, buf, len, off, false, vmdk_read_piece);
}

/* ---- write ----------------------------------------------------------------------------------- */

static int vmdk_write_piece(struct fmt_image *img, int ei, uint8_t *p, size_t n, uint64_t in_extent)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = &s->ext[ei];
	int ret;
	switch (e->type) {
	case VMDK_FLAT:
		return fmt_store_pwrite(e->store, p, n, e->flat_offset + in_extent);
	case VMDK_ZERO:
		fmt_error("%s: cannot write to a ZERO extent", img->spec);
		return -EINVAL;
	default:
		if (e->compressed)
			return vmdk_write_stream(img, ei, p, n, in_extent);
		pthread_mutex_lock(&s->lock);
		ret = vmdk_write_sparse(img, ei, p, n, in_extent);
		pthread_mutex_unlock(&s->lock);
		return ret;
	}
}

/* the pieces are only read from: the cast lets one walk serve reads and writes */
static int vmdk_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	return vmdk_each_piece(img, (uint8_t *)buf, len, off, true, vmdk_write_piece);
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
