/* gateway.c: client object I/O. The gateway picks an object's replicas on the ring of the current
 * epoch, sends the peer op to all of them at once (doing its own share locally), and answers
 * after every replica has answered. A replica that fails a write the others took is replaced
 * from them before the answer. The first write to an object shared with a parent sends the
 * replicas the parent's oid and the new bytes only; each copies the parent itself (peer.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal_proto.h"
#include "logger.h"
#include "net.h"
#include "ring.h"
#include "sd_client.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "alloc.h"
#include "cluster_view.h"
#include "config.h"
#include "gateway.h"
#include "peer.h"
#include "peer_client.h"
#include "request_types.h"
#include "store/store.h"
#include "vdi_state.h"

/* A peer on another epoch, or a lost connection, makes the gateway wait for the membership to
 * settle and try again on the new ring. Reads go to one replica (the local one first), then the
 * others, then holders of earlier epochs. */

#define GATEWAY_RETRY_SECONDS 60
#define GATEWAY_OLD_EPOCHS    64    /* how far back earlier holders are looked for */

static void (*client_io_hook)(void);   /* recovery's throttle, set at start */

void gateway_set_client_io_hook(void (*hook)(void))
{
	client_io_hook = hook;
}

static void note_client_io(void)
{
	if (client_io_hook)
		client_io_hook();
}

static bool is_local_node(const struct sd_node *n)
{
	return !node_cmp(n, &sys->this_node);
}

static bool retryable(int res)
{
	return res == SD_RES_OLD_NODE_VER || res == SD_RES_NEW_NODE_VER ||
	       res == SD_RES_NETWORK_ERROR || res == SD_RES_WAIT_FOR_JOIN || res == SD_RES_KILLED;
}

/* wait up to a second for the epoch to move past e */
static void wait_epoch_change(uint32_t e)
{
	for (int i = 0; i < 100 && sys_epoch() == e; i++)
		usleep(10000);
}

typedef int (*peer_fn)(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);

/* a replica's own failure to apply a write (its disk, or a rotten block the write would keep) */
static bool replica_failed(int res)
{
	return res == SD_RES_EIO || res == SD_RES_NO_SPACE || res == SD_RES_CHECKSUM;
}

/* Some replicas of one object took a write and others failed it (nodes[0..nr) hold it): each failed one is replaced from those that
 * took it (REPAIR_REPLICA), or dropped, before the write is answered, so no reader ever finds the
 * old version beside the new. A replica replaced or dropped no longer fails the write, except a
 * full one left missing: the client hears NO_SPACE. */
static void replace_failed_replicas(const struct sd_node *const *nodes, int nr, uint64_t oid, uint32_t epoch,
				    int *res)
{
	int took = 0;
	for (int i = 0; i < nr; i++)
		took += res[i] == SD_RES_SUCCESS;
	if (!took)
		return;
	for (int i = 0; i < nr; i++) {
		if (!replica_failed(res[i]))
			continue;
		const struct sd_node *n = nodes[i];
		struct sd_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_REPAIR_REPLICA,
				      .epoch = epoch };
		struct sd_rsp rsp = { 0 };
		char name[128];
		hdr.obj.oid = oid;
		int r = is_local_node(n) ? peer_replace(&hdr, NULL, &rsp) : peer_exec(n, &hdr, NULL, 0, &rsp);
		sd_warn("write %016" PRIx64 ": failed on %s (%s), taken by %d others: the replica is %s", oid,
			node_to_str(n, name, sizeof(name)), sd_strerror(res[i]), took,
			r == SD_RES_SUCCESS ? "replaced" : r == SD_RES_NO_OBJ ? "dropped" :
			retryable(r) ? "gone with its node" : "still there");
		if (r == SD_RES_SUCCESS || (r == SD_RES_NO_OBJ && res[i] != SD_RES_NO_SPACE))
			res[i] = SD_RES_SUCCESS;
		else if (retryable(r))
			res[i] = r;    /* the node is leaving (its disk failed?): the write is done again */
	}
}

#define FANOUT_MAX_SENDS (2 * SD_MAX_COPIES)

/* send one peer op per target to every holder of the target's store object in the current epoch
 * (its replicas, or the one node of a strip), all at once; local_op does this node's share. A
 * target whose object has no place on the ring (a strip past the last zone) is skipped. */
