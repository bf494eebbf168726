/* test_nbd.c: unit tests for the NBD protocol module: request decoding and checks, option payload
 * parsers, export names and reply headers. */
#include <CUnit/CUnit.h>
#include <string.h>

#include "nbd_proto.h"

static size_t build_request(uint8_t *b, uint32_t magic, uint16_t flags, uint16_t type, uint64_t cookie,
			    uint64_t offset, uint32_t length)
{
	uint8_t *p = nbd_put32(b, magic);
	p = nbd_put16(p, flags);
	p = nbd_put16(p, type);
	p = nbd_put64(p, cookie);
	p = nbd_put64(p, offset);
	p = nbd_put32(p, length);
	return p - b;
}

static void test_parse_request(void)
{
	uint8_t b[NBD_REQUEST_SIZE];
	struct nbd_request rq;
	CU_ASSERT_EQUAL(build_request(b, NBD_REQUEST_MAGIC, 1, NBD_CMD_WRITE, 0x1122334455667788ull,
				      0x0102030405060708ull, 0xdeadbeef), NBD_REQUEST_SIZE);
	CU_ASSERT_EQUAL(nbd_parse_request(b, &rq), 0);
	CU_ASSERT_EQUAL(rq.flags, 1);
	CU_ASSERT_EQUAL(rq.type, NBD_CMD_WRITE);
	CU_ASSERT_EQUAL(rq.cookie, 0x1122334455667788ull);
	CU_ASSERT_EQUAL(rq.offset, 0x0102030405060708ull);
	CU_ASSERT_EQUAL(rq.length, 0xdeadbeef);
	b[0] ^= 1;
	CU_ASSERT_EQUAL(nbd_parse_request(b, &rq), -1);
}

static int check(uint16_t type, uint16_t flags, uint64_t off, uint32_t len, bool ro, bool structured, bool meta)
{
	struct nbd_request rq = { NBD_REQUEST_MAGIC, flags, type, 7, off, len };
	struct nbd_export_limits lim = { .size = 64 << 20, .max_request = NBD_MAX_REQUEST, .read_only = ro,
					 .structured = structured, .meta_allocation = meta };
	return nbd_check_request(&rq, &lim);
}

static void test_check_request(void)
{
	const uint64_t end = 64 << 20;
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, 0, 0, 4096, false, true, true), 0);
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, 0, end - 1, 1, false, true, true), 0);
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, 0, end - 1, 2, false, true, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, 0, UINT64_MAX - 10, 4096, false, true, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, 0, 0, 0, false, true, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, 0, 0, NBD_MAX_REQUEST + 1, false, true, true), NBD_EOVERFLOW);
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, 0, 0, NBD_MAX_REQUEST + 1, false, false, false), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512, false, true, false), 0);
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512, false, false, false), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_READ, 0x100, 0, 512, false, true, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, 512, false, true, true), 0);
	CU_ASSERT_EQUAL(check(NBD_CMD_WRITE, 0, 0, 512, true, true, true), NBD_EPERM);
	CU_ASSERT_EQUAL(check(NBD_CMD_WRITE, 0, end - 100, 200, false, true, true), NBD_ENOSPC);
	CU_ASSERT_EQUAL(check(NBD_CMD_WRITE, 0, 0, NBD_MAX_REQUEST + 1, false, true, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, 512, false, true, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_TRIM, 0, 0, end, false, true, true), 0);
	CU_ASSERT_EQUAL(check(NBD_CMD_TRIM, 0, 0, 512, true, true, true), NBD_EPERM);
	CU_ASSERT_EQUAL(check(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO | NBD_CMD_FLAG_FUA,
			      0, 0xffffffffu, false, true, true), NBD_ENOSPC);
	CU_ASSERT_EQUAL(check(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 4096, 64 << 20 >> 1, false, true, true), 0);
	CU_ASSERT_EQUAL(check(NBD_CMD_FLUSH, 0, 0, 0, true, true, true), 0);
	CU_ASSERT_EQUAL(check(NBD_CMD_FLUSH, 0, 0, 1, false, true, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 4096, false, true, true), 0);
	CU_ASSERT_EQUAL(check(NBD_CMD_BLOCK_STATUS, 0, 0, 4096, false, true, false), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_BLOCK_STATUS, 0, 0, 4096, false, false, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_CACHE, 0, 0, 4096, false, true, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(99, 0, 0, 4096, false, true, true), NBD_EINVAL);
	CU_ASSERT_EQUAL(check(NBD_CMD_DISC, 0, 0, 0, true, false, false), 0);
}

