/* vdi.c: VDIs without a metadata server. Every node keeps the in-use bitmap of VDI ids and a small
 * state table (copies, block size, snapshot) in step through totally ordered cluster ops. A name
 * is found by probing the bitmap from FNV-1a(name) and reading inode headers; a new VDI takes the
 * first free id of that probe run. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sheep_priv.h"

#define INODE_LOOKUP_SIZE 568    /* name, tag, times, sizes, ids: all lookup needs */
#define STATE_BUCKETS 4096

static uint8_t *vdi_bitmap;      /* SD_NR_VDIS bits */
static pthread_mutex_t vdi_lock = PTHREAD_MUTEX_INITIALIZER;

struct state_entry {
	struct vdi_state st;
	struct state_entry *next;
};
static struct state_entry *states[STATE_BUCKETS];
static size_t nr_states;

int vdi_init(void)
{
	vdi_bitmap = xzalloc(SD_NR_VDIS / 8);
	return 0;
}

bool vdi_bit_test(uint32_t vid)
{
	pthread_mutex_lock(&vdi_lock);
	bool set = vdi_bitmap[(vid & SD_VDI_MASK) / 8] & (1u << (vid % 8));
	pthread_mutex_unlock(&vdi_lock);
	return set;
}

void vdi_bit_set(uint32_t vid)
{
	pthread_mutex_lock(&vdi_lock);
	vdi_bitmap[(vid & SD_VDI_MASK) / 8] |= 1u << (vid % 8);
	pthread_mutex_unlock(&vdi_lock);
}

void vdi_bitmap_copy(void *out)
{
	pthread_mutex_lock(&vdi_lock);
	memcpy(out, vdi_bitmap, SD_NR_VDIS / 8);
	pthread_mutex_unlock(&vdi_lock);
}

void vdi_bitmap_merge(const void *in)
{
	const uint8_t *b = in;
	pthread_mutex_lock(&vdi_lock);
	for (size_t i = 0; i < SD_NR_VDIS / 8; i++)
		vdi_bitmap[i] |= b[i];
	pthread_mutex_unlock(&vdi_lock);
}

void vdi_bitmap_clear_all(void)
{
	pthread_mutex_lock(&vdi_lock);
	memset(vdi_bitmap, 0, SD_NR_VDIS / 8);
	pthread_mutex_unlock(&vdi_lock);
}

int vdi_state_lookup(uint32_t vid, struct vdi_state *out)
{
	int ret = -ENOENT;
	pthread_mutex_lock(&vdi_lock);
	for (struct state_entry *e = states[vid % STATE_BUCKETS]; e; e = e->next)
		if (e->st.vid == vid) {
			*out = e->st;
			ret = 0;
			break;
		}
	pthread_mutex_unlock(&vdi_lock);
	return ret;
}

void vdi_state_set(const struct vdi_state *st)
{
	pthread_mutex_lock(&vdi_lock);
	struct state_entry *e;
	for (e = states[st->vid % STATE_BUCKETS]; e; e = e->next)
		if (e->st.vid == st->vid)
			break;
	if (!e) {
		e = xzalloc(sizeof(*e));
		e->next = states[st->vid % STATE_BUCKETS];
		states[st->vid % STATE_BUCKETS] = e;
		nr_states++;
	}
	e->st = *st;
	pthread_mutex_unlock(&vdi_lock);
}

int vdi_state_list(struct vdi_state **out, size_t *nr)
{
	pthread_mutex_lock(&vdi_lock);
	struct vdi_state *list = xmalloc(nr_states * sizeof(*list));
	size_t n = 0;
	for (int b = 0; b < STATE_BUCKETS; b++)
		for (struct state_entry *e = states[b]; e; e = e->next)
			list[n++] = e->st;
	pthread_mutex_unlock(&vdi_lock);
	*out = list;
	*nr = n;
	return 0;
}

void vdi_state_clear_all(void)
{
	pthread_mutex_lock(&vdi_lock);
	for (int b = 0; b < STATE_BUCKETS; b++) {
		struct state_entry *e = states[b];
		while (e) {
			struct state_entry *n = e->next;
			free(e);
			e = n;
		}
		states[b] = NULL;
	}
	nr_states = 0;
	pthread_mutex_unlock(&vdi_lock);
}

static uint32_t next_vid(uint32_t vid)
{
	vid = (vid + 1) & SD_VDI_MASK;
	return vid ? vid : 1;
}

/*
 * Find name (and tag or snapid; both empty/0 = the working VDI) along its probe run.
 * On success *vid is the match and hdr (if given) its header. Returns NO_VDI when the name is
 * unknown, NO_TAG when the name exists but not that snapshot; *vid is then the first free id.
 */