int gateway_fanout(uint8_t peer_opcode, peer_fn local_op, uint16_t flags, const struct gateway_target *t,
		   int nr_targets)
{
	uint64_t deadline = now_ns() + GATEWAY_RETRY_SECONDS * 1000000000ull;
	int ret;
	if (nr_targets < 1 || nr_targets > FANOUT_MAX_SENDS)
		return SD_RES_INVALID_PARMS;
	note_client_io();    /* whoever sent it: client, NBD export, cluster op */
again:
	ret = SD_RES_SUCCESS;
	struct vnode_info *vi = get_vnode_info();
	uint32_t epoch = sys_epoch();
	struct sd_req hdrs[FANOUT_MAX_SENDS];
	const struct sd_node *nodes[FANOUT_MAX_SENDS];
	const void *bufs[FANOUT_MAX_SENDS];
	int fds[FANOUT_MAX_SENDS], res[FANOUT_MAX_SENDS], nr = 0, nr_placed = 0;
	int first[FANOUT_MAX_SENDS + 1];    /* target k's sends are [first[k], first[k + 1]) */
	for (int k = 0; k < nr_targets; k++) {
		int idx[SD_MAX_COPIES];
		int n = obj_pick_nodes(vi, t[k].oid, idx);
		nr_placed += n > 0;
		first[k] = nr;
		for (int i = 0; i < n && nr < FANOUT_MAX_SENDS; i++, nr++) {
			struct sd_req *hdr = &hdrs[nr];
			*hdr = (struct sd_req){ .proto_ver = SD_SHEEP_PROTO_VER, .opcode = peer_opcode, .flags = flags,
						.epoch = epoch, .data_length = t[k].len };
			hdr->obj.oid = t[k].oid;
			hdr->obj.offset = t[k].offset;
			hdr->obj.copies = n;
			hdr->obj.cow_oid = t[k].cow_oid;
			if (t[k].cow_oid)
				hdr->flags |= SD_FLAG_CMD_COW;
			if (t[k].len)
				hdr->flags |= SD_FLAG_CMD_WRITE;
			nodes[nr] = &vi->nodes[idx[i]];
			bufs[nr] = t[k].buf;
		}
	}
	first[nr_targets] = nr;
	if (!nr_placed) {
		put_vnode_info(vi);
		return SD_RES_HALT;
	}
	for (int i = 0; i < nr; i++) {
		fds[i] = -1;
		res[i] = SD_RES_SUCCESS;
		if (is_local_node(nodes[i]))
			continue;
		fds[i] = sockfd_cache_get(nodes[i]);
		if (fds[i] < 0 || send_req(fds[i], &hdrs[i], bufs[i], hdrs[i].data_length) < 0) {
			if (fds[i] >= 0)
				sockfd_cache_del(nodes[i], fds[i]);
			fds[i] = -1;
			res[i] = SD_RES_NETWORK_ERROR;
		}
	}
	for (int i = 0; i < nr; i++)
		if (is_local_node(nodes[i])) {
			struct sd_rsp rsp = { 0 };
			res[i] = local_op(&hdrs[i], (void *)bufs[i], &rsp);
		}
	for (int i = 0; i < nr; i++) {
		if (fds[i] < 0)
			continue;
		struct sd_rsp rsp;
		if (recv_rsp(fds[i], &rsp, NULL, 0) < 0) {
			sockfd_cache_del(nodes[i], fds[i]);
			res[i] = SD_RES_NETWORK_ERROR;
		} else {
			sockfd_cache_put(nodes[i], fds[i]);
			res[i] = rsp.result;
		}
	}
	if (peer_opcode != SD_OP_REMOVE_PEER)
		for (int k = 0; k < nr_targets; k++)
			replace_failed_replicas(nodes + first[k], first[k + 1] - first[k], t[k].oid, epoch,
						res + first[k]);
	put_vnode_info(vi);
	bool retry = false;
	for (int i = 0; i < nr; i++) {
		if (res[i] == SD_RES_SUCCESS)
			continue;
		if (peer_opcode == SD_OP_REMOVE_PEER && res[i] == SD_RES_NO_OBJ)
			continue;
		if (retryable(res[i]))
			retry = true;
		else if (ret == SD_RES_SUCCESS)
			ret = res[i];
	}
	if (retry && ret == SD_RES_SUCCESS) {
		if (now_ns() > deadline || sys->shutting_down)
			return SD_RES_EIO;
		sd_debug("retrying %016" PRIx64 " at epoch %u", t[0].oid, epoch);
		wait_epoch_change(epoch);
		goto again;
	}
	return ret;
}

