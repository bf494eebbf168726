/* node_weight.c: a node's weight on the ring. Its vnode count follows its capacity (one vnode per
 * RING_BYTES_PER_VNODE, see ring.h) unless -V fixed it; collie node reweight reads every node's
 * wish with GET_NODE_WEIGHT and applies the changes with one REWEIGHT, which makes one epoch. */
#include <string.h>
#include <sys/statvfs.h>

#include "internal_proto.h"
#include "logger.h"
#include "ring.h"
#include "cluster_view.h"
#include "group.h"
#include "node_weight.h"
#include "store/store.h"

uint64_t node_capacity(void)
{
	struct statvfs vfs;
	if (sys->capacity)
		return sys->capacity;
	uint64_t disks = store_capacity();    /* 0 before the store is open */
	if (disks)
		return disks;
	if (statvfs(sys->dir, &vfs) < 0)
		return sys->this_node.space;
	return (uint64_t)vfs.f_blocks * vfs.f_frsize;
}

int main_get_node_weight(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct sd_node_weight w = { 0 };
	if (rq->data_length < sizeof(w))
		return SD_RES_BUFFER_SMALL;
	if (rq->flags & SD_FLAG_CMD_WRITE) {
		uint64_t cap;
		memcpy(&cap, data, sizeof(cap));
		sys->capacity = cap;
		sys->fixed_vnodes = false;   /* a capacity given now is meant to weigh */
		sd_info("capacity set to %llu bytes%s", (unsigned long long)cap, cap ? "" : " (automatic)");
	}
	w.capacity = node_capacity();
	w.nr_vnodes = sys->this_node.nr_vnodes;
	w.fixed = sys->fixed_vnodes;
	w.want_vnodes = w.fixed || !w.nr_vnodes ? w.nr_vnodes : ring_vnodes_for_capacity(w.capacity);
	memcpy(data, &w, sizeof(w));
	rp->data_length = sizeof(w);
	return SD_RES_SUCCESS;
}

int main_reweight(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	int nr = rq->data_length / sizeof(struct sd_node);
	if (!nr || rq->data_length % sizeof(struct sd_node) || nr > SD_MAX_NODES)
		return SD_RES_INVALID_PARMS;
	const struct sd_node *nodes = data;
	for (int i = 0; i < nr; i++)
		if (!nodes[i].nr_vnodes)
			return SD_RES_INVALID_PARMS;   /* a storing node does not become a gateway */
	group_reweight(nodes, nr);
	return SD_RES_SUCCESS;
}
