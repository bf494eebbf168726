/* recovery.c: after every epoch change, bring in the objects this node now holds, while I/O goes
 * on, from the other holders of the current epoch and then the live holders of earlier ones;
 * and remove what it no longer holds once every member has finished the epoch. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sd_client.h"
#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "net.h"
#include "ring.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "work.h"
#include "alloc.h"
#include "cluster_view.h"
#include "config.h"
#include "gateway.h"
#include "group.h"
#include "peer.h"
#include "peer_client.h"
#include "recovery.h"
#include "store/store.h"
#include "vdi.h"
#include "vdi_state.h"

/*
 * Invariants:
 *  - a copy in obj/ of an object this node holds in the current epoch is up to date: it held the
 *    object in the previous epoch too (and so got every write), or it fetched it in this epoch.
 *    Copies of objects that become this node's in a new epoch without having been its in the
 *    previous one are set aside at the transition (recovery_epoch_transition), never served.
 *  - objects this node no longer holds stay in obj/ as sources for the new holders until every
 *    member has announced that it finished the epoch; only then are they removed.
 *  - recovery works from the complete object lists of every member; a member that does not
 *    answer is asked again until it answers or the membership changes. It never calls an epoch
 *    finished on a partial list, and it stops before the disk fills.
 *  - an object is fetched under its store lock, so a client write to it (which takes the same
 *    lock and fetches the object first if it is missing) is never overwritten by recovery.
 * Sources, newest first: the other holders of the current epoch, then the live holders of each
 * earlier epoch.
 */

#define RECOVERY_DISK_RESERVE (64ull << 20)   /* stop when less than this would be left free */
#define RECOVERY_MAX_LIST     (512u << 20)    /* the largest object list accepted from a member */

int recovery_inflight = 4;
uint32_t recovery_pause_ms;

/* While clients do I/O on this node (within CLIENT_IO_WINDOW), recovery fetches one object at a
 * time and pauses CLIENT_IO_PAUSE after each, so client latency stays close to normal; it never
 * waits longer than that per object, so it always progresses. */
#define CLIENT_IO_WINDOW_NS (200ull * 1000000)
#define CLIENT_IO_PAUSE_US  (10 * 1000)
static _Atomic uint64_t last_client_io_ns;

void recovery_note_client_io(void)
{
	atomic_store(&last_client_io_ns, now_ns());
}

static bool clients_busy(void)
{
	return now_ns() - atomic_load(&last_client_io_ns) < CLIENT_IO_WINDOW_NS;
}

static struct work_queue *recovery_wq;
static pthread_mutex_t info_lock = PTHREAD_MUTEX_INITIALIZER;
static struct recovery_info info;             /* under info_lock */
static uint64_t info_start_ns;
static _Atomic uint32_t target_epoch;         /* the epoch the worker should recover */
static bool worker_busy;                      /* main thread: the recovery work is queued */
static _Atomic bool rerun_wanted;             /* go over the epoch once more: objects were lost */
static struct work recovery_work_item;
/* how the worker's last epoch ended */
enum recovery_result { RECOVERY_ABANDONED, RECOVERY_COMPLETE, RECOVERY_NO_SPACE };
static uint32_t worked_epoch;                 /* worker result: the last epoch it worked on */
static enum recovery_result worked_result;
#define RECOVERY_SPACE_RETRY_MS 10000

/* members that announced the end of their recovery (main thread) */
static struct { struct sd_node node; uint32_t epoch; } member_done[SD_MAX_NODES];
static int nr_member_done;
static struct work cleanup_work_item;
static bool cleanup_busy;
static _Atomic uint32_t cleanup_epoch;

static void set_phase(uint8_t phase, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_phase(uint8_t phase, const char *fmt, ...)
{
	pthread_mutex_lock(&info_lock);
	info.phase = phase;
	info.message[0] = 0;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(info.message, sizeof(info.message), fmt, ap);
		va_end(ap);
	}
	if (phase != RECOVERY_LISTING && phase != RECOVERY_RUNNING)
		info.elapsed_ms = (now_ns() - info_start_ns) / 1000000;
	pthread_mutex_unlock(&info_lock);
}

