/* net.c: listening and connecting sockets, the request/response exchange, and the peer fd cache. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "logger.h"
#include "net.h"
#include "util.h"

int str_to_addr(const char *host, uint8_t addr[16])
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1) {
		memset(addr, 0, 10);
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &a4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		memcpy(addr, &a6, 16);
		return 0;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return -EINVAL;
	int ret = -EINVAL;
	if (res->ai_family == AF_INET) {
		memset(addr, 0, 10);
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &((struct sockaddr_in *)res->ai_addr)->sin_addr, 4);
		ret = 0;
	} else if (res->ai_family == AF_INET6) {
		memcpy(addr, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, 16);
		ret = 0;
	}
	freeaddrinfo(res);
	return ret;
}

static bool is_v4_mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return !memcmp(a, prefix, 12);
}

const char *addr_to_str(const uint8_t addr[16], char *buf, size_t len)
{
	if (is_v4_mapped(addr))
		inet_ntop(AF_INET, addr + 12, buf, len);
	else
		inet_ntop(AF_INET6, addr, buf, len);
	return buf;
}

const char *node_to_str(const struct sd_node *n, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	addr_to_str(n->addr, a, sizeof(a));
	if (is_v4_mapped(n->addr))
		snprintf(buf, len, "%s:%u", a, n->port);
	else
		snprintf(buf, len, "[%s]:%u", a, n->port);
	return buf;
}

int set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int set_keepalive(int fd)
{
	int on = 1, idle = 15, intvl = 5, cnt = 3;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0)
		return -errno;
	return 0;
}

int listen_tcp(const char *bindaddr, int port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res, *ai;
	char portstr[16];
	int fd = -1, ret = -EADDRNOTAVAIL;

	snprintf(portstr, sizeof(portstr), "%d", port);
	if (getaddrinfo(bindaddr, portstr, &hints, &res) != 0)
		return -EINVAL;
	for (ai = res; ai; ai = ai->ai_next) {
		int on = 1;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (ai->ai_family == AF_INET6) {
			int off = 0;
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		}
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 512) == 0)
			break;
		ret = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd >= 0 ? fd : ret;
}

static void set_io_timeout(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int (*connect_hook)(int fd);

void net_set_connect_hook(int (*hook)(int fd))
{
	connect_hook = hook;
}

int connect_to(const char *host, int port, int timeout_ms, int io_timeout_ms)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *res, *ai;
	char portstr[16];
	int fd = -1, ret = -ECONNREFUSED;

	snprintf(portstr, sizeof(portstr), "%d", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return -EINVAL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			if (errno != EINPROGRESS) {
				ret = -errno;
				goto next;
			}
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int n = poll(&pfd, 1, timeout_ms);
			if (n <= 0) {
				ret = n == 0 ? -ETIMEDOUT : -errno;
				goto next;
			}
			int err = 0;
			socklen_t elen = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
			if (err) {
				ret = -err;
				goto next;
			}
		}
		int fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
		int on = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		set_keepalive(fd);
		if (io_timeout_ms)
			set_io_timeout(fd, io_timeout_ms);
		if (connect_hook && (ret = connect_hook(fd)) < 0)
			goto next;
		freeaddrinfo(res);
		return fd;
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return ret;
}

int connect_to_node(const struct sd_node *n, int timeout_ms, int io_timeout_ms)
{
	char a[INET6_ADDRSTRLEN];
	return connect_to(addr_to_str(n->addr, a, sizeof(a)), n->port, timeout_ms, io_timeout_ms);
}

/* a short read that is not an error is the peer closing the connection */
static int read_exact(int fd, void *buf, size_t len)
{
	ssize_t n = xread(fd, buf, len);
	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		errno = ECONNRESET;
	return -1;
}

static int drain(int fd, uint32_t len)
{
	char buf[65536];
	while (len) {
		uint32_t n = MIN(len, sizeof(buf));
		if (read_exact(fd, buf, n) < 0)
			return -1;
		len -= n;
	}
	return 0;
}

int send_req(int fd, const struct sd_req *hdr, const void *data, uint32_t wlen)
{
	struct iovec iov[2] = { { (void *)hdr, sizeof(*hdr) }, { (void *)data, wlen } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = wlen ? 2 : 1 };
	size_t total = sizeof(*hdr) + wlen, sent = 0;

	while (sent < total) {
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		sent += n;
		while (msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len) {
			n -= msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
			msg.msg_iov->iov_len -= n;
		}
	}
	return 0;
}

int recv_rsp(int fd, struct sd_rsp *rsp, void *buf, uint32_t bufsize)
{
	if (read_exact(fd, rsp, sizeof(*rsp)) < 0)
		return -1;
	if (rsp->data_length) {
		uint32_t take = MIN(rsp->data_length, bufsize);
		if (take && read_exact(fd, buf, take) < 0)
			return -1;
		if (rsp->data_length > take && drain(fd, rsp->data_length - take) < 0)
			return -1;
		rsp->data_length = take;
	}
	return 0;
}

int exec_req(int fd, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp)
{
	uint32_t wlen = (hdr->flags & SD_FLAG_CMD_WRITE) ? hdr->data_length : 0;
	if (send_req(fd, hdr, data, wlen) < 0)
		return -1;
	return recv_rsp(fd, rsp, data, bufsize);
}

/* --- the per-peer fd cache --- */

#define CACHE_FDS_PER_NODE 16

struct cached_peer {
	uint8_t addr[16];
	uint16_t port;
	int nr_idle;
	int idle[CACHE_FDS_PER_NODE];
	struct cached_peer *next;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cached_peer *cache_head;

static struct cached_peer *cache_find(const struct sd_node *n, bool create)
{
	for (struct cached_peer *p = cache_head; p; p = p->next)
		if (p->port == n->port && !memcmp(p->addr, n->addr, 16))
			return p;
	if (!create)
		return NULL;
	struct cached_peer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	memcpy(p->addr, n->addr, 16);
	p->port = n->port;
	p->next = cache_head;
	cache_head = p;
	return p;
}

int sockfd_cache_get(const struct sd_node *n)
{
	pthread_mutex_lock(&cache_lock);
	struct cached_peer *p = cache_find(n, false);
	if (p && p->nr_idle) {
		int fd = p->idle[--p->nr_idle];
		pthread_mutex_unlock(&cache_lock);
		return fd;
	}
	pthread_mutex_unlock(&cache_lock);
	int fd = connect_to_node(n, 3000, 30000);
	if (fd < 0) {
		char buf[64];
		sd_warn("cannot connect to %s: %s", node_to_str(n, buf, sizeof(buf)), strerror(-fd));
		return -1;
	}
	return fd;
}

void sockfd_cache_put(const struct sd_node *n, int fd)
{
	pthread_mutex_lock(&cache_lock);
	struct cached_peer *p = cache_find(n, true);
	if (p && p->nr_idle < CACHE_FDS_PER_NODE) {
		p->idle[p->nr_idle++] = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&cache_lock);
	if (fd >= 0)
		close(fd);
}

void sockfd_cache_del(const struct sd_node *n, int fd)
{
	close(fd);
	sockfd_cache_drop_node(n);
}

void sockfd_cache_drop_node(const struct sd_node *n)
{
	pthread_mutex_lock(&cache_lock);
	struct cached_peer *p = cache_find(n, false);
	if (p) {
		while (p->nr_idle)
			close(p->idle[--p->nr_idle]);
	}
	pthread_mutex_unlock(&cache_lock);
}
