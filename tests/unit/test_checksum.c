/* test_checksum.c: the object file layout of sheep/store/checksum.c on real temporary files:
 * reads verify, flipped bytes and short files fail, unaligned writes merge, sparse blocks read as
 * zeros, and a write killed between its checksum and its data still verifies (old version). */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal_proto.h"
#include "sheepdog_proto.h"
#include "../../sheep/store/checksum.h"

#define OBJ (4u << 20)
#define DATA_OFF 12288    /* 4 KiB header + 1024 blocks * 8 bytes */

static int new_object(char *path)
{
	strcpy(path, "/tmp/sheepfold-crc-XXXXXX");
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL(objfile_format(fd, OBJ), SD_RES_SUCCESS);
	return fd;
}

static void fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(seed + i * 131 + (i >> 9));
}

static void flip(int fd, off_t off)
{
	unsigned char b;
	CU_ASSERT_EQUAL(pread(fd, &b, 1, off), 1);
	b ^= 0x40;
	CU_ASSERT_EQUAL(pwrite(fd, &b, 1, off), 1);
}

static void test_roundtrip_and_rot(void)
{
	char path[64], *w = malloc(OBJ), *r = malloc(OBJ);
	int fd = new_object(path);
	fill(w, OBJ, 7);
	CU_ASSERT_EQUAL(objfile_write(fd, 1, w, OBJ, 0, true), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(objfile_read(fd, 1, r, OBJ, 0), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(memcmp(w, r, OBJ), 0);
	uint32_t bad = 0, first = 0;
	CU_ASSERT_EQUAL(objfile_verify(fd, 1, &bad, &first), SD_RES_SUCCESS);
	flip(fd, DATA_OFF + 3 * 4096 + 17);
	CU_ASSERT_EQUAL(objfile_read(fd, 1, r, 4096, 3 * 4096), SD_RES_CHECKSUM);
	CU_ASSERT_EQUAL(objfile_read(fd, 1, r, 100, 3 * 4096 + 4000), SD_RES_CHECKSUM);
	CU_ASSERT_EQUAL(objfile_read(fd, 1, r, 4096, 4 * 4096), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(objfile_read(fd, 1, r, 3 * 4096, 0), SD_RES_SUCCESS);
	/* a write that does not cover the bad block wholly is refused; one that does replaces it */
	CU_ASSERT_EQUAL(objfile_write(fd, 1, w, 512, 3 * 4096 + 512, false), SD_RES_CHECKSUM);
	flip(fd, DATA_OFF + 9 * 4096);
	CU_ASSERT_EQUAL(objfile_verify(fd, 1, &bad, &first), SD_RES_CHECKSUM);
	CU_ASSERT_EQUAL(bad, 2);
	CU_ASSERT_EQUAL(first, 3);
	CU_ASSERT_EQUAL(objfile_write(fd, 1, w + 3 * 4096, 4096, 3 * 4096, false), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(objfile_read(fd, 1, r, 4096, 3 * 4096), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(memcmp(r, w + 3 * 4096, 4096), 0);
	/* a damaged header fails every read */
	flip(fd, 2);
	CU_ASSERT_EQUAL(objfile_read(fd, 1, r, 4096, 0), SD_RES_CHECKSUM);
	close(fd);
	unlink(path);
	free(w);
	free(r);
}

static void test_sparse_unaligned_short(void)
{
	char path[64], w[10000], r[10000], z[8192] = { 0 };
	int fd = new_object(path);
	/* never written: zeros that verify */
	CU_ASSERT_EQUAL(objfile_read(fd, 2, r, 8192, 1 << 20), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(memcmp(r, z, 8192), 0);
	/* unaligned writes over three blocks merge with what is there */
	fill(w, sizeof(w), 3);
	CU_ASSERT_EQUAL(objfile_write(fd, 2, w, sizeof(w), 4096 + 1000, false), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(objfile_write(fd, 2, "abc", 3, 4096 + 5000, false), SD_RES_SUCCESS);
	memcpy(w + 4000, "abc", 3);
	CU_ASSERT_EQUAL(objfile_read(fd, 2, r, sizeof(r), 4096 + 1000), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(memcmp(r, w, sizeof(w)), 0);
	CU_ASSERT_EQUAL(objfile_read(fd, 2, r, 1000, 4096), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(memcmp(r, z, 1000), 0);
	/* past the logical end: zeros; out of bounds writes are refused */
	CU_ASSERT_EQUAL(objfile_read(fd, 2, r, 4096, OBJ - 2048), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(memcmp(r, z, 4096), 0);
	CU_ASSERT_EQUAL(objfile_write(fd, 2, w, 4096, OBJ - 2048, false), SD_RES_INVALID_PARMS);
	/* a short file is an error, not zeros, even where the lost blocks were never written */
	CU_ASSERT_EQUAL(ftruncate(fd, DATA_OFF + 65536), 0);
	CU_ASSERT_EQUAL(objfile_read(fd, 2, r, 4096, 4096), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(objfile_read(fd, 2, r, 4096, 1 << 20), SD_RES_CHECKSUM);
	close(fd);
	unlink(path);
}

/* what a sheep killed between the checksum update and the data write leaves behind */
static void test_torn_write_reads_old_version(void)
{
	char path[64], a[4096], b[4096], r[4096];
	int fd = new_object(path);
	fill(a, sizeof(a), 1);
	fill(b, sizeof(b), 2);
	CU_ASSERT_EQUAL(objfile_write(fd, 3, a, 4096, 8192, false), SD_RES_SUCCESS);
	char saved[4096];
	CU_ASSERT_EQUAL(pread(fd, saved, 4096, DATA_OFF + 8192), 4096);
	CU_ASSERT_EQUAL(objfile_write(fd, 3, b, 4096, 8192, false), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(pwrite(fd, saved, 4096, DATA_OFF + 8192), 4096);   /* the data never landed */
	CU_ASSERT_EQUAL(objfile_read(fd, 3, r, 4096, 8192), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(memcmp(r, a, 4096), 0);
	/* a third version: the oldest no longer verifies */
	CU_ASSERT_EQUAL(objfile_write(fd, 3, b, 4096, 8192, false), SD_RES_SUCCESS);
	CU_ASSERT_EQUAL(objfile_write(fd, 3, r, 4096, 8192, false), SD_RES_SUCCESS);
	fill(b, sizeof(b), 9);
	CU_ASSERT_EQUAL(objfile_write(fd, 3, b, 4096, 8192, false), SD_RES_SUCCESS);
	fill(a, sizeof(a), 2);
	CU_ASSERT_EQUAL(pwrite(fd, a, 4096, DATA_OFF + 8192), 4096);
	CU_ASSERT_EQUAL(objfile_read(fd, 3, r, 4096, 8192), SD_RES_CHECKSUM);
	close(fd);
	unlink(path);
}

int checksum_add_suites(void)
{
	CU_pSuite s = CU_add_suite("store checksums", NULL, NULL);
	if (!s)
		return -1;
	struct { const char *name; void (*fn)(void); } tests[] = {
		{ "object round trip; a flipped byte fails its block", test_roundtrip_and_rot },
		{ "sparse blocks, unaligned writes, short files", test_sparse_unaligned_short },
		{ "a write torn from its checksum reads the old version", test_torn_write_reads_old_version },
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
