/* sheepdog_proto.h: the client-facing wire contract (protocol.md); sizes are checked at compile time. */
#ifndef SHEEPDOG_PROTO_H
#define SHEEPDOG_PROTO_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#define SD_PROTO_VER            0x02
#define SD_SHEEP_PROTO_VER      0x0a
#define SD_LISTEN_PORT          7000

/* client-facing opcodes */
#define SD_OP_CREATE_AND_WRITE_OBJ 0x01
#define SD_OP_READ_OBJ             0x02
#define SD_OP_WRITE_OBJ            0x03
#define SD_OP_REMOVE_OBJ           0x04
#define SD_OP_DISCARD_OBJ          0x05
#define SD_OP_NEW_VDI              0x11
#define SD_OP_LOCK_VDI             0x12
#define SD_OP_RELEASE_VDI          0x13
#define SD_OP_GET_VDI_INFO         0x14
#define SD_OP_READ_VDIS            0x15
#define SD_OP_FLUSH_VDI            0x16
#define SD_OP_DEL_VDI              0x17
#define SD_OP_GET_CLUSTER_DEFAULT  0x18

/* request flags */
#define SD_FLAG_CMD_WRITE     0x01
#define SD_FLAG_CMD_COW       0x02
#define SD_FLAG_CMD_CACHE     0x04
#define SD_FLAG_CMD_DIRECT    0x08
#define SD_FLAG_CMD_PIGGYBACK 0x10
#define SD_FLAG_CMD_TGT       0x20
#define SD_FLAG_CMD_FWD       0x40

/* result codes: client-facing */
#define SD_RES_SUCCESS           0x00
#define SD_RES_UNKNOWN           0x01
#define SD_RES_NO_OBJ            0x02
#define SD_RES_EIO               0x03
#define SD_RES_VDI_EXIST         0x04
#define SD_RES_INVALID_PARMS     0x05
#define SD_RES_SYSTEM_ERROR      0x06
#define SD_RES_VDI_LOCKED        0x07
#define SD_RES_NO_VDI            0x08
#define SD_RES_NO_BASE_VDI       0x09
#define SD_RES_VDI_READ          0x0A
#define SD_RES_VDI_WRITE         0x0B
#define SD_RES_BASE_VDI_READ     0x0C
#define SD_RES_BASE_VDI_WRITE    0x0D
#define SD_RES_NO_TAG            0x0E
#define SD_RES_STARTUP           0x0F
#define SD_RES_VDI_NOT_LOCKED    0x10
#define SD_RES_SHUTDOWN          0x11
#define SD_RES_NO_MEM            0x12
#define SD_RES_FULL_VDI          0x13
#define SD_RES_VER_MISMATCH      0x14
#define SD_RES_NO_SPACE          0x15
#define SD_RES_WAIT_FOR_FORMAT   0x16
#define SD_RES_WAIT_FOR_JOIN     0x17
#define SD_RES_JOIN_FAILED       0x18
#define SD_RES_HALT              0x19
#define SD_RES_READONLY          0x1A
#define SD_RES_INODE_INVALIDATED 0x1D

/* object ids */
#define VDI_BIT          (UINT64_C(1) << 63)
#define VMSTATE_BIT      (UINT64_C(1) << 62)
#define VDI_ATTR_BIT     (UINT64_C(1) << 61)
#define VDI_BTREE_BIT    (UINT64_C(1) << 60)
#define VDI_SPACE_SHIFT  32
#define SD_NR_VDIS       (1U << 24)
#define SD_VDI_MASK      (SD_NR_VDIS - 1)
#define SD_DEFAULT_BLOCK_SIZE_SHIFT 22
#define SD_DATA_OBJ_SIZE (UINT64_C(1) << SD_DEFAULT_BLOCK_SIZE_SHIFT)
#define SD_INODE_DATA_INDEX (1U << 20)
#define SD_MAX_VDI_LEN   256
#define SD_MAX_VDI_TAG_LEN 256
#define SD_MAX_VDI_ATTR_KEY_LEN   256
#define SD_MAX_VDI_ATTR_VALUE_LEN 65536
#define SD_MAX_COPIES    31
#define SD_MAX_VDI_SIZE  (SD_DATA_OBJ_SIZE * SD_INODE_DATA_INDEX)

