/* store.h: the object store, the bottom layer of sheep: one file per object under DIR/obj (or
 * on the disks of a multi-disk node, md.h), and objects set aside in .stale on their disk. It knows objects by oid only, nothing of VDIs or of
 * membership: sizes and epochs come in from the caller. Results are SD_RES_* codes. */
#ifndef SHEEP_STORE_H
#define SHEEP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* qsort comparison of oids */
static inline int cmp_oid(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* every object's data carries a checksum per block of this many bytes (the last may be shorter) */
#define STORE_BLOCK_SIZE 4096u

/* nr_disks == 0: the objects live in dir/obj; else on the disks (absolute paths), dir keeping
 * only the node's metadata */
int store_init(const char *dir, char *const *disks, int nr_disks);
/* before store_init: keep up to max object files open between requests (0: open one per request;
 * the default is 1024; never more than a quarter of the open-file limit) */
#define STORE_FD_CACHE_DEFAULT 1024
void store_set_fd_cache(unsigned max);
/* verified against the per-block checksums: SD_RES_CHECKSUM when a block fails or the file is
 * short; bytes past the object's logical size read as zeros */
int store_read(uint64_t oid, void *buf, uint32_t len, uint32_t offset);
/* into an existing object; NO_OBJ when it is not here. Unsynced writes are synced by store_flush */
int store_write(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool sync);
/* a whole new object of obj_size bytes (sparse where unwritten), replacing any old one atomically */
int store_create_and_write(uint64_t oid, const void *buf, uint32_t len, uint32_t offset,
			   uint64_t obj_size, bool sync);
/* An object built in pieces (recovery, repair), so that no buffer holds a whole object: a new file
 * of obj_size bytes, invisible until store_build_publish puts it in place of any old one at once
 * (a crash before leaves no object; the leftover is removed at the next start). A piece of zeros
 * stays a hole. Publish and abort free the build, whatever their result. */
struct store_build;
int store_build_begin(uint64_t oid, uint64_t obj_size, struct store_build **out);
int store_build_write(struct store_build *b, const void *buf, uint32_t len, uint32_t offset);
int store_build_publish(struct store_build *b, bool sync);
void store_build_abort(struct store_build *b);     /* NULL: nothing */
/* a whole object of obj_size bytes built from the pieces fetch gives (STORE_BUILD_PIECE bytes at
 * a time, the last shorter), then published synced; a failed fetch leaves no object */
#define STORE_BUILD_PIECE (4u << 20)
typedef int (*store_fetch_fn)(void *ctx, uint64_t oid, void *buf, uint32_t len, uint32_t offset);
int store_build_from(uint64_t oid, uint64_t obj_size, store_fetch_fn fetch, void *ctx);
int store_remove(uint64_t oid);
/* every block of the object: SD_RES_CHECKSUM and *nr_bad blocks (the first in *first_bad) when
 * any fails */
int store_verify(uint64_t oid, uint32_t *nr_bad, uint32_t *first_bad);
bool store_exists(uint64_t oid);
/* sync what was written without sync since the last flush */
int store_flush(void);
/* remove every object */
int store_wipe(void);
/* per-object serialisation of writes, creates, removes and recovery */
void store_lock(uint64_t oid);
void store_unlock(uint64_t oid);
/* move one object to obj/.stale as of epoch (caller holds its lock); it is never served again */
int store_set_aside(uint64_t oid, uint32_t epoch);
/* move every object to obj/.stale as of epoch (kept for recovery, never served) */
int store_set_aside_all(uint32_t epoch);
/* remove everything set aside */
void store_purge_stale(void);
/* bytes the filesystems under the store can still take, and their size (each filesystem once) */
uint64_t store_free_space(void);
uint64_t store_capacity(void);
/* A disk that keeps failing: STORE_DISK_ERRORS I/O errors (EIO and the like; not a full disk,
 * not a checksum) within STORE_DISK_ERROR_WINDOW seconds call hook once, from the thread that
 * saw the last one, with a line that says why. The caller decides what the node does. */
#define STORE_DISK_ERRORS       5
#define STORE_DISK_ERROR_WINDOW 60
void store_set_disk_failure_hook(void (*hook)(const char *why));
/* fills oids (malloc'd) with every object stored here */
int store_list(uint64_t **oids, size_t *nr);
int store_stat(uint64_t *size, uint64_t *used);

#endif
