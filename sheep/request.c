/* request.c: client connections on the main loop. Each connection reads whole requests
 * (header, then payload), checks them, hands them to the opcode's queue, and writes replies in
 * completion order. A request the server cannot parse past is answered and the connection
 * closed; any other bad request gets an error result and the stream goes on. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto_check.h"
#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "net.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "work.h"
#include "alloc.h"
#include "cluster_view.h"
#include "group.h"
#include "ops.h"
#include "recovery.h"
#include "node_stat.h"
#include "request.h"
#include "request_types.h"
#include "access.h"
#include "conn_limits.h"
#include "epoch_wait.h"


enum rx_state { RX_HDR, RX_DATA, RX_DRAIN };

struct client_info {
	int fd;
	int refcnt;
	bool closing;        /* no more reads; close when the replies are out */
	bool dead;           /* socket gone */
	enum rx_state rx_state;
	struct sd_req rx_hdr;
	size_t rx_off;
	struct request *rx_req;
	uint32_t drain_left;
	uint32_t drain_result;
	struct list_head tx_queue;
	struct request *tx_req;
	size_t tx_off;
	uint32_t events;
	int inflight;        /* requests read but not yet queued for reply */
	struct auth_conn auth;
	struct conn_meter meter;
};

static void client_tx(struct client_info *ci);

static void client_put(struct client_info *ci)
{
	if (--ci->refcnt)
		return;
	if (ci->rx_req)
		free_request(ci->rx_req);
	free(ci);
}

/* Close the socket and drop the replies still queued. The caller holds a reference. */
static void client_close(struct client_info *ci)
{
	if (ci->dead)
		return;
	ci->dead = true;
	unregister_event(ci->fd);
	close(ci->fd);
	limits_forget(&ci->meter);
	struct list_head *pos, *n;
	list_for_each_safe(pos, n, &ci->tx_queue) {
		struct request *r = list_entry(pos, struct request, list);
		list_del(&r->list);
		free_request(r);
		ci->refcnt--;
	}
	if (ci->tx_req) {
		free_request(ci->tx_req);
		ci->tx_req = NULL;
		ci->refcnt--;
	}
	ci->refcnt--;   /* the connection's own reference; the caller's keeps ci alive */
}

static void update_events(struct client_info *ci)
{
	/* a closing client's half-close stays signalled: watching it then would spin the loop */
	uint32_t ev = 0;
	if (!ci->closing && !ci->meter.rx_held)
		ev |= EPOLLIN | EPOLLRDHUP;
	if (ci->tx_req || !list_empty(&ci->tx_queue))
		ev |= EPOLLOUT;
	if (ev != ci->events) {
		ci->events = ev;
		modify_event(ci->fd, ev);
	}
}

void free_request(struct request *req)
{
	if (req->ci)
		limits_account(&req->ci->meter, -(long long)req->data_size);
	free(req->data);
	free(req);
}

/* main thread: the request is finished; queue its reply */
void request_done(struct request *req)
{
	struct client_info *ci = req->ci;
	if (ci && req->op && req->op->type == SD_OP_TYPE_CLUSTER)
		limits_cluster_op(&ci->meter, -1);
	if (!ci) {
		free_request(req);
		return;
	}
	if (ci->dead) {
		free_request(req);
		client_put(ci);
		return;
	}
	ci->inflight--;
	node_stat_note(req->rq.opcode, req->rp.result,
		       req->rq.flags & SD_FLAG_CMD_WRITE ? req->rq.data_length : req->rp.data_length,
		       now_ns() - req->start_ns);
	req->rp.proto_ver = req->rq.proto_ver;
	req->rp.opcode = req->rq.opcode;
	req->rp.id = req->rq.id;
	req->rp.epoch = sys_epoch();
	if (req->rp.result != SD_RES_SUCCESS && !(req->op && req->op->type == SD_OP_TYPE_LOCAL))
		req->rp.data_length = 0;
	if (req->rp.data_length > req->data_size)
		req->rp.data_length = req->data_size;
	list_add_tail(&req->list, &ci->tx_queue);
	if (ci->closing) {
		ci->refcnt++;
		client_tx(ci);
		client_put(ci);
	} else {
		update_events(ci);
	}
}

