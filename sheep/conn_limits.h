/* conn_limits.h: how much any client may take from a sheep: connection caps (total and per address),
 * the stall timeout of a half-read request, and the bytes and cluster operations a connection may
 * hold before the sheep stops reading from it. */
#ifndef SHEEP_CONN_LIMITS_H
#define SHEEP_CONN_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

struct sheep_limits {
	unsigned max_clients;            /* connections in all (--max-clients) */
	unsigned max_clients_per_addr;   /* from one address (--max-clients-per-addr) */
	unsigned stall_ms;               /* a half-read request without progress (--request-timeout) */
	size_t conn_buffer;              /* request and reply bytes one connection holds (--max-client-buffer) */
	size_t node_buffer;              /* the same over all connections (--max-buffer) */
	unsigned conn_cluster_ops;       /* cluster operations one connection has in flight */
};
extern struct sheep_limits limits;

/* one per client connection, inside it; main thread only */
struct conn_meter {
	struct list_head list;
	uint8_t addr[16];
	uint64_t last_progress_ms;
	bool mid_request;                /* some of a request is read, not all */
	bool proven;                     /* it has sent at least one whole request */
	bool rx_held;                    /* reading stopped by a limit */
	size_t buffered;
	unsigned cluster_ops;
};

/* the connection's owner: close it (stalled or evicted), or look at reading again */
struct limits_ops {
	void (*close)(struct conn_meter *m, const char *why);
	void (*wake)(struct conn_meter *m);
	void (*resume_accept)(void);
};

/* parse "--NAME VALUE" for a limits option; 1 taken, 0 not a limits option, -1 bad value (said) */
int limits_option(const char *name, const char *value);
/* after the options: fit the caps under the open-file limit (raised to its maximum) */
void limits_setup(void);
void limits_start(const struct limits_ops *ops);    /* the stall timer */
/* a new connection from fd's peer: 0 to keep it, -1 to close it at once (its address is full) */
int limits_admit(struct conn_meter *m, int fd);
/* at the total cap: evict the connection stalled longest in a request (or that has yet to send a
 * whole one); false when there is none */
bool limits_full(void);
bool limits_make_room(void);
void limits_forget(struct conn_meter *m);            /* the connection is closed */
void limits_progress(struct conn_meter *m, bool mid_request);
void limits_account(struct conn_meter *m, long long bytes);
void limits_cluster_op(struct conn_meter *m, int delta);
/* may the connection read its next request? (records that it is held when not) */
bool limits_may_read(struct conn_meter *m);

#endif
