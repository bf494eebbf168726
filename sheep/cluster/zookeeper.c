/* zookeeper.c: the cluster driver over an Apache ZooKeeper ensemble (libzookeeper_mt).
 *
 * Under the base znode (default /sheepfold, or the /PATH of -c):
 *   members/<session>-<seq>  ephemeral sequential, one per sheep process: its cluster id, its
 *                            address (to clear its own stale znode on restart) and the last
 *                            queue entry it has applied (for trimming);
 *   state                    the group's member list as of the last JOIN or LEAVE entry; it is
 *                            only changed in one multi-op with that entry (version-checked), so a
 *                            newcomer learns exactly who was in the group at its JOIN;
 *   queue/e-<seq>            persistent sequential: JOIN, LEAVE and MSG entries. Every member
 *                            reads them in sequence order, which is the one total order of
 *                            membership changes and messages. The first live member deletes the
 *                            entries every member has applied.
 * A member whose ephemeral znode vanishes (its session expired or closed) is declared gone by
 * the first live member, with a LEAVE entry; duplicates are harmless (a LEAVE of a non-member
 * is nothing). A sheep whose session expired, or that has been cut off from the ensemble longer
 * than its session timeout, is no longer a member: it reports the loss and starts afresh.
 *
 * Threads: every ZooKeeper call is made on the driver's own thread; it hands the events to the
 * main thread through an inbox and an eventfd. send() only queues the message (FIFO); a message
 * sent twice after a connection loss is dropped by its per-sender counter.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#define THREADED            /* the synchronous API of libzookeeper_mt */
#include <zookeeper/zookeeper.h>

#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "ring.h"
#include "util.h"
#include "../alloc.h"
#include "../cluster.h"
#include "../cluster_view.h"

#define ZK_DEFAULT_BASE     "/sheepfold"
#define ZK_DEFAULT_TIMEOUT  10000          /* ms: session timeout asked of the ensemble */
#define ZK_FIRST_CONNECT_MS 30000          /* a first start gives up after this */
#define ZK_REJOIN_ENV       "SHEEPFOLD_ZK_REJOIN"   /* set across the restart after a loss */
#define ZK_MAX_ENTRY        (1000 * 1000)  /* under ZooKeeper's default jute.maxbuffer */
#define ZK_TICK_MS          1000           /* report the applied position, trim, recheck */
#define ZK_TRIM_BATCH       1000

enum { ZK_EV_JOIN = 1, ZK_EV_LEAVE = 2, ZK_EV_MSG = 3 };
#define ZK_ENTRY_MAGIC 0x5a4b4551u         /* "ZKEQ" */
#define ZK_STATE_MAGIC 0x5a4b5354u         /* "ZKST" */

/* a queue entry: header, then cluster_id[nr_ids] (LEAVE) or the message (MSG) */
struct zk_entry {
	uint32_t magic;
	uint16_t type;
	uint16_t nr_ids;
	struct cluster_id from;
	uint64_t counter;   /* the sender's message number (MSG) */
	uint32_t len;
	uint32_t pad;
};

struct zk_member_data {
	struct cluster_id cid;
	struct sd_node node;
	int64_t applied;    /* the last queue sequence this sheep applied; -1 before its join */
};

struct zk_state_hdr {
	uint32_t magic;
	uint32_t nr;
	/* struct cluster_id[nr] */
};

/* a member in this sheep's view, with the last message number delivered from it */
struct view_member {
	struct cluster_id cid;
	uint64_t last_counter;
};

/* an event for the main thread, in queue order */
enum { IN_CONFCHG = 1, IN_DELIVER, IN_LOST };
struct inbox_item {
	struct list_head list;
	int kind;
	int64_t seq;
	struct cluster_id from;     /* DELIVER: the sender */
	size_t nr_members, nr_left, nr_joined;
	struct cluster_id *ids;     /* CONFCHG: members, then left, then joined */
	size_t len;
	void *msg;                  /* DELIVER: the message; LOST: the reason (a string) */
};

struct outbox_item {
	struct list_head list;
	size_t len;
	struct zk_entry *entry;     /* header and message */
};

static zhandle_t *zh;
static char hosts[4096], base[1024];
static char path_members[1100], path_queue[1100], path_state[1100], my_member_path[1200];
static int session_timeout = ZK_DEFAULT_TIMEOUT;
static const struct cluster_events *events;
static struct cluster_id my_cid;
static int wake_fd = -1;
static pthread_t zk_thread;
static bool thread_started;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
/* under lock */
static _Atomic bool stop_thread;
static bool queue_dirty, members_dirty, expired;
static int zk_conn_state;
static struct timespec disconnected_since;
static struct list_head inbox = LIST_HEAD_INIT(inbox);
static struct list_head outbox = LIST_HEAD_INIT(outbox);
static uint64_t next_counter = 1;

