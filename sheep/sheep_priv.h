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

/* allocation that never returns NULL: the daemon cannot run on without memory */
static inline void *xzalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (!p) {
		sd_emerg("out of memory allocating %zu bytes", n);
		abort();
	}
	return p;
}

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		sd_emerg("out of memory allocating %zu bytes", n);
		abort();
	}
	return p;
}

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
	void (*local_done)(struct request *req);   /* completion of a request sheep made itself */
	void *local_data;
};

/* ---- the opcode table (ops.c) ---- */
enum sd_op_type {
	SD_OP_TYPE_GATEWAY = 1,   /* client object I/O: fan out to replicas (worker) */
	SD_OP_TYPE_PEER,          /* object I/O on the local store (worker) */
	SD_OP_TYPE_LOCAL,         /* answered by this node (worker or main) */
	SD_OP_TYPE_CLUSTER,       /* totally ordered through the cluster driver */
};

struct sd_op_template {
	const char *name;
	enum sd_op_type type;
	bool needs_format;        /* refused with WAIT_FOR_FORMAT before the cluster is formatted */
	bool admin;               /* allowed while shutting down */
	/* originating node, main thread, before a CLUSTER op is multicast (fill in times etc.) */
	int (*prepare)(struct request *req);
	/* worker thread; for CLUSTER ops this runs on the originating node only, while it holds
	 * the cluster-wide block, before process_main runs everywhere */
	int (*process_work)(struct request *req);
	/* main thread; for CLUSTER ops every node runs it in the same total order */
	int (*process_main)(const struct sd_req *req, struct sd_rsp *rsp, void *data);
};

const struct sd_op_template *get_sd_op(uint8_t opcode);

/* ---- request.c ---- */
int create_listen_port(const char *bindaddr, int port);
/* a listening socket on addr:port whose connections go to handler (main loop); fd or -errno */
int listen_port(const char *addr, int port, void (*handler)(int fd, uint32_t events, void *data));
/* accept one connection, non-blocking, TCP_NODELAY and keepalive; -1 when none (or shutting down).
 * Out of open files, it takes the pending connection and closes it (no spinning on listen_fd). */
int accept_client(int listen_fd, const char *what);
void queue_request(struct request *req);      /* dispatch a complete request */
void request_done(struct request *req);       /* main thread: reply and free */
struct request *alloc_local_request(const struct sd_req *hdr, const void *data, uint32_t size);
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
int oid_copies(uint64_t oid);
int peer_exec(const struct sd_node *n, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp);

/* ---- store.c ---- */
/* qsort comparison of oids */
static inline int cmp_oid(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}
int store_init(const char *dir);
int store_read(uint64_t oid, void *buf, uint32_t len, uint32_t offset);
int store_write(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool sync);
int store_create_and_write(uint64_t oid, const void *buf, uint32_t len, uint32_t offset,
			   uint64_t obj_size, bool sync);
int store_remove(uint64_t oid);
bool store_exists(uint64_t oid);
int store_flush(void);
int store_wipe(void);
void store_lock(uint64_t oid);
void store_unlock(uint64_t oid);
int store_set_aside(uint64_t oid, uint32_t epoch);
void store_purge_stale(void);
uint64_t store_free_space(void);
/* move every object to obj/.stale (kept for recovery, never served) */
int store_set_aside_all(void);
/* fills oids (malloc'd) with every object stored here */
int store_list(uint64_t **oids, size_t *nr);
int store_stat(uint64_t *size, uint64_t *used);
uint64_t obj_size_of(uint64_t oid);

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
int group_init(const char *driver_spec);
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

/* ---- vdi.c ---- */
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
int vdi_lookup(const char *name, const char *tag, uint32_t snapid, uint32_t *vid, struct sd_inode_header *hdr);
int vdi_lookup_settled(const char *name, const char *tag, uint32_t snapid, uint32_t *vid,
		       struct sd_inode_header *hdr);
int vdi_create_work(struct request *req);
int vdi_delete_work(struct request *req);
int vdi_rollback_work(struct request *req);
int vdi_parse_name_tag(const struct request *req, char *name, char *tag);
int vdi_read_inode(uint32_t vid, struct sd_inode **out, uint32_t *nr);
uint32_t vdi_nr_objs(const struct sd_inode_header *h);
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
