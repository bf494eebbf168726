/* work.c: fixed-size thread pools; finished works return to the main loop through one eventfd. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "event.h"
#include "logger.h"
#include "work.h"

struct work_queue {
	char name[32];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct list_head pending;
	int nr_threads;
	int in_flight;
};

static int done_fd = -1;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static struct list_head done_list = LIST_HEAD_INIT(done_list);

static void run_done(int fd, uint32_t events, void *data)
{
	struct list_head local = LIST_HEAD_INIT(local), *pos, *n;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		sd_err("eventfd read: %m");
	pthread_mutex_lock(&done_lock);
	list_splice_init(&done_list, &local);
	pthread_mutex_unlock(&done_lock);
	list_for_each_safe(pos, n, &local) {
		struct work *w = list_entry(pos, struct work, w_list);
		list_del(&w->w_list);
		if (w->done)
			w->done(w);
	}
}

int init_work_queues(void)
{
	done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (done_fd < 0)
		return -errno;
	return register_event(done_fd, run_done, NULL, EPOLLIN);
}

static void *worker(void *arg)
{
	struct work_queue *q = arg;
	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (list_empty(&q->pending))
			pthread_cond_wait(&q->cond, &q->lock);
		struct work *w = list_first_entry(&q->pending, struct work, w_list);
		list_del(&w->w_list);
		pthread_mutex_unlock(&q->lock);

		if (w->fn)
			w->fn(w);

		pthread_mutex_lock(&q->lock);
		q->in_flight--;
		pthread_mutex_unlock(&q->lock);

		pthread_mutex_lock(&done_lock);
		list_add_tail(&w->w_list, &done_list);
		pthread_mutex_unlock(&done_lock);
		uint64_t one = 1;
		if (write(done_fd, &one, sizeof(one)) < 0)
			sd_err("eventfd write: %m");
	}
	return NULL;
}

struct work_queue *create_work_queue(const char *name, int nr_threads)
{
	struct work_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	snprintf(q->name, sizeof(q->name), "%s", name);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	INIT_LIST_HEAD(&q->pending);
	q->nr_threads = nr_threads;
	for (int i = 0; i < nr_threads; i++) {
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 1 << 20);
		int ret = pthread_create(&t, &attr, worker, q);
		pthread_attr_destroy(&attr);
		if (ret) {
			sd_err("cannot start worker %d of queue %s: %s", i, name, strerror(ret));
			return NULL;
		}
		char tname[24];
		snprintf(tname, sizeof(tname), "%.10s%d", name, i % 1000);
		tname[15] = 0;
		pthread_setname_np(t, tname);
	}
	return q;
}

void queue_work(struct work_queue *q, struct work *w)
{
	pthread_mutex_lock(&q->lock);
	q->in_flight++;
	list_add_tail(&w->w_list, &q->pending);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

int work_queue_length(struct work_queue *q)
{
	pthread_mutex_lock(&q->lock);
	int n = q->in_flight;
	pthread_mutex_unlock(&q->lock);
	return n;
}
