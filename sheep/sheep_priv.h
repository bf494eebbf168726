/* sheep_priv.h: the daemon's shared state and the interfaces between its modules. */
#ifndef SHEEP_PRIV_H
#define SHEEP_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "sheepdog_proto.h"
#include "internal_proto.h"
#include "logger.h"
#include "event.h"
#include "work.h"
#include "net.h"
#include "ring.h"
#include "util.h"
#include "cluster.h"
#include "alloc.h"
#include "store/store.h"

struct system_info {
	char dir[4096];
	struct sd_node this_node;
	const struct cluster_driver *cdrv;
	int listen_fd;

	/* cluster state: written on the main thread only */
	_Atomic int status;               /* enum sd_status */
	_Atomic uint32_t epoch;
	uint64_t ctime;                   /* 0 = never formatted */
	uint8_t nr_copies;
	uint8_t block_size_shift;
	bool recovery_disabled;

	pthread_mutex_t vinfo_lock;
	struct vnode_info *vinfo;         /* ring of the current epoch (with refcnt) */

	struct work_queue *gateway_wq;    /* client requests: fan-out to peers */
	struct work_queue *io_wq;         /* peer requests: local store */
	struct work_queue *block_wq;      /* cluster operations that need work */
	bool shutting_down;
};

extern struct system_info *sys;

/* the current ring, with a reference; release with put_vnode_info */
struct vnode_info *get_vnode_info(void);
void put_vnode_info(struct vnode_info *vi);
/* replace the ring (main thread) */
void set_vnode_info(const struct sd_node *nodes, int nr);
static inline uint32_t sys_epoch(void) { return atomic_load(&sys->epoch); }

/* ---- requests ---- */
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

const struct sd_op_template *get_sd_op(uint8_t opcode);
enum sd_op_class sd_op_class(uint8_t opcode);