int vdi_lookup(const char *name, const char *tag, uint32_t snapid, uint32_t *vid, struct sd_inode_header *hdr)
{
	uint32_t start = sd_hash_vdi(name, strnlen(name, SD_MAX_VDI_LEN)), v = start;
	struct sd_inode_header *h = xzalloc(sizeof(*h));
	bool name_seen = false;
	int ret;
	uint32_t steps = 0;

	while (vdi_bit_test(v)) {
		ret = gateway_read_obj(vid_to_vdi_oid(v), h, INODE_LOOKUP_SIZE, 0);
		if (ret != SD_RES_SUCCESS && ret != SD_RES_NO_OBJ) {
			free(h);
			return ret;
		}
		if (ret == SD_RES_SUCCESS && h->name[0] && !strncmp(h->name, name, SD_MAX_VDI_LEN)) {
			bool match;
			name_seen = true;
			if (tag && tag[0])
				match = h->snap_ctime && !strncmp(h->tag, tag, SD_MAX_VDI_TAG_LEN);
			else if (snapid)
				match = h->snap_id == snapid;
			else
				match = !h->snap_ctime;
			if (match) {
				*vid = v;
				if (hdr)
					memcpy(hdr, h, INODE_LOOKUP_SIZE);
				free(h);
				return SD_RES_SUCCESS;
			}
		}
		v = next_vid(v);
		if (++steps >= SD_NR_VDIS - 1) {
			free(h);
			return SD_RES_FULL_VDI;
		}
	}
	free(h);
	*vid = v;
	return name_seen ? SD_RES_NO_TAG : SD_RES_NO_VDI;
}

static int check_name(const char *data, uint32_t len)
{
	if (len < SD_MAX_VDI_LEN)
		return SD_RES_INVALID_PARMS;
	if (!data[0] || strnlen(data, SD_MAX_VDI_LEN) == SD_MAX_VDI_LEN)
		return SD_RES_INVALID_PARMS;
	return SD_RES_SUCCESS;
}

/* NEW_VDI, on the originating node while it holds the cluster block */
int vdi_create_work(struct request *req)
{
	const struct sd_req *rq = &req->rq;
	const char *name = req->data;
	uint32_t len = (rq->flags & SD_FLAG_CMD_WRITE) ? rq->data_length : 0;
	uint32_t vid, base = rq->vdi.base_vdi_id;
	struct sd_inode *inode = NULL, *base_inode = NULL;
	int ret = check_name(name, len);
	if (ret)
		return ret;
	uint8_t shift = rq->vdi.block_size_shift ? rq->vdi.block_size_shift : sys->block_size_shift;
	if (shift < 20 || shift > 31)
		return SD_RES_INVALID_PARMS;
	uint64_t max_size = (UINT64_C(1) << shift) * SD_INODE_DATA_INDEX;
	if (rq->vdi.copies > SD_MAX_COPIES || rq->vdi.store_policy)
		return SD_RES_INVALID_PARMS;
	if (!base && (!rq->vdi.vdi_size || rq->vdi.vdi_size > max_size))
		return SD_RES_INVALID_PARMS;

	ret = vdi_lookup(name, NULL, 0, &vid, NULL);
	if (ret == SD_RES_SUCCESS && !rq->vdi.snapid)
		return SD_RES_VDI_EXIST;
	if (ret != SD_RES_SUCCESS && ret != SD_RES_NO_VDI && ret != SD_RES_NO_TAG)
		return ret;
	uint32_t current = ret == SD_RES_SUCCESS ? vid : 0;
	if (rq->vdi.snapid && !current)
		return SD_RES_NO_VDI;
	if (current) {
		/* a snapshot: find the first free id after the current one */
		uint32_t free_vid;
		ret = vdi_lookup(name, "\x01\x02impossible-tag", 0, &free_vid, NULL);
		if (ret != SD_RES_NO_TAG && ret != SD_RES_NO_VDI)
			return ret == SD_RES_SUCCESS ? SD_RES_SYSTEM_ERROR : ret;
		vid = free_vid;
	}

	inode = xzalloc(SD_INODE_SIZE);
	if (base || current) {
		uint32_t from = current ? current : base;
		base_inode = xzalloc(SD_INODE_SIZE);
		ret = gateway_read_obj(vid_to_vdi_oid(from), base_inode, SD_INODE_SIZE, 0);
		if (ret) {
			ret = current ? SD_RES_VDI_READ : SD_RES_BASE_VDI_READ;
			goto out;
		}
		if (base && !current && !base_inode->snap_ctime) {
			ret = SD_RES_INVALID_PARMS;   /* clones come from snapshots */
			goto out;
		}
		memcpy(inode->data_vdi_id, base_inode->data_vdi_id, sizeof(inode->data_vdi_id));
		inode->vdi_size = rq->vdi.vdi_size ? rq->vdi.vdi_size : base_inode->vdi_size;
		inode->nr_copies = base_inode->nr_copies;
		inode->block_size_shift = base_inode->block_size_shift;
		inode->parent_vdi_id = from;
		inode->snap_id = current ? base_inode->snap_id + 1 : 1;
	} else {
		inode->vdi_size = rq->vdi.vdi_size;
		inode->nr_copies = rq->vdi.copies ? rq->vdi.copies : sys->nr_copies;
		inode->block_size_shift = shift;
		inode->snap_id = 1;
	}
	uint64_t now = wall_ns();
	snprintf(inode->name, sizeof(inode->name), "%s", name);
	inode->create_time = (now / 1000000000ull) << 32 | (now % 1000000000ull);
	inode->vdi_id = vid;
	inode->copy_policy = 0;

	/* the state must be known locally before the gateway places the inode */
	struct vdi_state st = { .vid = vid, .nr_copies = inode->nr_copies,
				.block_size_shift = inode->block_size_shift };
	vdi_state_set(&st);
	if (current) {
		/* freeze the current inode first: mark it a snapshot, with the tag if one was given */
		base_inode->snap_ctime = inode->create_time;
		if (len > SD_MAX_VDI_LEN)
			snprintf(base_inode->tag, sizeof(base_inode->tag), "%.*s",
				 (int)MIN(len - SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN), name + SD_MAX_VDI_LEN);
		ret = gateway_write_obj(vid_to_vdi_oid(current), base_inode, SD_INODE_HEADER_SIZE, 0, false, true);
		if (ret)
			goto out;
	}
	ret = gateway_write_obj(vid_to_vdi_oid(vid), inode,
				(base || current) ? SD_INODE_SIZE : SD_INODE_HEADER_SIZE, 0, true, true);
	if (ret)
		goto out;
	req->rp.vdi.vdi_id = vid;
	req->rp.vdi.copies = inode->nr_copies;
	req->rp.vdi.block_size_shift = inode->block_size_shift;
	req->rp.vdi.attr_id = current;    /* carried to process_main: the frozen VDI */
	sd_info("created VDI %s id %" PRIx32 "%s", name, vid, current ? " (snapshot taken)" : "");
out:
	free(inode);
	free(base_inode);
	return ret;
}

