/* node_stat.h: per-node request statistics (counts, errors, bytes, latencies) for
 * collie node stat, and the NODE_STAT opcode that reports them. */
#ifndef SHEEP_NODE_STAT_H
#define SHEEP_NODE_STAT_H

#include <stdint.h>

#include "sheepdog_proto.h"

/* one finished request of opcode, answered with result after ns nanoseconds (any thread) */
void node_stat_note(uint8_t opcode, uint32_t result, uint64_t bytes, uint64_t ns);
/* requests of clients and peers (object I/O and flushes) finished so far: background work
 * (scrub) that sees it move waits */
uint64_t node_stat_client_ops(void);
int main_node_stat(const struct sd_req *rq, struct sd_rsp *rp, void *data);

#endif
