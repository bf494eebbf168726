/* nbd.c: the NBD export (--nbd): connections on the main loop, fixed-newstyle negotiation, then
 * transmission requests run on the "nbd" work queue and answered in completion order. Export
 * "NAME" is the working VDI, "NAME@TAG" a snapshot, read-only. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nbd_proto.h"
#include "proto_check.h"
#include "sd_client.h"
#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "net.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "work.h"
#include "alloc.h"
#include "cluster_view.h"
#include "conn_limits.h"
#include "gateway.h"
#include "nbd.h"
#include "nbd_tls.h"
#include "node_stat.h"
#include "ops.h"
#include "request.h"
#include "request_types.h"
#include "vdi_state.h"

/* Each request is checked (nbd_proto.c), run on the "nbd" work queue and answered when done, so
 * many requests are in flight per connection. Every connection to one export shares one open VDI
 * (lib/sd_client.c, the sheepdog guest flow), whose object I/O runs in-process through the
 * gateway ops of this sheep; a write is acknowledged once every replica has it, and FLUSH syncs
 * the store of every node (so CAN_MULTI_CONN holds). A bad request costs an NBD error; only a
 * request the stream cannot be resynchronised after closes the connection. */

#define NBD_WORKERS        32
#define NBD_MAX_INFLIGHT   128               /* requests read but not yet answered, per connection */
#define NBD_MAX_INFLIGHT_BYTES (256u << 20)
#define NBD_MAX_DRAIN      (64u << 20)       /* payloads we skip to stay in sync; beyond: close */
#define NBD_MAX_EXTENTS    2048
#define NBD_PREFERRED_BLOCK 4096
#define NBD_MAX_LIST       10000
#define NBD_MAX_OPTIONS    1024              /* options in one negotiation; clients send a handful */
#define NBD_POOL_BUF       (128u << 10)      /* requests up to this size reuse pooled buffers */
#define NBD_POOL_MAX       256

/* an open VDI shared by all connections to one export name */
struct nbd_export {
	char name[NBD_MAX_STRING + 1];
	struct sd_vdi *vdi;
	bool read_only;
	int refcnt;                    /* exports_lock */
	struct list_head list;
};

static pthread_mutex_t exports_lock = PTHREAD_MUTEX_INITIALIZER;
static struct list_head exports = LIST_HEAD_INIT(exports);
static struct work_queue *nbd_wq;

/* something to send: up to two pieces, then release */
struct nbd_tx {
	struct list_head list;
	struct iovec iov[2];
	int iovcnt;
	void (*release)(struct nbd_tx *tx);
};

enum nbd_state {
	NS_CLIENT_FLAGS,   /* 4 bytes of client flags */
	NS_OPT_HDR,        /* IHAVEOPT, option, length */
	NS_OPT_DATA,
	NS_OPT_DRAIN,      /* skipping an oversized option payload */
	NS_OPT_BUSY,       /* a worker handles the option */
	NS_REQ_HDR,        /* transmission */
	NS_REQ_DATA,       /* a WRITE payload */
	NS_REQ_DRAIN,      /* the payload of a refused WRITE */
	NS_TLS_START,      /* STARTTLS acknowledged: the ACK goes out in the clear, then TLS */
	NS_TLS_HANDSHAKE,
};

struct nbd_io;

struct nbd_conn {
	int fd;
	int refcnt;
	enum nbd_state state;
	bool closing;                  /* read nothing more; close when every reply is out */
	bool peer_shut;                /* the client shut its side; reading will find the end */
	bool dead;
	uint32_t events;
	char peer[64];
	struct nbd_tls *tls;           /* NULL: plain socket */
	bool tls_want_write;           /* the handshake waits for the socket to take bytes */

	uint8_t hdr[NBD_REQUEST_SIZE];
	size_t rx_off;
	uint32_t opt, opt_len;
	uint32_t nr_options;           /* options seen in this negotiation */
	uint8_t *opt_data;
	uint32_t drain_left;

	bool no_zeroes, structured, meta_alloc;
	char *meta_name;               /* export the meta context was set for */
	struct nbd_export *exp;
	struct nbd_export_limits lim;
	uint16_t tflags;

	struct nbd_io *rx_io;          /* request whose payload is coming */
	struct nbd_request drain_rq;
	uint32_t drain_err;
	int inflight;
	uint64_t inflight_bytes;

	struct list_head tx_queue;
	size_t tx_off;
	struct work close_work;
	struct conn_meter meter;       /* the caps and the stall clock (conn_limits.c) */
	bool progressed;               /* bytes moved since the meter last heard */
};

/* one transmission request */
struct nbd_io {
	struct work work;
	struct nbd_conn *conn;
	struct nbd_request rq;
	void *data;                    /* WRITE payload or READ result */
	uint8_t *extents;              /* BLOCK_STATUS payload */
	uint32_t ext_len;
	uint32_t err;                  /* NBD error */
	uint8_t rhdr[NBD_CHUNK_HEADER_SIZE + 16];
	struct nbd_tx tx;              /* its list links the pool too */
	uint32_t cap;                  /* bytes at data */
	uint64_t start_ns;             /* arrival, for node stat */
};

/* main thread only: finished requests kept with their buffers, so that steady small I/O
 * allocates nothing */
static struct list_head io_pool = LIST_HEAD_INIT(io_pool);
static int io_pool_len;

/* an option answered by a worker */
struct nbd_opt_work {
	struct work work;
	struct nbd_conn *conn;
	uint32_t opt;
	uint8_t *data;
	uint32_t len;
	struct nbd_info_opt info;
	struct nbd_export *exp;        /* GO / EXPORT_NAME result */
	int result;                    /* SD_RES_* of opening the export */
	uint64_t size;                 /* what INFO and GO report */
	uint32_t vid;
	bool read_only;
	char **names;                  /* LIST result */
	size_t nr_names;
};

static void conn_tx(struct nbd_conn *c);
static void conn_update_events(struct nbd_conn *c);

/* ---- exports ---- */

