/* test_ring_weight.c: unit tests for weights and zones on the ring: vnodes from capacity, the
 * zone of an address, shares that follow weights, and data moved on a join or a reweight
 * against the optimum (what the weights alone force to move), on 10 nodes and on 1000. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "net.h"
#include "ring.h"

#define NR_WEIGHT_OBJS 100000
#define GiB (1ULL << 30)

static void weighted_nodes(struct sd_node *nodes, int n, uint16_t vnodes)
{
	memset(nodes, 0, n * sizeof(*nodes));
	for (int i = 0; i < n; i++) {
		char a[32];
		snprintf(a, sizeof(a), "10.1.%d.%d", i / 200, 1 + i % 200);
		str_to_addr(a, nodes[i].addr);
		nodes[i].port = 7000;
		nodes[i].nr_vnodes = vnodes;
		nodes[i].zone = ring_zone_of_addr(nodes[i].addr);
	}
}

static void test_vnodes_for_capacity(void)
{
	CU_ASSERT_EQUAL(ring_vnodes_for_capacity(0), 1);
	CU_ASSERT_EQUAL(ring_vnodes_for_capacity(100ULL << 20), 1);
	CU_ASSERT_EQUAL(ring_vnodes_for_capacity(256 * GiB), 128);
	CU_ASSERT_EQUAL(ring_vnodes_for_capacity(512 * GiB), 256);
	CU_ASSERT_EQUAL(ring_vnodes_for_capacity(16384 * GiB), RING_MAX_AUTO_VNODES);
	CU_ASSERT_EQUAL(ring_vnodes_for_capacity(~0ULL), RING_MAX_AUTO_VNODES);
}

static void test_zone_of_address(void)
{
	uint8_t a[16], b[16], c[16], d[16];
	str_to_addr("192.168.1.10", a);
	str_to_addr("192.168.1.10", b);
	str_to_addr("192.168.1.11", c);
	str_to_addr("fd00::1", d);
	CU_ASSERT_EQUAL(ring_zone_of_addr(a), ring_zone_of_addr(b));
	CU_ASSERT_NOT_EQUAL(ring_zone_of_addr(a), ring_zone_of_addr(c));
	CU_ASSERT_EQUAL(ring_zone_of_addr(a), 192U | 168U << 8 | 1U << 16 | 10U << 24);
	CU_ASSERT_NOT_EQUAL(ring_zone_of_addr(d), 0);
	/* two sheep of one host share a zone: 3 copies over 2 hosts give 2 */
	struct sd_node nodes[3];
	weighted_nodes(nodes, 3, 64);
	nodes[1] = nodes[0];
	nodes[1].port = 7001;
	struct vnode_info *vi = ring_build(nodes, 3);
	int idx[3];
	CU_ASSERT_EQUAL(vi->nr_zones, 2);
	CU_ASSERT_EQUAL(ring_pick_nodes(vi, 12345, 3, idx), 2);
	CU_ASSERT_NOT_EQUAL(vi->nodes[idx[0]].zone, vi->nodes[idx[1]].zone);
	ring_free(vi);
}

/* of nr_objs objects, the replicas (copies) placed differently by the two rings */
static long replicas_moved_of(const struct vnode_info *before, const struct vnode_info *after, int copies,
			      uint64_t nr_objs)
{
	long moved = 0;
	for (uint64_t i = 0; i < nr_objs; i++) {
		uint64_t oid = vid_to_data_oid(0x51ee9, i);
		int a[8], b[8];
		int na = ring_pick_nodes(before, oid, copies, a), nb = ring_pick_nodes(after, oid, copies, b);
		for (int k = 0; k < nb; k++) {
			bool kept = false;
			for (int j = 0; j < na; j++)
				kept |= !node_cmp(&after->nodes[b[k]], &before->nodes[a[j]]);
			moved += !kept;
		}
	}
	return moved;
}

static long replicas_moved(const struct vnode_info *before, const struct vnode_info *after, int copies)
{
	return replicas_moved_of(before, after, copies, NR_WEIGHT_OBJS);
}

static long share_of(const struct vnode_info *vi, const struct sd_node *n)
{
	long got = 0;
	for (uint64_t i = 0; i < NR_WEIGHT_OBJS; i++) {
		int idx;
		ring_pick_nodes(vi, vid_to_data_oid(0x51ee9, i), 1, &idx);
		got += !node_cmp(&vi->nodes[idx], n);
	}
	return got;
}

static void test_share_follows_weight(void)
{
	struct sd_node nodes[10];
	weighted_nodes(nodes, 10, 128);
	nodes[3].nr_vnodes = 256;
	struct vnode_info *vi = ring_build(nodes, 10);
	double want = NR_WEIGHT_OBJS * 2.0 / 11, got = share_of(vi, &nodes[3]);
	CU_ASSERT(got > want * 0.9 && got < want * 1.1);
	ring_free(vi);
}

static void test_join_moves_within_optimum(void)
{
	struct sd_node nodes[11];
	weighted_nodes(nodes, 11, 128);
	struct vnode_info *before = ring_build(nodes, 10), *after = ring_build(nodes, 11);
	for (int copies = 1; copies <= 3; copies += 2) {
		double optimum = (double)copies * NR_WEIGHT_OBJS / 11;
		long moved = replicas_moved(before, after, copies);
		CU_ASSERT(moved > 0);
		CU_ASSERT(moved <= 1.1 * optimum);
	}
	ring_free(before);
	ring_free(after);
}

