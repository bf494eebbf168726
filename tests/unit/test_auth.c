/* test_auth.c: the cluster key file (parsing, permissions, generation) and the MAC of the
 * challenge-response. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"

static const char key64[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static int parse(const char *text, struct sd_auth_key *k, char *err)
{
	return auth_parse_key_text(text, strlen(text), k, err, 128);
}

static void test_key_text(void)
{
	struct sd_auth_key k;
	char err[128];
	CU_ASSERT_EQUAL(parse(key64, &k, err), 0);
	CU_ASSERT_EQUAL(k.len, 32);
	CU_ASSERT_EQUAL(k.bytes[0], 0x00);
	CU_ASSERT_EQUAL(k.bytes[31], 0x1f);
	/* whitespace anywhere and a trailing newline are ignored; upper case is hex too */
	CU_ASSERT_EQUAL(parse(" 0001 0203 0405060708090A0B0C0D0E0F\n\t101112131415161718191a1b1c1d1e1F\n", &k, err), 0);
	CU_ASSERT_EQUAL(k.len, 32);
	CU_ASSERT_EQUAL(k.bytes[10], 0x0a);
	CU_ASSERT_EQUAL(k.bytes[31], 0x1f);
	/* 31 bytes: too short */
	CU_ASSERT_EQUAL(parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e", &k, err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "too short"));
	CU_ASSERT_EQUAL(parse("", &k, err), -1);
	CU_ASSERT_EQUAL(parse("0", &k, err), -1);
	/* odd digit count */
	CU_ASSERT_EQUAL(parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0", &k, err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "odd"));
	/* not hex */
	CU_ASSERT_EQUAL(parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g", &k, err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not hex"));
	CU_ASSERT_EQUAL(parse("0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00", &k, err), -1);
	/* longer keys are fine up to the maximum */
	char big[SD_AUTH_KEY_MAX * 2 + 3];
	memset(big, 'a', sizeof(big));
	big[SD_AUTH_KEY_MAX * 2] = 0;
	CU_ASSERT_EQUAL(parse(big, &k, err), 0);
	CU_ASSERT_EQUAL(k.len, SD_AUTH_KEY_MAX);
	big[SD_AUTH_KEY_MAX * 2] = 'a';
	big[SD_AUTH_KEY_MAX * 2 + 1] = 'a';
	big[SD_AUTH_KEY_MAX * 2 + 2] = 0;
	CU_ASSERT_EQUAL(parse(big, &k, err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "too long"));
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	fputs(text, fp);
	fclose(fp);
	chmod(path, mode);
}

static void test_key_file(void)
{
	char dir[] = "/tmp/sheepfold-auth-XXXXXX", path[64], err[256];
	struct sd_auth_key k, k2;
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key", dir);
	CU_ASSERT_EQUAL(auth_load_key_file(path, &k, err, sizeof(err)), -1);   /* missing */
	write_file(path, key64, 0600);
	CU_ASSERT_EQUAL(auth_load_key_file(path, &k, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(k.len, 32);
	chmod(path, 0640);
	CU_ASSERT_EQUAL(auth_load_key_file(path, &k, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "group or others"));
	chmod(path, 0604);
	CU_ASSERT_EQUAL(auth_load_key_file(path, &k, err, sizeof(err)), -1);
	chmod(path, 0400);
	CU_ASSERT_EQUAL(auth_load_key_file(path, &k, err, sizeof(err)), 0);
	unlink(path);
	/* keygen: 0600, 64 hex digits, loads, and never overwrites */
	CU_ASSERT_EQUAL(auth_write_new_key_file(path, err, sizeof(err)), 0);
	struct stat st;
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT_EQUAL(st.st_size, 65);
	CU_ASSERT_EQUAL(auth_load_key_file(path, &k, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(auth_write_new_key_file(path, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(auth_load_key_file(path, &k2, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(memcmp(k.bytes, k2.bytes, 32), 0);
	unlink(path);
	CU_ASSERT_EQUAL(auth_write_new_key_file(path, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(auth_load_key_file(path, &k2, err, sizeof(err)), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(k.bytes, k2.bytes, 32), 0);   /* fresh randomness */
	unlink(path);
	/* the flag wins over the environment */
	setenv(SD_KEY_FILE_ENV, "/env/key", 1);
	CU_ASSERT_STRING_EQUAL(auth_key_file_choice("/flag/key"), "/flag/key");
	CU_ASSERT_STRING_EQUAL(auth_key_file_choice(NULL), "/env/key");
	unsetenv(SD_KEY_FILE_ENV);
	CU_ASSERT_PTR_NULL(auth_key_file_choice(NULL));
	rmdir(dir);
}

static void test_mac(void)
{
	struct sd_auth_key k;
	char err[128];
	uint8_t a[SD_AUTH_NONCE_LEN], b[SD_AUTH_NONCE_LEN], mac[SD_AUTH_MAC_LEN], mac2[SD_AUTH_MAC_LEN];
	/* HMAC-SHA256(00..1f, 0x11 x 32 || 0x22 x 32 || 'A'), computed independently */
	static const uint8_t want[SD_AUTH_MAC_LEN] = {
		0x2a, 0x3d, 0x17, 0xca, 0xff, 0x12, 0x3a, 0xb0, 0x07, 0x59, 0x02, 0x6c, 0xc0, 0x38, 0x64, 0x0c,
		0x47, 0xd6, 0x07, 0xb5, 0x1c, 0xb6, 0xee, 0x75, 0x1e, 0xef, 0xee, 0x1a, 0x01, 0x57, 0x95, 0x94,
	};
	CU_ASSERT_EQUAL_FATAL(parse(key64, &k, err), 0);
	memset(a, 0x11, sizeof(a));
	memset(b, 0x22, sizeof(b));
	auth_mac(&k, a, b, SD_AUTH_ROLE_ADMIN, mac);
	CU_ASSERT_EQUAL(memcmp(mac, want, sizeof(want)), 0);
	CU_ASSERT_TRUE(auth_mac_equal(mac, want));
	/* the role and the order of the nonces matter */
	auth_mac(&k, a, b, SD_AUTH_ROLE_PEER, mac2);
	CU_ASSERT_FALSE(auth_mac_equal(mac, mac2));
	auth_mac(&k, b, a, SD_AUTH_ROLE_ADMIN, mac2);
	CU_ASSERT_FALSE(auth_mac_equal(mac, mac2));
}

int auth_add_suites(void)
{
	CU_pSuite s = CU_add_suite("auth", NULL, NULL);
	if (!s)
		return -1;
	if (!CU_add_test(s, "key text parsing", test_key_text) ||
	    !CU_add_test(s, "key file permissions, keygen, flag over environment", test_key_file) ||
	    !CU_add_test(s, "challenge-response MAC", test_mac))
		return -1;
	return 0;
}