/* in-process transport for sd_client: the gateway rows of the opcode table, run right here */
static int nbd_gateway_exec(void *ctx, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp)
{
	const struct sd_op_template *op = get_sd_op(hdr->opcode);
	struct request req;
	int ret;

	if (!op || op->type != SD_OP_TYPE_GATEWAY || !op->process_work || op->process_main)
		return -ENOTSUP;
	memset(rsp, 0, sizeof(*rsp));
	ret = sd_check_request_header(hdr, true, SD_MAX_DATA_LENGTH);
	if (!ret)
		ret = op_check_state(op);
	if (!ret && !(hdr->flags & SD_FLAG_CMD_WRITE) && hdr->data_length > bufsize)
		ret = SD_RES_INVALID_PARMS;
	if (ret) {
		rsp->result = ret;
		return ret;
	}
	memset(&req, 0, sizeof(req));
	req.rq = *hdr;
	req.op = op;
	req.data = data;
	req.data_size = (hdr->flags & SD_FLAG_CMD_WRITE) ? hdr->data_length : bufsize;
	INIT_LIST_HEAD(&req.list);
	rsp->result = op->process_work(&req);
	rsp->data_length = rsp->result == SD_RES_SUCCESS ? req.rp.data_length : 0;
	rsp->id = hdr->id;
	return rsp->result;
}

static void self_addr(char *buf, size_t len)
{
	addr_to_str(sys->this_node.addr, buf, len);
}

/* worker: find or open the export NAME or NAME@TAG */
static int export_get(const char *name, struct nbd_export **out)
{
	char vdi[SD_MAX_VDI_LEN + 1], tag[SD_MAX_VDI_TAG_LEN + 1], host[64];
	struct nbd_export *e;
	int ret;

	if (nbd_split_export_name(name, vdi, sizeof(vdi), tag, sizeof(tag)) < 0 || strlen(vdi) >= SD_MAX_VDI_LEN)
		return SD_RES_NO_VDI;
	pthread_mutex_lock(&exports_lock);
	struct list_head *pos, *n;
	list_for_each_safe(pos, n, &exports) {
		e = list_entry(pos, struct nbd_export, list);
		if (!strcmp(e->name, name)) {
			e->refcnt++;
			pthread_mutex_unlock(&exports_lock);
			*out = e;
			return SD_RES_SUCCESS;
		}
	}
	/* opening under the lock keeps one open VDI per export; it talks to our own port */
	e = xzalloc(sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->read_only = tag[0] != 0;
	self_addr(host, sizeof(host));
	/* a guest lock still held by an export another sheep is just closing clears in a moment */
	for (int tries = 0; tries < 30; tries++) {
		ret = sd_vdi_open(host, sys->this_node.port, vdi, tag[0] ? tag : NULL, !e->read_only, &e->vdi);
		if (ret != SD_RES_VDI_LOCKED)
			break;
		usleep(100000);
	}
	if (ret) {
		pthread_mutex_unlock(&exports_lock);
		free(e);
		return ret;
	}
	sd_vdi_set_exec(e->vdi, nbd_gateway_exec, NULL);
	e->refcnt = 1;
	list_add_tail(&e->list, &exports);
	pthread_mutex_unlock(&exports_lock);
	sd_info_rl("nbd: export %s opened (VDI %" PRIx32 "%s)", name, sd_vdi_id(e->vdi),
		e->read_only ? ", read-only" : "");
	*out = e;
	return SD_RES_SUCCESS;
}

/* worker: drop a reference; the last one closes the VDI (and releases its lock) */
static void export_put(struct nbd_export *e)
{
	pthread_mutex_lock(&exports_lock);
	bool last = --e->refcnt == 0;
	if (last)
		list_del(&e->list);
	pthread_mutex_unlock(&exports_lock);
	if (!last)
		return;
	sd_info_rl("nbd: export %s closed", e->name);
	sd_vdi_close(e->vdi);
	free(e);
}

static uint16_t export_flags(bool read_only, bool structured)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_CAN_MULTI_CONN;
	if (structured)
		f |= NBD_FLAG_SEND_DF;
	if (read_only)
		return f | NBD_FLAG_READ_ONLY;
	return f | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
}

/* ---- connections ---- */

static void conn_free(struct nbd_conn *c)
{
	free(c->opt_data);
	free(c->meta_name);
	free(c);
}

static void close_work_fn(struct work *w)
{
	struct nbd_conn *c = container_of(w, struct nbd_conn, close_work);
	export_put(c->exp);
}

static void close_work_done(struct work *w)
{
	conn_free(container_of(w, struct nbd_conn, close_work));
}

static void conn_put(struct nbd_conn *c)
{
	if (--c->refcnt)
		return;
	if (c->exp) {
		/* closing the VDI talks to the cluster: not on the main thread */
		c->close_work.fn = close_work_fn;
		c->close_work.done = close_work_done;
		queue_work(nbd_wq, &c->close_work);
		return;
	}
	conn_free(c);
}

static void tx_release_all(struct nbd_conn *c)
{
	struct list_head *pos, *n;
	list_for_each_safe(pos, n, &c->tx_queue) {
		struct nbd_tx *t = list_entry(pos, struct nbd_tx, list);
		list_del(&t->list);
		t->release(t);
	}
}

/* the socket is gone: drop what was queued; the caller holds a reference */
static void conn_close(struct nbd_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	unregister_event(c->fd);
	nbd_tls_free(c->tls);
	c->tls = NULL;
	close(c->fd);
	limits_forget(&c->meter);
	sd_debug_rl("nbd: %s closed", c->peer);
	if (c->rx_io) {
		struct nbd_io *io = c->rx_io;
		c->rx_io = NULL;
		io->tx.release(&io->tx);
	}
	tx_release_all(c);
	c->refcnt--;     /* the socket's reference */
}

/* Past the node-wide --max-buffer a connection is held between requests only (conn_limits.c wakes
 * it): held in the middle of a WRITE payload, whose buffer is already counted, it could wait for
 * memory only it would free. */
static bool conn_can_read(struct nbd_conn *c)
{
	if (c->closing || c->state == NS_OPT_BUSY || c->state == NS_TLS_START || c->state == NS_TLS_HANDSHAKE)
		return false;
	if (c->inflight >= NBD_MAX_INFLIGHT || c->inflight_bytes >= NBD_MAX_INFLIGHT_BYTES)
		return false;
	return c->state != NS_REQ_HDR || c->rx_off || limits_may_read(&c->meter);
}

/* Is the connection waiting for its client's bytes, so that none coming for --request-timeout is a
 * stall? In the middle of a negotiation (TLS handshake included) or of a request, yes; idle
 * between requests, or waiting on its own replies (an option on a worker, too many requests in
 * flight), no. A closing connection waits for its client to take its last replies. */
