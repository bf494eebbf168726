/* group.c: cluster membership on top of a cluster driver, the epochs it makes, and totally
 * ordered cluster operations. Every state change travels as a totally ordered message, so all
 * members apply the same changes in the same order. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "net.h"
#include "ring.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "work.h"
#include "alloc.h"
#include "cluster.h"
#include "cluster_view.h"
#include "config.h"
#include "group.h"
#include "peer_client.h"
#include "request_types.h"
#include "store/store.h"
#include "vdi_state.h"

/*
 *  - a newcomer multicasts JOIN_REQ; each member adds it at that point in the order (bumping
 *    the epoch when formatted) and keeps a snapshot of the state right after; the master (oldest
 *    member) sends that snapshot in JOIN_ACCEPT. The newcomer buffers every event that follows
 *    its JOIN_REQ, adopts the snapshot, then replays the buffer, and so is exactly in step.
 *  - the first process of an empty group founds the cluster from its own store;
 *  - a member that leaves the group is dropped at once (new epoch, new ring);
 *  - cluster ops are NOTIFY (process_main everywhere) or BLOCK/UNBLOCK: a FIFO of blocks in
 *    total order; the head's owner runs process_work alone, then UNBLOCK runs process_main
 *    everywhere. That serialises VDI creation and deletion cluster-wide.
 * The layers above are reached only through the hooks given to group_init.
 */

enum msg_type {
	MSG_JOIN_REQ = 1,
	MSG_JOIN_ACCEPT,
	MSG_JOIN_REJECT,
	MSG_NOTIFY,
	MSG_BLOCK,
	MSG_UNBLOCK,
};

struct cluster_msg {
	uint32_t type;
	uint32_t body_len;
	uint64_t seq;
	struct cluster_id target;
	uint8_t body[];
};

struct join_info {
	struct sd_node node;
	uint64_t ctime;
	uint32_t epoch;
	uint32_t pad;
};

struct member {
	struct cluster_id cid;
	struct sd_node node;
};

struct block_entry {
	struct cluster_id cid;
	uint64_t seq;
};

struct snapshot_hdr {
	uint32_t status;
	uint32_t epoch;
	uint64_t ctime;
	uint8_t nr_copies;
	uint8_t block_size_shift;
	uint8_t recovery_disabled;
	uint8_t keep_store;    /* the joiner came back during a restart: its objects are current */
	uint8_t copy_policy;
	uint8_t __pad[3];
	uint32_t nr_members;
	uint32_t nr_blocks;
	uint32_t nr_wait;
	/* struct member[nr_members], struct block_entry[nr_blocks], struct sd_node[nr_wait] */
};

#define MAX_BLOCKS 4096

struct buffered_event {
	struct list_head list;
	bool is_confchg;
	struct cluster_id from;
	size_t nr_left;
	struct cluster_id left[8];
	size_t len;
	uint8_t msg[];
};

#define LIST_HEAD(name) struct list_head name = LIST_HEAD_INIT(name)

struct pending_accept {
	struct list_head list;
	struct cluster_id cid;
	size_t len;
	void *snap;
};

static bool joined, join_sent, buffering;
/* while the status is WAIT: the nodes of the last epoch before a whole-cluster stop */
static struct sd_node wait_nodes[SD_MAX_NODES];
static int nr_wait_nodes;
static struct member members[SD_MAX_NODES];
static int nr_members;
static struct block_entry blocks[MAX_BLOCKS];
static int nr_blocks;
/* the queue's bound: MAX_BLOCKS, lowered for tests only by SHEEPFOLD_TEST_CLUSTER_QUEUE (which every
 * node of the cluster must then have alike: each decides alone whether a block fits) */
#define CLUSTER_QUEUE_ENV "SHEEPFOLD_TEST_CLUSTER_QUEUE"
static int max_blocks = MAX_BLOCKS;
static bool block_running;
static uint64_t next_seq = 1;
static LIST_HEAD(waiting_reqs);      /* my cluster requests, waiting for their message */
static LIST_HEAD(buffered_events);
static LIST_HEAD(pending_accepts);
static const struct group_hooks *hooks;   /* the layers above, given at group_init */
static const struct cluster_driver *cdrv;

static void drop_pending_accept(const struct cluster_id *target)
{
	struct list_head *pos, *n;
	list_for_each_safe(pos, n, &pending_accepts) {
		struct pending_accept *pa = list_entry(pos, struct pending_accept, list);
		if (!cluster_id_cmp(&pa->cid, target)) {
			list_del(&pa->list);
			free(pa->snap);
			free(pa);
		}
	}
}

