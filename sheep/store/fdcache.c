/* fdcache.c: open object files, kept between requests: read-only descriptors for reads and
 * read-write ones for writes in two caches (a filesystem with a file open for writing cannot be
 * remounted read-only: a write descriptor unused for FDCACHE_WRITE_IDLE_MS is closed by a sweeper
 * thread, which also drops what a change of disks left open). Each cache is FDCACHE_SHARDS shards,
 * a hash of oid -> descriptor and an LRU list under the shard's mutex; the two are bounded in all
 * by the limit fdcache_init sets (a quarter of it for writes). An entry is counted: the cache holds one reference while it is listed, every use one more,
 * and the descriptor closes with the last, so an entry evicted or forgotten while in use stays
 * open until that use ends. Staleness: a miss opens the file without the shard lock and lists it
 * only if no forget touched the shard meanwhile (the shard's seq), so a descriptor opened just
 * before a rename is used once and never cached; a change of the disks (md_generation) empties
 * a shard at its next use; a hit whose file has no link left (deleted behind the sheep's back) is
 * dropped and opened afresh. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../alloc.h"
#include "logger.h"
#include "util.h"
#include "fdcache.h"
#include "md.h"

#define FDCACHE_SHARDS 16
#define FDCACHE_WRITE_IDLE_MS 1000
#define FDCACHE_SWEEP_MS 250

struct fd_entry {
	uint64_t oid;
	uint64_t used_ns;                /* the last get; under the lock */
	int fd;
	bool write;                      /* which cache */
	unsigned refs;                   /* the cache's (while listed) and each use's; under the lock */
	bool listed;
	struct fd_entry *hnext;          /* hash chain */
	struct fd_entry *prev, *next;    /* LRU, most recent first */
};

struct fd_shard {
	pthread_mutex_t lock;
	struct fd_entry **buckets;
	unsigned nr_buckets, nr, cap;    /* nr_buckets a power of two */
	struct fd_entry lru;             /* list head */
	uint64_t seq;                    /* goes up with every forget and adopt */
	unsigned md_gen;                 /* the disks the entries were opened on */
};

static struct fd_shard shards[2][FDCACHE_SHARDS];    /* [write] */
static _Atomic uint64_t nr_hits, nr_misses;
static _Atomic unsigned nr_open;

static uint64_t hash_oid(uint64_t oid)
{
	return (oid * 0x9E3779B97F4A7C15ull) >> 20;
}

static struct fd_shard *shard_of(uint64_t oid, bool write)
{
	return &shards[write][hash_oid(oid) % FDCACHE_SHARDS];
}

static struct fd_entry **bucket_of(struct fd_shard *s, uint64_t oid)
{
	return &s->buckets[(hash_oid(oid) / FDCACHE_SHARDS) & (s->nr_buckets - 1)];
}

static struct fd_entry *find(struct fd_shard *s, uint64_t oid)
{
	for (struct fd_entry *e = *bucket_of(s, oid); e; e = e->hnext)
		if (e->oid == oid)
			return e;
	return NULL;
}

