/* vdi.c: the VDI service. Create, snapshot, clone, rollback and delete run on one node at a time
 * (the cluster block), so two creates of one name give one VDI and one VDI_EXIST. Deleted VDIs
 * leave a nameless inode header (a tombstone) so probe runs stay intact; their objects are
 * collected once nothing references them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal_proto.h"
#include "logger.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "ec.h"
#include "alloc.h"
#include "ring.h"
#include "cluster_view.h"
#include "gateway.h"
#include "peer_client.h"
#include "request_types.h"
#include "vdi.h"
#include "vdi_attr.h"
#include "vdi_lock.h"
#include "vdi_lookup.h"
#include "vdi_state.h"


/* The inode of vid with its first *nr index entries (the rest zero). The caller frees *out. */
int vdi_read_inode(uint32_t vid, struct sd_inode **out, uint32_t *nr)
{
	struct sd_inode *inode = xzalloc(SD_INODE_SIZE);
	uint64_t oid = vid_to_vdi_oid(vid);
	int ret = gateway_read_obj(oid, inode, SD_INODE_HEADER_SIZE, 0);
	if (ret)
		goto out_free;
	*nr = vdi_nr_objs((const struct sd_inode_header *)inode);
	if (*nr) {
		ret = gateway_read_obj(oid, inode->data_vdi_id, *nr * sizeof(uint32_t), SD_INODE_HEADER_SIZE);
		if (ret)
			goto out_free;
	}
	*out = inode;
	return SD_RES_SUCCESS;
out_free:
	free(inode);
	return ret;
}

int cluster_zones(void)
{
	struct vnode_info *vi = get_vnode_info();
	int zones = vi ? vi->nr_zones : 0;
	if (vi)
		put_vnode_info(vi);
	return zones;
}

/* Header and the first nr index entries in one write; create replaces the whole object, so
 * everything past them reads as zero (and takes no space). */
static int vdi_write_inode(const struct sd_inode *inode, uint32_t nr, bool create)
{
	return gateway_write_obj(vid_to_vdi_oid(inode->vdi_id), inode,
				 SD_INODE_HEADER_SIZE + nr * sizeof(uint32_t), 0, create, true);
}

static uint64_t sd_now_ctime(void)
{
	uint64_t now = wall_ns();
	return (now / 1000000000ull) << 32 | (now % 1000000000ull);
}

/*
 * NEW_VDI, on the originating node while it holds the cluster block. Three cases:
 *  - create: no base, snapid 0: a fresh inode at the first free id of the name's run;
 *  - snapshot: snapid != 0: the working VDI W is frozen (snap_ctime, optional tag) and keeps its
 *    id and objects; a new working inode with the same name takes the next free id, a copy of
 *    W's index (so it shares every object until it writes: copy-on-write), W as parent, and
 *    copies of W's attributes;
 *  - clone: base = a snapshot, a new name: a working inode sharing the snapshot's objects.
 * A new working VDI's snap_id is one more than any of the name's inodes, so snapshot ids never
 * repeat under one name.
 */
