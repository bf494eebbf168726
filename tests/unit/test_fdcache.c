/* test_fdcache.c: the store's descriptor cache (sheep/store/fdcache.c) on real temporary files:
 * hits reuse the descriptor, a forget or an adopted file is never answered with the old one, a
 * file deleted behind the cache is opened afresh, the bound holds, a disk change drops every
 * entry, and threads racing gets, forgets and renames never read a file renamed away. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../sheep/store/fdcache.h"

#define CACHE_MAX 128    /* 96 read-only, 32 read-write: 6 and 2 per shard */

static char dir[64];
static unsigned test_md_gen;

/* the cache asks md.c whether the disks changed: here, the test says so */
unsigned md_generation(void)
{
	return __atomic_load_n(&test_md_gen, __ATOMIC_SEQ_CST);
}

static void path_of(uint64_t oid, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016" PRIx64, dir, oid);
}

/* oid's file holds the 8 bytes of v, made new and renamed into place */
static void put_file(uint64_t oid, uint64_t v)
{
	char path[128], tmp[160];
	path_of(oid, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pwrite(fd, &v, sizeof(v), 0), (ssize_t)sizeof(v));
	close(fd);
	CU_ASSERT_EQUAL(rename(tmp, path), 0);
}

/* what a get of oid reads, or -errno */
static int64_t read_via_cache(uint64_t oid)
{
	struct fdref ref;
	uint64_t v = 0;
	int ret = fdcache_get(oid, path_of, false, true, &ref);
	if (ret < 0)
		return ret;
	if (pread(ref.fd, &v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = UINT64_MAX;
	fdcache_put(&ref);
	return (int64_t)v;
}

static int suite_init(void)
{
	strcpy(dir, "/tmp/sheepfold-fdcache-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return fdcache_init(CACHE_MAX) == CACHE_MAX ? 0 : -1;
}

static int suite_clean(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_hit_forget_adopt(void)
{
	struct fdref a, b;
	uint64_t hits0, hits1, misses;
	unsigned nopen;
	put_file(1, 11);
	fdcache_stats(&nopen, &hits0, &misses);
	CU_ASSERT_EQUAL_FATAL(fdcache_get(1, path_of, false, true, &a), 0);
	fdcache_put(&a);
	CU_ASSERT_EQUAL_FATAL(fdcache_get(1, path_of, false, true, &b), 0);
	CU_ASSERT_EQUAL(a.fd, b.fd);
	fdcache_stats(&nopen, &hits1, &misses);
	CU_ASSERT_EQUAL(hits1, hits0 + 1);
	/* moved away (as to .stale) and a new one put in its place: the old file until told, the
	 * new one after */
	char path[128], away[160];
	path_of(1, path, sizeof(path));
	snprintf(away, sizeof(away), "%s.away", path);
	CU_ASSERT_EQUAL(rename(path, away), 0);
	put_file(1, 12);
	CU_ASSERT_EQUAL(read_via_cache(1), 11);
	fdcache_forget(1);
	CU_ASSERT_EQUAL(read_via_cache(1), 12);
	/* renamed over behind the cache's back: the old file has no link left, it is not served */
	put_file(1, 14);
	CU_ASSERT_EQUAL(read_via_cache(1), 14);
	unlink(away);
	/* b, still held, reads the file it was opened on */
	uint64_t v = 0;
	CU_ASSERT_EQUAL(pread(b.fd, &v, sizeof(v), 0), (ssize_t)sizeof(v));
	CU_ASSERT_EQUAL(v, 11);
	fdcache_put(&b);
	/* adopted: the new descriptor replaces the cached one */
	put_file(1, 13);
	int fd = open(path, O_RDWR);
	CU_ASSERT_FATAL(fd >= 0);
	fdcache_adopt(1, fd, md_generation());
	CU_ASSERT_EQUAL(read_via_cache(1), 13);
	/* deleted behind the cache's back: not served from the cached descriptor */
	CU_ASSERT_EQUAL(unlink(path), 0);
	CU_ASSERT_EQUAL(read_via_cache(1), -ENOENT);
}

static void test_bound_and_generation(void)
{
	unsigned nopen;
	uint64_t hits, misses;
	for (uint64_t oid = 100; oid < 400; oid++) {
		put_file(oid, oid);
		CU_ASSERT_EQUAL(read_via_cache(oid), (int64_t)oid);
	}
	fdcache_stats(&nopen, &hits, &misses);
	CU_ASSERT(nopen <= CACHE_MAX);
	CU_ASSERT(nopen >= CACHE_MAX / 2);
	/* the disks changed: every shard drops its entries at its next use */
	__atomic_add_fetch(&test_md_gen, 1, __ATOMIC_SEQ_CST);
	for (uint64_t oid = 1000; oid < 1100; oid++) {
		put_file(oid, oid);
		CU_ASSERT_EQUAL(read_via_cache(oid), (int64_t)oid);
	}
	for (uint64_t oid = 100; oid < 400; oid++) {
		char path[128];
		path_of(oid, path, sizeof(path));
		unlink(path);
		fdcache_forget(oid);
	}
	fdcache_stats(&nopen, &hits, &misses);
	CU_ASSERT(nopen <= CACHE_MAX);
}

#define RACE_OIDS 8
#define RACE_ROUNDS 3000
static uint64_t versions[RACE_OIDS];    /* the version in place, under race_lock[oid] */
static pthread_mutex_t race_lock[RACE_OIDS];
static _Atomic unsigned stale_reads;

/* a writer's view: under the object's lock, what the cache reads is the version in place */
static void *race_writer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (int i = 0; i < RACE_ROUNDS; i++) {
		uint64_t oid = 5000 + rand_r(&seed) % RACE_OIDS, k = oid - 5000;
		pthread_mutex_lock(&race_lock[k]);
		if (rand_r(&seed) % 4 == 0) {
			char path[128], away[160];    /* kept linked: only the forget tells the cache */
			path_of(oid, path, sizeof(path));
			snprintf(away, sizeof(away), "%s.away%" PRIu64, path, versions[k]);
			rename(path, away);
			put_file(oid, ++versions[k]);
			fdcache_forget(oid);
		} else if (read_via_cache(oid) != (int64_t)versions[k]) {
			stale_reads++;
		}
		pthread_mutex_unlock(&race_lock[k]);
	}
	return NULL;
}

/* a reader without the lock: any version, or no file between a move away and the new file */
static void *race_reader(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (int i = 0; i < RACE_ROUNDS; i++) {
		int64_t v = read_via_cache(5000 + rand_r(&seed) % RACE_OIDS);
		if (v < 0 && v != -ENOENT)
			stale_reads++;
	}
	return NULL;
}

static void test_race(void)
{
	pthread_t th[6];
	for (int k = 0; k < RACE_OIDS; k++) {
		pthread_mutex_init(&race_lock[k], NULL);
		put_file(5000 + k, 0);
	}
	for (int i = 0; i < 6; i++)
		pthread_create(&th[i], NULL, i % 2 ? race_reader : race_writer, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	CU_ASSERT_EQUAL(stale_reads, 0);
}

int fdcache_add_suites(void)
{
	CU_pSuite s = CU_add_suite("store fd cache", suite_init, suite_clean);
	if (!s)
		return -1;
	struct { const char *name; void (*fn)(void); } tests[] = {
		{ "hits reuse; forget and adopt replace; a deleted file is not served", test_hit_forget_adopt },
		{ "the bound holds; a disk change drops every entry", test_bound_and_generation },
		{ "racing gets, renames and forgets never read a file renamed away", test_race },
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
