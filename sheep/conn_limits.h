/* conn_limits.h: how much any client may take from a sheep: connection caps (total and per address,
 * for the sheep port and the NBD port each), the stall timeout of a half-read request, and the bytes
 * and cluster operations a connection may hold before the sheep stops reading from it. */
#ifndef SHEEP_CONN_LIMITS_H
#define SHEEP_CONN_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* the ports whose connections are metered; each has its own caps and its own connections */
enum limits_port { LIMITS_SHEEP, LIMITS_NBD, LIMITS_NR_PORTS };

struct sheep_limits {
	unsigned max_clients;            /* connections in all (--max-clients) */
	unsigned max_clients_per_addr;   /* from one address (--max-clients-per-addr) */
	unsigned nbd_max_clients;        /* the same for the NBD port (--nbd-max-clients) */
	unsigned nbd_max_clients_per_addr;
	unsigned stall_ms;               /* a half-read request without progress (--request-timeout) */
	size_t conn_buffer;              /* request and reply bytes one connection holds (--max-client-buffer) */
	size_t node_buffer;              /* the same over all connections (--max-buffer) */
	unsigned conn_cluster_ops;       /* cluster operations one connection has in flight */
};
extern struct sheep_limits limits;

/* one per client connection, inside it; main thread only */
struct conn_meter {
	struct list_head list;
	enum limits_port port;
	uint8_t addr[16];
	uint64_t last_progress_ms;
	bool mid_request;                /* some of a request is read, not all */
	bool proven;                     /* it has sent at least one whole request */
	bool rx_held;                    /* reading stopped by a limit */
	size_t buffered;
	unsigned cluster_ops;
};

/* the connection's owner: close it (stalled or evicted), look at reading again, or accept one
 * connection on its listening socket (0 taken or refused at once, -1 stop for now) */
struct limits_ops {
	void (*close)(struct conn_meter *m, const char *why);
	void (*wake)(struct conn_meter *m);
	int (*accept_one)(int listen_fd);
};

/* parse "--NAME VALUE" for a limits option; 1 taken, 0 not a limits option, -1 bad value (said) */
int limits_option(const char *name, const char *value);
/* after the options: fit the caps under the open-file limit (raised to its maximum); with_nbd:
 * the NBD port's connections count too */
void limits_setup(bool with_nbd);
/* the port's owner and its listening socket; the first call starts the stall timer */
void limits_start(enum limits_port port, const struct limits_ops *ops, int listen_fd);
/* the listening socket is readable: up to LIMITS_ACCEPTS_PER_EVENT connections through
 * ops->accept_one (the backlog drains quickly: a live client may wait behind stalled ones). At
 * the total cap the longest stalled connection makes room; with none stalled, accepting pauses
 * until a connection of the port leaves, so the socket is never spun on. */
#define LIMITS_ACCEPTS_PER_EVENT 32
void limits_accept(enum limits_port port);
/* a new connection from fd's peer: 0 to keep it, -1 to close it at once (its address is full) */
int limits_admit(enum limits_port port, struct conn_meter *m, int fd);
/* at the port's total cap: evict the connection stalled longest in a request (or that has yet to
 * send a whole one); false when there is none */
bool limits_full(enum limits_port port);
bool limits_make_room(enum limits_port port);
void limits_forget(struct conn_meter *m);            /* the connection is closed */
void limits_progress(struct conn_meter *m, bool mid_request);
/* for a port whose connections wait on their client at other times than in a request (NBD's
 * negotiation): waiting says whether the connection now waits for its client's bytes, progressed
 * whether some moved; the stall clock restarts on progress and when waiting starts */
void limits_waiting(struct conn_meter *m, bool waiting, bool progressed);
void limits_account(struct conn_meter *m, long long bytes);
void limits_cluster_op(struct conn_meter *m, int delta);
/* may the connection read its next request? (records that it is held when not; an NBD connection
 * is held by the node-wide bound only) */
bool limits_may_read(struct conn_meter *m);

#endif
