/* test_lib.c: unit tests for lib: hash vectors, crc32c, the ring, protocol layout, request
 * validation and size parsing. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "internal_proto.h"
#include "net.h"
#include "proto_check.h"
#include "ring.h"
#include "util.h"

static void test_fnv1a_vectors(void)
{
	CU_ASSERT_EQUAL(fnv_64a_buf("", 0, FNV1A_64_INIT), UINT64_C(0xcbf29ce484222325));
	CU_ASSERT_EQUAL(fnv_64a_buf("a", 1, FNV1A_64_INIT), UINT64_C(0xaf63dc4c8601ec8c));
	CU_ASSERT_EQUAL(fnv_64a_buf("test", 4, FNV1A_64_INIT), UINT64_C(0xf9e6e6ef197c2b25));
	CU_ASSERT_EQUAL(fnv_64a_buf("foobar", 6, FNV1A_64_INIT), UINT64_C(0x85944171f73967e8));
}

static void test_vid_of_name(void)
{
	CU_ASSERT_EQUAL(sd_hash_vdi("test", 4), 0x7c2b25);
	CU_ASSERT_EQUAL(vid_to_vdi_oid(0x7c2b25), UINT64_C(0x807c2b2500000000));
	CU_ASSERT_EQUAL(vid_to_data_oid(0x7c2b25, 3), UINT64_C(0x007c2b2500000003));
	CU_ASSERT_EQUAL(oid_to_vid(UINT64_C(0x807c2b2500000000)), 0x7c2b25);
	CU_ASSERT_TRUE(is_data_obj(vid_to_data_oid(5, 1)));
	CU_ASSERT_FALSE(is_data_obj(vid_to_vdi_oid(5)));
	CU_ASSERT_TRUE(is_vdi_attr_obj(vid_to_attr_oid(5, 9)));
}

static void test_fnv_64a_64_matches_bytes(void)
{
	uint64_t x = UINT64_C(0x0123456789abcdef);
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = x >> (8 * i);
	CU_ASSERT_EQUAL(fnv_64a_64(x, FNV1A_64_INIT), fnv_64a_buf(b, 8, FNV1A_64_INIT));
	uint64_t h = fnv_64a_buf("abc", 3, FNV1A_64_INIT);
	CU_ASSERT_EQUAL(sd_hash("abc", 3), fnv_64a_64(h, h));
}

static void test_crc32c_vectors(void)
{
	CU_ASSERT_EQUAL(crc32c(0, "123456789", 9), 0xe3069283);
	CU_ASSERT_EQUAL(crc32c_sw(0, "123456789", 9), 0xe3069283);
	unsigned char zeros[32] = { 0 };
	CU_ASSERT_EQUAL(crc32c(0, zeros, 32), 0x8a9136aa);
	/* hardware and table agree on odd lengths and alignments */
	unsigned char buf[1000];
	for (int i = 0; i < 1000; i++)
		buf[i] = i * 7 + 3;
	for (int off = 0; off < 9; off++)
		CU_ASSERT_EQUAL(crc32c(0, buf + off, 1000 - off - 3), crc32c_sw(0, buf + off, 1000 - off - 3));
	/* chaining */
	CU_ASSERT_EQUAL(crc32c(crc32c(0, buf, 100), buf + 100, 900), crc32c(0, buf, 1000));
	/* the long-buffer kernels (folding) against the table: 64 KiB + 5 */
	static unsigned char big[65541];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 2654435761u >> 13);
	CU_ASSERT_EQUAL(crc32c(0, big, sizeof(big)), crc32c_sw(0, big, sizeof(big)));
	CU_ASSERT_EQUAL(crc32c(0x12345678, big + 3, 4096), crc32c_sw(0x12345678, big + 3, 4096));
}

