/* ops.c: the opcode table. Every opcode sheep answers is one row here: its type (where it runs),
 * the work done on a worker thread and the work done on the main thread. Request handling looks
 * an opcode up here and nowhere else. Each row also says the opcode's class (guest, peer,
 * admin): who may send it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "ec.h"
#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "ring.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "alloc.h"
#include "cluster_view.h"
#include "config.h"
#include "group.h"
#include "node_control.h"
#include "node_disks.h"
#include "node_stat.h"
#include "node_weight.h"
#include "ops.h"
#include "peer.h"
#include "recovery.h"
#include "scrub.h"
#include "request_types.h"
#include "store/store.h"
#include "store_health.h"
#include "vdi.h"
#include "vdi_attr.h"
#include "vdi_copies.h"
#include "vdi_lock.h"
#include "vdi_lookup.h"
#include "vdi_state.h"

int gateway_read(struct request *req);
int gateway_write(struct request *req);
int gateway_create_and_write(struct request *req);
int gateway_remove(struct request *req);
int gateway_discard(struct request *req);
int gateway_flush(struct request *req);

/* ---- VDI ops ---- */

static int main_new_vdi(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct vdi_state st = { .vid = rp->vdi.vdi_id, .nr_copies = rp->vdi.copies,
				.block_size_shift = rp->vdi.block_size_shift,
				.copy_policy = rp->vdi.reserved[0] };
	vdi_bit_set(st.vid);
	vdi_state_set(&st);
	if (rp->vdi.attr_id) {
		/* the VDI that became a snapshot */
		struct vdi_state old;
		if (vdi_state_lookup(rp->vdi.attr_id, &old) == 0) {
			old.snapshot = 1;
			vdi_state_set(&old);
		}
		vdi_lock_move(rp->vdi.attr_id, st.vid);
	}
	rp->vdi.attr_id = 0;
	rp->vdi.reserved[0] = 0;
	return SD_RES_SUCCESS;
}

static int main_del_vdi(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct vdi_state st;
	if (vdi_state_lookup(rp->vdi.vdi_id, &st) == 0) {
		st.deleted = 1;
		vdi_state_set(&st);
	}
	vdi_lock_drop(rp->vdi.vdi_id);
	return SD_RES_SUCCESS;
}

static int main_notify_vdi_add(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	uint32_t vid = rq->vdi.base_vdi_id;
	if (!vid || vid >= SD_NR_VDIS)
		return SD_RES_INVALID_PARMS;
	struct vdi_state st = { .vid = vid, .nr_copies = rq->vdi.copies, .block_size_shift = rq->vdi.block_size_shift,
				.snapshot = rq->vdi.snapid ? 1 : 0, .deleted = rq->vdi.type ? 1 : 0,
				.copy_policy = rq->vdi.copy_policy };
	if (st.copy_policy && !ec_policy_valid(st.copy_policy))
		return SD_RES_INVALID_PARMS;
	vdi_bit_set(vid);
	vdi_state_set(&st);
	return SD_RES_SUCCESS;
}

typedef int (*vdi_lookup_fn)(const char *name, const char *tag, uint32_t snapid, uint32_t *vid,
			    struct sd_inode_header *hdr);

/* GET_VDI_INFO and LOCK_VDI: payload name[256] + tag[256]; snapid in the header */
static int answer_vdi_info(struct request *req, vdi_lookup_fn lookup)
{
	const struct sd_req *rq = &req->rq;
	uint32_t len = (rq->flags & SD_FLAG_CMD_WRITE) ? rq->data_length : 0;
	char name[SD_MAX_VDI_LEN + 1] = "", tag[SD_MAX_VDI_TAG_LEN + 1] = "";
	uint32_t vid;
	if (len < 1 || !req->data)
		return SD_RES_INVALID_PARMS;
	snprintf(name, sizeof(name), "%.*s", (int)MIN(len, SD_MAX_VDI_LEN), (char *)req->data);
	if (len > SD_MAX_VDI_LEN)
		snprintf(tag, sizeof(tag), "%.*s", (int)MIN(len - SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN),
			 (char *)req->data + SD_MAX_VDI_LEN);
	if (!name[0])
		return SD_RES_INVALID_PARMS;
	struct sd_inode_header hdr;
	int ret = lookup(name, tag, rq->vdi.snapid, &vid, &hdr);
	if (ret)
		return ret;
	req->rp.vdi.vdi_id = vid;
	req->rp.vdi.copies = hdr.nr_copies;
	req->rp.vdi.block_size_shift = hdr.block_size_shift;
	req->rp.data_length = 0;
	return SD_RES_SUCCESS;
}

