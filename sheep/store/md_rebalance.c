/* md_rebalance.c: after a disk is plugged, the objects whose home on the disk ring (md.c) is now
 * another disk move there, one at a time under the object's store lock (so no write, create or
 * recovery of it runs meanwhile; readers find it at either place: md.c looks at the home first,
 * and the copy there appears whole, by rename, before the old one goes). Across filesystems the
 * file is copied, holes kept, and synced before the rename. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logger.h"
#include "util.h"
#include "fdcache.h"
#include "md.h"
#include "store.h"

#define COPY_CHUNK (1u << 20)

static pthread_mutex_t rebalance_lock = PTHREAD_MUTEX_INITIALIZER;
static bool running, again;    /* under rebalance_lock */

static int sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int ret = fsync(fd);
	close(fd);
	return ret;
}

static bool all_zero(const char *buf, size_t len)
{
	return !len || (!buf[0] && !memcmp(buf, buf + 1, len - 1));
}

/* from -> to (a new file), holes kept; 0 or -1 with errno */
static int copy_sparse(const char *from, const char *to, char *buf)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, ret = -1;
	off_t off = 0;
	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0)
		goto out_close;
	for (;;) {
		ssize_t n = pread(in, buf, COPY_CHUNK, off);
		if (n < 0)
			goto out_close;
		if (!n)
			break;
		if (!all_zero(buf, n) && pwrite(out, buf, n, off) != n)
			goto out_close;
		off += n;
	}
	if (ftruncate(out, off) < 0 || fsync(out) < 0)
		goto out_close;
	ret = 0;
out_close:
	if (out >= 0)
		close(out);
	close(in);
	return ret;
}

/* oid's file from the disk at to the disk home: 1 moved */
static int move_file(uint64_t oid, const char *at, const char *home, char *buf)
{
	char from[SD_MD_PATH_LEN + 32], to[SD_MD_PATH_LEN + 32], tmp[SD_MD_PATH_LEN + 64];
	snprintf(from, sizeof(from), "%s/%016" PRIx64, at, oid);
	snprintf(to, sizeof(to), "%s/%016" PRIx64, home, oid);
	if (rename(from, to) == 0)
		goto synced;
	if (errno != EXDEV)
		goto fail;
	snprintf(tmp, sizeof(tmp), "%s/%016" PRIx64 ".tmp.rebalance", home, oid);
	if (copy_sparse(from, tmp, buf) < 0 || rename(tmp, to) < 0) {
		unlink(tmp);
		goto fail;
	}
	if (sync_path(home) < 0 || unlink(from) < 0)
		goto fail;
synced:
	if (sync_path(home) < 0 || sync_path(at) < 0)
		sd_warn("md: rebalance of %016" PRIx64 ": directory sync: %m", oid);
	return 1;
fail:
	sd_warn("md: cannot move %016" PRIx64 " from %s to %s: %m", oid, at, home);
	return 0;
}

/* move oid to its home disk if it is elsewhere; the caller holds its store lock. 1 moved */
static int move_home(uint64_t oid, char *buf)
{
	char at[SD_MD_PATH_LEN + 8], home[SD_MD_PATH_LEN + 8];
	md_object_dir(oid, at, sizeof(at));
	md_home_dir(oid, home, sizeof(home));
	if (!strcmp(at, home))
		return 0;
	int moved = move_file(oid, at, home, buf);
	fdcache_forget(oid);    /* whether or not it moved whole, the open file may be the old one */
	return moved;
}

static void rebalance_pass(void)
{
	uint64_t *oids;
	size_t nr, moved = 0;
	char *buf = malloc(COPY_CHUNK);
	if (!buf || store_list(&oids, &nr)) {
		free(buf);
		return;
	}
	for (size_t i = 0; i < nr; i++) {
		store_lock(oids[i]);
		if (store_exists(oids[i]))
			moved += move_home(oids[i], buf);
		store_unlock(oids[i]);
	}
	if (moved)
		sd_info("md: rebalanced %zu of %zu objects onto their disks", moved, nr);
	free(oids);
	free(buf);
}

static void *rebalance_thread(void *unused)
{
	for (;;) {
		pthread_mutex_lock(&rebalance_lock);
		again = false;
		pthread_mutex_unlock(&rebalance_lock);
		rebalance_pass();
		pthread_mutex_lock(&rebalance_lock);
		if (!again) {
			running = false;
			pthread_mutex_unlock(&rebalance_lock);
			return NULL;
		}
		pthread_mutex_unlock(&rebalance_lock);
	}
}

void md_rebalance_start(void)
{
	pthread_t th;
	pthread_mutex_lock(&rebalance_lock);
	if (running) {
		again = true;
	} else if (pthread_create(&th, NULL, rebalance_thread, NULL) == 0) {
		running = true;
		pthread_detach(th);
	} else {
		sd_warn("md: cannot start the rebalance: objects stay where they are (still found)");
	}
	pthread_mutex_unlock(&rebalance_lock);
}
