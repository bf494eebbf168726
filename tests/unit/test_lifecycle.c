/* test_lifecycle.c: unit tests for the VDI lifecycle's pure parts: the backup stream records and
 * block diff, snapshot identities, snapshot-argument parsing and the inode metadata layout. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "backup_stream.h"
#include "crc32c.h"
#include "internal_proto.h"
#include "sd_client.h"
#include "util.h"

static void test_record_roundtrip(void)
{
	struct backup_rec r;
	const char payload[] = "some bytes of a VDI";
	backup_rec_fill(&r, BACKUP_REC_DATA, 12345, payload, sizeof(payload), 7);
	CU_ASSERT_EQUAL(r.magic, BACKUP_MAGIC);
	CU_ASSERT_EQUAL(memcmp(&r, "SFBK", 4), 0);
	CU_ASSERT_EQUAL(backup_rec_check(&r, 7), BACKUP_REC_OK);
	CU_ASSERT_EQUAL(backup_rec_check(&r, 8), BACKUP_REC_BAD_SEQ);
	CU_ASSERT_TRUE(backup_payload_ok(&r, payload));
}

/* every single-bit flip in a header or payload is caught */
static void test_record_detects_flips(void)
{
	char payload[64];
	struct backup_rec r, bad;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char)(i * 7);
	backup_rec_fill(&r, BACKUP_REC_ZERO, 1 << 20, payload, sizeof(payload), 3);
	for (size_t bit = 0; bit < sizeof(r) * 8; bit++) {
		bad = r;
		((unsigned char *)&bad)[bit / 8] ^= 1u << (bit % 8);
		CU_ASSERT_NOT_EQUAL(backup_rec_check(&bad, 3), BACKUP_REC_OK);
	}
	for (size_t bit = 0; bit < sizeof(payload) * 8; bit++) {
		payload[bit / 8] ^= 1u << (bit % 8);
		CU_ASSERT_FALSE(backup_payload_ok(&r, payload));
		payload[bit / 8] ^= 1u << (bit % 8);
	}
	CU_ASSERT_TRUE(backup_payload_ok(&r, payload));
}

static void test_record_too_long(void)
{
	struct backup_rec r;
	backup_rec_fill(&r, BACKUP_REC_DATA, 0, "", 0, 0);
	r.length = BACKUP_REC_MAX_PAYLOAD + 1;
	/* re-seal the header so that only the length is wrong */
	struct backup_rec sealed = r;
	sealed.header_crc = crc32c(0, &sealed, offsetof(struct backup_rec, header_crc));
	CU_ASSERT_EQUAL(backup_rec_check(&sealed, 0), BACKUP_REC_TOO_LONG);
}

struct run { int kind; uint64_t start, len; };
struct runs { struct run r[32]; size_t n; };

static void collect(void *ctx, int kind, uint64_t start, uint64_t len)
{
	struct runs *rs = ctx;
	if (rs->n < 32)
		rs->r[rs->n++] = (struct run){ kind, start, len };
}

static void test_diff_full(void)
{
	size_t len = 10 * BACKUP_BLOCK + 100;
	char *to = calloc(1, len);
	struct runs rs = { .n = 0 };
	to[BACKUP_BLOCK * 2 + 5] = 1;          /* block 2 */
	to[BACKUP_BLOCK * 3] = 1;              /* block 3: one run with 2 */
	to[len - 1] = 1;                       /* the short last block */
	CU_ASSERT_EQUAL(backup_diff_runs(to, NULL, len, collect, &rs), 2);
	CU_ASSERT_EQUAL(rs.r[0].kind, BACKUP_REC_DATA);
	CU_ASSERT_EQUAL(rs.r[0].start, 2 * BACKUP_BLOCK);
	CU_ASSERT_EQUAL(rs.r[0].len, 2 * BACKUP_BLOCK);
	CU_ASSERT_EQUAL(rs.r[1].start, 10 * BACKUP_BLOCK);
	CU_ASSERT_EQUAL(rs.r[1].len, 100);
	free(to);
}