/* the first 16 bytes of every request and response */
#define SD_MSG_HEADER_FIELDS \
	uint8_t  proto_ver;  \
	uint8_t  opcode;     \
	uint16_t flags;      \
	uint32_t epoch;      \
	uint32_t id;         \
	uint32_t data_length

struct sd_req {
	SD_MSG_HEADER_FIELDS;
	union {
		struct {
			uint64_t oid;
			uint64_t cow_oid;
			uint8_t  copies;
			uint8_t  copy_policy;
			uint8_t  ec_index;
			uint8_t  reserved;
			uint32_t tgt_epoch;
			uint32_t offset;
			uint32_t __pad;
		} obj;
		struct {
			uint64_t vdi_size;
			uint32_t base_vdi_id;
			uint8_t  copies;
			uint8_t  copy_policy;
			uint8_t  store_policy;
			uint8_t  block_size_shift;
			uint32_t snapid;
			uint32_t type;
			uint32_t __pad[2];
		} vdi;
		uint32_t __pad[8];
	};
};

struct sd_rsp {
	SD_MSG_HEADER_FIELDS;
	union {
		uint32_t result;
		struct {
			uint32_t __pad;
			uint8_t  copies;
			uint8_t  reserved[3];
			uint64_t offset;
		} obj;
		struct {
			uint32_t __pad;
			uint32_t rsvd;
			uint32_t vdi_id;
			uint32_t attr_id;
			uint8_t  copies;
			uint8_t  block_size_shift;
			uint8_t  reserved[2];
		} vdi;
		struct {
			uint32_t __pad;
			uint8_t  nr_copies;
			uint8_t  copy_policy;
			uint8_t  block_size_shift;
			uint8_t  reserved;
		} cluster_default;
		uint32_t __pad[8];
	};
};

/* the inode's fields before its data index, in wire order; the layout is protocol.md's */
#define SD_INODE_HEADER_FIELDS                                                                   \
	char     name[SD_MAX_VDI_LEN];                                                          \
	char     tag[SD_MAX_VDI_TAG_LEN];                                                       \
	uint64_t create_time;                                                                   \
	uint64_t snap_ctime;                                                                    \
	uint64_t vm_clock_nsec;                                                                 \
	uint64_t vdi_size;                                                                      \
	uint64_t vm_state_size;                                                                 \
	uint8_t  copy_policy;                                                                   \
	uint8_t  store_policy;                                                                  \
	uint8_t  nr_copies;                                                                     \
	uint8_t  block_size_shift;                                                              \
	uint32_t snap_id;                                                                       \
	uint32_t vdi_id;                                                                        \
	uint32_t parent_vdi_id;                                                                 \
	uint32_t reserved_area[1024]    /* old child list; ours to reuse */

struct sd_inode {
	SD_INODE_HEADER_FIELDS;
	uint32_t data_vdi_id[SD_INODE_DATA_INDEX];
};

/* the inode without its index: what listing and lookup read */
struct sd_inode_header {
	SD_INODE_HEADER_FIELDS;
};

struct sheepdog_vdi_attr {
	char     name[SD_MAX_VDI_LEN];
	char     tag[SD_MAX_VDI_TAG_LEN];
	uint64_t ctime;
	uint32_t snap_id;
	uint32_t value_len;
	char     key[SD_MAX_VDI_ATTR_KEY_LEN];
	char     value[SD_MAX_VDI_ATTR_VALUE_LEN];
};

#define SD_INODE_HEADER_SIZE offsetof(struct sd_inode, data_vdi_id)
#define SD_INODE_SIZE        sizeof(struct sd_inode)
#define SD_ATTR_OBJ_SIZE     sizeof(struct sheepdog_vdi_attr)

