/* vdi_track.c: collie vdi track NAME: where each object of a VDI lived in every epoch (the
 * placement each epoch's ring gives it) and where its replicas are now, so that an operator
 * can follow an object through joins, leaves and reweights. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collie.h"
#include "net.h"
#include "ring.h"
#include "sd_client.h"
#include "util.h"
#include "ec.h"
#include "vdi_strips.h"

#define TRACK_BUF (4u << 20)

struct epoch_ring {
	uint32_t epoch;
	struct vnode_info *vi;
};

/* every epoch's ring, newest first; returns the count or -1 (message printed) */
static int load_epoch_rings(struct epoch_ring **out, uint8_t *cluster_copies)
{
	char *buf = calloc(1, TRACK_BUF);
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_CLUSTER, .data_length = TRACK_BUF };
	struct sd_rsp rsp;
	struct epoch_ring *rings = NULL;
	int nr = 0, ret = buf ? sheep_exec(&req, buf, TRACK_BUF, &rsp) : -ENOMEM;
	if (ret) {
		report_failure("vdi track", ret);
		goto out;
	}
	struct sd_cluster_rsp *cr = (struct sd_cluster_rsp *)&rsp;
	*cluster_copies = cr->nr_copies;
	rings = calloc(cr->nr_entries ? cr->nr_entries : 1, sizeof(*rings));
	uint32_t off = 0;
	const struct epoch_log *log;
	for (uint32_t i = 0; rings && i < cr->nr_entries && (log = epoch_log_next(buf, rsp.data_length, &off)); i++) {
		rings[nr].epoch = log->epoch;
		rings[nr].vi = ring_build(log->nodes, log->nr_nodes);
		if (rings[nr].vi)
			nr++;
	}
out:
	free(buf);
	*out = rings;
	return ret ? -1 : nr;
}

/* " addr:port addr:port ..." of the nodes the ring places oid on */
static void placement(const struct vnode_info *vi, uint64_t oid, int copies, char *line, size_t len)
{
	int idx[SD_MAX_COPIES];
	int n = ring_pick_nodes(vi, oid, copies, idx);
	size_t pos = 0;
	line[0] = 0;
	for (int k = 0; k < n && pos < len; k++) {
		char nb[80];
		node_to_str(&vi->nodes[idx[k]], nb, sizeof(nb));
		pos += snprintf(line + pos, len - pos, " %s", nb);
	}
}

/* policy: the D:P of an erasure-coded data object (its strips are shown), else 0 */
static void track_object(const char *what, uint64_t oid, int copies, uint8_t policy, const struct epoch_ring *rings,
			 int nr)
{
	char line[4096];
	if (!raw_output && policy)
		printf("%s %016" PRIx64 ", %d:%d strips:\n", what, oid, ec_policy_data(policy), ec_policy_parity(policy));
	else if (!raw_output)
		printf("%s %016" PRIx64 ", %d copies:\n", what, oid, copies);
	for (int e = 0; e < nr; e++) {
		if (policy)
			strips_placement(rings[e].vi, oid, policy, line, sizeof(line));
		else
			placement(rings[e].vi, oid, copies, line, sizeof(line));
		if (raw_output)
			printf("%s %016" PRIx64 " %u%s\n", what, oid, rings[e].epoch, line);
		else
			printf("  epoch %6u:%s\n", rings[e].epoch, line);
	}
}

int vdi_track(int argc, char **argv)
{
	struct sd_vdi *vdi;
	struct epoch_ring *rings = NULL;
	uint64_t want = UINT64_MAX;
	uint32_t nr_objs;
	uint8_t cluster_copies = 0;
	int nr = 0, ret;
	if (check_vdi_name(argv[0]) < 0)
		return EXIT_USAGE;
	if (opt('i') && parse_u64(opt('i'), &want) < 0) {
		die_msg("vdi track: invalid index '%s'", opt('i'));
		return EXIT_USAGE;
	}
	ret = sd_vdi_open(sd_addr, sd_port, argv[0], opt('s'), false, &vdi);
	if (ret)
		return report_failure("vdi track", ret);
	const uint32_t *index = sd_vdi_index(vdi, &nr_objs);
	if (want != UINT64_MAX && want >= nr_objs) {
		die_msg("vdi track: index %" PRIu64 " is past the end of %s (%u objects)", want, argv[0], nr_objs);
		ret = EXIT_USAGE;
		goto out;
	}
	nr = load_epoch_rings(&rings, &cluster_copies);
	if (nr < 0) {
		ret = EXIT_SYSFAIL;
		goto out;
	}
	int copies = sd_vdi_copies(vdi) ? sd_vdi_copies(vdi) : cluster_copies;
	uint8_t own = vdi_policy_of(sd_vdi_id(vdi));
	char what[32];
	if (want == UINT64_MAX)    /* an erasure-coded VDI's inode keeps P + 1 replicas */
		track_object("inode", vid_to_vdi_oid(sd_vdi_id(vdi)), own ? ec_policy_parity(own) + 1 : copies, 0, rings,
			     nr);
	for (uint64_t idx = 0; idx < nr_objs; idx++) {
		if (want != UINT64_MAX && idx != want)
			continue;
		if (!index[idx]) {
			if (want != UINT64_MAX)
				printf(raw_output ? "%" PRIu64 " unallocated\n" : "object %" PRIu64 ": not allocated\n", idx);
			continue;
		}
		snprintf(what, sizeof(what), raw_output ? "%" PRIu64 : "object %" PRIu64, idx);
		track_object(what, vid_to_data_oid(index[idx], idx), copies, vdi_policy_of(index[idx]), rings, nr);
	}
	ret = 0;
out:
	for (int e = 0; e < nr; e++)
		ring_free(rings[e].vi);
	free(rings);
	sd_vdi_close(vdi);
	return ret;
}