static struct cluster_id my_cid(void) { return cdrv->my_id(); }
static bool is_me(const struct cluster_id *c) { struct cluster_id m = my_cid(); return !cluster_id_cmp(c, &m); }
static bool i_am_master(void) { return joined && nr_members > 0 && is_me(&members[0].cid); }

int group_node_list(struct sd_node *nodes, int max)
{
	int n = MIN(nr_members, max);
	for (int i = 0; i < n; i++)
		nodes[i] = members[i].node;
	return n;
}

int group_local_idx(void)
{
	for (int i = 0; i < nr_members; i++)
		if (is_me(&members[i].cid))
			return i;
	return -1;
}

static int send_msg(uint32_t type, uint64_t seq, const struct cluster_id *target,
		    const void *b1, size_t l1, const void *b2, size_t l2, const void *b3, size_t l3)
{
	size_t len = sizeof(struct cluster_msg) + l1 + l2 + l3;
	struct cluster_msg *m = xzalloc(len);
	m->type = type;
	m->body_len = l1 + l2 + l3;
	m->seq = seq;
	if (target)
		m->target = *target;
	if (l1)
		memcpy(m->body, b1, l1);
	if (l2)
		memcpy(m->body + l1, b2, l2);
	if (l3)
		memcpy(m->body + l1 + l2, b3, l3);
	int ret = cdrv->send(m, len);
	free(m);
	return ret;
}

/* the membership changed: new ring, and a new epoch when the cluster is formatted */
static bool all_wait_nodes_back(void)
{
	for (int i = 0; i < nr_wait_nodes; i++) {
		bool found = false;
		for (int k = 0; k < nr_members && !found; k++)
			found = !node_cmp(&members[k].node, &wait_nodes[i]);
		if (!found)
			return false;
	}
	return true;
}

/* leave WAIT: the cluster runs again (every node of the last epoch is back, or forced) */
static void announce_local_vdis(bool every_inode);

/* Every member runs this at the same point of the message order. While the cluster waited, a
 * joiner could not read the VDI states of the others (they answer only a running cluster), so
 * each member now announces every inode it holds, and all end with the same state table. */
void group_end_wait(void)
{
	if (atomic_load(&sys->status) != SD_STATUS_WAIT)
		return;
	nr_wait_nodes = 0;
	atomic_store(&sys->status, SD_STATUS_OK);
	sd_info("the nodes of the last epoch are back: the cluster runs");
	if (sys->ctime)
		announce_local_vdis(true);
}

static void members_changed(void)
{
	struct sd_node nodes[SD_MAX_NODES];
	int n = group_node_list(nodes, SD_MAX_NODES);
	if (atomic_load(&sys->status) == SD_STATUS_WAIT && all_wait_nodes_back())
		group_end_wait();
	int status = atomic_load(&sys->status);
	if (status == SD_STATUS_OK) {
		uint32_t e = sys_epoch() + 1;
		hooks->epoch_transition(e - 1, nodes, n);
		epoch_log_write(e, nodes, n);
		struct sheep_config cfg = { .ctime = sys->ctime, .nr_copies = sys->nr_copies, .copy_policy = sys->copy_policy,
					    .block_size_shift = sys->block_size_shift, .last_epoch = e };
		config_save(&cfg);
		atomic_store(&sys->epoch, e);
		sd_info("epoch %u: %d node%s", e, n, n == 1 ? "" : "s");
	} else {
		sd_info("membership: %d node%s (cluster not formatted)", n, n == 1 ? "" : "s");
	}
	set_vnode_info(nodes, n);
	if (joined)
		hooks->epoch_started();
}

int group_reweight(const struct sd_node *nodes, int nr)
{
	int changed = 0;
	for (int k = 0; k < nr; k++)
		for (int i = 0; i < nr_members; i++) {
			if (node_cmp(&members[i].node, &nodes[k]) ||
			    members[i].node.nr_vnodes == nodes[k].nr_vnodes)
				continue;
			char buf[64];
			node_to_str(&nodes[k], buf, sizeof(buf));
			sd_info("node %s: %u vnodes instead of %u", buf, nodes[k].nr_vnodes,
				members[i].node.nr_vnodes);
			members[i].node.nr_vnodes = nodes[k].nr_vnodes;
			if (is_me(&members[i].cid))
				sys->this_node.nr_vnodes = nodes[k].nr_vnodes;
			changed++;
		}
	if (changed)
		members_changed();
	return changed;
}

