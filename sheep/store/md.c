/* md.c: the disks of a multi-disk node (sheep META,DISK1,DISK2,...). Each disk gets vnodes on a
 * ring of its own (one per MD_BYTES_PER_VNODE of its space: its objects plus its free space when
 * it joined), hashed from its path; an object belongs on the disk that owns sd_hash_oid(oid).
 * An object found on another disk (the set changed since it was written) is used where it is.
 * A checker thread probes every disk (its directory still the same one, a file can be written)
 * every MD_PROBE_MS and at once after an I/O error; a disk that fails is dropped and listed as
 * failed. Invariants: the ring, the disks and the failed list change together under md_lock;
 * meta/md.disks lists the disks in use, so a disk not in it (it left, or is new) is trusted with
 * nothing: its objects are set aside when it joins. A one-directory node is meta/obj, no ring. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "../alloc.h"
#include "logger.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "md.h"

#define MD_PROBE_MS 1000
#define MD_PROBE_FILE ".md-probe"

struct md_disk {
	char path[SD_MD_PATH_LEN];
	dev_t dev;
	ino_t ino;
	uint64_t space;          /* its weight: objects + free space when it joined */
	uint32_t nr_vnodes;
};

struct md_vnode {
	uint64_t hash;
	uint32_t disk;
};

static pthread_rwlock_t md_lock = PTHREAD_RWLOCK_INITIALIZER;
static bool multi;                              /* else one directory: single_dir */
static char single_dir[SD_MD_PATH_LEN + 8];
static char meta_dir[4096];
static struct md_disk disks[MD_MAX_DISKS];      /* under md_lock */
static int nr_disks;
static char failed[MD_MAX_DISKS][SD_MD_PATH_LEN];
static int nr_failed;
static struct md_vnode *ring;
static size_t nr_ring;
static _Atomic unsigned generation;

static pthread_mutex_t probe_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t probe_cond = PTHREAD_COND_INITIALIZER;
static bool probe_now;

/* src cut to len - 1 bytes (paths are checked against SD_MD_PATH_LEN where they come in) */
static void copy_path(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);
	memcpy(dst, src, n);
	dst[n] = 0;
}

static bool is_object_name(const char *name)
{
	if (strlen(name) != 16)
		return false;
	for (int i = 0; i < 16; i++)
		if (!strchr("0123456789abcdef", name[i]))
			return false;
	return true;
}

/* objects in dir and the bytes they take */
static void scan_dir(const char *dir, uint32_t *nr, uint64_t *bytes)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	*nr = 0;
	*bytes = 0;
	if (!d)
		return;
	while ((de = readdir(d)))
		if (is_object_name(de->d_name) && fstatat(dirfd(d), de->d_name, &st, 0) == 0) {
			(*nr)++;
			*bytes += (uint64_t)st.st_blocks * 512;
		}
	closedir(d);
}

static uint64_t free_space(const char *dir)
{
	struct statvfs vfs;
	return statvfs(dir, &vfs) < 0 ? 0 : (uint64_t)vfs.f_bavail * vfs.f_frsize;
}

static uint32_t vnodes_for_space(uint64_t space)
{
	uint64_t v = (space + MD_BYTES_PER_VNODE - 1) / MD_BYTES_PER_VNODE;
	return v < 1 ? 1 : v > MD_MAX_DISK_VNODES ? MD_MAX_DISK_VNODES : (uint32_t)v;
}