#define SD_CHECK(expr) _Static_assert(expr, #expr)
SD_CHECK(sizeof(struct sd_inode_header) == SD_INODE_HEADER_SIZE);
SD_CHECK(sizeof(struct sd_req) == 48);
SD_CHECK(sizeof(struct sd_rsp) == 48);
SD_CHECK(offsetof(struct sd_req, opcode) == 1);
SD_CHECK(offsetof(struct sd_req, flags) == 2);
SD_CHECK(offsetof(struct sd_req, epoch) == 4);
SD_CHECK(offsetof(struct sd_req, id) == 8);
SD_CHECK(offsetof(struct sd_req, data_length) == 12);
SD_CHECK(offsetof(struct sd_req, obj.oid) == 16);
SD_CHECK(offsetof(struct sd_req, obj.cow_oid) == 24);
SD_CHECK(offsetof(struct sd_req, obj.copies) == 32);
SD_CHECK(offsetof(struct sd_req, obj.copy_policy) == 33);
SD_CHECK(offsetof(struct sd_req, obj.ec_index) == 34);
SD_CHECK(offsetof(struct sd_req, obj.tgt_epoch) == 36);
SD_CHECK(offsetof(struct sd_req, obj.offset) == 40);
SD_CHECK(offsetof(struct sd_req, vdi.vdi_size) == 16);
SD_CHECK(offsetof(struct sd_req, vdi.base_vdi_id) == 24);
SD_CHECK(offsetof(struct sd_req, vdi.copies) == 28);
SD_CHECK(offsetof(struct sd_req, vdi.copy_policy) == 29);
SD_CHECK(offsetof(struct sd_req, vdi.store_policy) == 30);
SD_CHECK(offsetof(struct sd_req, vdi.block_size_shift) == 31);
SD_CHECK(offsetof(struct sd_req, vdi.snapid) == 32);
SD_CHECK(offsetof(struct sd_req, vdi.type) == 36);
SD_CHECK(offsetof(struct sd_rsp, result) == 16);
SD_CHECK(offsetof(struct sd_rsp, obj.copies) == 20);
SD_CHECK(offsetof(struct sd_rsp, obj.offset) == 24);
SD_CHECK(offsetof(struct sd_rsp, vdi.vdi_id) == 24);
SD_CHECK(offsetof(struct sd_rsp, vdi.attr_id) == 28);
SD_CHECK(offsetof(struct sd_rsp, vdi.copies) == 32);
SD_CHECK(offsetof(struct sd_rsp, vdi.block_size_shift) == 33);
SD_CHECK(offsetof(struct sd_rsp, cluster_default.nr_copies) == 20);
SD_CHECK(offsetof(struct sd_rsp, cluster_default.copy_policy) == 21);
SD_CHECK(offsetof(struct sd_rsp, cluster_default.block_size_shift) == 22);
SD_CHECK(offsetof(struct sd_inode, tag) == 256);
SD_CHECK(offsetof(struct sd_inode, create_time) == 512);
SD_CHECK(offsetof(struct sd_inode, snap_ctime) == 520);
SD_CHECK(offsetof(struct sd_inode, vm_clock_nsec) == 528);
SD_CHECK(offsetof(struct sd_inode, vdi_size) == 536);
SD_CHECK(offsetof(struct sd_inode, vm_state_size) == 544);
SD_CHECK(offsetof(struct sd_inode, copy_policy) == 552);
SD_CHECK(offsetof(struct sd_inode, store_policy) == 553);
SD_CHECK(offsetof(struct sd_inode, nr_copies) == 554);
SD_CHECK(offsetof(struct sd_inode, block_size_shift) == 555);
SD_CHECK(offsetof(struct sd_inode, snap_id) == 556);
SD_CHECK(offsetof(struct sd_inode, vdi_id) == 560);
SD_CHECK(offsetof(struct sd_inode, parent_vdi_id) == 564);
SD_CHECK(offsetof(struct sd_inode, reserved_area) == 568);
SD_CHECK(offsetof(struct sd_inode, data_vdi_id) == 4664);
SD_CHECK(sizeof(struct sd_inode) == 4664 + 4 * (1 << 20));
SD_CHECK(sizeof(struct sd_inode_header) == 4664);
SD_CHECK(offsetof(struct sheepdog_vdi_attr, ctime) == 512);
SD_CHECK(offsetof(struct sheepdog_vdi_attr, snap_id) == 520);
SD_CHECK(offsetof(struct sheepdog_vdi_attr, value_len) == 524);
SD_CHECK(offsetof(struct sheepdog_vdi_attr, key) == 528);
SD_CHECK(offsetof(struct sheepdog_vdi_attr, value) == 784);

