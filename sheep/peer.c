/* peer.c: the peer ops a gateway sends to each replica, executed on the local store. Writes are
 * refused from a gateway on another epoch, so no write lands on a placement the cluster left.
 * A write to an object this node should hold but does not yet (it moved here in a new epoch)
 * first fetches the object from a holder of an earlier epoch. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sheep_priv.h"

int peer_handle(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);

static int check_epoch(const struct sd_req *hdr)
{
	uint32_t mine = sys_epoch();
	if (hdr->epoch < mine)
		return SD_RES_OLD_NODE_VER;
	if (hdr->epoch > mine) {
		/* the gateway saw a membership change we have not applied yet */
		for (int i = 0; i < 300 && sys_epoch() < hdr->epoch; i++)
			usleep(10000);
		if (sys_epoch() != hdr->epoch)
			return SD_RES_NEW_NODE_VER;
	}
	return SD_RES_SUCCESS;
}

/* Fetch a whole object from any live node that held it in an earlier epoch. */
int recover_object_now(uint64_t oid)
{
	uint64_t size = obj_size_of(oid);
	char *buf = xmalloc(size);
	struct epoch_log *log = xzalloc(sizeof(*log));
	struct vnode_info *cur = get_vnode_info();
	int ret = SD_RES_NO_OBJ, copies = oid_copies(oid);
	uint32_t e = sys_epoch();

	for (uint32_t old = e ? e - 1 : 0; old >= 1 && e - old <= 64 && ret != SD_RES_SUCCESS; old--) {
		if (epoch_log_read(old, log) < 0)
			break;
		struct vnode_info *ovi = ring_build(log->nodes, log->nr_nodes);
		if (!ovi)
			break;
		int idx[SD_MAX_COPIES], nr = ring_pick_nodes(ovi, oid, copies, idx);
		for (int i = 0; i < nr; i++) {
			const struct sd_node *n = &ovi->nodes[idx[i]];
			if (!node_cmp(n, &sys->this_node) || ring_find_node(cur, n) < 0)
				continue;
			struct sd_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_READ_PEER,
					      .flags = SD_FLAG_CMD_RECOVERY, .epoch = e, .data_length = size };
			hdr.obj.oid = oid;
			struct sd_rsp rsp;
			if (peer_exec(n, &hdr, buf, size, &rsp) == SD_RES_SUCCESS) {
				if (rsp.data_length < size)
					memset(buf + rsp.data_length, 0, size - rsp.data_length);
				ret = store_create_and_write(oid, buf, size, 0, size, true);
				if (ret == SD_RES_SUCCESS)
					sd_info("recovered %016" PRIx64 " from epoch %u", oid, old);
				break;
			}
		}
		ring_free(ovi);
	}
	put_vnode_info(cur);
	free(log);
	free(buf);
	return ret;
}

int peer_handle(const struct sd_req *hdr, void *data, struct sd_rsp *rsp)
{
	uint64_t oid = hdr->obj.oid;
	uint32_t len = hdr->data_length;
	bool sync = !(hdr->flags & SD_FLAG_CMD_CACHE);
	int ret;

	if (hdr->opcode != SD_OP_FLUSH_PEER && (uint64_t)hdr->obj.offset + len > obj_size_of(oid))
		return SD_RES_INVALID_PARMS;
	switch (hdr->opcode) {
	case SD_OP_READ_PEER:
		ret = store_read(oid, data, len, hdr->obj.offset);
		if (ret == SD_RES_SUCCESS)
			rsp->data_length = len;
		return ret;
	case SD_OP_CREATE_AND_WRITE_PEER:
		if ((ret = check_epoch(hdr)))
			return ret;
		return store_create_and_write(oid, data, (hdr->flags & SD_FLAG_CMD_WRITE) ? len : 0,
					      hdr->obj.offset, obj_size_of(oid), sync);
	case SD_OP_WRITE_PEER:
		if ((ret = check_epoch(hdr)))
			return ret;
		ret = store_write(oid, data, len, hdr->obj.offset, sync);
		if (ret == SD_RES_NO_OBJ && recover_object_now(oid) == SD_RES_SUCCESS)
			ret = store_write(oid, data, len, hdr->obj.offset, sync);
		return ret;
	case SD_OP_REMOVE_PEER:
		if ((ret = check_epoch(hdr)))
			return ret;
		return store_remove(oid);
	case SD_OP_FLUSH_PEER:
		return store_flush();
	}
	return SD_RES_INVALID_PARMS;
}

int peer_op(struct request *req)
{
	if (req->rq.opcode == SD_OP_WRITE_PEER && !(req->rq.flags & SD_FLAG_CMD_WRITE))
		return SD_RES_INVALID_PARMS;
	return peer_handle(&req->rq, req->data, &req->rp);
}
