/* vdi_attr.c: VDI attributes (GET_VDI_ATTR): small key/value objects beside an inode, listed in
 * the inode, copied to the new working VDI when a snapshot is taken, removed with the VDI. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal_proto.h"
#include "logger.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "alloc.h"
#include "gateway.h"
#include "request_types.h"
#include "vdi_attr.h"
#include "vdi_lookup.h"

/*
 * An attribute is one object at vid_to_attr_oid(vid, attr_id) holding a struct
 * sheepdog_vdi_attr (protocol.md). attr_id starts at FNV-1a-64 over name[256], tag[256],
 * snap_id[4] and key[256] (low 32 bits) and probes forward past ids in use. The inode lists its
 * attributes in the old child-list area (reserved_area, internal_proto.h): word 0 is the count,
 * words 1..count the attr ids; that list is how attributes are found by key, copied to the new
 * working VDI when a snapshot is taken, and removed with the VDI. GET_VDI_ATTR is a cluster op
 * that runs while its node holds the cluster block, so CREAT|EXCL is an atomic create-if-absent.
 */

#define ATTR_HDR_SIZE offsetof(struct sheepdog_vdi_attr, value)
#define ATTR_LIST_MAX SD_INODE_ATTR_LIST_MAX
#define INODE_ATTR_LIST_OFFSET offsetof(struct sd_inode_header, reserved_area)

static uint32_t attr_count(const struct sd_inode_header *h)
{
	return MIN(h->reserved_area[0], ATTR_LIST_MAX);
}

static bool attr_listed(const struct sd_inode_header *h, uint32_t id)
{
	for (uint32_t i = 0; i < attr_count(h); i++)
		if (h->reserved_area[1 + i] == id)
			return true;
	return false;
}

uint32_t vdi_attr_hash(const char *name, const char *tag, uint32_t snap_id, const char *key)
{
	char buf[SD_MAX_VDI_LEN];
	uint8_t sid[4] = { snap_id & 0xff, (snap_id >> 8) & 0xff, (snap_id >> 16) & 0xff, snap_id >> 24 };
	uint64_t h = FNV1A_64_INIT;
	memset(buf, 0, sizeof(buf));
	strncpy(buf, name, sizeof(buf) - 1);
	h = fnv_64a_buf(buf, sizeof(buf), h);
	memset(buf, 0, sizeof(buf));
	strncpy(buf, tag, sizeof(buf) - 1);
	h = fnv_64a_buf(buf, sizeof(buf), h);
	h = fnv_64a_buf(sid, sizeof(sid), h);
	memset(buf, 0, sizeof(buf));
	strncpy(buf, key, sizeof(buf) - 1);
	h = fnv_64a_buf(buf, sizeof(buf), h);
	return (uint32_t)h;
}

int vdi_attr_copy_all(const struct sd_inode_header *from, uint32_t to_vid)
{
	char *buf = xmalloc(SD_ATTR_OBJ_SIZE);
	int ret = SD_RES_SUCCESS;
	for (uint32_t i = 0; i < attr_count(from) && ret == SD_RES_SUCCESS; i++) {
		uint32_t id = from->reserved_area[1 + i];
		ret = gateway_read_obj(vid_to_attr_oid(from->vdi_id, id), buf, SD_ATTR_OBJ_SIZE, 0);
		if (ret == SD_RES_SUCCESS)
			ret = gateway_write_obj(vid_to_attr_oid(to_vid, id), buf, SD_ATTR_OBJ_SIZE, 0, true, true);
	}
	free(buf);
	return ret;
}

void vdi_attr_remove_all(const struct sd_inode_header *h)
{
	for (uint32_t i = 0; i < attr_count(h); i++) {
		uint32_t id = h->reserved_area[1 + i];
		int r = gateway_remove_obj(vid_to_attr_oid(h->vdi_id, id));
		if (r && r != SD_RES_NO_OBJ)
			sd_warn("cannot remove attribute %08" PRIx32 " of VDI %" PRIx32 ": %x", id, h->vdi_id, r);
	}
}

