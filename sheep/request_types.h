/* request_types.h: what the request path hands down the stack: a request, and the row of the
 * opcode table that says how it runs (ops.c fills the table). */
#ifndef SHEEP_REQUEST_TYPES_H
#define SHEEP_REQUEST_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include "internal_proto.h"
#include "util.h"
#include "work.h"

struct client_info;

struct request {
	struct sd_req rq;
	struct sd_rsp rp;
	void *data;                 /* request payload, then response payload */
	uint32_t data_size;         /* bytes allocated at data */
	struct client_info *ci;     /* NULL for requests sheep makes itself */
	const struct sd_op_template *op;
	struct work work;
	struct list_head list;      /* on the client's reply queue or the cluster wait list */
	uint64_t cluster_seq;       /* for cluster ops waiting for their message */
	uint64_t start_ns;          /* when its header arrived (client requests), for node stat */
};

/* ---- the opcode table (ops.c) ---- */
enum sd_op_type {
	SD_OP_TYPE_GATEWAY = 1,   /* client object I/O: fan out to replicas (worker) */
	SD_OP_TYPE_PEER,          /* object I/O on the local store (worker) */
	SD_OP_TYPE_LOCAL,         /* answered by this node (worker or main) */
	SD_OP_TYPE_CLUSTER,       /* totally ordered through the cluster driver */
};

/* who may send an opcode: the request path's access check reads it */
enum sd_op_class {
	OP_CLASS_NONE = 0,        /* not an opcode of the protocol */
	OP_CLASS_GUEST,           /* what a VM's block driver (QEMU, tgt) sends, and read-only info */
	OP_CLASS_PEER,            /* sheep to sheep: replica I/O, epochs, recovery */
	OP_CLASS_ADMIN,           /* formatting, shutdown, recovery control, cluster changes */
};

/* named flags of an opcode row */
enum sd_op_flag {
	OP_NEEDS_FORMAT    = 1 << 0,   /* refused with WAIT_FOR_FORMAT before the cluster is formatted */
	OP_DURING_SHUTDOWN = 1 << 1,   /* still answered while shutting down */
	OP_NEEDS_PAYLOAD   = 1 << 2,   /* a peer op refused without SD_FLAG_CMD_WRITE */
};

struct sd_op_template {
	const char *name;
	enum sd_op_type type;
	enum sd_op_class class;
	unsigned flags;           /* enum sd_op_flag */
	/* originating node, main thread, before a CLUSTER op is multicast (fill in times etc.) */
	int (*prepare)(struct request *req);
	/* worker thread; for CLUSTER ops this runs on the originating node only, while it holds
	 * the cluster-wide block, before process_main runs everywhere */
	int (*process_work)(struct request *req);
	/* main thread; for CLUSTER ops every node runs it in the same total order */
	int (*process_main)(const struct sd_req *req, struct sd_rsp *rsp, void *data);
	/* PEER ops: the op on the local store, for a replica's request or the gateway's own share */
	int (*process_peer)(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
};

static inline bool op_has(const struct sd_op_template *op, enum sd_op_flag f)
{
	return op->flags & f;
}

#endif
