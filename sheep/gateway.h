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
int gateway_remove_obj(uint64_t oid);
int gateway_flush_all(void);
/* called on each client object op (recovery's throttle registers it at start) */
void gateway_set_client_io_hook(void (*hook)(void));

#endif