int vdi_create_work(struct request *req)
{
	const struct sd_req *rq = &req->rq;
	char name[SD_MAX_VDI_LEN], tag[SD_MAX_VDI_TAG_LEN];
	struct sd_inode *inode = NULL, *from_inode = NULL;
	uint32_t base = rq->vdi.base_vdi_id, from = 0, nr = 0, vid;
	bool snapshot = rq->vdi.snapid != 0;
	struct vdi_probe p;
	uint64_t old_snap_ctime = 0;
	char old_tag[SD_MAX_VDI_TAG_LEN];
	int ret = vdi_parse_name_tag(req, name, tag);

	if (ret)
		return ret;
	uint8_t shift = rq->vdi.block_size_shift ? rq->vdi.block_size_shift : sys->block_size_shift;
	if (shift < 20 || shift > 31)
		return SD_RES_INVALID_PARMS;
	uint64_t max_size = (UINT64_C(1) << shift) * SD_INODE_DATA_INDEX;
	if (rq->vdi.copies > SD_MAX_COPIES || rq->vdi.store_policy)
		return SD_RES_INVALID_PARMS;
	/* the redundancy asked for: copies, or D:P (QEMU's redundancy=D:P sends copies = D + P) */
	uint8_t want_copies = rq->vdi.copies, want_policy = rq->vdi.copy_policy;
	if (want_policy) {
		if (!ec_policy_valid(want_policy))
			return SD_RES_INVALID_PARMS;
		int strips = ec_policy_data(want_policy) + ec_policy_parity(want_policy);
		if (want_copies && want_copies != strips)
			return SD_RES_INVALID_PARMS;
		want_copies = strips;
	}
	bool own_redundancy = want_copies != 0;
	if (!own_redundancy) {
		want_copies = sys->nr_copies;
		want_policy = sys->copy_policy;
	}
	/* copies asked for are copies kept, one per zone; strips likewise (a clone or a snapshot
	 * without its own redundancy keeps its parent's, already placed) */
	if ((own_redundancy || (!base && !snapshot && want_policy)) && want_copies > cluster_zones()) {
		if (want_policy)
			sd_err("new VDI %s: %d:%d needs %u zones, the cluster has %d", name, ec_policy_data(want_policy),
			       ec_policy_parity(want_policy), want_copies, cluster_zones());
		return SD_RES_TOO_FEW_ZONES;
	}
	if (!base && !snapshot && (!rq->vdi.vdi_size || rq->vdi.vdi_size > max_size))
		return SD_RES_INVALID_PARMS;

	ret = vdi_probe(name, snapshot ? tag : NULL, 0, &p, NULL);
	if (ret)
		return ret;
	if (snapshot) {
		if (!p.working)
			return SD_RES_NO_VDI;
		if (tag[0] && p.match)
			return SD_RES_VDI_EXIST;     /* that tag is taken */
		if (base && base != p.working)
			return SD_RES_INVALID_PARMS;
		from = p.working;
	} else {
		if (p.working)
			return SD_RES_VDI_EXIST;
		from = base;
	}
	vid = p.free_vid;

	inode = xzalloc(SD_INODE_SIZE);
	if (from) {
		ret = vdi_read_inode(from, &from_inode, &nr);
		if (ret) {
			ret = snapshot ? SD_RES_VDI_READ : (ret == SD_RES_NO_OBJ ? SD_RES_NO_BASE_VDI : SD_RES_BASE_VDI_READ);
			goto out;
		}
		if (!snapshot && (!from_inode->name[0] || vdi_is_deleted(from))) {
			ret = SD_RES_NO_BASE_VDI;
			goto out;
		}
		if (!snapshot && !from_inode->snap_ctime) {
			ret = SD_RES_INVALID_PARMS;   /* clones come from snapshots */
			goto out;
		}
		memcpy(inode->data_vdi_id, from_inode->data_vdi_id, nr * sizeof(uint32_t));
		inode->vdi_size = from_inode->vdi_size;
		inode->block_size_shift = from_inode->block_size_shift;
		if (!snapshot && rq->vdi.vdi_size) {
			uint64_t max = (UINT64_C(1) << (inode->block_size_shift ? inode->block_size_shift : 22)) *
				       SD_INODE_DATA_INDEX;
			if (rq->vdi.vdi_size < from_inode->vdi_size || rq->vdi.vdi_size > max) {
				ret = SD_RES_INVALID_PARMS;
				goto out;
			}
			inode->vdi_size = rq->vdi.vdi_size;
		}
		inode->nr_copies = from_inode->nr_copies;
		inode->copy_policy = from_inode->copy_policy;
		if (!snapshot && own_redundancy) {
			/* a clone may take another policy: its objects are copied on first write */
			inode->nr_copies = want_copies;
			inode->copy_policy = want_policy;
		}
		inode->parent_vdi_id = from;
		inode->snap_id = MAX(p.max_snap_id, snapshot ? from_inode->snap_id : 0) + 1;
		if (snapshot)
			memcpy(inode->reserved_area, from_inode->reserved_area, sizeof(inode->reserved_area));
		else
			inode->reserved_area[SD_INODE_FLAGS_WORD] = SD_INODE_FLAG_CLONE;
	} else {
		inode->vdi_size = rq->vdi.vdi_size;
		inode->nr_copies = want_copies;
		inode->copy_policy = want_policy;
		inode->block_size_shift = shift;
		inode->snap_id = p.max_snap_id + 1;
	}
	snprintf(inode->name, sizeof(inode->name), "%s", name);
	inode->create_time = sd_now_ctime();
	inode->vdi_id = vid;

	/* the state must be known locally before the gateway places the inode */
	struct vdi_state st = { .vid = vid, .nr_copies = inode->nr_copies,
				.block_size_shift = inode->block_size_shift, .copy_policy = inode->copy_policy };
	vdi_state_set(&st);
	if (snapshot) {
		/* the new working VDI gets its own copy of every attribute */
		ret = vdi_attr_copy_all((const struct sd_inode_header *)from_inode, vid);
		if (ret)
			goto out;
		/* freeze the working inode first: a crash then leaves a snapshot, never two working VDIs */
		old_snap_ctime = from_inode->snap_ctime;
		memcpy(old_tag, from_inode->tag, sizeof(old_tag));
		from_inode->snap_ctime = inode->create_time;
		if (tag[0])
			snprintf(from_inode->tag, sizeof(from_inode->tag), "%s", tag);
		ret = gateway_write_obj(vid_to_vdi_oid(from), from_inode, SD_INODE_HEADER_SIZE, 0, false, true);
		if (ret)
			goto out;
	}
	ret = vdi_write_inode(inode, nr, true);
	if (ret) {
		if (snapshot) {
			from_inode->snap_ctime = old_snap_ctime;
			memcpy(from_inode->tag, old_tag, sizeof(old_tag));
			gateway_write_obj(vid_to_vdi_oid(from), from_inode, SD_INODE_HEADER_SIZE, 0, false, true);
		}
		goto out;
	}
	req->rp.vdi.vdi_id = vid;
	req->rp.vdi.copies = inode->nr_copies;
	req->rp.vdi.block_size_shift = inode->block_size_shift;
	req->rp.vdi.reserved[0] = inode->copy_policy;    /* carried to process_main, then cleared */
	req->rp.vdi.attr_id = snapshot ? from : 0;    /* carried to process_main: the frozen VDI */
	sd_info("created VDI %s id %" PRIx32 "%s%s", name, vid, snapshot ? " (snapshot taken)" : "",
		!snapshot && from ? " (clone)" : "");
out:
	free(inode);
	free(from_inode);
	return ret;
}

