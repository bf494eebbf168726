/* net.h: TCP helpers and whole-request exchange over blocking sockets, with a per-peer fd cache. */
#ifndef NET_H
#define NET_H

#include <stdbool.h>
#include <stdint.h>
#include "sheepdog_proto.h"
#include "internal_proto.h"

/* "127.0.0.1", "::1", "host" → 16-byte IPv6 (IPv4-mapped for v4). 0 or -EINVAL. */
int str_to_addr(const char *host, uint8_t addr[16]);
/* address as text ("127.0.0.1" for v4-mapped). */
const char *addr_to_str(const uint8_t addr[16], char *buf, size_t len);
const char *node_to_str(const struct sd_node *n, char *buf, size_t len);

int listen_tcp(const char *bindaddr, int port);   /* -errno on failure */
/* Connect with a timeout; sets TCP_NODELAY and keepalive, and I/O timeouts of io_timeout_ms (0 none). */
int connect_to(const char *host, int port, int timeout_ms, int io_timeout_ms);
int connect_to_node(const struct sd_node *n, int timeout_ms, int io_timeout_ms);
/* run hook on every new connection before connect_to returns it (the key exchange of auth.c);
 * a negative -errno from it fails the connection */
void net_set_connect_hook(int (*hook)(int fd));
int set_nonblocking(int fd);
int set_keepalive(int fd);

/* Send the header and, with SD_FLAG_CMD_WRITE, hdr->data_length bytes of data; read the response
 * header and up to bufsize bytes of its payload into data (the rest, if any, is drained).
 * Returns 0 when the exchange completed (rsp->result tells the outcome), -1 on a socket error. */
int exec_req(int fd, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp);

/* Per-peer connection cache, safe across threads. get returns a connected fd or -1. */
int sockfd_cache_get(const struct sd_node *n);
void sockfd_cache_put(const struct sd_node *n, int fd);     /* give back a healthy fd */
void sockfd_cache_del(const struct sd_node *n, int fd);     /* close a broken fd */
void sockfd_cache_drop_node(const struct sd_node *n);       /* close all idle fds of a node */


/* the two halves of exec_req, for fanning out to several peers at once */
int send_req(int fd, const struct sd_req *hdr, const void *data, uint32_t wlen);
int recv_rsp(int fd, struct sd_rsp *rsp, void *buf, uint32_t bufsize);

#endif
