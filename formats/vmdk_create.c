/* vmdk_create.c: new VMDK images of every subformat qemu-img 7.2 makes (monolithicSparse and
 * Flat, twoGbMaxExtentSparse and Flat, streamOptimized): extent files named as qemu names them,
 * sparse extent skeletons, and the descriptor with its CIDs, adapter and hardware versions. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"
#include "vmdk_state.h"

struct vmdk_create_params {
	const char *subformat;
	const char *adapter;
	const char *hwversion;
	const char *toolsversion;
	bool zeroed_grain;
	const char *backing;
	uint32_t parent_cid;
	bool flat, split, stream;       /* from subformat */
};

/* write a sparse extent file: header, (embedded descriptor), redundant GD + GTs, GD + GTs */
static int vmdk_create_sparse(const char *path, uint64_t size, bool compress, bool zeroed_grain,
			      const char *desc)
{
	struct vmdk4_header h;
	struct fmt_store *st = NULL;
	uint64_t grains, gt_size, gt_count, gd_sectors, sectors = size / VMDK_SECTOR;
	uint32_t *gd = NULL;
	int ret;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, VMDK4_MAGIC, 4);
	h.version = htole32(compress ? 3 : zeroed_grain ? 2 : 1);
	h.flags = htole32(VMDK4_FLAG_RGD | VMDK4_FLAG_NL_DETECT |
			  (compress ? VMDK4_FLAG_COMPRESS | VMDK4_FLAG_MARKER : 0) |
			  (zeroed_grain ? VMDK4_FLAG_ZERO_GRAIN : 0));
	h.compress_algorithm = htole16(compress ? VMDK4_COMPRESS_DEFLATE : 0);
	h.capacity = htole64(sectors);
	h.granularity = htole64(128);
	h.num_gtes_per_gt = htole32(512);
	grains = (sectors + 127) / 128;
	gt_size = (512 * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
	gt_count = (grains + 511) / 512;
	gd_sectors = (gt_count * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
	h.desc_offset = htole64(1);
	h.desc_size = htole64(VMDK_DESC_SECTORS);
	h.rgd_offset = htole64(1 + VMDK_DESC_SECTORS);
	h.gd_offset = htole64(1 + VMDK_DESC_SECTORS + gd_sectors + gt_size * gt_count);
	h.grain_offset = htole64((le64toh(h.gd_offset) + gd_sectors + gt_size * gt_count + 127) / 128 * 128);
	h.check_bytes[0] = 0xa;
	h.check_bytes[1] = 0x20;
	h.check_bytes[2] = 0xd;
	h.check_bytes[3] = 0xa;
	if (le64toh(h.grain_offset) > UINT32_MAX) {
		fmt_error("%s: image too large for a VMDK sparse extent", path);
		return -EFBIG;
	}
	ret = fmt_store_create(path, le64toh(h.grain_offset) * VMDK_SECTOR, &st);
	if (ret < 0)
		return ret;
	ret = fmt_store_pwrite(st, &h, sizeof(h), 0);
	if (ret < 0)
		goto out;
	if (desc) {
		ret = fmt_store_pwrite(st, desc, strlen(desc), VMDK_SECTOR);
		if (ret < 0)
			goto out;
	}
	gd = calloc(gd_sectors, VMDK_SECTOR);
	if (!gd) {
		ret = -ENOMEM;
		goto out;
	}
	for (int copy = 0; copy < 2; copy++) {
		uint64_t base = copy ? le64toh(h.gd_offset) : le64toh(h.rgd_offset);
		for (uint64_t i = 0; i < gt_count; i++)
			gd[i] = htole32(base + gd_sectors + i * gt_size);
		ret = fmt_store_pwrite(st, gd, gd_sectors * VMDK_SECTOR, base * VMDK_SECTOR);
		if (ret < 0)
			goto out;
	}
	/* the GTs are zero: the store was created at its full metadata size */
out:
	free(gd);
	fmt_store_close(st);
	return ret < 0 ? ret : 0;
}

static char *vmdk_make_desc(const struct vmdk_create_params *p, uint64_t size, const char *extents,
			    uint32_t cid)
{
	char *desc, parent[4200] = "";
	int heads = strcmp(p->adapter, "ide") ? 255 : 16;
	if (p->backing)
		snprintf(parent, sizeof(parent), "parentFileNameHint=\"%s\"\n", p->backing);
	if (asprintf(&desc,
		     "# Disk DescriptorFile\n"
		     "version=1\n"
		     "CID=%" PRIx32 "\n"
		     "parentCID=%" PRIx32 "\n"
		     "createType=\"%s\"\n"
		     "%s"
		     "\n"
		     "# Extent description\n"
		     "%s"
		     "\n"
		     "# The Disk Data Base\n"
		     "#DDB\n"
		     "\n"
		     "ddb.virtualHWVersion = \"%s\"\n"
		     "ddb.geometry.cylinders = \"%llu\"\n"
		     "ddb.geometry.heads = \"%d\"\n"
		     "ddb.geometry.sectors = \"63\"\n"
		     "ddb.adapterType = \"%s\"\n"
		     "ddb.toolsVersion = \"%s\"\n",
		     cid, p->backing ? p->parent_cid : 0xffffffffu, p->subformat, parent, extents,
		     p->hwversion, (unsigned long long)(size / (63ull * heads * VMDK_SECTOR)), heads, p->adapter,
		     p->toolsversion) < 0)
		return NULL;
	return desc;
}

static uint32_t vmdk_random_cid(void)
{
	uint32_t v = 0;
	FILE *f = fopen("/dev/urandom", "r");
	if (!f || fread(&v, 1, sizeof(v), f) != sizeof(v))
		v = (uint32_t)rand();
	if (f)
		fclose(f);
	return v;
}

/* "dir/name.ext" -> base "name.ext", stem "name" and extension ".ext" (may be empty): extent
 * files are named stem-s001.ext, stem-flat.ext as qemu names them */
static int vmdk_split_name(const char *spec, const char **base, char **stem, const char **ext)
{
	const char *slash = strrchr(spec, '/'), *dot;
	*base = slash ? slash + 1 : spec;
	dot = strrchr(*base, '.');
	*ext = dot ? dot : *base + strlen(*base);
	*stem = strndup(*base, *ext - *base);
	return *stem ? 0 : -ENOMEM;
}

/* the create options, checked as qemu-img 7.2 checks them */
static int vmdk_create_parse_opts(const char *spec, const struct fmt_options *opts, struct vmdk_create_params *p)
{
	bool compat6 = false;
	int ret;

	static const char *const keys[] = { "subformat", "adapter_type", "hwversion", "toolsversion",
					    "compat6", "zeroed_grain", "backing_file", "backing_fmt" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		fmt_options_use(opts, keys[i]);
	p->subformat = fmt_options_get(opts, "subformat");
	if (!p->subformat)
		p->subformat = "monolithicSparse";
	if (strcmp(p->subformat, "monolithicSparse") && strcmp(p->subformat, "monolithicFlat") &&
	    strcmp(p->subformat, "twoGbMaxExtentSparse") && strcmp(p->subformat, "twoGbMaxExtentFlat") &&
	    strcmp(p->subformat, "streamOptimized")) {
		fmt_error("%s: invalid parameter value: %s", spec, p->subformat);
		return -EINVAL;
	}
	p->adapter = fmt_options_get(opts, "adapter_type");
	if (!p->adapter)
		p->adapter = "ide";
	if (strcmp(p->adapter, "ide") && strcmp(p->adapter, "lsilogic") && strcmp(p->adapter, "buslogic") &&
	    strcmp(p->adapter, "legacyESX")) {
		fmt_error("%s: invalid parameter value: %s", spec, p->adapter);
		return -EINVAL;
	}
	ret = fmt_options_get_bool(opts, "compat6", false, &compat6);
	if (ret < 0)
		return ret;
	ret = fmt_options_get_bool(opts, "zeroed_grain", false, &p->zeroed_grain);
	if (ret < 0)
		return ret;
	p->hwversion = fmt_options_get(opts, "hwversion");
	if (p->hwversion && compat6) {
		fmt_error("%s: compat6 cannot be enabled with hwversion set", spec);
		return -EINVAL;
	}
	if (!p->hwversion)
		p->hwversion = compat6 ? "6" : "4";
	for (const char *c = p->hwversion; *c; c++)
		if (!isdigit((unsigned char)*c) || c - p->hwversion > 8) {
			fmt_error("%s: invalid parameter value: %s", spec, p->hwversion);
			return -EINVAL;
		}
	p->toolsversion = fmt_options_get(opts, "toolsversion");
	if (!p->toolsversion)
		p->toolsversion = "2147483647";
	for (const char *c = p->toolsversion; *c; c++)
		if (!isdigit((unsigned char)*c) || c - p->toolsversion > 10) {
			fmt_error("%s: invalid parameter value: %s", spec, p->toolsversion);
			return -EINVAL;
		}
	p->flat = !strcmp(p->subformat, "monolithicFlat") || !strcmp(p->subformat, "twoGbMaxExtentFlat");
	p->split = !strncmp(p->subformat, "twoGb", 5);
	p->stream = !strcmp(p->subformat, "streamOptimized");
	p->backing = fmt_options_get(opts, "backing_file");
	return 0;
}

/* a backing file must be a vmdk image: its CID goes into parentCID, its size is the default */
static int vmdk_create_parent(const char *spec, const struct fmt_options *opts, struct vmdk_create_params *p,
			      uint64_t *size)
{
	const char *bfmt = fmt_options_get(opts, "backing_fmt");
	struct fmt_image *parent = NULL;
	char *ppath;
	int ret;

	if (p->flat) {
		fmt_error("%s: Flat image can't have backing file", spec);
		return -ENOTSUP;
	}
	if (bfmt && strcmp(bfmt, "vmdk")) {
		fmt_error("%s: backing_file must be a vmdk image (backing_fmt %s)", spec, bfmt);
		return -EINVAL;
	}
	ppath = fmt_store_sibling(spec, p->backing);
	if (!ppath)
		return -ENOMEM;
	ret = fmt_image_open(ppath, "vmdk", FMT_OPEN_NO_BACKING, NULL, &parent);
	free(ppath);
	if (ret < 0)
		return ret;
	if (strcmp(parent->drv->name, "vmdk")) {
		fmt_image_close(parent);
		fmt_error("%s: backing_file must be a vmdk image", spec);
		return -EINVAL;
	}
	p->parent_cid = ((struct vmdk_state *)parent->priv)->cid;
	if (!*size)
		*size = parent->virtual_size;
	fmt_image_close(parent);
	return 0;
}

/* the extent files of a descriptor-file image (one -flat file, or 2 GiB -fNNN / -sNNN pieces);
 * their descriptor lines are appended to *extents */
static int vmdk_create_extent_files(const char *spec, const struct vmdk_create_params *p, uint64_t size,
				    const char *stem, const char *ext, char **extents)
{
	uint64_t left = size, chunk = p->split ? VMDK_SPLIT_SIZE : size;
	size_t ext_len = 0;
	char *path = NULL;
	int idx = 1, ret;

	do {
		uint64_t n = left < chunk ? left : chunk;
		char *name = NULL, *line = NULL, *grown;
		if (p->split)
			ret = asprintf(&name, "%s-%c%03d%s", stem, p->flat ? 'f' : 's', idx++, ext);
		else
			ret = asprintf(&name, "%s-flat%s", stem, ext);
		if (ret < 0)
			return -ENOMEM;
		ret = asprintf(&line, p->flat ? "RW %" PRIu64 " FLAT \"%s\" 0\n" : "RW %" PRIu64 " SPARSE \"%s\"\n",
			       n / VMDK_SECTOR, name);
		free(path);
		path = fmt_store_sibling(spec, name);
		free(name);
		if (ret < 0 || !path) {
			free(line);
			ret = -ENOMEM;
			goto out;
		}
		grown = realloc(*extents, ext_len + strlen(line) + 1);
		if (!grown) {
			free(line);
			ret = -ENOMEM;
			goto out;
		}
		*extents = grown;
		memcpy(*extents + ext_len, line, strlen(line) + 1);
		ext_len += strlen(line);
		free(line);
		if (p->flat)
			ret = fmt_store_create(path, n, NULL);
		else
			ret = vmdk_create_sparse(path, n, false, p->zeroed_grain, NULL);
		if (ret < 0)
			goto out;
		left -= n;
	} while (left);
out:
	free(path);
	return ret;
}

int vmdk_create(const char *spec, uint64_t size, const struct fmt_options *opts)
{
	struct vmdk_create_params p = { 0 };
	char *stem = NULL, *extents = NULL, *desc = NULL;
	const char *base, *ext;
	struct fmt_store *st = NULL;
	uint32_t cid = vmdk_random_cid();
	int ret;

	ret = vmdk_create_parse_opts(spec, opts, &p);
	if (ret < 0)
		return ret;
	if (p.backing) {
		ret = vmdk_create_parent(spec, opts, &p, &size);
		if (ret < 0)
			return ret;
	}
	size = (size + VMDK_SECTOR - 1) & ~(uint64_t)(VMDK_SECTOR - 1);
	if (size / VMDK_SECTOR / 128 / 512 > VMDK_MAX_L1 && !p.flat) {
		fmt_error("%s: image size is too large for file format 'vmdk'", spec);
		return -EFBIG;
	}
	if (vmdk_split_name(spec, &base, &stem, &ext) < 0)
		return -ENOMEM;

	if (!p.split && !p.flat) {
		/* one file: header, embedded descriptor, tables */
		char line[4200];
		snprintf(line, sizeof(line), "RW %" PRIu64 " SPARSE \"%s\"\n", size / VMDK_SECTOR, base);
		desc = vmdk_make_desc(&p, size, line, cid);
		if (!desc) {
			ret = -ENOMEM;
			goto out;
		}
		if (strlen(desc) > VMDK_DESC_SECTORS * VMDK_SECTOR) {
			fmt_error("%s: descriptor too long", spec);
			ret = -EINVAL;
			goto out;
		}
		ret = vmdk_create_sparse(spec, size, p.stream, p.zeroed_grain, desc);
		goto out;
	}
	/* descriptor file plus extent files */
	ret = vmdk_create_extent_files(spec, &p, size, stem, ext, &extents);
	if (ret < 0)
		goto out;
	desc = vmdk_make_desc(&p, size, extents ? extents : "", cid);
	if (!desc) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fmt_store_create(spec, 0, &st);
	if (ret < 0)
		goto out;
	ret = fmt_store_pwrite(st, desc, strlen(desc), 0);
	fmt_store_close(st);
out:
	free(stem);
	free(extents);
	free(desc);
	return ret < 0 ? ret : 0;
}
