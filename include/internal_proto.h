/* internal_proto.h: sheep-to-sheep and sheep-to-collie opcodes, node identity and their payloads. */
#ifndef INTERNAL_PROTO_H
#define INTERNAL_PROTO_H

#include <stdint.h>
#include "sheepdog_proto.h"

/* internal opcodes (numbers as the original project used them) */
#define SD_OP_GET_NODE_LIST        0x82
#define SD_OP_MAKE_FS              0x84
#define SD_OP_SHUTDOWN             0x85
#define SD_OP_STAT_SHEEP           0x86
#define SD_OP_STAT_CLUSTER         0x87
#define SD_OP_GET_VDI_ATTR         0x89
#define SD_OP_FORCE_RECOVER        0x8A
#define SD_OP_STAT_RECOVERY        0x97
#define SD_OP_NOTIFY_VDI_DEL       0x99
#define SD_OP_KILL_NODE            0x9A
#define SD_OP_GET_OBJ_LIST         0xA1
#define SD_OP_GET_EPOCH            0xA2
#define SD_OP_CREATE_AND_WRITE_PEER 0xA3
#define SD_OP_READ_PEER            0xA4
#define SD_OP_WRITE_PEER           0xA5
#define SD_OP_REMOVE_PEER          0xA6
#define SD_OP_ENABLE_RECOVER       0xA8
#define SD_OP_DISABLE_RECOVER      0xA9
#define SD_OP_GET_VDI_COPIES       0xAB
#define SD_OP_COMPLETE_RECOVERY    0xAC
#define SD_OP_FLUSH_NODES          0xAD
#define SD_OP_FLUSH_PEER           0xAE
#define SD_OP_NOTIFY_VDI_ADD       0xAF
#define SD_OP_GET_HASH             0xB4
#define SD_OP_EXIST                0xBD
#define SD_OP_ALTER_CLUSTER_COPY   0xBF   /* cluster: the default copies of new VDIs */
#define SD_OP_ALTER_VDI_COPY       0xC0   /* cluster: one VDI's copies (its inode and every node) */
#define SD_OP_REPAIR_REPLICA       0xC5
#define SD_OP_OIDS_EXIST           0xC6
/* VDI lifecycle (ours) */
#define SD_OP_ROLLBACK_VDI         0xD0   /* cluster: the working VDI takes a snapshot's index */
#define SD_OP_GET_VDI_LOCKS        0xD1   /* local: the cluster-wide VDI lock table */
#define SD_OP_GET_NODE_WEIGHT      0xD2   /* local: capacity and vnodes; may set the capacity */
#define SD_OP_REWEIGHT             0xD3   /* cluster: new vnode counts, one new epoch */
#define SD_OP_LOG_LEVEL            0xD4   /* local: the log level; a payload sets it */
#define SD_OP_RECOVERY_THROTTLE    0xD5   /* cluster: every node's recovery throttle */
#define SD_OP_NODE_STAT            0xD6   /* local: request counts and latencies */
#define SD_OP_SCRUB                0xD7   /* local: start, stop or show this node's scrub */
#define SD_OP_SETTLE_REPLICA       0xDA   /* local: fetch or set aside this node's replica of obj.oid */
#define SD_OP_MD_INFO              0xDB   /* local: the node's disks (struct sd_md_disk[]) */
#define SD_OP_MD_PLUG              0xDC   /* local: payload a disk path to add */
#define SD_OP_MD_UNPLUG            0xDD   /* local: payload a disk path to take out */
#define SD_OP_CONVERT_OBJ          0xDE   /* local: write or remove obj.oid's layout in transit */
/* connection authentication (ours; see struct sd_auth_req / sd_auth_rsp and sheep(8)) */
#define SD_OP_AUTH_CHALLENGE       0xE0   /* the sheep's nonce for this connection */
#define SD_OP_AUTH_RESPONSE        0xE1   /* the client's nonce and HMAC; the sheep's proof back */

