/* qcow2_snapshot.c: qcow2 internal snapshots: the snapshot table read and checked, listed, and
 * one snapshot loaded read-only as the image to read (qemu-img convert -l). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_state.h"

struct qcow2_snap_entry {
	struct fmt_snapshot pub;
	uint64_t l1_offset;
	uint32_t l1_size;
};

/* parse the snapshot table; *out is malloc'd (nb_snapshots entries) */
static int qcow2_read_snapshots(struct qcow2_state *s, struct qcow2_snap_entry **out)
{
	struct fmt_image *img = s->img;
	struct qcow2_snap_entry *list = NULL;
	uint8_t *tab = NULL;
	uint64_t tab_len = 64ull << 20, pos = 0;
	int ret;

	*out = NULL;
	if (!s->nb_snapshots)
		return 0;
	if (tab_len > s->file_size - s->snapshots_offset)
		tab_len = s->file_size - s->snapshots_offset;
	tab = malloc(tab_len);
	list = calloc(s->nb_snapshots, sizeof(*list));
	if (!tab || !list) {
		fmt_error("%s: out of memory for the snapshot table", img->spec);
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, tab, tab_len, s->snapshots_offset);
	if (ret < 0)
		goto fail;
	ret = -EINVAL;
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		struct qcow2_snap_entry *e = &list[i];
		if (pos + 40 > tab_len)
			goto truncated;
		const uint8_t *p = tab + pos;
		e->l1_offset = fmt_be64(p);
		e->l1_size = fmt_be32(p + 8);
		uint16_t id_len = fmt_be16(p + 12), name_len = fmt_be16(p + 14);
		e->pub.date_sec = fmt_be32(p + 16);
		e->pub.date_nsec = fmt_be32(p + 20);
		e->pub.vm_clock_nsec = fmt_be64(p + 24);
		e->pub.vm_state_size = fmt_be32(p + 32);
		uint32_t extra = fmt_be32(p + 36);
		e->pub.disk_size = s->size;
		if (extra > 1024) {
			fmt_error("%s: Too much extra metadata in snapshot table entry %u", img->spec, i);
			goto fail;
		}
		if (pos + 40 + extra + id_len + name_len > tab_len)
			goto truncated;
		if (extra >= 8)
			e->pub.vm_state_size = fmt_be64(p + 40);
		if (extra >= 16)
			e->pub.disk_size = fmt_be64(p + 48);
		if (extra >= 24)
			e->pub.icount_valid = fmt_be64(p + 56) != UINT64_MAX;
		size_t n = id_len < sizeof(e->pub.id) - 1 ? id_len : sizeof(e->pub.id) - 1;
		memcpy(e->pub.id, p + 40 + extra, n);
		n = name_len < sizeof(e->pub.name) - 1 ? name_len : sizeof(e->pub.name) - 1;
		memcpy(e->pub.name, p + 40 + extra + id_len, n);
		if ((uint64_t)e->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
			fmt_error("%s: Snapshot L1 table too large", img->spec);
			goto fail;
		}
		if (e->l1_offset & (s->cluster_size - 1)) {
			fmt_error("%s: Snapshot L1 table offset invalid", img->spec);
			goto fail;
		}
		pos += (40 + extra + id_len + name_len + 7) & ~7ull;
	}
	free(tab);
	*out = list;
	return 0;
truncated:
	fmt_error("%s: snapshot table truncated or past end of file", img->spec);
fail:
	free(tab);
	free(list);
	return ret;
}

int qcow2_snapshots(struct fmt_image *img, struct fmt_snapshot **out, int *nr)
{
	struct qcow2_state *s = img->priv;
	struct qcow2_snap_entry *list;
	int ret = qcow2_read_snapshots(s, &list);

	*out = NULL;
	*nr = 0;
	if (ret < 0 || !s->nb_snapshots)
		return ret;
	*out = calloc(s->nb_snapshots, sizeof(**out));
	if (!*out) {
		free(list);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->nb_snapshots; i++)
		(*out)[i] = list[i].pub;
	*nr = s->nb_snapshots;
	free(list);
	return 0;
}

int qcow2_snapshot_load(struct fmt_image *img, const char *id_or_name)
{
	struct qcow2_state *s = img->priv;
	struct qcow2_snap_entry *list, *e = NULL;
	const char *want_id = NULL, *want_name = NULL;
	int ret = qcow2_read_snapshots(s, &list);

	if (ret < 0)
		return ret;
	/* "snapshot.id=X,snapshot.name=Y" or a bare id-or-name */
	char *copy = strdup(id_or_name), *tok, *save = NULL;
	if (!copy) {
		free(list);
		return -ENOMEM;
	}
	if (strstr(copy, "snapshot.")) {
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (!strncmp(tok, "snapshot.id=", 12))
				want_id = tok + 12;
			else if (!strncmp(tok, "snapshot.name=", 14))
				want_name = tok + 14;
		}
	}
	for (uint32_t i = 0; i < s->nb_snapshots && !e; i++) {
		struct qcow2_snap_entry *c = &list[i];
		if (want_id || want_name) {
			if ((!want_id || !strcmp(c->pub.id, want_id)) && (!want_name || !strcmp(c->pub.name, want_name)))
				e = c;
		} else if (!strcmp(c->pub.id, id_or_name)) {
			e = c;
		}
	}
	for (uint32_t i = 0; i < s->nb_snapshots && !e && !want_id && !want_name; i++)
		if (!strcmp(list[i].pub.name, id_or_name))
			e = &list[i];
	free(copy);
	if (!e) {
		fmt_error("%s: Failed to load snapshot: Can't find snapshot '%s'", img->spec, id_or_name);
		free(list);
		return -ENOENT;
	}
	uint64_t shift = s->cluster_bits + s->l2_bits;
	uint64_t dsize = e->pub.disk_size;
	uint64_t need = (dsize + (1ull << shift) - 1) >> shift;
	if (e->l1_size < need || dsize > (1ull << 62)) {
		fmt_error("%s: snapshot '%s': L1 table is too small", img->spec, id_or_name);
		free(list);
		return -EINVAL;
	}
	if (e->l1_size && (e->l1_offset >= s->file_size || (uint64_t)e->l1_size * 8 > s->file_size - e->l1_offset)) {
		fmt_error("%s: snapshot '%s': L1 table past end of file", img->spec, id_or_name);
		free(list);
		return -EINVAL;
	}
	uint64_t *l1 = calloc(e->l1_size ? e->l1_size : 1, 8);
	if (!l1) {
		free(list);
		return -ENOMEM;
	}
	ret = e->l1_size ? fmt_store_pread(img->store, l1, (size_t)e->l1_size * 8, e->l1_offset) : 0;
	if (ret < 0) {
		free(l1);
		free(list);
		return ret;
	}
	for (uint32_t i = 0; i < e->l1_size; i++)
		l1[i] = be64toh(l1[i]);
	pthread_mutex_lock(&s->lock);
	free(s->l1);
	s->l1 = l1;
	s->l1_size = e->l1_size;
	pthread_mutex_unlock(&s->lock);
	img->virtual_size = dsize;
	img->writable = false;
	free(list);
	return 0;
}