static bool conn_waits_on_client(struct nbd_conn *c)
{
	if (c->closing)
		return !list_empty(&c->tx_queue);
	switch (c->state) {
	case NS_OPT_BUSY:
		return false;
	case NS_REQ_HDR:
		if (!c->rx_off)
			return false;
		/* fall through */
	case NS_REQ_DATA:
	case NS_REQ_DRAIN:
		return conn_can_read(c);
	default:
		return true;
	}
}

static void conn_update_events(struct nbd_conn *c)
{
	if (c->dead)
		return;
	limits_waiting(&c->meter, conn_waits_on_client(c), c->progressed);
	c->progressed = false;
	uint32_t ev = c->peer_shut || c->closing ? 0 : EPOLLRDHUP;   /* level-triggered: once */
	if (conn_can_read(c))
		ev |= EPOLLIN;
	if (!list_empty(&c->tx_queue))
		ev |= EPOLLOUT;
	if (c->state == NS_TLS_HANDSHAKE)
		ev = c->tls_want_write ? EPOLLOUT : EPOLLIN;
	else if (c->tls && (ev & EPOLLIN) && nbd_tls_pending(c->tls))
		ev |= EPOLLOUT;     /* bytes already decrypted: come back at once (conn_handler reads them) */
	if (ev != c->events) {
		c->events = ev;
		modify_event(c->fd, ev);
	}
}

static void free_tx(struct nbd_tx *t)
{
	free(t);
}

/* queue bytes (copied) to send */
static void conn_send(struct nbd_conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
	struct nbd_tx *t = xmalloc(sizeof(*t) + alen + blen);
	uint8_t *buf = (uint8_t *)(t + 1);
	memcpy(buf, a, alen);
	if (blen)
		memcpy(buf + alen, b, blen);
	t->iov[0].iov_base = buf;
	t->iov[0].iov_len = alen + blen;
	t->iovcnt = 1;
	t->release = free_tx;
	list_add_tail(&t->list, &c->tx_queue);
}

static void opt_reply(struct nbd_conn *c, uint32_t type, const void *payload, uint32_t len)
{
	uint8_t h[20];
	nbd_build_option_reply(h, c->opt, type, len);
	conn_send(c, h, sizeof(h), payload, len);
}

static void opt_error(struct nbd_conn *c, uint32_t type, const char *msg)
{
	opt_reply(c, type, msg, msg ? strlen(msg) : 0);
}

/* ---- transmission ---- */

static uint32_t sd_to_nbd_err(int res)
{
	switch (res) {
	case SD_RES_SUCCESS: return 0;
	case SD_RES_READONLY: return NBD_EPERM;
	case SD_RES_NO_SPACE: return NBD_ENOSPC;
	case SD_RES_INVALID_PARMS: return NBD_EINVAL;
	case SD_RES_NO_MEM: case -ENOMEM: return NBD_ENOMEM;
	case SD_RES_NO_SUPPORT: return NBD_ENOTSUP;
	case SD_RES_SHUTDOWN: return NBD_ESHUTDOWN;
	}
	return NBD_EIO;
}

static void io_release(struct nbd_tx *t)
{
	struct nbd_io *io = container_of(t, struct nbd_io, tx);
	struct nbd_conn *c = io->conn;
	c->inflight--;
	if (io->rq.type == NBD_CMD_READ || io->rq.type == NBD_CMD_WRITE) {
		c->inflight_bytes -= io->rq.length;
		limits_account(&c->meter, -(long long)io->rq.length);
	}
	free(io->extents);
	io->extents = NULL;
	if (io->cap == NBD_POOL_BUF && io_pool_len < NBD_POOL_MAX) {
		list_add(&io->tx.list, &io_pool);
		io_pool_len++;
	} else {
		free(io->data);
		free(io);
	}
	if (!c->dead)
		conn_update_events(c);
	conn_put(c);
}

/* a request with room for need bytes of data (io->data NULL if that much memory is not there) */
static struct nbd_io *io_new(struct nbd_conn *c, const struct nbd_request *rq, uint32_t need)
{
	struct nbd_io *io;
	if (need <= NBD_POOL_BUF && io_pool_len) {
		io = list_first_entry(&io_pool, struct nbd_io, tx.list);
		list_del(&io->tx.list);
		io_pool_len--;
		void *data = io->data;
		memset(io, 0, sizeof(*io));
		io->data = data;
		io->cap = NBD_POOL_BUF;
	} else {
		io = xzalloc(sizeof(*io));
		if (need) {
			io->cap = need <= NBD_POOL_BUF ? NBD_POOL_BUF : need;
			io->data = malloc(io->cap);
			if (!io->data)
				io->cap = 0;
		}
	}
	io->conn = c;
	io->rq = *rq;
	io->start_ns = now_ns();
	io->tx.release = io_release;
	c->refcnt++;
	c->inflight++;
	if (rq->type == NBD_CMD_READ || rq->type == NBD_CMD_WRITE) {
		c->inflight_bytes += rq->length;
		limits_account(&c->meter, rq->length);     /* the node-wide --max-buffer */
	}
	return io;
}

