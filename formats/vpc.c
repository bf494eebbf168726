/* vpc.c: VHD (Virtual PC) images: fixed and dynamic read/write/create, differencing read.
 *
 * Layout (big-endian): a 512-byte "conectix" footer at the end of the file (and a copy at 0 for
 * dynamic/differencing disks); dynamic disks add a 1 KiB "cxsparse" header and a BAT of u32
 * sector offsets, each allocated block being a sector bitmap followed by block_size bytes.
 * Invariants kept on write: the BAT in memory equals the BAT on disk, blocks never overlap,
 * and the footer always sits right after the last block (free_off). Virtual size follows qemu's
 * CHS-or-current_size rule (formats.md 6.7). Writes are serialized by the caller
 * (FMT_DRV_THREADS is not set).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats.h"
#include "util.h"

#define VPC_SECTOR          512
#define VPC_FOOTER_SIZE     512
#define VPC_DYN_SIZE        1024
#define VPC_TYPE_FIXED      2
#define VPC_TYPE_DYNAMIC    3
#define VPC_TYPE_DIFF       4
#define VPC_BAT_UNUSED      0xFFFFFFFFu
#define VPC_CHS_MAX_C       65535u
#define VPC_CHS_MAX_H       16u
#define VPC_CHS_MAX_S       255u
#define VPC_MAX_GEOMETRY    ((uint64_t)VPC_CHS_MAX_C * VPC_CHS_MAX_H * VPC_CHS_MAX_S)
#define VPC_MAX_SECTORS     0xff000000ull  /* 2040 GiB */
#define VPC_TIMESTAMP_BASE  946684800u     /* 2000-01-01 00:00 UTC */
#define VPC_DEFAULT_BLOCK   (2u << 20)

struct vpc_footer {
	char cookie[8];
	uint32_t features;
	uint32_t version;
	uint64_t data_offset;
	uint32_t timestamp;
	char creator_app[4];
	uint32_t creator_ver;
	char creator_os[4];
	uint64_t orig_size;
	uint64_t current_size;
	uint16_t cyls;
	uint8_t heads;
	uint8_t secs;
	uint32_t type;
	uint32_t checksum;
	uint8_t uuid[16];
	uint8_t saved_state;
	uint8_t reserved[427];
} __attribute__((packed));

struct vpc_locator {
	char platform[4];
	uint32_t space;
	uint32_t length;
	uint32_t reserved;
	uint64_t offset;
} __attribute__((packed));

struct vpc_dyn_header {
	char cookie[8];
	uint64_t data_offset;
	uint64_t table_offset;
	uint32_t version;
	uint32_t max_table_entries;
	uint32_t block_size;
	uint32_t checksum;
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	uint32_t reserved;
	uint8_t parent_name[512];
	struct vpc_locator loc[8];
	uint8_t reserved2[256];
} __attribute__((packed));

_Static_assert(sizeof(struct vpc_footer) == VPC_FOOTER_SIZE, "footer size");
_Static_assert(sizeof(struct vpc_dyn_header) == VPC_DYN_SIZE, "dynamic header size");

struct vpc_state {
	uint8_t footer[VPC_FOOTER_SIZE];   /* raw footer as on disk */
	uint32_t type;
	uint64_t footer_off;   /* where the trailing footer lives (fixed: data ends here) */
	/* dynamic and differencing */
	uint64_t bat_off;
	uint32_t bat_entries;
	uint32_t *bat;         /* host byte order */
	uint32_t block_size;
	uint32_t bitmap_size;
	uint64_t free_off;     /* end of the last block: the trailing footer goes here */
	uint8_t *bitmap;       /* scratch for differencing reads */
	uint32_t bitmap_block; /* BAT index cached in bitmap, or UINT32_MAX */
};

static uint32_t vpc_checksum(const uint8_t *buf, size_t len, size_t csum_off)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < len; i++)
		if (i < csum_off || i >= csum_off + 4)
			sum += buf[i];
	return ~sum;
}