/*
 * Garbage collection of deleted VDIs' objects.
 *
 * A deleted VDI leaves a tombstone: its header without a name. If some of the objects it owned
 * are still shared (a clone, or the working VDI made from it by a snapshot, still points at
 * them), the tombstone keeps those index entries and the flag SD_INODE_FLAG_PENDING. A sharer
 * lets go of an object by deleting, rolling back, or writing its own copy; every delete and
 * rollback then runs vdi_gc(), which frees each pending object that no live inode references and
 * clears tombstones that have nothing left. So after any delete or rollback the stores hold
 * exactly the objects live VDIs reference (plus inodes and tombstones). vdi_gc runs only inside
 * the cluster block, where this node has applied every earlier VDI change.
 */
struct gc_source {
	struct sd_inode *tomb;     /* the tombstone; index entries == its vid are pending */
	uint32_t nr;
	uint8_t *keep;
};

/* the tombstones with pending objects; returns how many, or -1 when one cannot be read */
static int gc_collect(const uint8_t *bitmap, struct gc_source **out)
{
	struct gc_source *src = NULL;
	int n = 0, cap = 0;
	for (uint32_t v = 1; v < SD_NR_VDIS; v++) {
		if (!bitmap[v / 8]) {
			v |= 7;
			continue;
		}
		if (!(bitmap[v / 8] & (1u << (v % 8))) || !vdi_is_deleted(v) || vdi_tombstone_known_clean(v))
			continue;
		struct sd_inode *t;
		uint32_t nr;
		int ret = vdi_read_inode(v, &t, &nr);
		if (ret == SD_RES_NO_OBJ)
			continue;
		if (ret) {
			sd_err("cannot read tombstone %" PRIx32 " (%x): no garbage collection now", v, ret);
			goto err;
		}
		if (t->name[0] || !(t->reserved_area[SD_INODE_FLAGS_WORD] & SD_INODE_FLAG_PENDING)) {
			if (!t->name[0])
				vdi_tombstone_set_clean(v);
			free(t);
			continue;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			struct gc_source *ns = realloc(src, cap * sizeof(*src));
			if (!ns) {
				free(t);
				goto err;
			}
			src = ns;
		}
		src[n].tomb = t;
		src[n].nr = nr;
		src[n].keep = xzalloc(nr ? nr : 1);
		n++;
	}
	*out = src;
	return n;
err:
	for (int i = 0; i < n; i++) {
		free(src[i].tomb);
		free(src[i].keep);
	}
	free(src);
	return -1;
}