static uint32_t info_opt(const char *name, uint32_t claimed, const uint16_t *infos, uint16_t n, uint16_t count,
			 struct nbd_info_opt *out)
{
	uint8_t buf[512], *p = nbd_put32(buf, claimed);
	memcpy(p, name, strlen(name));
	p += strlen(name);
	p = nbd_put16(p, count);
	for (uint16_t i = 0; i < n; i++)
		p = nbd_put16(p, infos[i]);
	return nbd_parse_info_opt(buf, p - buf, out);
}

static void test_info_opt(void)
{
	static struct nbd_info_opt o;
	const uint16_t infos[] = { NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME, 77 };
	CU_ASSERT_EQUAL(info_opt("disk@snap", 9, infos, 3, 3, &o), 0);
	CU_ASSERT_STRING_EQUAL(o.name, "disk@snap");
	CU_ASSERT_TRUE(o.want_block_size);
	CU_ASSERT_TRUE(o.want_name);
	CU_ASSERT_FALSE(o.want_description);
	CU_ASSERT_EQUAL(info_opt("disk", 4, NULL, 0, 0, &o), 0);
	CU_ASSERT_EQUAL(info_opt("disk", 400, NULL, 0, 0, &o), NBD_REP_ERR_INVALID);   /* name past the data */
	CU_ASSERT_EQUAL(info_opt("disk", 4, infos, 1, 2, &o), NBD_REP_ERR_INVALID);    /* count mismatch */
	CU_ASSERT_EQUAL(info_opt("di\0k", 4, NULL, 0, 0, &o), NBD_REP_ERR_INVALID);
	CU_ASSERT_EQUAL(nbd_parse_info_opt((const uint8_t *)"\0\0", 2, &o), NBD_REP_ERR_INVALID);
	uint8_t big[4 + 5000 + 2] = { 0 };
	nbd_put32(big, 5000);
	memset(big + 4, 'a', 5000);
	CU_ASSERT_EQUAL(nbd_parse_info_opt(big, sizeof(big), &o), NBD_REP_ERR_INVALID);   /* over 4096 */
}

static uint32_t meta_opt(bool list, int nq, const char *const *q, uint32_t extra, struct nbd_meta_opt *out)
{
	uint8_t buf[512], *p = nbd_put32(buf, 4);
	memcpy(p, "disk", 4);
	p = nbd_put32(p + 4, nq);
	for (int i = 0; i < nq; i++) {
		p = nbd_put32(p, strlen(q[i]));
		memcpy(p, q[i], strlen(q[i]));
		p += strlen(q[i]);
	}
	memset(p, 0, extra);
	return nbd_parse_meta_opt(buf, p - buf + extra, list, out);
}

static void test_meta_opt(void)
{
	static struct nbd_meta_opt o;
	const char *const qs[] = { "qemu:dirty-bitmap:x", "base:allocation" };
	const char *const other[] = { "qemu:allocation-depth" };
	const char *const base[] = { "base:" };
	CU_ASSERT_EQUAL(meta_opt(false, 2, qs, 0, &o), 0);
	CU_ASSERT_STRING_EQUAL(o.name, "disk");
	CU_ASSERT_TRUE(o.base_allocation);
	CU_ASSERT_EQUAL(meta_opt(false, 1, other, 0, &o), 0);
	CU_ASSERT_FALSE(o.base_allocation);
	CU_ASSERT_EQUAL(meta_opt(true, 0, NULL, 0, &o), 0);
	CU_ASSERT_TRUE(o.base_allocation);
	CU_ASSERT_EQUAL(meta_opt(false, 0, NULL, 0, &o), 0);
	CU_ASSERT_FALSE(o.base_allocation);
	CU_ASSERT_EQUAL(meta_opt(true, 1, base, 0, &o), 0);
	CU_ASSERT_TRUE(o.base_allocation);
	CU_ASSERT_EQUAL(meta_opt(false, 1, base, 0, &o), 0);
	CU_ASSERT_FALSE(o.base_allocation);
	CU_ASSERT_EQUAL(meta_opt(false, 2, qs, 3, &o), NBD_REP_ERR_INVALID);     /* trailing bytes */
	uint8_t trunc[] = { 0, 0, 0, 4, 'd', 'i', 's', 'k', 0, 0, 0, 5, 0, 0, 0, 9, 'b' };
	CU_ASSERT_EQUAL(nbd_parse_meta_opt(trunc, sizeof(trunc), false, &o), NBD_REP_ERR_INVALID);
}