/* BLOCK_STATUS: runs of allocated objects (flags 0) and holes (HOLE|ZERO) from the index */
static int io_block_status(struct nbd_io *io, struct sd_vdi *vdi)
{
	uint32_t max = (io->rq.flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_MAX_EXTENTS;
	uint64_t off = io->rq.offset, end = io->rq.offset + io->rq.length;
	uint32_t nr = 0;
	io->extents = xmalloc(4 + 8 * max);
	nbd_put32(io->extents, NBD_META_ID_BASE_ALLOCATION);
	while (off < end && nr < max) {
		bool allocated;
		uint64_t run;
		int ret = sd_vdi_block_status(vdi, off, end - off, &allocated, &run);
		if (ret)
			return ret;
		uint8_t *p = io->extents + 4 + 8 * nr;
		if (nr && !!(nbd_get32(p - 4)) == !allocated) {
			/* same kind as the previous extent: merge */
			nbd_put32(p - 8, nbd_get32(p - 8) + run);
		} else {
			nbd_put32(p, run);
			nbd_put32(p + 4, allocated ? 0 : NBD_STATE_HOLE | NBD_STATE_ZERO);
			nr++;
		}
		off += run;
	}
	io->ext_len = 4 + 8 * nr;
	return SD_RES_SUCCESS;
}

static void io_work(struct work *w)
{
	struct nbd_io *io = container_of(w, struct nbd_io, work);
	struct sd_vdi *vdi = io->conn->exp->vdi;
	const struct nbd_request *rq = &io->rq;
	unsigned flags = (rq->flags & NBD_CMD_FLAG_FUA) ? SD_VDI_SYNC : 0;
	int ret = SD_RES_INVALID_PARMS;

	switch (rq->type) {
	case NBD_CMD_READ:
		ret = io->data ? sd_vdi_pread(vdi, io->data, rq->length, rq->offset) : SD_RES_NO_MEM;
		break;
	case NBD_CMD_WRITE:
		ret = sd_vdi_pwrite_flags(vdi, io->data, rq->length, rq->offset, flags);
		break;
	case NBD_CMD_FLUSH:
		ret = sd_vdi_flush(vdi);
		break;
	case NBD_CMD_TRIM:
		ret = sd_vdi_write_zeroes(vdi, rq->offset, rq->length, flags);
		break;
	case NBD_CMD_WRITE_ZEROES:
		if (rq->flags & NBD_CMD_FLAG_NO_HOLE)
			flags |= SD_VDI_ALLOCATE;
		if (rq->flags & NBD_CMD_FLAG_FAST_ZERO)
			flags |= SD_VDI_FAST;
		ret = sd_vdi_write_zeroes(vdi, rq->offset, rq->length, flags);
		break;
	case NBD_CMD_BLOCK_STATUS:
		ret = io_block_status(io, vdi);
		break;
	}
	io->err = sd_to_nbd_err(ret);
	if (ret && !(rq->type == NBD_CMD_WRITE_ZEROES && ret == SD_RES_NO_SUPPORT))
		sd_warn("nbd: %s %s %" PRIu64 "+%" PRIu32 " failed: %s", io->conn->exp->name,
			nbd_cmd_name(rq->type), rq->offset, rq->length, sd_strerror(ret));
}

/* main thread: the reply of a finished (or refused) request goes on the queue */
/* the sheepdog opcode an NBD command counts as in node stat */
static uint8_t nbd_stat_opcode(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ: return SD_OP_READ_OBJ;
	case NBD_CMD_WRITE: case NBD_CMD_WRITE_ZEROES: case NBD_CMD_TRIM: return SD_OP_WRITE_OBJ;
	case NBD_CMD_FLUSH: return SD_OP_FLUSH_VDI;
	default: return 0;
	}
}

static void io_reply(struct nbd_io *io)
{
	struct nbd_conn *c = io->conn;
	const struct nbd_request *rq = &io->rq;
	struct nbd_tx *t = &io->tx;
	size_t n;

	node_stat_note(nbd_stat_opcode(rq->type), io->err ? SD_RES_EIO : SD_RES_SUCCESS,
		       rq->type == NBD_CMD_READ || rq->type == NBD_CMD_WRITE ? rq->length : 0,
		       now_ns() - io->start_ns);
	if (c->dead) {
		t->release(t);
		return;
	}
	t->iovcnt = 1;
	t->iov[0].iov_base = io->rhdr;
	if (c->structured && (rq->type == NBD_CMD_READ || rq->type == NBD_CMD_BLOCK_STATUS)) {
		if (io->err) {
			n = nbd_build_chunk_header(io->rhdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, rq->cookie, 6);
			nbd_put16(nbd_put32(io->rhdr + n, io->err), 0);
			n += 6;
		} else if (rq->type == NBD_CMD_READ) {
			n = nbd_build_chunk_header(io->rhdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
						   rq->cookie, 8 + rq->length);
			nbd_put64(io->rhdr + n, rq->offset);
			n += 8;
			t->iov[1].iov_base = io->data;
			t->iov[1].iov_len = rq->length;
			t->iovcnt = 2;
		} else {
			n = nbd_build_chunk_header(io->rhdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
						   rq->cookie, io->ext_len);
			t->iov[1].iov_base = io->extents;
			t->iov[1].iov_len = io->ext_len;
			t->iovcnt = 2;
		}
	} else {
		n = nbd_build_simple_reply(io->rhdr, io->err, rq->cookie);
		if (rq->type == NBD_CMD_READ && !io->err) {
			t->iov[1].iov_base = io->data;
			t->iov[1].iov_len = rq->length;
			t->iovcnt = 2;
		}
	}
	t->iov[0].iov_len = n;
	list_add_tail(&t->list, &c->tx_queue);
	conn_tx(c);
}

static void io_done(struct work *w)
{
	io_reply(container_of(w, struct nbd_io, work));
}

static void io_refuse(struct nbd_conn *c, const struct nbd_request *rq, uint32_t err)
{
	struct nbd_io *io = io_new(c, rq, 0);
	io->err = err;
	sd_debug_rl("nbd: %s: %s %" PRIu64 "+%" PRIu32 " flags 0x%x refused: %s", c->peer, nbd_cmd_name(rq->type),
		 rq->offset, rq->length, rq->flags, nbd_err_name(err));
	io_reply(io);
}

static void io_start(struct nbd_io *io)
{
	io->work.fn = io_work;
	io->work.done = io_done;
	queue_work(nbd_wq, &io->work);
}

/* a request header is in */
static void req_header(struct nbd_conn *c)
{
	struct nbd_request rq;
	if (nbd_parse_request(c->hdr, &rq) < 0) {
		sd_warn("nbd: %s: bad request magic 0x%08" PRIx32 ", closing", c->peer, rq.magic);
		c->closing = true;
		return;
	}
	if (rq.type == NBD_CMD_DISC) {
		sd_debug_rl("nbd: %s: disconnect", c->peer);
		c->closing = true;
		return;
	}
	uint32_t err = nbd_check_request(&rq, &c->lim);
	if (rq.type == NBD_CMD_WRITE) {
		if (err) {
			if (rq.length > NBD_MAX_DRAIN) {
				/* cannot skip that much: answer, then stop reading */
				io_refuse(c, &rq, err);
				c->closing = true;
				return;
			}
			c->drain_rq = rq;
			c->drain_err = err;
			c->drain_left = rq.length;
			c->state = rq.length ? NS_REQ_DRAIN : NS_REQ_HDR;
			if (!rq.length)
				io_refuse(c, &rq, err);
			return;
		}
		struct nbd_io *io = io_new(c, &rq, rq.length);
		if (!io->data) {
			io->tx.release(&io->tx);
			c->drain_rq = rq;
			c->drain_err = NBD_ENOMEM;
			c->drain_left = rq.length;
			c->state = NS_REQ_DRAIN;
			return;
		}
		c->rx_io = io;
		c->rx_off = 0;
		c->state = NS_REQ_DATA;
		return;
	}
	if (err) {
		io_refuse(c, &rq, err);
		return;
	}
	io_start(io_new(c, &rq, rq.type == NBD_CMD_READ ? rq.length : 0));
}

