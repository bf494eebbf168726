/* request.h: client connections and request dispatch (request.c): listening ports, queueing a
 * request to where its opcode runs, and replying. */
#ifndef SHEEP_REQUEST_H
#define SHEEP_REQUEST_H

#include <stdint.h>

#include "request_types.h"

int create_listen_port(const char *bindaddr, int port);
/* a listening socket on addr:port whose connections go to handler (main loop); fd or -errno */
int listen_port(const char *addr, int port, void (*handler)(int fd, uint32_t events, void *data));
/* accept one connection, non-blocking, TCP_NODELAY and keepalive; -1 when none (or shutting down).
 * Out of open files, it takes the pending connection and closes it (no spinning on listen_fd). */
int accept_client(int listen_fd, const char *what);
void queue_request(struct request *req);      /* dispatch a complete request */
void request_done(struct request *req);       /* main thread: reply and free */
void free_request(struct request *req);
int op_check_state(const struct sd_op_template *op);   /* 0 or the result refusing the op now */

#endif
