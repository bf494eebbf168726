/* test_formats.c: unit tests for the formats core: option lists, secrets, sibling names, memory
 * stores, probing and bounds-checked image reads, the convert engine's compare. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

static void test_options_parse(void)
{
	struct fmt_options *o = NULL;
	uint64_t sz;
	bool b;

	CU_ASSERT_EQUAL(fmt_options_parse(&o, "cluster_size=64k,lazy_refcounts,backing_file=a,,b.img"), 0);
	CU_ASSERT_STRING_EQUAL(fmt_options_get(o, "backing_file"), "a,b.img");
	CU_ASSERT_STRING_EQUAL(fmt_options_get(o, "lazy_refcounts"), "on");
	CU_ASSERT_EQUAL(fmt_options_get_size(o, "cluster_size", 0, &sz), 0);
	CU_ASSERT_EQUAL(sz, 65536);
	CU_ASSERT_EQUAL(fmt_options_get_bool(o, "lazy_refcounts", false, &b), 0);
	CU_ASSERT(b);
	CU_ASSERT_EQUAL(fmt_options_get_size(o, "missing", 7, &sz), 0);
	CU_ASSERT_EQUAL(sz, 7);
	CU_ASSERT_EQUAL(fmt_options_check_unused(o, "qcow2"), 0);
	/* the last setting wins; an unused key is reported by name */
	CU_ASSERT_EQUAL(fmt_options_parse(&o, "compat=0.10,compat=1.1,bogus=1"), 0);
	CU_ASSERT_STRING_EQUAL(fmt_options_get(o, "compat"), "1.1");
	CU_ASSERT(fmt_options_check_unused(o, "qcow2") < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(fmt_last_error(), "'bogus'"));
	fmt_options_use(o, "bogus");
	CU_ASSERT_EQUAL(fmt_options_check_unused(o, "qcow2"), 0);
	fmt_options_free(o);
}

static void test_options_bad(void)
{
	struct fmt_options *o = NULL;
	uint64_t sz;
	bool b;

	CU_ASSERT(fmt_options_parse(&o, "a=1,,,=2") < 0);
	fmt_options_free(o);
	o = NULL;
	CU_ASSERT(fmt_options_parse(&o, "a=1,,b") == 0);   /* ",," is a comma inside the value */
	CU_ASSERT_STRING_EQUAL(fmt_options_get(o, "a"), "1,b");
	fmt_options_free(o);
	o = NULL;
	CU_ASSERT_EQUAL(fmt_options_parse(&o, "s=12Q,t=-1,u=1.5,v=2.5k,w=maybe"), 0);
	CU_ASSERT(fmt_options_get_size(o, "s", 0, &sz) < 0);
	CU_ASSERT(fmt_options_get_size(o, "t", 0, &sz) < 0);
	CU_ASSERT(fmt_options_get_size(o, "u", 0, &sz) < 0);
	CU_ASSERT_EQUAL(fmt_options_get_size(o, "v", 0, &sz), 0);
	CU_ASSERT_EQUAL(sz, 2560);
	CU_ASSERT(fmt_options_get_bool(o, "w", false, &b) < 0);
	fmt_options_free(o);
	o = NULL;
	CU_ASSERT_EQUAL(fmt_options_parse(&o, ""), 0);
	CU_ASSERT_PTR_NULL(o);
}

static void test_secrets(void)
{
	CU_ASSERT_EQUAL(fmt_secret_add("secret,id=unit0,data=pa,,ss"), 0);
	CU_ASSERT_STRING_EQUAL(fmt_secret_get("unit0"), "pa,ss");
	CU_ASSERT_PTR_NULL(fmt_secret_get("unit-none"));
	CU_ASSERT(fmt_secret_add("secret,data=x") < 0);              /* no id */
	CU_ASSERT(fmt_secret_add("secret,id=u1") < 0);               /* no data */
	CU_ASSERT(fmt_secret_add("secret,id=u2,data=a,file=/x") < 0); /* both */
	CU_ASSERT(fmt_secret_add("tls-creds,id=u3") < 0);
	CU_ASSERT(fmt_secret_add("secret,id=u4,file=/nonexistent/secret") < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(fmt_last_error(), "/nonexistent/secret"));
}