static int vpc_probe(const uint8_t *buf, size_t len, const char *spec)
{
	if (len >= 8 && !memcmp(buf, "conectix", 8))
		return 100;
	return 0;
}

/* qemu's calculate_geometry (the VHD spec's algorithm) */
static void vpc_geometry(uint64_t ts, uint32_t *cyls, uint32_t *heads, uint32_t *secs)
{
	uint64_t cth;
	if (ts > VPC_MAX_GEOMETRY)
		ts = VPC_MAX_GEOMETRY;
	if (ts >= 65535ull * 16 * 63) {
		*secs = 255;
		*heads = 16;
		cth = ts / 255;
	} else {
		*secs = 17;
		cth = ts / 17;
		*heads = (cth + 1023) / 1024;
		if (*heads < 4)
			*heads = 4;
		if (cth >= *heads * 1024ull || *heads > 16) {
			*secs = 31;
			*heads = 16;
			cth = ts / 31;
		}
		if (cth >= *heads * 1024ull) {
			*secs = 63;
			*heads = 16;
			cth = ts / 63;
		}
	}
	*cyls = cth / *heads;
}

/* the size qemu reports: CHS unless the creator is known to use current_size */
static uint64_t vpc_virtual_size(const struct vpc_footer *f)
{
	static const char *const use_current[] = { "win ", "qem2", "d2v ", "CTXS", "tap\0" };
	uint64_t chs = (uint64_t)be16toh(f->cyls) * f->heads * f->secs;
	for (size_t i = 0; i < sizeof(use_current) / sizeof(use_current[0]); i++)
		if (!memcmp(f->creator_app, use_current[i], 4))
			return be64toh(f->current_size);
	if (chs == VPC_MAX_GEOMETRY)
		return be64toh(f->current_size);
	return chs * VPC_SECTOR;
}

/* UTF-16 (le or be) to UTF-8; backslashes become slashes. NULL on a bad sequence. */
static char *vpc_utf16_to_utf8(const uint8_t *in, size_t len, bool little)
{
	char *out = malloc(len / 2 * 3 + 1), *p = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i + 1 < len; i += 2) {
		uint32_t c = little ? (in[i] | in[i + 1] << 8) : (in[i] << 8 | in[i + 1]);
		if (c == 0)
			break;
		if (c >= 0xd800 && c <= 0xdfff) {
			uint32_t lo;
			if (c > 0xdbff || i + 3 >= len)
				goto bad;
			lo = little ? (in[i + 2] | in[i + 3] << 8) : (in[i + 2] << 8 | in[i + 3]);
			if (lo < 0xdc00 || lo > 0xdfff)
				goto bad;
			c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		}
		if (c == '\\')
			c = '/';
		if (c < 0x80) {
			*p++ = c;
		} else if (c < 0x800) {
			*p++ = 0xc0 | c >> 6;
			*p++ = 0x80 | (c & 0x3f);
		} else if (c < 0x10000) {
			*p++ = 0xe0 | c >> 12;
			*p++ = 0x80 | (c >> 6 & 0x3f);
			*p++ = 0x80 | (c & 0x3f);
		} else {
			*p++ = 0xf0 | c >> 18;
			*p++ = 0x80 | (c >> 12 & 0x3f);
			*p++ = 0x80 | (c >> 6 & 0x3f);
			*p++ = 0x80 | (c & 0x3f);
		}
	}
	*p = 0;
	return out;
bad:
	free(out);
	return NULL;
}

/* The parent of a differencing disk: relative locator (W2ru), else absolute (W2ku), else a
 * Mac/blktap file URL (MacX, UTF-8), else the unicode name in the header. "./" is dropped. */
