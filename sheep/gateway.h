/* gateway.h: client object I/O fanned out to the replicas of the current epoch (gateway.c);
 * worker threads. */
#ifndef SHEEP_GATEWAY_H
#define SHEEP_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "ring.h"

int gateway_read_obj(uint64_t oid, void *buf, uint32_t len, uint32_t offset);
/* read from the holders of oid on ring vi that are still members of cur; NO_OBJ if none has it */
int gateway_read_holders(const struct vnode_info *vi, const struct vnode_info *cur, uint64_t oid, void *buf,
			 uint32_t len, uint32_t offset, uint16_t flags);
/* the same for the rings of the earlier epochs, newest first (data not yet moved) */
int gateway_read_old_epochs(const struct vnode_info *cur, uint64_t oid, void *buf, uint32_t len, uint32_t offset,
			    uint16_t flags);
int gateway_write_obj(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool create, bool sync);
/* the same to the replicas (or the one holder of a strip) of oid, whatever its VDI's policy */
int gateway_write_replicas(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool create, bool sync);
/* one attempt at a store object (replica or strip) on vi and earlier epochs, without waiting */
int gateway_read_once(const struct vnode_info *vi, uint64_t oid, void *buf, uint32_t len, uint32_t offset,
		      uint16_t flags);

/* one peer op per target, each to every holder of its store object, in parallel (gateway.c) */
struct gateway_target {
	uint64_t oid;
	const void *buf;
	uint32_t len;
	uint32_t offset;
	uint64_t cow_oid;    /* a create of a copy of this parent with buf laid over it (SD_FLAG_CMD_COW) */
};
struct sd_req;
struct sd_rsp;
int gateway_fanout(uint8_t peer_opcode, int (*local_op)(const struct sd_req *, void *, struct sd_rsp *),
		   uint16_t flags, const struct gateway_target *t, int nr_targets);

/* erasure-coded data objects (gateway_ec.c): oid is the data object, the strips are its store
 * objects */
int gateway_ec_read(uint64_t oid, void *buf, uint32_t len, uint32_t offset, uint16_t flags);
int gateway_ec_write(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool create, bool sync);
int gateway_ec_remove(uint64_t oid);
/* one strip: from its holder, else decoded from D others */
int gateway_ec_read_strip(uint64_t strip, void *buf, uint32_t len, uint32_t offset, uint16_t flags);
/* decode strip from D others only (recovery of a lost strip, check) */
int gateway_ec_rebuild_strip(uint64_t strip, void *buf, uint32_t len, uint32_t offset, uint16_t flags);
/* alter-copy: a whole data object's strips under policy (buf: the whole object), or their
 * removal, whatever the VDI's policy is now */
int gateway_ec_create_as(uint64_t oid, uint8_t policy, const void *buf, bool sync);
int gateway_ec_remove_as(uint64_t oid, uint8_t policy);
int gateway_remove_obj(uint64_t oid);
/* one attempt at a whole replicated object from its holders (a replica's copy-on-write parent) */
int gateway_read_parent(uint64_t oid, void *buf, uint32_t len);
/* the replicas of oid, whatever its VDI's policy (alter-copy) */
int gateway_remove_replicas(uint64_t oid);
int gateway_flush_all(void);
/* called on each client object op (recovery's throttle registers it at start) */
void gateway_set_client_io_hook(void (*hook)(void));

#endif