/* internal flags */
#define SD_FLAG_CMD_RECOVERY 0x80
/* GET_VDI_ATTR: create if absent, fail if present, delete */
#define SD_FLAG_CMD_CREAT    0x100
#define SD_FLAG_CMD_EXCL     0x200
#define SD_FLAG_CMD_DEL      0x400
/* RELEASE_VDI: release every holder, not only the sending node (collie vdi lock unlock) */
#define SD_FLAG_CMD_FORCE    0x800
#define SD_FLAG_CMD_NO_REPAIR 0x1000   /* a read that must not start read repair (check -n) */

/* internal results */
#define SD_RES_OLD_NODE_VER   0x81
#define SD_RES_NEW_NODE_VER   0x82
#define SD_RES_NOT_FORMATTED  0x83
#define SD_RES_INVALID_CTIME  0x84
#define SD_RES_INVALID_EPOCH  0x85
#define SD_RES_NETWORK_ERROR  0x86
#define SD_RES_BUFFER_SMALL   0x88
#define SD_RES_NO_SUPPORT     0x8B
#define SD_RES_KILLED         0x8D
#define SD_RES_AGAIN          0x8F
#define SD_RES_STALE_OBJ      0x90
#define SD_RES_CHECKSUM       0x91   /* a block of the object fails its checksum, or the file is short */
#define SD_RES_TOO_FEW_ZONES  0x92   /* more copies asked for than the cluster has zones */
#define SD_RES_PERM_DENIED    0xA0   /* needs an authenticated connection, or an allowed network */

/* An erasure-coded data object is stored as D + P strips, each its own store object: strip i of
 * data object oid is oid | (i + 1) << 56 (bits 56-60, reserved and unused by data oids). */
#define SD_EC_STRIP_SHIFT 56
#define SD_EC_STRIP_MASK  (UINT64_C(0x1f) << SD_EC_STRIP_SHIFT)
static inline bool is_ec_strip(uint64_t oid)
{
	return !(oid & (VDI_BIT | VMSTATE_BIT | VDI_ATTR_BIT)) && (oid & SD_EC_STRIP_MASK);
}
static inline uint64_t ec_strip_oid(uint64_t oid, int index)
{
	return (oid & ~SD_EC_STRIP_MASK) | (uint64_t)(index + 1) << SD_EC_STRIP_SHIFT;
}
static inline uint64_t ec_strip_base(uint64_t oid) { return oid & ~SD_EC_STRIP_MASK; }
static inline int ec_strip_index(uint64_t oid) { return (int)((oid & SD_EC_STRIP_MASK) >> SD_EC_STRIP_SHIFT) - 1; }

/* the largest payload a request may carry or ask for: a whole inode object, rounded up */
#define SD_MAX_DATA_LENGTH    (16u << 20)
#define SD_MAX_NODES          1024
#define SD_DEFAULT_VNODES     128
#define SD_DEFAULT_COPIES     3

/* A node: where it listens and how it weighs on the ring. addr is IPv6 or IPv4-mapped. */
struct sd_node {
	uint8_t  addr[16];
	uint16_t port;
	uint16_t nr_vnodes;
	uint32_t zone;
	uint64_t space;      /* store capacity in bytes */
	uint16_t nbd_port;   /* 0: no NBD export */
	uint8_t  reserved[14];
};
SD_CHECK(sizeof(struct sd_node) == 48);

/* AUTH_RESPONSE request union: the role byte the MAC covers. Payload: client nonce (32 bytes)
 * then HMAC-SHA256(key, server nonce || client nonce || role) (32 bytes). */
struct sd_auth_req {
	uint8_t  proto_ver, opcode;
	uint16_t flags;
	uint32_t epoch, id, data_length;
	uint8_t  role;
	uint8_t  __pad[31];
};
SD_CHECK(sizeof(struct sd_auth_req) == 48);

/* AUTH_CHALLENGE response union: whether the sheep has a key at all. Payload: the sheep's
 * nonce (32 bytes) when it has one, nothing when it is open. */
struct sd_auth_rsp {
	uint8_t  proto_ver, opcode;
	uint16_t flags;
	uint32_t epoch, id, data_length;
	uint32_t result;
	uint8_t  key_required;
	uint8_t  __pad[27];
};
SD_CHECK(sizeof(struct sd_auth_rsp) == 48);