/* mark in every source the pending objects some live inode references; false on a read error */
static bool gc_mark(const uint8_t *bitmap, struct gc_source *src, int nr_src)
{
	struct sd_inode_header *h = xzalloc(sizeof(*h));
	uint32_t max = 0, *index;
	bool ok = false;
	for (int k = 0; k < nr_src; k++)
		max = MAX(max, src[k].nr);
	index = xzalloc((max ? max : 1) * sizeof(uint32_t));
	for (uint32_t v = 1; v < SD_NR_VDIS; v++) {
		if (!bitmap[v / 8]) {
			v |= 7;
			continue;
		}
		if (!(bitmap[v / 8] & (1u << (v % 8))) || vdi_is_deleted(v))
			continue;
		int ret = gateway_read_obj(vid_to_vdi_oid(v), h, INODE_LOOKUP_SIZE, 0);
		if (ret == SD_RES_NO_OBJ)
			continue;
		if (ret) {
			sd_err("cannot read inode %" PRIx32 " (%x): no garbage collection now", v, ret);
			goto out;
		}
		if (!h->name[0])
			continue;
		uint32_t n = MIN(vdi_nr_objs(h), max);
		if (!n)
			continue;
		ret = gateway_read_obj(vid_to_vdi_oid(v), index, n * sizeof(uint32_t), SD_INODE_HEADER_SIZE);
		if (ret) {
			sd_err("cannot read the index of %" PRIx32 " (%x): no garbage collection now", v, ret);
			goto out;
		}
		for (int k = 0; k < nr_src; k++) {
			uint32_t owner = src[k].tomb->vdi_id, m = MIN(n, src[k].nr);
			const uint32_t *pend = src[k].tomb->data_vdi_id;
			for (uint32_t i = 0; i < m; i++)
				if (index[i] == owner && pend[i] == owner)
					src[k].keep[i] = 1;
		}
	}
	ok = true;
out:
	free(h);
	free(index);
	return ok;
}

/* a tombstone with the pending entries left in its index (and the flag), or a bare header */
static int tombstone_write(struct sd_inode *t, uint32_t nr)
{
	bool pending = false;
	for (uint32_t i = 0; i < nr && !pending; i++)
		pending = t->data_vdi_id[i] == t->vdi_id;
	if (pending)
		t->reserved_area[SD_INODE_FLAGS_WORD] |= SD_INODE_FLAG_PENDING;
	else
		t->reserved_area[SD_INODE_FLAGS_WORD] &= ~SD_INODE_FLAG_PENDING;
	return vdi_write_inode(t, pending ? nr : 0, true);
}