/* GET_VDI_INFO runs outside the cluster block: it waits until earlier changes have settled */
static int local_get_vdi_info(struct request *req)
{
	return answer_vdi_info(req, vdi_lookup_settled);
}

/* LOCK_VDI runs inside the cluster block and sees every earlier change */
static int local_lock_vdi_lookup(struct request *req)
{
	return answer_vdi_info(req, vdi_lookup);
}

/* LOCK_VDI and RELEASE_VDI: the sending sheep owns the lock; its id rides in the request */
#define LOCK_OWNER(rq) ((rq)->vdi.__pad[0])

static int prepare_lock_owner(struct request *req)
{
	LOCK_OWNER(&req->rq) = node_id_hash32(&sys->this_node);
	return SD_RES_SUCCESS;
}

static int main_lock_vdi(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	return vdi_lock_acquire(rp->vdi.vdi_id, LOCK_OWNER(rq), rq->vdi.type);
}

static int main_release_vdi(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	return vdi_lock_release(rq->vdi.base_vdi_id, LOCK_OWNER(rq), rq->flags & SD_FLAG_CMD_FORCE);
}

static int main_get_vdi_locks(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	size_t n = vdi_lock_list(data, rq->data_length / sizeof(struct vdi_lock_info));
	rp->data_length = n * sizeof(struct vdi_lock_info);
	return SD_RES_SUCCESS;
}

static int main_read_vdis(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	if (rq->data_length < SD_NR_VDIS / 8)
		return SD_RES_BUFFER_SMALL;
	vdi_bitmap_copy(data);
	rp->data_length = SD_NR_VDIS / 8;
	return SD_RES_SUCCESS;
}

static int main_get_vdi_copies(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct vdi_state *list;
	size_t nr;
	vdi_state_list(&list, &nr);
	if (nr * sizeof(*list) > rq->data_length) {
		free(list);
		return SD_RES_BUFFER_SMALL;
	}
	memcpy(data, list, nr * sizeof(*list));
	rp->data_length = nr * sizeof(*list);
	free(list);
	return SD_RES_SUCCESS;
}

static int main_cluster_default(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	rp->cluster_default.nr_copies = sys->nr_copies;
	rp->cluster_default.copy_policy = sys->copy_policy;
	rp->cluster_default.block_size_shift = sys->block_size_shift;
	return SD_RES_SUCCESS;
}

/* ---- cluster and node ops ---- */

static int main_get_node_list(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct sd_node nodes[SD_MAX_NODES];
	struct sd_node_rsp *nr = (struct sd_node_rsp *)rp;
	int n = group_node_list(nodes, SD_MAX_NODES);
	if (n * sizeof(struct sd_node) > rq->data_length)
		return SD_RES_BUFFER_SMALL;
	memcpy(data, nodes, n * sizeof(struct sd_node));
	nr->nr_nodes = n;
	nr->local_idx = group_local_idx();
	rp->data_length = n * sizeof(struct sd_node);
	return SD_RES_SUCCESS;
}