static void make_nodes(struct sd_node *nodes, int n)
{
	memset(nodes, 0, n * sizeof(*nodes));
	for (int i = 0; i < n; i++) {
		char a[32];
		snprintf(a, sizeof(a), "10.0.%d.%d", i / 200, 1 + i % 200);
		str_to_addr(a, nodes[i].addr);
		nodes[i].port = 7000;
		nodes[i].nr_vnodes = SD_DEFAULT_VNODES;
		nodes[i].zone = i;
	}
}

#define NR_OBJS 10000

static void test_ring_is_deterministic(void)
{
	struct sd_node nodes[10], shuffled[10];
	make_nodes(nodes, 10);
	for (int i = 0; i < 10; i++)
		shuffled[i] = nodes[(i * 7) % 10];
	struct vnode_info *a = ring_build(nodes, 10), *b = ring_build(shuffled, 10);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	for (uint64_t i = 0; i < 1000; i++) {
		int x[3], y[3];
		uint64_t oid = vid_to_data_oid(0x123, i);
		CU_ASSERT_EQUAL(ring_pick_nodes(a, oid, 3, x), 3);
		CU_ASSERT_EQUAL(ring_pick_nodes(b, oid, 3, y), 3);
		for (int k = 0; k < 3; k++)
			CU_ASSERT_EQUAL(node_cmp(&a->nodes[x[k]], &b->nodes[y[k]]), 0);
		CU_ASSERT(x[0] != x[1] && x[1] != x[2] && x[0] != x[2]);
	}
	ring_free(a);
	ring_free(b);
}

static void test_ring_balance_10_nodes(void)
{
	struct sd_node nodes[10];
	int count[10] = { 0 };
	make_nodes(nodes, 10);
	struct vnode_info *vi = ring_build(nodes, 10);
	for (uint64_t i = 0; i < NR_OBJS; i++) {
		int idx;
		CU_ASSERT_EQUAL(ring_pick_nodes(vi, vid_to_data_oid(0x7c2b25, i), 1, &idx), 1);
		count[idx]++;
	}
	double mean = NR_OBJS / 10.0;
	for (int i = 0; i < 10; i++) {
		double dev = (count[i] - mean) / mean;
		if (dev > 0.15 || dev < -0.15)
			printf("\n  node %d holds %d objects (%.1f%% off the mean)\n", i, count[i], dev * 100);
		CU_ASSERT(dev <= 0.15 && dev >= -0.15);
	}
	ring_free(vi);
}

static void test_ring_adding_a_node_moves_little(void)
{
	struct sd_node nodes[11];
	make_nodes(nodes, 11);
	struct vnode_info *before = ring_build(nodes, 10), *after = ring_build(nodes, 11);
	int moved = 0, moved3 = 0;
	for (uint64_t i = 0; i < NR_OBJS; i++) {
		uint64_t oid = vid_to_data_oid(0x7c2b25, i);
		int a[3], b[3];
		ring_pick_nodes(before, oid, 1, a);
		ring_pick_nodes(after, oid, 1, b);
		if (node_cmp(&before->nodes[a[0]], &after->nodes[b[0]]))
			moved++;
		/* with 3 copies: replicas that changed, over all replicas */
		ring_pick_nodes(before, oid, 3, a);
		ring_pick_nodes(after, oid, 3, b);
		for (int k = 0; k < 3; k++) {
			bool kept = false;
			for (int j = 0; j < 3; j++)
				kept |= !node_cmp(&after->nodes[b[k]], &before->nodes[a[j]]);
			moved3 += !kept;
		}
	}
	CU_ASSERT(moved <= NR_OBJS * 1.3 / 11);
	CU_ASSERT(moved3 <= 3 * NR_OBJS * 1.3 / 11);
	CU_ASSERT(moved > 0);
	ring_free(before);
	ring_free(after);
}

