/* event.h: the epoll main loop; handlers run on the main thread only. */
#ifndef EVENT_H
#define EVENT_H

#include <stdint.h>
#include <sys/epoll.h>

typedef void (*event_handler_t)(int fd, uint32_t events, void *data);

int event_init(void);
int register_event(int fd, event_handler_t h, void *data, uint32_t events);
int modify_event(int fd, uint32_t events);
void unregister_event(int fd);
/* Run one round: wait up to timeout_ms and dispatch. */
void event_loop_once(int timeout_ms);

/* one-shot timer on the main thread after ms milliseconds */
struct timer;
struct timer *add_timer(unsigned ms, void (*fn)(void *), void *data);

#endif
