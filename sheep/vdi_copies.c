/* vdi_copies.c: alter-copy: a VDI's or the cluster's number of copies changes, and each node
 * fetches or sets aside its replicas to match (SETTLE_REPLICA, one object at a time, from collie);
 * or a VDI changes between replicas and erasure-coded strips, each data object laid out anew
 * (CONVERT_OBJ) before the inode switches and the old layout goes. */
#include <inttypes.h>
#include <stdlib.h>

#include "ec.h"
#include "internal_proto.h"
#include "logger.h"
#include "sd_client.h"
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
#include "vdi_lock.h"
#include "vdi_state.h"

static int copies_valid(uint32_t copies)
{
	if (copies < 1 || copies > SD_MAX_COPIES)
		return SD_RES_INVALID_PARMS;
	return (int)copies > cluster_zones() ? SD_RES_TOO_FEW_ZONES : SD_RES_SUCCESS;
}

/* copies replicas, or a D:P policy with copies = D + P strips, one per zone */
static int redundancy_valid(uint8_t copies, uint8_t policy)
{
	if (policy && (!ec_policy_valid(policy) || copies != ec_policy_data(policy) + ec_policy_parity(policy)))
		return SD_RES_INVALID_PARMS;
	return copies_valid(copies);
}

/* ALTER_VDI_COPY: one step of an alter-copy (enum sd_alter_step in rq.vdi.type). Changing
 * between replicas and strips: BEGIN names the new layout, which collie then writes object by
 * object (CONVERT_OBJ) while the VDI reads under its old one; SET switches the inode to it (the
 * old layout becomes the one in transit), collie removes the old objects, END forgets it. Only a
 * VDI no guest holds is converted. The answer is the state before the step. */
int vdi_alter_copy_work(struct request *req)
{
	const struct sd_req *rq = &req->rq;
	struct sd_alter_rsp *ar = (struct sd_alter_rsp *)&req->rp;
	uint32_t vid = rq->vdi.base_vdi_id, step = rq->vdi.type;
	uint8_t copies = rq->vdi.copies, policy = rq->vdi.copy_policy;
	struct vdi_state st;
	if (!vid || vid >= SD_NR_VDIS || vdi_state_lookup(vid, &st) || st.deleted)
		return SD_RES_NO_VDI;
	ar->copies = st.nr_copies;
	ar->copy_policy = st.copy_policy;
	ar->next_copies = st.next_copies;
	ar->next_policy = st.next_policy;
	if (step == SD_ALTER_QUERY || step == SD_ALTER_END)
		return SD_RES_SUCCESS;
	if (step != SD_ALTER_SET && step != SD_ALTER_BEGIN)
		return SD_RES_INVALID_PARMS;
	int ret = redundancy_valid(copies, policy);
	if (ret)
		return ret;
	bool kind_changes = !st.copy_policy != !policy;
	if (step == SD_ALTER_BEGIN && !kind_changes)
		return SD_RES_INVALID_PARMS;    /* nothing to lay out anew */
	if (kind_changes && vdi_lock_held(vid))
		return SD_RES_VDI_LOCKED;
	if (step == SD_ALTER_BEGIN)
		return SD_RES_SUCCESS;
	if (kind_changes && (st.next_copies != copies || st.next_policy != policy))
		return SD_RES_INVALID_PARMS;    /* the new layout was never begun */
	if (!kind_changes && st.copy_policy && st.copy_policy != policy)
		return SD_RES_INVALID_PARMS;    /* D:P to D:P goes through replicas (collie) */
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
	h->nr_copies = copies;
	h->copy_policy = policy;
	ret = gateway_write_obj(vid_to_vdi_oid(vid), h, SD_INODE_HEADER_SIZE, 0, false, true);
	if (ret == SD_RES_SUCCESS && policy)
		sd_info("VDI %" PRIx32 " (%s) is now erasure coded %d:%d", vid, h->name, ec_policy_data(policy),
			ec_policy_parity(policy));
	else if (ret == SD_RES_SUCCESS)
		sd_info("VDI %" PRIx32 " (%s) now keeps %u copies (was %u)", vid, h->name, copies, req->rp.vdi.copies);
out:
	free(h);
	return ret;
}

