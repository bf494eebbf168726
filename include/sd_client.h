/* sd_client.h: the client side of the sheepdog protocol (VDI lookup, object I/O, inode upkeep),
 * used by collie, the formats library's sheepdog: source and sink, the NBD export and tests. */
#ifndef SD_CLIENT_H
#define SD_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "sheepdog_proto.h"

struct sd_vdi;   /* an open VDI: a connection pool plus a cached inode */

/* All functions return 0 or a positive SD_RES_* code; sd_strerror() names it.
 * A negative value is -errno from the local system (connect failed etc). */
const char *sd_strerror(int res);

/* Create a VDI of size bytes. copies 0 = the cluster default; copy_policy 0 = replication, else
 * the D:P byte of ec.h (copies then D + P). */
int sd_vdi_create(const char *host, int port, const char *name, uint64_t size,
		  int copies, uint8_t copy_policy, bool prealloc, uint32_t *vid_out);
/* Open by name; snap = NULL/"" for the working VDI, else a tag or a decimal snapshot id.
 * A snapshot opens read-only. A writable open takes the VDI's guest lock (LOCK_VDI); others
 * look it up (GET_VDI_INFO). */
int sd_vdi_open(const char *host, int port, const char *name, const char *snap,
		bool writable, struct sd_vdi **out);
uint64_t sd_vdi_size(const struct sd_vdi *vdi);
/* the working VDI's id (it changes when a snapshot is taken under an open VDI) */
uint32_t sd_vdi_id(struct sd_vdi *vdi);
bool sd_vdi_writable(const struct sd_vdi *vdi);
int sd_vdi_pread(struct sd_vdi *vdi, void *buf, size_t len, uint64_t offset);
/* Writes allocate objects as needed and update the inode; durable after sd_vdi_flush(). */
int sd_vdi_pwrite(struct sd_vdi *vdi, const void *buf, size_t len, uint64_t offset);

/* write flags */
#define SD_VDI_SYNC     0x1   /* durable on every replica before returning (FUA) */
#define SD_VDI_ALLOCATE 0x2   /* allocate objects even for zeros (no holes) */
#define SD_VDI_FAST     0x4   /* write_zeroes: fail with SD_RES_NO_SUPPORT rather than write zeros */
int sd_vdi_pwrite_flags(struct sd_vdi *vdi, const void *buf, size_t len, uint64_t offset, unsigned flags);
/* Make [offset, offset + len) read as zeros: whole objects become holes again through DISCARD_OBJ
 * (unless SD_VDI_ALLOCATE), parts of allocated objects are written with zeros. */
int sd_vdi_write_zeroes(struct sd_vdi *vdi, uint64_t offset, uint64_t len, unsigned flags);
/* Is the object covering offset allocated? *run gets the length (from offset) of the run with the
 * same answer, up to len. Unallocated reads as zeros. */
int sd_vdi_block_status(struct sd_vdi *vdi, uint64_t offset, uint64_t len, bool *allocated, uint64_t *run);
int sd_vdi_flush(struct sd_vdi *vdi);
int sd_vdi_delete(const char *host, int port, const char *name, const char *snap);
/* closing a writable VDI releases its lock (RELEASE_VDI) */
void sd_vdi_close(struct sd_vdi *vdi);
int sd_vdi_release(const char *host, int port, const char *name, uint32_t vid);

/* An in-process transport for the I/O path of an open VDI (sheep's NBD export runs the gateway
 * directly). It returns a result like vdi requests do, or -ENOTSUP to let the socket carry it. */
typedef int (*sd_exec_fn)(void *ctx, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp);
void sd_vdi_set_exec(struct sd_vdi *vdi, sd_exec_fn fn, void *ctx);
/* open with every request (lookup, inode, I/O, release) going through fn: no sockets at all */
int sd_vdi_open_via(sd_exec_fn fn, void *ctx, const char *name, const char *snap, bool writable,
		    struct sd_vdi **out);

/* One request on a fresh connection: 0 when the exchange completed (rsp->result says how it
 * went), or -errno when the sheep could not be reached. */
int sd_run(const char *host, int port, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp);
/* the same, folded into one value: -errno when the sheep could not be reached, else rsp->result */
int sd_request(const char *host, int port, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp);
/* the name[256] + tag[256] payload of the VDI ops; snap is a tag or a decimal snapshot id
 * (*snapid, else 0). INVALID_PARMS for an empty or over-long name or tag. */
int sd_fill_name_snap(char *buf, const char *name, const char *snap, uint32_t *snapid);
/* a write request (proto_ver, opcode) whose payload is name and snap as sd_fill_name_snap lays them out */
int sd_name_snap_request(const char *host, int port, uint8_t proto_ver, uint8_t opcode, const char *name,
			 const char *snap);
/* look a VDI up: vid of NAME (snap as in sd_vdi_open) */
int sd_vdi_lookup(const char *host, int port, const char *name, const char *snap, uint32_t *vid);
/* read the inode header (4664 bytes) of a VDI id */
int sd_read_inode_header(const char *host, int port, uint32_t vid, struct sd_inode_header *hdr);
/* read the data_vdi_id entries [0, nr) of a VDI's inode */
int sd_read_inode_index(const char *host, int port, uint32_t vid, uint32_t *index, uint32_t nr);
/* bytes per object of an open VDI */
uint32_t sd_vdi_object_size(const struct sd_vdi *vdi);
/* the VDI's replica count (0: the cluster's default) */
uint8_t sd_vdi_copies(const struct sd_vdi *vdi);
/* copy of the object index of an open VDI: entries [0, nr_objects) */
const uint32_t *sd_vdi_index(const struct sd_vdi *vdi, uint32_t *nr_objects);

/* ---- a VDI's lifecycle (sd_vdi_admin.c) ---- */
/* Is snap a snapshot id (a number, 1 to 2^32-1) rather than a tag? */
bool sd_snap_is_id(const char *snap);
/* Freeze NAME's working VDI as a snapshot (tag may be NULL); the working VDI keeps its name and
 * gets a new id (*new_vid). */
int sd_vdi_snapshot(const char *host, int port, const char *name, const char *tag, uint32_t *new_vid);
/* A writable VDI dst sharing the objects of snapshot snap of src; size 0 = the snapshot's. */
int sd_vdi_clone(const char *host, int port, const char *src, const char *snap, const char *dst,
		 uint64_t size, uint32_t *new_vid);
/* NAME's working VDI takes the contents and size of its snapshot snap. */
int sd_vdi_rollback(const char *host, int port, const char *name, const char *snap);
/* GET_VDI_ATTR: flags SD_FLAG_CMD_CREAT / EXCL / DEL (internal_proto.h); answers the VDI and
 * attribute ids (the attribute object is vid_to_attr_oid(vid, attr_id)). */
int sd_vdi_attr(const char *host, int port, const char *name, const char *snap, const char *key,
		const void *value, uint32_t value_len, unsigned flags, uint32_t *vid, uint32_t *attr_id);

#endif
