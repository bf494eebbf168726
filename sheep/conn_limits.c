/* conn_limits.c: connection caps, the stall timeout and the buffering bounds of client connections.
 * request.c (the sheep port) and nbd.c (the NBD port) meter each connection here; this file decides
 * when one is refused, closed, evicted to make room, or left unread until its replies drain. */
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
	.nbd_max_clients = 1024,
	.nbd_max_clients_per_addr = 256,
	.stall_ms = 5000,
	.conn_buffer = 64 * MiB,
	.node_buffer = 1024 * MiB,
	.conn_cluster_ops = 8,
};

/* the connections of one port */
struct port_conns {
	const char *name, *per_addr_flag;
	const char *evict_reason;        /* how a connection evicted to make room is closed */
	bool own_conn_bound;             /* the port bounds what one connection has in flight itself */
	const unsigned *max, *per_addr;
	const struct limits_ops *owner;
	int listen_fd;
	bool paused;                     /* accepting stopped at the cap */
	struct list_head conns;
	unsigned nr;
};

static struct port_conns ports[LIMITS_NR_PORTS] = {
	[LIMITS_SHEEP] = { .name = "client", .per_addr_flag = "--max-clients-per-addr",
			   .evict_reason = "evicted to make room (--max-clients): the longest stalled request",
			   .max = &limits.max_clients, .per_addr = &limits.max_clients_per_addr,
			   .conns = LIST_HEAD_INIT(ports[LIMITS_SHEEP].conns) },
	[LIMITS_NBD] = { .name = "NBD", .per_addr_flag = "--nbd-max-clients-per-addr",
			 .evict_reason = "evicted to make room (--nbd-max-clients): the longest stalled negotiation or request",
			 .own_conn_bound = true,    /* nbd.c bounds the requests in flight per connection */
			 .max = &limits.nbd_max_clients, .per_addr = &limits.nbd_max_clients_per_addr,
			 .conns = LIST_HEAD_INIT(ports[LIMITS_NBD].conns) },
};
static bool timer_started;
static size_t node_buffered;
static bool node_full;

#define for_each_conn(p, m) \
	for (struct conn_meter *m = list_entry((p)->conns.next, struct conn_meter, list); \
	     &m->list != &(p)->conns; m = list_entry(m->list.next, struct conn_meter, list))

static uint64_t now_ms(void) { return now_ns() / 1000000; }

/* ---- options ---- */

struct limit_option {
	const char *name;
	uint64_t min, max;
	void (*set)(uint64_t v);
};

static void set_max_clients(uint64_t v) { limits.max_clients = v; }
static void set_per_addr(uint64_t v) { limits.max_clients_per_addr = v; }
static void set_nbd_max_clients(uint64_t v) { limits.nbd_max_clients = v; }
static void set_nbd_per_addr(uint64_t v) { limits.nbd_max_clients_per_addr = v; }
static void set_stall(uint64_t v) { limits.stall_ms = v * 1000; }
static void set_conn_buffer(uint64_t v) { limits.conn_buffer = v * MiB; }
static void set_node_buffer(uint64_t v) { limits.node_buffer = v * MiB; }
static void set_cluster_ops(uint64_t v) { limits.conn_cluster_ops = v; }

static const struct limit_option limit_options[] = {
	{ .name = "max-clients", .min = 1, .max = 1000000, .set = set_max_clients },
	{ .name = "max-clients-per-addr", .min = 1, .max = 1000000, .set = set_per_addr },
	{ .name = "nbd-max-clients", .min = 1, .max = 1000000, .set = set_nbd_max_clients },
	{ .name = "nbd-max-clients-per-addr", .min = 1, .max = 1000000, .set = set_nbd_per_addr },
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

void limits_setup(bool with_nbd)
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
	rlim_t want = limits.max_clients + (with_nbd ? (rlim_t)limits.nbd_max_clients : 0);
	if (want <= room)
		return;
	/* both ports keep their share of what there is */
	unsigned sheep = room * limits.max_clients / want, nbd = room - sheep;
	sd_warn("--max-clients %u lowered to %u: the open-file limit is %llu", limits.max_clients, sheep ? sheep : 1,
		(unsigned long long)rl.rlim_cur);
	limits.max_clients = sheep ? sheep : 1;
	if (with_nbd) {
		sd_warn("--nbd-max-clients %u lowered to %u: the open-file limit is %llu", limits.nbd_max_clients,
			nbd ? nbd : 1, (unsigned long long)rl.rlim_cur);
		limits.nbd_max_clients = nbd ? nbd : 1;
	}
}

