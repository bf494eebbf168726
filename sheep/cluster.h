/* cluster.h: the cluster driver interface (corosync, local, zookeeper): the driver struct each driver fills,
 * the events it reports to group.c, and the lookup in the table of drivers. */
#ifndef CLUSTER_H
#define CLUSTER_H

#include <stddef.h>
#include <stdint.h>

/* a process in the group: corosync node id (0 for local) and pid */
struct cluster_id {
	uint64_t nodeid;
	uint32_t pid;
	uint32_t pad;
};

static inline int cluster_id_cmp(const struct cluster_id *a, const struct cluster_id *b)
{
	if (a->nodeid != b->nodeid)
		return a->nodeid < b->nodeid ? -1 : 1;
	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	return 0;
}

/* What a driver reports, on the main thread, in its total order; members is the whole group
 * after the change. group.c hands these to the driver at init. */
struct cluster_events {
	void (*confchg)(const struct cluster_id *members, size_t nr_members,
			const struct cluster_id *left, size_t nr_left,
			const struct cluster_id *joined, size_t nr_joined);
	void (*deliver)(const struct cluster_id *from, const void *msg, size_t len);
	/* the driver lost this node's membership (a ZooKeeper session expired): the node must stop
	 * serving and join again as a newcomer; does not return */
	void (*lost)(const char *why);
};

struct cluster_driver {
	const char *name;
	/* connect (opts after "name:" or NULL), reporting to ev; registers its fd with the event loop */
	int (*init)(const char *opts, const struct cluster_events *ev);
	/* join the group: a membership event including ourselves follows */
	int (*join)(void);
	int (*leave)(void);
	/* multicast msg to every member, ourselves included, in one total order */
	int (*send)(const void *msg, size_t len);
	struct cluster_id (*my_id)(void);
};

extern const struct cluster_driver cdrv_corosync, cdrv_local, cdrv_zookeeper;

/* the driver of that name in the table of drivers (cluster/drivers.c), or NULL */
const struct cluster_driver *cluster_driver_find(const char *name);
/* the names of every driver, for a message: "corosync, local or zookeeper" */
void cluster_driver_names(char *buf, size_t len);

#endif
