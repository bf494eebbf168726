/* vmdk_descriptor.c: the VMDK text descriptor: key lookup, CIDs, extent lines (ACCESS SECTORS
 * TYPE "FILE" [OFFSET]) opened as stores beside the descriptor, and the two ways an image starts:
 * a descriptor file, or a monolithic sparse file with the descriptor embedded. */
#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "util.h"
#include "vmdk_state.h"

/* value of "key = value" / key="value" lines; copies into out, unquoted */
static bool vmdk_desc_get(const char *desc, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = desc;
	while (p && *p) {
		const char *line = p, *eol = strchr(p, '\n');
		p = eol ? eol + 1 : NULL;
		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, key, klen))
			continue;
		const char *v = line + klen;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v != '=')
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		const char *end = eol ? eol : v + strlen(v);
		while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end - v >= 2 && *v == '"' && end[-1] == '"') {
			v++;
			end--;
		}
		size_t n = end - v;
		if (n >= outlen)
			n = outlen - 1;
		memcpy(out, v, n);
		out[n] = 0;
		return true;
	}
	return false;
}

static int vmdk_parse_cids(struct fmt_image *img, const char *desc)
{
	struct vmdk_state *s = img->priv;
	char v[64], *end;
	if (!vmdk_desc_get(desc, "CID", v, sizeof(v))) {
		fmt_error("%s: invalid VMDK image descriptor: no CID line", img->spec);
		return -EINVAL;
	}
	s->cid = strtoul(v, &end, 16);
	if (!vmdk_desc_get(desc, "parentCID", v, sizeof(v))) {
		fmt_error("%s: invalid VMDK image descriptor: no parentCID line", img->spec);
		return -EINVAL;
	}
	s->parent_cid = strtoul(v, &end, 16);
	if (vmdk_desc_get(desc, "parentFileNameHint", v, sizeof(v)) && *v) {
		char hint[4096];
		vmdk_desc_get(desc, "parentFileNameHint", hint, sizeof(hint));
		img->backing_spec = strdup(hint);
		img->backing_fmt = strdup("vmdk");
		if (!img->backing_spec || !img->backing_fmt)
			return -ENOMEM;
	}
	vmdk_desc_get(desc, "createType", s->create_type, sizeof(s->create_type));
	s->have_desc = true;
	return 0;
}

struct vmdk_extent *vmdk_add_extent(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e;
	if (s->nr_ext >= VMDK_MAX_EXTENTS) {
		fmt_error("%s: too many extents", img->spec);
		return NULL;
	}
	e = realloc(s->ext, (s->nr_ext + 1) * sizeof(*e));
	if (!e)
		return NULL;
	s->ext = e;
	e = &s->ext[s->nr_ext++];
	memset(e, 0, sizeof(*e));
	for (int i = 0; i < VMDK_GT_CACHE; i++)
		e->cache[i].index = UINT64_MAX;
	return e;
}

/* one extent line: ACCESS SECTORS TYPE "FILE" [OFFSET] */
static int vmdk_parse_extent_line(struct fmt_image *img, const char *line, uint64_t *vstart)
{
	char access[16], type[16], fname[4096];
	unsigned long long sectors, offset = 0;
	const char *q1, *q2;
	struct vmdk_extent *e;
	int n, ret;

	if (sscanf(line, "%15s %llu %15s", access, &sectors, type) != 3) {
		fmt_error("%s: invalid extent line '%.60s'", img->spec, line);
		return -EINVAL;
	}
	if (strcmp(type, "ZERO")) {
		q1 = strchr(line, '"');
		q2 = q1 ? strchr(q1 + 1, '"') : NULL;
		if (!q2 || q2 - q1 - 1 >= (long)sizeof(fname) || q2 == q1 + 1) {
			fmt_error("%s: invalid extent line '%.60s'", img->spec, line);
			return -EINVAL;
		}
		memcpy(fname, q1 + 1, q2 - q1 - 1);
		fname[q2 - q1 - 1] = 0;
		n = sscanf(q2 + 1, "%llu", &offset);
		if (n != 1)
			offset = 0;
		if (!strcmp(type, "FLAT") && n != 1) {
			fmt_error("%s: invalid extent line '%.60s' (FLAT needs an offset)", img->spec, line);
			return -EINVAL;
		}
	} else {
		fname[0] = 0;
	}
	if (sectors == 0 || sectors > (UINT64_MAX / VMDK_SECTOR - *vstart / VMDK_SECTOR) / 2 ||
	    offset > UINT64_MAX / VMDK_SECTOR / 2) {
		fmt_error("%s: invalid extent size in '%.60s'", img->spec, line);
		return -EINVAL;
	}
	if (strcmp(type, "FLAT") && strcmp(type, "VMFS") && strcmp(type, "SPARSE") &&
	    strcmp(type, "VMFSSPARSE") && strcmp(type, "ZERO")) {
		fmt_error("%s: unsupported extent type '%s'", img->spec, type);
		return -ENOTSUP;
	}
	if (strcmp(access, "RW") && strcmp(access, "RDONLY") && strcmp(access, "NOACCESS")) {
		fmt_error("%s: invalid extent access '%s'", img->spec, access);
		return -EINVAL;
	}
	if (!strcmp(access, "NOACCESS")) {
		fmt_error("%s: extent '%s' is NOACCESS", img->spec, fname);
		return -ENOTSUP;
	}
	e = vmdk_add_extent(img);
	if (!e)
		return -ENOMEM;
	e->start = *vstart;
	e->length = sectors * VMDK_SECTOR;
	e->filename = strdup(fname);
	if (!e->filename)
		return -ENOMEM;
	if (!strcmp(type, "ZERO")) {
		e->type = VMDK_ZERO;
		*vstart += e->length;
		return 0;
	}
	{
		char *path;
		ret = fmt_store_name_resolve(img->spec, fname, "extent", &path);
		if (ret < 0)
			return ret;
		ret = fmt_store_open(path, img->writable ? FMT_STORE_RDWR : FMT_STORE_RDONLY, &e->store);
		free(path);
		if (ret < 0)
			return ret;
		e->own_store = true;
	}
	if (!strcmp(type, "FLAT") || !strcmp(type, "VMFS")) {
		e->type = VMDK_FLAT;
		e->flat_offset = offset * VMDK_SECTOR;
	} else {
		char magic[4] = { 0 };
		ret = fmt_store_pread(e->store, magic, 4, 0);
		if (ret < 0)
			return ret;
		if (e->store->size >= VMDK_SECTOR && !memcmp(magic, VMDK4_MAGIC, 4))
			ret = vmdk_open_sparse4(img, e, sectors);
		else if (e->store->size >= sizeof(struct vmdk3_header) && !memcmp(magic, VMDK3_MAGIC, 4))
			ret = vmdk_open_cowd(img, e);
		else {
			fmt_error("%s: extent '%s' is not a sparse VMDK extent", img->spec, fname);
			ret = -EINVAL;
		}
		if (ret < 0)
			return ret;
		e->length = sectors * VMDK_SECTOR;
	}
	*vstart += e->length;
	return 0;
}