void recovery_get_info(struct recovery_info *out)
{
	pthread_mutex_lock(&info_lock);
	*out = info;
	if (info.phase == RECOVERY_LISTING || info.phase == RECOVERY_RUNNING)
		out->elapsed_ms = (now_ns() - info_start_ns) / 1000000;
	out->inflight = recovery_inflight;
	out->pause_ms = recovery_pause_ms;
	pthread_mutex_unlock(&info_lock);
}

static bool holds(const struct vnode_info *vi, uint64_t oid, const struct sd_node *n)
{
	int idx[SD_MAX_COPIES];
	int nr = obj_pick_nodes(vi, oid, idx);
	for (int i = 0; i < nr; i++)
		if (!node_cmp(&vi->nodes[idx[i]], n))
			return true;
	return false;
}

/* one piece of the object from wherever a copy is: a holder of this epoch, of an earlier one, or
 * rebuilt from the other strips */
static int fetch_piece(void *ctx, uint64_t oid, void *buf, uint32_t len, uint32_t offset)
{
	const struct vnode_info *cur = ctx;
	int ret = gateway_read_holders(cur, cur, oid, buf, len, offset, SD_FLAG_CMD_RECOVERY);
	if (ret != SD_RES_SUCCESS)
		ret = gateway_read_old_epochs(cur, oid, buf, len, offset, SD_FLAG_CMD_RECOVERY);
	if (ret != SD_RES_SUCCESS && is_ec_strip(oid))
		ret = gateway_ec_rebuild_strip(oid, buf, len, offset, SD_FLAG_CMD_RECOVERY);   /* from D others */
	return ret;
}

/* The object is fetched a piece at a time into a new file that appears whole, synced (not left
 * to a client's flush, which would then wait for recovery), or not at all (store_build_from): no
 * buffer scales with the object size, and objects larger than one request recover too. */
int recover_object_now(uint64_t oid)
{
	if (store_exists(oid))
		return SD_RES_SUCCESS;
	struct vnode_info *cur = get_vnode_info();
	int ret = store_build_from(oid, obj_size_of(oid), fetch_piece, cur);
	if (ret == SD_RES_SUCCESS)
		sd_debug("recovered %016" PRIx64 " at epoch %u", oid, sys_epoch());
	put_vnode_info(cur);
	return ret;
}

/* the object list of one member; retried until it answers or the epoch moves on */
static int get_obj_list(const struct sd_node *n, uint32_t epoch, uint64_t **out, size_t *nr)
{
	if (!node_cmp(n, &sys->this_node))
		return store_list(out, nr) == SD_RES_SUCCESS ? 0 : -EIO;
	uint32_t bufsize = 1 << 20;
	for (;;) {
		if (sys_epoch() != epoch || sys->shutting_down)
			return -EAGAIN;
		void *buf = malloc(bufsize);
		if (!buf)
			return -ENOMEM;
		struct sd_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_OBJ_LIST,
				      .epoch = epoch, .data_length = bufsize };
		struct sd_rsp rsp;
		int ret = peer_exec(n, &hdr, buf, bufsize, &rsp);
		if (ret == SD_RES_SUCCESS && rsp.data_length % sizeof(uint64_t) == 0) {
			*out = buf;
			*nr = rsp.data_length / sizeof(uint64_t);
			return 0;
		}
		free(buf);
		if (ret == SD_RES_BUFFER_SMALL && bufsize < RECOVERY_MAX_LIST) {
			bufsize *= 2;
			continue;
		}
		char s[64];
		sd_warn("recovery: no object list from %s (%s); asking again", node_to_str(n, s, sizeof(s)),
			sd_strerror(ret));
		sleep(1);
	}
}

struct fetch_job {
	_Atomic int next_worker_id;
	uint64_t *oids;
	size_t nr;
	_Atomic size_t next;
	uint32_t epoch;
	_Atomic int stop;        /* 1: epoch moved or disabled; 2: disk full */
};

