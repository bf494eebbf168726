/* vdi_snap.c: collie vdi snapshot | clone | rollback | tree: a VDI's family of snapshots and
 * clones. The sheep does the work (NEW_VDI, ROLLBACK_VDI); these commands check arguments first
 * so that bad input changes nothing. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collie.h"
#include "json_out.h"
#include "net.h"
#include "sd_client.h"
#include "util.h"
#include "vdi_lifecycle.h"

int check_snap_arg(const char *snap)
{
	if (!snap)
		return 0;
	if (!*snap) {
		die_msg("the snapshot tag or id is empty");
		return -1;
	}
	if (strlen(snap) >= SD_MAX_VDI_TAG_LEN) {
		die_msg("the snapshot tag is %zu bytes long; at most %d are allowed", strlen(snap), SD_MAX_VDI_TAG_LEN - 1);
		return -1;
	}
	return 0;
}

/* READ_OBJ on an open connection: one sheep connection serves a whole listing */
int vdi_read_obj_fd(int fd, uint64_t oid, void *buf, uint32_t len, uint32_t offset)
{
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_OBJ, .data_length = len };
	struct sd_rsp rsp;
	hdr.obj.oid = oid;
	hdr.obj.offset = offset;
	if (exec_req(fd, &hdr, buf, len, &rsp) < 0)
		return -EIO;
	if (rsp.result == SD_RES_SUCCESS && rsp.data_length < len)
		memset((char *)buf + rsp.data_length, 0, len - rsp.data_length);
	return rsp.result;
}

/* clear the bits of deleted VDIs (their tombstones need not be read); best effort */
static void skip_deleted(uint8_t *bitmap)
{
	uint32_t cap = 16u << 20;
	struct vdi_state *st = malloc(cap);
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_VDI_COPIES, .data_length = cap };
	struct sd_rsp rsp;
	if (st && sheep_exec(&req, st, cap, &rsp) == SD_RES_SUCCESS)
		for (size_t i = 0; i < rsp.data_length / sizeof(*st); i++)
			if (st[i].deleted && st[i].vid < SD_NR_VDIS)
				bitmap[st[i].vid / 8] &= ~(1u << (st[i].vid % 8));
	free(st);
}

int vdi_collect(struct vdi_entry **out, int *nr, bool tombstones)
{
	uint8_t *bitmap = calloc(1, SD_NR_VDIS / 8);
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_VDIS, .data_length = SD_NR_VDIS / 8 };
	struct sd_rsp rsp;
	struct vdi_entry *list = NULL;
	int n = 0, cap = 0, ret = -ENOMEM, fd = -1;

	if (!bitmap)
		goto out;
	ret = sheep_exec(&req, bitmap, SD_NR_VDIS / 8, &rsp);
	if (ret)
		goto out;
	if (!tombstones)
		skip_deleted(bitmap);
	fd = connect_to(sd_addr, sd_port, 5000, 120000);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	for (uint32_t vid = 1; vid < SD_NR_VDIS; vid++) {
		if (!bitmap[vid / 8]) {
			vid |= 7;
			continue;
		}
		if (!(bitmap[vid / 8] & (1u << (vid % 8))))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct vdi_entry *nl = realloc(list, cap * sizeof(*list));
			if (!nl) {
				ret = -ENOMEM;
				goto out;
			}
			list = nl;
		}
		ret = vdi_read_obj_fd(fd, vid_to_vdi_oid(vid), &list[n].hdr, sizeof(list[n].hdr), 0);
		if (ret == SD_RES_NO_OBJ)
			continue;
		if (ret)
			goto out;
		if (!list[n].hdr.name[0] && !tombstones)
			continue;
		list[n].vid = vid;
		n++;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(bitmap);
	if (ret) {
		free(list);
		return ret;
	}
	*out = list;
	*nr = n;
	return 0;
}

int vdi_snapshot(int argc, char **argv)
{
	const char *tag = opt('s');
	char what[300];
	if (check_vdi_name(argv[0]) < 0 || check_snap_arg(tag) < 0)
		return EXIT_USAGE;
	if (tag && sd_snap_is_id(tag)) {
		die_msg("vdi snapshot %s: the tag '%s' is a number and could not be told from a snapshot id", argv[0], tag);
		return EXIT_USAGE;
	}
	snprintf(what, sizeof(what), "vdi snapshot %s", argv[0]);
	int ret = sd_vdi_snapshot(sd_addr, sd_port, argv[0], tag, NULL);
	if (ret == SD_RES_VDI_EXIST) {
		die_msg("%s: a snapshot tagged '%s' exists already", what, tag);
		return EXIT_EXISTS;
	}
	if (ret == SD_RES_NO_VDI) {
		die_msg("%s: no such VDI (or it has no working VDI)", what);
		return EXIT_MISSING;
	}
	return ret ? report_failure(what, ret) : 0;
}

