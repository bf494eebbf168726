/* vmdk_stream.c: streamOptimized VMDK extents, append-only: a grain is written once, compressed,
 * behind a {lba, size} marker; partial writes to a grain collect in one pending grain buffer; the
 * end appends a footer (marker, header copy) and an end-of-stream marker as VMware expects.
 * Grains are compressed outside s->lock and only appended under it. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util.h"
#include "vmdk_state.h"

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
int vmdk_stream_put(struct fmt_image *img, int ei, uint64_t g, const uint8_t *data, bool locked)
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

int vmdk_flush_pending(struct fmt_image *img)
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
int vmdk_finish_stream(struct fmt_image *img, struct vmdk_extent *e)
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
int vmdk_write_stream(struct fmt_image *img, int ei, const uint8_t *buf, size_t len, uint64_t eoff)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = &s->ext[ei];
	int ret;

	while (len) {
		uint64_t g, in_grain;
		size_t n = vmdk_grain_run(e, eoff, len, &g, &in_grain);
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