static void *fetch_worker(void *arg)
{
	struct fetch_job *job = arg;
	int id = atomic_fetch_add(&job->next_worker_id, 1);
	for (;;) {
		/* yield to clients: only the first worker goes on, with a pause */
		while (id > 0 && clients_busy() && !atomic_load(&job->stop) && sys_epoch() == job->epoch &&
		       atomic_load(&job->next) < job->nr)
			usleep(CLIENT_IO_PAUSE_US);
		if (id == 0 && clients_busy())
			usleep(CLIENT_IO_PAUSE_US);
		size_t i = atomic_fetch_add(&job->next, 1);
		if (i >= job->nr || atomic_load(&job->stop))
			break;
		if (sys_epoch() != job->epoch || sys->recovery_disabled || sys->shutting_down) {
			atomic_store(&job->stop, 1);
			break;
		}
		uint64_t oid = job->oids[i], size = obj_size_of(oid);
		if (store_free_space() < size + RECOVERY_DISK_RESERVE) {
			atomic_store(&job->stop, 2);
			break;
		}
		store_lock(oid);
		/* an object of a VDI deleted since the lists were taken is not brought back */
		int ret = vdi_obj_is_garbage(oid) ? SD_RES_SUCCESS : recover_object_now(oid);
		store_unlock(oid);
		pthread_mutex_lock(&info_lock);
		if (ret == SD_RES_SUCCESS) {
			info.done++;
			info.bytes += size;
		} else {
			info.failed++;
		}
		pthread_mutex_unlock(&info_lock);
		if (ret != SD_RES_SUCCESS)
			sd_err("recovery: no live source for %016" PRIx64 " (%s)", oid, sd_strerror(ret));
		if (recovery_pause_ms)
			usleep(recovery_pause_ms * 1000);
	}
	return NULL;
}

/* worker thread: recover one epoch; COMPLETE when this node holds all it should */
static enum recovery_result recover_epoch(uint32_t e)
{
	struct vnode_info *vi = get_vnode_info();
	uint64_t *all = NULL;
	size_t nr_all = 0;
	enum recovery_result result = RECOVERY_ABANDONED;

	pthread_mutex_lock(&info_lock);
	memset(&info, 0, sizeof(info));
	info.epoch = e;
	info.phase = RECOVERY_LISTING;
	info_start_ns = now_ns();
	pthread_mutex_unlock(&info_lock);
	if (sys_epoch() != e)
		goto out;

	for (int i = 0; i < vi->nr_nodes; i++) {
		uint64_t *list;
		size_t nr;
		if (get_obj_list(&vi->nodes[i], e, &list, &nr) < 0)
			goto out;
		uint64_t *grown = realloc(all, (nr_all + nr) * sizeof(*all) + 1);
		if (!grown) {
			free(list);
			goto out;
		}
		all = grown;
		memcpy(all + nr_all, list, nr * sizeof(*all));
		nr_all += nr;
		free(list);
	}
	/* a strip stands for every strip of its object (the one a lost node held is listed nowhere):
	 * each is listed as strip 0 and expanded below */
	for (size_t i = 0; i < nr_all; i++)
		if (is_ec_strip(all[i]))
			all[i] = ec_strip_oid(all[i], 0);
	qsort(all, nr_all, sizeof(*all), cmp_oid);
	size_t nr_mine = 0, cap = nr_all + 1;
	uint64_t *mine = malloc(cap * sizeof(*mine));
	if (!mine)
		goto out;
	for (size_t i = 0; i < nr_all; i++) {
		if (i && all[i] == all[i - 1])
			continue;
		int n = is_ec_strip(all[i]) ? oid_copies(all[i]) : 1;
		for (int k = 0; k < n; k++) {
			uint64_t oid = is_ec_strip(all[i]) ? ec_strip_oid(all[i], k) : all[i];
			if (!holds(vi, oid, &sys->this_node) || store_exists(oid))
				continue;
			if (nr_mine == cap) {
				uint64_t *grown = realloc(mine, 2 * cap * sizeof(*mine));
				if (!grown) {
					free(mine);
					goto out;
				}
				mine = grown;
				cap *= 2;
			}
			mine[nr_mine++] = oid;
		}
	}
	free(all);
	all = mine;
	pthread_mutex_lock(&info_lock);
	info.total = nr_mine;
	info.phase = RECOVERY_RUNNING;
	pthread_mutex_unlock(&info_lock);
	if (nr_mine)
		sd_info("recovery of epoch %u: %zu objects to fetch", e, nr_mine);

