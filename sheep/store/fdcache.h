/* fdcache.h: object files kept open between requests, a bounded LRU of descriptors (fdcache.c)
 * private to the store. Whatever replaces, moves or removes an object's file tells the cache
 * after the rename or unlink (fdcache_forget), so no descriptor of a file renamed away is handed
 * out again; a change of the set of disks (md_generation) drops every entry. */
#ifndef SHEEP_STORE_FDCACHE_H
#define SHEEP_STORE_FDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* STORE_FD_CACHE_DEFAULT files unless asked otherwise (a quarter of them open for writing), never
 * more than an FDCACHE_FRACTION-th of the open-file limit (clients and peers need descriptors
 * too); 0 caches nothing */
#define FDCACHE_FRACTION 4u

/* one use of a descriptor: held from fdcache_get to fdcache_put */
struct fdref {
	int fd;
	struct fd_entry *e;    /* NULL: opened for this use only */
};

/* before the store serves anything; returns the bound in force */
unsigned fdcache_init(unsigned max);
/* a descriptor of oid's file, read-write for write, else read-only (path_of says where it is;
 * asked on a miss only); cache: keep it open afterwards (a scan or a flush passes false so the
 * working set stays). -errno of the open on failure. */
int fdcache_get(uint64_t oid, void (*path_of)(uint64_t oid, char *buf, size_t len), bool write,
		bool cache, struct fdref *ref);
void fdcache_put(struct fdref *ref);
/* oid's file was renamed over, moved or removed (called after it happened) */
void fdcache_forget(uint64_t oid);
/* a new file of oid, just renamed into place, open read-write as fd: it replaces any cached one
 * and the cache owns fd from now (closes it at once when it does not keep it) */
void fdcache_adopt(uint64_t oid, int fd, unsigned md_gen);
/* descriptors open in the cache now, hits and misses so far */
void fdcache_stats(unsigned *open, uint64_t *hits, uint64_t *misses);

#endif
