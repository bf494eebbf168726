/* check.c: collie cluster check: every object of every VDI has its replicas on the nodes the ring
 * names, with identical content; what differs is rewritten from the majority. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collie.h"
#include "net.h"
#include "ring.h"
#include "sd_client.h"
#include "util.h"

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