int main_alter_vdi_copy(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct vdi_state st;
	uint8_t copies = rq->vdi.copies, policy = rq->vdi.copy_policy;
	if (vdi_state_lookup(rq->vdi.base_vdi_id, &st))
		return SD_RES_NO_VDI;
	switch (rq->vdi.type) {
	case SD_ALTER_SET:
		if (!st.copy_policy != !policy) {
			/* the old layout is now the one to remove */
			st.next_copies = st.nr_copies;
			st.next_policy = st.copy_policy;
		}
		st.nr_copies = copies;
		st.copy_policy = policy;
		break;
	case SD_ALTER_BEGIN:
		st.next_copies = copies;
		st.next_policy = policy;
		break;
	case SD_ALTER_END:
		st.next_copies = st.next_policy = 0;
		break;
	default:
		return SD_RES_SUCCESS;
	}
	vdi_state_set(&st);
	return SD_RES_SUCCESS;
}

int cluster_alter_copy_work(struct request *req)
{
	struct sd_alter_rsp *ar = (struct sd_alter_rsp *)&req->rp;
	req->rp.vdi.copies = sys->nr_copies;    /* the old default, for the caller */
	ar->copies = sys->nr_copies;
	ar->copy_policy = sys->copy_policy;
	return redundancy_valid(req->rq.vdi.copies, req->rq.vdi.copy_policy);
}

int main_alter_cluster_copy(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	int ret = redundancy_valid(rq->vdi.copies, rq->vdi.copy_policy);
	if (ret)
		return ret;
	sys->nr_copies = rq->vdi.copies;
	sys->copy_policy = rq->vdi.copy_policy;
	struct sheep_config cfg = { .ctime = sys->ctime, .nr_copies = sys->nr_copies, .copy_policy = sys->copy_policy,
				    .block_size_shift = sys->block_size_shift, .last_epoch = sys_epoch() };
	config_save(&cfg);
	if (sys->copy_policy)
		sd_info("the cluster's default is now erasure coded %d:%d", ec_policy_data(sys->copy_policy),
			ec_policy_parity(sys->copy_policy));
	else
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

/* CONVERT_OBJ: the data object rq.obj.oid of a VDI being converted gets the layout in transit
 * (rq.obj.copies and copy_policy, which must be this node's view too), read whole under the
 * current one; or loses the layout in transit. A data object that does not exist is skipped. */
int local_convert_obj(struct request *req)
{
	uint64_t oid = req->rq.obj.oid;
	struct vdi_state st;
	if (!is_data_obj(oid) || is_ec_strip(oid) || vdi_state_lookup(oid_to_vid(oid), &st))
		return SD_RES_INVALID_PARMS;
	if (!st.next_copies || st.next_copies != req->rq.obj.copies || st.next_policy != req->rq.obj.copy_policy)
		return SD_RES_AGAIN;    /* this node has not applied the step yet */
	if (req->rq.obj.ec_index == SD_CONVERT_READY)
		return SD_RES_SUCCESS;
	if (req->rq.obj.ec_index == SD_CONVERT_REMOVE)
		return st.next_policy ? gateway_ec_remove_as(oid, st.next_policy) : gateway_remove_replicas(oid);
	if (req->rq.obj.ec_index != SD_CONVERT_WRITE)
		return SD_RES_INVALID_PARMS;
	uint64_t size = obj_size_of(oid);
	char *buf = xmalloc(size);
	int ret = gateway_read_obj(oid, buf, size, 0);
	if (ret == SD_RES_SUCCESS)
		ret = st.next_policy ? gateway_ec_create_as(oid, st.next_policy, buf, true)
				     : gateway_write_replicas(oid, buf, size, 0, true, true);
	else if (ret == SD_RES_NO_OBJ)
		ret = SD_RES_SUCCESS;    /* never written: nothing to lay out */
	if (ret)
		sd_err("alter-copy: cannot lay out %016" PRIx64 " anew: %s", oid, sd_strerror(ret));
	free(buf);
	return ret;
}
