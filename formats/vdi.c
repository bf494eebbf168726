/* vdi.c: VirtualBox VDI images (dynamic and static): read, write, create, check.
 *
 * Layout (little-endian): a 512-byte header, a block map of u32 entries at offset_bmap (one per
 * 1 MiB block: 0xFFFFFFFF never written, 0xFFFFFFFE discarded, else the index of the block in
 * the data area at offset_data). New blocks are appended at index next_block; the block map
 * entry and header.blocks_allocated are written back after each allocation, so the image is
 * consistent for `qemu-img check` after every write. Unwritten parts of a new block are left as
 * file holes (they read as zeros). Writes are serialized by the caller (no FMT_DRV_THREADS).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "util.h"

#define VDI_SIGNATURE      0xbeda107fu
#define VDI_VERSION_1_1    0x00010001u
#define VDI_TYPE_DYNAMIC   1
#define VDI_TYPE_STATIC    2
#define VDI_UNALLOCATED    0xffffffffu
#define VDI_DISCARDED      0xfffffffeu
#define VDI_SECTOR         512
#define VDI_BLOCK_SIZE     (1u << 20)
#define VDI_BLOCKS_MAX     0x1fffff80u
#define VDI_DISK_SIZE_MAX  ((uint64_t)VDI_BLOCKS_MAX * VDI_BLOCK_SIZE)
#define VDI_TEXT           "<<< QEMU VM Virtual Disk Image >>>\n"

struct vdi_header {
	char text[0x40];
	uint32_t signature;
	uint32_t version;
	uint32_t header_size;
	uint32_t image_type;
	uint32_t image_flags;
	char description[256];
	uint32_t offset_bmap;
	uint32_t offset_data;
	uint32_t cylinders, heads, sectors;
	uint32_t sector_size;
	uint32_t unused1;
	uint64_t disk_size;
	uint32_t block_size;
	uint32_t block_extra;
	uint32_t blocks_in_image;
	uint32_t blocks_allocated;
	uint8_t uuid_image[16];
	uint8_t uuid_last_snap[16];
	uint8_t uuid_link[16];
	uint8_t uuid_parent[16];
	uint8_t unused2[56];
} __attribute__((packed));

_Static_assert(sizeof(struct vdi_header) == 512, "VDI header size");
#define VDI_OFF_BLOCKS_ALLOCATED 0x184

struct vdi_state {
	uint32_t type;
	uint32_t offset_bmap, offset_data;
	uint32_t blocks;
	uint32_t blocks_allocated;   /* as in the header */
	uint32_t next_block;         /* index for the next new block */
	uint32_t *bmap;              /* host byte order */
};

static int vdi_probe(const uint8_t *buf, size_t len, const char *spec)
{
	uint32_t sig;
	if (len < 0x44)
		return 0;
	memcpy(&sig, buf + 0x40, 4);
	return le32toh(sig) == VDI_SIGNATURE ? 100 : 0;
}

static void vdi_close(struct fmt_image *img)
{
	struct vdi_state *s = img->priv;
	if (!s)
		return;
	free(s->bmap);
	free(s);
	img->priv = NULL;
}