static int prepare_make_fs(struct request *req)
{
	struct sd_cluster_req *cr = (struct sd_cluster_req *)&req->rq;
	if (cr->copies < 1 || cr->copies > SD_MAX_COPIES)
		return SD_RES_INVALID_PARMS;
	/* erasure coding: D + P strips, one per zone */
	if (cr->copy_policy && (!ec_policy_valid(cr->copy_policy) ||
				cr->copies != ec_policy_data(cr->copy_policy) + ec_policy_parity(cr->copy_policy)))
		return SD_RES_INVALID_PARMS;
	if (cr->block_size_shift && (cr->block_size_shift < 20 || cr->block_size_shift > 31))
		return SD_RES_INVALID_PARMS;
	if (!cr->block_size_shift)
		cr->block_size_shift = SD_DEFAULT_BLOCK_SIZE_SHIFT;
	/* copies asked for are copies kept: never silently fewer, one per zone */
	struct sd_node nodes[SD_MAX_NODES];
	struct vnode_info *vi = ring_build(nodes, group_node_list(nodes, SD_MAX_NODES));
	int zones = vi ? vi->nr_zones : 0;
	if (vi)
		ring_free(vi);
	if (cr->copies > zones) {
		sd_err("format: %u copies asked for, the cluster has %d zones", cr->copies, zones);
		return SD_RES_TOO_FEW_ZONES;
	}
	uint64_t now = wall_ns();
	cr->ctime = (now / 1000000000ull) << 32 | (now % 1000000000ull);
	return SD_RES_SUCCESS;
}

static int main_make_fs(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	const struct sd_cluster_req *cr = (const struct sd_cluster_req *)rq;
	struct sd_node nodes[SD_MAX_NODES];
	int n = group_node_list(nodes, SD_MAX_NODES);
	store_wipe();
	epoch_log_remove_all();
	vdi_bitmap_clear_all();
	vdi_state_clear_all();
	sys->ctime = cr->ctime;
	sys->nr_copies = cr->copies;
	sys->copy_policy = cr->copy_policy;
	sys->block_size_shift = cr->block_size_shift;
	struct sheep_config cfg = { .ctime = sys->ctime, .nr_copies = sys->nr_copies, .copy_policy = sys->copy_policy,
				    .block_size_shift = sys->block_size_shift, .last_epoch = 1 };
	config_save(&cfg);
	epoch_log_write(1, nodes, n);
	atomic_store(&sys->epoch, 1);
	atomic_store(&sys->status, SD_STATUS_OK);
	set_vnode_info(nodes, n);
	if (cr->copy_policy)
		sd_info("cluster formatted: erasure coded %d:%d, %d nodes", ec_policy_data(cr->copy_policy),
			ec_policy_parity(cr->copy_policy), n);
	else
		sd_info("cluster formatted: %u copies, %d nodes", cr->copies, n);
	return SD_RES_SUCCESS;
}

static void shutdown_now(void *unused)
{
	sd_info("shutting down");
	group_leave_and_exit();
}

/* the data is flushed now; the node leaves once the reply is out */
static void leave_soon(void)
{
	sys->shutting_down = true;
	store_flush();
	add_timer(300, shutdown_now, NULL);
}

static int main_shutdown(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	atomic_store(&sys->status, SD_STATUS_SHUTDOWN);
	if (sys->ctime) {
		struct sheep_config cfg = { .ctime = sys->ctime, .nr_copies = sys->nr_copies, .copy_policy = sys->copy_policy,
					    .block_size_shift = sys->block_size_shift, .last_epoch = sys_epoch(),
					    .shutdown = 1 };
		config_save(&cfg);
	}
	leave_soon();
	return SD_RES_SUCCESS;
}

/* KILL_NODE: this node alone leaves the cluster and exits, as if shut down by hand; the others
 * make a new epoch and recover its objects */
static int main_kill_node(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	sd_info("asked to leave the cluster (collie node kill)");
	leave_soon();
	return SD_RES_SUCCESS;
}

static int main_force_recover(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	if (atomic_load(&sys->status) != SD_STATUS_WAIT)
		return SD_RES_INVALID_PARMS;
	struct sd_node nodes[SD_MAX_NODES];
	int n = group_node_list(nodes, SD_MAX_NODES);
	group_end_wait();
	uint32_t e = sys_epoch() + 1;
	recovery_epoch_transition(e - 1, nodes, n);
	epoch_log_write(e, nodes, n);
	struct sheep_config cfg = { .ctime = sys->ctime, .nr_copies = sys->nr_copies, .copy_policy = sys->copy_policy,
				    .block_size_shift = sys->block_size_shift, .last_epoch = e };
	config_save(&cfg);
	atomic_store(&sys->epoch, e);
	set_vnode_info(nodes, n);
	sd_info("forced to run without the missing nodes: epoch %u", e);
	recovery_start();
	return SD_RES_SUCCESS;
}

