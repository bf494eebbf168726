/* cluster_view.c: this node's view of the cluster: the node itself, the cluster's status, epoch
 * and format, and the ring of the current epoch. The state is written on the main thread only;
 * any thread reads the ring through get_vnode_info/put_vnode_info, under RCU and without a lock. */
#include <pthread.h>
#include <stdlib.h>
#include <urcu.h>

#include "internal_proto.h"
#include "logger.h"
#include "ring.h"
#include "cluster_view.h"

static struct system_info sys_info;
struct system_info *sys = &sys_info;

/* The ring of the current epoch, published with rcu_assign_pointer; it holds one reference of
 * its own, dropped a grace period after it is replaced, so a reader that found it inside its
 * read-side section can always take a reference. */
static struct vnode_info *current_ring;

static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t rcu_key;
static __thread bool rcu_registered;

static void rcu_thread_exit(void *unused)
{
	rcu_unregister_thread();
}

static void rcu_key_create(void)
{
	if (pthread_key_create(&rcu_key, rcu_thread_exit)) {
		sd_emerg("cannot create the RCU thread key");
		abort();
	}
}

/* RCU readers must be registered threads: register this one once, and unregister it at exit */
static void rcu_reader_register(void)
{
	if (rcu_registered)
		return;
	pthread_once(&rcu_key_once, rcu_key_create);
	rcu_register_thread();
	pthread_setspecific(rcu_key, &rcu_registered);
	rcu_registered = true;
}

struct vnode_info *get_vnode_info(void)
{
	rcu_reader_register();
	rcu_read_lock();
	struct vnode_info *vi = rcu_dereference(current_ring);
	uatomic_inc(&vi->refcnt);
	rcu_read_unlock();
	return vi;
}

void put_vnode_info(struct vnode_info *vi)
{
	if (uatomic_sub_return(&vi->refcnt, 1) == 0)
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
	struct vnode_info *old = current_ring;
	rcu_assign_pointer(current_ring, vi);
	if (old) {
		/* every reader that can still see old has taken its reference by now */
		synchronize_rcu();
		put_vnode_info(old);
	}
}