static int fanout_write(uint8_t peer_opcode, peer_fn local_op, uint64_t oid, uint16_t flags, const void *buf,
			uint32_t len, uint32_t offset)
{
	struct gateway_target t = { .oid = oid, .buf = buf, .len = len, .offset = offset };
	return gateway_fanout(peer_opcode, local_op, flags, &t, 1);
}

/* read from one node: local store directly, else a READ_PEER */
static int read_from(const struct sd_node *n, uint64_t oid, void *buf, uint32_t len, uint32_t offset,
		     uint32_t epoch, uint16_t flags)
{
	struct sd_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_READ_PEER, .flags = flags,
			      .epoch = epoch, .data_length = len };
	hdr.obj.oid = oid;
	hdr.obj.offset = offset;
	if (is_local_node(n)) {
		struct sd_rsp rsp = { 0 };
		return peer_read(&hdr, buf, &rsp);
	}
	struct sd_rsp rsp;
	int ret = peer_exec(n, &hdr, buf, len, &rsp);
	if (ret == SD_RES_SUCCESS && rsp.data_length < len)
		memset((char *)buf + rsp.data_length, 0, len - rsp.data_length);
	return ret;
}

int gateway_read_holders(const struct vnode_info *vi, const struct vnode_info *cur, uint64_t oid, void *buf,
			 uint32_t len, uint32_t offset, uint16_t flags)
{
	int idx[SD_MAX_COPIES];
	int nr = obj_pick_nodes(vi, oid, idx);
	for (int i = 0; i < nr; i++) {
		const struct sd_node *n = &vi->nodes[idx[i]];
		if (ring_find_node(cur, n) < 0)
			continue;    /* gone */
		if (read_from(n, oid, buf, len, offset, sys_epoch(), flags) == SD_RES_SUCCESS)
			return SD_RES_SUCCESS;
	}
	return SD_RES_NO_OBJ;
}

int gateway_read_old_epochs(const struct vnode_info *cur, uint64_t oid, void *buf, uint32_t len, uint32_t offset,
			    uint16_t flags)
{
	struct epoch_log *log = xzalloc(sizeof(*log));
	int ret = SD_RES_NO_OBJ;
	uint32_t e = sys_epoch();
	for (uint32_t old = e ? e - 1 : 0; old >= 1 && e - old <= GATEWAY_OLD_EPOCHS; old--) {
		if (epoch_log_read(old, log) < 0)
			break;
		struct vnode_info *ovi = ring_build(log->nodes, log->nr_nodes);
		if (!ovi)
			break;
		ret = gateway_read_holders(ovi, cur, oid, buf, len, offset, flags);
		ring_free(ovi);
		if (ret == SD_RES_SUCCESS)
			break;
	}
	free(log);
	return ret;
}

/* every replica failed its checksum somewhere in the range: piece it together block by block from
 * whichever replica verifies there (each bad one is being repaired meanwhile) */
static int read_piecewise(const struct vnode_info *vi, const int *idx, int nr, uint64_t oid, char *buf,
			  uint32_t len, uint32_t offset, uint32_t epoch, uint16_t flags)
{
	for (uint32_t done = 0; done < len;) {
		uint32_t piece = MIN(len - done, STORE_BLOCK_SIZE - (offset + done) % STORE_BLOCK_SIZE);
		int ret = SD_RES_CHECKSUM;
		for (int i = 0; i < nr && ret != SD_RES_SUCCESS; i++)
			ret = read_from(&vi->nodes[idx[i]], oid, buf + done, piece, offset + done, epoch, flags);
		if (ret != SD_RES_SUCCESS)
			return ret;
		done += piece;
	}
	return SD_RES_SUCCESS;
}