static size_t make_snapshot(void **out)
{
	size_t len = sizeof(struct snapshot_hdr) + nr_members * sizeof(struct member) +
		     nr_blocks * sizeof(struct block_entry) + nr_wait_nodes * sizeof(struct sd_node);
	struct snapshot_hdr *h = xzalloc(len);
	h->status = atomic_load(&sys->status);
	h->epoch = sys_epoch();
	h->ctime = sys->ctime;
	h->nr_copies = sys->nr_copies;
	h->copy_policy = sys->copy_policy;
	h->block_size_shift = sys->block_size_shift;
	h->recovery_disabled = sys->recovery_disabled;
	h->nr_members = nr_members;
	h->nr_blocks = nr_blocks;
	memcpy(h + 1, members, nr_members * sizeof(struct member));
	memcpy((char *)(h + 1) + nr_members * sizeof(struct member), blocks, nr_blocks * sizeof(struct block_entry));
	h->nr_wait = nr_wait_nodes;
	memcpy((char *)(h + 1) + nr_members * sizeof(struct member) + nr_blocks * sizeof(struct block_entry),
	       wait_nodes, nr_wait_nodes * sizeof(struct sd_node));
	*out = h;
	return len;
}

static void maybe_start_block(void);
static void handle_deliver(const struct cluster_id *from, const struct cluster_msg *m);
static void handle_confchg_left(const struct cluster_id *left, size_t nr_left);
static void note_strangers(const struct cluster_id *joined_list, size_t nr_joined);

static void adopt_snapshot(const void *buf, size_t len)
{
	const struct snapshot_hdr *h = buf;
	if (len < sizeof(*h) || h->nr_members > SD_MAX_NODES || h->nr_blocks > MAX_BLOCKS || h->nr_wait > SD_MAX_NODES ||
	    len != sizeof(*h) + h->nr_members * sizeof(struct member) + h->nr_blocks * sizeof(struct block_entry) +
		   h->nr_wait * sizeof(struct sd_node)) {
		sd_emerg("malformed join snapshot (%zu bytes)", len);
		exit(1);
	}
	nr_members = h->nr_members;
	memcpy(members, h + 1, nr_members * sizeof(struct member));
	nr_blocks = h->nr_blocks;
	memcpy(blocks, (const char *)(h + 1) + nr_members * sizeof(struct member), nr_blocks * sizeof(struct block_entry));
	sys->recovery_disabled = h->recovery_disabled;
	nr_wait_nodes = h->nr_wait;
	memcpy(wait_nodes, (const char *)(h + 1) + nr_members * sizeof(struct member) + nr_blocks * sizeof(struct block_entry),
	       nr_wait_nodes * sizeof(struct sd_node));
	if (h->ctime) {
		struct sd_node nodes[SD_MAX_NODES];
		int n = group_node_list(nodes, SD_MAX_NODES);
		bool new_cluster = sys->ctime != h->ctime;
		sys->ctime = h->ctime;
		sys->nr_copies = h->nr_copies;
		sys->copy_policy = h->copy_policy;
		sys->block_size_shift = h->block_size_shift;
		if (new_cluster) {
			/* a store that never belonged to this cluster holds nothing of it */
			store_wipe();
			epoch_log_remove_all();
		} else if (h->status == SD_STATUS_OK && !h->keep_store) {
			/* the cluster ran on without this node: what it holds may be out of date */
			store_set_aside_all(sys_epoch());
		}
		struct sheep_config cfg = { .ctime = sys->ctime, .nr_copies = sys->nr_copies, .copy_policy = sys->copy_policy,
					    .block_size_shift = sys->block_size_shift, .last_epoch = h->epoch };
		config_save(&cfg);
		if (h->status == SD_STATUS_OK)
			epoch_log_write(h->epoch, nodes, n);
	}
	atomic_store(&sys->epoch, h->epoch);
	atomic_store(&sys->status, h->status);
	struct sd_node nodes[SD_MAX_NODES];
	int n = group_node_list(nodes, SD_MAX_NODES);
	set_vnode_info(nodes, n);
}

/* after joining: take the VDI bitmap and states from the master, then announce VDIs whose
 * inodes this store holds but the cluster does not know (after a whole-cluster restart); with
 * every_inode, every inode this store holds, known or not */
