/* cluster_view.h: this node's view of the cluster (cluster_view.c): the node itself, the cluster's
 * status, epoch and format, and the ring of the current epoch. */
#ifndef SHEEP_CLUSTER_VIEW_H
#define SHEEP_CLUSTER_VIEW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal_proto.h"
#include "ring.h"
#include "work.h"

struct system_info {
	char dir[4096];
	struct sd_node this_node;

	/* cluster state: written on the main thread only */
	_Atomic int status;               /* enum sd_status */
	_Atomic uint32_t epoch;
	uint64_t ctime;                   /* 0 = never formatted */
	uint8_t nr_copies;
	uint8_t copy_policy;              /* the default of new VDIs: 0 or D:P */
	uint8_t block_size_shift;
	bool recovery_disabled;
	uint64_t capacity;                /* --capacity or a reweight; 0: the store filesystem's size */
	bool fixed_vnodes;                /* -V: the vnode count does not follow the capacity */

	struct work_queue *gateway_wq;    /* client requests: fan-out to peers */
	struct work_queue *io_wq;         /* peer requests: local store */
	struct work_queue *block_wq;      /* cluster operations that need work */
	bool shutting_down;
};

extern struct system_info *sys;

/* the current ring, with a reference; release with put_vnode_info. Any thread, without a lock:
 * the ring is read through RCU (the calling thread is registered with it on first use) */
struct vnode_info *get_vnode_info(void);
void put_vnode_info(struct vnode_info *vi);
/* replace the ring (main thread) */
void set_vnode_info(const struct sd_node *nodes, int nr);
static inline uint32_t sys_epoch(void) { return atomic_load(&sys->epoch); }

#endif