/* flags: SD_FLAG_CMD_NO_REPAIR or 0 */
static int read_obj(uint64_t oid, void *buf, uint32_t len, uint32_t offset, uint16_t flags)
{
	uint64_t deadline = now_ns() + GATEWAY_RETRY_SECONDS * 1000000000ull;
	note_client_io();
	for (;;) {
		struct vnode_info *vi = get_vnode_info();
		uint32_t epoch = sys_epoch();
		int idx[SD_MAX_COPIES], nr = obj_pick_nodes(vi, oid, idx);
		int ret = SD_RES_NO_OBJ, last_err = SD_RES_SUCCESS, nr_bad = 0;
		bool retry = false;
		if (!nr) {
			put_vnode_info(vi);
			return SD_RES_HALT;
		}
		/* local replica first */
		for (int i = 1; i < nr; i++)
			if (is_local_node(&vi->nodes[idx[i]])) {
				int t = idx[0];
				idx[0] = idx[i];
				idx[i] = t;
			}
		for (int i = 0; i < nr; i++) {
			ret = read_from(&vi->nodes[idx[i]], oid, buf, len, offset, epoch, flags);
			if (ret == SD_RES_SUCCESS)
				break;
			if (retryable(ret))
				retry = true;
			else if (ret != SD_RES_NO_OBJ)
				last_err = ret;
			nr_bad += ret == SD_RES_CHECKSUM;
		}
		if (ret != SD_RES_SUCCESS && nr_bad == nr)
			ret = read_piecewise(vi, idx, nr, oid, buf, len, offset, epoch, flags);
		if (ret != SD_RES_SUCCESS)
			ret = gateway_read_old_epochs(vi, oid, buf, len, offset, 0);
		put_vnode_info(vi);
		if (ret == SD_RES_SUCCESS)
			return ret;
		if (retry && now_ns() < deadline && !sys->shutting_down) {
			wait_epoch_change(epoch);
			continue;
		}
		return last_err != SD_RES_SUCCESS ? last_err : (retry ? SD_RES_EIO : SD_RES_NO_OBJ);
	}
}

/* one attempt at a store object (a replica or a strip): its holders on vi, then the live holders
 * of earlier epochs; never waits for the membership */
int gateway_read_once(const struct vnode_info *vi, uint64_t oid, void *buf, uint32_t len, uint32_t offset,
		      uint16_t flags)
{
	int idx[SD_MAX_COPIES], nr = obj_pick_nodes(vi, oid, idx), ret = SD_RES_NO_OBJ, err = SD_RES_NO_OBJ;
	for (int i = 0; i < nr; i++) {
		ret = read_from(&vi->nodes[idx[i]], oid, buf, len, offset, sys_epoch(), flags);
		if (ret == SD_RES_SUCCESS)
			return ret;
		if (ret != SD_RES_NO_OBJ)
			err = ret;
	}
	ret = gateway_read_old_epochs(vi, oid, buf, len, offset, flags);
	return ret == SD_RES_SUCCESS ? ret : err;
}

/* flags: SD_FLAG_CMD_NO_REPAIR or 0. A data object of an erasure-coded VDI is read from its
 * strips (gateway_ec.c); a strip itself from its holder, else rebuilt from the others. */
static int read_any(uint64_t oid, void *buf, uint32_t len, uint32_t offset, uint16_t flags)
{
	if (is_data_obj(oid) && oid_copy_policy(oid))
		return gateway_ec_read(oid, buf, len, offset, flags);
	if (is_ec_strip(oid))
		return gateway_ec_read_strip(oid, buf, len, offset, flags);
	return read_obj(oid, buf, len, offset, flags);
}

int gateway_read_obj(uint64_t oid, void *buf, uint32_t len, uint32_t offset)
{
	return read_any(oid, buf, len, offset, 0);
}

int gateway_read_parent(uint64_t oid, void *buf, uint32_t len)
{
	struct vnode_info *vi = get_vnode_info();
	int ret = gateway_read_once(vi, oid, buf, len, 0, 0);
	put_vnode_info(vi);
	return ret;
}

int gateway_write_replicas(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool create, bool sync)
{
	return fanout_write(create ? SD_OP_CREATE_AND_WRITE_PEER : SD_OP_WRITE_PEER,
			    create ? peer_create_and_write : peer_write, oid,
			    sync ? 0 : SD_FLAG_CMD_CACHE, buf, len, offset);
}