/* the driver thread's view of the group (driver thread only) */
static struct view_member *view;
static size_t nr_view;
static int64_t last_read = -1;      /* the last queue sequence read */
static bool lost_posted;          /* main thread */
static _Atomic int64_t applied = -1;   /* written by the main thread */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t ts_ms(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000; }

static struct cluster_id zk_my_id(void) { return my_cid; }

/* ---- the ZooKeeper client's threads: session events and watches ---- */

static void zk_log_line(const char *message)
{
	sd_warn("zookeeper client: %s", message);
}

static void zk_watcher(zhandle_t *h, int type, int state, const char *path, void *ctx)
{
	pthread_mutex_lock(&lock);
	if (type == ZOO_SESSION_EVENT) {
		if (state == ZOO_EXPIRED_SESSION_STATE)
			expired = true;
		else if (state != ZOO_CONNECTED_STATE && zk_conn_state == ZOO_CONNECTED_STATE)
			clock_gettime(CLOCK_MONOTONIC, &disconnected_since);
		zk_conn_state = state;
		/* after a reconnect every watch may have fired unseen: read everything again */
		queue_dirty = members_dirty = true;
	} else if (path && !strcmp(path, path_queue)) {
		queue_dirty = true;
	} else if (path && !strcmp(path, path_members)) {
		members_dirty = true;
	}
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* ---- handing events to the main thread ---- */

static void post(struct inbox_item *it)
{
	uint64_t one = 1;
	pthread_mutex_lock(&lock);
	list_add_tail(&it->list, &inbox);
	pthread_mutex_unlock(&lock);
	if (write(wake_fd, &one, sizeof(one)) < 0)
		sd_err("zookeeper driver: cannot wake the main thread: %m");
}

static void post_confchg(int64_t seq, const struct cluster_id *left, size_t nr_left,
			 const struct cluster_id *joined, size_t nr_joined)
{
	struct inbox_item *it = xzalloc(sizeof(*it));
	it->kind = IN_CONFCHG;
	it->seq = seq;
	it->nr_members = nr_view;
	it->nr_left = nr_left;
	it->nr_joined = nr_joined;
	it->ids = xzalloc((nr_view + nr_left + nr_joined + 1) * sizeof(struct cluster_id));
	for (size_t i = 0; i < nr_view; i++)
		it->ids[i] = view[i].cid;
	if (nr_left)
		memcpy(it->ids + nr_view, left, nr_left * sizeof(*left));
	if (nr_joined)
		memcpy(it->ids + nr_view + nr_left, joined, nr_joined * sizeof(*joined));
	post(it);
}

/* the session is gone: the main thread makes the node leave and start afresh (once) */
static void post_lost(const char *why)
{
	struct inbox_item *it = xzalloc(sizeof(*it));
	it->kind = IN_LOST;
	it->seq = -1;
	it->msg = xmalloc(strlen(why) + 1);
	strcpy(it->msg, why);
	post(it);
}

static void free_item(struct inbox_item *it)
{
	free(it->ids);
	free(it->msg);
	free(it);
}

static void lose_membership(const char *why);

/* main thread: run what the driver thread read, in its order */
static void zk_dispatch(int fd, uint32_t ev, void *data)
{
	uint64_t n;
	struct list_head items = LIST_HEAD_INIT(items);
	if (read(wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		sd_err("zookeeper driver: eventfd read: %m");
	pthread_mutex_lock(&lock);
	list_splice_init(&inbox, &items);
	pthread_mutex_unlock(&lock);
	struct list_head *pos, *nx;
	list_for_each_safe(pos, nx, &items) {
		struct inbox_item *it = list_entry(pos, struct inbox_item, list);
		list_del(&it->list);
		switch (it->kind) {
		case IN_CONFCHG:
			events->confchg(it->ids, it->nr_members, it->ids + it->nr_members, it->nr_left,
					it->ids + it->nr_members + it->nr_left, it->nr_joined);
			break;
		case IN_DELIVER:
			events->deliver(&it->from, it->msg, it->len);
			break;
		case IN_LOST:
			lose_membership(it->msg);
			break;
		}
		if (it->seq >= 0)
			atomic_store(&applied, it->seq);
		free_item(it);
	}
}

/* Main thread, every WATCHDOG_MS: the client notices a silent server after 2/3 of the session
 * timeout; by the last third the ensemble may have expired the session and the others gone on
 * without this node, so it stops serving then rather than risk stale replies. Runs here, not
 * on the driver thread, which may sit in a blocking call while the server is silent. */
#define WATCHDOG_MS 100
static int64_t cut_off_since;

static void lose_membership(const char *why)
{
	if (lost_posted)
		return;
	lost_posted = true;
	sd_err("zookeeper driver: %s", why);
	/* the restart finds its way back without the time limit of a first start */
	setenv(ZK_REJOIN_ENV, "1", 1);
	events->lost(why);
}

static void zk_watchdog(void *unused)
{
	bool connected_now = zoo_state(zh) == ZOO_CONNECTED_STATE;
	pthread_mutex_lock(&lock);
	bool exp = expired;
	int64_t noticed = zk_conn_state == ZOO_CONNECTED_STATE ? 0 : ts_ms(&disconnected_since);
	pthread_mutex_unlock(&lock);
	if (exp)
		lose_membership("the ZooKeeper session expired");
	if (connected_now && !noticed)
		cut_off_since = 0;
	else if (!cut_off_since || (noticed && noticed < cut_off_since))
		cut_off_since = noticed ? noticed : now_ms();
	if (cut_off_since && now_ms() - cut_off_since > session_timeout / 3)
		lose_membership("cut off from ZooKeeper for longer than the session timeout allows");
	if (!add_timer(WATCHDOG_MS, zk_watchdog, NULL))
		sd_err("zookeeper driver: cannot arm the session watchdog");
}

/* ---- the view, changed by queue entries in order (driver thread) ---- */

static ssize_t view_find(const struct cluster_id *c)
{
	for (size_t i = 0; i < nr_view; i++)
		if (!cluster_id_cmp(&view[i].cid, c))
			return (ssize_t)i;
	return -1;
}

static void view_add(const struct cluster_id *c)
{
	struct view_member *grown = xzalloc((nr_view + 1) * sizeof(*view));
	if (nr_view)
		memcpy(grown, view, nr_view * sizeof(*view));
	free(view);
	view = grown;
	view[nr_view].cid = *c;
	view[nr_view].last_counter = 0;
	nr_view++;
}

static void view_remove(size_t i)
{
	memmove(&view[i], &view[i + 1], (nr_view - i - 1) * sizeof(*view));
	nr_view--;
}

static bool is_my_id(const struct cluster_id *c) { return !cluster_id_cmp(c, &my_cid); }

static void apply_entry(int64_t seq, const struct zk_entry *e, const void *payload)
{
	switch (e->type) {
	case ZK_EV_JOIN:
		if (view_find(&e->from) >= 0 || is_my_id(&e->from))
			break;
		if (nr_view >= SD_MAX_NODES) {
			sd_err("zookeeper driver: more than %d members; ignoring a join", SD_MAX_NODES);
			break;
		}
		view_add(&e->from);
		post_confchg(seq, NULL, 0, &e->from, 1);
		break;
	case ZK_EV_LEAVE: {
		const struct cluster_id *ids = payload;
		struct cluster_id *left = xzalloc((e->nr_ids + 1) * sizeof(*left));
		size_t nr_left = 0;
		bool me = false;
		for (size_t k = 0; k < e->nr_ids; k++) {
			ssize_t i = view_find(&ids[k]);
			if (i < 0)
				continue;
			if (is_my_id(&ids[k]))
				me = true;
			else
				left[nr_left++] = ids[k];
			view_remove((size_t)i);
		}
		if (nr_left)
			post_confchg(seq, left, nr_left, NULL, 0);
		free(left);
		if (me)
			post_lost("the cluster declared this node gone (its ZooKeeper session lapsed)");
		break;
	}
	case ZK_EV_MSG: {
		ssize_t i = view_find(&e->from);
		if (i < 0 || e->counter <= view[i].last_counter)
			break;   /* not a member (yet, or any more), or a resend already delivered */
		view[i].last_counter = e->counter;
		struct inbox_item *it = xzalloc(sizeof(*it));
		it->kind = IN_DELIVER;
		it->seq = seq;
		it->from = e->from;
		it->len = e->len;
		it->msg = xmalloc(e->len ? e->len : 1);
		memcpy(it->msg, payload, e->len);
		post(it);
		break;
	}
	}
}

/* ---- ZooKeeper helpers (driver thread, or the main thread before it starts) ---- */

static bool connected(void)
{
	return zoo_state(zh) == ZOO_CONNECTED_STATE;
}

static int64_t seq_of(const char *name)
{
	const char *dash = strrchr(name, '-');
	if (!dash || !dash[1])
		return -1;
	char *end;
	long long v = strtoll(dash + 1, &end, 10);
	return *end || v < 0 ? -1 : v;
}

static int cmp_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* the sequence numbers of the queue, sorted; arms the watch. NULL on error */
static int64_t *queue_seqs(size_t *nr, bool watch)
{
	struct String_vector names = { 0 };
	int rc = zoo_get_children(zh, path_queue, watch, &names);
	if (rc != ZOK) {
		if (rc != ZCONNECTIONLOSS && rc != ZOPERATIONTIMEOUT)
			sd_err("zookeeper driver: cannot list %s: %s", path_queue, zerror(rc));
		return NULL;
	}
	int64_t *seqs = xzalloc((names.count + 1) * sizeof(*seqs));
	size_t n = 0;
	for (int i = 0; i < names.count; i++) {
		int64_t s = seq_of(names.data[i]);
		if (s >= 0)
			seqs[n++] = s;
	}
	deallocate_String_vector(&names);
	qsort(seqs, n, sizeof(*seqs), cmp_seq);
	*nr = n;
	return seqs;
}

static void entry_path(char *buf, size_t len, int64_t seq)
{
	snprintf(buf, len, "%s/e-%010" PRId64, path_queue, seq);
}

/* read the entries after last_read, in order */
static void read_queue(void)
{
	size_t n;
	int64_t *seqs = queue_seqs(&n, true);
	if (!seqs)
		return;
	char *buf = xmalloc(ZK_MAX_ENTRY + sizeof(struct zk_entry));
	for (size_t i = 0; i < n && !stop_thread; i++) {
		if (seqs[i] <= last_read)
			continue;
		char path[1200];
		int len = ZK_MAX_ENTRY + sizeof(struct zk_entry);
		entry_path(path, sizeof(path), seqs[i]);
		int rc = zoo_get(zh, path, 0, buf, &len, NULL);
		if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT)
			break;   /* read it again once connected */
		last_read = seqs[i];
		struct zk_entry e;
		if (rc != ZOK || len < (int)sizeof(e)) {
			sd_err("zookeeper driver: queue entry %s unreadable (%s); skipped", path,
			       rc != ZOK ? zerror(rc) : "too short");
			continue;
		}
		memcpy(&e, buf, sizeof(e));
		size_t want = e.type == ZK_EV_LEAVE ? e.nr_ids * sizeof(struct cluster_id) : e.len;
		if (e.magic != ZK_ENTRY_MAGIC || e.type < ZK_EV_JOIN || e.type > ZK_EV_MSG ||
		    e.nr_ids > SD_MAX_NODES || (size_t)len != sizeof(e) + want) {
			sd_err("zookeeper driver: malformed queue entry %s (%d bytes); skipped", path, len);
			continue;
		}
		sd_debug("zookeeper driver: entry %" PRId64 ": type %u from %016" PRIx64 "/%u, #%" PRIu64 ", %u bytes",
			 seqs[i], e.type, e.from.nodeid, e.from.pid, e.counter, e.len);
		apply_entry(seqs[i], &e, buf + sizeof(e));
	}
	free(buf);
	free(seqs);
}

static uint64_t session_of_name(const char *name)
{
	return strtoull(name, NULL, 16);
}

/* the session ids that hold a member znode; arms the watch when asked. NULL on error */
static uint64_t *live_sessions(size_t *nr, struct String_vector *names_out, bool watch)
{
	struct String_vector names = { 0 };
	int rc = zoo_get_children(zh, path_members, watch, &names);
	if (rc != ZOK)
		return NULL;
	uint64_t *s = xzalloc((names.count + 1) * sizeof(*s));
	for (int i = 0; i < names.count; i++)
		s[i] = session_of_name(names.data[i]);
	*nr = names.count;
	if (names_out)
		*names_out = names;
	else
		deallocate_String_vector(&names);
	return s;
}

static bool session_live(const uint64_t *live, size_t nr, uint64_t session)
{
	for (size_t i = 0; i < nr; i++)
		if (live[i] == session)
			return true;
	return false;
}

/* the member list of the state znode and its version; 0, or a ZooKeeper error */
static int read_state(struct cluster_id **ids, size_t *nr, int *version)
{
	size_t cap = sizeof(struct zk_state_hdr) + SD_MAX_NODES * sizeof(struct cluster_id);
	char *buf = xmalloc(cap);
	int len = (int)cap;
	struct Stat st;
	int rc = zoo_get(zh, path_state, 0, buf, &len, &st);
	if (rc != ZOK)
		goto out;
	struct zk_state_hdr h = { ZK_STATE_MAGIC, 0 };
	if (len >= (int)sizeof(h))
		memcpy(&h, buf, sizeof(h));
	if (len > 0 && (h.magic != ZK_STATE_MAGIC || h.nr > SD_MAX_NODES ||
			(size_t)len != sizeof(h) + h.nr * sizeof(struct cluster_id))) {
		sd_err("zookeeper driver: %s is malformed (%d bytes); taking it as empty", path_state, len);
		h.nr = 0;
	}
	if (len <= 0)
		h.nr = 0;
	*ids = xzalloc((h.nr + 1) * sizeof(struct cluster_id));
	memcpy(*ids, buf + sizeof(h), h.nr * sizeof(struct cluster_id));
	*nr = h.nr;
	*version = st.version;
out:
	free(buf);
	return rc;
}

static void *make_entry(uint16_t type, const struct cluster_id *ids, size_t nr_ids, size_t *len)
{
	*len = sizeof(struct zk_entry) + nr_ids * sizeof(struct cluster_id);
	struct zk_entry *e = xzalloc(*len);
	e->magic = ZK_ENTRY_MAGIC;
	e->type = type;
	e->nr_ids = (uint16_t)nr_ids;
	e->from = my_cid;
	if (nr_ids)
		memcpy(e + 1, ids, nr_ids * sizeof(*ids));
	return e;
}

/* Bring the state znode in line with the live member znodes in one multi-op: a LEAVE entry for
 * the members whose znode is gone (and for this sheep, when leaving), a JOIN entry when joining.
 * On a join, *join_seq is its entry and the view becomes the group as of that entry. */
enum reconcile_mode { RECONCILE_CHECK, RECONCILE_JOIN, RECONCILE_LEAVE };

static int reconcile(enum reconcile_mode mode, int64_t *join_seq)
{
	for (int tries = 0; tries < 100; tries++) {
		struct cluster_id *ids = NULL;
		size_t nr = 0, nr_live = 0;
		int version, rc = read_state(&ids, &nr, &version);
		if (rc != ZOK)
			return rc;
		uint64_t *live = live_sessions(&nr_live, NULL, false);
		if (!live) {
			free(ids);
			return ZCONNECTIONLOSS;
		}
		struct cluster_id *keep = xzalloc((nr + 2) * sizeof(*keep)), *gone = xzalloc((nr + 1) * sizeof(*gone));
		size_t nr_keep = 0, nr_gone = 0;
		for (size_t i = 0; i < nr; i++) {
			bool leaving = mode == RECONCILE_LEAVE && is_my_id(&ids[i]);
			if (!leaving && session_live(live, nr_live, ids[i].nodeid))
				keep[nr_keep++] = ids[i];
			else
				gone[nr_gone++] = ids[i];
		}
		if (mode == RECONCILE_JOIN)
			keep[nr_keep++] = my_cid;
		rc = ZOK;
		if (!nr_gone && mode != RECONCILE_JOIN)
			goto next;
		size_t slen = sizeof(struct zk_state_hdr) + nr_keep * sizeof(*keep), llen = 0, jlen = 0;
		char *state = xzalloc(slen);
		struct zk_state_hdr h = { ZK_STATE_MAGIC, (uint32_t)nr_keep };
		memcpy(state, &h, sizeof(h));
		memcpy(state + sizeof(h), keep, nr_keep * sizeof(*keep));
		void *leave = nr_gone ? make_entry(ZK_EV_LEAVE, gone, nr_gone, &llen) : NULL;
		void *join = mode == RECONCILE_JOIN ? make_entry(ZK_EV_JOIN, NULL, 0, &jlen) : NULL;
		zoo_op_t ops[3];
		zoo_op_result_t results[3];
		char prefix[1200], created[2][1200];
		struct Stat st;
		int nops = 0;
		snprintf(prefix, sizeof(prefix), "%s/e-", path_queue);
		zoo_set_op_init(&ops[nops++], path_state, state, (int)slen, version, &st);
		if (leave)
			zoo_create_op_init(&ops[nops++], prefix, leave, (int)llen, &ZOO_OPEN_ACL_UNSAFE,
					   ZOO_PERSISTENT_SEQUENTIAL, created[0], sizeof(created[0]));
		if (join)
			zoo_create_op_init(&ops[nops++], prefix, join, (int)jlen, &ZOO_OPEN_ACL_UNSAFE,
					   ZOO_PERSISTENT_SEQUENTIAL, created[1], sizeof(created[1]));
		rc = zoo_multi(zh, nops, ops, results);
		if (rc == ZOK && join) {
			*join_seq = seq_of(created[1]);
			free(view);
			nr_view = 0;
			view = NULL;
			for (size_t i = 0; i < nr_keep; i++)
				view_add(&keep[i]);
		}
		for (size_t i = 0; rc == ZOK && i < nr_gone; i++)
			sd_info("zookeeper driver: session %016" PRIx64 " (pid %u) %s the group", gone[i].nodeid,
				gone[i].pid, is_my_id(&gone[i]) ? "leaves" : "is gone from");
		free(state);
		free(leave);
		free(join);
next:
		free(ids);
		free(live);
		free(keep);
		free(gone);
		if (rc != ZBADVERSION)
			return rc;
	}
	return ZBADVERSION;
}

/* members of the view whose znode is gone: the first live member declares them gone */
static void check_members(void)
{
	size_t nr_live;
	uint64_t *live = live_sessions(&nr_live, NULL, true);
	if (!live)
		return;
	bool any_gone = false, first_live_is_me = false, seen_live = false;
	for (size_t i = 0; i < nr_view; i++) {
		bool l = session_live(live, nr_live, view[i].cid.nodeid);
		if (!l)
			any_gone = true;
		else if (!seen_live) {
			seen_live = true;
			first_live_is_me = is_my_id(&view[i].cid);
		}
	}
	free(live);
	if (any_gone && first_live_is_me)
		reconcile(RECONCILE_CHECK, NULL);
}

static void set_my_member_data(int64_t pos)
{
	struct zk_member_data d = { .cid = my_cid, .node = sys->this_node, .applied = pos };
	int rc = zoo_set(zh, my_member_path, (const char *)&d, sizeof(d), -1);
	if (rc != ZOK && rc != ZCONNECTIONLOSS && rc != ZOPERATIONTIMEOUT)
		sd_err("zookeeper driver: cannot update %s: %s", my_member_path, zerror(rc));
}

/* the first member of the view deletes the entries every member znode has applied */
static void trim_queue(void)
{
	if (!nr_view || !is_my_id(&view[0].cid))
		return;
	struct String_vector names = { 0 };
	size_t nr_live;
	uint64_t *live = live_sessions(&nr_live, &names, false);
	if (!live)
		return;
	int64_t min = INT64_MAX;
	for (int i = 0; i < names.count && min >= 0; i++) {
		char path[1200];
		struct zk_member_data d;
		int len = sizeof(d);
		snprintf(path, sizeof(path), "%s/%s", path_members, names.data[i]);
		int rc = zoo_get(zh, path, 0, (char *)&d, &len, NULL);
		if (rc == ZNONODE)
			continue;
		if (rc != ZOK || len != (int)sizeof(d))
			min = -1;   /* not known: trim nothing this time */
		else if (d.applied < min)
			min = d.applied;
	}
	deallocate_String_vector(&names);
	free(live);
	if (min <= 0 || min == INT64_MAX)
		return;
	size_t n;
	int64_t *seqs = queue_seqs(&n, false);
	if (!seqs)
		return;
	size_t done = 0;
	for (size_t i = 0; i < n && seqs[i] <= min && done < ZK_TRIM_BATCH; i++, done++) {
		char path[1200];
		entry_path(path, sizeof(path), seqs[i]);
		int rc = zoo_delete(zh, path, -1);
		if (rc != ZOK && rc != ZNONODE)
			break;
	}
	if (done)
		sd_debug("zookeeper driver: trimmed %zu queue entries up to %" PRId64, done, min);
	free(seqs);
}

/* push the queued messages, oldest first; stops at a connection loss (they are sent again) */
static void flush_outbox(void)
{
	char prefix[1200];
	snprintf(prefix, sizeof(prefix), "%s/e-", path_queue);
	for (;;) {
		pthread_mutex_lock(&lock);
		struct outbox_item *o = list_empty(&outbox) ? NULL : list_entry(outbox.next, struct outbox_item, list);
		pthread_mutex_unlock(&lock);
		if (!o)
			return;
		char created[1200] = "";
		int rc = zoo_create(zh, prefix, (const char *)o->entry, (int)o->len, &ZOO_OPEN_ACL_UNSAFE,
				    ZOO_PERSISTENT_SEQUENTIAL, created, sizeof(created));
		sd_debug("zookeeper driver: message #%" PRIu64 " (%zu bytes) queued as %s: %s", o->entry->counter,
			 o->len, created, zerror(rc));
		if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONEXPIRED)
			return;
		if (rc != ZOK)
			sd_err("zookeeper driver: cannot queue a message (%zu bytes): %s; dropped", o->len, zerror(rc));
		pthread_mutex_lock(&lock);
		list_del(&o->list);
		pthread_mutex_unlock(&lock);
		free(o->entry);
		free(o);
	}
}

static void *zk_thread_main(void *unused)
{
	int64_t last_tick = now_ms(), reported = -2;
	pthread_mutex_lock(&lock);
	while (!stop_thread) {
		if (!queue_dirty && !members_dirty && !expired && list_empty(&outbox) &&
		    now_ms() - last_tick < ZK_TICK_MS) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 200 * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&cond, &lock, &until);
			continue;
		}
		bool q = queue_dirty, m = members_dirty;
		pthread_mutex_unlock(&lock);
		if (!connected()) {
			usleep(50 * 1000);   /* the main thread's watchdog decides when it is too long */
		} else {
			pthread_mutex_lock(&lock);
			queue_dirty = members_dirty = false;
			pthread_mutex_unlock(&lock);
			flush_outbox();
			if (q)
				read_queue();
			if (m)
				check_members();
			if (now_ms() - last_tick >= ZK_TICK_MS) {
				last_tick = now_ms();
				int64_t a = atomic_load(&applied);
				if (a != reported) {
					set_my_member_data(a);
					reported = a;
				}
				check_members();
				read_queue();   /* a watch lost in a reconnect costs at most a tick */
				trim_queue();
			}
		}
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* ---- the driver interface ---- */

/* "HOST:PORT[,HOST:PORT...][/PATH][,timeout=MS]" */
/* a bad -c argument: one line for the user (stderr is still the terminal) and one in the log */
#define bad_opt(fmt, ...) do { \
	sd_err("zookeeper driver: " fmt, ##__VA_ARGS__); \
	fprintf(stderr, "sheep: -c zookeeper: " fmt "\n", ##__VA_ARGS__); \
} while (0)

static int parse_opts(const char *opts)
{
	char buf[4096];
	if (!opts || !*opts) {
		bad_opt("no servers: -c zookeeper:HOST:PORT[,HOST:PORT...][/PATH][,timeout=MS]");
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", opts);
	snprintf(base, sizeof(base), "%s", ZK_DEFAULT_BASE);
	hosts[0] = '\0';
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strncmp(tok, "timeout=", 8)) {
			uint64_t ms;
			if (parse_u64(tok + 8, &ms) < 0 || ms < 100 || ms > 600000) {
				bad_opt("bad timeout '%s' (milliseconds, 100 to 600000)", tok + 8);
				return -EINVAL;
			}
			session_timeout = (int)ms;
			continue;
		}
		char *slash = strchr(tok, '/');
		if (slash) {
			size_t l = strlen(slash);
			while (l > 1 && slash[l - 1] == '/')
				slash[--l] = '\0';
			if (l < 2 || strstr(slash, "//")) {
				bad_opt("bad base znode '%s'", slash);
				return -EINVAL;
			}
			snprintf(base, sizeof(base), "%s", slash);
			*slash = '\0';
		}
		if (!*tok)
			continue;
		if (!strchr(tok, ':')) {
			bad_opt("'%s' is not HOST:PORT", tok);
			return -EINVAL;
		}
		size_t used = strlen(hosts);
		snprintf(hosts + used, sizeof(hosts) - used, "%s%s", used ? "," : "", tok);
	}
	if (!hosts[0]) {
		bad_opt("no HOST:PORT in '%s'", opts);
		return -EINVAL;
	}
	snprintf(path_members, sizeof(path_members), "%s/members", base);
	snprintf(path_queue, sizeof(path_queue), "%s/queue", base);
	snprintf(path_state, sizeof(path_state), "%s/state", base);
	return 0;
}

static int create_if_missing(const char *path)
{
	int rc = zoo_create(zh, path, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
	return rc == ZNODEEXISTS ? ZOK : rc;
}

/* the base znode and every parent of it, then members, queue and state */
static int create_layout(void)
{
	char p[1024];
	int rc = ZOK;
	for (char *s = base + 1; rc == ZOK; s++) {
		s = strchr(s, '/');
		snprintf(p, sizeof(p), "%.*s", s ? (int)(s - base) : (int)strlen(base), base);
		rc = create_if_missing(p);
		if (!s)
			break;
	}
	if (rc == ZOK)
		rc = create_if_missing(path_members);
	if (rc == ZOK)
		rc = create_if_missing(path_queue);
	if (rc == ZOK)
		rc = create_if_missing(path_state);
	return rc;
}

static int wait_connected(void)
{
	bool patient = getenv(ZK_REJOIN_ENV) != NULL;
	int64_t start = now_ms(), last_note = start;
	while (!connected()) {
		pthread_mutex_lock(&lock);
		bool exp = expired;
		pthread_mutex_unlock(&lock);
		if (exp)
			return -ESTALE;
		if (!patient && now_ms() - start > ZK_FIRST_CONNECT_MS)
			return -ETIMEDOUT;
		if (now_ms() - last_note > 10000) {
			sd_warn("zookeeper driver: still waiting for ZooKeeper at %s", hosts);
			last_note = now_ms();
		}
		usleep(50 * 1000);
	}
	return 0;
}

static int zk_init(const char *opts, const struct cluster_events *ev)
{
	events = ev;
	int ret = parse_opts(opts);
	if (ret < 0)
		return ret;
	zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
	zh = zookeeper_init2(hosts, zk_watcher, session_timeout, NULL, NULL, 0, zk_log_line);
	if (!zh) {
		sd_err("zookeeper driver: cannot start a client for %s: %m", hosts);
		return -EINVAL;
	}
	int rc;
	/* a connection lost while creating the layout: wait for the server and try again */
	for (int tries = 0;; tries++) {
		ret = wait_connected();
		if (ret < 0)
			break;
		rc = create_layout();
		if ((rc != ZCONNECTIONLOSS && rc != ZOPERATIONTIMEOUT) || tries >= 100)
			break;
	}
	if (ret < 0) {
		sd_err("zookeeper driver: cannot reach ZooKeeper at %s within %d s", hosts, ZK_FIRST_CONNECT_MS / 1000);
		fprintf(stderr, "sheep: cannot reach ZooKeeper at %s\n", hosts);
		return ret;
	}
	unsetenv(ZK_REJOIN_ENV);
	pthread_mutex_lock(&lock);
	zk_conn_state = ZOO_CONNECTED_STATE;
	pthread_mutex_unlock(&lock);
	my_cid.nodeid = (uint64_t)zoo_client_id(zh)->client_id;
	my_cid.pid = (uint32_t)getpid();
	if (rc != ZOK) {
		sd_err("zookeeper driver: cannot create %s: %s", base, zerror(rc));
		fprintf(stderr, "sheep: cannot create %s on ZooKeeper: %s\n", base, zerror(rc));
		return -EIO;
	}
	wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_fd < 0)
		return -errno;
	sd_info("zookeeper driver: session %016" PRIx64 " with %s (timeout %d ms), base %s", my_cid.nodeid, hosts,
		zoo_recv_timeout(zh), base);
	return 0;
}

/* a restarted sheep's previous process may still hold a member znode (its session has not
 * expired yet): nobody else can have this address and port, so it is deleted */
static void remove_my_stale_members(void)
{
	struct String_vector names = { 0 };
	size_t nr;
	uint64_t *live = live_sessions(&nr, &names, false);
	if (!live)
		return;
	for (int i = 0; i < names.count; i++) {
		char path[1200];
		struct zk_member_data d;
		int len = sizeof(d);
		snprintf(path, sizeof(path), "%s/%s", path_members, names.data[i]);
		if (live[i] == my_cid.nodeid || zoo_get(zh, path, 0, (char *)&d, &len, NULL) != ZOK ||
		    len != (int)sizeof(d) || node_cmp(&d.node, &sys->this_node))
			continue;
		sd_info("zookeeper driver: removing %s, a previous process of this node", names.data[i]);
		zoo_delete(zh, path, -1);
	}
	deallocate_String_vector(&names);
	free(live);
}

static int zk_join(void)
{
	char prefix[1200];
	struct zk_member_data d = { .cid = my_cid, .node = sys->this_node, .applied = -1 };
	snprintf(prefix, sizeof(prefix), "%s/%016" PRIx64 "-", path_members, my_cid.nodeid);
	int rc = zoo_create(zh, prefix, (const char *)&d, sizeof(d), &ZOO_OPEN_ACL_UNSAFE,
			    ZOO_EPHEMERAL_SEQUENTIAL, my_member_path, sizeof(my_member_path));
	if (rc != ZOK) {
		sd_err("zookeeper driver: cannot create my member znode under %s: %s", path_members, zerror(rc));
		return -EIO;
	}
	remove_my_stale_members();
	int64_t join_seq = -1;
	rc = reconcile(RECONCILE_JOIN, &join_seq);
	if (rc != ZOK || join_seq < 0) {
		sd_err("zookeeper driver: cannot queue my join: %s", zerror(rc));
		return -EIO;
	}
	last_read = join_seq;
	sd_info("zookeeper driver: joined at queue entry %" PRId64 " with %zu member%s", join_seq, nr_view,
		nr_view == 1 ? "" : "s");
	set_my_member_data(join_seq);
	atomic_store(&applied, join_seq);
	int ret = register_event(wake_fd, zk_dispatch, NULL, EPOLLIN);
	if (ret < 0)
		return ret;
	/* our own join: the group as of our entry, with us as the one who joined */
	post_confchg(join_seq, NULL, 0, &my_cid, 1);
	pthread_mutex_lock(&lock);
	queue_dirty = members_dirty = true;
	pthread_mutex_unlock(&lock);
	if (pthread_create(&zk_thread, NULL, zk_thread_main, NULL)) {
		sd_err("zookeeper driver: cannot start its thread");
		return -ENOMEM;
	}
	thread_started = true;
	if (!add_timer(WATCHDOG_MS, zk_watchdog, NULL))
		return -ENOMEM;
	return 0;
}

static int zk_leave(void)
{
	if (!zh)
		return 0;
	/* membership lost: the driver thread may be stuck on a silent server, and the process is
	 * about to start afresh; the ensemble drops the old session by itself */
	if (lost_posted)
		return 0;
	if (thread_started) {
		pthread_mutex_lock(&lock);
		stop_thread = true;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
		pthread_join(zk_thread, NULL);
		thread_started = false;
	}
	int rc = ZOK;
	if (connected()) {
		flush_outbox();
		rc = reconcile(RECONCILE_LEAVE, NULL);
	}
	zookeeper_close(zh);
	zh = NULL;
	return rc == ZOK ? 0 : -EIO;
}

static int zk_send(const void *msg, size_t len)
{
	if (len > ZK_MAX_ENTRY - sizeof(struct zk_entry)) {
		sd_err("zookeeper driver: a %zu-byte cluster message is over the %d-byte limit", len, ZK_MAX_ENTRY);
		return -EMSGSIZE;
	}
	struct outbox_item *o = xzalloc(sizeof(*o));
	o->len = sizeof(struct zk_entry) + len;
	o->entry = xzalloc(o->len);
	o->entry->magic = ZK_ENTRY_MAGIC;
	o->entry->type = ZK_EV_MSG;
	o->entry->from = my_cid;
	o->entry->len = (uint32_t)len;
	memcpy(o->entry + 1, msg, len);
	pthread_mutex_lock(&lock);
	o->entry->counter = next_counter++;
	list_add_tail(&o->list, &outbox);
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	return 0;
}

const struct cluster_driver cdrv_zookeeper = {
	.name = "zookeeper",
	.init = zk_init,
	.join = zk_join,
	.leave = zk_leave,
	.send = zk_send,
	.my_id = zk_my_id,
};