static int vdi_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct vdi_header h;
	struct vdi_state *s;
	uint64_t fsize = img->store->size, disk_size, bmap_bytes;
	int ret;

	ret = fmt_image_read_header(img, &h, sizeof(h), "VDI");
	if (ret < 0)
		return ret;
	if (le32toh(h.signature) != VDI_SIGNATURE) {
		fmt_error("%s: Image not in VDI format (bad signature %08x)", img->spec,
			  le32toh(h.signature));
		return -EINVAL;
	}
	if (le32toh(h.version) != VDI_VERSION_1_1) {
		fmt_error("%s: unsupported VDI image (version %u.%u)", img->spec,
			  le32toh(h.version) >> 16, le32toh(h.version) & 0xffff);
		return -ENOTSUP;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	img->priv = s;
	s->type = le32toh(h.image_type);
	s->offset_bmap = le32toh(h.offset_bmap);
	s->offset_data = le32toh(h.offset_data);
	s->blocks = le32toh(h.blocks_in_image);
	s->blocks_allocated = le32toh(h.blocks_allocated);
	disk_size = le64toh(h.disk_size);
	ret = -EINVAL;
	if (s->type != VDI_TYPE_DYNAMIC && s->type != VDI_TYPE_STATIC) {
		fmt_error("%s: unsupported VDI image (image type %u)", img->spec, s->type);
		goto fail;
	}
	if (disk_size > VDI_DISK_SIZE_MAX) {
		fmt_error("%s: Unsupported VDI image size (size is 0x%llx, max supported is 0x%llx)",
			  img->spec, (unsigned long long)disk_size, (unsigned long long)VDI_DISK_SIZE_MAX);
		goto fail;
	}
	/* VBoxManage makes odd sizes; qemu rounds them up */
	disk_size = (disk_size + VDI_SECTOR - 1) & ~(uint64_t)(VDI_SECTOR - 1);
	if (s->offset_bmap % VDI_SECTOR) {
		fmt_error("%s: unsupported VDI image (unaligned block map offset 0x%x)", img->spec,
			  s->offset_bmap);
		goto fail;
	}
	if (s->offset_data % VDI_SECTOR) {
		fmt_error("%s: unsupported VDI image (unaligned data offset 0x%x)", img->spec,
			  s->offset_data);
		goto fail;
	}
	if (le32toh(h.sector_size) != VDI_SECTOR) {
		fmt_error("%s: unsupported VDI image (sector size %u is not %u)", img->spec,
			  le32toh(h.sector_size), VDI_SECTOR);
		goto fail;
	}
	if (le32toh(h.block_size) != VDI_BLOCK_SIZE) {
		fmt_error("%s: unsupported VDI image (block size %u is not %u)", img->spec,
			  le32toh(h.block_size), VDI_BLOCK_SIZE);
		goto fail;
	}
	if (disk_size > (uint64_t)s->blocks * VDI_BLOCK_SIZE) {
		fmt_error("%s: unsupported VDI image (disk size %llu, image bitmap has room for %llu)",
			  img->spec, (unsigned long long)disk_size,
			  (unsigned long long)s->blocks * VDI_BLOCK_SIZE);
		goto fail;
	}
	if (!is_all_zero(h.uuid_link, sizeof(h.uuid_link))) {
		fmt_error("%s: unsupported VDI image (non-NULL link UUID)", img->spec);
		goto fail;
	}
	if (!is_all_zero(h.uuid_parent, sizeof(h.uuid_parent))) {
		fmt_error("%s: unsupported VDI image (non-NULL parent UUID)", img->spec);
		goto fail;
	}
	if (s->blocks > VDI_BLOCKS_MAX) {
		fmt_error("%s: unsupported VDI image (too many blocks %u, max is %u)", img->spec,
			  s->blocks, VDI_BLOCKS_MAX);
		goto fail;
	}
	bmap_bytes = (uint64_t)s->blocks * 4;
	if (s->offset_bmap < sizeof(h) || s->offset_bmap > fsize || bmap_bytes > fsize - s->offset_bmap) {
		fmt_error("%s: block map (%llu bytes at %u) is past the end of the file", img->spec,
			  (unsigned long long)bmap_bytes, s->offset_bmap);
		goto fail;
	}
	if ((uint64_t)s->offset_bmap + bmap_bytes > s->offset_data) {
		fmt_error("%s: block map overlaps the data area at %u", img->spec, s->offset_data);
		goto fail;
	}
	s->bmap = malloc(bmap_bytes ? bmap_bytes : 1);
	if (!s->bmap) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, s->bmap, bmap_bytes, s->offset_bmap);
	if (ret < 0)
		goto fail;
	s->next_block = s->blocks_allocated;
	for (uint32_t i = 0; i < s->blocks; i++) {
		uint32_t e = le32toh(s->bmap[i]);
		s->bmap[i] = e;
		if (e == VDI_UNALLOCATED || e == VDI_DISCARDED)
			continue;
		if (e >= s->blocks) {
			fmt_error("%s: block map entry %u points to block %u, past the %u blocks of the image",
				  img->spec, i, e, s->blocks);
			ret = -EINVAL;
			goto fail;
		}
		if (e >= s->next_block)
			s->next_block = e + 1;
	}
	/* two entries sharing a data block would make writes to one show up in the other */
	if (img->writable) {
		uint8_t *seen = calloc((s->blocks + 7) / 8 + 1, 1);
		if (!seen) {
			ret = -ENOMEM;
			goto fail;
		}
		for (uint32_t i = 0; i < s->blocks; i++) {
			uint32_t e = s->bmap[i];
			if (e == VDI_UNALLOCATED || e == VDI_DISCARDED)
				continue;
			if (seen[e / 8] & (1 << (e % 8))) {
				fmt_error("%s: block map entry %u shares data block %u with another entry; "
					  "refusing to write", img->spec, i, e);
				free(seen);
				ret = -EINVAL;
				goto fail;
			}
			seen[e / 8] |= 1 << (e % 8);
		}
		free(seen);
	}
	img->virtual_size = disk_size;
	img->cluster_size = VDI_BLOCK_SIZE;
	return 0;