/* cluster status */
enum sd_status {
	SD_STATUS_WAIT_FOR_FORMAT = 0,
	SD_STATUS_OK = 1,
	SD_STATUS_WAIT = 2,       /* waiting for the nodes of the last epoch */
	SD_STATUS_SHUTDOWN = 3,
	SD_STATUS_KILLED = 4,
	SD_STATUS_HALT = 5,
};

/* GET_NODE_LIST / STAT_SHEEP response union */
struct sd_node_rsp {
	uint8_t  proto_ver, opcode;
	uint16_t flags;
	uint32_t epoch, id, data_length;
	uint32_t result;
	uint32_t nr_nodes;
	uint32_t local_idx;
	uint32_t space_warn_pct;   /* STAT_SHEEP: the node warns when its store is this full (0: never) */
	uint64_t store_size;
	uint64_t store_free;
};
SD_CHECK(sizeof(struct sd_node_rsp) == 48);

/* GET_NODE_WEIGHT: an optional request payload of one uint64_t sets the node's capacity in
 * bytes (0: back to the size of its store's filesystem); the response payload is this */
struct sd_node_weight {
	uint64_t capacity;       /* bytes the node's weight is computed from */
	uint16_t nr_vnodes;      /* on the ring now */
	uint16_t want_vnodes;    /* what the capacity asks for (nr_vnodes when fixed by -V) */
	uint8_t  fixed;          /* started with -V */
	uint8_t  __pad[3];
};
SD_CHECK(sizeof(struct sd_node_weight) == 16);
/* REWEIGHT: the payload is struct sd_node[], each with its new nr_vnodes */

/* MD_INFO: one entry per disk of a multi-disk node (one entry, the store's obj/, otherwise).
 * MD_PLUG and MD_UNPLUG: the payload is a path of at most SD_MD_PATH_LEN - 1 bytes. */
#define SD_MD_PATH_LEN 256
enum sd_md_state { SD_MD_ACTIVE = 0, SD_MD_FAILED = 1 };
struct sd_md_disk {
	char     path[SD_MD_PATH_LEN];
	uint64_t size;           /* what the store may use there: its objects plus the free space */
	uint64_t used;           /* bytes of its objects */
	uint64_t avail;          /* free space of its filesystem */
	uint32_t nr_objects;
	uint32_t nr_vnodes;      /* on the node's disk ring (0 when failed or one directory) */
	uint8_t  state;          /* enum sd_md_state */
	uint8_t  __pad[7];
};
SD_CHECK(sizeof(struct sd_md_disk) == 296);

/* LOG_LEVEL: request and response payload one int32_t, the level (0-7); a request without
 * SD_FLAG_CMD_WRITE only reads it. RECOVERY_THROTTLE: this payload */
#define SD_RECOVERY_MAX_INFLIGHT 64
#define SD_RECOVERY_MAX_PAUSE_MS 60000
struct sd_recovery_throttle {
	uint32_t inflight;       /* objects fetched at once, 1 to 64 */
	uint32_t pause_ms;       /* pause after each object, 0 to 60000 */
};
SD_CHECK(sizeof(struct sd_recovery_throttle) == 8);

/* NODE_STAT: the response payload is one entry per kind of request the node served since it
 * started (sheepdog-protocol and NBD clients, and peers); latencies from arrival to reply */
#define SD_STAT_NAME_LEN 16
struct sd_node_stat {
	char     name[SD_STAT_NAME_LEN];   /* "read", "write", "flush", "peer read", ... */
	uint64_t count, errors, bytes;
	uint64_t avg_us, max_us;
	uint64_t p50_us, p99_us;          /* upper bounds of power-of-two latency buckets */
};
SD_CHECK(sizeof(struct sd_node_stat) == 72);

/* SCRUB: request and response payload this struct; the request's command (with
 * SD_FLAG_CMD_WRITE) starts or stops a pass, the response is the node's scrub state */