/* the VDI an attribute request names: a tag, a snapshot id, or the working VDI */
static int attr_find_vdi(const struct sheepdog_vdi_attr *a, const char *name, const char *tag, uint32_t *vid)
{
	struct sd_inode_header h;
	int ret;
	if (tag[0])
		return vdi_lookup(name, tag, 0, vid, NULL);
	if (a->snap_id) {
		ret = vdi_lookup(name, NULL, a->snap_id, vid, NULL);
		if (ret != SD_RES_NO_TAG)
			return ret;
		/* guests name the working VDI by its own snap_id */
		ret = vdi_lookup(name, NULL, 0, vid, &h);
		if (ret == SD_RES_SUCCESS && h.snap_id != a->snap_id)
			ret = SD_RES_NO_TAG;
		return ret;
	}
	return vdi_lookup(name, NULL, 0, vid, NULL);
}

static int attr_write_list(const struct sd_inode_header *h)
{
	return gateway_write_obj(vid_to_vdi_oid(h->vdi_id), h->reserved_area, sizeof(h->reserved_area),
				 INODE_ATTR_LIST_OFFSET, false, true);
}

/*
 * GET_VDI_ATTR work. Payload: a struct sheepdog_vdi_attr (at least up to value, plus value_len
 * bytes of value). Flags: none = find; CREAT = create or replace the value; CREAT|EXCL = create,
 * VDI_EXIST if the key exists; DEL = remove. Answers vdi_id and attr_id; NO_OBJ when the key is
 * absent (and not created).
 */
/* a well-formed attribute request: name, tag and key terminated, the value within the payload */
static bool attr_request_ok(const struct sheepdog_vdi_attr *a, uint32_t len)
{
	if (len < ATTR_HDR_SIZE || !a)
		return false;
	if (!a->name[0] || strnlen(a->name, sizeof(a->name)) == sizeof(a->name) ||
	    strnlen(a->tag, sizeof(a->tag)) == sizeof(a->tag) || !a->key[0] ||
	    strnlen(a->key, sizeof(a->key)) == sizeof(a->key))
		return false;
	return a->value_len <= SD_MAX_VDI_ATTR_VALUE_LEN && ATTR_HDR_SIZE + a->value_len <= len;
}

/* the attribute of VDI vid (inode header h) named key: *found and its id */
static int attr_lookup(uint32_t vid, const struct sd_inode_header *h, const char *key, bool *found,
		       uint32_t *found_id)
{
	struct sheepdog_vdi_attr *cur = xzalloc(ATTR_HDR_SIZE);
	int ret = SD_RES_SUCCESS;

	*found = false;
	for (uint32_t i = 0; i < attr_count(h) && !*found; i++) {
		uint32_t id = h->reserved_area[1 + i];
		ret = gateway_read_obj(vid_to_attr_oid(vid, id), cur, ATTR_HDR_SIZE, 0);
		if (ret == SD_RES_NO_OBJ) {
			ret = SD_RES_SUCCESS;
			continue;
		}
		if (ret)
			break;
		if (!strncmp(cur->key, key, sizeof(cur->key))) {
			*found = true;
			*found_id = id;
		}
	}
	free(cur);
	return ret;
}

/* the attribute id removed, with its object, from VDI vid's list */
static int attr_delete(uint32_t vid, struct sd_inode_header *h, uint32_t id)
{
	int ret = gateway_remove_obj(vid_to_attr_oid(vid, id));
	if (ret && ret != SD_RES_NO_OBJ)
		return ret;
	uint32_t n = attr_count(h);
	for (uint32_t i = 0; i < n; i++)
		if (h->reserved_area[1 + i] == id) {
			h->reserved_area[1 + i] = h->reserved_area[n];
			h->reserved_area[n] = 0;
			h->reserved_area[0] = n - 1;
			break;
		}
	return attr_write_list(h);
}