fail:
	vdi_close(img);
	return ret;
}

/* the block holding off: in the data area, or zeros (never written or discarded) */
static int vdi_map(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *host,
		   uint64_t *n)
{
	struct vdi_state *s = img->priv;
	uint64_t idx = off / VDI_BLOCK_SIZE, in_block = off % VDI_BLOCK_SIZE;
	uint32_t e = idx < s->blocks ? s->bmap[idx] : VDI_UNALLOCATED;

	*n = VDI_BLOCK_SIZE - in_block;
	if (e == VDI_UNALLOCATED || e == VDI_DISCARDED) {
		*bits = FMT_BS_ZERO;
	} else {
		*bits = FMT_BS_DATA | FMT_BS_ALLOCATED;
		*host = s->offset_data + (uint64_t)e * VDI_BLOCK_SIZE + in_block;
	}
	return 0;
}

/* give block idx the next free data block; the file grows to cover it (a hole reads as zeros) */
static int vdi_alloc_block(struct fmt_image *img, uint32_t idx)
{
	struct vdi_state *s = img->priv;
	uint64_t end;
	uint32_t le;
	uint8_t zero[VDI_SECTOR] = { 0 };
	int ret;

	if (s->next_block >= s->blocks) {
		fmt_error("%s: no free block left in the image (block map corrupt?)", img->spec);
		return -ENOSPC;
	}
	s->bmap[idx] = s->next_block++;
	end = s->offset_data + (uint64_t)s->next_block * VDI_BLOCK_SIZE;
	if (img->store->size < end) {
		ret = fmt_store_pwrite(img->store, zero, VDI_SECTOR, end - VDI_SECTOR);
		if (ret < 0)
			return ret;
	}
	le = htole32(s->bmap[idx]);
	ret = fmt_store_pwrite(img->store, &le, 4, s->offset_bmap + (uint64_t)idx * 4);
	if (ret < 0)
		return ret;
	s->blocks_allocated++;
	le = htole32(s->blocks_allocated);
	return fmt_store_pwrite(img->store, &le, 4, VDI_OFF_BLOCKS_ALLOCATED);
}

static int vdi_locate(struct fmt_image *img, uint64_t idx, bool alloc, uint64_t *host)
{
	struct vdi_state *s = img->priv;
	if (s->bmap[idx] == VDI_UNALLOCATED || s->bmap[idx] == VDI_DISCARDED) {
		if (!alloc)
			return 0;
		int ret = vdi_alloc_block(img, idx);
		if (ret < 0)
			return ret;
	}
	*host = s->offset_data + (uint64_t)s->bmap[idx] * VDI_BLOCK_SIZE;
	return 1;
}

static int vdi_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct vdi_state *s = img->priv;
	return fmt_block_write(img, buf, len, off, VDI_BLOCK_SIZE, s->blocks, vdi_locate);
}

/* qemu's vdi check: every entry in range and unique, blocks_allocated matching */
static int vdi_check(struct fmt_image *img, struct fmt_check_result *res)
{
	struct vdi_state *s = img->priv;
	uint8_t *seen = calloc((s->blocks + 7) / 8 + 1, 1);
	uint32_t allocated = 0;

	if (!seen)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->blocks; i++) {
		uint32_t e = s->bmap[i];
		if (e == VDI_UNALLOCATED || e == VDI_DISCARDED)
			continue;
		allocated++;
		if (e >= s->blocks) {
			res->corruptions++;
			continue;
		}
		if (seen[e / 8] & (1 << (e % 8)))
			res->corruptions++;
		seen[e / 8] |= 1 << (e % 8);
	}
	if (allocated != s->blocks_allocated)
		res->corruptions++;
	free(seen);
	res->allocated_clusters = allocated;
	res->total_clusters = s->blocks;
	res->image_end_offset = s->offset_data + (uint64_t)s->next_block * VDI_BLOCK_SIZE;
	return 0;
}

