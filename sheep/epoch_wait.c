/* epoch_wait.c: peer requests from a gateway that is already on a newer epoch wait here, on the
 * main thread, until this node has caught up (or a few seconds have passed) instead of holding an
 * I/O worker while they wait; then they go to the I/O queue like any other. */
#include "event.h"
#include "logger.h"
#include "util.h"
#include "work.h"
#include "alloc.h"
#include "cluster_view.h"
#include "request_types.h"
#include "epoch_wait.h"

#define EPOCH_WAIT_MS  3000
#define EPOCH_POLL_MS  10
#define EPOCH_WAIT_MAX 4096    /* parked at once; past it the gateway hears NEW_NODE_VER at once */

struct parked {
	struct list_head list;
	struct request *req;
	uint64_t deadline_ms;
};

static struct list_head parked_reqs = LIST_HEAD_INIT(parked_reqs);
static unsigned nr_parked;
static bool polling;

static uint64_t now_ms(void) { return now_ns() / 1000000; }

static void poll_parked(void *unused)
{
	uint64_t now = now_ms();
	struct list_head *pos, *n;
	list_for_each_safe(pos, n, &parked_reqs) {
		struct parked *p = list_entry(pos, struct parked, list);
		if (p->req->rq.epoch > sys_epoch() && now < p->deadline_ms)
			continue;
		list_del(&p->list);
		nr_parked--;
		queue_work(sys->io_wq, &p->req->work);   /* the epoch check there answers a late one */
		free(p);
	}
	polling = !list_empty(&parked_reqs);
	if (polling)
		add_timer(EPOCH_POLL_MS, poll_parked, NULL);
}

bool epoch_wait_park(struct request *req)
{
	if (req->rq.epoch <= sys_epoch())
		return false;
	if (nr_parked >= EPOCH_WAIT_MAX) {
		sd_warn_rl("%u peer requests already wait for a newer epoch: answering at once", nr_parked);
		return false;
	}
	struct parked *p = xzalloc(sizeof(*p));
	p->req = req;
	p->deadline_ms = now_ms() + EPOCH_WAIT_MS;
	list_add_tail(&p->list, &parked_reqs);
	nr_parked++;
	if (!polling) {
		polling = true;
		add_timer(EPOCH_POLL_MS, poll_parked, NULL);
	}
	return true;
}