static int vpc_parent_name(struct fmt_image *img, const struct vpc_dyn_header *dh)
{
	static const char *const pref[] = { "W2ru", "W2ku", "MacX" };
	char *name = NULL;
	for (size_t p = 0; p < 3 && !name; p++) {
		for (int i = 0; i < 8 && !name; i++) {
			const struct vpc_locator *l = &dh->loc[i];
			uint32_t dlen = be32toh(l->length);
			uint64_t off = be64toh(l->offset);
			uint8_t *buf;
			if (memcmp(l->platform, pref[p], 4))
				continue;
			if (dlen == 0 || dlen > 65536 || off > img->store->size ||
			    dlen > img->store->size - off) {
				fmt_error("%s: parent locator %d points outside the file", img->spec, i);
				return -EINVAL;
			}
			buf = malloc(dlen);
			if (!buf)
				return -ENOMEM;
			if (fmt_store_pread(img->store, buf, dlen, off) < 0) {
				free(buf);
				return -EIO;
			}
			if (p == 2) {
				/* "file://path": UTF-8, maybe NUL-padded */
				size_t n = strnlen((char *)buf, dlen);
				size_t skip = n >= 7 && !memcmp(buf, "file://", 7) ? 7 : 0;
				name = strndup((char *)buf + skip, n - skip);
			} else {
				name = vpc_utf16_to_utf8(buf, dlen, true);
			}
			free(buf);
			/* an absolute Windows path ("C:/...") cannot be followed here */
			if (name && strlen(name) > 1 && name[1] == ':') {
				free(name);
				name = NULL;
			}
		}
	}
	if (!name)
		name = vpc_utf16_to_utf8(dh->parent_name, sizeof(dh->parent_name), false);
	if (!name || !*name) {
		free(name);
		fmt_error("%s: differencing VHD without a usable parent locator", img->spec);
		return -EINVAL;
	}
	if (!strncmp(name, "./", 2))
		memmove(name, name + 2, strlen(name + 2) + 1);
	img->backing_spec = name;
	return 0;
}