static void announce_local_vdis(bool every_inode)
{
	uint64_t *oids;
	size_t nr;
	if (store_list(&oids, &nr))
		return;
	for (size_t i = 0; i < nr; i++) {
		if (!is_vdi_obj(oids[i]) || (!every_inode && vdi_bit_test(oid_to_vid(oids[i]))))
			continue;
		struct sd_inode_header *hdr = xzalloc(sizeof(*hdr));
		if (store_read(oids[i], hdr, SD_INODE_HEADER_SIZE, 0) == SD_RES_SUCCESS && hdr->vdi_id) {
			struct sd_req rq = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_NOTIFY_VDI_ADD };
			rq.vdi.base_vdi_id = hdr->vdi_id;
			rq.vdi.copies = hdr->nr_copies;
			rq.vdi.copy_policy = hdr->copy_policy;
			rq.vdi.block_size_shift = hdr->block_size_shift;
			rq.vdi.snapid = hdr->snap_ctime ? 1 : 0;
			rq.vdi.type = hdr->name[0] ? 0 : 1;    /* deleted */
			group_notify(&rq, NULL);
		}
		free(hdr);
	}
	free(oids);
}

/* the epochs this node missed, so reads and recovery can find where objects were */
static void fetch_epoch_logs_from(const struct sd_node *n)
{
	struct epoch_log *log = xzalloc(sizeof(*log));
	for (uint32_t e = sys_epoch(); e >= 1; e--) {
		if (epoch_log_read(e, log) == 0)
			continue;
		struct sd_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_EPOCH,
				      .data_length = sizeof(*log) };
		struct sd_rsp rsp;
		hdr.obj.tgt_epoch = e;
		if (peer_exec(n, &hdr, log, sizeof(*log), &rsp) != SD_RES_SUCCESS ||
		    rsp.data_length < EPOCH_LOG_HDR_SIZE || log->nr_nodes > SD_MAX_NODES)
			continue;
		epoch_log_write(e, log->nodes, log->nr_nodes);
	}
	free(log);
}

static void finish_join(void)
{
	joined = true;
	sd_info("joined the cluster: %d node%s, epoch %u", nr_members, nr_members == 1 ? "" : "s", sys_epoch());
	if (nr_members > 1 && sys->ctime) {
		for (int i = 0; i < nr_members; i++) {
			if (is_me(&members[i].cid))
				continue;
			if (hooks->fetch_state_from(&members[i].node) == 0) {
				fetch_epoch_logs_from(&members[i].node);
				break;
			}
		}
	}
	if (sys->ctime)
		announce_local_vdis(false);
	hooks->epoch_started();
	hooks->joined();
}

static void become_founder(void)
{
	struct sheep_config cfg;
	members[0].cid = my_cid();
	members[0].node = sys->this_node;
	nr_members = 1;
	if (config_load(&cfg) == 0 && cfg.ctime) {
		struct epoch_log *log = xzalloc(sizeof(*log));
		uint32_t last = MAX(cfg.last_epoch, epoch_log_latest());
		sys->ctime = cfg.ctime;
		sys->nr_copies = cfg.nr_copies;
		sys->copy_policy = cfg.copy_policy;
		sys->block_size_shift = cfg.block_size_shift;
		atomic_store(&sys->epoch, last);
		/* a whole-cluster restart: wait for every node of the last epoch */
		nr_wait_nodes = 0;
		if (epoch_log_read(last, log) == 0) {
			nr_wait_nodes = log->nr_nodes;
			memcpy(wait_nodes, log->nodes, log->nr_nodes * sizeof(struct sd_node));
		}
		free(log);
		atomic_store(&sys->status, SD_STATUS_WAIT);
		if (all_wait_nodes_back())
			group_end_wait();
		else
			sd_info("waiting for the %d nodes of epoch %u to come back", nr_wait_nodes, last);
	}
	members_changed();
	finish_join();
}

static void send_accepts_if_master(void)
{
	if (!i_am_master())
		return;
	struct list_head *pos, *n;
	list_for_each_safe(pos, n, &pending_accepts) {
		struct pending_accept *pa = list_entry(pos, struct pending_accept, list);
		send_msg(MSG_JOIN_ACCEPT, 0, &pa->cid, pa->snap, pa->len, NULL, 0, NULL, 0);
	}
}

