/* ring.c: vnode placement. Each node adds nr_vnodes x RING_POINTS_PER_VNODE points, starting at
 * sd_hash(addr, port) and iterated with sd_hash_next; an object lives on the first nodes of
 * distinct zones clockwise from sd_hash_oid. Several points per vnode keep every node's share
 * within a few percent of its weight (128 points alone spread shares by about 9%). */
#include <stdlib.h>
#include <string.h>

#include "ring.h"

int node_cmp(const struct sd_node *a, const struct sd_node *b)
{
	int c = memcmp(a->addr, b->addr, 16);
	if (c)
		return c;
	return (int)a->port - (int)b->port;
}

uint16_t ring_vnodes_for_capacity(uint64_t capacity)
{
	uint64_t v = capacity / RING_BYTES_PER_VNODE + (capacity % RING_BYTES_PER_VNODE >= RING_BYTES_PER_VNODE / 2);
	if (v < 1)
		return 1;
	return v > RING_MAX_AUTO_VNODES ? RING_MAX_AUTO_VNODES : (uint16_t)v;
}

uint32_t ring_zone_of_addr(const uint8_t addr[16])
{
	static const uint8_t v4_prefix[12] = { [10] = 0xff, [11] = 0xff };
	if (!memcmp(addr, v4_prefix, sizeof(v4_prefix)))
		return (uint32_t)addr[12] | (uint32_t)addr[13] << 8 | (uint32_t)addr[14] << 16 |
		       (uint32_t)addr[15] << 24;
	return (uint32_t)sd_hash(addr, 16);
}

static int cmp_node_q(const void *a, const void *b) { return node_cmp(a, b); }

static int cmp_vnode(const void *a, const void *b)
{
	const struct sd_vnode *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return (int)x->node_idx - (int)y->node_idx;
}

struct vnode_info *ring_build(const struct sd_node *nodes, int nr_nodes)
{
	struct vnode_info *vi = calloc(1, sizeof(*vi));
	int total = 0;

	if (!vi)
		return NULL;
	vi->nodes = calloc(nr_nodes ? nr_nodes : 1, sizeof(*nodes));
	if (!vi->nodes)
		goto out_free;
	memcpy(vi->nodes, nodes, nr_nodes * sizeof(*nodes));
	qsort(vi->nodes, nr_nodes, sizeof(*nodes), cmp_node_q);
	vi->nr_nodes = nr_nodes;
	for (int i = 0; i < nr_nodes; i++)
		total += vi->nodes[i].nr_vnodes * RING_POINTS_PER_VNODE;
	vi->vnodes = calloc(total ? total : 1, sizeof(*vi->vnodes));
	if (!vi->vnodes)
		goto out_nodes;
	for (int i = 0, k = 0; i < nr_nodes; i++) {
		const struct sd_node *n = &vi->nodes[i];
		uint8_t key[18];
		memcpy(key, n->addr, 16);
		key[16] = n->port & 0xff;
		key[17] = n->port >> 8;
		uint64_t h = sd_hash(key, sizeof(key));
		for (int v = 0; v < n->nr_vnodes * RING_POINTS_PER_VNODE; v++) {
			vi->vnodes[k].hash = h;
			vi->vnodes[k].node_idx = i;
			k++;
			h = sd_hash_next(h);
		}
	}
	qsort(vi->vnodes, total, sizeof(*vi->vnodes), cmp_vnode);
	vi->nr_vnodes = total;
	/* zones that own at least one vnode */
	for (int i = 0; i < nr_nodes; i++) {
		if (!vi->nodes[i].nr_vnodes)
			continue;
		int seen = 0;
		for (int j = 0; j < i; j++)
			if (vi->nodes[j].nr_vnodes && vi->nodes[j].zone == vi->nodes[i].zone)
				seen = 1;
		if (!seen)
			vi->nr_zones++;
	}
	return vi;
out_nodes:
	free(vi->nodes);
out_free:
	free(vi);
	return NULL;
}

void ring_free(struct vnode_info *vi)
{
	if (!vi)
		return;
	free(vi->vnodes);
	free(vi->nodes);
	free(vi);
}

/* first vnode with hash >= h (wrapping) */
static int ring_lower_bound(const struct vnode_info *vi, uint64_t h)
{
	int lo = 0, hi = vi->nr_vnodes;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (vi->vnodes[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == vi->nr_vnodes ? 0 : lo;
}

int ring_pick_nodes(const struct vnode_info *vi, uint64_t oid, int copies, int *idx)
{
	int want = copies < vi->nr_zones ? copies : vi->nr_zones, got = 0;
	if (want <= 0)
		return 0;
	int start = ring_lower_bound(vi, sd_hash_oid(oid));
	for (int step = 0; step < vi->nr_vnodes && got < want; step++) {
		const struct sd_vnode *v = &vi->vnodes[(start + step) % vi->nr_vnodes];
		const struct sd_node *n = &vi->nodes[v->node_idx];
		int dup = 0;
		for (int j = 0; j < got; j++)
			if (vi->nodes[idx[j]].zone == n->zone)
				dup = 1;
		if (!dup)
			idx[got++] = v->node_idx;
	}
	return got;
}

int ring_find_node(const struct vnode_info *vi, const struct sd_node *n)
{
	for (int i = 0; i < vi->nr_nodes; i++)
		if (!node_cmp(&vi->nodes[i], n))
			return i;
	return -1;
}