enum sd_scrub_command { SD_SCRUB_STATUS = 0, SD_SCRUB_START = 1, SD_SCRUB_STOP = 2 };
enum sd_scrub_state { SD_SCRUB_IDLE = 0, SD_SCRUB_RUNNING = 1, SD_SCRUB_DONE = 2, SD_SCRUB_STOPPED = 3 };
enum sd_scrub_outcome { SD_SCRUB_REPAIRED = 0, SD_SCRUB_UNRECOVERABLE = 1 };
#define SD_SCRUB_MAX_FINDINGS 8
struct sd_scrub_finding {
	uint64_t oid;
	uint32_t nr_bad, first_bad;      /* blocks failing their checksums, the first of them */
	uint32_t outcome;                /* enum sd_scrub_outcome */
	uint32_t __pad;
};
struct sd_scrub_info {
	uint32_t command;                /* request: enum sd_scrub_command */
	uint32_t state;                  /* enum sd_scrub_state, of the latest pass */
	uint32_t interval_s;             /* between automatic passes (0: only when asked) */
	uint32_t nr_findings;            /* in findings[], the latest first */
	uint64_t passes;                 /* finished since the node started */
	uint64_t started, finished;      /* the latest pass, Unix seconds (finished 0: not yet) */
	uint64_t objects_total, objects_done, bytes_done;
	uint64_t rate;                   /* bytes per second at most */
	uint64_t bad, repaired, unrecoverable;   /* objects, in the latest pass */
	struct sd_scrub_finding findings[SD_SCRUB_MAX_FINDINGS];
};
SD_CHECK(sizeof(struct sd_scrub_info) == 96 + SD_SCRUB_MAX_FINDINGS * 24);

/* STAT_CLUSTER response union: cluster state; payload = epoch log entries, newest first */
struct sd_cluster_rsp {
	uint8_t  proto_ver, opcode;
	uint16_t flags;
	uint32_t epoch, id, data_length;
	uint32_t result;
	uint8_t  status;
	uint8_t  nr_copies;
	uint8_t  block_size_shift;
	uint8_t  recovery_disabled;
	uint64_t ctime;
	uint32_t nr_entries;
	uint8_t  copy_policy;    /* the default of new VDIs: 0 or D:P */
	uint8_t  __pad8[3];
	uint32_t __pad[2];
};
SD_CHECK(sizeof(struct sd_cluster_rsp) == 48);

/* MAKE_FS request union */
struct sd_cluster_req {
	uint8_t  proto_ver, opcode;
	uint16_t flags;
	uint32_t epoch, id, data_length;
	uint32_t __pad0;
	uint32_t __pad1;
	uint64_t ctime;
	uint8_t  copies;
	uint8_t  copy_policy;
	uint8_t  block_size_shift;
	uint8_t  __pad2[13];
};
SD_CHECK(sizeof(struct sd_cluster_req) == 48);

/* one epoch log entry, on disk and on the wire */
struct epoch_log {
	uint64_t ctime;       /* cluster creation time */
	uint64_t time;        /* seconds since the epoch when this epoch began */
	uint32_t epoch;
	uint32_t nr_nodes;
	struct sd_node nodes[SD_MAX_NODES];
};
#define EPOCH_LOG_HDR_SIZE offsetof(struct epoch_log, nodes)

/* VDI state, as GET_VDI_COPIES returns it */
struct vdi_state {
	uint32_t vid;
	uint8_t  nr_copies;
	uint8_t  block_size_shift;
	uint8_t  snapshot;
	uint8_t  deleted;
	uint8_t  copy_policy;    /* 0 replication, else the D:P byte of include/ec.h */
	/* alter-copy between replicas and strips: the other layout its data objects have for now
	 * (being written, or left to remove), 0 when none; its objects are placed by it */
	uint8_t  next_copies;
	uint8_t  next_policy;
};
SD_CHECK(sizeof(struct vdi_state) == 12);

/* ALTER_VDI_COPY request vdi.type: the step of an alter-copy (sheep/vdi_copies.c) */
enum sd_alter_step {
	SD_ALTER_SET = 0,        /* the inode and every node take copies/copy_policy */
	SD_ALTER_BEGIN,          /* the layout copies/copy_policy (the other kind) is in transit */
	SD_ALTER_END,            /* no layout is in transit any more */
	SD_ALTER_QUERY,          /* only the answer */
};

