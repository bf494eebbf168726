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
#include "ec.h"
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

/* one ALTER_VDI_COPY step for vid; the state before it (after it for BEGIN/END's next) in *out */
static int alter_step(uint32_t vid, int step, uint8_t copies, uint8_t policy, struct sd_alter_rsp *out)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_ALTER_VDI_COPY };
	struct sd_rsp rsp;
	req.vdi.base_vdi_id = vid;
	req.vdi.copies = copies;
	req.vdi.copy_policy = policy;
	req.vdi.type = step;
	int ret = sheep_exec(&req, NULL, 0, &rsp);
	if (!ret && out)
		memcpy(out, &rsp, sizeof(*out));
	return ret;
}

/* replicas an inode keeps under a redundancy: its copies, or P + 1 of a D:P policy */
static int inode_copies(uint8_t copies, uint8_t policy)
{
	return policy ? ec_policy_parity(policy) + 1 : copies;
}

/* one CONVERT_OBJ (action) for oid, the layout in transit being copies/policy, at node n (NULL:
 * the sheep collie talks to), tried again while that node has not applied the step yet */
static int convert_req(const struct sd_node *n, uint64_t oid, uint8_t copies, uint8_t policy, int action)
{
	int ret = SD_RES_AGAIN;
	for (int tries = 0; tries < SETTLE_RETRIES && ret == SD_RES_AGAIN; tries++) {
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_CONVERT_OBJ };
		struct sd_rsp rsp;
		if (tries)
			usleep(SETTLE_RETRY_US);
		req.obj.oid = oid;
		req.obj.copies = copies;
		req.obj.copy_policy = policy;
		req.obj.ec_index = action;
		ret = n ? node_exec(n, &req, NULL, 0, &rsp) : sheep_exec(&req, NULL, 0, &rsp);
	}
	return ret;
}

/* CONVERT_OBJ (action) for every object v owns, the layout in transit being copies/policy */
static int convert_objects(struct settle *s, const struct vdi_entry *v, const uint32_t *index, uint64_t nr,
			   uint8_t copies, uint8_t policy, int action)
{
	int ret = 0;
	for (uint64_t i = 0; i < nr && !ret; i++) {
		if (index[i] != v->vid)
			continue;
		ret = convert_req(NULL, vid_to_data_oid(v->vid, i), copies, policy, action);
		if (action == SD_CONVERT_WRITE)
			progress_update(&s->bar, ++s->done, s->total);
	}
	return ret;
}

/* every node knows of the layout in transit (strips are sized by it where they are stored) */
static int wait_transit_known(struct settle *s, uint32_t vid, uint8_t copies, uint8_t policy)
{
	int ret = 0;
	for (int i = 0; i < s->vi->nr_nodes && !ret; i++)
		ret = convert_req(&s->vi->nodes[i], vid_to_data_oid(vid, 0), copies, policy, SD_CONVERT_READY);
	return ret;
}

/* replicas to strips or strips to replicas: the new layout written whole, then the inode
 * switched in cluster order, then the old layout removed. *begun: the VDI's state changed. */
static int convert_kind(struct settle *s, const struct vdi_entry *v, const uint32_t *index, uint64_t nr,
			uint8_t from_copies, uint8_t from_policy, uint8_t copies, uint8_t policy, bool *begun)
{
	int ret = alter_step(v->vid, SD_ALTER_BEGIN, copies, policy, NULL);
	if (ret)
		return ret;
	*begun = true;
	if ((ret = wait_transit_known(s, v->vid, copies, policy)))
		return ret;
	if ((ret = convert_objects(s, v, index, nr, copies, policy, SD_CONVERT_WRITE)))
		return ret;
	if ((ret = alter_step(v->vid, SD_ALTER_SET, copies, policy, NULL)))
		return ret;
	if ((ret = settle_object(s, vid_to_vdi_oid(v->vid), inode_copies(from_copies, from_policy),
				 inode_copies(copies, policy))))
		return ret;
	if ((ret = convert_objects(s, v, index, nr, from_copies, from_policy, SD_CONVERT_REMOVE)))
		return ret;
	return alter_step(v->vid, SD_ALTER_END, 0, 0, NULL);
}

