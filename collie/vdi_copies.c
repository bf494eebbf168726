/* vdi_copies.c: collie vdi alter-copy and cluster alter-copy. The sheep records the new count
 * (ALTER_VDI_COPY, ALTER_CLUSTER_COPY); then each node that should hold a replica of an object
 * and has none fetches it from the others, and each that should no longer hold one sets it aside
 * (SETTLE_REPLICA, object by object). Guests keep running: a write that reaches a new replica
 * before its copy fetches the object first, so no write is lost. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collie.h"
#include "progress.h"
#include "ring.h"
#include "sd_client.h"
#include "util.h"
#include "vdi_lifecycle.h"

#define SETTLE_RETRIES 200       /* SETTLE_REPLICA answers AGAIN until the node applied the change */
#define SETTLE_RETRY_US 25000

/* the ring collie computes placements on, and the epoch it is valid for */
struct settle {
	struct vnode_info *vi;
	uint32_t epoch;
	struct progress bar;
	uint64_t done, total;
};

static int settle_ring(struct settle *s)
{
	for (int tries = 0; tries < 10; tries++) {
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_CLUSTER };
		struct sd_rsp rsp;
		struct sd_node *nodes;
		int nr, ret = sheep_exec(&req, NULL, 0, &rsp);
		if (ret)
			return ret;
		uint32_t epoch = rsp.epoch;
		if ((ret = get_node_list(&nodes, &nr, NULL)))
			return ret;
		if ((ret = sheep_exec(&req, NULL, 0, &rsp))) {
			free(nodes);
			return ret;
		}
		if (rsp.epoch == epoch) {
			if (s->vi)
				ring_free(s->vi);
			s->vi = ring_build(nodes, nr);
			s->epoch = epoch;
			free(nodes);
			return s->vi ? 0 : -ENOMEM;
		}
		free(nodes);
	}
	return SD_RES_AGAIN;
}

/* every node that held or should hold a replica of oid: the union of both placements */
static int settle_object(struct settle *s, uint64_t oid, int old_copies, int copies)
{
	for (int round = 0; round < 10; round++) {
		int old_idx[SD_MAX_COPIES], new_idx[SD_MAX_COPIES], all[2 * SD_MAX_COPIES], n = 0, ret = 0;
		int nr_old = ring_pick_nodes(s->vi, oid, old_copies, old_idx);
		int nr_new = ring_pick_nodes(s->vi, oid, copies, new_idx);
		for (int i = 0; i < nr_new; i++)
			all[n++] = new_idx[i];       /* the new holders first: a copy exists before any goes */
		for (int i = 0; i < nr_old; i++) {
			bool seen = false;
			for (int j = 0; j < nr_new; j++)
				seen |= old_idx[i] == new_idx[j];
			if (!seen)
				all[n++] = old_idx[i];
		}
		for (int i = 0; i < n && !ret; i++) {
			for (int tries = 0; tries < SETTLE_RETRIES; tries++) {
				struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_SETTLE_REPLICA,
						      .epoch = s->epoch };
				struct sd_rsp rsp;
				req.obj.oid = oid;
				req.obj.copies = copies;
				ret = node_exec(&s->vi->nodes[all[i]], &req, NULL, 0, &rsp);
				if (ret != SD_RES_AGAIN)
					break;
				usleep(SETTLE_RETRY_US);
			}
		}
		if (ret != SD_RES_OLD_NODE_VER && ret != SD_RES_NEW_NODE_VER)
			return ret;
		/* membership moved on: place again on the new ring */
		if ((ret = settle_ring(s)))
			return ret;
	}
	return SD_RES_AGAIN;
}

/* objects of a VDI by its size (those it owns are among them) */
static uint64_t owned_objects(const struct vdi_entry *v)
{
	uint32_t obj_size = 1u << (v->hdr.block_size_shift ? v->hdr.block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT);
	return DIV_ROUND_UP(v->hdr.vdi_size, obj_size);
}

/* one inode: the new count recorded, then its own objects settled */
static int alter_one(struct settle *s, const struct vdi_entry *v, int copies, const char *what)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_ALTER_VDI_COPY };
	struct sd_rsp rsp;
	uint64_t nr_objs = owned_objects(v);
	uint32_t *index = NULL;
	int ret, old;

	if (nr_objs > SD_INODE_DATA_INDEX)
		return SD_RES_INVALID_PARMS;
	req.vdi.base_vdi_id = v->vid;
	req.vdi.copies = copies;
	if ((ret = sheep_exec(&req, NULL, 0, &rsp)))
		return ret;
	old = rsp.vdi.copies ? rsp.vdi.copies : copies;
	index = malloc((nr_objs ? nr_objs : 1) * sizeof(uint32_t));
	if (!index)
		return -ENOMEM;
	if ((ret = sd_read_inode_index(sd_addr, sd_port, v->vid, index, nr_objs)))
		goto out;
	if ((ret = settle_object(s, vid_to_vdi_oid(v->vid), old, copies)))
		goto out;
	for (uint64_t i = 0; i < nr_objs && !ret; i++)
		if (index[i] == v->vid) {
			ret = settle_object(s, vid_to_data_oid(v->vid, i), old, copies);
			progress_update(&s->bar, ++s->done, s->total);
		}