static void test_export_names(void)
{
	char v[256], t[256];
	CU_ASSERT_EQUAL(nbd_split_export_name("disk", v, sizeof(v), t, sizeof(t)), 0);
	CU_ASSERT_STRING_EQUAL(v, "disk");
	CU_ASSERT_STRING_EQUAL(t, "");
	CU_ASSERT_EQUAL(nbd_split_export_name("disk@snap1", v, sizeof(v), t, sizeof(t)), 0);
	CU_ASSERT_STRING_EQUAL(v, "disk");
	CU_ASSERT_STRING_EQUAL(t, "snap1");
	CU_ASSERT_EQUAL(nbd_split_export_name("a@b@c", v, sizeof(v), t, sizeof(t)), 0);
	CU_ASSERT_STRING_EQUAL(v, "a@b");
	CU_ASSERT_STRING_EQUAL(t, "c");
	CU_ASSERT_EQUAL(nbd_split_export_name("", v, sizeof(v), t, sizeof(t)), -1);
	CU_ASSERT_EQUAL(nbd_split_export_name("@x", v, sizeof(v), t, sizeof(t)), -1);
	CU_ASSERT_EQUAL(nbd_split_export_name("x@", v, sizeof(v), t, sizeof(t)), -1);
	CU_ASSERT_EQUAL(nbd_split_export_name("abcdef", v, 4, t, sizeof(t)), -1);
}

static void test_reply_headers(void)
{
	uint8_t b[32];
	CU_ASSERT_EQUAL(nbd_build_option_reply(b, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, 5), 20);
	CU_ASSERT_EQUAL(nbd_get64(b), NBD_REP_MAGIC);
	CU_ASSERT_EQUAL(nbd_get32(b + 8), NBD_OPT_GO);
	CU_ASSERT_EQUAL(nbd_get32(b + 12), 0x80000006u);
	CU_ASSERT_EQUAL(nbd_get32(b + 16), 5);
	CU_ASSERT_EQUAL(nbd_build_simple_reply(b, NBD_EIO, 42), NBD_SIMPLE_REPLY_SIZE);
	CU_ASSERT_EQUAL(nbd_get32(b), 0x67446698u);
	CU_ASSERT_EQUAL(nbd_get32(b + 4), 5);
	CU_ASSERT_EQUAL(nbd_get64(b + 8), 42);
	CU_ASSERT_EQUAL(nbd_build_chunk_header(b, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, 9, 4104),
			NBD_CHUNK_HEADER_SIZE);
	CU_ASSERT_EQUAL(nbd_get32(b), 0x668e33efu);
	CU_ASSERT_EQUAL(nbd_get16(b + 4), 1);
	CU_ASSERT_EQUAL(nbd_get16(b + 6), 1);
	CU_ASSERT_EQUAL(nbd_get64(b + 8), 9);
	CU_ASSERT_EQUAL(nbd_get32(b + 16), 4104);
	CU_ASSERT_STRING_EQUAL(nbd_cmd_name(NBD_CMD_BLOCK_STATUS), "BLOCK_STATUS");
	CU_ASSERT_STRING_EQUAL(nbd_err_name(NBD_ENOSPC), "ENOSPC");
}

int guest_add_suites(void);

/* the nbd area's suites: the NBD protocol here, the guest flow it runs on in test_guest.c */
int nbd_add_suites(void)
{
	if (guest_add_suites())
		return -1;
	CU_pSuite s = CU_add_suite("nbd", NULL, NULL);
	if (!s)
		return -1;
	struct { const char *name; void (*fn)(void); } tests[] = {
		{ "request decoding and magic", test_parse_request },
		{ "request checks: ranges, lengths, flags, read-only", test_check_request },
		{ "GO/INFO payloads", test_info_opt },
		{ "meta context payloads", test_meta_opt },
		{ "export names NAME and NAME@TAG", test_export_names },
		{ "reply headers", test_reply_headers },
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