static void test_diff_incremental(void)
{
	size_t len = 8 * BACKUP_BLOCK;
	char *to = calloc(1, len), *from = calloc(1, len);
	struct runs rs = { .n = 0 };
	memset(from, 'a', len);
	memset(to, 'a', len);
	memset(to + BACKUP_BLOCK, 0, 2 * BACKUP_BLOCK);    /* blocks 1-2 became zero */
	to[3 * BACKUP_BLOCK] = 'b';                         /* block 3 changed */
	to[7 * BACKUP_BLOCK + 9] = 'c';                     /* block 7 changed */
	CU_ASSERT_EQUAL(backup_diff_runs(to, from, len, collect, &rs), 3);
	CU_ASSERT_EQUAL(rs.r[0].kind, BACKUP_REC_ZERO);
	CU_ASSERT_EQUAL(rs.r[0].start, BACKUP_BLOCK);
	CU_ASSERT_EQUAL(rs.r[0].len, 2 * BACKUP_BLOCK);
	CU_ASSERT_EQUAL(rs.r[1].kind, BACKUP_REC_DATA);
	CU_ASSERT_EQUAL(rs.r[1].start, 3 * BACKUP_BLOCK);
	CU_ASSERT_EQUAL(rs.r[1].len, BACKUP_BLOCK);
	CU_ASSERT_EQUAL(rs.r[2].start, 7 * BACKUP_BLOCK);
	/* identical buffers: nothing */
	rs.n = 0;
	CU_ASSERT_EQUAL(backup_diff_runs(from, from, len, collect, &rs), 0);
	free(to);
	free(from);
}

static void test_snapshot_identity(void)
{
	uint64_t a = backup_snapshot_identity(0x7c2b25, UINT64_C(1) << 32, UINT64_C(2) << 32);
	CU_ASSERT_EQUAL(a, backup_snapshot_identity(0x7c2b25, UINT64_C(1) << 32, UINT64_C(2) << 32));
	CU_ASSERT_NOT_EQUAL(a, backup_snapshot_identity(0x7c2b26, UINT64_C(1) << 32, UINT64_C(2) << 32));
	CU_ASSERT_NOT_EQUAL(a, backup_snapshot_identity(0x7c2b25, UINT64_C(1) << 32, (UINT64_C(2) << 32) + 1));
	/* FNV-1a-64 over the 20 little-endian bytes: vid, create_time, snap_ctime */
	unsigned char b[20] = { 0x25, 0x2b, 0x7c, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0 };
	CU_ASSERT_EQUAL(a, fnv_64a_buf(b, sizeof(b), FNV1A_64_INIT));
	CU_ASSERT_NOT_EQUAL(a, 0);
}

static void test_snap_is_id(void)
{
	CU_ASSERT_TRUE(sd_snap_is_id("1"));
	CU_ASSERT_TRUE(sd_snap_is_id("4294967295"));
	CU_ASSERT_FALSE(sd_snap_is_id("4294967296"));
	CU_ASSERT_FALSE(sd_snap_is_id("0"));
	CU_ASSERT_FALSE(sd_snap_is_id(""));
	CU_ASSERT_FALSE(sd_snap_is_id(NULL));
	CU_ASSERT_FALSE(sd_snap_is_id("nightly"));
	CU_ASSERT_FALSE(sd_snap_is_id("2026-11-29"));
	CU_ASSERT_FALSE(sd_snap_is_id("-1"));
}

static void test_inode_metadata_layout(void)
{
	struct sd_inode_header h;
	/* the attribute list and the flags fit the old child-list area without overlapping */
	CU_ASSERT_TRUE(1 + SD_INODE_ATTR_LIST_MAX <= SD_INODE_FLAGS_WORD);
	CU_ASSERT_EQUAL(SD_INODE_FLAGS_WORD, ARRAY_SIZE(h.reserved_area) - 1);
	CU_ASSERT_EQUAL(SD_INODE_FLAG_CLONE & SD_INODE_FLAG_PENDING, 0);
	CU_ASSERT_EQUAL(sizeof(struct vdi_lock_info), 64);
}

int lifecycle_add_suites(void)
{
	CU_pSuite s = CU_add_suite("lifecycle", NULL, NULL);
	if (!s)
		return -1;
	if (!CU_add_test(s, "backup record round trip", test_record_roundtrip) ||
	    !CU_add_test(s, "backup record detects every bit flip", test_record_detects_flips) ||
	    !CU_add_test(s, "backup record length bound", test_record_too_long) ||
	    !CU_add_test(s, "backup diff of a full stream", test_diff_full) ||
	    !CU_add_test(s, "backup diff between snapshots", test_diff_incremental) ||
	    !CU_add_test(s, "snapshot identity", test_snapshot_identity) ||
	    !CU_add_test(s, "snapshot argument: id or tag", test_snap_is_id) ||
	    !CU_add_test(s, "inode metadata layout", test_inode_metadata_layout))
		return -1;
	return 0;
}