/* ---- peer.c: the PEER rows' work on the local store ---- */
/* how a write finds an object that moved here and has not arrived yet (recovery's, at start) */
void peer_set_object_fetcher(int (*fetch)(uint64_t oid));
int peer_read(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
int peer_create_and_write(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
int peer_write(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
int peer_remove(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
int peer_flush(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);

/* ---- request.c ---- */
int create_listen_port(const char *bindaddr, int port);
/* a listening socket on addr:port whose connections go to handler (main loop); fd or -errno */
int listen_port(const char *addr, int port, void (*handler)(int fd, uint32_t events, void *data));
/* accept one connection, non-blocking, TCP_NODELAY and keepalive; -1 when none (or shutting down) */
int accept_client(int listen_fd, const char *what);
void queue_request(struct request *req);      /* dispatch a complete request */
void request_done(struct request *req);       /* main thread: reply and free */
void free_request(struct request *req);
int op_check_state(const struct sd_op_template *op);   /* 0 or the result refusing the op now */

/* ---- nbd.c: the NBD export ---- */
int nbd_init(const char *addr, int port);

/* ---- gateway.c (worker threads) ---- */
int gateway_read_obj(uint64_t oid, void *buf, uint32_t len, uint32_t offset);
/* read from the holders of oid on ring vi that are still members of cur; NO_OBJ if none has it */
int gateway_read_holders(const struct vnode_info *vi, const struct vnode_info *cur, uint64_t oid, void *buf,
			 uint32_t len, uint32_t offset, uint16_t flags);
/* the same for the rings of the earlier epochs, newest first (data not yet moved) */
int gateway_read_old_epochs(const struct vnode_info *cur, uint64_t oid, void *buf, uint32_t len, uint32_t offset,
			    uint16_t flags);
int gateway_write_obj(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool create, bool sync);
int gateway_remove_obj(uint64_t oid);
int gateway_forward_request(struct request *req);
int gateway_flush_all(void);
/* called on each client object op (recovery's throttle registers it at start) */
void gateway_set_client_io_hook(void (*hook)(void));

/* ---- peer_client.c ---- */
int peer_exec(const struct sd_node *n, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp);

/* ---- config.c: the store's config file and epoch logs ---- */
struct sheep_config {
	uint64_t ctime;
	uint8_t nr_copies;
	uint8_t block_size_shift;
	uint16_t version;
	uint32_t last_epoch;
	uint32_t shutdown;
};
int config_load(struct sheep_config *cfg);    /* -ENOENT when unformatted */
int config_save(const struct sheep_config *cfg);
int epoch_log_write(uint32_t epoch, const struct sd_node *nodes, int nr);
int epoch_log_read(uint32_t epoch, struct epoch_log *log);   /* 0 or -errno */
uint32_t epoch_log_latest(void);
int epoch_log_remove_all(void);

void sheep_ready(void);   /* sheep.c: joined, release the parent */
void sheep_restart(const char *why) __attribute__((noreturn));

/* ---- group.c: membership, epochs and cluster operations ---- */
/* what group.c needs of the layers above it, given at group_init (all on the main thread) */
struct group_hooks {
	const struct sd_op_template *(*lookup_op)(uint8_t opcode);   /* the opcode table */
	void (*request_done)(struct request *req);                  /* a cluster op has run */
	/* before the ring of epoch old_epoch + 1 is installed */
	void (*epoch_transition)(uint32_t old_epoch, const struct sd_node *nodes, int nr);
	void (*epoch_started)(void);           /* a new epoch is in place, or this node joined */
	int (*fetch_state_from)(const struct sd_node *n);   /* after joining: 0 when n gave it */
	void (*joined)(void);
	void (*restart)(const char *why) __attribute__((noreturn));
};
int group_init(const char *driver_spec, const struct group_hooks *hooks);
/* send a cluster op that has no work part and whose reply nobody waits for */
void group_notify(const struct sd_req *rq, const void *data);
void group_leave(void);
/* send a cluster op (main thread); the request completes when it has run everywhere */
void cluster_queue_request(struct request *req);
int group_node_list(struct sd_node *nodes, int max);
int group_local_idx(void);
void group_end_wait(void);

/* ---- recovery.c ---- */
extern int recovery_inflight;        /* objects fetched at once (throttle) */
extern uint32_t recovery_pause_ms;   /* pause after each object (throttle) */
int recovery_init(void);
/* main thread, before the ring of epoch old_epoch + 1 is installed: set aside the objects that
 * become this node's in the new epoch but were not in the old one (they may be out of date) */
void recovery_epoch_transition(uint32_t old_epoch, const struct sd_node *nodes, int nr);
/* main thread: a new epoch is in place (or recovery was enabled): bring this node's share in */
void recovery_start(void);
/* fetch one object this node should hold from the newest live holder; caller holds its lock */
int recover_object_now(uint64_t oid);
void recovery_get_info(struct recovery_info *out);
/* client I/O arrived: recovery yields to it for a while (the built-in part of the throttle) */
void recovery_note_client_io(void);
/* main thread: a member announced it finished epoch e */
void recovery_member_done(const struct sd_node *n, uint32_t e);

/* ---- vdi_state.c ---- */
int vdi_init(void);
bool vdi_bit_test(uint32_t vid);
void vdi_bit_set(uint32_t vid);
void vdi_bitmap_clear_all(void);
void vdi_bitmap_copy(void *out);               /* SD_NR_VDIS / 8 bytes */
void vdi_bitmap_merge(const void *in);
int vdi_state_lookup(uint32_t vid, struct vdi_state *out);
void vdi_state_set(const struct vdi_state *st);
int vdi_state_list(struct vdi_state **out, size_t *nr);
void vdi_state_clear_all(void);
bool vdi_is_deleted(uint32_t vid);
bool vdi_tombstone_known_clean(uint32_t vid);
void vdi_tombstone_set_clean(uint32_t vid);
/* a data object's size follows its VDI's block size */
uint64_t obj_size_of(uint64_t oid);
int oid_copies(uint64_t oid);

/* ---- vdi_lookup.c ---- */
#define INODE_LOOKUP_SIZE 568    /* name, tag, times, sizes, ids: all lookup needs */
/* What one walk along a name's probe run found. */
struct vdi_probe {
	uint32_t working;       /* the name's working VDI, 0 if none */
	uint32_t match;         /* the inode asked for, 0 if none */
	uint32_t max_snap_id;   /* highest snap_id among the name's inodes */
	uint32_t free_vid;      /* the first free id after the run */
	bool name_seen;
};

int vdi_probe(const char *name, const char *tag, uint32_t snapid, struct vdi_probe *p,
	      struct sd_inode_header *hdr);
int vdi_lookup(const char *name, const char *tag, uint32_t snapid, uint32_t *vid, struct sd_inode_header *hdr);
int vdi_lookup_settled(const char *name, const char *tag, uint32_t snapid, uint32_t *vid,
		       struct sd_inode_header *hdr);
int vdi_parse_name_tag(const struct request *req, char *name, char *tag);
uint32_t vdi_nr_objs(const struct sd_inode_header *h);

/* ---- vdi.c ---- */
int vdi_create_work(struct request *req);
int vdi_delete_work(struct request *req);
int vdi_rollback_work(struct request *req);
int vdi_read_inode(uint32_t vid, struct sd_inode **out, uint32_t *nr);
/* recovery may skip it: an object of a deleted VDI that nothing can reference again */
bool vdi_obj_is_garbage(uint64_t oid);
int fetch_vdi_state_from(const struct sd_node *n);

/* ---- vdi_attr.c ---- */
int vdi_attr_work(struct request *req);
uint32_t vdi_attr_hash(const char *name, const char *tag, uint32_t snap_id, const char *key);
int vdi_attr_copy_all(const struct sd_inode_header *from, uint32_t to_vid);
void vdi_attr_remove_all(const struct sd_inode_header *h);

/* ---- vdi_lock.c (table changes on the main thread, in cluster order) ---- */
int vdi_lock_acquire(uint32_t vid, uint32_t owner, uint32_t type);
int vdi_lock_release(uint32_t vid, uint32_t owner, bool all);
bool vdi_lock_held(uint32_t vid);
void vdi_lock_move(uint32_t from, uint32_t to);
void vdi_lock_drop(uint32_t vid);
size_t vdi_lock_list(struct vdi_lock_info *buf, size_t max);
void vdi_lock_replace_all(const struct vdi_lock_info *list, size_t nr);

#endif
