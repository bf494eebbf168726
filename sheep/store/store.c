/* store.c: the object store: one file per object in the directory md.c gives it (DIR/obj, or one
 * of the disks of a multi-disk node), named by the oid in 16 hex digits, laid out as checksum.c
 * says (header, per-block crc32c, data). Objects set aside go to .stale on their own disk.
 * Objects are created whole and atomically (temporary file, optional fsync, rename); sparse where
 * unwritten. Knows nothing of VDIs or membership (see store.h). Object files stay open between
 * requests in fdcache.c: every rename, move or unlink of one here (or in md_rebalance.c) tells it
 * afterwards, and a new file created here is handed to it open. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../alloc.h"
#include "internal_proto.h"
#include "logger.h"
#include "sheepdog_proto.h"
#include "checksum.h"
#include "fault.h"
#include "fdcache.h"
#include "md.h"
#include "store.h"
#include "util.h"

/* per-object serialisation of writes, creates, removes and recovery (striped by oid) */
#define OBJ_LOCK_STRIPES 1024
static pthread_mutex_t obj_locks[OBJ_LOCK_STRIPES];   /* initialised by store_init */

static pthread_mutex_t *obj_lock_of(uint64_t oid)
{
	uint64_t h = oid * 0x9E3779B97F4A7C15ull;
	return &obj_locks[(h >> 32) % OBJ_LOCK_STRIPES];
}

static unsigned fd_cache_max = STORE_FD_CACHE_DEFAULT;

void store_set_fd_cache(unsigned max)
{
	fd_cache_max = max;
}

void store_lock(uint64_t oid) { pthread_mutex_lock(obj_lock_of(oid)); }
void store_unlock(uint64_t oid) { pthread_mutex_unlock(obj_lock_of(oid)); }
static _Atomic unsigned long tmp_counter;
static void mark_dirty(uint64_t oid, bool created);
static void mark_dir_dirty(void);

/* the one place an object's path is made: its directory comes from md.c */
static void obj_path(uint64_t oid, char *buf, size_t len)
{
	char dir[SD_MD_PATH_LEN + 8];
	md_object_dir(oid, dir, sizeof(dir));
	snprintf(buf, len, "%s/%016" PRIx64, dir, oid);
}

static int sync_fd(int fd, uint64_t oid, bool data_only);

/* oid's file open for one use, read-write for write (cache: kept open after it); 0 or -1 with
 * errno */
static int obj_open(uint64_t oid, bool write, bool cache, struct fdref *ref)
{
	int ret = fdcache_get(oid, obj_path, write, cache, ref);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

/* fsync a directory by path; 0 or -1 with errno */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int ret = sync_fd(fd, 0, false);
	close(fd);
	return ret;
}

/* the directory part of an object's path (the path is cut at its last slash) */
static int sync_dir_of(char *path)
{
	char *slash = strrchr(path, '/');
	*slash = 0;
	int ret = sync_dir(path);
	*slash = '/';
	return ret;
}