/* ---- negotiation ---- */

static void enter_transmission(struct nbd_conn *c, struct nbd_export *e)
{
	c->exp = e;
	c->tflags = export_flags(e->read_only, c->structured);
	c->lim.size = sd_vdi_size(e->vdi);
	c->lim.max_request = NBD_MAX_REQUEST;
	c->lim.read_only = e->read_only;
	c->lim.structured = c->structured;
	c->lim.meta_allocation = c->meta_alloc;
	c->state = NS_REQ_HDR;
	c->meter.proven = true;        /* negotiated: no longer the first to be evicted at the cap */
	sd_info_rl("nbd: %s: serving %s (%" PRIu64 " bytes%s%s)", c->peer, e->name, c->lim.size,
		e->read_only ? ", read-only" : "", c->structured ? ", structured replies" : "");
}

static void send_info_replies(struct nbd_conn *c, struct nbd_opt_work *ow)
{
	uint8_t buf[16], *p;

	p = nbd_put16(buf, NBD_INFO_EXPORT);
	p = nbd_put64(p, ow->size);
	p = nbd_put16(p, export_flags(ow->read_only, c->structured));
	opt_reply(c, NBD_REP_INFO, buf, p - buf);
	if (ow->info.want_name || ow->info.want_description) {
		size_t nl = strlen(ow->info.name);
		uint8_t *msg = xmalloc(2 + MAX(nl, (size_t)64));
		if (ow->info.want_name) {
			nbd_put16(msg, NBD_INFO_NAME);
			memcpy(msg + 2, ow->info.name, nl);
			opt_reply(c, NBD_REP_INFO, msg, 2 + nl);
		}
		if (ow->info.want_description) {
			nbd_put16(msg, NBD_INFO_DESCRIPTION);
			int dl = snprintf((char *)msg + 2, 62, "Sheepfold VDI %" PRIx32 "%s", ow->vid,
					  ow->read_only ? " (snapshot)" : "");
			opt_reply(c, NBD_REP_INFO, msg, 2 + MIN(dl, 61));
		}
		free(msg);
	}
	/* block sizes are always given: any alignment works, 4 KiB is best, 32 MiB per request */
	p = nbd_put16(buf, NBD_INFO_BLOCK_SIZE);
	p = nbd_put32(p, 1);
	p = nbd_put32(p, NBD_PREFERRED_BLOCK);
	p = nbd_put32(p, NBD_MAX_REQUEST);
	opt_reply(c, NBD_REP_INFO, buf, p - buf);
}

static void list_vdis(struct nbd_opt_work *ow)
{
	uint8_t *bitmap = xmalloc(SD_NR_VDIS / 8);
	struct sd_inode_header *h = xzalloc(sizeof(*h));
	size_t cap = 16;

	vdi_bitmap_copy(bitmap);
	ow->names = xmalloc(cap * sizeof(char *));
	for (uint32_t v = 1; v < SD_NR_VDIS && ow->nr_names < NBD_MAX_LIST; v++) {
		if (!(bitmap[v / 8] & (1u << (v % 8))))
			continue;
		if (gateway_read_obj(vid_to_vdi_oid(v), h, offsetof(struct sd_inode_header, reserved_area), 0) !=
		    SD_RES_SUCCESS || !h->name[0])
			continue;
		char name[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN + 16];
		if (!h->snap_ctime)
			snprintf(name, sizeof(name), "%.255s", h->name);
		else if (h->tag[0])
			snprintf(name, sizeof(name), "%.255s@%.255s", h->name, h->tag);
		else
			snprintf(name, sizeof(name), "%.255s@%" PRIu32, h->name, h->snap_id);
		if (ow->nr_names == cap) {
			char **nn = realloc(ow->names, 2 * cap * sizeof(char *));
			if (!nn)
				break;
			ow->names = nn;
			cap *= 2;
		}
		ow->names[ow->nr_names++] = xmalloc(strlen(name) + 1);
		strcpy(ow->names[ow->nr_names - 1], name);
	}
	free(h);
	free(bitmap);
}

/* worker: list the VDIs, or open the export of GO, INFO or EXPORT_NAME */
static void opt_work_fn(struct work *w)
{
	struct nbd_opt_work *ow = container_of(w, struct nbd_opt_work, work);
	if (ow->opt == NBD_OPT_LIST) {
		list_vdis(ow);
		return;
	}
	const char *name = ow->opt == NBD_OPT_EXPORT_NAME ? (const char *)ow->data : ow->info.name;
	ow->result = export_get(name, &ow->exp);
	if (ow->result)
		return;
	ow->size = sd_vdi_size(ow->exp->vdi);
	ow->vid = sd_vdi_id(ow->exp->vdi);
	ow->read_only = ow->exp->read_only;
	if (ow->opt == NBD_OPT_INFO) {
		export_put(ow->exp);     /* INFO only looks */
		ow->exp = NULL;
	}
}

static void opt_work_free(struct nbd_opt_work *ow)
{
	for (size_t i = 0; i < ow->nr_names; i++)
		free(ow->names[i]);
	free(ow->names);
	free(ow->data);
	free(ow);
}

static void put_work_fn(struct work *w)
{
	struct nbd_opt_work *ow = container_of(w, struct nbd_opt_work, work);
	export_put(ow->exp);
}

static void put_work_done(struct work *w)
{
	opt_work_free(container_of(w, struct nbd_opt_work, work));
}