/* DEL_VDI work: drop the data objects the VDI owns, then retire its inode (kept, nameless, so the
 * probe runs of other names stay intact). */
int vdi_delete_work(struct request *req)
{
	const struct sd_req *rq = &req->rq;
	const char *name = req->data;
	uint32_t len = (rq->flags & SD_FLAG_CMD_WRITE) ? rq->data_length : 0;
	int ret = check_name(name, len);
	uint32_t vid;
	if (ret)
		return ret;
	const char *tag = len >= SD_MAX_VDI_LEN + 1 ? name + SD_MAX_VDI_LEN : NULL;
	char tagbuf[SD_MAX_VDI_TAG_LEN + 1] = "";
	if (tag)
		snprintf(tagbuf, sizeof(tagbuf), "%.*s", (int)MIN(len - SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN), tag);
	ret = vdi_lookup(name, tagbuf, rq->vdi.snapid, &vid, NULL);
	if (ret)
		return ret;
	struct sd_inode *inode = xzalloc(SD_INODE_SIZE);
	ret = gateway_read_obj(vid_to_vdi_oid(vid), inode, SD_INODE_SIZE, 0);
	if (ret) {
		free(inode);
		return SD_RES_VDI_READ;
	}
	uint64_t nr_objs = DIV_ROUND_UP(inode->vdi_size, UINT64_C(1) << (inode->block_size_shift ? inode->block_size_shift : 22));
	for (uint64_t i = 0; i < nr_objs && i < SD_INODE_DATA_INDEX; i++) {
		if (inode->data_vdi_id[i] != vid)
			continue;
		int r = gateway_remove_obj(vid_to_data_oid(vid, i));
		if (r && r != SD_RES_NO_OBJ)
			sd_warn("cannot remove object %" PRIu64 " of VDI %s: %x", i, name, r);
	}
	memset(inode->name, 0, sizeof(inode->name));
	ret = gateway_write_obj(vid_to_vdi_oid(vid), inode, SD_INODE_HEADER_SIZE, 0, false, true);
	free(inode);
	if (ret == SD_RES_SUCCESS) {
		req->rp.vdi.vdi_id = vid;
		sd_info("deleted VDI %s id %" PRIx32, name, vid);
	}
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
	return ret ? -1 : 0;
}