/* a layout an interrupted alter-copy left in transit that is not the one wanted now: removed */
static int clear_transit(struct settle *s, const struct vdi_entry *v, const uint32_t *index, uint64_t nr,
			 uint8_t copies, uint8_t policy, struct sd_alter_rsp *st)
{
	int ret = alter_step(v->vid, SD_ALTER_QUERY, 0, 0, st);
	if (ret || !st->next_copies || (st->next_copies == copies && st->next_policy == policy))
		return ret;
	if ((ret = convert_objects(s, v, index, nr, st->next_copies, st->next_policy, SD_CONVERT_REMOVE)))
		return ret;
	if ((ret = alter_step(v->vid, SD_ALTER_END, 0, 0, st)))
		return ret;
	st->next_copies = st->next_policy = 0;
	return 0;
}

/* A re-run to the policy a VDI has already: the other kind's objects an interrupted run left and
 * the cluster forgot (a whole-cluster restart forgets the layout in transit) are swept away:
 * replicas on as many nodes as there are zones, or strips at every position up to them (the
 * ring's picks for fewer are a prefix of those). Skipped for a VDI a guest holds. */
static int sweep_other_kind(struct settle *s, const struct vdi_entry *v, const uint32_t *index, uint64_t nr,
			    uint8_t cur_policy)
{
	int zones = MIN(s->vi->nr_zones, SD_MAX_COPIES);
	uint8_t copies = (uint8_t)zones, policy = 0;
	if (!cur_policy) {
		if (zones < 3)
			return 0;
		int p = MIN(zones - 2, EC_MAX_PARITY);
		policy = ec_policy_make(2, p);
		copies = (uint8_t)(2 + p);
	}
	int ret = alter_step(v->vid, SD_ALTER_BEGIN, copies, policy, NULL);
	if (ret == SD_RES_VDI_LOCKED)
		return 0;
	if (ret)
		return ret;
	if ((ret = convert_objects(s, v, index, nr, copies, policy, SD_CONVERT_REMOVE)))
		return ret;
	return alter_step(v->vid, SD_ALTER_END, 0, 0, NULL);
}

/* replicas to replicas: the new count recorded, then every replica settled in place */
static int settle_all(struct settle *s, const struct vdi_entry *v, const uint32_t *index, uint64_t nr,
		      int copies, bool *begun)
{
	struct sd_alter_rsp st;
	int ret = alter_step(v->vid, SD_ALTER_SET, copies, 0, &st);
	if (ret)
		return ret;
	*begun = true;
	int old = st.copies ? st.copies : copies;
	if ((ret = settle_object(s, vid_to_vdi_oid(v->vid), old, copies)))
		return ret;
	for (uint64_t i = 0; i < nr && !ret; i++)
		if (index[i] == v->vid) {
			ret = settle_object(s, vid_to_data_oid(v->vid, i), old, copies);
			progress_update(&s->bar, ++s->done, s->total);
		}
	return ret;
}

/* one inode to copies/policy: replicas settled in place, or every object laid out anew (from
 * D:P to another D:P through P + 1 replicas: strips of two policies share their names) */
static int alter_one(struct settle *s, const struct vdi_entry *v, uint8_t copies, uint8_t policy, const char *what)
{
	uint64_t nr_objs = owned_objects(v);
	uint32_t *index = NULL;
	struct sd_alter_rsp st;
	bool begun = false;
	int ret;
	char red[16];

	if (nr_objs > SD_INODE_DATA_INDEX)
		return SD_RES_INVALID_PARMS;
	index = malloc((nr_objs ? nr_objs : 1) * sizeof(uint32_t));
	if (!index)
		return -ENOMEM;
	if ((ret = sd_read_inode_index(sd_addr, sd_port, v->vid, index, nr_objs)))
		goto out;
	if ((ret = clear_transit(s, v, index, nr_objs, copies, policy, &st)))
		goto out;
	/* an inode replica a node kept past an interrupted run must not be taken for a copy later:
	 * every node that is not a holder now sets its replica aside */
	if ((ret = settle_object(s, vid_to_vdi_oid(v->vid), MIN(s->vi->nr_zones, SD_MAX_COPIES),
				 inode_copies(st.copies, st.copy_policy))))
		goto out;
	bool again = st.copy_policy == policy && st.copies == copies;
	if (again && (ret = sweep_other_kind(s, v, index, nr_objs, st.copy_policy)))
		goto out;
	if (!policy && !st.copy_policy) {
		ret = settle_all(s, v, index, nr_objs, copies, &begun);
	} else if (again) {
		ret = 0;    /* already so */
	} else if (policy && st.copy_policy) {
		uint8_t mid = (uint8_t)(ec_policy_parity(policy) + 1);
		ret = convert_kind(s, v, index, nr_objs, st.copies, st.copy_policy, mid, 0, &begun);
		if (!ret)
			ret = convert_kind(s, v, index, nr_objs, mid, 0, copies, policy, &begun);
	} else {
		ret = convert_kind(s, v, index, nr_objs, st.copies, st.copy_policy, copies, policy, &begun);
	}
out:
	free(index);
	if (ret && begun)
		die_msg("%s: VDI %" PRIx32 " (%s) is not yet wholly %s; its data reads as before; run it again", what,
			v->vid, v->hdr.name, redundancy_str(copies, policy, red, sizeof(red)));
	return ret;
}