static void reply_now(struct client_info *ci, const struct sd_req *hdr, uint32_t result)
{
	struct request *req = xzalloc(sizeof(*req));
	req->rq = *hdr;
	req->rp.result = result;
	req->ci = ci;
	req->start_ns = now_ns();
	INIT_LIST_HEAD(&req->list);
	ci->refcnt++;
	ci->inflight++;
	request_done(req);
}

static void worker_fn(struct work *w)
{
	struct request *req = container_of(w, struct request, work);
	req->rp.result = req->op->process_work(req);
}

static void worker_done(struct work *w)
{
	struct request *req = container_of(w, struct request, work);
	if (req->rp.result == SD_RES_SUCCESS && req->op->process_main)
		req->rp.result = req->op->process_main(&req->rq, &req->rp, req->data);
	request_done(req);
}

/* A request that must wait for a format or a shutdown is refused early here. */
int op_check_state(const struct sd_op_template *op)
{
	int status = atomic_load(&sys->status);
	if (status == SD_STATUS_SHUTDOWN && !op_has(op, OP_DURING_SHUTDOWN))
		return SD_RES_SHUTDOWN;
	if (op_has(op, OP_NEEDS_FORMAT) && status == SD_STATUS_WAIT_FOR_FORMAT)
		return SD_RES_WAIT_FOR_FORMAT;
	if (op_has(op, OP_NEEDS_FORMAT) && status == SD_STATUS_HALT)
		return SD_RES_HALT;
	if (op_has(op, OP_NEEDS_FORMAT) && status == SD_STATUS_WAIT && op->type != SD_OP_TYPE_PEER)
		return SD_RES_WAIT_FOR_JOIN;
	return SD_RES_SUCCESS;
}

void queue_request(struct request *req)
{
	int ret = op_check_state(req->op);
	if (ret != SD_RES_SUCCESS) {
		req->rp.result = ret;
		request_done(req);
		return;
	}
	req->work.fn = worker_fn;
	req->work.done = worker_done;
	switch (req->op->type) {
	case SD_OP_TYPE_GATEWAY:
		queue_work(sys->gateway_wq, &req->work);
		break;
	case SD_OP_TYPE_PEER:
		if (!(req->rq.flags & SD_FLAG_CMD_RECOVERY))
			recovery_note_client_io();
		if (!epoch_wait_park(req))
			queue_work(sys->io_wq, &req->work);
		break;
	case SD_OP_TYPE_LOCAL:
		if (req->op->process_work)
			queue_work(sys->gateway_wq, &req->work);
		else
			worker_done(&req->work);
		break;
	case SD_OP_TYPE_CLUSTER:
		cluster_queue_request(req);
		break;
	}
}

/* A header is in: check it. Returns 0 to read/dispatch, or the result to answer with. */
static int check_header(struct client_info *ci, const struct sd_req *hdr)
{
	const struct sd_op_template *op = get_sd_op(hdr->opcode);
	int res = sd_check_request_header(hdr, op || auth_opcode(hdr->opcode), SD_MAX_DATA_LENGTH);
	return res ? res : auth_check_request(&ci->auth, hdr, op ? op->name : NULL);
}

/* a complete request: the key exchange is answered here, everything else goes to its queue */
static void dispatch_request(struct client_info *ci, struct request *req)
{
	if (!auth_opcode(req->rq.opcode)) {
		if (req->op->type == SD_OP_TYPE_CLUSTER)
			limits_cluster_op(&ci->meter, 1);   /* one client cannot fill the cluster queue */
		queue_request(req);
		return;
	}
	if (auth_conn_handle(&ci->auth, req) == SD_RES_PERM_DENIED)
		ci->closing = true;   /* a refused proof ends the connection once answered */
	request_done(req);
}