static int local_stat_sheep(struct request *req)
{
	struct sd_node_rsp *nr = (struct sd_node_rsp *)&req->rp;
	uint64_t size, used;
	int ret = store_stat(&size, &used);
	if (ret)
		return ret;
	nr->store_size = size;
	nr->store_free = size - used;
	nr->space_warn_pct = store_health_warn_pct();
	return SD_RES_SUCCESS;
}

static int local_stat_cluster(struct request *req)
{
	struct sd_cluster_rsp *cr = (struct sd_cluster_rsp *)&req->rp;
	struct epoch_log *log = xzalloc(sizeof(*log));
	uint32_t used = 0;
	cr->status = atomic_load(&sys->status);
	cr->nr_copies = sys->nr_copies;
	cr->copy_policy = sys->copy_policy;
	cr->block_size_shift = sys->block_size_shift;
	cr->recovery_disabled = sys->recovery_disabled;
	cr->ctime = sys->ctime;
	for (uint32_t e = sys_epoch(); e >= 1; e--) {
		if (epoch_log_read(e, log) < 0)
			continue;
		size_t sz = EPOCH_LOG_HDR_SIZE + log->nr_nodes * sizeof(struct sd_node);
		if (used + sz > req->rq.data_length)
			break;
		memcpy((char *)req->data + used, log, sz);
		used += sz;
		cr->nr_entries++;
	}
	free(log);
	req->rp.data_length = used;
	return SD_RES_SUCCESS;
}

static int local_get_epoch(struct request *req)
{
	struct epoch_log *log = xzalloc(sizeof(*log));
	int ret = SD_RES_NO_TAG;
	if (epoch_log_read(req->rq.obj.tgt_epoch, log) == 0) {
		size_t sz = EPOCH_LOG_HDR_SIZE + log->nr_nodes * sizeof(struct sd_node);
		if (sz > req->rq.data_length) {
			ret = SD_RES_BUFFER_SMALL;
		} else {
			memcpy(req->data, log, sz);
			req->rp.data_length = sz;
			ret = SD_RES_SUCCESS;
		}
	}
	free(log);
	return ret;
}

static int local_get_obj_list(struct request *req)
{
	uint64_t *oids;
	size_t nr;
	int ret = store_list(&oids, &nr);
	if (ret)
		return ret;
	if (nr * sizeof(uint64_t) > req->rq.data_length) {
		free(oids);
		return SD_RES_BUFFER_SMALL;
	}
	memcpy(req->data, oids, nr * sizeof(uint64_t));
	req->rp.data_length = nr * sizeof(uint64_t);
	free(oids);
	return SD_RES_SUCCESS;
}

static int local_exist(struct request *req)
{
	return store_exists(req->rq.obj.oid) ? SD_RES_SUCCESS : SD_RES_NO_OBJ;
}

/* ---- recovery ---- */

static int main_complete_recovery(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	if (rq->data_length != sizeof(struct sd_node))
		return SD_RES_INVALID_PARMS;
	recovery_member_done(data, rq->obj.tgt_epoch);
	return SD_RES_SUCCESS;
}

static int main_enable_recover(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	sys->recovery_disabled = false;
	sd_info("automatic recovery enabled");
	recovery_start();
	return SD_RES_SUCCESS;
}

static int main_disable_recover(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	sys->recovery_disabled = true;
	sd_info("automatic recovery disabled");
	recovery_start();    /* shows the held state */
	return SD_RES_SUCCESS;
}

static int local_stat_recovery(struct request *req)
{
	if (req->rq.data_length < sizeof(struct recovery_info))
		return SD_RES_BUFFER_SMALL;
	recovery_get_info(req->data);
	req->rp.data_length = sizeof(struct recovery_info);
	return SD_RES_SUCCESS;
}

#define HASH_CHUNK (1u << 20)   /* objects are hashed a chunk at a time: up to 2 GiB each */