static void test_sibling(void)
{
	struct { const char *spec, *name, *want; } t[] = {
		{ "/images/a.qcow2", "base.raw", "/images/base.raw" },
		{ "a.qcow2", "base.raw", "base.raw" },
		{ "dir/a.qcow2", "../b/base.raw", "dir/../b/base.raw" },
		{ "/images/a.qcow2", "/abs/base.raw", "/abs/base.raw" },
		{ "http://h:8/x/y/a.vmdk", "a-flat.vmdk", "http://h:8/x/y/a-flat.vmdk" },
		{ "http://h:8", "b", "http://h:8/b" },
		{ "/a/b.qcow2", "https://h/base", "https://h/base" },
		{ "sheepdog:h:7000:vdi", "base", "sheepdog:h:7000:base" },
		{ "sheepdog:vdi", "base", "sheepdog:base" },
		{ "mem:x", "/etc/passwd", "mem:/etc/passwd" },
		{ "mem:x", "mem:y", "mem:y" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *got = fmt_store_sibling(t[i].spec, t[i].name);
		CU_ASSERT_PTR_NOT_NULL_FATAL(got);
		CU_ASSERT_STRING_EQUAL(got, t[i].want);
		free(got);
	}
}

static void test_mem_store_raw(void)
{
	uint8_t data[1000], buf[1024];
	struct fmt_image *img = NULL;
	unsigned bits;
	uint64_t run;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	CU_ASSERT_EQUAL_FATAL(fmt_store_mem_register("unit.raw", data, sizeof(data)), 0);
	CU_ASSERT_EQUAL_FATAL(fmt_image_open("mem:unit.raw", NULL, 0, NULL, &img), 0);
	CU_ASSERT_STRING_EQUAL(img->drv->name, "raw");
	CU_ASSERT_EQUAL(img->virtual_size, 1024);   /* whole sectors, as qemu */
	memset(buf, 0xee, sizeof(buf));
	CU_ASSERT_EQUAL(fmt_image_read(img, buf, 1024, 0), 0);
	CU_ASSERT_EQUAL(memcmp(buf, data, sizeof(data)), 0);
	for (size_t i = sizeof(data); i < 1024; i++)
		CU_ASSERT_EQUAL(buf[i], 0);
	/* reads past the end are refused with the name in the message */
	CU_ASSERT(fmt_image_read(img, buf, 2, 1023) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(fmt_last_error(), "mem:unit.raw"));
	CU_ASSERT(fmt_image_read(img, buf, 1, UINT64_MAX) < 0);
	CU_ASSERT_EQUAL(fmt_image_block_status(img, 0, 1 << 20, &bits, &run), 0);
	CU_ASSERT(run >= 1 && run <= 1024);
	CU_ASSERT(fmt_image_block_status(img, 1024, 1, &bits, &run) < 0);
	CU_ASSERT(fmt_image_write(img, buf, 1, 0) < 0);   /* opened read-only */
	fmt_image_close(img);
	fmt_store_mem_unregister("unit.raw");
	CU_ASSERT(fmt_image_open("mem:unit.raw", NULL, 0, NULL, &img) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(fmt_last_error(), "mem:unit.raw"));
}

static void test_compare(void)
{
	uint8_t a[4096] = { 0 }, b[8192] = { 0 };
	struct fmt_image *ia = NULL, *ib = NULL;
	uint64_t diff = 0;

	a[100] = b[100] = 5;
	CU_ASSERT_EQUAL_FATAL(fmt_store_mem_register("ca", a, sizeof(a)), 0);
	CU_ASSERT_EQUAL_FATAL(fmt_store_mem_register("cb", b, sizeof(b)), 0);
	CU_ASSERT_EQUAL_FATAL(fmt_image_open("mem:ca", "raw", 0, NULL, &ia), 0);
	CU_ASSERT_EQUAL_FATAL(fmt_image_open("mem:cb", "raw", 0, NULL, &ib), 0);
	CU_ASSERT_EQUAL(fmt_compare(ia, ib, &diff), 0);   /* the longer one's tail is zero */
	fmt_image_close(ib);
	fmt_store_mem_unregister("cb");
	b[6000] = 1;
	CU_ASSERT_EQUAL_FATAL(fmt_store_mem_register("cb", b, sizeof(b)), 0);
	CU_ASSERT_EQUAL_FATAL(fmt_image_open("mem:cb", "raw", 0, NULL, &ib), 0);
	CU_ASSERT_EQUAL(fmt_compare(ia, ib, &diff), 1);
	CU_ASSERT_EQUAL(diff, 6000);
	fmt_image_close(ia);
	fmt_image_close(ib);
	fmt_store_mem_unregister("ca");
	fmt_store_mem_unregister("cb");
}

static void test_unknown_driver(void)
{
	struct fmt_image *img = NULL;
	uint8_t d[512] = { 0 };
	CU_ASSERT_EQUAL_FATAL(fmt_store_mem_register("ud", d, sizeof(d)), 0);
	CU_ASSERT(fmt_image_open("mem:ud", "nosuch", 0, NULL, &img) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(fmt_last_error(), "nosuch"));
	CU_ASSERT(fmt_image_create("/nonexistent-dir/x.img", "nosuch", 1024, NULL) < 0);
	CU_ASSERT_PTR_NULL(fmt_driver_find("nosuch"));
	CU_ASSERT_PTR_NOT_NULL(fmt_driver_find("raw"));
	fmt_store_mem_unregister("ud");
}

int formats_add_suites(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{ "options: parse, get, unused", test_options_parse },
		{ "options: bad values", test_options_bad },
		{ "secrets", test_secrets },
		{ "store: sibling names", test_sibling },
		{ "store: memory store, raw, bounds", test_mem_store_raw },
		{ "convert: compare", test_compare },
		{ "image: unknown driver", test_unknown_driver },
	};
	CU_pSuite s = CU_add_suite("formats", NULL, NULL);
	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