static void opt_work_done(struct work *w)
{
	struct nbd_opt_work *ow = container_of(w, struct nbd_opt_work, work);
	struct nbd_conn *c = ow->conn;

	if (c->dead)
		goto out;
	c->state = NS_OPT_HDR;
	switch (ow->opt) {
	case NBD_OPT_LIST:
		for (size_t i = 0; i < ow->nr_names; i++) {
			uint32_t l = strlen(ow->names[i]);
			uint8_t *buf = xmalloc(4 + l);
			nbd_put32(buf, l);
			memcpy(buf + 4, ow->names[i], l);
			opt_reply(c, NBD_REP_SERVER, buf, 4 + l);
			free(buf);
		}
		opt_reply(c, NBD_REP_ACK, NULL, 0);
		break;
	case NBD_OPT_EXPORT_NAME:
		if (ow->result) {
			sd_info_rl("nbd: %s: no export %s: %s", c->peer, (char *)ow->data, sd_strerror(ow->result));
			c->closing = true;      /* this option has no error reply */
			break;
		}
		uint8_t buf[10 + 124] = { 0 };
		nbd_put64(buf, ow->size);
		nbd_put16(buf + 8, export_flags(ow->read_only, c->structured));
		conn_send(c, buf, c->no_zeroes ? 10 : sizeof(buf), NULL, 0);
		enter_transmission(c, ow->exp);
		ow->exp = NULL;
		break;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		if (ow->result) {
			char msg[300];
			snprintf(msg, sizeof(msg), "%.200s: %s", ow->info.name, sd_strerror(ow->result));
			uint32_t err = NBD_REP_ERR_PLATFORM;
			if (ow->result == SD_RES_NO_VDI || ow->result == SD_RES_NO_TAG)
				err = NBD_REP_ERR_UNKNOWN;
			else if (ow->result == SD_RES_VDI_LOCKED)
				err = NBD_REP_ERR_POLICY;    /* another sheep's guest holds it */
			opt_error(c, err, msg);
			break;
		}
		send_info_replies(c, ow);
		opt_reply(c, NBD_REP_ACK, NULL, 0);
		if (ow->opt == NBD_OPT_GO) {
			if (c->meta_alloc && (!c->meta_name || strcmp(c->meta_name, ow->info.name)))
				c->meta_alloc = false;     /* it was set for another export */
			enter_transmission(c, ow->exp);
			ow->exp = NULL;
		}
		break;
	}
	conn_tx(c);
out:
	conn_put(c);
	if (ow->exp) {
		/* the connection died meanwhile: give the export back on a worker */
		ow->work.fn = put_work_fn;
		ow->work.done = put_work_done;
		queue_work(nbd_wq, &ow->work);
		return;
	}
	opt_work_free(ow);
}

static void opt_to_worker(struct nbd_conn *c)
{
	struct nbd_opt_work *ow = xzalloc(sizeof(*ow));
	ow->conn = c;
	ow->opt = c->opt;
	ow->len = c->opt_len;
	ow->data = c->opt_data;      /* taken over */
	c->opt_data = NULL;
	if (c->opt == NBD_OPT_GO || c->opt == NBD_OPT_INFO)
		nbd_parse_info_opt(ow->data, ow->len, &ow->info);
	c->refcnt++;
	c->state = NS_OPT_BUSY;
	ow->work.fn = opt_work_fn;
	ow->work.done = opt_work_done;
	queue_work(nbd_wq, &ow->work);
}

/* Before TLS, with --nbd-tls-psk: STARTTLS starts it, ABORT ends, everything else is refused
 * (FORCEDTLS in the protocol's terms). True if the option was handled here. */
static bool tls_gate(struct nbd_conn *c)
{
	switch (c->opt) {
	case NBD_OPT_ABORT:
		return false;
	case NBD_OPT_STARTTLS:
		if (c->opt_len) {
			opt_error(c, NBD_REP_ERR_INVALID, "STARTTLS takes no data");
			return true;
		}
		opt_reply(c, NBD_REP_ACK, NULL, 0);
		c->state = NS_TLS_START;      /* conn_tx starts TLS once the ACK is out */
		return true;
	case NBD_OPT_EXPORT_NAME:
		/* it has no error reply: the protocol says disconnect */
		sd_info_rl("nbd: %s: EXPORT_NAME without TLS, closing", c->peer);
		c->closing = true;
		return true;
	default:
		sd_info_rl("nbd: %s: option %" PRIu32 " without TLS refused", c->peer, c->opt);
		opt_error(c, NBD_REP_ERR_TLS_REQD, "this server requires TLS (STARTTLS with a pre-shared key)");
		return true;
	}
}

/* a whole option is in c->opt_data */
static void handle_option(struct nbd_conn *c)
{
	uint32_t err;
	struct nbd_info_opt *info;
	struct nbd_meta_opt *meta;

	sd_debug_rl("nbd: %s: option %" PRIu32 " length %" PRIu32, c->peer, c->opt, c->opt_len);
	c->state = NS_OPT_HDR;
	if (nbd_tls_required() && !c->tls && tls_gate(c))
		goto out;
	switch (c->opt) {
	case NBD_OPT_EXPORT_NAME: {
		/* the name, unterminated on the wire */
		uint8_t *d = xmalloc(c->opt_len + 1);
		memcpy(d, c->opt_data, c->opt_len);
		d[c->opt_len] = 0;
		free(c->opt_data);
		c->opt_data = d;
		if (strlen((char *)d) != c->opt_len) {
			c->closing = true;
			break;
		}
		opt_to_worker(c);
		break;
	}
	case NBD_OPT_ABORT:
		opt_reply(c, NBD_REP_ACK, NULL, 0);
		c->closing = true;
		break;
	case NBD_OPT_LIST:
		if (c->opt_len) {
			opt_error(c, NBD_REP_ERR_INVALID, "LIST takes no data");
			break;
		}
		opt_to_worker(c);
		break;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		info = xmalloc(sizeof(*info));
		err = nbd_parse_info_opt(c->opt_data, c->opt_len, info);
		if (!err && !info->name[0])
			err = NBD_REP_ERR_UNKNOWN;     /* no default export */
		free(info);
		if (err) {
			opt_error(c, err, err == NBD_REP_ERR_UNKNOWN ? "an export name (a VDI) is needed" : NULL);
			break;
		}
		opt_to_worker(c);
		break;
	case NBD_OPT_STRUCTURED_REPLY:
		if (c->opt_len) {
			opt_error(c, NBD_REP_ERR_INVALID, NULL);
			break;
		}
		c->structured = true;
		opt_reply(c, NBD_REP_ACK, NULL, 0);
		break;
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		if (!c->structured) {
			opt_error(c, NBD_REP_ERR_INVALID, "structured replies first");
			break;
		}
		meta = xmalloc(sizeof(*meta));
		err = nbd_parse_meta_opt(c->opt_data, c->opt_len, c->opt == NBD_OPT_LIST_META_CONTEXT, meta);
		if (err) {
			free(meta);
			opt_error(c, err, NULL);
			break;
		}
		if (c->opt == NBD_OPT_SET_META_CONTEXT) {
			c->meta_alloc = meta->base_allocation;
			free(c->meta_name);
			c->meta_name = xmalloc(strlen(meta->name) + 1);
			strcpy(c->meta_name, meta->name);
		}
		if (meta->base_allocation) {
			static const char ctx[] = "base:allocation";
			uint8_t buf[4 + sizeof(ctx)];
			nbd_put32(buf, c->opt == NBD_OPT_SET_META_CONTEXT ? NBD_META_ID_BASE_ALLOCATION : 0);
			memcpy(buf + 4, ctx, sizeof(ctx) - 1);
			opt_reply(c, NBD_REP_META_CONTEXT, buf, 4 + sizeof(ctx) - 1);
		}
		free(meta);
		opt_reply(c, NBD_REP_ACK, NULL, 0);
		break;
	case NBD_OPT_STARTTLS:
		if (c->tls) {
			opt_error(c, NBD_REP_ERR_INVALID, "TLS is already on");
			break;
		}
		opt_error(c, NBD_REP_ERR_UNSUP, NULL);     /* no --nbd-tls-psk */
		break;
	default:
		/* EXTENDED_HEADERS and anything unknown */
		opt_error(c, NBD_REP_ERR_UNSUP, NULL);
		break;
	}
out:
	free(c->opt_data);
	c->opt_data = NULL;
}

