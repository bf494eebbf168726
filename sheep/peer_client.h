/* peer_client.h: one request to another sheep and its answer (peer_client.c), over the cached
 * connection to that node. */
#ifndef SHEEP_PEER_CLIENT_H
#define SHEEP_PEER_CLIENT_H

#include <stdint.h>

#include "internal_proto.h"

int peer_exec(const struct sd_node *n, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp);

#endif