static int cmp_vnode(const void *a, const void *b)
{
	const struct md_vnode *x = a, *y = b;
	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* under the write lock */
static int rebuild_ring(void)
{
	size_t n = 0;
	for (int i = 0; i < nr_disks; i++)
		n += disks[i].nr_vnodes;
	struct md_vnode *r = malloc(n * sizeof(*r) + 1);
	if (!r)
		return -ENOMEM;
	size_t k = 0;
	for (int i = 0; i < nr_disks; i++) {
		uint64_t h = sd_hash(disks[i].path, strlen(disks[i].path));
		for (uint32_t v = 0; v < disks[i].nr_vnodes; v++) {
			r[k].hash = h;
			r[k++].disk = i;
			h = sd_hash_next(h);
		}
	}
	qsort(r, n, sizeof(*r), cmp_vnode);
	free(ring);
	ring = r;
	nr_ring = n;
	return 0;
}

/* under a lock: the disk oid belongs on */
static int ring_disk(uint64_t oid)
{
	uint64_t h = sd_hash_oid(oid);
	size_t lo = 0, hi = nr_ring;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ring[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return ring[lo == nr_ring ? 0 : lo].disk;
}

static bool has_object(const char *dir, uint64_t oid)
{
	char path[SD_MD_PATH_LEN + 32];
	snprintf(path, sizeof(path), "%s/%016" PRIx64, dir, oid);
	return access(path, F_OK) == 0;
}

void md_object_dir(uint64_t oid, char *buf, size_t len)
{
	if (!multi) {
		copy_path(buf, len, single_dir);
		return;
	}
	pthread_rwlock_rdlock(&md_lock);
	int home = ring_disk(oid), at = home;
	if (nr_disks > 1 && !has_object(disks[home].path, oid))
		for (int i = 0; i < nr_disks; i++)
			if (i != home && has_object(disks[i].path, oid)) {
				at = i;
				break;
			}
	copy_path(buf, len, disks[at].path);
	pthread_rwlock_unlock(&md_lock);
}

int md_dirs(char (**out)[SD_MD_PATH_LEN])
{
	pthread_rwlock_rdlock(&md_lock);
	int n = multi ? nr_disks : 1;
	char (*d)[SD_MD_PATH_LEN] = xmalloc(n * sizeof(*d));
	for (int i = 0; i < n; i++)
		copy_path(d[i], sizeof(d[i]), multi ? disks[i].path : single_dir);
	pthread_rwlock_unlock(&md_lock);
	*out = d;
	return n;
}

unsigned md_generation(void)
{
	return atomic_load(&generation);
}

/* meta/md.disks: the disks in use, one path a line (under the write lock, or before threads) */
static void save_disk_list(void)
{
	char path[4200], tmp[4300];
	snprintf(path, sizeof(path), "%s/md.disks", meta_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *fp = fopen(tmp, "w");
	if (!fp)
		goto fail;
	for (int i = 0; i < nr_disks; i++)
		fprintf(fp, "%s\n", disks[i].path);
	if (fflush(fp) || fsync(fileno(fp)) < 0) {
		fclose(fp);
		goto fail;
	}
	fclose(fp);
	if (rename(tmp, path) == 0)
		return;
fail:
	sd_err("md: cannot save the list of disks in %s: %m", path);
}

/* whether path is listed in meta/md.disks; true for every disk when there is no list yet */
static bool was_in_use(const char *path)
{
	char list[4200], line[SD_MD_PATH_LEN + 2];
	bool found = false;
	snprintf(list, sizeof(list), "%s/md.disks", meta_dir);
	FILE *fp = fopen(list, "r");
	if (!fp)
		return errno == ENOENT;
	while (!found && fgets(line, sizeof(line), fp)) {
		line[strcspn(line, "\n")] = 0;
		found = !strcmp(line, path);
	}
	fclose(fp);
	return found;
}

/* a disk that was not in use may hold anything: its objects go to its .stale, never served */
static void set_aside_untrusted(const char *dir)
{
	char stale[SD_MD_PATH_LEN + 16];
	size_t moved = 0;
	snprintf(stale, sizeof(stale), "%s/.stale", dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		char from[SD_MD_PATH_LEN + 32], to[SD_MD_PATH_LEN + 64];
		if (!is_object_name(de->d_name))
			continue;
		snprintf(from, sizeof(from), "%s/%s", dir, de->d_name);
		snprintf(to, sizeof(to), "%s/%s.plugged", stale, de->d_name);
		if (rename(from, to) == 0)
			moved++;
	}
	closedir(d);
	if (moved)
		sd_info("md: %s was not in use: set %zu objects found there aside in %s", dir, moved, stale);
}

/* a disk as it joins: its directory, .stale, weight */
static int describe_disk(const char *path, bool trusted, struct md_disk *d)
{
	struct stat st;
	char stale[SD_MD_PATH_LEN + 16];
	if (strlen(path) >= SD_MD_PATH_LEN)
		return -ENAMETOOLONG;
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	snprintf(stale, sizeof(stale), "%s/.stale", path);
	if (mkdir(stale, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (!trusted)
		set_aside_untrusted(path);
	uint32_t nr;
	uint64_t used;
	scan_dir(path, &nr, &used);
	memset(d, 0, sizeof(*d));
	copy_path(d->path, sizeof(d->path), path);
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	d->space = used + free_space(path);
	d->nr_vnodes = vnodes_for_space(d->space);
	return 0;
}

static int find_disk(const char *path)
{
	for (int i = 0; i < nr_disks; i++)
		if (!strcmp(disks[i].path, path))
			return i;
	return -1;
}

static void forget_failed(const char *path)
{
	for (int i = 0; i < nr_failed; i++)
		if (!strcmp(failed[i], path)) {
			memmove(failed[i], failed[i + 1], (nr_failed - i - 1) * sizeof(failed[0]));
			nr_failed--;
			return;
		}
}

/* under the write lock: disk i leaves; why == NULL: unplugged by hand */
static void remove_disk(int i, const char *why)
{
	char path[SD_MD_PATH_LEN];
	copy_path(path, sizeof(path), disks[i].path);
	memmove(&disks[i], &disks[i + 1], (nr_disks - i - 1) * sizeof(disks[0]));
	nr_disks--;
	if (rebuild_ring() < 0)
		sd_err("md: no memory for the disk ring");
	if (why && nr_failed < MD_MAX_DISKS) {
		forget_failed(path);
		copy_path(failed[nr_failed++], SD_MD_PATH_LEN, path);
	}
	save_disk_list();
	atomic_fetch_add(&generation, 1);
	if (why)
		sd_err("md: disk %s failed (%s): dropped; its objects are recovered from the other nodes "
		       "onto the %d disks left", path, why, nr_disks);
	else
		sd_info("md: disk %s unplugged; its objects are recovered from the other nodes onto the %d "
			"disks left", path, nr_disks);
}

/* why disk d is unusable, or NULL */
static const char *probe_disk(const struct md_disk *d, char *why, size_t len)
{
	struct stat st;
	char path[SD_MD_PATH_LEN + 32];
	if (stat(d->path, &st) < 0) {
		snprintf(why, len, "%.255s: %s", d->path, strerror(errno));
		return why;
	}
	if (st.st_dev != d->dev || st.st_ino != d->ino) {
		snprintf(why, len, "%.255s is no longer the directory it was", d->path);
		return why;
	}
	snprintf(path, sizeof(path), "%.255s/" MD_PROBE_FILE, d->path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "md", 2) != 2) {
		snprintf(why, len, "cannot write in %.255s: %s", d->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return why;
	}
	close(fd);
	unlink(path);
	DIR *dir = opendir(d->path);
	if (!dir) {
		snprintf(why, len, "cannot read %.255s: %s", d->path, strerror(errno));
		return why;
	}
	closedir(dir);
	return NULL;
}

static void probe_all(void)
{
	static bool last_warned;
	struct md_disk copy[MD_MAX_DISKS];
	pthread_rwlock_rdlock(&md_lock);
	int n = nr_disks;
	memcpy(copy, disks, n * sizeof(copy[0]));
	pthread_rwlock_unlock(&md_lock);
	for (int k = 0; k < n; k++) {
		char why[SD_MD_PATH_LEN + 128];
		if (!probe_disk(&copy[k], why, sizeof(why)))
			continue;
		pthread_rwlock_wrlock(&md_lock);
		int i = find_disk(copy[k].path);
		if (i >= 0 && nr_disks > 1) {
			remove_disk(i, why);
		} else if (i >= 0 && !last_warned) {
			sd_err("md: the last disk fails (%s): it stays, nothing can take its objects", why);
			last_warned = true;
		}
		pthread_rwlock_unlock(&md_lock);
	}
}

static void *probe_thread(void *unused)
{
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += MD_PROBE_MS / 1000;
		ts.tv_nsec += (MD_PROBE_MS % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&probe_mutex);
		while (!probe_now && pthread_cond_timedwait(&probe_cond, &probe_mutex, &ts) == 0)
			;
		probe_now = false;
		pthread_mutex_unlock(&probe_mutex);
		probe_all();
	}
	return NULL;
}

bool md_fail_disk_of(uint64_t oid, const char *why)
{
	if (!multi || !oid)
		return false;
	char dir[SD_MD_PATH_LEN];
	md_object_dir(oid, dir, sizeof(dir));
	pthread_rwlock_wrlock(&md_lock);
	int i = find_disk(dir);
	bool dropped = i >= 0 && nr_disks > 1;
	if (dropped)
		remove_disk(i, why);
	pthread_rwlock_unlock(&md_lock);
	return dropped;
}

void md_note_error(int err)
{
	if (!multi || err == ENOENT)
		return;
	pthread_mutex_lock(&probe_mutex);
	probe_now = true;
	pthread_cond_signal(&probe_cond);
	pthread_mutex_unlock(&probe_mutex);
}

int md_init(const char *meta, char *const *paths, int nr)
{
	snprintf(meta_dir, sizeof(meta_dir), "%s", meta);
	if (!nr) {
		snprintf(single_dir, sizeof(single_dir), "%s/obj", meta);
		return 0;
	}
	if (nr > MD_MAX_DISKS)
		return -E2BIG;
	for (int i = 0; i < nr; i++) {
		int ret = describe_disk(paths[i], was_in_use(paths[i]), &disks[nr_disks]);
		if (ret < 0)
			return ret;
		nr_disks++;
	}
	if (rebuild_ring() < 0)
		return -ENOMEM;
	save_disk_list();
	multi = true;
	pthread_t th;
	if (pthread_create(&th, NULL, probe_thread, NULL))
		return -EAGAIN;
	pthread_detach(th);
	return 0;
}

int md_plug(const char *arg)
{
	char path[4096];
	struct md_disk d;
	if (!multi)
		return SD_RES_NO_SUPPORT;
	if (!realpath(arg, path))
		return SD_RES_NO_OBJ;
	if (strlen(path) >= SD_MD_PATH_LEN || !strcmp(path, meta_dir))
		return SD_RES_INVALID_PARMS;
	pthread_rwlock_rdlock(&md_lock);
	bool present = find_disk(path) >= 0, full = nr_disks == MD_MAX_DISKS;
	pthread_rwlock_unlock(&md_lock);
	if (present)
		return SD_RES_VDI_EXIST;
	if (full)
		return SD_RES_INVALID_PARMS;
	int ret = describe_disk(path, false, &d);
	if (ret < 0)
		return ret == -ENOTDIR || ret == -ENOENT ? SD_RES_NO_OBJ : SD_RES_EIO;
	pthread_rwlock_wrlock(&md_lock);
	if (find_disk(path) >= 0 || nr_disks == MD_MAX_DISKS) {
		ret = find_disk(path) >= 0 ? SD_RES_VDI_EXIST : SD_RES_INVALID_PARMS;
		goto out;
	}
	disks[nr_disks++] = d;
	if (rebuild_ring() < 0) {
		nr_disks--;
		ret = SD_RES_NO_MEM;
		goto out;
	}
	forget_failed(path);
	save_disk_list();
	atomic_fetch_add(&generation, 1);
	sd_info("md: disk %s plugged: %u vnodes (%" PRIu64 " MiB)", path, d.nr_vnodes, d.space >> 20);
	ret = SD_RES_SUCCESS;
out:
	pthread_rwlock_unlock(&md_lock);
	return ret;
}

int md_unplug(const char *arg)
{
	char path[4096];
	int ret = SD_RES_SUCCESS;
	if (!multi)
		return SD_RES_NO_SUPPORT;
	if (!realpath(arg, path))
		snprintf(path, sizeof(path), "%s", arg);   /* a disk that vanished keeps its name */
	pthread_rwlock_wrlock(&md_lock);
	int i = find_disk(path);
	if (i < 0) {
		int before = nr_failed;
		forget_failed(path);
		ret = nr_failed < before ? SD_RES_SUCCESS : SD_RES_NO_OBJ;
	} else if (nr_disks == 1) {
		ret = SD_RES_INVALID_PARMS;
	} else {
		remove_disk(i, NULL);
	}
	pthread_rwlock_unlock(&md_lock);
	return ret;
}

int md_info(struct sd_md_disk *out, int max)
{
	int n = 0;
	pthread_rwlock_rdlock(&md_lock);
	for (int i = 0; i < (multi ? nr_disks : 1) && n < max; i++, n++) {
		const char *dir = multi ? disks[i].path : single_dir;
		struct statvfs vfs;
		memset(&out[n], 0, sizeof(out[n]));
		copy_path(out[n].path, sizeof(out[n].path), dir);
		scan_dir(dir, &out[n].nr_objects, &out[n].used);
		if (statvfs(dir, &vfs) == 0) {
			uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
			out[n].avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
			out[n].size = MIN(total, out[n].used + out[n].avail);
		}
		out[n].nr_vnodes = multi ? disks[i].nr_vnodes : 0;
		out[n].state = SD_MD_ACTIVE;
	}
	for (int i = 0; i < nr_failed && n < max; i++, n++) {
		memset(&out[n], 0, sizeof(out[n]));
		copy_path(out[n].path, sizeof(out[n].path), failed[i]);
		out[n].state = SD_MD_FAILED;
	}
	pthread_rwlock_unlock(&md_lock);
	return n;
}