int store_init(const char *dir, char *const *disks, int nr_disks)
{
	char (*dirs)[SD_MD_PATH_LEN];
	for (int i = 0; i < OBJ_LOCK_STRIPES; i++)
		pthread_mutex_init(&obj_locks[i], NULL);
	int ret = md_init(dir, disks, nr_disks);
	if (ret < 0)
		return ret;
	sd_info("store: up to %u object files kept open", fdcache_init(fd_cache_max));
	int n = md_dirs(&dirs);
	for (int k = 0; k < n && !ret; k++) {
		char stale[SD_MD_PATH_LEN + 16];
		snprintf(stale, sizeof(stale), "%s/.stale", dirs[k]);
		if ((ret = mkdir_p(stale, 0755)) < 0)    /* and obj/ with it */
			break;
		/* leftovers of creates interrupted by a crash are never valid objects */
		DIR *d = opendir(dirs[k]);
		if (!d) {
			ret = -errno;
			break;
		}
		struct dirent *de;
		while ((de = readdir(d)))
			if (strstr(de->d_name, ".tmp"))
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	free(dirs);
	return ret;
}

static void (*disk_failure_hook)(const char *why);
static pthread_mutex_t disk_error_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t disk_error_ns[STORE_DISK_ERRORS];   /* a ring of the latest errors' times */
static unsigned nr_disk_errors;
static bool disk_failed;

void store_set_disk_failure_hook(void (*hook)(const char *why))
{
	disk_failure_hook = hook;
}

/* an I/O error of the disk under the store (what: the op; oid 0: the directory) */
static void note_disk_error(const char *what, uint64_t oid)
{
	char why[4600];
	uint64_t now = now_ns();
	pthread_mutex_lock(&disk_error_lock);
	disk_error_ns[nr_disk_errors++ % STORE_DISK_ERRORS] = now;
	/* the oldest of the last STORE_DISK_ERRORS errors */
	uint64_t oldest = disk_error_ns[nr_disk_errors % STORE_DISK_ERRORS];
	bool trip = !disk_failed && nr_disk_errors >= STORE_DISK_ERRORS &&
		    now - oldest <= STORE_DISK_ERROR_WINDOW * 1000000000ull;
	disk_failed |= trip;
	pthread_mutex_unlock(&disk_error_lock);
	if (!trip)
		return;
	char dir[SD_MD_PATH_LEN + 8];
	md_object_dir(oid, dir, sizeof(dir));    /* the disk of the last one */
	snprintf(why, sizeof(why), "the disk under %s keeps failing: %u I/O errors in %.0f s, the last a %s of "
		 "%016" PRIx64, dir, STORE_DISK_ERRORS, (now - oldest) / 1e9, what, oid);
	if (md_fail_disk_of(oid, why)) {
		/* a multi-disk node loses that disk only; the errors count afresh for the others */
		pthread_mutex_lock(&disk_error_lock);
		nr_disk_errors = 0;
		disk_failed = false;
		pthread_mutex_unlock(&disk_error_lock);
		return;
	}
	sd_emerg("%s", why);
	if (disk_failure_hook)
		disk_failure_hook(why);
}

static int errno_to_res(int err)
{
	switch (err) {
	case ENOENT: return SD_RES_NO_OBJ;
	case ENOSPC: case EDQUOT: return SD_RES_NO_SPACE;
	case ENOMEM: return SD_RES_NO_MEM;
	default: return SD_RES_EIO;
	}
}

/* res of an op on oid, counted against the disk when it is an I/O error */
static int disk_result(int res, const char *what, uint64_t oid)
{
	if (res == SD_RES_EIO) {
		md_note_error(EIO);    /* md checks its disks now */
		note_disk_error(what, oid);
	}
	return res;
}

/* fdatasync (data_only) or fsync of fd, which holds oid (0: the store directory) */
static int sync_fd(int fd, uint64_t oid, bool data_only)
{
	int err = fault_check(FAULT_SYNC, oid);
	if (err) {
		errno = err;
		return -1;
	}
	return data_only ? fdatasync(fd) : fsync(fd);
}

/* an injected write fault on oid (test builds): the SD_RES_* it fails with, or 0 */
static int write_fault(uint64_t oid)
{
	int err = fault_check(FAULT_WRITE, oid);
	if (!err)
		return SD_RES_SUCCESS;
	sd_err("write %016" PRIx64 ": %s", oid, strerror(err));
	return errno_to_res(err);
}

static int read_verified(uint64_t oid, void *buf, uint32_t len, uint32_t offset)
{
	struct fdref ref;
	int err = fault_check(FAULT_READ, oid);
	if (err) {
		sd_err("read %016" PRIx64 ": %s", oid, strerror(err));
		return errno_to_res(err);
	}
	if (obj_open(oid, false, true, &ref) < 0)
		return errno_to_res(errno);
	int ret = objfile_read(ref.fd, oid, buf, len, offset);
	fdcache_put(&ref);
	return ret;
}

int store_read(uint64_t oid, void *buf, uint32_t len, uint32_t offset)
{
	/* a block torn by writes racing with this read (to the same block: the guest's own race) is
	 * not rot: it reads whole a moment later. Callers may hold the object's lock: no lock here. */
	int ret = read_verified(oid, buf, len, offset);
	for (int i = 0; i < 2 && ret == SD_RES_CHECKSUM; i++)
		ret = read_verified(oid, buf, len, offset);
	return disk_result(ret, "read", oid);
}

int store_write(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool sync)
{
	struct fdref ref;
	if (obj_open(oid, true, true, &ref) < 0)
		return errno_to_res(errno);
	int ret = write_fault(oid);
	if (ret == SD_RES_SUCCESS)
		ret = objfile_write(ref.fd, oid, buf, len, offset, false);
	if (ret == SD_RES_SUCCESS && sync && sync_fd(ref.fd, oid, true) < 0) {
		sd_err("write %016" PRIx64 ": fdatasync: %m", oid);
		ret = errno_to_res(errno);
	}
	fdcache_put(&ref);
	if (!sync && ret == SD_RES_SUCCESS)
		mark_dirty(oid, false);
	return disk_result(ret, "write", oid);
}

int store_verify(uint64_t oid, uint32_t *nr_bad, uint32_t *first_bad)
{
	struct fdref ref;
	*nr_bad = 0;
	if (obj_open(oid, false, false, &ref) < 0)
		return errno_to_res(errno);
	int ret = objfile_verify(ref.fd, oid, nr_bad, first_bad);
	fdcache_put(&ref);
	return ret;
}

struct store_build {
	uint64_t oid;
	int fd;
	unsigned md_gen;    /* of the path: a disk change meanwhile is not cached */
	char path[4300], tmp[4400];
};

static void build_free(struct store_build *b)
{
	close(b->fd);
	unlink(b->tmp);
	free(b);
}

int store_build_begin(uint64_t oid, uint64_t obj_size, struct store_build **out)
{
	struct store_build *b = xzalloc(sizeof(*b));
	int ret;

	*out = NULL;
	b->oid = oid;
	b->md_gen = md_generation();
	obj_path(oid, b->path, sizeof(b->path));
	snprintf(b->tmp, sizeof(b->tmp), "%s.tmp.%lu", b->path, (unsigned long)atomic_fetch_add(&tmp_counter, 1));
	b->fd = open(b->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (b->fd < 0) {
		sd_err("create %s: %m", b->tmp);
		ret = errno_to_res(errno);
		free(b);
		return ret;
	}
	if ((ret = write_fault(oid)) || (ret = objfile_format(b->fd, obj_size))) {
		build_free(b);
		return disk_result(ret, "create", oid);
	}
	*out = b;
	return SD_RES_SUCCESS;
}

int store_build_write(struct store_build *b, const void *buf, uint32_t len, uint32_t offset)
{
	/* into a fresh file: a piece of zeros stays a hole */
	return disk_result(objfile_write(b->fd, b->oid, buf, len, offset, true), "create", b->oid);
}

void store_build_abort(struct store_build *b)
{
	if (b)
		build_free(b);
}

int store_build_publish(struct store_build *b, bool sync)
{
	uint64_t oid = b->oid;
	int ret;

	if ((sync && sync_fd(b->fd, oid, false) < 0) || rename(b->tmp, b->path) < 0) {
		sd_err("create %016" PRIx64 ": %m", oid);
		ret = errno_to_res(errno);
		build_free(b);
		return disk_result(ret, "create", oid);
	}
	fdcache_adopt(oid, b->fd, b->md_gen);    /* and no use of the old file's descriptor starts again */
	if (!sync) {
		mark_dirty(oid, true);
	} else if (sync_dir_of(b->path) < 0) {
		sd_err("create %016" PRIx64 ": directory sync: %m", oid);
		free(b);
		return disk_result(SD_RES_EIO, "directory sync", oid);
	}
	free(b);
	return SD_RES_SUCCESS;
}

int store_build_from(uint64_t oid, uint64_t obj_size, store_fetch_fn fetch, void *ctx)
{
	uint32_t piece = (uint32_t)MIN(obj_size, (uint64_t)STORE_BUILD_PIECE);
	struct store_build *b;
	char *buf = xmalloc(piece ? piece : 1);
	int ret = store_build_begin(oid, obj_size, &b);
	for (uint64_t off = 0; ret == SD_RES_SUCCESS && off < obj_size; off += piece) {
		uint32_t len = (uint32_t)MIN((uint64_t)piece, obj_size - off);
		ret = fetch(ctx, oid, buf, len, (uint32_t)off);
		if (ret == SD_RES_SUCCESS)
			ret = store_build_write(b, buf, len, (uint32_t)off);
	}
	if (ret == SD_RES_SUCCESS)
		ret = store_build_publish(b, true);
	else
		store_build_abort(b);
	free(buf);
	return ret;
}

int store_create_and_write(uint64_t oid, const void *buf, uint32_t len, uint32_t offset,
			   uint64_t obj_size, bool sync)
{
	struct store_build *b;
	int ret = store_build_begin(oid, obj_size, &b);
	if (ret)
		return ret;
	if ((ret = store_build_write(b, buf, len, offset))) {
		store_build_abort(b);
		return ret;
	}
	return store_build_publish(b, sync);
}

int store_remove(uint64_t oid)
{
	char path[4300];
	obj_path(oid, path, sizeof(path));
	if (unlink(path) < 0)
		return errno == ENOENT ? SD_RES_NO_OBJ : disk_result(SD_RES_EIO, "remove", oid);
	/* a copy left on another disk by a crash must not come back into view */
	for (int i = 0; i < MD_MAX_DISKS; i++) {
		obj_path(oid, path, sizeof(path));
		if (unlink(path) < 0)
			break;
	}
	fdcache_forget(oid);
	mark_dir_dirty();    /* the next flush makes the removal durable */
	return SD_RES_SUCCESS;
}

bool store_exists(uint64_t oid)
{
	char path[4300];
	obj_path(oid, path, sizeof(path));
	return access(path, F_OK) == 0;
}

/* Objects written without sync since the last flush: a flush syncs just these, so it does not
 * wait for unrelated traffic (recovery writes sync themselves). Past DIRTY_MAX entries the set
 * overflows and the next flush syncs the whole filesystem. Flushes run one at a time: a flush
 * that finds the set empty while another is still syncing waits for it. A failed sync is not
 * retried into a false success (the kernel drops the failed pages' dirtiness): every later
 * flush fails until the sheep restarts. */
#define DIRTY_MAX 65536
static pthread_mutex_t dirty_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *dirty;
static size_t nr_dirty, dirty_cap;
static bool dirty_overflow, dirty_dir;
static bool sync_failed;    /* under flush_lock */

static void mark_dirty(uint64_t oid, bool created)
{
	pthread_mutex_lock(&dirty_lock);
	dirty_dir |= created;
	if (nr_dirty && dirty[nr_dirty - 1] == oid)
		goto out;
	if (nr_dirty == DIRTY_MAX) {
		dirty_overflow = true;
		goto out;
	}
	if (nr_dirty == dirty_cap) {
		size_t cap = dirty_cap ? dirty_cap * 2 : 256;
		uint64_t *grown = realloc(dirty, cap * sizeof(*dirty));
		if (!grown) {
			dirty_overflow = true;
			goto out;
		}
		dirty = grown;
		dirty_cap = cap;
	}
	dirty[nr_dirty++] = oid;
out:
	pthread_mutex_unlock(&dirty_lock);
}

/* a directory entry changed (create, remove) without its own directory sync */
static void mark_dir_dirty(void)
{
	pthread_mutex_lock(&dirty_lock);
	dirty_dir = true;
	pthread_mutex_unlock(&dirty_lock);
}

static int sync_listed(uint64_t *list, size_t nr)
{
	int ret = SD_RES_SUCCESS;
	/* random writes list an object many times: sync each once */
	if (nr > 1)
		qsort(list, nr, sizeof(*list), cmp_oid);
	for (size_t i = 0; i < nr; i++) {
		struct fdref ref;
		if (i && list[i] == list[i - 1])
			continue;
		/* read-only is enough for fdatasync, and opens on a disk remounted read-only */
		if (obj_open(list[i], false, false, &ref) < 0) {
			if (errno == ENOENT)
				continue;    /* removed or moved since: nothing of it to keep */
			sd_err("flush: open %016" PRIx64 ": %m", list[i]);
			ret = SD_RES_EIO;
			continue;
		}
		if (sync_fd(ref.fd, list[i], true) < 0) {
			sd_err("fdatasync %016" PRIx64 ": %m", list[i]);
			ret = disk_result(SD_RES_EIO, "sync", list[i]);
		}
		fdcache_put(&ref);
	}
	return ret;
}

int store_flush(void)
{
	pthread_mutex_lock(&flush_lock);
	pthread_mutex_lock(&dirty_lock);
	uint64_t *list = dirty;
	size_t nr = nr_dirty;
	bool overflow = dirty_overflow, dir = dirty_dir;
	dirty = NULL;
	nr_dirty = dirty_cap = 0;
	dirty_overflow = dirty_dir = false;
	pthread_mutex_unlock(&dirty_lock);

	int ret = SD_RES_SUCCESS;
	char (*dirs)[SD_MD_PATH_LEN];
	int nr_dirs = md_dirs(&dirs);
	if (!overflow)
		ret = sync_listed(list, nr);
	for (int k = 0; k < nr_dirs && (overflow || dir); k++) {
		int fd = open(dirs[k], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || (overflow ? (fault_check(FAULT_SYNC, 0) || syncfs(fd) < 0) : sync_fd(fd, 0, false) < 0)) {
			sd_err("%s %s: %m", overflow ? "syncfs" : "fsync", dirs[k]);
			ret = SD_RES_EIO;
		}
		if (fd >= 0)
			close(fd);
	}
	free(dirs);
	free(list);
	if (ret != SD_RES_SUCCESS && !sync_failed) {
		sd_err("flush: a sync failed: data acknowledged before it may be lost; every flush fails "
		       "from now on until this sheep restarts");
		sync_failed = true;
	}
	if (sync_failed)
		ret = SD_RES_EIO;
	pthread_mutex_unlock(&flush_lock);
	return ret;
}

/* the objects of one directory appended to *list */
static int list_dir(const char *dir, uint64_t **listp, size_t *np, size_t *capp)
{
	DIR *d = opendir(dir);
	size_t cap = *capp, n = *np;
	uint64_t *list = *listp;
	struct dirent *de;

	if (!d)
		return SD_RES_EIO;
	while ((de = readdir(d))) {
		char *end;
		if (strlen(de->d_name) != 16)
			continue;
		uint64_t oid = strtoull(de->d_name, &end, 16);
		if (*end)
			continue;
		if (n == cap) {
			cap *= 2;
			uint64_t *nl = realloc(list, cap * sizeof(*list));
			if (!nl) {
				closedir(d);
				return SD_RES_NO_MEM;
			}
			*listp = list = nl;
			*capp = cap;
		}
		list[n++] = oid;
		*np = n;
	}
	closedir(d);
	return SD_RES_SUCCESS;
}

int store_list(uint64_t **oids, size_t *nr)
{
	char (*dirs)[SD_MD_PATH_LEN];
	int nr_dirs = md_dirs(&dirs), ret = SD_RES_SUCCESS;
	size_t cap = 1024, n = 0;
	uint64_t *list = xmalloc(cap * sizeof(*list));
	for (int k = 0; k < nr_dirs && ret == SD_RES_SUCCESS; k++)
		ret = list_dir(dirs[k], &list, &n, &cap);
	free(dirs);
	if (ret) {
		free(list);
		return ret;
	}
	if (nr_dirs > 1) {    /* a crash in a move between disks can leave two copies */
		size_t u = 0;
		qsort(list, n, sizeof(*list), cmp_oid);
		for (size_t i = 0; i < n; i++)
			if (!u || list[u - 1] != list[i])
				list[u++] = list[i];
		n = u;
	}
	*oids = list;
	*nr = n;
	return SD_RES_SUCCESS;
}

int store_wipe(void)
{
	uint64_t *oids;
	size_t nr;
	int ret = store_list(&oids, &nr);
	if (ret)
		return ret;
	for (size_t i = 0; i < nr; i++)
		store_remove(oids[i]);
	free(oids);
	return SD_RES_SUCCESS;
}

/* both directories of a move into DIR/.stale, so it survives a crash as one */
static int sync_stale_dirs(const char *dir)
{
	char stale[SD_MD_PATH_LEN + 16];
	snprintf(stale, sizeof(stale), "%s/.stale", dir);
	int ret = sync_dir(stale) == 0 && sync_dir(dir) == 0 ? SD_RES_SUCCESS : SD_RES_EIO;
	if (ret)
		sd_err("set aside: directory sync of %s: %m", dir);
	return ret;
}

/* move one object to .stale on its own disk (caller holds its lock); it is never served again.
 * dir gets the object's directory */
static int set_aside_one(uint64_t oid, uint32_t epoch, char *dir, size_t len)
{
	char from[4300], to[4400];
	md_object_dir(oid, dir, len);
	snprintf(from, sizeof(from), "%s/%016" PRIx64, dir, oid);
	snprintf(to, sizeof(to), "%s/.stale/%016" PRIx64 ".%u", dir, oid, epoch);
	if (rename(from, to) < 0)
		return errno == ENOENT ? SD_RES_NO_OBJ : SD_RES_EIO;
	fdcache_forget(oid);
	return SD_RES_SUCCESS;
}

int store_set_aside(uint64_t oid, uint32_t epoch)
{
	char dir[SD_MD_PATH_LEN + 8];
	int ret = set_aside_one(oid, epoch, dir, sizeof(dir));
	return ret ? ret : sync_stale_dirs(dir);
}

/* remove everything set aside (the whole cluster has recovered) */
void store_purge_stale(void)
{
	char (*dirs)[SD_MD_PATH_LEN];
	int nr_dirs = md_dirs(&dirs);
	for (int k = 0; k < nr_dirs; k++) {
		char stale[SD_MD_PATH_LEN + 16];
		snprintf(stale, sizeof(stale), "%s/.stale", dirs[k]);
		DIR *d = opendir(stale);
		if (!d)
			continue;
		int dfd = dirfd(d);
		struct dirent *de;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				unlinkat(dfd, de->d_name, 0);
		closedir(d);
	}
	free(dirs);
}

/* the filesystems under the store, each once (disks may share one): their sizes and free bytes */
static int store_filesystems(uint64_t *total, uint64_t *avail)
{
	char (*dirs)[SD_MD_PATH_LEN];
	int nr_dirs = md_dirs(&dirs), seen = 0, ret = -1;
	dev_t devs[MD_MAX_DISKS];
	*total = *avail = 0;
	for (int k = 0; k < nr_dirs; k++) {
		struct statvfs vfs;
		struct stat st;
		bool dup = false;
		if (stat(dirs[k], &st) < 0 || statvfs(dirs[k], &vfs) < 0)
			continue;
		for (int j = 0; j < seen && !dup; j++)
			dup = devs[j] == st.st_dev;
		ret = 0;
		if (dup || seen == MD_MAX_DISKS)
			continue;
		devs[seen++] = st.st_dev;
		*total += (uint64_t)vfs.f_blocks * vfs.f_frsize;
		*avail += (uint64_t)vfs.f_bavail * vfs.f_frsize;
	}
	free(dirs);
	return ret;
}

/* bytes the filesystems under the store can still take */
uint64_t store_free_space(void)
{
	uint64_t total, avail;
	return store_filesystems(&total, &avail) < 0 ? 0 : avail;
}

uint64_t store_capacity(void)
{
	uint64_t total, avail;
	return store_filesystems(&total, &avail) < 0 ? 0 : total;
}

int store_set_aside_all(uint32_t epoch)
{
	uint64_t *oids;
	size_t nr, moved = 0;
	if (store_list(&oids, &nr))
		return SD_RES_EIO;
	for (size_t i = 0; i < nr; i++) {
		char dir[SD_MD_PATH_LEN + 8];
		if (set_aside_one(oids[i], epoch, dir, sizeof(dir)) == SD_RES_SUCCESS)
			moved++;
		else
			sd_warn("cannot set %016" PRIx64 " aside: %m", oids[i]);
	}
	char (*dirs)[SD_MD_PATH_LEN];
	int nr_dirs = md_dirs(&dirs);
	for (int k = 0; k < nr_dirs && moved; k++)
		if (sync_stale_dirs(dirs[k]))
			sd_warn("the objects set aside in %s may come back after a crash", dirs[k]);
	free(dirs);
	if (moved)
		sd_info("set %zu objects aside in .stale: this node missed epochs", moved);
	free(oids);
	return SD_RES_SUCCESS;
}

int store_stat(uint64_t *size, uint64_t *used)
{
	uint64_t total, avail, u = 0;
	if (store_filesystems(&total, &avail) < 0)
		return SD_RES_EIO;
	char (*dirs)[SD_MD_PATH_LEN];
	int nr_dirs = md_dirs(&dirs);
	for (int k = 0; k < nr_dirs; k++) {
		DIR *d = opendir(dirs[k]);
		if (!d)
			continue;
		struct dirent *de;
		struct stat st;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, 0) == 0)
				u += (uint64_t)st.st_blocks * 512;
		closedir(d);
	}
	free(dirs);
	/* the store may use what it holds plus what the filesystem has free */
	*size = MIN(total, u + avail);
	*used = u;
	return SD_RES_SUCCESS;
}