static const char *const vmdk_desc_types[] = {
	"monolithicFlat", "vmfs", "vmfsSparse", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
	"monolithicSparse", "streamOptimized", "custom", NULL
};

int vmdk_open_descriptor_file(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	uint64_t size = img->store->size, vstart = 0;
	char *desc, *p;
	bool known = false;
	int ret;

	if (size > VMDK_MAX_DESC)
		size = VMDK_MAX_DESC;
	desc = malloc(size + 1);
	if (!desc)
		return -ENOMEM;
	ret = fmt_store_pread(img->store, desc, size, 0);
	if (ret < 0)
		goto out;
	desc[size] = 0;   /* qemu pads descriptor files with NULs: the text ends at the first one */
	if (!vmdk_desc_get(desc, "createType", s->create_type, sizeof(s->create_type))) {
		fmt_error("%s: invalid VMDK image descriptor", img->spec);
		ret = -EINVAL;
		goto out;
	}
	for (int i = 0; vmdk_desc_types[i]; i++)
		known |= !strcmp(s->create_type, vmdk_desc_types[i]);
	if (!known) {
		fmt_error("%s: Unsupported image type '%s'", img->spec, s->create_type);
		ret = -ENOTSUP;
		goto out;
	}
	ret = vmdk_parse_cids(img, desc);
	if (ret < 0)
		goto out;
	for (p = desc; p && *p;) {
		char *line = p, *eol = strchr(p, '\n');
		if (eol)
			*eol = 0;
		p = eol ? eol + 1 : NULL;
		while (*line == ' ' || *line == '\t')
			line++;
		if (!strncmp(line, "RW ", 3) || !strncmp(line, "RDONLY ", 7) || !strncmp(line, "NOACCESS ", 9)) {
			ret = vmdk_parse_extent_line(img, line, &vstart);
			if (ret < 0)
				goto out;
		}
	}
	if (s->nr_ext == 0) {
		fmt_error("%s: VMDK descriptor lists no extents", img->spec);
		ret = -EINVAL;
		goto out;
	}
	img->virtual_size = vstart;
	ret = 0;
out:
	free(desc);
	return ret;
}

/* a KDMV file: it is its own single extent; the embedded descriptor gives CIDs and the parent */
int vmdk_open_monolithic(struct fmt_image *img)
{
	struct vmdk_state *s = img->priv;
	struct vmdk_extent *e = vmdk_add_extent(img);
	uint64_t doff, dsize;
	int ret;

	if (!e)
		return -ENOMEM;
	e->store = img->store;
	e->filename = strdup(img->spec);
	if (!e->filename)
		return -ENOMEM;
	if (img->store->size < VMDK_SECTOR) {
		fmt_error("%s: File truncated, expecting at least 512 bytes", img->spec);
		return -EINVAL;
	}
	ret = vmdk_open_sparse4(img, e, 0);
	if (ret < 0)
		return ret;
	doff = le64toh(e->header.desc_offset);
	dsize = le64toh(e->header.desc_size);
	if (doff && dsize) {
		char *desc;
		if (dsize > VMDK_MAX_DESC / VMDK_SECTOR || doff > img->store->size / VMDK_SECTOR ||
		    dsize * VMDK_SECTOR > img->store->size - doff * VMDK_SECTOR) {
			fmt_error("%s: embedded descriptor is past the end of the file", img->spec);
			return -EINVAL;
		}
		desc = malloc(dsize * VMDK_SECTOR + 1);
		if (!desc)
			return -ENOMEM;
		ret = fmt_store_pread(img->store, desc, dsize * VMDK_SECTOR, doff * VMDK_SECTOR);
		desc[dsize * VMDK_SECTOR] = 0;
		if (ret >= 0)
			ret = vmdk_parse_cids(img, desc);
		free(desc);
		if (ret < 0)
			return ret;
	}
	if (!s->create_type[0])
		snprintf(s->create_type, sizeof(s->create_type), "%s",
			 e->compressed ? "streamOptimized" : "monolithicSparse");
	img->virtual_size = e->length;
	return 0;
}