/* ALTER_VDI_COPY and ALTER_CLUSTER_COPY response: the VDI's (or cluster's) redundancy before
 * the request, and the layout in transit after it */
struct sd_alter_rsp {
	uint8_t  proto_ver, opcode;
	uint16_t flags;
	uint32_t epoch, id, data_length;
	uint32_t result;
	uint8_t  copies, copy_policy, next_copies, next_policy;
	uint8_t  __pad[24];
};
SD_CHECK(sizeof(struct sd_alter_rsp) == 48);

/* CONVERT_OBJ request obj.ec_index */
#define SD_CONVERT_WRITE  0      /* write the layout in transit from the current one */
#define SD_CONVERT_REMOVE 1      /* remove the layout in transit */
#define SD_CONVERT_READY  2      /* only whether this node knows of the layout in transit */

/* STAT_RECOVERY response payload: one node's recovery */
enum recovery_phase {
	RECOVERY_IDLE = 0,       /* nothing to do (or never started) */
	RECOVERY_LISTING,        /* collecting the object lists of the members */
	RECOVERY_RUNNING,        /* fetching the objects it lacks */
	RECOVERY_DONE,           /* every object of the epoch is here */
	RECOVERY_DISABLED,       /* held by `collie cluster recover disable` */
	RECOVERY_STOPPED,        /* stopped before the disk filled; message says why */
	RECOVERY_INCOMPLETE,     /* some objects had no live source; message says how many */
};

struct recovery_info {
	uint32_t epoch;          /* the epoch being (or last) recovered */
	uint8_t  phase;          /* enum recovery_phase */
	uint8_t  cluster_done;   /* every member has finished this epoch */
	uint16_t inflight;       /* throttle: objects fetched at once */
	uint64_t total;          /* objects this node must fetch in this epoch */
	uint64_t done;
	uint64_t failed;
	uint64_t bytes;          /* bytes fetched */
	uint64_t elapsed_ms;     /* since this epoch's recovery started (until it ended) */
	uint32_t pause_ms;       /* throttle: pause after each object */
	uint32_t __pad;
	char     message[128];
};
SD_CHECK(sizeof(struct recovery_info) == 184);

/* GET_HASH response payload: crc32c of a whole object as stored */
struct object_hash {
	uint32_t crc;
	uint32_t size;           /* bytes hashed (the object size) */
};

/* Our use of the inode's old child-list area (reserved_area, 1024 words): word 0 counts the
 * VDI's attributes, words 1..count are their attr ids (sheep/vdi_attr.c), the last word holds
 * flags. */
#define SD_INODE_ATTR_LIST_MAX 1022
#define SD_INODE_FLAGS_WORD    1023
#define SD_INODE_FLAG_CLONE    0x1    /* this line of VDIs began as a clone of another name */
#define SD_INODE_FLAG_PENDING  0x2    /* a tombstone whose index lists objects still shared */

/* LOCK_VDI type (request vdi.type) */
#define SD_LOCK_NORMAL 0
#define SD_LOCK_SHARED 1
#define SD_LOCK_MAX_OWNERS 11
#define SD_LOCK_PREV_VIDS  3

/* GET_VDI_LOCKS: one entry per locked VDI; owners are node_id_hash32() of the holding sheep.
 * A snapshot moves the lock to the new working VDI; prev_vids remembers the ids it had (newest
 * first), so a holder that never saw the move can still release it. */
struct vdi_lock_info {
	uint32_t vid;
	uint8_t  type;
	uint8_t  nr_owners;
	uint16_t __pad;
	uint32_t owners[SD_LOCK_MAX_OWNERS];
	uint32_t prev_vids[SD_LOCK_PREV_VIDS];
};
SD_CHECK(sizeof(struct vdi_lock_info) == 64);

static inline uint32_t node_id_hash32(const struct sd_node *n)
{
	uint8_t key[18];
	for (int i = 0; i < 16; i++)
		key[i] = n->addr[i];
	key[16] = n->port & 0xff;
	key[17] = n->port >> 8;
	return (uint32_t)sd_hash(key, sizeof(key));
}

#endif