static int vpc_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int vpc_open_dynamic(struct fmt_image *img, struct vpc_state *s, uint64_t dyn_off)
{
	struct vpc_dyn_header dh;
	uint64_t fsize = img->store->size, bat_bytes, nblocks, *sorted = NULL;
	uint32_t n = 0;
	int ret;

	if (dyn_off > fsize || fsize - dyn_off < VPC_DYN_SIZE) {
		fmt_error("%s: dynamic header offset %llu is past the end of the file", img->spec,
			  (unsigned long long)dyn_off);
		return -EINVAL;
	}
	ret = fmt_store_pread(img->store, &dh, sizeof(dh), dyn_off);
	if (ret < 0)
		return ret;
	if (memcmp(dh.cookie, "cxsparse", 8)) {
		fmt_error("%s: Invalid header magic", img->spec);
		return -EINVAL;
	}
	s->block_size = be32toh(dh.block_size);
	if (s->block_size < VPC_SECTOR || (s->block_size & (s->block_size - 1))) {
		fmt_error("%s: Invalid block size %u", img->spec, s->block_size);
		return -EINVAL;
	}
	s->bitmap_size = ((s->block_size / VPC_SECTOR / 8) + VPC_SECTOR - 1) & ~(VPC_SECTOR - 1);
	s->bat_entries = be32toh(dh.max_table_entries);
	if (s->bat_entries > 0x7fffffff / 4) {
		fmt_error("%s: Max Table Entries too large (%u)", img->spec, s->bat_entries);
		return -EINVAL;
	}
	nblocks = (img->virtual_size + s->block_size - 1) / s->block_size;
	if (nblocks > 0xffffffffull) {
		fmt_error("%s: Too many blocks", img->spec);
		return -EINVAL;
	}
	if ((uint64_t)s->bat_entries * s->block_size < img->virtual_size) {
		fmt_error("%s: Page table too small", img->spec);
		return -EINVAL;
	}
	s->bat_off = be64toh(dh.table_offset);
	bat_bytes = ((uint64_t)s->bat_entries * 4 + VPC_SECTOR - 1) & ~(uint64_t)(VPC_SECTOR - 1);
	if (s->bat_off > fsize || (uint64_t)s->bat_entries * 4 > fsize - s->bat_off) {
		fmt_error("%s: block allocation table at %llu is past the end of the file", img->spec,
			  (unsigned long long)s->bat_off);
		return -EINVAL;
	}
	s->bat = malloc(((size_t)s->bat_entries + 1) * 4);
	sorted = malloc(((size_t)s->bat_entries + 1) * 8);
	if (!s->bat || !sorted) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fmt_store_pread(img->store, s->bat, (size_t)s->bat_entries * 4, s->bat_off);
	if (ret < 0)
		goto out;
	s->free_off = s->bat_off + bat_bytes;
	if (dyn_off + VPC_DYN_SIZE > s->free_off)
		s->free_off = (dyn_off + VPC_DYN_SIZE + VPC_SECTOR - 1) & ~(uint64_t)(VPC_SECTOR - 1);
	for (uint32_t i = 0; i < s->bat_entries; i++) {
		uint64_t start, end;
		s->bat[i] = be32toh(s->bat[i]);
		if (s->bat[i] == VPC_BAT_UNUSED)
			continue;
		start = (uint64_t)s->bat[i] * VPC_SECTOR;
		end = start + s->bitmap_size + s->block_size;
		if (start < s->bat_off + (uint64_t)s->bat_entries * 4 && end > s->bat_off) {
			fmt_error("%s: block %u overlaps the block allocation table", img->spec, i);
			ret = -EINVAL;
			goto out;
		}
		if (start < dyn_off + VPC_DYN_SIZE && end > dyn_off) {
			fmt_error("%s: block %u overlaps the dynamic header", img->spec, i);
			ret = -EINVAL;
			goto out;
		}
		if (end > s->free_off)
			s->free_off = end;
		sorted[n++] = start;
	}
	if (s->free_off > fsize) {
		fmt_error("%s: free_data_block_offset points after the end of file. The image has been truncated.",
			  img->spec);
		ret = -EINVAL;
		goto out;
	}
	/* blocks must not overlap: sort the starts and compare neighbours */
	if (n > 1) {
		qsort(sorted, n, sizeof(*sorted), vpc_cmp_u64);
		for (uint32_t i = 1; i < n; i++)
			if (sorted[i] < sorted[i - 1] + s->bitmap_size + s->block_size) {
				fmt_error("%s: two blocks overlap at offset %llu", img->spec,
					  (unsigned long long)sorted[i]);
				ret = -EINVAL;
				goto out;
			}
	}
	if (s->type == VPC_TYPE_DIFF) {
		s->bitmap = malloc(s->bitmap_size);
		if (!s->bitmap) {
			ret = -ENOMEM;
			goto out;
		}
		s->bitmap_block = UINT32_MAX;
		ret = vpc_parent_name(img, &dh);
		if (ret < 0)
			goto out;
	}
	img->cluster_size = s->block_size;
	ret = 0;
out:
	free(sorted);
	return ret;
}

static void vpc_close(struct fmt_image *img)
{
	struct vpc_state *s = img->priv;
	if (!s)
		return;
	free(s->bat);
	free(s->bitmap);
	free(s);
	img->priv = NULL;
}

