/* recovery.c: collie node recovery, cluster recover enable|disable|force and cluster check (every
 * object of every VDI has its replicas on the nodes the ring names, with identical content). */
#include <errno.h>
#include <inttypes.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collie.h"
#include "json_out.h"
#include "net.h"
#include "ring.h"
#include "sd_client.h"
#include "util.h"

static const char *phase_str(uint8_t phase)
{
	switch (phase) {
	case RECOVERY_IDLE: return "idle";
	case RECOVERY_LISTING: return "listing";
	case RECOVERY_RUNNING: return "recovering";
	case RECOVERY_DONE: return "done";
	case RECOVERY_DISABLED: return "disabled";
	case RECOVERY_STOPPED: return "stopped";
	case RECOVERY_INCOMPLETE: return "incomplete";
	}
	return "unknown";
}

int node_recovery(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr, ret = get_node_list(&nodes, &nr, NULL), failed = 0;
	if (ret)
		return report_failure("node recovery", ret);
	struct json_object *list = json_output ? json_object_new_array() : NULL;
	if (!raw_output && !list)
		printf("  Id   Host:Port                 Epoch  State        Progress           Rate      Throttle\n");
	for (int i = 0; i < nr; i++) {
		struct recovery_info ri;
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_RECOVERY,
				      .data_length = sizeof(ri) };
		struct sd_rsp rsp;
		char nb[80];
		node_to_str(&nodes[i], nb, sizeof(nb));
		ret = node_exec(&nodes[i], &req, &ri, sizeof(ri), &rsp);
		if (ret || rsp.data_length < sizeof(ri)) {
			die_msg("node recovery: cannot reach node %d (%s)", i, nb);
			failed = EXIT_SYSFAIL;
			continue;
		}
		uint64_t rate = ri.elapsed_ms ? ri.bytes * 1000 / ri.elapsed_ms : 0;
		const char *state = phase_str(ri.phase);
		if (list) {
			struct json_object *o = node_json(i, &nodes[i]);
			json_add_u64(o, "epoch", ri.epoch);
			json_add_str(o, "state", state);
			json_add_bool(o, "cluster-done", ri.cluster_done);
			json_add_u64(o, "done", ri.done);
			json_add_u64(o, "total", ri.total);
			json_add_u64(o, "failed", ri.failed);
			json_add_u64(o, "bytes", ri.bytes);
			json_add_u64(o, "rate", rate);
			json_add_u64(o, "inflight", ri.inflight);
			json_add_u64(o, "pause-ms", ri.pause_ms);
			json_object_object_add(o, "message", json_object_new_string_len(ri.message,
									  strnlen(ri.message, sizeof(ri.message))));
			json_object_array_add(list, o);
		} else if (raw_output) {
			printf("%d %s %u %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %u %u\n", i, nb, ri.epoch,
			       state, ri.done, ri.total, ri.failed, rate, ri.cluster_done, ri.inflight, ri.pause_ms);
		} else {
			char prog[48], rs[32], thr[32];
			snprintf(prog, sizeof(prog), "%" PRIu64 "/%" PRIu64 "%s", ri.done, ri.total,
				 ri.failed ? " (failed)" : "");
			snprintf(thr, sizeof(thr), "%u+%ums", ri.inflight, ri.pause_ms);
			size_to_str(rate, rs, sizeof(rs));
			printf("%c%3d   %-24s %6u  %-12s %-18s %7s/s  %s%s%s\n", ' ', i, nb, ri.epoch,
			       ri.phase == RECOVERY_DONE && ri.cluster_done ? "done (all)" : state, prog, rs, thr,
			       ri.message[0] ? "  " : "", ri.message[0] ? ri.message : "");
		}
	}
	if (list)
		json_print(list);
	free(nodes);
	return failed;
}

static int cluster_op(uint8_t opcode, const char *what)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = opcode };
	struct sd_rsp rsp;
	int ret = sheep_exec(&req, NULL, 0, &rsp);
	return ret ? report_failure(what, ret) : 0;
}