/* ---- connections ---- */

static void stall_scan(void *unused)
{
	uint64_t now = now_ms();
	for (int i = 0; i < LIMITS_NR_PORTS; i++) {
		struct list_head *pos, *n;
		list_for_each_safe(pos, n, &ports[i].conns) {
			struct conn_meter *m = list_entry(pos, struct conn_meter, list);
			if (m->mid_request && now - m->last_progress_ms >= limits.stall_ms)
				ports[i].owner->close(m, "request stalled");
		}
	}
	log_ratelimit_flush();   /* a flood that stopped still gets its count in the log */
	add_timer(STALL_SCAN_MS, stall_scan, NULL);
}

void limits_start(enum limits_port port, const struct limits_ops *ops, int listen_fd)
{
	ports[port].owner = ops;
	ports[port].listen_fd = listen_fd;
	if (!timer_started) {
		timer_started = true;
		add_timer(STALL_SCAN_MS, stall_scan, NULL);
	}
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

int limits_admit(enum limits_port port, struct conn_meter *m, int fd)
{
	struct port_conns *p = &ports[port];
	unsigned same = 0;
	memset(m, 0, sizeof(*m));
	m->port = port;
	peer_addr(fd, m->addr);
	for_each_conn(p, o)
		same += !memcmp(o->addr, m->addr, 16);
	if (same >= *p->per_addr) {
		char a[INET6_ADDRSTRLEN];
		sd_warn_rl("%s connection from %s refused: it has %u already (%s)", p->name,
			   addr_to_str(m->addr, a, sizeof(a)), same, p->per_addr_flag);
		return -1;
	}
	m->last_progress_ms = now_ms();
	list_add_tail(&m->list, &p->conns);
	p->nr++;
	return 0;
}

static void set_paused(struct port_conns *p, bool paused)
{
	if (p->paused == paused)
		return;
	p->paused = paused;
	modify_event(p->listen_fd, paused ? 0 : EPOLLIN);
}

void limits_accept(enum limits_port port)
{
	struct port_conns *p = &ports[port];
	for (int i = 0; i < LIMITS_ACCEPTS_PER_EVENT && !p->paused; i++) {
		if (limits_full(port) && !limits_make_room(port)) {
			set_paused(p, true);
			break;
		}
		if (p->owner->accept_one(p->listen_fd) < 0)
			break;
	}
}

bool limits_full(enum limits_port port)
{
	return ports[port].nr >= *ports[port].max;
}

bool limits_make_room(enum limits_port port)
{
	struct port_conns *p = &ports[port];
	struct conn_meter *victim = NULL;
	for_each_conn(p, m)
		if ((m->mid_request || !m->proven) && (!victim || m->last_progress_ms < victim->last_progress_ms))
			victim = m;
	if (!victim)
		return false;
	p->owner->close(victim, p->evict_reason);
	return true;
}

void limits_forget(struct conn_meter *m)
{
	struct port_conns *p = &ports[m->port];
	list_del(&m->list);
	bool was_full = limits_full(m->port);
	p->nr--;
	if (was_full && p->owner)
		set_paused(p, false);
}

void limits_progress(struct conn_meter *m, bool mid_request)
{
	m->last_progress_ms = now_ms();
	m->mid_request = mid_request;
	m->proven |= !mid_request;
}

void limits_waiting(struct conn_meter *m, bool waiting, bool progressed)
{
	if (progressed || (waiting && !m->mid_request))
		m->last_progress_ms = now_ms();
	m->mid_request = waiting;
}

/* Over the node-wide bound, a connection that holds nothing may still send one request: clients
 * that never read their replies cannot pin the node's buffers and starve those that do. */
static bool may_read(const struct conn_meter *m)
{
	bool node_ok = node_buffered < limits.node_buffer || !m->buffered;
	if (ports[m->port].own_conn_bound)
		return node_ok;
	return m->buffered < limits.conn_buffer && node_ok && m->cluster_ops < limits.conn_cluster_ops;
}

static void wake_if_allowed(struct conn_meter *m)
{
	if (m->rx_held && may_read(m)) {
		m->rx_held = false;
		ports[m->port].owner->wake(m);
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
		for (int i = 0; i < LIMITS_NR_PORTS; i++)
			for_each_conn(&ports[i], o)
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
