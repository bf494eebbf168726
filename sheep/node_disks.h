/* node_disks.h: this node's disks (store/md.c) as the cluster sees them: the MD_INFO, MD_PLUG and
 * MD_UNPLUG opcodes, and the weight and recovery that follow a change of the disks. */
#ifndef SHEEP_NODE_DISKS_H
#define SHEEP_NODE_DISKS_H

#include "request_types.h"

int local_md_info(struct request *req);
int local_md_plug(struct request *req);
int local_md_unplug(struct request *req);
/* main thread, once at start: watch for changes of the disks from now on */
void node_disks_watch(void);

#endif
