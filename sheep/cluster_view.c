/* cluster_view.c: this node's view of the cluster: the node itself, the cluster's status, epoch
 * and format, and the ring of the current epoch. The state is written on the main thread only;
 * any thread reads the ring through get_vnode_info/put_vnode_info. */
#include <stdlib.h>

#include "internal_proto.h"
#include "logger.h"
#include "ring.h"
#include "cluster_view.h"

static struct system_info sys_info = {
	.vinfo_lock = PTHREAD_MUTEX_INITIALIZER,
};
struct system_info *sys = &sys_info;

struct vnode_info *get_vnode_info(void)
{
	pthread_mutex_lock(&sys->vinfo_lock);
	struct vnode_info *vi = sys->vinfo;
	vi->refcnt++;
	pthread_mutex_unlock(&sys->vinfo_lock);
	return vi;
}

void put_vnode_info(struct vnode_info *vi)
{
	pthread_mutex_lock(&sys->vinfo_lock);
	bool last = --vi->refcnt == 0;
	pthread_mutex_unlock(&sys->vinfo_lock);
	if (last)
		ring_free(vi);
}

void set_vnode_info(const struct sd_node *nodes, int nr)
{
	struct vnode_info *vi = ring_build(nodes, nr);
	if (!vi) {
		sd_emerg("out of memory building the ring");
		abort();
	}
	vi->refcnt = 1;
	pthread_mutex_lock(&sys->vinfo_lock);
	struct vnode_info *old = sys->vinfo;
	sys->vinfo = vi;
	pthread_mutex_unlock(&sys->vinfo_lock);
	if (old)
		put_vnode_info(old);
}