/* cluster recover throttle N[:MS]: every node fetches N objects at once and pauses MS ms after
 * each, from now on (sheep -R sets it at start); without N, each node's throttle */
static int cluster_recover_throttle(int argc, char **argv)
{
	if (!argc)
		return node_recovery(0, NULL);
	struct sd_recovery_throttle t = { 0 };
	char *end;
	unsigned long n = strtoul(argv[0], &end, 10), ms = 0;
	if (*end == ':')
		ms = strtoul(end + 1, &end, 10);
	if (*end || !isdigit((unsigned char)argv[0][0]) || n < 1 || n > 64 || ms > 60000) {
		die_msg("cluster recover throttle: invalid throttle '%s' (N[:MS], N 1 to 64, MS 0 to 60000)", argv[0]);
		return EXIT_USAGE;
	}
	t.inflight = n;
	t.pause_ms = ms;
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_RECOVERY_THROTTLE,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(t) };
	struct sd_rsp rsp;
	int ret = sheep_exec(&req, &t, sizeof(t), &rsp);
	if (ret)
		return report_failure("cluster recover throttle", ret);
	printf("recovery throttle: %lu objects at once, %lu ms pause after each, on every node\n", n, ms);
	return 0;
}

int cluster_recover(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[0], "throttle")) {
		die_msg("cluster recover %s: takes no argument", argv[0]);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[0], "enable"))
		return cluster_op(SD_OP_ENABLE_RECOVER, "cluster recover enable");
	if (!strcmp(argv[0], "disable"))
		return cluster_op(SD_OP_DISABLE_RECOVER, "cluster recover disable");
	if (!strcmp(argv[0], "force")) {
		int ret = cluster_op(SD_OP_FORCE_RECOVER, "cluster recover force");
		if (!ret)
			printf("The cluster runs without the nodes that did not come back\n");
		return ret;
	}
	if (!strcmp(argv[0], "throttle"))
		return cluster_recover_throttle(argc - 1, argv + 1);
	die_msg("cluster recover: unknown action '%s' (enable, disable, force or throttle)", argv[0]);
	return EXIT_USAGE;
}

/* ---- cluster check ---- */

struct check_stats {
	uint64_t objects, replicas_missing, replicas_differ, repaired, unrepaired;
	struct json_object *problems;   /* --output=json: the problems found, else NULL */
};

/* one problem: a line of the report, or an entry of "problems" ({"oid", "vdi-id", "node",
 * "problem", "outcome"}); node may be NULL, outcome NULL when nothing was tried */
static void check_report(struct check_stats *st, uint64_t oid, uint32_t vid, const char *node,
			 const char *problem, const char *outcome)
{
	if (st->problems) {
		struct json_object *o = json_object_new_object();
		char hex[20];
		snprintf(hex, sizeof(hex), "%016" PRIx64, oid);
		json_add_str(o, "oid", oid ? hex : "");
		json_add_u64(o, "vdi-id", oid ? oid_to_vid(oid) : vid);
		json_add_str(o, "node", node);
		json_add_str(o, "problem", problem);
		json_add_str(o, "outcome", outcome ? outcome : "reported");
		json_object_array_add(st->problems, o);
		return;
	}
	if (!oid)
		printf("VDI %06" PRIx32 ": its %s cannot be read\n", vid,
		       !strcmp(problem, "inode-unreadable") ? "inode" : "object index");
	else if (!strcmp(problem, "no-replica"))
		printf("object %016" PRIx64 ": no replica found on any of its nodes\n", oid);
	else if (!strcmp(problem, "missing"))
		printf("object %016" PRIx64 ": replica missing on %s%s%s\n", oid, node, outcome ? ": " : "",
		       outcome ? outcome : "");
	else
		printf("object %016" PRIx64 ": replica on %s differs from the majority%s%s\n", oid, node,
		       outcome ? ": " : "", outcome ? outcome : "");
}

