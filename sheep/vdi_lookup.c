/* vdi_lookup.c: finding a VDI by name. A name is found by probing the bitmap from FNV-1a(name)
 * and reading inode headers; the probe run also gives the first free id for a new VDI. Also the
 * parsing of the name and tag a VDI request carries. */
#include <string.h>
#include <unistd.h>

#include "sheepdog_proto.h"
#include "util.h"
#include "alloc.h"
#include "gateway.h"
#include "request_types.h"
#include "vdi_lookup.h"
#include "vdi_state.h"

#define LOOKUP_SETTLE_TRIES 8        /* x LOOKUP_SETTLE_US: longer than the local driver's poll */
#define LOOKUP_SETTLE_US 5000

static uint32_t next_vid(uint32_t vid)
{
	vid = (vid + 1) & SD_VDI_MASK;
	return vid ? vid : 1;
}

uint32_t vdi_nr_objs(const struct sd_inode_header *h)
{
	uint8_t shift = h->block_size_shift ? h->block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT;
	uint64_t nr = DIV_ROUND_UP(h->vdi_size, UINT64_C(1) << shift);
	return MIN(nr, SD_INODE_DATA_INDEX);
}

/*
 * Walk name's probe run: every set bit from hash(name) up to the first clear one, reading the
 * header of each live inode. A non-empty tag or a non-zero snapid selects a snapshot; neither
 * selects the working VDI. hdr, when given, receives the lookup part of the match's header.
 */
int vdi_probe(const char *name, const char *tag, uint32_t snapid, struct vdi_probe *p,
		     struct sd_inode_header *hdr)
{
	uint32_t v = sd_hash_vdi(name, strnlen(name, SD_MAX_VDI_LEN)), steps = 0;
	struct sd_inode_header *h = xzalloc(sizeof(*h));
	int ret = SD_RES_SUCCESS;

	memset(p, 0, sizeof(*p));
	for (; vdi_bit_test(v); v = next_vid(v)) {
		bool match;
		if (++steps >= SD_NR_VDIS - 1) {
			ret = SD_RES_FULL_VDI;
			goto out;
		}
		if (vdi_is_deleted(v))
			continue;
		ret = gateway_read_obj(vid_to_vdi_oid(v), h, INODE_LOOKUP_SIZE, 0);
		if (ret == SD_RES_NO_OBJ) {
			ret = SD_RES_SUCCESS;
			continue;
		}
		if (ret != SD_RES_SUCCESS)
			goto out;
		if (!h->name[0] || strncmp(h->name, name, SD_MAX_VDI_LEN))
			continue;
		p->name_seen = true;
		p->max_snap_id = MAX(p->max_snap_id, h->snap_id);
		if (!h->snap_ctime)
			p->working = v;
		if (tag && tag[0])
			match = h->snap_ctime && !strncmp(h->tag, tag, SD_MAX_VDI_TAG_LEN);
		else if (snapid)
			match = h->snap_ctime && h->snap_id == snapid;
		else
			match = !h->snap_ctime;
		if (match && !p->match) {
			p->match = v;
			if (hdr)
				memcpy(hdr, h, INODE_LOOKUP_SIZE);
		}
	}
	p->free_vid = v;
out:
	free(h);
	return ret;
}

/*
 * Find name (and tag or snapid; both empty/0 = the working VDI) along its probe run.
 * On success *vid is the match and hdr (if given) its header. Returns NO_VDI when the name (or
 * its working VDI) is unknown, NO_TAG when the name exists but not that snapshot; *vid is then
 * the first free id.
 */
int vdi_lookup(const char *name, const char *tag, uint32_t snapid, uint32_t *vid, struct sd_inode_header *hdr)
{
	struct vdi_probe p;
	int ret = vdi_probe(name, tag, snapid, &p, hdr);
	if (ret)
		return ret;
	if (p.match) {
		*vid = p.match;
		return SD_RES_SUCCESS;
	}
	*vid = p.free_vid;
	return p.name_seen && ((tag && tag[0]) || snapid) ? SD_RES_NO_TAG : SD_RES_NO_VDI;
}

/*
 * vdi_lookup for requests outside the cluster block (GET_VDI_INFO). A VDI another node has just
 * created reaches this node's bitmap when this node delivers that cluster message, a few
 * milliseconds after the creator answered its client; a client that creates through one sheep and
 * opens through another can get here first. A miss is therefore retried for a short while before
 * it is believed.
 */
int vdi_lookup_settled(const char *name, const char *tag, uint32_t snapid, uint32_t *vid,
		       struct sd_inode_header *hdr)
{
	int ret;
	for (int i = 0; i < LOOKUP_SETTLE_TRIES; i++) {
		ret = vdi_lookup(name, tag, snapid, vid, hdr);
		if (ret != SD_RES_NO_VDI && ret != SD_RES_NO_TAG)
			break;
		usleep(LOOKUP_SETTLE_US);
	}
	return ret;
}

/* a field of len bytes holds a string NUL-padded to its end: no NUL inside the string, and
 * nothing after it */
static bool field_is_padded(const char *f, size_t len)
{
	size_t n = strnlen(f, len);
	if (n == len)
		return false;
	for (size_t i = n; i < len; i++)
		if (f[i])
			return false;
	return true;
}

/* The payload of NEW_VDI, DEL_VDI and ROLLBACK_VDI: name[256] [+ tag[256]], each NUL-padded
 * inside its field (so a name with a NUL in it is refused). name and tag must hold
 * SD_MAX_VDI_LEN and SD_MAX_VDI_TAG_LEN bytes. */
int vdi_parse_name_tag(const struct request *req, char *name, char *tag)
{
	uint32_t len = (req->rq.flags & SD_FLAG_CMD_WRITE) ? req->rq.data_length : 0;
	const char *d = req->data;
	size_t n;

	name[0] = tag[0] = '\0';
	if (len < SD_MAX_VDI_LEN || !d)
		return SD_RES_INVALID_PARMS;
	n = strnlen(d, SD_MAX_VDI_LEN);
	if (!n || !field_is_padded(d, SD_MAX_VDI_LEN))
		return SD_RES_INVALID_PARMS;
	memcpy(name, d, n + 1);
	if (len > SD_MAX_VDI_LEN) {
		size_t room = MIN(len - SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN);
		n = strnlen(d + SD_MAX_VDI_LEN, room);
		if (n == SD_MAX_VDI_TAG_LEN || (room == SD_MAX_VDI_TAG_LEN && !field_is_padded(d + SD_MAX_VDI_LEN, room)))
			return SD_RES_INVALID_PARMS;
		memcpy(tag, d + SD_MAX_VDI_LEN, n);
		tag[n] = '\0';
	}
	return SD_RES_SUCCESS;
}