static void buffer_event(bool confchg, const struct cluster_id *from, const struct cluster_id *left,
			 size_t nr_left, const void *msg, size_t len)
{
	struct buffered_event *ev = xzalloc(sizeof(*ev) + len);
	ev->is_confchg = confchg;
	if (from)
		ev->from = *from;
	ev->nr_left = MIN(nr_left, ARRAY_SIZE(ev->left));
	if (left)
		memcpy(ev->left, left, ev->nr_left * sizeof(*left));
	ev->len = len;
	if (len)
		memcpy(ev->msg, msg, len);
	list_add_tail(&ev->list, &buffered_events);
}

static void replay_buffered(void)
{
	struct list_head *pos, *n;
	list_for_each_safe(pos, n, &buffered_events) {
		struct buffered_event *ev = list_entry(pos, struct buffered_event, list);
		list_del(&ev->list);
		if (ev->is_confchg)
			handle_confchg_left(ev->left, ev->nr_left);
		else
			handle_deliver(&ev->from, (const struct cluster_msg *)ev->msg);
		free(ev);
	}
}

static void group_confchg(const struct cluster_id *cur, size_t nr_cur, const struct cluster_id *left, size_t nr_left,
		const struct cluster_id *joined_list, size_t nr_joined)
{
	if (!joined && !join_sent) {
		bool me_joined = false, all_new = nr_cur == nr_joined;
		struct cluster_id lowest = cur[0];
		for (size_t i = 0; i < nr_joined; i++)
			if (is_me(&joined_list[i]))
				me_joined = true;
		for (size_t i = 1; i < nr_cur; i++)
			if (cluster_id_cmp(&cur[i], &lowest) < 0)
				lowest = cur[i];
		if (!me_joined)
			return;
		if (all_new && is_me(&lowest)) {
			become_founder();
		} else {
			struct join_info ji = { .node = sys->this_node, .ctime = sys->ctime, .epoch = sys_epoch() };
			join_sent = true;
			send_msg(MSG_JOIN_REQ, 0, NULL, &ji, sizeof(ji), NULL, 0, NULL, 0);
		}
		return;
	}
	if (!joined) {
		/* everyone we asked to join left before answering: found the cluster ourselves */
		if (join_sent && nr_left && nr_cur == 1 && is_me(&cur[0]))
			hooks->restart("the members this node was joining all left before accepting it");
		if (buffering && nr_left)
			buffer_event(true, NULL, left, nr_left, NULL, 0);
		return;
	}
	if (nr_left)
		handle_confchg_left(left, nr_left);
	if (nr_joined)
		note_strangers(joined_list, nr_joined);
}

/* nodes of the current epoch (0 when its log is missing) */
static int epoch_nr_nodes(void)
{
	struct epoch_log *log = xzalloc(sizeof(*log));
	int n = epoch_log_read(sys_epoch(), log) == 0 ? (int)log->nr_nodes : 0;
	free(log);
	return n;
}

/* Majority rule: only a partition holding more than half of the current epoch's nodes goes on.
 * A minority stops serving I/O and keeps its epoch; it rejoins as a newcomer once it sees the
 * other nodes again (check_strangers). Returns true when this node halted. */
static bool halt_if_minority(void)
{
	int prev = epoch_nr_nodes();
	if (!prev || nr_members * 2 > prev)
		return false;
	atomic_store(&sys->status, SD_STATUS_HALT);
	sd_err("lost the majority: %d of the %d nodes of epoch %u remain; I/O stops until the others "
	       "are reachable again", nr_members, prev, sys_epoch());
	return true;
}

/* processes in the group that are not members: the other side of a healed partition, or
 * newcomers that are about to send JOIN_REQ */
static struct cluster_id strangers[SD_MAX_NODES];
static int nr_strangers;
static bool stranger_timer;

static bool is_member(const struct cluster_id *c)
{
	for (int i = 0; i < nr_members; i++)
		if (!cluster_id_cmp(&members[i].cid, c))
			return true;
	return false;
}

static void check_strangers(void *unused)
{
	stranger_timer = false;
	int still = 0;
	for (int i = 0; i < nr_strangers; i++)
		if (!is_member(&strangers[i]))
			strangers[still++] = strangers[i];
	nr_strangers = still;
	if (!still)
		return;
	int status = atomic_load(&sys->status);
	/* a halted node, or one waiting alone while a running cluster is reachable, starts over as
	 * a newcomer: the cluster that went on accepts it and it recovers what changed */
	if (status == SD_STATUS_HALT)
		hooks->restart("the nodes that went on without this one are reachable again");
	if (status == SD_STATUS_WAIT || status == SD_STATUS_WAIT_FOR_FORMAT)
		hooks->restart("processes of another group of nodes are reachable (the network merged)");
}