static void start_request(struct client_info *ci)
{
	const struct sd_req *hdr = &ci->rx_hdr;
	int res = check_header(ci, hdr);
	bool has_payload = hdr->flags & SD_FLAG_CMD_WRITE;

	if (res) {
		char what[32];
		snprintf(what, sizeof(what), "0x%02x", hdr->opcode);
		sd_debug("refusing request op %s len %u: result 0x%x", what, hdr->data_length, res);
		if (has_payload && hdr->data_length) {
			if (hdr->data_length > SD_MAX_DATA_LENGTH) {
				/* cannot skip that much safely: answer, then close */
				reply_now(ci, hdr, res);
				ci->closing = true;
				return;
			}
			ci->rx_state = RX_DRAIN;
			ci->drain_left = hdr->data_length;
			ci->drain_result = res;
			return;
		}
		reply_now(ci, hdr, res);
		return;
	}
	struct request *req = xzalloc(sizeof(*req));
	req->rq = *hdr;
	req->op = get_sd_op(hdr->opcode);
	req->ci = ci;
	req->start_ns = now_ns();
	INIT_LIST_HEAD(&req->list);
	req->data_size = hdr->data_length;
	if (req->data_size)
		req->data = xzalloc(req->data_size);
	limits_account(&ci->meter, req->data_size);
	ci->refcnt++;
	ci->inflight++;
	if (has_payload && hdr->data_length) {
		ci->rx_req = req;
		ci->rx_state = RX_DATA;
		ci->rx_off = 0;
		return;
	}
	dispatch_request(ci, req);
}

static void client_tx(struct client_info *ci);

static void client_rx(struct client_info *ci)
{
	for (int rounds = 0; rounds < 64 && !ci->dead && !ci->closing; rounds++) {
		ssize_t n;
		if (ci->rx_state == RX_HDR && !ci->rx_off && !limits_may_read(&ci->meter)) {
			update_events(ci);   /* until its replies drain (conn_limits.c wakes it) */
			return;
		}
		switch (ci->rx_state) {
		case RX_HDR:
			n = read(ci->fd, (char *)&ci->rx_hdr + ci->rx_off, sizeof(ci->rx_hdr) - ci->rx_off);
			break;
		case RX_DATA:
			n = read(ci->fd, (char *)ci->rx_req->data + ci->rx_off, ci->rx_req->rq.data_length - ci->rx_off);
			break;
		default: {
			char buf[65536];
			n = read(ci->fd, buf, MIN(sizeof(buf), ci->drain_left));
			break;
		}
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			sd_warn("client connection %d: read: %m; closing it", ci->fd);
			client_close(ci);
			return;
		}
		if (n == 0) {
			/* the peer is done sending: finish what it asked, then close */
			ci->closing = true;
			client_tx(ci);
			return;
		}
		switch (ci->rx_state) {
		case RX_HDR:
			ci->rx_off += n;
			if (ci->rx_off == sizeof(ci->rx_hdr)) {
				ci->rx_off = 0;
				start_request(ci);
			}
			break;
		case RX_DATA:
			ci->rx_off += n;
			if (ci->rx_off == ci->rx_req->rq.data_length) {
				struct request *req = ci->rx_req;
				ci->rx_req = NULL;
				ci->rx_state = RX_HDR;
				ci->rx_off = 0;
				dispatch_request(ci, req);
			}
			break;
		case RX_DRAIN:
			ci->drain_left -= n;
			if (!ci->drain_left) {
				ci->rx_state = RX_HDR;
				reply_now(ci, &ci->rx_hdr, ci->drain_result);
			}
			break;
		}
		limits_progress(&ci->meter, ci->rx_state != RX_HDR || ci->rx_off);
	}
}

static void client_tx(struct client_info *ci)
{
	while (!ci->dead) {
		if (!ci->tx_req) {
			if (list_empty(&ci->tx_queue))
				break;
			ci->tx_req = list_first_entry(&ci->tx_queue, struct request, list);
			list_del(&ci->tx_req->list);
			ci->tx_off = 0;
		}
		struct request *req = ci->tx_req;
		size_t total = sizeof(req->rp) + req->rp.data_length;
		struct iovec iov[2];
		int cnt = 0;
		if (ci->tx_off < sizeof(req->rp)) {
			iov[cnt].iov_base = (char *)&req->rp + ci->tx_off;
			iov[cnt++].iov_len = sizeof(req->rp) - ci->tx_off;
			if (req->rp.data_length) {
				iov[cnt].iov_base = req->data;
				iov[cnt++].iov_len = req->rp.data_length;
			}
		} else {
			iov[cnt].iov_base = (char *)req->data + (ci->tx_off - sizeof(req->rp));
			iov[cnt++].iov_len = total - ci->tx_off;
		}
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = cnt };
		ssize_t n = sendmsg(ci->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			sd_warn("client connection %d: send: %m; closing it", ci->fd);
			client_close(ci);
			return;
		}
		ci->tx_off += n;
		if (ci->tx_off == total) {
			ci->tx_req = NULL;
			free_request(req);
			client_put(ci);
		}
	}
	if (ci->dead)
		return;
	if (ci->closing && !ci->tx_req && list_empty(&ci->tx_queue) && !ci->inflight) {
		client_close(ci);
		return;
	}
	update_events(ci);
}

