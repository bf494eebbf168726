/* conn_limits.c: connection caps, the stall timeout and the buffering bounds of client connections.
 * request.c meters each connection here; this file decides when one is refused, closed, evicted
 * to make room, or left unread until its replies drain. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <stdlib.h>

#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "net.h"
#include "util.h"
#include "conn_limits.h"

#define MiB (1024 * 1024ull)
#define STALL_SCAN_MS 500
#define FD_RESERVE 256   /* open files kept for the store, peers, NBD and the cluster driver */

struct sheep_limits limits = {
	.max_clients = 1024,
	.max_clients_per_addr = 256,
	.stall_ms = 5000,
	.conn_buffer = 64 * MiB,
	.node_buffer = 1024 * MiB,
	.conn_cluster_ops = 8,
};

static const struct limits_ops *owner;
static struct list_head conns = LIST_HEAD_INIT(conns);
static unsigned nr_conns;
static size_t node_buffered;
static bool node_full;

#define for_each_conn(m) \
	for (struct conn_meter *m = list_entry(conns.next, struct conn_meter, list); &m->list != &conns; \
	     m = list_entry(m->list.next, struct conn_meter, list))

static uint64_t now_ms(void) { return now_ns() / 1000000; }

/* ---- options ---- */

struct limit_option {
	const char *name;
	uint64_t min, max;
	void (*set)(uint64_t v);
};

static void set_max_clients(uint64_t v) { limits.max_clients = v; }
static void set_per_addr(uint64_t v) { limits.max_clients_per_addr = v; }
static void set_stall(uint64_t v) { limits.stall_ms = v * 1000; }
static void set_conn_buffer(uint64_t v) { limits.conn_buffer = v * MiB; }
static void set_node_buffer(uint64_t v) { limits.node_buffer = v * MiB; }
static void set_cluster_ops(uint64_t v) { limits.conn_cluster_ops = v; }

static const struct limit_option limit_options[] = {
	{ .name = "max-clients", .min = 1, .max = 1000000, .set = set_max_clients },
	{ .name = "max-clients-per-addr", .min = 1, .max = 1000000, .set = set_per_addr },
	{ .name = "request-timeout", .min = 1, .max = 3600, .set = set_stall },
	/* a connection must hold one request of the largest size and its reply */
	{ .name = "max-client-buffer", .min = 2 * SD_MAX_DATA_LENGTH / MiB, .max = 1 << 20, .set = set_conn_buffer },
	{ .name = "max-buffer", .min = 2 * SD_MAX_DATA_LENGTH / MiB, .max = 1 << 24, .set = set_node_buffer },
	{ .name = "max-cluster-ops", .min = 1, .max = 4096, .set = set_cluster_ops },
};

static int set_log_ratelimit(const char *value)
{
	char *end;
	unsigned long burst = strtoul(value, &end, 10), window = LOG_RATELIMIT_WINDOW;
	if (end == value || (*end && *end != '/'))
		goto bad;
	if (*end == '/') {
		const char *w = end + 1;
		window = strtoul(w, &end, 10);
		if (end == w || *end || !window || window > 3600)
			goto bad;
	}
	if (burst > 1000000)
		goto bad;
	log_set_ratelimit(burst, window);
	return 1;
bad:
	fprintf(stderr, "sheep: invalid --log-ratelimit '%s' (BURST[/SECONDS], BURST 0 = unlimited)\n", value);
	return -1;
}

int limits_option(const char *name, const char *value)
{
	if (!strcmp(name, "log-ratelimit"))
		return set_log_ratelimit(value);
	for (size_t i = 0; i < sizeof(limit_options) / sizeof(limit_options[0]); i++) {
		const struct limit_option *o = &limit_options[i];
		uint64_t v;
		if (strcmp(name, o->name))
			continue;
		if (parse_u64(value, &v) < 0 || v < o->min || v > o->max) {
			fprintf(stderr, "sheep: invalid --%s '%s' (%llu to %llu)\n", name, value,
				(unsigned long long)o->min, (unsigned long long)o->max);
			return -1;
		}
		o->set(v);
		return 1;
	}
	return 0;
}