static int vpc_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct vpc_state *s;
	struct vpc_footer *f;
	uint64_t fsize = img->store->size, sectors;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	img->priv = s;
	f = (struct vpc_footer *)s->footer;
	ret = fmt_image_read_header(img, s->footer, VPC_FOOTER_SIZE, "VHD");
	if (ret < 0)
		goto fail;
	if (memcmp(f->cookie, "conectix", 8)) {
		ret = fmt_store_pread(img->store, s->footer, VPC_FOOTER_SIZE, fsize - VPC_FOOTER_SIZE);
		if (ret < 0)
			goto fail;
		if (memcmp(f->cookie, "conectix", 8) || be32toh(f->type) != VPC_TYPE_FIXED) {
			fmt_error("%s: invalid VPC image", img->spec);
			ret = -EINVAL;
			goto fail;
		}
	}
	if (be32toh(f->checksum) != vpc_checksum(s->footer, VPC_FOOTER_SIZE, 64)) {
		fmt_error("%s: Incorrect header checksum", img->spec);
		ret = -EINVAL;
		goto fail;
	}
	s->type = be32toh(f->type);
	if (s->type != VPC_TYPE_FIXED && s->type != VPC_TYPE_DYNAMIC && s->type != VPC_TYPE_DIFF) {
		fmt_error("%s: unsupported VHD disk type %u", img->spec, s->type);
		ret = -EINVAL;
		goto fail;
	}
	img->virtual_size = vpc_virtual_size(f);
	sectors = img->virtual_size / VPC_SECTOR;
	if (img->virtual_size % VPC_SECTOR || sectors > VPC_MAX_SECTORS) {
		fmt_error("%s: invalid virtual size %llu (must be a multiple of 512 up to 2040 GiB)",
			  img->spec, (unsigned long long)img->virtual_size);
		ret = -EFBIG;
		goto fail;
	}
	if (s->type == VPC_TYPE_FIXED) {
		s->footer_off = fsize - VPC_FOOTER_SIZE;
		if (img->virtual_size > s->footer_off) {
			fmt_error("%s: File truncated, expecting at least %llu bytes", img->spec,
				  (unsigned long long)(img->virtual_size + VPC_FOOTER_SIZE));
			ret = -EINVAL;
			goto fail;
		}
	} else {
		ret = vpc_open_dynamic(img, s, be64toh(f->data_offset));
		if (ret < 0)
			goto fail;
	}
	if (img->writable && s->type == VPC_TYPE_DIFF) {
		fmt_error("%s: writing to a differencing VHD is not supported", img->spec);
		ret = -ENOTSUP;
		goto fail;
	}
	return 0;
fail:
	vpc_close(img);
	return ret;
}

static bool vpc_sector_present(const struct vpc_state *s, uint64_t sec)
{
	return s->bitmap[sec / 8] & (0x80 >> (sec % 8));
}

/* fixed: the disk is the start of the file; dynamic: the block holding off, or unallocated (the
 * parent's or zeros); differencing: in an allocated block, the sectors with the same bitmap bit */
static int vpc_map(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *host,
		   uint64_t *n)
{
	struct vpc_state *s = img->priv;
	uint64_t idx, in_block, end;
	bool present;
	int ret;

	*bits = FMT_BS_DATA | FMT_BS_ALLOCATED;
	if (s->type == VPC_TYPE_FIXED) {
		*host = off;
		*n = len;
		return 0;
	}
	idx = off / s->block_size;
	in_block = off % s->block_size;
	*n = s->block_size - in_block;
	if (idx >= s->bat_entries || s->bat[idx] == VPC_BAT_UNUSED) {
		*bits = img->backing ? 0 : FMT_BS_ZERO;
		return 0;
	}
	*host = (uint64_t)s->bat[idx] * VPC_SECTOR + s->bitmap_size + in_block;
	if (s->type != VPC_TYPE_DIFF)
		return 0;
	if (s->bitmap_block != idx) {
		ret = fmt_store_pread(img->store, s->bitmap, s->bitmap_size, (uint64_t)s->bat[idx] * VPC_SECTOR);
		if (ret < 0)
			return ret;
		s->bitmap_block = idx;
	}
	present = vpc_sector_present(s, in_block / VPC_SECTOR);
	for (end = (in_block / VPC_SECTOR + 1) * VPC_SECTOR; end < s->block_size && end < in_block + len;
	     end += VPC_SECTOR)
		if (vpc_sector_present(s, end / VPC_SECTOR) != present)
			break;
	*n = end - in_block;
	if (!present)
		*bits = 0;
	return 0;
}