int gateway_write_obj(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool create, bool sync)
{
	if (is_data_obj(oid) && oid_copy_policy(oid))
		return gateway_ec_write(oid, buf, len, offset, create, sync);
	return gateway_write_replicas(oid, buf, len, offset, create, sync);
}

int gateway_remove_replicas(uint64_t oid)
{
	return fanout_write(SD_OP_REMOVE_PEER, peer_remove, oid, 0, NULL, 0, 0);
}

int gateway_remove_obj(uint64_t oid)
{
	if (is_data_obj(oid) && oid_copy_policy(oid))
		return gateway_ec_remove(oid);
	return fanout_write(SD_OP_REMOVE_PEER, peer_remove, oid, 0, NULL, 0, 0);
}

/* FLUSH_PEER to every node: each syncs its store. A node that cannot be reached fails the flush
 * unless the membership moves on without it within the retry time: then the flush is done again
 * on the nodes of the new epoch (which hold every replica the lost one had). */
static int flush_members(bool *unreachable)
{
	struct vnode_info *vi = get_vnode_info();
	int ret = SD_RES_SUCCESS;
	*unreachable = false;
	for (int i = 0; i < vi->nr_nodes; i++) {
		const struct sd_node *n = &vi->nodes[i];
		int r;
		if (is_local_node(n)) {
			r = store_flush();
		} else {
			struct sd_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_FLUSH_PEER,
					      .epoch = sys_epoch() };
			struct sd_rsp rsp;
			r = peer_exec(n, &hdr, NULL, 0, &rsp);
		}
		if (retryable(r))
			*unreachable = true;
		else if (r != SD_RES_SUCCESS)
			ret = r;
	}
	put_vnode_info(vi);
	return ret;
}

int gateway_flush_all(void)
{
	uint64_t deadline = now_ns() + GATEWAY_RETRY_SECONDS * 1000000000ull;
	for (;;) {
		bool unreachable;
		uint32_t epoch = sys_epoch();
		int ret = flush_members(&unreachable);
		if (ret != SD_RES_SUCCESS || !unreachable)
			return ret;
		if (now_ns() > deadline || sys->shutting_down) {
			sd_err("flush: a member cannot be reached and is still a member: the flush fails");
			return SD_RES_EIO;
		}
		wait_epoch_change(epoch);
	}
}

static bool range_ok(uint64_t oid, uint32_t offset, uint32_t len)
{
	return (uint64_t)offset + len <= obj_size_of(oid);
}

static int check_obj_req(const struct sd_req *rq)
{
	uint64_t oid = rq->obj.oid;
	uint32_t vid = oid_to_vid(oid);
	if (!vid || is_ec_strip(oid))
		return SD_RES_INVALID_PARMS;    /* strips are the gateway's, never a client's */
	if (!range_ok(oid, rq->obj.offset, rq->data_length))
		return SD_RES_INVALID_PARMS;
	if (rq->obj.copies > SD_MAX_COPIES)
		return SD_RES_INVALID_PARMS;
	return SD_RES_SUCCESS;
}

/* ---- the client-facing object ops (process_work of GATEWAY rows) ---- */

int gateway_read(struct request *req)
{
	int ret = check_obj_req(&req->rq);
	if (ret)
		return ret;
	ret = read_any(req->rq.obj.oid, req->data, req->rq.data_length, req->rq.obj.offset,
		       req->rq.flags & SD_FLAG_CMD_NO_REPAIR);
	if (ret == SD_RES_SUCCESS)
		req->rp.data_length = req->rq.data_length;
	return ret;
}

static bool snapshot_vid(uint32_t vid)
{
	struct vdi_state st;
	return vdi_state_lookup(vid, &st) == 0 && st.snapshot;
}

int gateway_write(struct request *req)
{
	const struct sd_req *rq = &req->rq;
	int ret = check_obj_req(rq);
	if (ret)
		return ret;
	if (!(rq->flags & SD_FLAG_CMD_WRITE))
		return SD_RES_INVALID_PARMS;
	if (is_data_obj(rq->obj.oid) && snapshot_vid(oid_to_vid(rq->obj.oid)))
		return SD_RES_READONLY;
	return gateway_write_obj(rq->obj.oid, req->data, rq->data_length, rq->obj.offset, false,
				 !(rq->flags & SD_FLAG_CMD_CACHE));
}