static void note_strangers(const struct cluster_id *joined_list, size_t nr_joined)
{
	for (size_t i = 0; i < nr_joined && nr_strangers < SD_MAX_NODES; i++)
		if (!is_me(&joined_list[i]) && !is_member(&joined_list[i]))
			strangers[nr_strangers++] = joined_list[i];
	if (nr_strangers && !stranger_timer) {
		stranger_timer = true;
		add_timer(3000, check_strangers, NULL);
	}
}

static void handle_confchg_left(const struct cluster_id *left, size_t nr_left)
{
	bool changed = false;
	for (size_t k = 0; k < nr_left; k++) {
		for (int i = 0; i < nr_members; i++)
			if (!cluster_id_cmp(&members[i].cid, &left[k])) {
				char buf[64];
				sd_info("node %s left", node_to_str(&members[i].node, buf, sizeof(buf)));
				sockfd_cache_drop_node(&members[i].node);
				memmove(&members[i], &members[i + 1], (nr_members - i - 1) * sizeof(members[0]));
				nr_members--;
				changed = true;
				break;
			}
		for (int i = 0; i < nr_blocks; i++)
			if (!cluster_id_cmp(&blocks[i].cid, &left[k])) {
				memmove(&blocks[i], &blocks[i + 1], (nr_blocks - i - 1) * sizeof(blocks[0]));
				nr_blocks--;
				i--;
			}
		drop_pending_accept(&left[k]);
	}
	int status = atomic_load(&sys->status);
	if (changed && status != SD_STATUS_SHUTDOWN && status != SD_STATUS_HALT &&
	    !(status == SD_STATUS_OK && halt_if_minority()))
		members_changed();
	send_accepts_if_master();
	maybe_start_block();
}

static struct request *find_waiting(uint64_t seq)
{
	struct list_head *pos, *n;
	list_for_each_safe(pos, n, &waiting_reqs) {
		struct request *req = list_entry(pos, struct request, list);
		if (req->cluster_seq == seq) {
			list_del(&req->list);
			return req;
		}
	}
	return NULL;
}

static void block_work_done(struct work *w);

static void block_work(struct work *w)
{
	struct request *req = container_of(w, struct request, work);
	req->rp.result = req->op->process_work(req);
}

static void block_work_done(struct work *w)
{
	struct request *req = container_of(w, struct request, work);
	uint32_t wlen = (req->rq.flags & SD_FLAG_CMD_WRITE) ? req->rq.data_length : 0;
	/* the request stays on waiting_reqs until its UNBLOCK comes back */
	list_add_tail(&req->list, &waiting_reqs);
	send_msg(MSG_UNBLOCK, req->cluster_seq, NULL, &req->rq, sizeof(req->rq), &req->rp, sizeof(req->rp),
		 req->data, wlen);
}

static void maybe_start_block(void)
{
	if (block_running || !nr_blocks || !is_me(&blocks[0].cid))
		return;
	struct request *req = find_waiting(blocks[0].seq);
	if (!req) {
		sd_err("no request for my block %" PRIu64, (uint64_t)blocks[0].seq);
		return;
	}
	block_running = true;
	req->work.fn = block_work;
	req->work.done = block_work_done;
	queue_work(sys->block_wq, &req->work);
}

static void handle_join_req(const struct cluster_id *from, const struct cluster_msg *m)
{
	struct join_info ji;
	char buf[64];
	if (m->body_len != sizeof(ji))
		return;
	memcpy(&ji, m->body, sizeof(ji));
	node_to_str(&ji.node, buf, sizeof(buf));
	const char *why = NULL;
	if (sys->ctime && ji.ctime && ji.ctime != sys->ctime)
		why = "its store belongs to another cluster (different format time)";
	for (int i = 0; i < nr_members && !why; i++)
		if (!node_cmp(&members[i].node, &ji.node))
			why = "a node with the same address and port is already a member";
	if (nr_members >= SD_MAX_NODES)
		why = "the cluster is full";
	if (atomic_load(&sys->status) == SD_STATUS_HALT)
		why = "halted: this side lost the majority";
	if (why) {
		sd_warn("refusing %s: %s", buf, why);
		if (i_am_master())
			send_msg(MSG_JOIN_REJECT, 0, from, why, strlen(why) + 1, NULL, 0, NULL, 0);
		return;
	}
	bool during_wait = atomic_load(&sys->status) == SD_STATUS_WAIT;
	members[nr_members].cid = *from;
	members[nr_members].node = ji.node;
	nr_members++;
	sd_info("node %s joins", buf);
	members_changed();
	struct pending_accept *pa = xzalloc(sizeof(*pa));
	pa->cid = *from;
	pa->len = make_snapshot(&pa->snap);
	((struct snapshot_hdr *)pa->snap)->keep_store = during_wait;
	list_add_tail(&pa->list, &pending_accepts);
	if (i_am_master())
		send_msg(MSG_JOIN_ACCEPT, 0, from, pa->snap, pa->len, NULL, 0, NULL, 0);
}