static int parse_copies_opt(const char *what, uint8_t *copies, uint8_t *policy)
{
	if (!opt('c')) {
		die_msg("%s: -c COPIES is required", what);
		return EXIT_USAGE;
	}
	if (parse_redundancy(opt('c'), copies, policy) < 0)
		return EXIT_USAGE;
	return 0;
}

/* alter every inode of list[] that match() accepts; returns the exit status */
static int alter_list(const char *what, struct vdi_entry *list, int nr, const bool *pick, uint8_t copies,
		      uint8_t policy)
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
		if ((ret = alter_one(&s, &list[i], copies, policy, what))) {
			progress_end(&s.bar, s.done, s.total);
			if (ret == SD_RES_VDI_LOCKED) {
				die_msg("%s: %s is in use (a guest holds its lock); stop the guest first", what,
					list[i].hdr.name);
				status = exit_status(ret);
			} else {
				status = report_failure(what, ret);
			}
			goto out;
		}
		altered++;
	}
	progress_end(&s.bar, s.total, s.total);
	if (!raw_output && policy)
		printf("%d VDI%s and snapshots now keep every object as %d:%d erasure-coded strips\n", altered,
		       altered == 1 ? "" : "s", ec_policy_data(policy), ec_policy_parity(policy));
	else if (!raw_output)
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
	uint8_t copies, policy;
	int nr = 0, status, found = 0;
	if (check_vdi_name(argv[0]) < 0)
		return EXIT_USAGE;
	if ((status = parse_copies_opt("vdi alter-copy", &copies, &policy)))
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
	for (int i = 0; i < nr; i++)
		found += pick[i] = !strncmp(list[i].hdr.name, argv[0], SD_MAX_VDI_LEN);
	if (!found) {
		die_msg("vdi alter-copy: no VDI named %s", argv[0]);
		status = EXIT_MISSING;
	} else {
		status = alter_list("vdi alter-copy", list, nr, pick, copies, policy);
	}
	free(pick);
	free(list);
	return status;
}

/* the cluster's default for new VDIs; between replica counts, the VDIs that kept the old
 * default follow it (online); to or from D:P, every VDI keeps what it has */
int cluster_alter_copy(int argc, char **argv)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_ALTER_CLUSTER_COPY };
	struct sd_rsp rsp;
	struct vdi_entry *list = NULL;
	bool *pick = NULL;
	uint8_t copies, policy;
	int nr = 0, status, follow = 0, own = 0;
	char red[16], was[16];
	if ((status = parse_copies_opt("cluster alter-copy", &copies, &policy)))
		return status;
	if ((status = check_cluster_running("cluster alter-copy", NULL)))
		return status;
	req.vdi.copies = copies;
	req.vdi.copy_policy = policy;
	int ret = sheep_exec(&req, NULL, 0, &rsp);
	if (ret)
		return report_failure("cluster alter-copy", ret);
	const struct sd_alter_rsp *ar = (const struct sd_alter_rsp *)&rsp;
	int old = ar->copies, old_policy = ar->copy_policy;
	if (!raw_output && !policy && !old_policy)
		printf("the cluster's default is now %d copies (was %d)\n", copies, old);
	else if (!raw_output)
		printf("the cluster's default is now %s (was %s); existing VDIs keep theirs (collie vdi alter-copy "
		       "converts them)\n", redundancy_str(copies, policy, red, sizeof(red)),
		       redundancy_str(old, old_policy, was, sizeof(was)));
	if (policy || old_policy)
		return EXIT_OK;
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
	status = follow ? alter_list("cluster alter-copy", list, nr, pick, copies, 0) : EXIT_OK;
	free(pick);
	free(list);
	return status;
}