/* append block idx at free_off: bitmap all ones, footer moved behind it, then the BAT entry */
static int vpc_alloc_block(struct fmt_image *img, uint32_t idx)
{
	struct vpc_state *s = img->priv;
	uint64_t start = s->free_off;
	uint32_t be;
	uint8_t *bm;
	int ret;

	if (start / VPC_SECTOR >= VPC_BAT_UNUSED) {
		fmt_error("%s: image file too large for a VHD block table", img->spec);
		return -EFBIG;
	}
	bm = malloc(s->bitmap_size);
	if (!bm)
		return -ENOMEM;
	memset(bm, 0xff, s->bitmap_size);
	ret = fmt_store_pwrite(img->store, bm, s->bitmap_size, start);
	free(bm);
	if (ret < 0)
		return ret;
	s->free_off = start + s->bitmap_size + s->block_size;
	ret = fmt_store_pwrite(img->store, s->footer, VPC_FOOTER_SIZE, s->free_off);
	if (ret < 0)
		return ret;
	s->bat[idx] = start / VPC_SECTOR;
	be = htobe32(s->bat[idx]);
	return fmt_store_pwrite(img->store, &be, 4, s->bat_off + (uint64_t)idx * 4);
}

static int vpc_locate(struct fmt_image *img, uint64_t idx, bool alloc, uint64_t *host)
{
	struct vpc_state *s = img->priv;
	if (s->bat[idx] == VPC_BAT_UNUSED) {
		if (!alloc)
			return 0;
		int ret = vpc_alloc_block(img, idx);
		if (ret < 0)
			return ret;
	}
	*host = (uint64_t)s->bat[idx] * VPC_SECTOR + s->bitmap_size;
	return 1;
}

static int vpc_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct vpc_state *s = img->priv;
	if (s->type == VPC_TYPE_FIXED)
		return fmt_store_pwrite(img->store, buf, len, off);
	return fmt_block_write(img, buf, len, off, s->block_size, s->bat_entries, vpc_locate);
}

static void vpc_uuid(uint8_t *u)
{
	FILE *f = fopen("/dev/urandom", "r");
	if (!f || fread(u, 1, 16, f) != 16) {
		for (int i = 0; i < 16; i++)
			u[i] = rand();
	}
	if (f)
		fclose(f);
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
}

