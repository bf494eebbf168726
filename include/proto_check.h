/* proto_check.h: validation of a request header as received, shared by sheep and the tests. */
#ifndef PROTO_CHECK_H
#define PROTO_CHECK_H
#include <stdbool.h>
#include "sheepdog_proto.h"
/* 0 if the header may be served, else the SD_RES_* to answer with.
 * opcode_known: the server has a handler for hdr->opcode. */
int sd_check_request_header(const struct sd_req *hdr, bool opcode_known, uint32_t max_data);
#endif