/* node 4 of 10 goes from 128 to 256 vnodes: only what it gains needs to move, 2/11 - 1/10 */
static void test_reweight_moves_within_optimum(void)
{
	struct sd_node nodes[10];
	weighted_nodes(nodes, 10, 128);
	struct vnode_info *before = ring_build(nodes, 10);
	nodes[4].nr_vnodes = 256;
	struct vnode_info *after = ring_build(nodes, 10);
	double optimum = NR_WEIGHT_OBJS * (2.0 / 11 - 1.0 / 10);
	long moved = replicas_moved(before, after, 1);
	CU_ASSERT(moved > 0);
	CU_ASSERT(moved <= 1.1 * optimum);
	/* everything that moved went to node 4 */
	CU_ASSERT_EQUAL(share_of(after, &nodes[4]) - share_of(before, &nodes[4]), moved);
	ring_free(before);
	ring_free(after);
}

/* ---- 1000 nodes ---- */
#define SCALE_NODES 1000
#define SCALE_OBJS 1000000

/* each node's exact share of the hash space (one copy): a vnode point owns the arc that ends
 * at it, since an object goes to the first point at or after its hash */
static void exact_shares(const struct vnode_info *vi, double *share)
{
	for (int i = 0; i < vi->nr_nodes; i++)
		share[i] = 0;
	for (int v = 0; v < vi->nr_vnodes; v++) {
		uint64_t prev = vi->vnodes[(v + vi->nr_vnodes - 1) % vi->nr_vnodes].hash;
		share[vi->vnodes[v].node_idx] += (double)(vi->vnodes[v].hash - prev) / 18446744073709551616.0;
	}
}

static void test_scale_balance(void)
{
	static struct sd_node nodes[SCALE_NODES];
	static double share[SCALE_NODES];
	weighted_nodes(nodes, SCALE_NODES, 128);
	struct vnode_info *vi = ring_build(nodes, SCALE_NODES);
	CU_ASSERT_FATAL(vi != NULL);
	CU_ASSERT_EQUAL(vi->nr_zones, SCALE_NODES);
	exact_shares(vi, share);
	double lo = 1, hi = 0, sum = 0, optimum = 1.0 / SCALE_NODES;
	for (int i = 0; i < SCALE_NODES; i++) {
		lo = share[i] < lo ? share[i] : lo;
		hi = share[i] > hi ? share[i] : hi;
		sum += share[i];
	}
	printf("\n    1000 nodes x 128 vnodes: shares %.3fx to %.3fx of the optimum ", lo / optimum, hi / optimum);
	CU_ASSERT(sum > 0.999999 && sum < 1.000001);
	CU_ASSERT(hi <= 1.1 * optimum);
	CU_ASSERT(lo >= 0.9 * optimum);
	ring_free(vi);
}

/* a 1001st node joins, then node 500 leaves: what moves is within 1.1x of copies/(N+1) */
static void test_scale_join_leave(void)
{
	static struct sd_node nodes[SCALE_NODES + 1], fewer[SCALE_NODES];
	weighted_nodes(nodes, SCALE_NODES + 1, 128);
	struct vnode_info *before = ring_build(nodes, SCALE_NODES), *after = ring_build(nodes, SCALE_NODES + 1);
	memcpy(fewer, nodes, 500 * sizeof(nodes[0]));
	memcpy(fewer + 500, nodes + 501, (SCALE_NODES - 500) * sizeof(nodes[0]));
	struct vnode_info *left = ring_build(fewer, SCALE_NODES);
	CU_ASSERT_FATAL(before && after && left);
	for (int copies = 1; copies <= 3; copies += 2) {
		double optimum = (double)copies * SCALE_OBJS / (SCALE_NODES + 1);
		long joined = replicas_moved_of(before, after, copies, SCALE_OBJS);
		long gone = replicas_moved_of(after, left, copies, SCALE_OBJS);
		printf("\n    copies %d: join moves %.3fx, leave %.3fx of the optimum ", copies, joined / optimum,
		       gone / optimum);
		CU_ASSERT(joined > 0 && joined <= 1.1 * optimum);
		CU_ASSERT(gone > 0 && gone <= 1.1 * optimum);
	}
	ring_free(before);
	ring_free(after);
	ring_free(left);
}

int ring_add_suites(void)
{
	CU_pSuite s = CU_add_suite("ring weights and zones", NULL, NULL);
	if (!s)
		return -1;
	struct { const char *name; void (*fn)(void); } tests[] = {
		{ "vnodes follow capacity, 1 to 8192", test_vnodes_for_capacity },
		{ "a host address is one zone", test_zone_of_address },
		{ "a node of twice the weight gets twice the share (10%)", test_share_follows_weight },
		{ "a join moves at most 1.1x the optimum (1 and 3 copies)", test_join_moves_within_optimum },
		{ "a reweight moves at most 1.1x the optimum, all to the node", test_reweight_moves_within_optimum },
		{ "1000 nodes: every share within 10% of 1/N", test_scale_balance },
		{ "1000 nodes: a join and a leave move at most 1.1x copies/(N+1)", test_scale_join_leave },
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