/* crc32c of an object as this node stores it (NO_OBJ when it has none) */
static int local_get_hash(struct request *req)
{
	uint64_t oid = req->rq.obj.oid, size = obj_size_of(oid);
	uint32_t crc = 0;
	if (!oid_to_vid(oid) || req->rq.data_length < sizeof(struct object_hash))
		return SD_RES_INVALID_PARMS;
	if (!store_exists(oid))
		return SD_RES_NO_OBJ;
	char *buf = xmalloc(MIN(size, HASH_CHUNK));
	int ret = SD_RES_SUCCESS;
	for (uint64_t off = 0; off < size && ret == SD_RES_SUCCESS; off += HASH_CHUNK) {
		uint32_t n = MIN(size - off, HASH_CHUNK);
		ret = store_read(oid, buf, n, off);
		crc = crc32c(crc, buf, n);
	}
	if (ret == SD_RES_SUCCESS) {
		struct object_hash *h = req->data;
		h->crc = crc;
		h->size = size;
		req->rp.data_length = sizeof(*h);
	}
	free(buf);
	return ret;
}

/* Every opcode of the protocol headers has a row and a class. A row without handlers is an opcode
 * this sheep does not answer: get_sd_op() refuses it like an unknown one. */
/* process_work of every PEER row: the row's own op on the local store */
static int peer_op(struct request *req)
{
	if (op_has(req->op, OP_NEEDS_PAYLOAD) && !(req->rq.flags & SD_FLAG_CMD_WRITE))
		return SD_RES_INVALID_PARMS;
	return req->op->process_peer(&req->rq, req->data, &req->rp);
}

