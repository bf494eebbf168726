/* vdi_attr.h: VDI attributes (vdi_attr.c): the GET_VDI_ATTR work, and copying or removing a
 * VDI's attributes with it. */
#ifndef SHEEP_VDI_ATTR_H
#define SHEEP_VDI_ATTR_H

#include <stdint.h>

#include "request_types.h"

int vdi_attr_work(struct request *req);
uint32_t vdi_attr_hash(const char *name, const char *tag, uint32_t snap_id, const char *key);
int vdi_attr_copy_all(const struct sd_inode_header *from, uint32_t to_vid);
void vdi_attr_remove_all(const struct sd_inode_header *h);

#endif