/* ---- the socket ---- */

/* where the next bytes go, and how many */
static void rx_target(struct nbd_conn *c, void **buf, size_t *len)
{
	static uint8_t sink[65536];    /* main thread only */
	switch (c->state) {
	case NS_CLIENT_FLAGS: *buf = c->hdr + c->rx_off; *len = 4 - c->rx_off; break;
	case NS_OPT_HDR: *buf = c->hdr + c->rx_off; *len = 16 - c->rx_off; break;
	case NS_OPT_DATA: *buf = c->opt_data + c->rx_off; *len = c->opt_len - c->rx_off; break;
	case NS_REQ_HDR: *buf = c->hdr + c->rx_off; *len = NBD_REQUEST_SIZE - c->rx_off; break;
	case NS_REQ_DATA: *buf = (uint8_t *)c->rx_io->data + c->rx_off; *len = c->rx_io->rq.length - c->rx_off; break;
	case NS_OPT_DRAIN:
	case NS_REQ_DRAIN: *buf = sink; *len = MIN(sizeof(sink), c->drain_left); break;
	default: *buf = NULL; *len = 0; break;
	}
}

/* n more bytes arrived for the current state */
static void rx_advance(struct nbd_conn *c, size_t n)
{
	switch (c->state) {
	case NS_CLIENT_FLAGS:
		if ((c->rx_off += n) < 4)
			return;
		c->rx_off = 0;
		uint32_t cflags = nbd_get32(c->hdr);
		if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
			sd_info_rl("nbd: %s: unknown client flags 0x%" PRIx32 ", closing", c->peer, cflags);
			c->closing = true;
			return;
		}
		c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;
		c->state = NS_OPT_HDR;
		return;
	case NS_OPT_HDR:
		if ((c->rx_off += n) < 16)
			return;
		c->rx_off = 0;
		if (nbd_get64(c->hdr) != NBD_IHAVEOPT) {
			sd_info_rl("nbd: %s: bad option magic, closing", c->peer);
			c->closing = true;
			return;
		}
		c->opt = nbd_get32(c->hdr + 8);
		c->opt_len = nbd_get32(c->hdr + 12);
		if (++c->nr_options > NBD_MAX_OPTIONS) {
			sd_warn_rl("nbd: %s: more than %d options in one negotiation, closing", c->peer, NBD_MAX_OPTIONS);
			c->closing = true;
			return;
		}
		if (c->opt_len > NBD_MAX_OPTION_DATA) {
			if (c->opt == NBD_OPT_EXPORT_NAME || c->opt_len > NBD_MAX_DRAIN) {
				c->closing = true;
				return;
			}
			c->drain_left = c->opt_len;
			c->state = NS_OPT_DRAIN;
			return;
		}
		c->opt_data = xmalloc(c->opt_len ? c->opt_len : 1);
		c->state = NS_OPT_DATA;
		if (!c->opt_len)
			handle_option(c);
		return;
	case NS_OPT_DATA:
		if ((c->rx_off += n) < c->opt_len)
			return;
		c->rx_off = 0;
		handle_option(c);
		return;
	case NS_OPT_DRAIN:
		if ((c->drain_left -= n))
			return;
		c->state = NS_OPT_HDR;
		opt_error(c, NBD_REP_ERR_TOO_BIG, NULL);
		return;
	case NS_REQ_HDR:
		if ((c->rx_off += n) < NBD_REQUEST_SIZE)
			return;
		c->rx_off = 0;
		req_header(c);
		return;
	case NS_REQ_DATA:
		if ((c->rx_off += n) < c->rx_io->rq.length)
			return;
		c->rx_off = 0;
		c->state = NS_REQ_HDR;
		struct nbd_io *io = c->rx_io;
		c->rx_io = NULL;
		io_start(io);
		return;
	case NS_REQ_DRAIN:
		if ((c->drain_left -= n))
			return;
		c->state = NS_REQ_HDR;
		io_refuse(c, &c->drain_rq, c->drain_err);
		return;
	default:
		return;
	}
}

static void conn_rx(struct nbd_conn *c)
{
	for (int rounds = 0; rounds < 64 && !c->dead && conn_can_read(c); rounds++) {
		void *buf;
		size_t len;
		rx_target(c, &buf, &len);
		if (!len)
			return;
		ssize_t n = c->tls ? nbd_tls_read(c->tls, buf, len) : read(c->fd, buf, len);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_close(c);
			return;
		}
		if (n == 0) {
			/* the client is gone or done: a half-read request is dropped, the rest answered */
			if (c->rx_off || c->state == NS_REQ_DATA || c->state == NS_REQ_DRAIN)
				sd_info_rl("nbd: %s: disconnected in the middle of a request", c->peer);
			if (c->rx_io) {
				struct nbd_io *io = c->rx_io;
				c->rx_io = NULL;
				io->tx.release(&io->tx);
			}
			c->closing = true;
			return;
		}
		c->progressed = true;
		rx_advance(c, n);
	}
}