static const struct sd_op_template sd_ops[256] = {
	/* client-facing object I/O: the gateway fans out to replicas */
	[SD_OP_CREATE_AND_WRITE_OBJ] = {
		.name = "CREATE_AND_WRITE_OBJ", .type = SD_OP_TYPE_GATEWAY, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .process_work = gateway_create_and_write,
	},
	[SD_OP_READ_OBJ] = {
		.name = "READ_OBJ", .type = SD_OP_TYPE_GATEWAY, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .process_work = gateway_read,
	},
	[SD_OP_WRITE_OBJ] = {
		.name = "WRITE_OBJ", .type = SD_OP_TYPE_GATEWAY, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .process_work = gateway_write,
	},
	[SD_OP_REMOVE_OBJ] = {
		.name = "REMOVE_OBJ", .type = SD_OP_TYPE_GATEWAY, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_work = gateway_remove,
	},
	[SD_OP_DISCARD_OBJ] = {
		.name = "DISCARD_OBJ", .type = SD_OP_TYPE_GATEWAY, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .process_work = gateway_discard,
	},
	[SD_OP_FLUSH_VDI] = {
		.name = "FLUSH_VDI", .type = SD_OP_TYPE_GATEWAY, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .process_work = gateway_flush,
	},
	/* VDIs */
	[SD_OP_NEW_VDI] = {
		.name = "NEW_VDI", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .process_work = vdi_create_work, .process_main = main_new_vdi,
	},
	[SD_OP_DEL_VDI] = {
		.name = "DEL_VDI", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .process_work = vdi_delete_work, .process_main = main_del_vdi,
	},
	[SD_OP_ROLLBACK_VDI] = {
		.name = "ROLLBACK_VDI", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_work = vdi_rollback_work,
	},
	[SD_OP_GET_VDI_ATTR] = {
		.name = "GET_VDI_ATTR", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_work = vdi_attr_work,
	},
	[SD_OP_LOCK_VDI] = {
		.name = "LOCK_VDI", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .prepare = prepare_lock_owner, .process_work = local_lock_vdi_lookup,
		.process_main = main_lock_vdi,
	},
	[SD_OP_GET_VDI_INFO] = {
		.name = "GET_VDI_INFO", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .process_work = local_get_vdi_info,
	},
	[SD_OP_RELEASE_VDI] = {
		.name = "RELEASE_VDI", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .prepare = prepare_lock_owner, .process_main = main_release_vdi,
	},
	[SD_OP_GET_VDI_LOCKS] = {
		.name = "GET_VDI_LOCKS", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_main = main_get_vdi_locks,
	},
	[SD_OP_READ_VDIS] = {
		.name = "READ_VDIS", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT | OP_DURING_SHUTDOWN, .process_main = main_read_vdis,
	},
	[SD_OP_GET_CLUSTER_DEFAULT] = {
		.name = "GET_CLUSTER_DEFAULT", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_GUEST,
		.flags = OP_NEEDS_FORMAT, .process_main = main_cluster_default,
	},
	[SD_OP_NOTIFY_VDI_ADD] = {
		.name = "NOTIFY_VDI_ADD", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_PEER,
		.flags = OP_NEEDS_FORMAT | OP_DURING_SHUTDOWN, .process_main = main_notify_vdi_add,
	},
	[SD_OP_GET_VDI_COPIES] = {
		.name = "GET_VDI_COPIES", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_PEER,
		.flags = OP_DURING_SHUTDOWN, .process_main = main_get_vdi_copies,
	},
	[SD_OP_NOTIFY_VDI_DEL] = { .name = "NOTIFY_VDI_DEL", .class = OP_CLASS_PEER },
	/* cluster and node administration */
	[SD_OP_GET_NODE_LIST] = {
		.name = "GET_NODE_LIST", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_DURING_SHUTDOWN, .process_main = main_get_node_list,
	},
	[SD_OP_MAKE_FS] = {
		.name = "MAKE_FS", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.prepare = prepare_make_fs, .process_main = main_make_fs,
	},
	[SD_OP_FORCE_RECOVER] = {
		.name = "FORCE_RECOVER", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.process_main = main_force_recover,
	},
	[SD_OP_SHUTDOWN] = {
		.name = "SHUTDOWN", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.process_main = main_shutdown,
	},
	[SD_OP_STAT_SHEEP] = {
		.name = "STAT_SHEEP", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_DURING_SHUTDOWN, .process_work = local_stat_sheep,
	},
	[SD_OP_STAT_CLUSTER] = {
		.name = "STAT_CLUSTER", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_DURING_SHUTDOWN, .process_work = local_stat_cluster,
	},
	[SD_OP_GET_EPOCH] = {
		.name = "GET_EPOCH", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_PEER,
		.flags = OP_DURING_SHUTDOWN, .process_work = local_get_epoch,
	},
	[SD_OP_GET_OBJ_LIST] = {
		.name = "GET_OBJ_LIST", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_PEER,
		.flags = OP_DURING_SHUTDOWN, .process_work = local_get_obj_list,
	},
	[SD_OP_EXIST] = {
		.name = "EXIST", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_PEER,
		.flags = OP_DURING_SHUTDOWN, .process_work = local_exist,
	},
	[SD_OP_GET_HASH] = {
		.name = "GET_HASH", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_PEER,
		.flags = OP_NEEDS_FORMAT | OP_DURING_SHUTDOWN, .process_work = local_get_hash,
	},
	[SD_OP_KILL_NODE] = {
		.name = "KILL_NODE", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.process_main = main_kill_node,
	},
	[SD_OP_GET_NODE_WEIGHT] = {
		.name = "GET_NODE_WEIGHT", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.process_main = main_get_node_weight,
	},
	[SD_OP_LOG_LEVEL] = {
		.name = "LOG_LEVEL", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_DURING_SHUTDOWN, .process_main = main_log_level,
	},
	[SD_OP_RECOVERY_THROTTLE] = {
		.name = "RECOVERY_THROTTLE", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.process_main = main_recovery_throttle,
	},
	[SD_OP_NODE_STAT] = {
		.name = "NODE_STAT", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_DURING_SHUTDOWN, .process_main = main_node_stat,
	},
	[SD_OP_SCRUB] = {
		.name = "SCRUB", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_main = main_scrub,
	},
	[SD_OP_REWEIGHT] = {
		.name = "REWEIGHT", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.process_main = main_reweight,
	},
	[SD_OP_MD_INFO] = {
		.name = "MD_INFO", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_DURING_SHUTDOWN, .process_work = local_md_info,
	},
	[SD_OP_MD_PLUG] = {
		.name = "MD_PLUG", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.process_work = local_md_plug,
	},
	[SD_OP_MD_UNPLUG] = {
		.name = "MD_UNPLUG", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.process_work = local_md_unplug,
	},
	[SD_OP_FLUSH_NODES] = { .name = "FLUSH_NODES", .class = OP_CLASS_ADMIN },
	[SD_OP_REPAIR_REPLICA] = {
		.name = "REPAIR_REPLICA", .type = SD_OP_TYPE_PEER, .class = OP_CLASS_PEER,
		.flags = OP_NEEDS_FORMAT, .process_work = peer_op, .process_peer = peer_replace,
	},
	[SD_OP_SETTLE_REPLICA] = {
		.name = "SETTLE_REPLICA", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_work = local_settle_replica,
	},
	[SD_OP_CONVERT_OBJ] = {
		.name = "CONVERT_OBJ", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_work = local_convert_obj,
	},
	[SD_OP_ALTER_VDI_COPY] = {
		.name = "ALTER_VDI_COPY", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_work = vdi_alter_copy_work, .process_main = main_alter_vdi_copy,
	},
	[SD_OP_ALTER_CLUSTER_COPY] = {
		.name = "ALTER_CLUSTER_COPY", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_work = cluster_alter_copy_work,
		.process_main = main_alter_cluster_copy,
	},
	[SD_OP_OIDS_EXIST] = { .name = "OIDS_EXIST", .class = OP_CLASS_PEER },
	/* recovery */
	[SD_OP_COMPLETE_RECOVERY] = {
		.name = "COMPLETE_RECOVERY", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_PEER,
		.flags = OP_NEEDS_FORMAT | OP_DURING_SHUTDOWN, .process_main = main_complete_recovery,
	},
	[SD_OP_ENABLE_RECOVER] = {
		.name = "ENABLE_RECOVER", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_main = main_enable_recover,
	},
	[SD_OP_DISABLE_RECOVER] = {
		.name = "DISABLE_RECOVER", .type = SD_OP_TYPE_CLUSTER, .class = OP_CLASS_ADMIN,
		.flags = OP_NEEDS_FORMAT, .process_main = main_disable_recover,
	},
	[SD_OP_STAT_RECOVERY] = {
		.name = "STAT_RECOVERY", .type = SD_OP_TYPE_LOCAL, .class = OP_CLASS_ADMIN,
		.flags = OP_DURING_SHUTDOWN, .process_work = local_stat_recovery,
	},
	/* peer I/O on the local store: the gateway's share of an object op on one replica */
	[SD_OP_CREATE_AND_WRITE_PEER] = {
		.name = "CREATE_AND_WRITE_PEER", .type = SD_OP_TYPE_PEER, .class = OP_CLASS_PEER,
		.flags = OP_NEEDS_FORMAT, .process_work = peer_op, .process_peer = peer_create_and_write,
	},
	[SD_OP_READ_PEER] = {
		.name = "READ_PEER", .type = SD_OP_TYPE_PEER, .class = OP_CLASS_PEER,
		.flags = OP_NEEDS_FORMAT | OP_DURING_SHUTDOWN, .process_work = peer_op, .process_peer = peer_read,
	},
	[SD_OP_WRITE_PEER] = {
		.name = "WRITE_PEER", .type = SD_OP_TYPE_PEER, .class = OP_CLASS_PEER,
		.flags = OP_NEEDS_FORMAT | OP_NEEDS_PAYLOAD, .process_work = peer_op, .process_peer = peer_write,
	},
	[SD_OP_REMOVE_PEER] = {
		.name = "REMOVE_PEER", .type = SD_OP_TYPE_PEER, .class = OP_CLASS_PEER,
		.flags = OP_NEEDS_FORMAT, .process_work = peer_op, .process_peer = peer_remove,
	},
	[SD_OP_FLUSH_PEER] = {
		.name = "FLUSH_PEER", .type = SD_OP_TYPE_PEER, .class = OP_CLASS_PEER,
		.flags = OP_DURING_SHUTDOWN, .process_work = peer_op, .process_peer = peer_flush,
	},
};

/* the row of an opcode this sheep answers, or NULL */
const struct sd_op_template *get_sd_op(uint8_t opcode)
{
	const struct sd_op_template *op = &sd_ops[opcode];
	if (!op->name || (!op->prepare && !op->process_work && !op->process_main && !op->process_peer))
		return NULL;
	return op;
}

/* the class of any opcode the protocol defines, answered here or not; OP_CLASS_NONE if unknown */
enum sd_op_class sd_op_class(uint8_t opcode)
{
	return sd_ops[opcode].class;
}