static void client_handler(int fd, uint32_t events, void *data)
{
	struct client_info *ci = data;
	ci->refcnt++;
	if (events & (EPOLLERR | EPOLLHUP)) {
		if (events & EPOLLERR)
			sd_warn("client connection %d: socket error; closing it", ci->fd);
		client_close(ci);
	} else {
		if (events & EPOLLIN)
			client_rx(ci);
		if (!ci->dead && (events & EPOLLOUT))
			client_tx(ci);
		if (!ci->dead && (events & EPOLLRDHUP) && !(events & EPOLLIN)) {
			ci->closing = true;
			client_tx(ci);
		}
		if (!ci->dead)
			update_events(ci);
	}
	client_put(ci);
}

static int spare_fd = -1;   /* given up to take (and close) a connection when out of files */

int accept_client(int listen_fd, const char *what)
{
	int cfd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0) {
		int err = errno;
		if (err != EAGAIN)
			sd_warn_rl("%s: accept: %m", what);
		if ((err == EMFILE || err == ENFILE) && spare_fd >= 0) {
			/* out of files: the pending connection is taken and closed, so the listening
			 * socket does not stay readable and spin the loop */
			close(spare_fd);
			int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0)
				close(c);
			spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		}
		errno = err;
		return -1;
	}
	if (sys->shutting_down) {
		close(cfd);
		return -1;
	}
	int on = 1;
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	set_keepalive(cfd);
	return cfd;
}

int listen_port(const char *addr, int port, void (*handler)(int fd, uint32_t events, void *data))
{
	int fd = listen_tcp(addr, port);
	if (fd < 0)
		return fd;
	if (spare_fd < 0)
		spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	set_nonblocking(fd);
	int ret = register_event(fd, handler, NULL, EPOLLIN);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

/* ---- the limits' side of connections (conn_limits.c decides, this file acts) ---- */

static void meter_close(struct conn_meter *m, const char *why)
{
	struct client_info *ci = container_of(m, struct client_info, meter);
	sd_warn_rl("closing client connection %d from %s: %s", ci->fd, ci->auth.peer, why);
	ci->refcnt++;
	client_close(ci);
	client_put(ci);
}

static void meter_wake(struct conn_meter *m)
{
	struct client_info *ci = container_of(m, struct client_info, meter);
	if (!ci->dead)
		update_events(ci);
}

static int accept_one(int fd)
{
	int cfd = accept_client(fd, "sheep");
	if (cfd < 0)
		return -1;
	struct client_info *ci = xzalloc(sizeof(*ci));
	if (limits_admit(LIMITS_SHEEP, &ci->meter, cfd) < 0) {
		close(cfd);
		free(ci);
		return 0;
	}
	ci->fd = cfd;
	ci->refcnt = 1;
	ci->events = EPOLLIN | EPOLLRDHUP;
	INIT_LIST_HEAD(&ci->tx_queue);
	auth_conn_init(&ci->auth, cfd);
	if (register_event(cfd, client_handler, ci, ci->events) < 0) {
		limits_forget(&ci->meter);
		close(cfd);
		free(ci);
	}
	return 0;
}

static const struct limits_ops client_limits_ops = {
	.close = meter_close, .wake = meter_wake, .accept_one = accept_one,
};

static void listen_handler(int fd, uint32_t events, void *data)
{
	limits_accept(LIMITS_SHEEP);
}

int create_listen_port(const char *bindaddr, int port)
{
	int fd = listen_port(bindaddr, port, listen_handler);
	if (fd < 0)
		return fd;
	limits_start(LIMITS_SHEEP, &client_limits_ops, fd);
	return 0;
}