/* the newest snapshot of name, as a decimal id in buf; NULL if it has none */
static const char *latest_snapshot(const char *name, char *buf, size_t len, int *err)
{
	struct vdi_entry *list;
	int nr;
	uint32_t best = 0;
	*err = vdi_collect(&list, &nr, false);
	if (*err)
		return NULL;
	for (int i = 0; i < nr; i++)
		if (list[i].hdr.snap_ctime && !strcmp(list[i].hdr.name, name) && list[i].hdr.snap_id > best)
			best = list[i].hdr.snap_id;
	free(list);
	if (!best)
		return NULL;
	snprintf(buf, len, "%" PRIu32, best);
	return buf;
}

int vdi_clone(int argc, char **argv)
{
	const char *snap = opt('s');
	char what[600], idbuf[16];
	int ret;
	if (check_vdi_name(argv[0]) < 0 || check_vdi_name(argv[1]) < 0 || check_snap_arg(snap) < 0)
		return EXIT_USAGE;
	snprintf(what, sizeof(what), "vdi clone %s %s", argv[0], argv[1]);
	if (!snap) {
		snap = latest_snapshot(argv[0], idbuf, sizeof(idbuf), &ret);
		if (ret)
			return report_failure(what, ret);
		if (!snap) {
			die_msg("%s: %s has no snapshot to clone (take one with: collie vdi snapshot %s)", what, argv[0], argv[0]);
			return EXIT_MISSING;
		}
	}
	ret = sd_vdi_clone(sd_addr, sd_port, argv[0], snap, argv[1], 0, NULL);
	switch (ret) {
	case SD_RES_SUCCESS:
		return 0;
	case SD_RES_VDI_EXIST:
		die_msg("%s: a VDI named %s exists already", what, argv[1]);
		return EXIT_EXISTS;
	case SD_RES_NO_TAG:
		die_msg("%s: %s has no snapshot '%s'", what, argv[0], snap);
		return EXIT_MISSING;
	case SD_RES_NO_VDI:
		die_msg("%s: no such VDI %s", what, argv[0]);
		return EXIT_MISSING;
	}
	return report_failure(what, ret);
}

int vdi_rollback(int argc, char **argv)
{
	const char *snap = opt('s');
	char what[300];
	if (check_vdi_name(argv[0]) < 0 || check_snap_arg(snap) < 0)
		return EXIT_USAGE;
	snprintf(what, sizeof(what), "vdi rollback %s", argv[0]);
	if (!snap) {
		die_msg("%s: name the snapshot to roll back to with -s TAG|ID", what);
		return EXIT_USAGE;
	}
	int ret = sd_vdi_rollback(sd_addr, sd_port, argv[0], snap);
	switch (ret) {
	case SD_RES_SUCCESS:
		return 0;
	case SD_RES_NO_TAG:
		die_msg("%s: no snapshot '%s'", what, snap);
		return EXIT_MISSING;
	case SD_RES_NO_VDI:
		die_msg("%s: no such VDI (or it has no working VDI)", what);
		return EXIT_MISSING;
	}
	return report_failure(what, ret);
}

/* ---- tree ---- */

struct json_object *vdi_json(const struct sd_inode_header *h, uint32_t vid)
{
	struct json_object *o = json_object_new_object();
	bool snap = h->snap_ctime != 0, clone = !snap && (h->reserved_area[SD_INODE_FLAGS_WORD] & SD_INODE_FLAG_CLONE);
	json_add_str(o, "name", h->name);
	json_add_str(o, "type", snap ? "snapshot" : clone ? "clone" : "vdi");
	json_add_u64(o, "snapshot-id", snap ? h->snap_id : 0);
	json_add_str(o, "tag", h->tag);
	json_add_u64(o, "vdi-id", vid);
	json_add_i64(o, "created", (int64_t)((snap ? h->snap_ctime : h->create_time) >> 32));
	return o;
}


struct tree_ctx {
	struct vdi_entry *all;     /* live and retired inodes */
	int nr;
	int *parent;               /* index of the nearest live ancestor, -1 for a root */
};

