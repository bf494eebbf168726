/* sd_vdi_admin.c: client calls for a VDI's lifecycle: snapshot, clone, rollback, attributes and
 * locks. Each is one request on a fresh connection; the object I/O path lives in sd_client.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal_proto.h"
#include "sd_client.h"
#include "util.h"

int sd_vdi_snapshot(const char *host, int port, const char *name, const char *tag, uint32_t *new_vid)
{
	char buf[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN];
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_NEW_VDI,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(buf) };
	struct sd_rsp rsp;
	uint32_t unused;
	if (tag && sd_snap_is_id(tag))
		return SD_RES_INVALID_PARMS;     /* it could not be told from a snapshot id */
	int ret = sd_fill_name_snap(buf, name, tag, &unused);
	if (ret)
		return ret;
	hdr.vdi.snapid = 1;
	ret = sd_request(host, port, &hdr, buf, 0, &rsp);
	if (ret == SD_RES_SUCCESS && new_vid)
		*new_vid = rsp.vdi.vdi_id;
	return ret;
}

int sd_vdi_clone(const char *host, int port, const char *src, const char *snap, const char *dst,
		 uint64_t size, uint32_t *new_vid)
{
	char buf[SD_MAX_VDI_LEN] = { 0 };
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_NEW_VDI,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(buf) };
	struct sd_rsp rsp;
	uint32_t base;
	if (!dst || !*dst || strlen(dst) >= SD_MAX_VDI_LEN)
		return SD_RES_INVALID_PARMS;
	int ret = sd_vdi_lookup(host, port, src, snap, &base);
	if (ret)
		return ret;
	memcpy(buf, dst, strlen(dst));
	hdr.vdi.base_vdi_id = base;
	hdr.vdi.vdi_size = size;
	ret = sd_request(host, port, &hdr, buf, 0, &rsp);
	if (ret == SD_RES_SUCCESS && new_vid)
		*new_vid = rsp.vdi.vdi_id;
	return ret;
}

int sd_vdi_rollback(const char *host, int port, const char *name, const char *snap)
{
	if (!snap || !*snap)
		return SD_RES_INVALID_PARMS;
	return sd_name_snap_request(host, port, SD_SHEEP_PROTO_VER, SD_OP_ROLLBACK_VDI, name, snap);
}

int sd_vdi_attr(const char *host, int port, const char *name, const char *snap, const char *key,
		const void *value, uint32_t value_len, unsigned flags, uint32_t *vid, uint32_t *attr_id)
{
	struct sheepdog_vdi_attr *a;
	size_t len = offsetof(struct sheepdog_vdi_attr, value) + value_len;
	struct sd_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_VDI_ATTR,
			      .flags = SD_FLAG_CMD_WRITE | flags, .data_length = len };
	struct sd_rsp rsp;
	char nb[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN];
	uint32_t snapid;
	int ret;
	if (value_len > SD_MAX_VDI_ATTR_VALUE_LEN || !key || !*key || strlen(key) >= SD_MAX_VDI_ATTR_KEY_LEN)
		return SD_RES_INVALID_PARMS;
	ret = sd_fill_name_snap(nb, name, snap, &snapid);
	if (ret)
		return ret;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	memcpy(a->name, nb, SD_MAX_VDI_LEN);
	memcpy(a->tag, nb + SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN);
	a->snap_id = snapid;
	a->value_len = value_len;
	memcpy(a->key, key, strlen(key));
	if (value_len)
		memcpy(a->value, value, value_len);
	ret = sd_request(host, port, &hdr, a, 0, &rsp);
	if (ret == SD_RES_SUCCESS) {
		if (vid)
			*vid = rsp.vdi.vdi_id;
		if (attr_id)
			*attr_id = rsp.vdi.attr_id;
	}
	free(a);
	return ret;
}
