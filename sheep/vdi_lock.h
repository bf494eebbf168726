/* vdi_lock.h: the cluster-wide VDI lock table (vdi_lock.c); changes run on the main thread, in
 * cluster order. */
#ifndef SHEEP_VDI_LOCK_H
#define SHEEP_VDI_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal_proto.h"

int vdi_lock_acquire(uint32_t vid, uint32_t owner, uint32_t type);
int vdi_lock_release(uint32_t vid, uint32_t owner, bool all);
bool vdi_lock_held(uint32_t vid);
void vdi_lock_move(uint32_t from, uint32_t to);
void vdi_lock_drop(uint32_t vid);
size_t vdi_lock_list(struct vdi_lock_info *buf, size_t max);
void vdi_lock_replace_all(const struct vdi_lock_info *list, size_t nr);

#endif
