/* recovery.c: collie node recovery, cluster recover enable|disable|force and cluster check (every
 * object of every VDI has its replicas on the nodes the ring names, with identical content). */
#include <errno.h>
#include <inttypes.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collie.h"
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
	if (!raw_output)
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
			failed = 1;
			continue;
		}
		uint64_t rate = ri.elapsed_ms ? ri.bytes * 1000 / ri.elapsed_ms : 0;
		const char *state = phase_str(ri.phase);
		if (raw_output) {
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
	return 1;
}

/* ---- cluster check ---- */

struct check_stats {
	uint64_t objects, replicas_missing, replicas_differ, repaired, unrepaired;
};

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
		printf("object %016" PRIx64 ": no replica found on any of its %d nodes\n", oid, nr);
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
		if (res[i]) {
			st->replicas_missing++;
			printf("object %016" PRIx64 ": replica missing on %s", oid, nb);
		} else {
			st->replicas_differ++;
			printf("object %016" PRIx64 ": replica on %s differs from the majority", oid, nb);
		}
		if (!repair) {
			printf("\n");
			continue;
		}
		if (!buf) {
			buf = malloc(obj_size);
			if (!buf || read_replica(&vi->nodes[idx[good]], oid, buf, obj_size)) {
				printf(": cannot read the good replica, not repaired\n");
				st->unrepaired++;
				free(buf);
				buf = NULL;
				continue;
			}
		}
		if (write_replica(n, oid, buf, obj_size, epoch)) {
			printf(": repair failed\n");
			st->unrepaired++;
		} else {
			printf(": repaired\n");
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
	struct check_stats st = { 0 };
	int nr, ret, nr_vdis = 0, status = 1;

	ret = get_node_list(&nodes, &nr, NULL);
	if (ret)
		return report_failure("cluster check", ret);
	struct sd_req creq = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_CLUSTER };
	struct sd_rsp crsp;
	ret = sheep_exec(&creq, NULL, 0, &crsp);
	if (ret) {
		report_failure("cluster check", ret);
		goto out;
	}
	const struct sd_cluster_rsp *cr = (const struct sd_cluster_rsp *)&crsp;
	if (cr->status != SD_STATUS_OK) {
		die_msg("cluster check: the cluster is not running (status %u)", cr->status);
		goto out;
	}
	uint32_t epoch = crsp.epoch;
	vi = ring_build(nodes, nr);
	bitmap = calloc(1, SD_NR_VDIS / 8);
	index = calloc(SD_INODE_DATA_INDEX, sizeof(uint32_t));
	if (!vi || !bitmap || !index) {
		die_msg("cluster check: out of memory");
		goto out;
	}
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_VDIS, .data_length = SD_NR_VDIS / 8 };
	struct sd_rsp rsp;
	ret = sheep_exec(&req, bitmap, SD_NR_VDIS / 8, &rsp);
	if (ret) {
		report_failure("cluster check", ret);
		goto out;
	}
	for (uint32_t vid = 1; vid < SD_NR_VDIS; vid++) {
		if (!(bitmap[vid / 8] & (1 << (vid % 8))))
			continue;
		struct sd_inode_header h;
		if (sd_read_inode_header(sd_addr, sd_port, vid, &h)) {
			printf("VDI %06" PRIx32 ": its inode cannot be read\n", vid);
			st.unrepaired++;
			continue;
		}
		int copies = h.nr_copies ? h.nr_copies : cr->nr_copies;
		uint32_t obj_size = 1u << (h.block_size_shift ? h.block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT);
		uint64_t nr_objs = DIV_ROUND_UP(h.vdi_size, obj_size);
		nr_vdis++;
		check_object(vi, vid_to_vdi_oid(vid), SD_INODE_SIZE, copies, epoch, repair, &st);
		if (nr_objs > SD_INODE_DATA_INDEX || sd_read_inode_index(sd_addr, sd_port, vid, index, nr_objs)) {
			printf("VDI %06" PRIx32 ": its object index cannot be read\n", vid);
			st.unrepaired++;
			continue;
		}
		for (uint64_t i = 0; i < nr_objs; i++)
			if (index[i] == vid)
				check_object(vi, vid_to_data_oid(vid, i), obj_size, copies, epoch, repair, &st);
	}
	if (!st.replicas_missing && !st.replicas_differ && !st.unrepaired) {
		printf("checked %" PRIu64 " objects of %d VDI%s: every replica present and identical\n", st.objects,
		       nr_vdis, nr_vdis == 1 ? "" : "s");
		status = 0;
	} else {
		printf("checked %" PRIu64 " objects of %d VDI%s: %" PRIu64 " replicas missing, %" PRIu64
		       " differing, %" PRIu64 " repaired, %" PRIu64 " not repaired\n", st.objects, nr_vdis,
		       nr_vdis == 1 ? "" : "s", st.replicas_missing, st.replicas_differ, st.repaired, st.unrepaired);
		status = repair && !st.unrepaired ? 0 : 1;
		if (status)
			die_msg("cluster check: %s", repair ? "some objects could not be repaired" : "the cluster needs repair");
	}
out:
	if (vi)
		ring_free(vi);
	free(index);
	free(bitmap);
	free(nodes);
	return status;
}
