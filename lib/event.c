/* event.c: epoll wrapper with an fd-indexed handler table and timerfd-based one-shot timers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "event.h"
#include "logger.h"

struct handler_slot {
	event_handler_t fn;
	void *data;
	uint64_t gen;
};

static int efd = -1;
static struct handler_slot *slots;
static int nr_slots;
static uint64_t generation;

int event_init(void)
{
	efd = epoll_create1(EPOLL_CLOEXEC);
	return efd < 0 ? -errno : 0;
}

static int grow_slots(int fd)
{
	if (fd < nr_slots)
		return 0;
	int n = nr_slots ? nr_slots : 1024;
	while (n <= fd)
		n *= 2;
	struct handler_slot *s = realloc(slots, n * sizeof(*s));
	if (!s)
		return -ENOMEM;
	memset(s + nr_slots, 0, (n - nr_slots) * sizeof(*s));
	slots = s;
	nr_slots = n;
	return 0;
}

int register_event(int fd, event_handler_t h, void *data, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = 0 };
	if (grow_slots(fd) < 0)
		return -ENOMEM;
	slots[fd].fn = h;
	slots[fd].data = data;
	slots[fd].gen = ++generation;
	ev.data.u64 = ((uint64_t)fd << 40) | (slots[fd].gen & ((1ull << 40) - 1));
	if (epoll_ctl(efd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		sd_err("epoll add fd %d: %m", fd);
		slots[fd].fn = NULL;
		return -errno;
	}
	return 0;
}

int modify_event(int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events };
	if (fd >= nr_slots || !slots[fd].fn)
		return -ENOENT;
	ev.data.u64 = ((uint64_t)fd << 40) | (slots[fd].gen & ((1ull << 40) - 1));
	if (epoll_ctl(efd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

void unregister_event(int fd)
{
	if (fd < 0 || fd >= nr_slots || !slots[fd].fn)
		return;
	epoll_ctl(efd, EPOLL_CTL_DEL, fd, NULL);
	slots[fd].fn = NULL;
	slots[fd].data = NULL;
}

void event_loop_once(int timeout_ms)
{
	struct epoll_event events[128];
	int n = epoll_wait(efd, events, 128, timeout_ms);
	if (n < 0) {
		if (errno != EINTR)
			sd_err("epoll_wait: %m");
		return;
	}
	for (int i = 0; i < n; i++) {
		int fd = events[i].data.u64 >> 40;
		uint64_t gen = events[i].data.u64 & ((1ull << 40) - 1);
		/* a handler earlier in this batch may have closed and reused the fd */
		if (fd >= nr_slots || !slots[fd].fn || (slots[fd].gen & ((1ull << 40) - 1)) != gen)
			continue;
		slots[fd].fn(fd, events[i].events, slots[fd].data);
	}
}

struct timer {
	int fd;
	void (*fn)(void *);
	void *data;
};

static void timer_fired(int fd, uint32_t events, void *data)
{
	struct timer *t = data;
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0 && errno == EAGAIN)
		return;
	unregister_event(fd);
	close(fd);
	t->fn(t->data);
	free(t);
}

struct timer *add_timer(unsigned ms, void (*fn)(void *), void *data)
{
	struct itimerspec its = { .it_value = { ms / 1000, (ms % 1000) * 1000000L } };
	struct timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (!ms)
		its.it_value.tv_nsec = 1;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0)
		goto out_free;
	t->fn = fn;
	t->data = data;
	if (timerfd_settime(t->fd, 0, &its, NULL) < 0 || register_event(t->fd, timer_fired, t, EPOLLIN) < 0)
		goto out_close;
	return t;
out_close:
	close(t->fd);
out_free:
	free(t);
	return NULL;
}