static void vdi_gc(void)
{
	uint8_t *bitmap = xmalloc(SD_NR_VDIS / 8);
	struct gc_source *src = NULL;
	int nr_src;
	vdi_bitmap_copy(bitmap);
	nr_src = gc_collect(bitmap, &src);
	if (nr_src <= 0 || !gc_mark(bitmap, src, nr_src))
		goto out;
	for (int k = 0; k < nr_src; k++) {
		struct sd_inode *t = src[k].tomb;
		bool changed = false;
		for (uint32_t i = 0; i < src[k].nr; i++) {
			if (t->data_vdi_id[i] != t->vdi_id || src[k].keep[i])
				continue;
			int r = gateway_remove_obj(vid_to_data_oid(t->vdi_id, i));
			if (r && r != SD_RES_NO_OBJ) {
				sd_warn("cannot remove object %" PRIx32 ":%" PRIu32 ": %x", t->vdi_id, i, r);
				continue;
			}
			t->data_vdi_id[i] = 0;
			changed = true;
		}
		if (changed && tombstone_write(t, src[k].nr) == SD_RES_SUCCESS &&
		    !(t->reserved_area[SD_INODE_FLAGS_WORD] & SD_INODE_FLAG_PENDING))
			vdi_tombstone_set_clean(t->vdi_id);
	}
out:
	for (int k = 0; k < nr_src; k++) {
		free(src[k].tomb);
		free(src[k].keep);
	}
	free(src);
	free(bitmap);
}

/*
 * Is oid an object nothing can ever reference again, so that recovery need not bring it back?
 * True for the data and attribute objects of a deleted VDI whose tombstone has nothing pending.
 * Conservative: false when unsure (a leak is better than an early free). Worker threads only
 * (it may read the tombstone).
 */
bool vdi_obj_is_garbage(uint64_t oid)
{
	uint32_t vid = oid_to_vid(oid);
	struct sd_inode_header *h;
	bool garbage = false;
	if (is_vdi_obj(oid) || !vdi_is_deleted(vid))
		return false;
	if (vdi_tombstone_known_clean(vid))
		return true;
	h = xzalloc(sizeof(*h));
	if (gateway_read_obj(vid_to_vdi_oid(vid), h, SD_INODE_HEADER_SIZE, 0) == SD_RES_SUCCESS && !h->name[0] &&
	    !(h->reserved_area[SD_INODE_FLAGS_WORD] & SD_INODE_FLAG_PENDING)) {
		vdi_tombstone_set_clean(vid);
		garbage = true;
	}
	free(h);
	return garbage;
}

/*
 * DEL_VDI work: retire the inode, then free what nothing else uses. The inode becomes a
 * tombstone (above) that first lists every object the VDI owned as pending; vdi_gc then frees
 * those nothing references, and whatever earlier deletes left pending that is now unreferenced.
 * Objects a clone or a later snapshot still shares stay. The VDI's attributes go at once.
 */
int vdi_delete_work(struct request *req)
{
	char name[SD_MAX_VDI_LEN], tag[SD_MAX_VDI_TAG_LEN];
	struct sd_inode *inode = NULL;
	uint32_t vid, nr;
	int ret = vdi_parse_name_tag(req, name, tag);

	if (ret)
		return ret;
	ret = vdi_lookup(name, tag, req->rq.vdi.snapid, &vid, NULL);
	if (ret)
		return ret;
	if (vdi_lock_held(vid))
		return SD_RES_VDI_LOCKED;
	ret = vdi_read_inode(vid, &inode, &nr);
	if (ret)
		return SD_RES_VDI_READ;
	struct sd_inode_header attrs;
	memcpy(&attrs, inode, sizeof(attrs));
	memset(inode->name, 0, sizeof(inode->name));
	uint32_t flags = inode->reserved_area[SD_INODE_FLAGS_WORD];
	memset(inode->reserved_area, 0, sizeof(inode->reserved_area));
	inode->reserved_area[SD_INODE_FLAGS_WORD] = flags;
	for (uint32_t i = 0; i < nr; i++)
		if (inode->data_vdi_id[i] != vid)
			inode->data_vdi_id[i] = 0;     /* only its own objects can be pending */
	ret = tombstone_write(inode, nr);
	if (ret)
		goto out;
	/* from here on the VDI is gone; what follows only frees space */
	struct vdi_state st;
	if (vdi_state_lookup(vid, &st) == 0) {
		st.deleted = 1;
		vdi_state_set(&st);
	}
	vdi_attr_remove_all(&attrs);
	vdi_gc();
	req->rp.vdi.vdi_id = vid;
	sd_info("deleted VDI %s%s%s id %" PRIx32, name, tag[0] ? " tag " : "", tag, vid);
out:
	free(inode);
	return ret;
}