static void vdi_uuid(uint8_t *u)
{
	FILE *f = fopen("/dev/urandom", "r");
	if (!f || fread(u, 1, 16, f) != 16)
		for (int i = 0; i < 16; i++)
			u[i] = rand();
	if (f)
		fclose(f);
	u[7] = (u[7] & 0x0f) | 0x40;   /* GUID layout: version nibble in the high byte of field 3 */
	u[8] = (u[8] & 0x3f) | 0x80;
}

static int vdi_create(const char *spec, uint64_t size, const struct fmt_options *opts)
{
	struct vdi_header h;
	struct fmt_store *st = NULL;
	uint32_t blocks, *bmap = NULL;
	size_t bmap_bytes;
	uint64_t data_off, file_size;
	bool is_static = false;
	const char *prealloc;
	int ret;

	fmt_options_use(opts, "static");
	ret = fmt_options_get_bool(opts, "static", false, &is_static);
	if (ret < 0)
		return ret;
	prealloc = fmt_options_get(opts, "preallocation");
	if (prealloc && strcmp(prealloc, "off") && strcmp(prealloc, "falloc") && strcmp(prealloc, "full")) {
		fmt_error("Unsupported preallocation mode: %s", prealloc);
		return -EINVAL;
	}
	fmt_options_use(opts, "preallocation");
	size = (size + VDI_SECTOR - 1) & ~(uint64_t)(VDI_SECTOR - 1);
	if (size > VDI_DISK_SIZE_MAX) {
		fmt_error("%s: Unsupported VDI image size (size is 0x%llx, max supported is 0x%llx)",
			  spec, (unsigned long long)size, (unsigned long long)VDI_DISK_SIZE_MAX);
		return -ENOTSUP;
	}
	blocks = (size + VDI_BLOCK_SIZE - 1) / VDI_BLOCK_SIZE;
	bmap_bytes = ((size_t)blocks * 4 + VDI_SECTOR - 1) & ~(size_t)(VDI_SECTOR - 1);
	data_off = sizeof(h) + bmap_bytes;
	file_size = is_static ? data_off + (uint64_t)blocks * VDI_BLOCK_SIZE : data_off;

	memset(&h, 0, sizeof(h));
	memcpy(h.text, VDI_TEXT, sizeof(VDI_TEXT) - 1);
	h.signature = htole32(VDI_SIGNATURE);
	h.version = htole32(VDI_VERSION_1_1);
	h.header_size = htole32(0x180);
	h.image_type = htole32(is_static ? VDI_TYPE_STATIC : VDI_TYPE_DYNAMIC);
	h.offset_bmap = htole32(sizeof(h));
	h.offset_data = htole32(data_off);
	h.sector_size = htole32(VDI_SECTOR);
	h.disk_size = htole64(size);
	h.block_size = htole32(VDI_BLOCK_SIZE);
	h.blocks_in_image = htole32(blocks);
	h.blocks_allocated = htole32(is_static ? blocks : 0);
	vdi_uuid(h.uuid_image);
	vdi_uuid(h.uuid_last_snap);

	bmap = malloc(bmap_bytes ? bmap_bytes : 1);
	if (!bmap)
		return -ENOMEM;
	memset(bmap, 0, bmap_bytes);
	for (uint32_t i = 0; i < blocks; i++)
		bmap[i] = htole32(is_static ? i : VDI_UNALLOCATED);

	ret = fmt_store_create(spec, file_size, &st);
	if (ret < 0)
		goto out;
	/* the store was created at file_size: a static image's blocks are there (sparse) */
	ret = fmt_store_pwrite(st, &h, sizeof(h), 0);
	if (ret >= 0 && bmap_bytes)
		ret = fmt_store_pwrite(st, bmap, bmap_bytes, sizeof(h));
	fmt_store_close(st);
out:
	free(bmap);
	return ret < 0 ? ret : 0;
}

const struct fmt_driver fmt_vdi_driver = {
	.name = "vdi",
	.flags = FMT_DRV_WRITE | FMT_DRV_CREATE,
	.probe = vdi_probe,
	.open = vdi_open,
	.map = vdi_map,
	.write = vdi_write,
	.create = vdi_create,
	.check = vdi_check,
	.close = vdi_close,
};