#define FNV1A_64_INIT  UINT64_C(0xcbf29ce484222325)
#define FNV_64_PRIME   UINT64_C(0x100000001b3)

static inline uint64_t fnv_64a_buf(const void *buf, size_t len, uint64_t hval)
{
	const unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) {
		hval ^= p[i];
		hval *= FNV_64_PRIME;
	}
	return hval;
}

/* FNV-1a over the 8 little-endian bytes of x, starting from h */
static inline uint64_t fnv_64a_64(uint64_t x, uint64_t h)
{
	for (int i = 0; i < 8; i++) {
		h ^= (x >> (8 * i)) & 0xff;
		h *= FNV_64_PRIME;
	}
	return h;
}

static inline uint64_t sd_hash(const void *buf, size_t len)
{
	uint64_t h = fnv_64a_buf(buf, len, FNV1A_64_INIT);
	return fnv_64a_64(h, h);
}

static inline uint64_t sd_hash_next(uint64_t h) { return fnv_64a_64(h, h); }

static inline uint64_t sd_hash_oid(uint64_t oid)
{
	uint64_t h = fnv_64a_64(oid, FNV1A_64_INIT);
	return fnv_64a_64(h, h);
}

static inline uint32_t sd_hash_vdi(const char *name, size_t len)
{
	uint32_t vid = fnv_64a_buf(name, len, FNV1A_64_INIT) & SD_VDI_MASK;
	return vid ? vid : 1;
}

static inline uint64_t vid_to_vdi_oid(uint32_t vid) { return VDI_BIT | ((uint64_t)vid << VDI_SPACE_SHIFT); }
static inline uint64_t vid_to_data_oid(uint32_t vid, uint32_t idx) { return ((uint64_t)vid << VDI_SPACE_SHIFT) | idx; }
static inline uint64_t vid_to_attr_oid(uint32_t vid, uint32_t attrid)
{
	return ((uint64_t)vid << VDI_SPACE_SHIFT) | VDI_ATTR_BIT | attrid;
}
static inline uint64_t vid_to_vmstate_oid(uint32_t vid, uint32_t idx)
{
	return VMSTATE_BIT | ((uint64_t)vid << VDI_SPACE_SHIFT) | idx;
}
static inline uint32_t oid_to_vid(uint64_t oid) { return (oid >> VDI_SPACE_SHIFT) & SD_VDI_MASK; }
static inline uint32_t data_oid_to_idx(uint64_t oid) { return oid & 0xffffffffu; }
static inline bool is_vdi_obj(uint64_t oid) { return !!(oid & VDI_BIT); }
static inline bool is_vmstate_obj(uint64_t oid) { return !!(oid & VMSTATE_BIT); }
static inline bool is_vdi_attr_obj(uint64_t oid) { return !!(oid & VDI_ATTR_BIT); }
static inline bool is_data_obj(uint64_t oid)
{
	return !is_vdi_obj(oid) && !is_vmstate_obj(oid) && !is_vdi_attr_obj(oid) && !(oid & VDI_BTREE_BIT);
}

/* Largest size an object of this id may have; data objects take the VDI's block size. */
static inline uint64_t sd_obj_max_size(uint64_t oid, uint8_t block_size_shift)
{
	if (is_vdi_obj(oid))
		return SD_INODE_SIZE;
	if (is_vdi_attr_obj(oid))
		return SD_ATTR_OBJ_SIZE;
	return UINT64_C(1) << (block_size_shift ? block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT);
}

#endif