void limits_setup(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	rlim_t room = rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE : rl.rlim_cur / 2;
	if (limits.max_clients > room) {
		sd_warn("--max-clients %u lowered to %llu: the open-file limit is %llu", limits.max_clients,
			(unsigned long long)room, (unsigned long long)rl.rlim_cur);
		limits.max_clients = room;
	}
}

/* ---- connections ---- */

static void stall_scan(void *unused)
{
	uint64_t now = now_ms();
	struct list_head *pos, *n;
	list_for_each_safe(pos, n, &conns) {
		struct conn_meter *m = list_entry(pos, struct conn_meter, list);
		if (m->mid_request && now - m->last_progress_ms >= limits.stall_ms)
			owner->close(m, "request stalled");
	}
	log_ratelimit_flush();   /* a flood that stopped still gets its count in the log */
	add_timer(STALL_SCAN_MS, stall_scan, NULL);
}

void limits_start(const struct limits_ops *ops)
{
	owner = ops;
	add_timer(STALL_SCAN_MS, stall_scan, NULL);
}

static void peer_addr(int fd, uint8_t addr[16])
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	memset(addr, 0, 16);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else if (ss.ss_family == AF_INET6) {
		memcpy(addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	}
}

int limits_admit(struct conn_meter *m, int fd)
{
	unsigned same = 0;
	memset(m, 0, sizeof(*m));
	peer_addr(fd, m->addr);
	for_each_conn(o)
		same += !memcmp(o->addr, m->addr, 16);
	if (same >= limits.max_clients_per_addr) {
		char a[INET6_ADDRSTRLEN];
		sd_warn_rl("connection from %s refused: it has %u already (--max-clients-per-addr)",
			   addr_to_str(m->addr, a, sizeof(a)), same);
		return -1;
	}
	m->last_progress_ms = now_ms();
	list_add_tail(&m->list, &conns);
	nr_conns++;
	return 0;
}

bool limits_full(void)
{
	return nr_conns >= limits.max_clients;
}

bool limits_make_room(void)
{
	struct conn_meter *victim = NULL;
	for_each_conn(m)
		if ((m->mid_request || !m->proven) && (!victim || m->last_progress_ms < victim->last_progress_ms))
			victim = m;
	if (!victim)
		return false;
	owner->close(victim, "evicted to make room (--max-clients): the longest stalled request");
	return true;
}

void limits_forget(struct conn_meter *m)
{
	list_del(&m->list);
	bool was_full = limits_full();
	nr_conns--;
	if (was_full && owner)
		owner->resume_accept();
}

void limits_progress(struct conn_meter *m, bool mid_request)
{
	m->last_progress_ms = now_ms();
	m->mid_request = mid_request;
	m->proven |= !mid_request;
}

static bool may_read(const struct conn_meter *m)
{
	return m->buffered < limits.conn_buffer && node_buffered < limits.node_buffer &&
	       m->cluster_ops < limits.conn_cluster_ops;
}

static void wake_if_allowed(struct conn_meter *m)
{
	if (m->rx_held && may_read(m)) {
		m->rx_held = false;
		owner->wake(m);
	}
}

void limits_account(struct conn_meter *m, long long bytes)
{
	m->buffered += bytes;
	node_buffered += bytes;
	if (bytes >= 0)
		return;
	if (node_full && node_buffered < limits.node_buffer) {
		node_full = false;
		for_each_conn(o)
			wake_if_allowed(o);
		return;
	}
	wake_if_allowed(m);
}

void limits_cluster_op(struct conn_meter *m, int delta)
{
	m->cluster_ops += delta;
	if (delta < 0)
		wake_if_allowed(m);
}

bool limits_may_read(struct conn_meter *m)
{
	if (may_read(m))
		return true;
	if (node_buffered >= limits.node_buffer)
		node_full = true;
	m->rx_held = true;
	return false;
}
