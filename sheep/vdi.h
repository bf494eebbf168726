/* vdi.h: the VDI service (vdi.c): the work of create, snapshot, clone, rollback and delete,
 * reading inodes, and the state a joiner fetches from a member. */
#ifndef SHEEP_VDI_H
#define SHEEP_VDI_H

#include <stdbool.h>
#include <stdint.h>

#include "request_types.h"

int vdi_create_work(struct request *req);
int vdi_delete_work(struct request *req);
int vdi_rollback_work(struct request *req);
/* zones of the current ring (each holds at most one copy of an object) */
int cluster_zones(void);
int vdi_read_inode(uint32_t vid, struct sd_inode **out, uint32_t *nr);
/* recovery may skip it: an object of a deleted VDI that nothing can reference again */
bool vdi_obj_is_garbage(uint64_t oid);
int fetch_vdi_state_from(const struct sd_node *n);

#endif