static void lru_unlink(struct fd_entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_push(struct fd_shard *s, struct fd_entry *e)
{
	e->next = s->lru.next;
	e->prev = &s->lru;
	s->lru.next->prev = e;
	s->lru.next = e;
}

/* under the lock: one reference less; the last closes the file */
static void unref(struct fd_entry *e)
{
	if (--e->refs)
		return;
	close(e->fd);
	atomic_fetch_sub(&nr_open, 1);
	free(e);
}

/* under the lock: e leaves the cache (uses of it go on) */
static void unlist(struct fd_shard *s, struct fd_entry *e)
{
	struct fd_entry **p = bucket_of(s, e->oid);
	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	lru_unlink(e);
	e->listed = false;
	s->nr--;
	unref(e);
}

/* under the lock: e, holding one reference for the cache, is listed; the oldest go past the cap */
static void shard_add(struct fd_shard *s, struct fd_entry *e)
{
	struct fd_entry **b = bucket_of(s, e->oid);
	e->hnext = *b;
	*b = e;
	e->listed = true;
	lru_push(s, e);
	s->nr++;
	while (s->nr > s->cap)
		unlist(s, s->lru.prev);
}

/* under the lock: the disks changed since the shard's entries were opened: drop them all */
static void check_generation(struct fd_shard *s)
{
	unsigned gen = md_generation();
	if (gen == s->md_gen)
		return;
	while (s->nr)
		unlist(s, s->lru.prev);
	s->md_gen = gen;
	s->seq++;
}

static void init_shard(struct fd_shard *s, unsigned cap)
{
	pthread_mutex_init(&s->lock, NULL);
	s->cap = cap;
	s->nr_buckets = 1;
	while (s->nr_buckets < 2 * s->cap)
		s->nr_buckets *= 2;
	s->buckets = xzalloc(s->nr_buckets * sizeof(*s->buckets));
	s->lru.next = s->lru.prev = &s->lru;
	s->md_gen = md_generation();
}

/* closes write descriptors left idle (oldest at the LRU's tail) and what a disk change left */
static void *sweeper(void *unused)
{
	for (;;) {
		nanosleep(&(struct timespec){ 0, FDCACHE_SWEEP_MS * 1000000L }, NULL);
		uint64_t old = now_ns() - FDCACHE_WRITE_IDLE_MS * 1000000ull;
		for (int w = 0; w < 2; w++)
			for (unsigned i = 0; i < FDCACHE_SHARDS; i++) {
				struct fd_shard *s = &shards[w][i];
				pthread_mutex_lock(&s->lock);
				check_generation(s);
				while (w && s->nr && s->lru.prev->used_ns < old)
					unlist(s, s->lru.prev);
				pthread_mutex_unlock(&s->lock);
			}
	}
	return NULL;
}

static struct fd_entry *new_entry(uint64_t oid, int fd, bool write, unsigned refs)
{
	struct fd_entry *e = xzalloc(sizeof(*e));
	e->oid = oid;
	e->fd = fd;
	e->write = write;
	e->used_ns = now_ns();
	e->refs = refs;
	atomic_fetch_add(&nr_open, 1);
	return e;
}

/* a cached descriptor of oid, referenced for one use, or NULL; *seq gets the shard's seq */
static struct fd_entry *lookup(struct fd_shard *s, uint64_t oid, uint64_t *seq)
{
	pthread_mutex_lock(&s->lock);
	check_generation(s);
	struct fd_entry *e = find(s, oid);
	if (e) {
		lru_unlink(e);
		lru_push(s, e);
		e->refs++;
		e->used_ns = now_ns();
	}
	*seq = s->seq;
	pthread_mutex_unlock(&s->lock);
	if (!e)
		return NULL;
	struct stat st;
	if (fstat(e->fd, &st) == 0 && st.st_nlink > 0)
		return e;
	pthread_mutex_lock(&s->lock);    /* deleted behind our back */
	if (e->listed)
		unlist(s, e);
	s->seq++;
	*seq = s->seq;
	unref(e);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

unsigned fdcache_init(unsigned max)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    max > rl.rlim_cur / FDCACHE_FRACTION) {
		sd_warn("fd cache: %u files lowered to %llu, a %u-th of the open-file limit", max,
			(unsigned long long)(rl.rlim_cur / FDCACHE_FRACTION), FDCACHE_FRACTION);
		max = rl.rlim_cur / FDCACHE_FRACTION;
	}
	for (int w = 0; w < 2; w++) {
		unsigned kind_max = w ? max / 4 : max - max / 4;
		for (unsigned i = 0; i < FDCACHE_SHARDS; i++)
			init_shard(&shards[w][i], kind_max / FDCACHE_SHARDS + (i < kind_max % FDCACHE_SHARDS));
	}
	pthread_t th;
	if (max && pthread_create(&th, NULL, sweeper, NULL) == 0)
		pthread_detach(th);
	else if (max)
		sd_warn("fd cache: no sweeper thread: idle write descriptors stay open until evicted");
	return max;
}

int fdcache_get(uint64_t oid, void (*path_of)(uint64_t oid, char *buf, size_t len), bool write,
		bool cache, struct fdref *ref)
{
	char path[4300];
	struct fd_shard *s = shard_of(oid, write);
	uint64_t seq;
	ref->e = lookup(s, oid, &seq);
	if (ref->e) {
		atomic_fetch_add(&nr_hits, 1);
		ref->fd = ref->e->fd;
		return 0;
	}
	atomic_fetch_add(&nr_misses, 1);
	path_of(oid, path, sizeof(path));
	int fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ref->fd = fd;
	if (!cache || !s->cap)
		return 0;
	struct fd_entry *e = new_entry(oid, fd, write, 2);
	pthread_mutex_lock(&s->lock);
	if (s->seq == seq && s->md_gen == md_generation() && !find(s, oid)) {
		shard_add(s, e);
		ref->e = e;
		e = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (e) {    /* a forget came between: this one is for this use only */
		atomic_fetch_sub(&nr_open, 1);
		free(e);
	}
	return 0;
}

void fdcache_put(struct fdref *ref)
{
	if (!ref->e) {
		close(ref->fd);
		return;
	}
	struct fd_shard *s = shard_of(ref->e->oid, ref->e->write);
	pthread_mutex_lock(&s->lock);
	unref(ref->e);
	pthread_mutex_unlock(&s->lock);
	ref->e = NULL;
}

/* under the lock: oid's entry leaves the shard, and misses already under way are not cached */
static void shard_forget(struct fd_shard *s, uint64_t oid)
{
	struct fd_entry *e = find(s, oid);
	if (e)
		unlist(s, e);
	s->seq++;
}

void fdcache_forget(uint64_t oid)
{
	for (int w = 0; w < 2; w++) {
		struct fd_shard *s = shard_of(oid, w);
		pthread_mutex_lock(&s->lock);
		shard_forget(s, oid);
		pthread_mutex_unlock(&s->lock);
	}
}

void fdcache_adopt(uint64_t oid, int fd, unsigned md_gen)
{
	struct fd_shard *r = shard_of(oid, false), *s = shard_of(oid, true);
	pthread_mutex_lock(&r->lock);
	shard_forget(r, oid);    /* the read descriptor of the old file */
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_lock(&s->lock);
	check_generation(s);
	shard_forget(s, oid);
	if (s->cap && md_gen == s->md_gen)
		shard_add(s, new_entry(oid, fd, true, 1));
	else
		close(fd);
	pthread_mutex_unlock(&s->lock);
}

void fdcache_stats(unsigned *open, uint64_t *hits, uint64_t *misses)
{
	*open = atomic_load(&nr_open);
	*hits = atomic_load(&nr_hits);
	*misses = atomic_load(&nr_misses);
}