static int vpc_create(const char *spec, uint64_t size, const struct fmt_options *opts)
{
	uint8_t footer_buf[VPC_FOOTER_SIZE] = { 0 };
	struct vpc_footer *f = (struct vpc_footer *)footer_buf;
	struct fmt_store *st = NULL;
	uint32_t cyls = 0, heads = 0, secs = 0, type;
	uint64_t total, ts;
	bool force = false;
	const char *sub;
	int ret;

	fmt_options_use(opts, "subformat");
	fmt_options_use(opts, "force_size");
	sub = fmt_options_get(opts, "subformat");
	if (!sub || !strcmp(sub, "dynamic"))
		type = VPC_TYPE_DYNAMIC;
	else if (!strcmp(sub, "fixed"))
		type = VPC_TYPE_FIXED;
	else {
		fmt_error("%s: Invalid subformat '%s'", spec, sub);
		return -EINVAL;
	}
	ret = fmt_options_get_bool(opts, "force_size", false, &force);
	if (ret < 0)
		return ret;
	if (fmt_options_get(opts, "backing_file")) {
		fmt_error("Backing file not supported for file format 'vpc'");
		return -ENOTSUP;
	}
	size = (size + VPC_SECTOR - 1) & ~(uint64_t)(VPC_SECTOR - 1);
	if (size / VPC_SECTOR > VPC_MAX_SECTORS) {
		fmt_error("%s: image size is too large for file format 'vpc'", spec);
		return -EFBIG;
	}
	if (force) {
		cyls = VPC_CHS_MAX_C;
		heads = VPC_CHS_MAX_H;
		secs = VPC_CHS_MAX_S;
	} else {
		ts = size / VPC_SECTOR;
		if (ts > VPC_MAX_GEOMETRY)
			ts = VPC_MAX_GEOMETRY;
		for (uint64_t i = 0; ts > (uint64_t)cyls * heads * secs; i++)
			vpc_geometry(ts + i, &cyls, &heads, &secs);
	}
	if ((uint64_t)cyls * heads * secs == VPC_MAX_GEOMETRY)
		total = size;
	else
		total = (uint64_t)cyls * heads * secs * VPC_SECTOR;

	memcpy(f->cookie, "conectix", 8);
	memcpy(f->creator_app, force ? "qem2" : "qemu", 4);
	memcpy(f->creator_os, "Wi2k", 4);
	f->features = htobe32(2);
	f->version = htobe32(0x00010000);
	f->data_offset = htobe64(type == VPC_TYPE_DYNAMIC ? VPC_FOOTER_SIZE : UINT64_MAX);
	f->timestamp = htobe32((uint32_t)(time(NULL) - VPC_TIMESTAMP_BASE));
	f->creator_ver = htobe32(0x00050003);
	f->orig_size = htobe64(total);
	f->current_size = htobe64(total);
	f->cyls = htobe16(cyls);
	f->heads = heads;
	f->secs = secs;
	f->type = htobe32(type);
	vpc_uuid(f->uuid);
	f->checksum = htobe32(vpc_checksum(footer_buf, VPC_FOOTER_SIZE, 64));

	ret = fmt_store_create(spec, 0, &st);
	if (ret < 0)
		return ret;
	if (type == VPC_TYPE_FIXED) {
		ret = fmt_store_pwrite(st, footer_buf, VPC_FOOTER_SIZE, total);
	} else {
		struct vpc_dyn_header dh;
		uint32_t entries = (total + VPC_DEFAULT_BLOCK - 1) / VPC_DEFAULT_BLOCK;
		size_t bat_bytes = ((size_t)entries * 4 + VPC_SECTOR - 1) & ~(size_t)(VPC_SECTOR - 1);
		uint8_t *bat = malloc(bat_bytes ? bat_bytes : 1);
		if (!bat) {
			ret = -ENOMEM;
			goto out;
		}
		memset(bat, 0xff, bat_bytes);
		memset(&dh, 0, sizeof(dh));
		memcpy(dh.cookie, "cxsparse", 8);
		dh.data_offset = htobe64(UINT64_MAX);
		dh.table_offset = htobe64(3 * VPC_SECTOR);
		dh.version = htobe32(0x00010000);
		dh.block_size = htobe32(VPC_DEFAULT_BLOCK);
		dh.max_table_entries = htobe32(entries);
		dh.checksum = htobe32(vpc_checksum((uint8_t *)&dh, sizeof(dh), 36));
		ret = fmt_store_pwrite(st, footer_buf, VPC_FOOTER_SIZE, 0);
		if (ret >= 0)
			ret = fmt_store_pwrite(st, &dh, sizeof(dh), VPC_FOOTER_SIZE);
		if (ret >= 0 && bat_bytes)
			ret = fmt_store_pwrite(st, bat, bat_bytes, 3 * VPC_SECTOR);
		if (ret >= 0)
			ret = fmt_store_pwrite(st, footer_buf, VPC_FOOTER_SIZE, 3 * VPC_SECTOR + bat_bytes);
		free(bat);
	}
out:
	fmt_store_close(st);
	return ret < 0 ? ret : 0;
}

const struct fmt_driver fmt_vpc_driver = {
	.name = "vpc",
	.flags = FMT_DRV_WRITE | FMT_DRV_CREATE,
	.probe = vpc_probe,
	.open = vpc_open,
	.map = vpc_map,
	.write = vpc_write,
	.create = vpc_create,
	.close = vpc_close,
};