/*
 * ROLLBACK_VDI work: the working VDI of name takes the size and index of one of its snapshots
 * (payload tag, or snapid) and keeps its id, name, snap_id and attributes. The objects it owned
 * (never shared: a working VDI's own objects are seen by no other inode) are removed.
 */
int vdi_rollback_work(struct request *req)
{
	char name[SD_MAX_VDI_LEN], tag[SD_MAX_VDI_TAG_LEN];
	struct sd_inode *w = NULL, *s = NULL;
	uint32_t *old = NULL, nr_w, nr_s, n;
	struct vdi_probe p;
	int ret = vdi_parse_name_tag(req, name, tag);

	if (ret)
		return ret;
	if (!tag[0] && !req->rq.vdi.snapid)
		return SD_RES_INVALID_PARMS;
	ret = vdi_probe(name, tag, req->rq.vdi.snapid, &p, NULL);
	if (ret)
		return ret;
	if (!p.working)
		return SD_RES_NO_VDI;
	if (!p.match)
		return SD_RES_NO_TAG;
	if (vdi_lock_held(p.working))
		return SD_RES_VDI_LOCKED;
	ret = vdi_read_inode(p.working, &w, &nr_w);
	if (ret)
		return SD_RES_VDI_READ;
	ret = vdi_read_inode(p.match, &s, &nr_s);
	if (ret) {
		ret = SD_RES_BASE_VDI_READ;
		goto out;
	}
	if (s->block_size_shift != w->block_size_shift) {
		ret = SD_RES_INVALID_PARMS;
		goto out;
	}
	n = MAX(nr_w, nr_s);
	old = xmalloc((n ? n : 1) * sizeof(uint32_t));
	memcpy(old, w->data_vdi_id, n * sizeof(uint32_t));
	memcpy(w->data_vdi_id, s->data_vdi_id, n * sizeof(uint32_t));
	w->vdi_size = s->vdi_size;
	w->parent_vdi_id = p.match;
	ret = vdi_write_inode(w, n, false);
	if (ret)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		if (old[i] != p.working)
			continue;
		int r = gateway_remove_obj(vid_to_data_oid(p.working, i));
		if (r && r != SD_RES_NO_OBJ)
			sd_warn("cannot remove object %" PRIx32 ":%" PRIu32 ": %x", p.working, i, r);
	}
	vdi_gc();    /* the objects of deleted snapshots the old contents shared may be free now */
	req->rp.vdi.vdi_id = p.working;
	sd_info("rolled VDI %s back to snapshot %" PRIx32, name, p.match);
out:
	free(w);
	free(s);
	free(old);
	return ret;
}

/* After joining: the VDI bitmap and state table from a member. */
int fetch_vdi_state_from(const struct sd_node *n)
{
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_VDIS, .data_length = SD_NR_VDIS / 8 };
	struct sd_rsp rsp;
	void *buf = xzalloc(SD_NR_VDIS / 8);
	int ret = peer_exec(n, &hdr, buf, SD_NR_VDIS / 8, &rsp);
	if (ret == SD_RES_SUCCESS)
		vdi_bitmap_merge(buf);
	free(buf);
	if (ret)
		return -1;
	size_t cap = 1 << 20;
	struct vdi_state *list = xzalloc(cap);
	struct sd_req h2 = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_VDI_COPIES, .data_length = cap };
	ret = peer_exec(n, &h2, list, cap, &rsp);
	if (ret == SD_RES_SUCCESS)
		for (size_t i = 0; i < rsp.data_length / sizeof(*list); i++)
			vdi_state_set(&list[i]);
	free(list);
	if (ret)
		return -1;
	/* the lock table, from the same member */
	size_t lcap = SD_NR_VDIS / 8;
	struct vdi_lock_info *locks = xzalloc(lcap);
	struct sd_req h3 = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_VDI_LOCKS, .data_length = lcap };
	if (peer_exec(n, &h3, locks, lcap, &rsp) == SD_RES_SUCCESS)
		vdi_lock_replace_all(locks, rsp.data_length / sizeof(*locks));
	free(locks);
	return 0;
}
