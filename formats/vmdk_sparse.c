/* vmdk_sparse.c: VMDK sparse extents (KDMV hosted sparse, COWD read only): headers and footers,
 * the grain directory (in memory) and grain tables (cached per extent, written back to both the
 * primary and the redundant GD tables), and grain reads and writes; new grains go at the end of
 * the extent file. Callers hold s->lock. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "inflate.h"
#include "util.h"
#include "vmdk_state.h"

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

int vmdk_open_sparse4(struct fmt_image *img, struct vmdk_extent *e, uint64_t desc_sectors)
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

int vmdk_open_cowd(struct fmt_image *img, struct vmdk_extent *e)
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

int vmdk_flush_gts(struct vmdk_extent *e)
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
int vmdk_gte(struct vmdk_extent *e, uint64_t g, uint32_t *gte)
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

int vmdk_set_gte(struct vmdk_extent *e, uint64_t g, uint32_t val)
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
	size_t outlen = e->grain;
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
		uint64_t need = e->grain;
		ret = fmt_inflate(FMT_INFLATE_ZLIB, zbuf + hdr, clen, out, e->grain, &outlen);
		if (ret == -ENOMEM)
			return ret;
		/* a grain that sticks out past the extent may be stored short */
		if ((g + 1) * e->grain > e->length)
			need = e->length - g * e->grain;
		if (ret < 0 || outlen < need) {
			fmt_error("%s: corrupt compressed grain %" PRIu64 " at sector %u", e->store->spec, g, gte);
			return -EIO;
		}
	}
	if (outlen < e->grain)
		memset(out + outlen, 0, e->grain - outlen);
	return 0;
}

/* read within one sparse extent; runs of contiguous uncompressed grains become one pread */
int vmdk_read_sparse(struct fmt_image *img, int ei, uint8_t *buf, size_t len, uint64_t eoff)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = &s->ext[ei];
	uint64_t run_host = 0, run_len = 0;
	uint8_t *run_buf = NULL;
	int ret;

	while (len) {
		uint64_t g, in_grain;
		size_t n = vmdk_grain_run(e, eoff, len, &g, &in_grain);
		uint32_t gte;
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

int vmdk_write_sparse(struct fmt_image *img, int ei, const uint8_t *buf, size_t len, uint64_t eoff)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = &s->ext[ei];
	int ret;

	if (e->type == VMDK_COWD) {
		fmt_error("%s: writing to a vmfsSparse (COWD) extent is not supported", e->store->spec);
		return -ENOTSUP;
	}
	while (len) {
		uint64_t g, in_grain;
		size_t n = vmdk_grain_run(e, eoff, len, &g, &in_grain);
		uint32_t gte;
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