static int find_vid(const struct tree_ctx *t, uint32_t vid)
{
	for (int i = 0; i < t->nr; i++)
		if (t->all[i].vid == vid)
			return i;
	return -1;
}

static void tree_label(const struct vdi_entry *e, char *buf, size_t len)
{
	const struct sd_inode_header *h = &e->hdr;
	char tbuf[64];
	time_t t = (h->snap_ctime ? h->snap_ctime : h->create_time) >> 32;
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", localtime(&t));
	if (h->snap_ctime)
		snprintf(buf, len, "%s [snapshot %" PRIu32 "%s%s%s, %s]", h->name, h->snap_id, h->tag[0] ? " '" : "",
			 h->tag, h->tag[0] ? "'" : "", tbuf);
	else
		snprintf(buf, len, "%s (%s, %s)", h->name,
			 h->reserved_area[SD_INODE_FLAGS_WORD] & SD_INODE_FLAG_CLONE ? "clone" : "working VDI", tbuf);
}

static void tree_print(const struct tree_ctx *t, int node, const char *prefix, bool last, bool root)
{
	char label[800], next[4096];
	tree_label(&t->all[node], label, sizeof(label));
	if (root)
		printf("%s\n", label);
	else
		printf("%s%s%s\n", prefix, last ? "`-- " : "|-- ", label);
	snprintf(next, sizeof(next), "%s%s", prefix, root ? "" : (last ? "    " : "|   "));
	int lastchild = -1;
	for (int i = 0; i < t->nr; i++)
		if (t->parent[i] == node && t->all[i].hdr.name[0])
			lastchild = i;
	for (int i = 0; i < t->nr; i++)
		if (t->parent[i] == node && t->all[i].hdr.name[0])
			tree_print(t, i, next, i == lastchild, false);
}

/* the family under node as JSON: vdi_json plus "children" */
static struct json_object *tree_json(const struct tree_ctx *t, int node)
{
	struct json_object *o = vdi_json(&t->all[node].hdr, t->all[node].vid), *kids = json_object_new_array();
	for (int i = 0; i < t->nr; i++)
		if (t->parent[i] == node && t->all[i].hdr.name[0])
			json_object_array_add(kids, tree_json(t, i));
	json_object_object_add(o, "children", kids);
	return o;
}

int vdi_tree(int argc, char **argv)
{
	struct tree_ctx t;
	if (argc && check_vdi_name(argv[0]) < 0)
		return EXIT_USAGE;
	int ret = vdi_collect(&t.all, &t.nr, true);
	if (ret)
		return report_failure("vdi tree", ret);
	t.parent = calloc(t.nr > 0 ? (size_t)t.nr : 1, sizeof(int));
	if (!t.parent) {
		free(t.all);
		return report_failure("vdi tree", -ENOMEM);
	}
	for (int i = 0; i < t.nr; i++) {
		/* the nearest live ancestor, through retired inodes */
		int p = find_vid(&t, t.all[i].hdr.parent_vdi_id), steps = 0;
		while (p >= 0 && !t.all[p].hdr.name[0] && steps++ < t.nr)
			p = find_vid(&t, t.all[p].hdr.parent_vdi_id);
		t.parent[i] = steps > t.nr ? -1 : p;
	}
	/* the roots to draw: all, or those of the families NAME belongs to */
	bool any = false;
	char *root = calloc(t.nr > 0 ? (size_t)t.nr : 1, 1);
	for (int i = 0; root && i < t.nr; i++) {
		if (!t.all[i].hdr.name[0] || (argc && strcmp(argv[0], t.all[i].hdr.name)))
			continue;
		int r = i;
		while (t.parent[r] >= 0)
			r = t.parent[r];
		root[r] = 1;
	}
	struct json_object *roots = json_output ? json_object_new_array() : NULL;
	for (int i = 0; root && i < t.nr; i++)
		if (root[i]) {
			if (roots)
				json_object_array_add(roots, tree_json(&t, i));
			else
				tree_print(&t, i, "", true, true);
			any = true;
		}
	if (roots && (any || !argc))
		json_print(roots);
	else if (roots)
		json_object_put(roots);
	free(root);
	free(t.parent);
	free(t.all);
	if (argc && !any) {
		die_msg("vdi tree %s: no such VDI", argv[0]);
		return EXIT_MISSING;
	}
	return 0;
}