	struct fetch_job job = { .oids = all, .nr = nr_mine, .epoch = e };
	int nthreads = MAX(1, MIN(recovery_inflight, 64));
	pthread_t th[64];
	int started = 0;
	for (int i = 1; i < nthreads; i++)
		if (pthread_create(&th[started], NULL, fetch_worker, &job) == 0)
			started++;
	fetch_worker(&job);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);

	if (atomic_load(&job.stop) == 2) {
		set_phase(RECOVERY_STOPPED, "stopped: less than %llu MiB would be left free on the store",
			  RECOVERY_DISK_RESERVE >> 20);
		sd_err("recovery of epoch %u stopped: the disk is nearly full; trying again in %d s", e,
		       RECOVERY_SPACE_RETRY_MS / 1000);
		result = RECOVERY_NO_SPACE;
		goto out;
	}
	if (atomic_load(&job.stop) || sys_epoch() != e)
		goto out;
	if (info.failed) {
		set_phase(RECOVERY_INCOMPLETE, "%" PRIu64 " objects had no live source", info.failed);
		goto out;
	}
	set_phase(RECOVERY_DONE, NULL);
	sd_info("recovery of epoch %u done: %" PRIu64 " objects, %" PRIu64 " bytes", e, info.done, info.bytes);
	result = RECOVERY_COMPLETE;
out:
	free(all);
	put_vnode_info(vi);
	return result;
}

static void recovery_work(struct work *w)
{
	for (;;) {
		uint32_t e = atomic_load(&target_epoch);
		worked_epoch = e;
		worked_result = RECOVERY_ABANDONED;
		if (sys->recovery_disabled || sys->shutting_down)
			return;
		atomic_store(&rerun_wanted, false);
		worked_result = recover_epoch(e);
		if (atomic_load(&target_epoch) == e && !atomic_load(&rerun_wanted))
			return;
		/* another membership change arrived: start over */
	}
}

static void retry_after_space(void *data)
{
	uint32_t e = (uint32_t)(uintptr_t)data;
	if (e == sys_epoch() && !worker_busy)
		recovery_start();
}

static void recovery_work_done(struct work *w)
{
	worker_busy = false;
	/* a membership change that came after the worker last looked: recover that epoch now */
	if (atomic_load(&target_epoch) != worked_epoch || worked_epoch != sys_epoch()) {
		if (!sys->recovery_disabled)
			recovery_start();
		return;
	}
	if (worked_result == RECOVERY_NO_SPACE)
		add_timer(RECOVERY_SPACE_RETRY_MS, retry_after_space, (void *)(uintptr_t)worked_epoch);
	if (worked_result == RECOVERY_COMPLETE) {
		struct sd_req rq = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_COMPLETE_RECOVERY,
				     .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(struct sd_node) };
		rq.obj.tgt_epoch = worked_epoch;
		group_notify(&rq, &sys->this_node);
	}
}

void recovery_start(void)
{
	if (atomic_load(&sys->status) != SD_STATUS_OK || !sys->ctime)
		return;
	if (sys->recovery_disabled) {
		pthread_mutex_lock(&info_lock);
		info.epoch = sys_epoch();
		pthread_mutex_unlock(&info_lock);
		set_phase(RECOVERY_DISABLED, "held by 'collie cluster recover disable'");
		return;
	}
	atomic_store(&target_epoch, sys_epoch());
	if (worker_busy)
		return;        /* the running worker sees the new target and starts over */
	worker_busy = true;
	recovery_work_item.fn = recovery_work;
	recovery_work_item.done = recovery_work_done;
	queue_work(recovery_wq, &recovery_work_item);
}

