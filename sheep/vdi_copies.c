/* vdi_copies.c: alter-copy: a VDI's or the cluster's number of copies changes, and each node
 * fetches or sets aside its replicas to match (SETTLE_REPLICA, one object at a time, from collie). */
#include <inttypes.h>
#include <stdlib.h>

#include "internal_proto.h"
#include "logger.h"
#include "sheepdog_proto.h"
#include "alloc.h"
#include "ring.h"
#include "cluster_view.h"
#include "config.h"
#include "gateway.h"
#include "recovery.h"
#include "store/store.h"
#include "vdi.h"
#include "vdi_copies.h"
#include "vdi_state.h"

static int copies_valid(uint32_t copies)
{
	if (copies < 1 || copies > SD_MAX_COPIES)
		return SD_RES_INVALID_PARMS;
	return (int)copies > cluster_zones() ? SD_RES_TOO_FEW_ZONES : SD_RES_SUCCESS;
}

int vdi_alter_copy_work(struct request *req)
{
	uint32_t vid = req->rq.vdi.base_vdi_id;
	struct vdi_state st;
	int ret = copies_valid(req->rq.vdi.copies);
	if (ret)
		return ret;
	if (!vid || vid >= SD_NR_VDIS || vdi_state_lookup(vid, &st) || st.deleted)
		return SD_RES_NO_VDI;
	if (st.copy_policy)
		return SD_RES_INVALID_PARMS;    /* erasure coded: its strips are not replicas */
	struct sd_inode_header *h = xmalloc(sizeof(*h));
	ret = gateway_read_obj(vid_to_vdi_oid(vid), h, SD_INODE_HEADER_SIZE, 0);
	if (ret) {
		ret = SD_RES_VDI_READ;
		goto out;
	}
	if (!h->name[0]) {
		ret = SD_RES_NO_VDI;    /* a tombstone */
		goto out;
	}
	req->rp.vdi.copies = h->nr_copies;    /* the old count, for the caller */
	h->nr_copies = req->rq.vdi.copies;
	ret = gateway_write_obj(vid_to_vdi_oid(vid), h, SD_INODE_HEADER_SIZE, 0, false, true);
	if (ret == SD_RES_SUCCESS)
		sd_info("VDI %" PRIx32 " (%s) now keeps %u copies (was %u)", vid, h->name, req->rq.vdi.copies,
			req->rp.vdi.copies);
out:
	free(h);
	return ret;
}

int main_alter_vdi_copy(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct vdi_state st;
	if (vdi_state_lookup(rq->vdi.base_vdi_id, &st))
		return SD_RES_NO_VDI;
	st.nr_copies = rq->vdi.copies;
	vdi_state_set(&st);
	return SD_RES_SUCCESS;
}

int cluster_alter_copy_work(struct request *req)
{
	req->rp.vdi.copies = sys->nr_copies;    /* the old default, for the caller */
	if (sys->copy_policy)
		return SD_RES_INVALID_PARMS;    /* the default is erasure coded */
	return copies_valid(req->rq.vdi.copies);
}

int main_alter_cluster_copy(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	int ret = copies_valid(rq->vdi.copies);
	if (ret)
		return ret;
	sys->nr_copies = rq->vdi.copies;
	struct sheep_config cfg = { .ctime = sys->ctime, .nr_copies = sys->nr_copies, .copy_policy = sys->copy_policy,
				    .block_size_shift = sys->block_size_shift, .last_epoch = sys_epoch() };
	config_save(&cfg);
	sd_info("the cluster's default is now %u copies", sys->nr_copies);
	return SD_RES_SUCCESS;
}

/* is this node one of the object's replica holders on the current ring? */
static bool holds_replica(const struct vnode_info *vi, uint64_t oid, int copies)
{
	int idx[SD_MAX_COPIES], nr = ring_pick_nodes(vi, oid, copies, idx);
	for (int i = 0; i < nr; i++)
		if (!node_cmp(&vi->nodes[idx[i]], &sys->this_node))
			return true;
	return false;
}

int local_settle_replica(struct request *req)
{
	uint64_t oid = req->rq.obj.oid;
	int copies = oid_copies(oid), ret = SD_RES_SUCCESS;
	if (req->rq.epoch != sys_epoch())
		return req->rq.epoch < sys_epoch() ? SD_RES_OLD_NODE_VER : SD_RES_NEW_NODE_VER;
	if (copies != req->rq.obj.copies)
		return SD_RES_AGAIN;    /* this node has not applied the change yet */
	struct vnode_info *vi = get_vnode_info();
	if (!vi)
		return SD_RES_HALT;
	bool mine = holds_replica(vi, oid, copies);
	put_vnode_info(vi);
	store_lock(oid);
	if (mine)
		ret = recover_object_now(oid);    /* nothing to do when it is here */
	else if (store_exists(oid))
		ret = store_set_aside(oid, sys_epoch());
	store_unlock(oid);
	if (ret)
		sd_warn("cannot %s the replica of %016" PRIx64 ": %x", mine ? "fetch" : "set aside", oid, ret);
	return ret;
}