static void complete_waiting(uint64_t seq, int result)
{
	struct request *req = find_waiting(seq);
	if (!req)
		return;
	req->rp.result = result;
	hooks->complete_request(req);
}

/* the op a NOTIFY or UNBLOCK message carries: header, response, then the payload */
static bool unpack_op_msg(const struct cluster_msg *m, struct sd_req *rq, struct sd_rsp *rp, void **data)
{
	if (m->body_len < sizeof(struct sd_req) + sizeof(struct sd_rsp))
		return false;
	memcpy(rq, m->body, sizeof(*rq));
	memcpy(rp, m->body + sizeof(*rq), sizeof(*rp));
	*data = (void *)(m->body + sizeof(*rq) + sizeof(*rp));
	return true;
}

static void handle_notify(const struct cluster_id *from, const struct cluster_msg *m)
{
	struct sd_req rq;
	struct sd_rsp rp;
	void *data;
	if (!unpack_op_msg(m, &rq, &rp, &data))
		return;
	const struct sd_op_template *op = hooks->lookup_op(rq.opcode);
	int ret = op && op->process_main ? op->process_main(&rq, &rp, data) : SD_RES_INVALID_PARMS;
	if (is_me(from))
		complete_waiting(m->seq, ret);
}

static void handle_block(const struct cluster_id *from, const struct cluster_msg *m)
{
	if (nr_blocks < max_blocks) {
		blocks[nr_blocks].cid = *from;
		blocks[nr_blocks].seq = m->seq;
		nr_blocks++;
	} else if (is_me(from)) {
		/* every node drops it alike; its sender hears "try again", never silence */
		sd_warn_rl("cluster operation queue full (%d): answering busy", max_blocks);
		complete_waiting(m->seq, SD_RES_AGAIN);
	}
	maybe_start_block();
}

static void handle_unblock(const struct cluster_id *from, const struct cluster_msg *m)
{
	struct sd_req rq;
	struct sd_rsp rp;
	void *data;
	if (!unpack_op_msg(m, &rq, &rp, &data))
		return;
	if (nr_blocks && !cluster_id_cmp(&blocks[0].cid, from) && blocks[0].seq == m->seq) {
		memmove(&blocks[0], &blocks[1], (nr_blocks - 1) * sizeof(blocks[0]));
		nr_blocks--;
	}
	const struct sd_op_template *op = hooks->lookup_op(rq.opcode);
	int ret = rp.result;
	if (ret == SD_RES_SUCCESS && op && op->process_main)
		ret = op->process_main(&rq, &rp, data);
	if (is_me(from)) {
		block_running = false;
		struct request *req = find_waiting(m->seq);
		if (req) {
			req->rp = rp;
			req->rp.result = ret;
			hooks->complete_request(req);
		}
	}
	maybe_start_block();
}

static void handle_deliver(const struct cluster_id *from, const struct cluster_msg *m)
{
	switch (m->type) {
	case MSG_JOIN_REQ:
		handle_join_req(from, m);
		break;
	case MSG_JOIN_ACCEPT:
		drop_pending_accept(&m->target);
		break;
	case MSG_JOIN_REJECT:
		break;
	case MSG_NOTIFY:
		handle_notify(from, m);
		break;
	case MSG_BLOCK:
		handle_block(from, m);
		break;
	case MSG_UNBLOCK:
		handle_unblock(from, m);
		break;
	}
}

