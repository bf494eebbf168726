/* ring.h: the consistent-hash ring of virtual nodes and replica placement. */
#ifndef RING_H
#define RING_H

#include <stdint.h>
#include "internal_proto.h"

#define RING_POINTS_PER_VNODE 16
/* automatic weights: one vnode for every RING_BYTES_PER_VNODE of store capacity (a 256 GiB node
 * gets 128, the default of a node whose weight is given by hand), at least 1, at most
 * RING_MAX_AUTO_VNODES (16 TiB; larger nodes weigh the same) */
#define RING_BYTES_PER_VNODE (2ULL << 30)
#define RING_MAX_AUTO_VNODES 8192

struct sd_vnode {
	uint64_t hash;
	uint16_t node_idx;
};

/* An immutable view of one membership: nodes sorted by id, their vnodes sorted by hash. */
struct vnode_info {
	int nr_nodes;
	int nr_vnodes;
	int nr_zones;
	struct sd_node *nodes;
	struct sd_vnode *vnodes;
	int refcnt;   /* managed by the owner (sheep), not by ring.c */
};

/* Build a ring from a node list (copied). NULL on allocation failure. */
struct vnode_info *ring_build(const struct sd_node *nodes, int nr_nodes);
void ring_free(struct vnode_info *vi);
/* Choose up to copies nodes for oid: walk clockwise from hash(oid), skip zones already chosen.
 * Fills idx[] with indexes into vi->nodes; returns the count (min(copies, nr_zones)). */
int ring_pick_nodes(const struct vnode_info *vi, uint64_t oid, int copies, int *idx);
/* Is node (by identity) among the replicas of oid? */
int ring_find_node(const struct vnode_info *vi, const struct sd_node *n);
int node_cmp(const struct sd_node *a, const struct sd_node *b);   /* identity: addr, port */
/* the vnode count of a node whose store holds capacity bytes */
uint16_t ring_vnodes_for_capacity(uint64_t capacity);
/* the default zone of a node: its host address, so that copies land on distinct machines
 * (an IPv4 address is its own zone number, as in sheepdog; IPv6 is hashed) */
uint32_t ring_zone_of_addr(const uint8_t addr[16]);

#endif
