/* vdi_strips.h: the strips of an erasure-coded data object, for vdi object and vdi track. */
#ifndef COLLIE_VDI_STRIPS_H
#define COLLIE_VDI_STRIPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal_proto.h"
#include "ring.h"

struct json_object;

/* the D:P policy of VDI vid's inode, 0 when replicated or unreadable (the last one cached) */
uint8_t vdi_policy_of(uint32_t vid);
/* " data0=ADDR ... parity0=ADDR" (or NAME=missing) into line, or one {"strip", "role", "nodes"}
 * per strip into strips when it is not NULL; holds(k, strip, ctx) says whether nodes[k] stores
 * the strip. Returns how many strips are stored somewhere. */
int strips_held(uint64_t oid, uint8_t policy, const struct sd_node *nodes, int nr_nodes,
		bool (*holds)(int node, uint64_t strip, void *ctx), void *ctx, char *line, size_t len,
		struct json_object *strips);
/* " data0=ADDR ... parity0=ADDR": where ring vi places the strips of data object oid */
void strips_placement(const struct vnode_info *vi, uint64_t oid, uint8_t policy, char *line, size_t len);

#endif