static void test_ring_zones_and_copies(void)
{
	struct sd_node nodes[4];
	make_nodes(nodes, 4);
	nodes[1].zone = nodes[0].zone;   /* two nodes share a zone: three zones */
	struct vnode_info *vi = ring_build(nodes, 4);
	CU_ASSERT_EQUAL(vi->nr_zones, 3);
	for (uint64_t i = 0; i < 500; i++) {
		int idx[5];
		int n = ring_pick_nodes(vi, vid_to_data_oid(9, i), 5, idx);
		CU_ASSERT_EQUAL(n, 3);
		CU_ASSERT(vi->nodes[idx[0]].zone != vi->nodes[idx[1]].zone);
		CU_ASSERT(vi->nodes[idx[1]].zone != vi->nodes[idx[2]].zone);
		CU_ASSERT(vi->nodes[idx[0]].zone != vi->nodes[idx[2]].zone);
	}
	ring_free(vi);
	/* a gateway-only node (no vnodes) stores nothing */
	make_nodes(nodes, 2);
	nodes[1].nr_vnodes = 0;
	vi = ring_build(nodes, 2);
	int idx[2];
	CU_ASSERT_EQUAL(ring_pick_nodes(vi, 42, 2, idx), 1);
	ring_free(vi);
	vi = ring_build(nodes, 0);
	CU_ASSERT_EQUAL(ring_pick_nodes(vi, 42, 2, idx), 0);
	ring_free(vi);
}

static void test_protocol_layout(void)
{
	struct sd_req r;
	memset(&r, 0, sizeof(r));
	r.obj.oid = UINT64_C(0x1122334455667788);
	r.obj.offset = 0xaabbccdd;
	const unsigned char *p = (const unsigned char *)&r;
	CU_ASSERT_EQUAL(p[16], 0x88);   /* little-endian oid at 16 */
	CU_ASSERT_EQUAL(p[23], 0x11);
	CU_ASSERT_EQUAL(p[40], 0xdd);   /* offset at 40 */
	CU_ASSERT_EQUAL(sizeof(struct sd_req), 48);
	CU_ASSERT_EQUAL(sizeof(struct sd_rsp), 48);
	CU_ASSERT_EQUAL(SD_INODE_HEADER_SIZE, 4664);
	CU_ASSERT_EQUAL(SD_ATTR_OBJ_SIZE, 784 + 65536);
	CU_ASSERT_EQUAL(sd_obj_max_size(vid_to_data_oid(1, 0), 22), 4u << 20);
	CU_ASSERT_EQUAL(sd_obj_max_size(vid_to_vdi_oid(1), 22), 4664 + 4 * (1u << 20));
}

static void test_request_header_checks(void)
{
	struct sd_req h;
	memset(&h, 0, sizeof(h));
	h.opcode = SD_OP_READ_OBJ;
	for (int v = 0; v <= 2; v++) {
		h.proto_ver = v;
		CU_ASSERT_EQUAL(sd_check_request_header(&h, true, 1 << 20), 0);
	}
	h.proto_ver = 3;
	CU_ASSERT_EQUAL(sd_check_request_header(&h, true, 1 << 20), SD_RES_VER_MISMATCH);
	h.proto_ver = 2;
	CU_ASSERT_EQUAL(sd_check_request_header(&h, false, 1 << 20), SD_RES_INVALID_PARMS);
	h.data_length = (1 << 20) + 1;
	CU_ASSERT_EQUAL(sd_check_request_header(&h, true, 1 << 20), SD_RES_INVALID_PARMS);
	h.data_length = 0;
	h.opcode = SD_OP_GET_NODE_LIST;
	h.proto_ver = SD_SHEEP_PROTO_VER;
	CU_ASSERT_EQUAL(sd_check_request_header(&h, true, 1 << 20), 0);
	h.proto_ver = SD_SHEEP_PROTO_VER + 1;
	CU_ASSERT_EQUAL(sd_check_request_header(&h, true, 1 << 20), SD_RES_VER_MISMATCH);
}