/* one more step of the handshake; when done, negotiation starts over inside TLS */
static void tls_step(struct nbd_conn *c)
{
	switch (nbd_tls_handshake(c->tls, c->peer)) {
	case NBD_TLS_DONE:
		c->state = NS_OPT_HDR;
		c->rx_off = 0;
		c->structured = c->meta_alloc = false;     /* nothing negotiated in the clear survives */
		break;
	case NBD_TLS_WANT_READ:
		c->tls_want_write = false;
		break;
	case NBD_TLS_WANT_WRITE:
		c->tls_want_write = true;
		break;
	case NBD_TLS_FAILED:
		conn_close(c);
		return;
	}
	conn_update_events(c);
}

/* the STARTTLS ACK is out in the clear: from here every byte is TLS */
static void tls_start(struct nbd_conn *c)
{
	c->tls = nbd_tls_new(c->fd);
	if (!c->tls) {
		sd_warn_rl("nbd: %s: cannot start TLS (out of memory), closing", c->peer);
		conn_close(c);
		return;
	}
	c->state = NS_TLS_HANDSHAKE;
	tls_step(c);
}

static void conn_tx(struct nbd_conn *c)
{
	while (!c->dead && !list_empty(&c->tx_queue)) {
		struct nbd_tx *t = list_first_entry(&c->tx_queue, struct nbd_tx, list);
		struct iovec iov[2];
		size_t skip = c->tx_off, total = 0;
		int cnt = 0;
		for (int i = 0; i < t->iovcnt; i++) {
			total += t->iov[i].iov_len;
			if (skip >= t->iov[i].iov_len) {
				skip -= t->iov[i].iov_len;
				continue;
			}
			iov[cnt].iov_base = (char *)t->iov[i].iov_base + skip;
			iov[cnt++].iov_len = t->iov[i].iov_len - skip;
			skip = 0;
		}
		ssize_t n;
		if (c->tls) {
			n = cnt ? nbd_tls_write(c->tls, iov[0].iov_base, iov[0].iov_len) : 0;
		} else {
			struct msghdr msg = { .msg_iov = iov, .msg_iovlen = cnt };
			n = cnt ? sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_close(c);
			return;
		}
		c->tx_off += n;
		c->progressed |= n > 0;
		if (c->tx_off < total)
			continue;
		c->tx_off = 0;
		list_del(&t->list);
		t->release(t);
	}
	if (c->dead)
		return;
	if (c->state == NS_TLS_START && list_empty(&c->tx_queue)) {
		tls_start(c);
		return;
	}
	if (c->closing && list_empty(&c->tx_queue) && !c->inflight && c->state != NS_OPT_BUSY) {
		conn_close(c);
		return;
	}
	conn_update_events(c);
}

static void conn_handler(int fd, uint32_t events, void *data)
{
	struct nbd_conn *c = data;
	c->refcnt++;
	if (events & (EPOLLERR | EPOLLHUP)) {
		conn_close(c);
	} else if (c->state == NS_TLS_HANDSHAKE) {
		c->progressed = true;      /* the handshake moved on: its bytes came or went */
		tls_step(c);
	} else {
		if ((events & EPOLLIN) || (c->tls && nbd_tls_pending(c->tls)))
			conn_rx(c);
		if (!c->dead && (events & EPOLLRDHUP) && !(events & EPOLLIN))
			c->peer_shut = true;   /* not reading now: the requests before the end still count */
		if (!c->dead)
			conn_tx(c);
	}
	conn_put(c);
}

/* ---- the caps (conn_limits.c decides, this file acts) ---- */

static void meter_close(struct conn_meter *m, const char *why)
{
	struct nbd_conn *c = container_of(m, struct nbd_conn, meter);
	/* two call sites, so that a flood of evictions does not hide the stalls in the log */
	if (c->meter.mid_request && !strcmp(why, "request stalled"))
		sd_warn_rl("nbd: closing %s: negotiation or request stalled (--request-timeout)", c->peer);
	else
		sd_warn_rl("nbd: closing %s: %s", c->peer, why);
	c->refcnt++;
	conn_close(c);
	conn_put(c);
}

static void meter_wake(struct conn_meter *m)
{
	conn_update_events(container_of(m, struct nbd_conn, meter));
}

/* 0: taken (or refused at once), -1: stop accepting for now */
static int accept_one(int fd)
{
	int cfd = accept_client(fd, "nbd");
	if (cfd < 0)
		return -1;
	struct nbd_conn *c = xzalloc(sizeof(*c));
	if (limits_admit(LIMITS_NBD, &c->meter, cfd) < 0) {
		close(cfd);
		free(c);
		return 0;
	}
	c->fd = cfd;
	c->refcnt = 1;
	c->state = NS_CLIENT_FLAGS;
	INIT_LIST_HEAD(&c->tx_queue);
	char a[INET6_ADDRSTRLEN];
	snprintf(c->peer, sizeof(c->peer), "%s (fd %d)", addr_to_str(c->meter.addr, a, sizeof(a)), cfd);
	/* the greeting: fixed newstyle, and we can do without the 124 zero bytes */
	uint8_t greet[18], *p = nbd_put64(greet, NBD_MAGIC);
	p = nbd_put64(p, NBD_IHAVEOPT);
	nbd_put16(p, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	conn_send(c, greet, sizeof(greet), NULL, 0);
	c->events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
	if (register_event(cfd, conn_handler, c, c->events) < 0) {
		limits_forget(&c->meter);
		tx_release_all(c);
		close(cfd);
		free(c);
		return 0;
	}
	limits_waiting(&c->meter, true, true);     /* the negotiation starts: the client's turn */
	sd_debug_rl("nbd: %s connected", c->peer);
	return 0;
}

static const struct limits_ops nbd_limits_ops = {
	.close = meter_close, .wake = meter_wake, .accept_one = accept_one,
};

static void listen_handler(int fd, uint32_t events, void *data)
{
	limits_accept(LIMITS_NBD);
}

int nbd_init(const char *addr, int port)
{
	nbd_wq = create_work_queue("nbd", NBD_WORKERS);
	if (!nbd_wq)
		return -ENOMEM;
	int fd = listen_port(addr, port, listen_handler);
	if (fd < 0)
		return fd;
	limits_start(LIMITS_NBD, &nbd_limits_ops, fd);
	sd_info("nbd: exporting VDIs on %s:%d", addr, port);
	if (nbd_tls_required())
		sd_info("nbd: clients must use TLS with a pre-shared key (STARTTLS)");
	else if (strncmp(addr, "127.", 4) && strcmp(addr, "::1") && strcmp(addr, "localhost"))
		sd_warn("nbd: the export on %s:%d has no TLS or authentication: anyone who reaches it can "
			"read and write every VDI", addr, port);
	return 0;
}
