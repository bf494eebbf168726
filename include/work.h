/* work.h: named thread-pool queues; fn runs on a worker, done on the main thread. */
#ifndef WORK_H
#define WORK_H

#include "util.h"

struct work;
typedef void (*work_func_t)(struct work *);

struct work {
	struct list_head w_list;
	work_func_t fn;      /* worker thread */
	work_func_t done;    /* main thread, after fn */
};

struct work_queue;

int init_work_queues(void);   /* registers the completion eventfd with the event loop */
struct work_queue *create_work_queue(const char *name, int nr_threads);
void queue_work(struct work_queue *q, struct work *w);
/* how many works are queued or running */
int work_queue_length(struct work_queue *q);

#endif