static void test_parse_size(void)
{
	uint64_t v;
	CU_ASSERT_EQUAL(parse_size("4096", &v), 0);
	CU_ASSERT_EQUAL(v, 4096);
	CU_ASSERT_EQUAL(parse_size("4k", &v), 0);
	CU_ASSERT_EQUAL(v, 4096);
	CU_ASSERT_EQUAL(parse_size("10M", &v), 0);
	CU_ASSERT_EQUAL(v, 10u << 20);
	CU_ASSERT_EQUAL(parse_size("1.5G", &v), 0);
	CU_ASSERT_EQUAL(v, 3u << 29);
	CU_ASSERT_EQUAL(parse_size("2T", &v), 0);
	CU_ASSERT_EQUAL(v, UINT64_C(2) << 40);
	CU_ASSERT_EQUAL(parse_size("1GiB", &v), 0);
	CU_ASSERT_EQUAL(v, 1u << 30);
	CU_ASSERT_NOT_EQUAL(parse_size("", &v), 0);
	CU_ASSERT_NOT_EQUAL(parse_size("-1", &v), 0);
	CU_ASSERT_NOT_EQUAL(parse_size("12Q", &v), 0);
	CU_ASSERT_NOT_EQUAL(parse_size("abc", &v), 0);
	CU_ASSERT_NOT_EQUAL(parse_size("0.3", &v), 0);
	CU_ASSERT_NOT_EQUAL(parse_size("99999999999P", &v), 0);
	CU_ASSERT_EQUAL(parse_u64("0x10", &v), 0);
	CU_ASSERT_EQUAL(v, 16);
	CU_ASSERT_NOT_EQUAL(parse_u64("10x", &v), 0);
	CU_ASSERT_NOT_EQUAL(parse_u64("-3", &v), 0);
}

static void test_addresses(void)
{
	uint8_t a[16];
	char buf[64];
	CU_ASSERT_EQUAL(str_to_addr("127.0.0.1", a), 0);
	CU_ASSERT_STRING_EQUAL(addr_to_str(a, buf, sizeof(buf)), "127.0.0.1");
	CU_ASSERT_EQUAL(str_to_addr("::1", a), 0);
	CU_ASSERT_STRING_EQUAL(addr_to_str(a, buf, sizeof(buf)), "::1");
	CU_ASSERT_NOT_EQUAL(str_to_addr("not an address!", a), 0);
}

static void test_zero_detection(void)
{
	char buf[4099];
	memset(buf, 0, sizeof(buf));
	CU_ASSERT_TRUE(is_all_zero(buf, sizeof(buf)));
	for (size_t i = 0; i < sizeof(buf); i += 511) {
		buf[i] = 1;
		CU_ASSERT_FALSE(is_all_zero(buf, sizeof(buf)));
		buf[i] = 0;
	}
	buf[4098] = 1;
	CU_ASSERT_FALSE(is_all_zero(buf, sizeof(buf)));
	CU_ASSERT_TRUE(is_all_zero(buf + 1, 4097));
}

int lib_add_suites(void)
{
	CU_pSuite s = CU_add_suite("lib", NULL, NULL);
	if (!s)
		return -1;
	struct { const char *name; void (*fn)(void); } tests[] = {
		{ "fnv1a test vectors", test_fnv1a_vectors },
		{ "vid of a name and object ids", test_vid_of_name },
		{ "fnv_64a_64 equals fnv over the bytes", test_fnv_64a_64_matches_bytes },
		{ "crc32c vectors, hardware equals table", test_crc32c_vectors },
		{ "ring placement is deterministic and distinct", test_ring_is_deterministic },
		{ "ring spreads 10000 objects over 10 nodes within 15%", test_ring_balance_10_nodes },
		{ "adding an 11th node moves at most 1.3/11", test_ring_adding_a_node_moves_little },
		{ "ring honours zones, copies and gateways", test_ring_zones_and_copies },
		{ "protocol layout", test_protocol_layout },
		{ "request header checks", test_request_header_checks },
		{ "size parsing", test_parse_size },
		{ "address parsing", test_addresses },
		{ "zero detection", test_zero_detection },
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