/* copy-on-write the old way: the whole parent object read here, the new data laid over it, the
 * whole object sent to every replica (or strip) */
static int create_copy_whole(uint64_t oid, uint64_t cow, const void *buf, uint32_t len, uint32_t offset,
			     bool sync)
{
	uint64_t size = obj_size_of(oid);
	char *full = xmalloc(size);
	int ret = gateway_read_obj(cow, full, size, 0);
	if (ret == SD_RES_SUCCESS) {
		memcpy(full + offset, buf, len);
		ret = gateway_write_obj(oid, full, size, 0, true, sync);
	}
	free(full);
	return ret;
}

/* the first write to oid, shared with its parent cow: replicated objects get the parent's oid and
 * the new bytes, and each replica copies the parent itself. A replica that finds no copy of the
 * parent anywhere (NO_OBJ) makes it the old way; so do erasure-coded objects (strips of a parent
 * cannot be copied strip by strip: the new bytes change every parity strip). */
static int create_copy(uint64_t oid, uint64_t cow, const void *buf, uint32_t len, uint32_t offset, bool sync)
{
	if (oid_copy_policy(oid) || oid_copy_policy(cow))
		return create_copy_whole(oid, cow, buf, len, offset, sync);
	struct gateway_target t = { .oid = oid, .buf = buf, .len = len, .offset = offset, .cow_oid = cow };
	int ret = gateway_fanout(SD_OP_CREATE_AND_WRITE_PEER, peer_create_and_write, sync ? 0 : SD_FLAG_CMD_CACHE,
				 &t, 1);
	if (ret != SD_RES_NO_OBJ)
		return ret;
	sd_warn("%016" PRIx64 ": a replica could not copy its parent %016" PRIx64 ": the whole object is sent",
		oid, cow);
	return create_copy_whole(oid, cow, buf, len, offset, sync);
}

int gateway_create_and_write(struct request *req)
{
	const struct sd_req *rq = &req->rq;
	uint64_t oid = rq->obj.oid;
	int ret = check_obj_req(rq);
	bool sync = !(rq->flags & SD_FLAG_CMD_CACHE);
	if (ret)
		return ret;
	if (is_data_obj(oid) && snapshot_vid(oid_to_vid(oid)))
		return SD_RES_READONLY;
	uint32_t len = (rq->flags & SD_FLAG_CMD_WRITE) ? rq->data_length : 0;
	if ((rq->flags & SD_FLAG_CMD_COW) && !(rq->obj.offset == 0 && len == obj_size_of(oid))) {
		uint64_t cow = rq->obj.cow_oid;
		if (!cow || cow == oid || !is_data_obj(cow) || obj_size_of(cow) != obj_size_of(oid))
			return SD_RES_INVALID_PARMS;
		return create_copy(oid, cow, req->data, len, rq->obj.offset, sync);
	}
	return gateway_write_obj(oid, req->data, len, rq->obj.offset, true, sync);
}

int gateway_remove(struct request *req)
{
	if (!oid_to_vid(req->rq.obj.oid))
		return SD_RES_INVALID_PARMS;
	return gateway_remove_obj(req->rq.obj.oid);
}

/* DISCARD_OBJ: drop the inode's reference to a data object, and the object if the VDI owns it */
int gateway_discard(struct request *req)
{
	uint64_t oid = req->rq.obj.oid;
	uint32_t vid = oid_to_vid(oid), idx = data_oid_to_idx(oid), owner = 0;
	if (!vid || !is_data_obj(oid) || idx >= SD_INODE_DATA_INDEX)
		return SD_RES_INVALID_PARMS;
	uint32_t off = SD_INODE_HEADER_SIZE + idx * sizeof(uint32_t);
	int ret = gateway_read_obj(vid_to_vdi_oid(vid), &owner, sizeof(owner), off);
	if (ret)
		return ret;
	if (!owner)
		return SD_RES_SUCCESS;
	uint32_t zero = 0;
	ret = gateway_write_obj(vid_to_vdi_oid(vid), &zero, sizeof(zero), off, false, true);
	if (ret)
		return ret;
	if (owner == vid)
		gateway_remove_obj(oid);
	return SD_RES_SUCCESS;
}

int gateway_flush(struct request *req)
{
	return gateway_flush_all();
}
