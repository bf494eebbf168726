/* node_scrub.h: a node's scrub state as collie asks for and shows it (node_scrub.c), for node
 * scrub and node info. */
#ifndef COLLIE_NODE_SCRUB_H
#define COLLIE_NODE_SCRUB_H

#include <stddef.h>

#include "internal_proto.h"

/* SCRUB to node n with command; 0 or an SD_RES_* / -errno */
int node_scrub_get(const struct sd_node *n, uint32_t command, struct sd_scrub_info *si);
const char *node_scrub_state(const struct sd_scrub_info *si);
/* "STATE DONE/TOTAL objects, N bad, N repaired, N unrecoverable" */
void node_scrub_summary(const struct sd_scrub_info *si, char *buf, size_t len);
struct json_object;
struct json_object *node_scrub_json(const struct sd_scrub_info *si);

#endif
