/* node_weight.h: a node's weight on the ring (its capacity and the vnodes that follow from it),
 * and the opcodes that read and change it (GET_NODE_WEIGHT, REWEIGHT). */
#ifndef SHEEP_NODE_WEIGHT_H
#define SHEEP_NODE_WEIGHT_H

#include <stdint.h>

#include "sheepdog_proto.h"

/* the bytes this node's weight follows: --capacity (or a reweight), else its store's filesystem */
uint64_t node_capacity(void);
int main_get_node_weight(const struct sd_req *rq, struct sd_rsp *rp, void *data);
int main_reweight(const struct sd_req *rq, struct sd_rsp *rp, void *data);

#endif