/* the attribute's object written under id (its value replaced when it exists, else it is
 * added to the list) */
static int attr_store(uint32_t vid, struct sd_inode_header *h, const struct sheepdog_vdi_attr *a,
		      const char *name, const char *tag, const char *key, uint32_t id, bool exists)
{
	struct sheepdog_vdi_attr *obj = xzalloc(SD_ATTR_OBJ_SIZE);
	memcpy(obj, a, ATTR_HDR_SIZE + a->value_len);
	memset(obj->name, 0, sizeof(obj->name));
	memset(obj->tag, 0, sizeof(obj->tag));
	memset(obj->key, 0, sizeof(obj->key));
	snprintf(obj->name, sizeof(obj->name), "%s", name);
	snprintf(obj->tag, sizeof(obj->tag), "%s", tag);
	snprintf(obj->key, sizeof(obj->key), "%s", key);
	uint64_t now = wall_ns();
	obj->ctime = (now / 1000000000ull) << 32 | (now % 1000000000ull);
	int ret = gateway_write_obj(vid_to_attr_oid(vid, id), obj, ATTR_HDR_SIZE + a->value_len, 0, true, true);
	free(obj);
	if (ret || exists)
		return ret;
	uint32_t n = attr_count(h);
	h->reserved_area[1 + n] = id;
	h->reserved_area[0] = n + 1;
	ret = attr_write_list(h);
	if (ret)
		gateway_remove_obj(vid_to_attr_oid(vid, id));
	return ret;
}

int vdi_attr_work(struct request *req)
{
	const struct sd_req *rq = &req->rq;
	uint32_t len = (rq->flags & SD_FLAG_CMD_WRITE) ? rq->data_length : 0;
	struct sheepdog_vdi_attr *a = req->data;
	struct sd_inode_header *h = NULL;
	char name[SD_MAX_VDI_LEN], tag[SD_MAX_VDI_TAG_LEN], key[SD_MAX_VDI_ATTR_KEY_LEN];
	uint32_t vid, found_id = 0;
	bool found = false;
	int ret;

	if (!attr_request_ok(a, len))
		return SD_RES_INVALID_PARMS;
	snprintf(name, sizeof(name), "%s", a->name);
	snprintf(tag, sizeof(tag), "%s", a->tag);
	snprintf(key, sizeof(key), "%s", a->key);

	ret = attr_find_vdi(a, name, tag, &vid);
	if (ret)
		return ret;
	h = xzalloc(sizeof(*h));
	ret = gateway_read_obj(vid_to_vdi_oid(vid), h, SD_INODE_HEADER_SIZE, 0);
	if (ret) {
		ret = SD_RES_VDI_READ;
		goto out;
	}
	ret = attr_lookup(vid, h, key, &found, &found_id);
	if (ret)
		goto out;
	if (found && (rq->flags & SD_FLAG_CMD_DEL)) {
		ret = attr_delete(vid, h, found_id);
		goto out;
	}
	if (found && (rq->flags & SD_FLAG_CMD_EXCL)) {
		ret = SD_RES_VDI_EXIST;
		goto out;
	}
	if (!(rq->flags & SD_FLAG_CMD_CREAT) || (rq->flags & SD_FLAG_CMD_DEL)) {
		if (!found)
			ret = SD_RES_NO_OBJ;
		goto out;
	}
	/* create, or replace the value of, the attribute */
	if (!found) {
		if (attr_count(h) >= ATTR_LIST_MAX) {
			ret = SD_RES_NO_SPACE;
			goto out;
		}
		found_id = vdi_attr_hash(name, tag, a->snap_id, key);
		while (attr_listed(h, found_id))
			found_id++;
	}
	ret = attr_store(vid, h, a, name, tag, key, found_id, found);
out:
	if (ret == SD_RES_SUCCESS) {
		req->rp.vdi.vdi_id = vid;
		req->rp.vdi.attr_id = found_id;
	}
	free(h);
	return ret;
}