/* the whole object from node n */
static int read_replica(const struct sd_node *n, uint64_t oid, void *buf, uint32_t size)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_READ_PEER, .data_length = size };
	struct sd_rsp rsp;
	req.obj.oid = oid;
	int ret = node_exec(n, &req, buf, size, &rsp);
	if (!ret && rsp.data_length < size)
		memset((char *)buf + rsp.data_length, 0, size - rsp.data_length);
	return ret;
}

static int write_replica(const struct sd_node *n, uint64_t oid, void *buf, uint32_t size, uint32_t epoch)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_CREATE_AND_WRITE_PEER,
			      .flags = SD_FLAG_CMD_WRITE, .epoch = epoch, .data_length = size };
	struct sd_rsp rsp;
	req.obj.oid = oid;
	return node_exec(n, &req, buf, size, &rsp);
}

static void check_object(const struct vnode_info *vi, uint64_t oid, uint32_t obj_size, int copies, uint32_t epoch,
			 bool repair, struct check_stats *st)
{
	int idx[SD_MAX_COPIES], nr = ring_pick_nodes(vi, oid, copies, idx);
	struct object_hash h[SD_MAX_COPIES];
	int res[SD_MAX_COPIES], good = -1, best = 0;
	char nb[80];

	st->objects++;
	for (int i = 0; i < nr; i++) {
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_HASH, .data_length = sizeof(h[i]) };
		struct sd_rsp rsp;
		req.obj.oid = oid;
		res[i] = node_exec(&vi->nodes[idx[i]], &req, &h[i], sizeof(h[i]), &rsp);
	}
	/* the content most replicas agree on (the first in ring order on a tie) */
	for (int i = 0; i < nr; i++) {
		if (res[i])
			continue;
		int votes = 0;
		for (int k = 0; k < nr; k++)
			votes += !res[k] && h[k].crc == h[i].crc;
		if (votes > best) {
			best = votes;
			good = i;
		}
	}
	if (good < 0) {
		check_report(st, oid, 0, NULL, "no-replica", NULL);
		st->replicas_missing += nr;
		st->unrepaired++;
		return;
	}
	if (best == nr)
		return;
	char *buf = NULL;
	for (int i = 0; i < nr; i++) {
		const struct sd_node *n = &vi->nodes[idx[i]];
		if (!res[i] && h[i].crc == h[good].crc)
			continue;
		node_to_str(n, nb, sizeof(nb));
		const char *problem = res[i] ? "missing" : "differs";
		if (res[i])
			st->replicas_missing++;
		else
			st->replicas_differ++;
		if (!repair) {
			check_report(st, oid, 0, nb, problem, NULL);
			continue;
		}
		if (!buf) {
			buf = malloc(obj_size);
			if (!buf || read_replica(&vi->nodes[idx[good]], oid, buf, obj_size)) {
				check_report(st, oid, 0, nb, problem, "cannot read the good replica, not repaired");
				st->unrepaired++;
				free(buf);
				buf = NULL;
				continue;
			}
		}
		if (write_replica(n, oid, buf, obj_size, epoch)) {
			check_report(st, oid, 0, nb, problem, "repair failed");
			st->unrepaired++;
		} else {
			check_report(st, oid, 0, nb, problem, "repaired");
			st->repaired++;
		}
	}
	free(buf);
}

