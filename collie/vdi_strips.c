/* vdi_strips.c: where the strips of an erasure-coded data object are (collie vdi object) and
 * where each epoch's ring places them (collie vdi track): strip i is data i for i < D, parity
 * i - D after, on the i-th node its data object picks. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "collie.h"
#include "ec.h"
#include "json_out.h"
#include "net.h"
#include "ring.h"
#include "sd_client.h"
#include "vdi_strips.h"

uint8_t vdi_policy_of(uint32_t vid)
{
	static uint32_t last_vid;
	static uint8_t last_policy;
	if (vid && vid == last_vid)
		return last_policy;
	struct sd_inode_header *h = calloc(1, sizeof(*h));
	uint8_t policy = 0;
	if (h && !sd_read_inode_header(sd_addr, sd_port, vid, h) && ec_policy_valid(h->copy_policy))
		policy = h->copy_policy;
	free(h);
	last_vid = vid;
	last_policy = policy;
	return policy;
}

/* "data0" ... "parity1" */
static const char *strip_name(int i, int d, char *buf, size_t len)
{
	snprintf(buf, len, i < d ? "data%d" : "parity%d", i < d ? i : i - d);
	return buf;
}

int strips_held(uint64_t oid, uint8_t policy, const struct sd_node *nodes, int nr_nodes,
		bool (*holds)(int node, uint64_t strip, void *ctx), void *ctx, char *line, size_t len,
		struct json_object *strips)
{
	int d = ec_policy_data(policy), n = d + ec_policy_parity(policy), present = 0;
	size_t pos = 0;
	line[0] = 0;
	for (int i = 0; i < n; i++) {
		char name[16], nb[80];
		uint64_t strip = ec_strip_oid(oid, i);
		struct json_object *s = strips ? json_object_new_object() : NULL, *where = NULL;
		int found = 0;
		strip_name(i, d, name, sizeof(name));
		if (s) {
			where = json_object_new_array();
			json_add_i64(s, "strip", i);
			json_add_str(s, "role", i < d ? "data" : "parity");
		}
		for (int k = 0; k < nr_nodes; k++) {
			if (!holds(k, strip, ctx))
				continue;
			found++;
			if (where)
				json_object_array_add(where, node_json(k, &nodes[k]));
			else if (pos < len)
				pos += snprintf(line + pos, len - pos, " %s=%s", name, node_to_str(&nodes[k], nb, sizeof(nb)));
		}
		if (!found && !where && pos < len)
			pos += snprintf(line + pos, len - pos, " %s=missing", name);
		present += found > 0;
		if (s) {
			json_object_object_add(s, "nodes", where);
			json_object_array_add(strips, s);
		}
	}
	return present;
}

void strips_placement(const struct vnode_info *vi, uint64_t oid, uint8_t policy, char *line, size_t len)
{
	int idx[SD_MAX_COPIES], d = ec_policy_data(policy);
	int n = ring_pick_nodes(vi, oid, d + ec_policy_parity(policy), idx);
	size_t pos = 0;
	line[0] = 0;
	for (int i = 0; i < n && pos < len; i++) {
		char name[16], nb[80];
		pos += snprintf(line + pos, len - pos, " %s=%s", strip_name(i, d, name, sizeof(name)),
				node_to_str(&vi->nodes[idx[i]], nb, sizeof(nb)));
	}
}
