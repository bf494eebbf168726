/* group.h: membership, epochs and totally ordered cluster operations (group.c), and the hooks
 * through which group.c reaches the layers above it. */
#ifndef SHEEP_GROUP_H
#define SHEEP_GROUP_H

#include <stdint.h>

#include "internal_proto.h"
#include "request_types.h"

/* what group.c needs of the layers above it, given at group_init (all on the main thread) */
struct group_hooks {
	const struct sd_op_template *(*lookup_op)(uint8_t opcode);   /* the opcode table */
	void (*complete_request)(struct request *req);              /* a cluster op has run */
	/* before the ring of epoch old_epoch + 1 is installed */
	void (*epoch_transition)(uint32_t old_epoch, const struct sd_node *nodes, int nr);
	void (*epoch_started)(void);           /* a new epoch is in place, or this node joined */
	int (*fetch_state_from)(const struct sd_node *n);   /* after joining: 0 when n gave it */
	void (*joined)(void);
	void (*restart)(const char *why) __attribute__((noreturn));
};
int group_init(const char *driver_spec, const struct group_hooks *hooks);
/* send a cluster op that has no work part and whose reply nobody waits for */
void group_notify(const struct sd_req *rq, const void *data);
void group_leave(void);
/* leave the cluster, close the log and end the process (main thread) */
void group_leave_and_exit(void) __attribute__((noreturn));
/* send a cluster op (main thread); the request completes when it has run everywhere */
void cluster_queue_request(struct request *req);
int group_node_list(struct sd_node *nodes, int max);
int group_local_idx(void);
void group_end_wait(void);
/* give the members named in nodes[] (by address and port) their nr_vnodes; one new epoch when
 * any changed. Returns how many changed (main thread, in the cluster's total order) */
int group_reweight(const struct sd_node *nodes, int nr);

#endif
