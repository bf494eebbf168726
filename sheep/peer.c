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
	/* the gateway saw a membership change we have not applied yet: it waited for it in
	 * epoch_wait.c before it came here, so it is too late now */
	if (hdr->epoch > mine)
		return SD_RES_NEW_NODE_VER;
	return SD_RES_SUCCESS;
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
		store_lock(oid);
		ret = store_create_and_write(oid, data, (hdr->flags & SD_FLAG_CMD_WRITE) ? len : 0,
					     hdr->obj.offset, obj_size_of(oid), sync);
		store_unlock(oid);
		return ret;
	case SD_OP_WRITE_PEER:
		if ((ret = check_epoch(hdr)))
			return ret;
		/* an object that moved here in this epoch and is not here yet is fetched first */
		store_lock(oid);
		ret = store_write(oid, data, len, hdr->obj.offset, sync);
		if (ret == SD_RES_NO_OBJ && recover_object_now(oid) == SD_RES_SUCCESS)
			ret = store_write(oid, data, len, hdr->obj.offset, sync);
		store_unlock(oid);
		return ret;
	case SD_OP_REMOVE_PEER:
		if ((ret = check_epoch(hdr)))
			return ret;
		store_lock(oid);
		ret = store_remove(oid);
		store_unlock(oid);
		return ret;
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