int cluster_check(int argc, char **argv)
{
	bool repair = !opt_set('n');
	struct sd_node *nodes = NULL;
	struct vnode_info *vi = NULL;
	uint8_t *bitmap = NULL;
	uint32_t *index = NULL;
	struct check_stats st = { .problems = json_output ? json_object_new_array() : NULL };
	int nr, ret, nr_vdis = 0, status = EXIT_FAILED;

	ret = get_node_list(&nodes, &nr, NULL);
	if (ret)
		return report_failure("cluster check", ret);
	struct sd_rsp crsp;
	ret = check_cluster_running("cluster check", &crsp);
	if (ret) {
		status = ret;
		goto out;
	}
	const struct sd_cluster_rsp *cr = (const struct sd_cluster_rsp *)&crsp;
	uint32_t epoch = crsp.epoch;
	vi = ring_build(nodes, nr);
	bitmap = calloc(1, SD_NR_VDIS / 8);
	index = calloc(SD_INODE_DATA_INDEX, sizeof(uint32_t));
	if (!vi || !bitmap || !index) {
		status = report_failure("cluster check", -ENOMEM);
		goto out;
	}
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_VDIS, .data_length = SD_NR_VDIS / 8 };
	struct sd_rsp rsp;
	ret = sheep_exec(&req, bitmap, SD_NR_VDIS / 8, &rsp);
	if (ret) {
		status = report_failure("cluster check", ret);
		goto out;
	}
	for (uint32_t vid = 1; vid < SD_NR_VDIS; vid++) {
		if (!(bitmap[vid / 8] & (1 << (vid % 8))))
			continue;
		struct sd_inode_header h;
		if (sd_read_inode_header(sd_addr, sd_port, vid, &h)) {
			check_report(&st, 0, vid, NULL, "inode-unreadable", NULL);
			st.unrepaired++;
			continue;
		}
		int copies = h.nr_copies ? h.nr_copies : cr->nr_copies;
		uint32_t obj_size = 1u << (h.block_size_shift ? h.block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT);
		uint64_t nr_objs = DIV_ROUND_UP(h.vdi_size, obj_size);
		nr_vdis++;
		check_object(vi, vid_to_vdi_oid(vid), SD_INODE_SIZE, copies, epoch, repair, &st);
		if (nr_objs > SD_INODE_DATA_INDEX || sd_read_inode_index(sd_addr, sd_port, vid, index, nr_objs)) {
			check_report(&st, 0, vid, NULL, "index-unreadable", NULL);
			st.unrepaired++;
			continue;
		}
		for (uint64_t i = 0; i < nr_objs; i++)
			if (index[i] == vid)
				check_object(vi, vid_to_data_oid(vid, i), obj_size, copies, epoch, repair, &st);
	}
	if (st.problems) {
		struct json_object *doc = json_object_new_object();
		json_add_u64(doc, "vdis", nr_vdis);
		json_add_u64(doc, "objects", st.objects);
		json_add_u64(doc, "replicas-missing", st.replicas_missing);
		json_add_u64(doc, "replicas-differ", st.replicas_differ);
		json_add_u64(doc, "repaired", st.repaired);
		json_add_u64(doc, "unrepaired", st.unrepaired);
		json_object_object_add(doc, "problems", st.problems);
		st.problems = NULL;
		json_print(doc);
		status = EXIT_OK;
		if (st.unrepaired || (!repair && (st.replicas_missing || st.replicas_differ)))
			status = EXIT_FAILED;
	} else if (!st.replicas_missing && !st.replicas_differ && !st.unrepaired) {
		printf("checked %" PRIu64 " objects of %d VDI%s: every replica present and identical\n", st.objects,
		       nr_vdis, nr_vdis == 1 ? "" : "s");
		status = 0;
	} else {
		printf("checked %" PRIu64 " objects of %d VDI%s: %" PRIu64 " replicas missing, %" PRIu64
		       " differing, %" PRIu64 " repaired, %" PRIu64 " not repaired\n", st.objects, nr_vdis,
		       nr_vdis == 1 ? "" : "s", st.replicas_missing, st.replicas_differ, st.repaired, st.unrepaired);
		status = repair && !st.unrepaired ? EXIT_OK : EXIT_FAILED;
		if (status)
			die_msg("cluster check: %s", repair ? "some objects could not be repaired" : "the cluster needs repair");
	}
out:
	if (st.problems)
		json_object_put(st.problems);
	if (vi)
		ring_free(vi);
	free(index);
	free(bitmap);
	free(nodes);
	return status;
}