out:
	free(index);
	if (ret)
		die_msg("%s: VDI %" PRIx32 " (%s): its copies are recorded (%d), but not every replica is "
			"in place; run it again", what, v->vid, v->hdr.name, copies);
	return ret;
}

static int parse_copies_opt(const char *what, int *copies)
{
	uint64_t c;
	if (!opt('c')) {
		die_msg("%s: -c COPIES is required", what);
		return EXIT_USAGE;
	}
	if (parse_u64(opt('c'), &c) < 0 || c < 1 || c > SD_MAX_COPIES) {
		die_msg("invalid copies '%s' (1 to %d)", opt('c'), SD_MAX_COPIES);
		return EXIT_USAGE;
	}
	*copies = (int)c;
	return 0;
}

/* alter every inode of list[] that match() accepts; returns the exit status */
static int alter_list(const char *what, struct vdi_entry *list, int nr, const bool *pick, int copies)
{
	struct settle s = { 0 };
	int ret = settle_ring(&s), altered = 0, status = EXIT_OK;
	if (ret) {
		status = report_failure(what, ret);
		goto out;
	}
	for (int i = 0; i < nr; i++)
		if (pick[i])
			s.total += owned_objects(&list[i]);
	progress_start(&s.bar, what, false, false);
	for (int i = 0; i < nr; i++) {
		if (!pick[i])
			continue;
		if ((ret = alter_one(&s, &list[i], copies, what))) {
			progress_end(&s.bar, s.done, s.total);
			status = report_failure(what, ret);
			goto out;
		}
		altered++;
	}
	progress_end(&s.bar, s.total, s.total);
	if (!raw_output)
		printf("%d VDI%s and snapshots now keep %d cop%s of every object\n", altered,
		       altered == 1 ? "" : "s", copies, copies == 1 ? "y" : "ies");
out:
	if (s.vi)
		ring_free(s.vi);
	return status;
}

int vdi_alter_copy(int argc, char **argv)
{
	struct vdi_entry *list = NULL;
	bool *pick = NULL;
	int nr = 0, copies, status, found = 0;
	if (check_vdi_name(argv[0]) < 0)
		return EXIT_USAGE;
	if ((status = parse_copies_opt("vdi alter-copy", &copies)))
		return status;
	if ((status = check_cluster_running("vdi alter-copy", NULL)))
		return status;
	int ret = vdi_collect(&list, &nr, false);
	if (ret)
		return report_failure("vdi alter-copy", ret);
	pick = calloc(nr ? nr : 1, sizeof(*pick));
	if (!pick) {
		free(list);
		die_msg("vdi alter-copy: out of memory");
		return EXIT_FAILED;
	}
	bool ec = false;
	for (int i = 0; i < nr; i++) {
		found += pick[i] = !strncmp(list[i].hdr.name, argv[0], SD_MAX_VDI_LEN);
		ec |= pick[i] && list[i].hdr.copy_policy;
	}
	if (ec) {
		die_msg("vdi alter-copy: %s is erasure coded; alter-copy changes replica counts", argv[0]);
		status = EXIT_FAILED;
	} else if (!found) {
		die_msg("vdi alter-copy: no VDI named %s", argv[0]);
		status = EXIT_MISSING;
	} else {
		status = alter_list("vdi alter-copy", list, nr, pick, copies);
	}
	free(pick);
	free(list);
	return status;
}

int cluster_alter_copy(int argc, char **argv)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_ALTER_CLUSTER_COPY };
	struct sd_rsp rsp;
	struct vdi_entry *list = NULL;
	bool *pick = NULL;
	int nr = 0, copies, status, follow = 0, own = 0;
	if ((status = parse_copies_opt("cluster alter-copy", &copies)))
		return status;
	if ((status = check_cluster_running("cluster alter-copy", NULL)))
		return status;
	req.vdi.copies = copies;
	int ret = sheep_exec(&req, NULL, 0, &rsp);
	if (ret)
		return report_failure("cluster alter-copy", ret);
	int old = rsp.vdi.copies;
	if (!raw_output)
		printf("the cluster's default is now %d copies (was %d)\n", copies, old);
	if ((ret = vdi_collect(&list, &nr, false)))
		return report_failure("cluster alter-copy", ret);
	pick = calloc(nr ? nr : 1, sizeof(*pick));
	if (!pick) {
		free(list);
		die_msg("cluster alter-copy: out of memory");
		return EXIT_FAILED;
	}
	/* VDIs that kept the old default follow it; those given their own count keep it */
	for (int i = 0; i < nr; i++) {
		pick[i] = !list[i].hdr.copy_policy && (list[i].hdr.nr_copies == old || list[i].hdr.nr_copies == copies);
		follow += pick[i];
		own += !pick[i];
	}
	if (own && !raw_output)
		printf("%d VDI%s with a count of %s own kept it (collie vdi alter-copy changes those)\n", own,
		       own == 1 ? "" : "s", own == 1 ? "its" : "their");
	status = follow ? alter_list("cluster alter-copy", list, nr, pick, copies) : EXIT_OK;
	free(pick);
	free(list);
	return status;
}