static void group_deliver(const struct cluster_id *from, const void *msg, size_t len)
{
	const struct cluster_msg *m = msg;
	if (len < sizeof(*m) || m->body_len != len - sizeof(*m)) {
		sd_err("dropping a malformed cluster message (%zu bytes)", len);
		return;
	}
	if (!joined) {
		if (!join_sent)
			return;
		if (m->type == MSG_JOIN_ACCEPT && is_me(&m->target)) {
			adopt_snapshot(m->body, m->body_len);
			joined = true;
			replay_buffered();
			finish_join();
			return;
		}
		if (m->type == MSG_JOIN_REJECT && is_me(&m->target) &&
		    m->body_len > 7 && !strncmp((const char *)m->body, "halted:", 7)) {
			sleep(2);
			hooks->restart("the members it reached are halted");
		}
		if (m->type == MSG_JOIN_REJECT && is_me(&m->target)) {
			sd_emerg("the cluster refused this node: %.*s", (int)m->body_len, (const char *)m->body);
			fprintf(stderr, "sheep: the cluster refused this node: %.*s\n", (int)m->body_len, (const char *)m->body);
			exit(1);
		}
		if (m->type == MSG_JOIN_REQ && is_me(from)) {
			buffering = true;
			return;
		}
		if (buffering)
			buffer_event(false, from, NULL, 0, msg, len);
		return;
	}
	handle_deliver(from, m);
}

void cluster_queue_request(struct request *req)
{
	uint32_t wlen = (req->rq.flags & SD_FLAG_CMD_WRITE) ? req->rq.data_length : 0;
	if (req->op->prepare) {
		int r = req->op->prepare(req);
		if (r != SD_RES_SUCCESS) {
			req->rp.result = r;
			hooks->complete_request(req);
			return;
		}
	}
	req->cluster_seq = next_seq++;
	list_add_tail(&req->list, &waiting_reqs);
	int ret;
	if (req->op->process_work)
		ret = send_msg(MSG_BLOCK, req->cluster_seq, NULL, NULL, 0, NULL, 0, NULL, 0);
	else
		ret = send_msg(MSG_NOTIFY, req->cluster_seq, NULL, &req->rq, sizeof(req->rq), &req->rp,
			       sizeof(req->rp), req->data, wlen);
	if (ret < 0) {
		find_waiting(req->cluster_seq);
		req->rp.result = SD_RES_SYSTEM_ERROR;
		hooks->complete_request(req);
	}
}

/* a cluster op sheep sends itself that runs only on the main threads (no reply is awaited) */
void group_notify(const struct sd_req *rq, const void *data)
{
	uint32_t wlen = (rq->flags & SD_FLAG_CMD_WRITE) ? rq->data_length : 0;
	struct sd_rsp rp = { 0 };
	send_msg(MSG_NOTIFY, next_seq++, NULL, rq, sizeof(*rq), &rp, sizeof(rp), data, wlen);
}

/* the driver lost our membership: whatever this node held as a member is void */
static void __attribute__((noreturn)) group_lost(const char *why)
{
	atomic_store(&sys->status, SD_STATUS_HALT);
	hooks->restart(why);
}

static const struct cluster_events group_events = {
	.confchg = group_confchg,
	.deliver = group_deliver,
	.lost = group_lost,
};

static void set_queue_bound(void)
{
	const char *v = getenv(CLUSTER_QUEUE_ENV);
	uint64_t n;
	if (!v)
		return;
	if (parse_u64(v, &n) < 0 || !n || n > MAX_BLOCKS) {
		sd_warn("%s=%s ignored (1 to %d)", CLUSTER_QUEUE_ENV, v, MAX_BLOCKS);
		return;
	}
	max_blocks = (int)n;
	sd_warn("%s: the cluster operation queue holds %d (a test setting)", CLUSTER_QUEUE_ENV, max_blocks);
}

int group_init(const char *spec, const struct group_hooks *h)
{
	hooks = h;
	set_queue_bound();
	char name[64];
	const char *opts = strchr(spec, ':');
	snprintf(name, sizeof(name), "%.*s", opts ? (int)(opts - spec) : (int)strlen(spec), spec);
	cdrv = cluster_driver_find(name);
	if (!cdrv) {
		char names[128];
		cluster_driver_names(names, sizeof(names));
		fprintf(stderr, "sheep: unknown cluster driver '%s' (%s)\n", name, names);
		return -EINVAL;
	}
	int ret = cdrv->init(opts ? opts + 1 : NULL, &group_events);
	if (ret < 0)
		return ret;
	return cdrv->join();
}

void group_leave(void)
{
	if (cdrv)
		cdrv->leave();
}

void group_leave_and_exit(void)
{
	group_leave();
	log_close();
	_exit(0);
}
