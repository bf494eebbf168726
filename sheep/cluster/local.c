/* local.c: the cluster driver for one machine without corosync. Every event is appended under
 * flock to one log file, which gives a total order; each sheep holds a lock on its own member
 * file while it lives, so the others notice a death and append its leave. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "util.h"
#include "../alloc.h"
#include "../cluster.h"
#include "../cluster_view.h"

#define POLL_MS 10
#define LIVENESS_EVERY 10   /* polls */

enum { REC_JOIN = 1, REC_LEAVE = 2, REC_MSG = 3 };

struct rec_hdr {
	uint32_t type;
	uint32_t len;
	uint32_t pid;
	uint32_t magic;
};
#define REC_MAGIC 0x4c4f4341u

static char cdir[4096];
static int log_fd = -1, lock_fd = -1, member_fd = -1;
static const struct cluster_events *events;
static off_t read_off;
static bool joined_log;
static struct cluster_id members[SD_MAX_NODES];
static size_t nr_members;
static unsigned poll_count;

static struct cluster_id local_my_id(void)
{
	struct cluster_id id = { .nodeid = 0, .pid = getpid() };
	return id;
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", cdir, name);
}

static int global_lock(void) { return flock(lock_fd, LOCK_EX); }
static void global_unlock(void) { flock(lock_fd, LOCK_UN); }

static int append_rec(uint32_t type, uint32_t pid, const void *data, uint32_t len)
{
	struct rec_hdr h = { type, len, pid, REC_MAGIC };
	off_t end = lseek(log_fd, 0, SEEK_END);
	if (xpwrite(log_fd, &h, sizeof(h), end) != sizeof(h) ||
	    (len && xpwrite(log_fd, data, len, end + sizeof(h)) != (ssize_t)len))
		return -errno;
	return 0;
}

/* Is the sheep with this pid alive? It holds an exclusive lock on its member file. */
static bool member_alive(uint32_t pid)
{
	char name[64], path[4200];
	snprintf(name, sizeof(name), "member.%u", pid);
	path_of(path, sizeof(path), name);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool alive = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	if (!alive)
		unlink(path);
	close(fd);
	return alive;
}

/* replay the whole log to compute the membership (caller holds the global lock) */
static size_t scan_members(struct cluster_id *out)
{
	size_t n = 0;
	off_t off = 0;
	struct rec_hdr h;
	while (xpread(log_fd, &h, sizeof(h), off) == sizeof(h) && h.magic == REC_MAGIC) {
		if (h.type == REC_JOIN && n < SD_MAX_NODES) {
			out[n].nodeid = 0;
			out[n].pid = h.pid;
			out[n].pad = 0;
			n++;
		} else if (h.type == REC_LEAVE) {
			for (size_t i = 0; i < n; i++)
				if (out[i].pid == h.pid) {
					memmove(&out[i], &out[i + 1], (n - i - 1) * sizeof(out[0]));
					n--;
					break;
				}
		}
		off += sizeof(h) + h.len;
	}
	return n;
}

static void check_liveness(void)
{
	struct cluster_id cur[SD_MAX_NODES];
	if (global_lock() < 0)
		return;
	size_t n = scan_members(cur);
	for (size_t i = 0; i < n; i++)
		if (cur[i].pid != (uint32_t)getpid() && !member_alive(cur[i].pid)) {
			sd_info("local driver: sheep pid %u is gone", cur[i].pid);
			append_rec(REC_LEAVE, cur[i].pid, NULL, 0);
		}
	global_unlock();
}

static void read_new_records(void)
{
	struct rec_hdr h;
	uint32_t me = getpid();
	for (;;) {
		if (xpread(log_fd, &h, sizeof(h), read_off) != sizeof(h) || h.magic != REC_MAGIC)
			return;
		void *data = NULL;
		if (h.len) {
			data = xmalloc(h.len);
			if (xpread(log_fd, data, h.len, read_off + sizeof(h)) != (ssize_t)h.len) {
				free(data);
				return;   /* the writer is still appending */
			}
		}
		read_off += sizeof(h) + h.len;
		struct cluster_id id = { .nodeid = 0, .pid = h.pid };
		switch (h.type) {
		case REC_JOIN:
			if (nr_members < SD_MAX_NODES)
				members[nr_members++] = id;
			if (h.pid == me)
				joined_log = true;
			if (joined_log)
				events->confchg(members, nr_members, NULL, 0, &id, 1);
			break;
		case REC_LEAVE: {
			bool found = false;
			for (size_t i = 0; i < nr_members; i++)
				if (members[i].pid == h.pid) {
					memmove(&members[i], &members[i + 1], (nr_members - i - 1) * sizeof(members[0]));
					nr_members--;
					found = true;
					break;
				}
			if (h.pid == me)
				joined_log = false;
			else if (joined_log && found)
				events->confchg(members, nr_members, &id, 1, NULL, 0);
			break;
		}
		case REC_MSG:
			if (joined_log)
				events->deliver(&id, data, h.len);
			break;
		}
		free(data);
	}
}

static void local_poll(void *unused)
{
	if (++poll_count % LIVENESS_EVERY == 0)
		check_liveness();
	read_new_records();
	if (!add_timer(POLL_MS, local_poll, NULL))
		sd_err("local driver: cannot arm poll timer");
}

static int local_init(const char *opts, const struct cluster_events *ev)
{
	events = ev;
	char path[4200];
	snprintf(cdir, sizeof(cdir), "%s", opts && *opts ? opts : "/tmp/sheepfold-local");
	int ret = mkdir_p(cdir, 0755);
	if (ret < 0) {
		sd_err("local driver: cannot create %s: %s", cdir, strerror(-ret));
		return ret;
	}
	path_of(path, sizeof(path), "lock");
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	path_of(path, sizeof(path), "events");
	log_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	char name[64];
	snprintf(name, sizeof(name), "member.%d", getpid());
	path_of(path, sizeof(path), name);
	member_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lock_fd < 0 || log_fd < 0 || member_fd < 0 || flock(member_fd, LOCK_EX) < 0) {
		sd_err("local driver: cannot open files in %s: %m", cdir);
		return -errno;
	}
	return 0;
}

static int local_join(void)
{
	struct cluster_id cur[SD_MAX_NODES];
	if (global_lock() < 0)
		return -errno;
	size_t n = scan_members(cur), alive = 0;
	for (size_t i = 0; i < n; i++) {
		if (member_alive(cur[i].pid))
			alive++;
		else
			append_rec(REC_LEAVE, cur[i].pid, NULL, 0);
	}
	if (!alive && ftruncate(log_fd, 0) < 0)   /* a fresh cluster starts a fresh log */
		sd_warn("local driver: cannot reset the event log: %m");
	int ret = append_rec(REC_JOIN, getpid(), NULL, 0);
	global_unlock();
	if (ret < 0)
		return ret;
	read_off = 0;
	nr_members = 0;
	read_new_records();
	if (!add_timer(POLL_MS, local_poll, NULL))
		return -ENOMEM;
	return 0;
}

static int local_leave(void)
{
	if (global_lock() < 0)
		return -errno;
	int ret = append_rec(REC_LEAVE, getpid(), NULL, 0);
	global_unlock();
	return ret;
}

static int local_send(const void *msg, size_t len)
{
	if (global_lock() < 0)
		return -errno;
	int ret = append_rec(REC_MSG, getpid(), msg, len);
	global_unlock();
	return ret;
}

const struct cluster_driver cdrv_local = {
	.name = "local",
	.init = local_init,
	.join = local_join,
	.leave = local_leave,
	.send = local_send,
	.my_id = local_my_id,
};
