/* vdi_state.h: what every node knows of every VDI (vdi_state.c): the id bitmap, the state table,
 * and the object sizes and copies that follow from them. */
#ifndef SHEEP_VDI_STATE_H
#define SHEEP_VDI_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal_proto.h"
#include "ring.h"

int vdi_init(void);
bool vdi_bit_test(uint32_t vid);
void vdi_bit_set(uint32_t vid);
void vdi_bitmap_clear_all(void);
void vdi_bitmap_copy(void *out);               /* SD_NR_VDIS / 8 bytes */
void vdi_bitmap_merge(const void *in);
int vdi_state_lookup(uint32_t vid, struct vdi_state *out);
void vdi_state_set(const struct vdi_state *st);
int vdi_state_list(struct vdi_state **out, size_t *nr);
void vdi_state_clear_all(void);
bool vdi_is_deleted(uint32_t vid);
bool vdi_tombstone_known_clean(uint32_t vid);
void vdi_tombstone_set_clean(uint32_t vid);
/* a data object's size follows its VDI's block size */
uint64_t obj_size_of(uint64_t oid);
int oid_copies(uint64_t oid);
/* 0 (replicated) or the D:P policy of the VDI a data object or strip belongs to */
uint8_t oid_copy_policy(uint64_t oid);
/* the nodes (indexes into vi->nodes) that hold a store object: its replicas, or the one node of
 * an erasure-coded strip; fills up to SD_MAX_COPIES */
int obj_pick_nodes(const struct vnode_info *vi, uint64_t oid, int *idx);

#endif