void recovery_rerun(void)
{
	atomic_store(&rerun_wanted, true);
	recovery_start();
}

void recovery_epoch_transition(uint32_t old_epoch, const struct sd_node *nodes, int nr)
{
	struct epoch_log *log = xzalloc(sizeof(*log));
	struct vnode_info *old = NULL, *new = NULL;
	uint64_t *oids = NULL;
	size_t nr_oids = 0, nr_aside = 0;

	if (!old_epoch || epoch_log_read(old_epoch, log) < 0 || !log->nr_nodes)
		goto out;
	old = ring_build(log->nodes, log->nr_nodes);
	new = ring_build(nodes, nr);
	if (!old || !new || store_list(&oids, &nr_oids))
		goto out;
	for (size_t i = 0; i < nr_oids; i++) {
		uint64_t oid = oids[i];
		if (!holds(new, oid, &sys->this_node) || holds(old, oid, &sys->this_node))
			continue;
		store_lock(oid);
		if (store_set_aside(oid, old_epoch + 1) == SD_RES_SUCCESS)
			nr_aside++;
		store_unlock(oid);
	}
	if (nr_aside)
		sd_info("epoch %u: set aside %zu objects that come back to this node and may be out of date",
			old_epoch + 1, nr_aside);
out:
	free(oids);
	if (old)
		ring_free(old);
	if (new)
		ring_free(new);
	free(log);
}

/* worker: every member finished the epoch; drop what this node no longer holds */
static void cleanup_work(struct work *w)
{
	uint32_t e = atomic_load(&cleanup_epoch);
	struct vnode_info *vi = get_vnode_info();
	uint64_t *oids;
	size_t nr, removed = 0;
	if (store_list(&oids, &nr) == SD_RES_SUCCESS) {
		for (size_t i = 0; i < nr && sys_epoch() == e; i++) {
			if (holds(vi, oids[i], &sys->this_node))
				continue;
			store_lock(oids[i]);
			if (sys_epoch() == e && store_remove(oids[i]) == SD_RES_SUCCESS)
				removed++;
			store_unlock(oids[i]);
		}
		free(oids);
	}
	if (sys_epoch() == e)
		store_purge_stale();
	put_vnode_info(vi);
	if (removed)
		sd_info("epoch %u recovered everywhere: removed %zu objects this node no longer holds", e, removed);
}

static void cleanup_work_done(struct work *w)
{
	cleanup_busy = false;
}

void recovery_member_done(const struct sd_node *n, uint32_t e)
{
	int i;
	for (i = 0; i < nr_member_done; i++)
		if (!node_cmp(&member_done[i].node, n))
			break;
	if (i == nr_member_done) {
		if (nr_member_done == SD_MAX_NODES)
			return;
		member_done[nr_member_done++].node = *n;
	}
	member_done[i].epoch = e;
	if (e != sys_epoch())
		return;
	struct sd_node nodes[SD_MAX_NODES];
	int nr = group_node_list(nodes, SD_MAX_NODES);
	for (int k = 0; k < nr; k++) {
		bool found = false;
		for (int j = 0; j < nr_member_done && !found; j++)
			found = !node_cmp(&member_done[j].node, &nodes[k]) && member_done[j].epoch == e;
		if (!found)
			return;
	}
	pthread_mutex_lock(&info_lock);
	if (info.epoch == e)
		info.cluster_done = 1;
	pthread_mutex_unlock(&info_lock);
	sd_info("epoch %u: every member has recovered", e);
	if (cleanup_busy)
		return;
	cleanup_busy = true;
	atomic_store(&cleanup_epoch, e);
	cleanup_work_item.fn = cleanup_work;
	cleanup_work_item.done = cleanup_work_done;
	queue_work(recovery_wq, &cleanup_work_item);
}

int recovery_init(void)
{
	recovery_wq = create_work_queue("recovery", 1);
	if (!recovery_wq)
		return -ENOMEM;
	/* the layers below recovery reach it through these */
	peer_set_object_fetcher(recover_object_now);
	gateway_set_client_io_hook(recovery_note_client_io);
	return 0;
}
