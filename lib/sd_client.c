/* sd_client.c: the guest-side flow of the sheepdog protocol (protocol.md): find a VDI by name,
 * read its inode, read data objects from the VDI that owns each index, create objects on first
 * write (copy-on-write from a parent's object) and record them in the inode. Thread-safe: many
 * threads may read and write one open VDI; each uses a pooled connection. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal_proto.h"
#include "net.h"
#include "sd_client.h"
#include "util.h"

#define POOL_MAX 32
#define ALLOC_LOCKS 64

struct sd_vdi {
	char host[256];
	int port;
	char name[SD_MAX_VDI_LEN];
	char snap[SD_MAX_VDI_TAG_LEN];
	bool locked;                              /* LOCK_VDI taken: RELEASE_VDI on close */
	sd_exec_fn exec;                          /* in-process transport, or NULL: sockets */
	void *exec_ctx;
	pthread_mutex_t reload_lock;              /* one inode reload at a time */
	uint32_t vid;
	uint64_t size;
	uint8_t shift;
	uint8_t copies;
	bool writable;
	uint32_t nr_objs;
	uint32_t *index;
	pthread_mutex_t lock;                     /* index and pool */
	pthread_mutex_t alloc_lock[ALLOC_LOCKS];  /* one object's creation at a time */
	int pool[POOL_MAX];
	int nr_pool;
};

static const char *const res_names[256] = {
	[SD_RES_SUCCESS] = "success",
	[SD_RES_UNKNOWN] = "unknown error",
	[SD_RES_NO_OBJ] = "no such object",
	[SD_RES_EIO] = "I/O error",
	[SD_RES_VDI_EXIST] = "VDI exists already",
	[SD_RES_INVALID_PARMS] = "invalid parameters",
	[SD_RES_SYSTEM_ERROR] = "system error",
	[SD_RES_VDI_LOCKED] = "VDI is locked",
	[SD_RES_NO_VDI] = "no such VDI",
	[SD_RES_NO_BASE_VDI] = "no base VDI",
	[SD_RES_VDI_READ] = "cannot read the VDI",
	[SD_RES_VDI_WRITE] = "cannot write the VDI",
	[SD_RES_BASE_VDI_READ] = "cannot read the base VDI",
	[SD_RES_BASE_VDI_WRITE] = "cannot write the base VDI",
	[SD_RES_NO_TAG] = "no such snapshot",
	[SD_RES_STARTUP] = "sheep is starting up",
	[SD_RES_VDI_NOT_LOCKED] = "VDI is not locked",
	[SD_RES_SHUTDOWN] = "the cluster is shutting down",
	[SD_RES_NO_MEM] = "out of memory",
	[SD_RES_FULL_VDI] = "no free VDI id left",
	[SD_RES_VER_MISMATCH] = "protocol version mismatch",
	[SD_RES_NO_SPACE] = "no space left on a node",
	[SD_RES_WAIT_FOR_FORMAT] = "the cluster is not formatted (run: collie cluster format)",
	[SD_RES_WAIT_FOR_JOIN] = "waiting for other nodes to join",
	[SD_RES_JOIN_FAILED] = "the node could not join",
	[SD_RES_HALT] = "the cluster stopped I/O (not enough nodes)",
	[SD_RES_READONLY] = "read-only (a snapshot)",
	[SD_RES_INODE_INVALIDATED] = "inode invalidated",
	[SD_RES_OLD_NODE_VER] = "old node version",
	[SD_RES_NEW_NODE_VER] = "new node version",
	[SD_RES_NOT_FORMATTED] = "not formatted",
	[SD_RES_INVALID_CTIME] = "creation time mismatch",
	[SD_RES_INVALID_EPOCH] = "invalid epoch",
	[SD_RES_NETWORK_ERROR] = "network error between nodes",
	[SD_RES_BUFFER_SMALL] = "buffer too small",
	[SD_RES_NO_SUPPORT] = "not supported",
	[SD_RES_KILLED] = "node killed",
	[SD_RES_AGAIN] = "try again",
	[SD_RES_STALE_OBJ] = "stale object",
	[SD_RES_CHECKSUM] = "data fails its checksum",
	[SD_RES_TOO_FEW_ZONES] = "more copies than the cluster has zones (failure domains)",
	[SD_RES_PERM_DENIED] = "permission denied (no cluster key, or a network outside --guest-allow)",
};

const char *sd_strerror(int res)
{
	static __thread char buf[64];
	if (res < 0)
		return strerror(-res);
	if (res < 256 && res_names[res])
		return res_names[res];
	snprintf(buf, sizeof(buf), "error 0x%x", res);
	return buf;
}

int sd_run(const char *host, int port, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp)
{
	int fd = connect_to(host, port, 5000, 120000);
	if (fd < 0)
		return fd;
	int ret = exec_req(fd, hdr, data, bufsize, rsp) < 0 ? -(errno ? errno : EIO) : 0;
	close(fd);
	return ret;
}

int sd_request(const char *host, int port, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp)
{
	int ret = sd_run(host, port, hdr, data, bufsize, rsp);
	return ret < 0 ? ret : (int)rsp->result;
}

/* where the requests of a VDI's lookup and inode reads go: a transport, else host:port */
struct sd_link {
	const char *host;     /* NULL: the transport only */
	int port;
	sd_exec_fn exec;
	void *ctx;
};

static int link_run(const struct sd_link *l, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp)
{
	if (l->exec) {
		int ret = l->exec(l->ctx, hdr, data, bufsize, rsp);
		if (ret != -ENOTSUP)
			return ret;
	}
	if (!l->host)
		return -ENOTSUP;
	return sd_request(l->host, l->port, hdr, data, bufsize, rsp);
}

int sd_fill_name_snap(char *buf, const char *name, const char *snap, uint32_t *snapid)
{
	memset(buf, 0, SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN);
	*snapid = 0;
	if (!name || !*name || strlen(name) >= SD_MAX_VDI_LEN)
		return SD_RES_INVALID_PARMS;
	memcpy(buf, name, strlen(name));
	if (snap && *snap) {
		uint64_t id;
		if (strlen(snap) >= SD_MAX_VDI_TAG_LEN)
			return SD_RES_INVALID_PARMS;
		if (sd_snap_is_id(snap) && parse_u64(snap, &id) == 0)
			*snapid = id;
		else
			memcpy(buf + SD_MAX_VDI_LEN, snap, strlen(snap));
	}
	return SD_RES_SUCCESS;
}

/* the same rule every lookup applies: a number from 1 to 2^32-1 is an id, anything else a tag */
bool sd_snap_is_id(const char *snap)
{
	uint64_t id;
	return snap && parse_u64(snap, &id) == 0 && id && id <= UINT32_MAX;
}

/* GET_VDI_INFO, or LOCK_VDI for a guest that opens the working VDI to write: name + tag -> vid */
static int vdi_find(const struct sd_link *l, uint8_t opcode, const char *name, const char *snap, uint32_t *vid)
{
	char buf[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN];
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = opcode,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(buf) };
	struct sd_rsp rsp;
	int ret = sd_fill_name_snap(buf, name, snap, &hdr.vdi.snapid);
	if (ret)
		return ret;
	ret = link_run(l, &hdr, buf, 0, &rsp);
	if (ret == SD_RES_SUCCESS)
		*vid = rsp.vdi.vdi_id;
	return ret;
}

int sd_vdi_lookup(const char *host, int port, const char *name, const char *snap, uint32_t *vid)
{
	struct sd_link l = { host, port, NULL, NULL };
	return vdi_find(&l, SD_OP_GET_VDI_INFO, name, snap, vid);
}

static int read_header(const struct sd_link *l, uint32_t vid, struct sd_inode_header *h)
{
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_OBJ, .data_length = sizeof(*h) };
	struct sd_rsp rsp;
	hdr.obj.oid = vid_to_vdi_oid(vid);
	int ret = link_run(l, &hdr, h, sizeof(*h), &rsp);
	if (ret == SD_RES_SUCCESS && rsp.data_length < sizeof(*h))
		memset((char *)h + rsp.data_length, 0, sizeof(*h) - rsp.data_length);
	return ret;
}

int sd_read_inode_header(const char *host, int port, uint32_t vid, struct sd_inode_header *h)
{
	struct sd_link l = { host, port, NULL, NULL };
	return read_header(&l, vid, h);
}

static int read_index(const struct sd_link *l, uint32_t vid, uint32_t *index, uint32_t nr)
{
	if (nr > SD_INODE_DATA_INDEX)
		return SD_RES_INVALID_PARMS;
	if (!nr)
		return SD_RES_SUCCESS;
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_OBJ,
			      .data_length = nr * sizeof(uint32_t) };
	struct sd_rsp rsp;
	hdr.obj.oid = vid_to_vdi_oid(vid);
	hdr.obj.offset = SD_INODE_HEADER_SIZE;
	int ret = link_run(l, &hdr, index, nr * sizeof(uint32_t), &rsp);
	if (ret == SD_RES_SUCCESS && rsp.data_length < nr * sizeof(uint32_t))
		memset((char *)index + rsp.data_length, 0, nr * sizeof(uint32_t) - rsp.data_length);
	return ret;
}

int sd_read_inode_index(const char *host, int port, uint32_t vid, uint32_t *index, uint32_t nr)
{
	struct sd_link l = { host, port, NULL, NULL };
	return read_index(&l, vid, index, nr);
}

int sd_vdi_create(const char *host, int port, const char *name, uint64_t size, int copies, uint8_t copy_policy,
		  bool prealloc, uint32_t *vid_out)
{
	char buf[SD_MAX_VDI_LEN] = { 0 };
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_NEW_VDI,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(buf) };
	struct sd_rsp rsp;
	if (!*name || strlen(name) >= SD_MAX_VDI_LEN)
		return SD_RES_INVALID_PARMS;
	strncpy(buf, name, sizeof(buf) - 1);
	hdr.vdi.vdi_size = size;
	hdr.vdi.copies = copies;
	hdr.vdi.copy_policy = copy_policy;
	int ret = sd_request(host, port, &hdr, buf, 0, &rsp);
	if (ret != SD_RES_SUCCESS)
		return ret;
	if (vid_out)
		*vid_out = rsp.vdi.vdi_id;
	if (!prealloc)
		return ret;
	/* preallocation: create every object now */
	struct sd_vdi *vdi;
	ret = sd_vdi_open(host, port, name, NULL, true, &vdi);
	if (ret)
		return ret;
	uint64_t objsize = sd_vdi_object_size(vdi);
	char *zero = calloc(1, 1);
	for (uint32_t i = 0; i < vdi->nr_objs && ret == SD_RES_SUCCESS; i++) {
		struct sd_req c = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_CREATE_AND_WRITE_OBJ,
				    .flags = SD_FLAG_CMD_WRITE | SD_FLAG_CMD_CACHE, .data_length = 1 };
		c.obj.oid = vid_to_data_oid(vdi->vid, i);
		c.obj.copies = vdi->copies;
		c.obj.offset = objsize - 1;
		ret = sd_request(host, port, &c, zero, 0, &rsp);
		if (ret == SD_RES_SUCCESS)
			vdi->index[i] = vdi->vid;
	}
	free(zero);
	if (ret == SD_RES_SUCCESS && vdi->nr_objs) {
		struct sd_req w = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_WRITE_OBJ,
				    .flags = SD_FLAG_CMD_WRITE, .data_length = vdi->nr_objs * 4 };
		w.obj.oid = vid_to_vdi_oid(vdi->vid);
		w.obj.offset = SD_INODE_HEADER_SIZE;
		ret = sd_request(host, port, &w, vdi->index, 0, &rsp);
	}
	if (ret == SD_RES_SUCCESS)
		ret = sd_vdi_flush(vdi);
	sd_vdi_close(vdi);
	return ret;
}

int sd_name_snap_request(const char *host, int port, uint8_t proto_ver, uint8_t opcode, const char *name,
			 const char *snap)
{
	char buf[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN];
	struct sd_req hdr = { .proto_ver = proto_ver, .opcode = opcode, .flags = SD_FLAG_CMD_WRITE,
			      .data_length = sizeof(buf) };
	struct sd_rsp rsp;
	int ret = sd_fill_name_snap(buf, name, snap, &hdr.vdi.snapid);
	return ret ? ret : sd_request(host, port, &hdr, buf, 0, &rsp);
}

int sd_vdi_delete(const char *host, int port, const char *name, const char *snap)
{
	return sd_name_snap_request(host, port, SD_PROTO_VER, SD_OP_DEL_VDI, name, snap);
}


/* Read the header and index of vid into fresh memory: what open and a reload need. */
static int load_inode(const struct sd_link *l, uint32_t vid, struct sd_inode_header *h,
		      uint32_t **index, uint32_t *nr_objs)
{
	int ret = read_header(l, vid, h);
	if (ret)
		return ret;
	uint8_t shift = h->block_size_shift ? h->block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT;
	if (shift < 20 || shift > 31)
		return SD_RES_INVALID_PARMS;
	uint64_t nr = DIV_ROUND_UP(h->vdi_size, UINT64_C(1) << shift);
	if (nr > SD_INODE_DATA_INDEX)
		return SD_RES_INVALID_PARMS;
	uint32_t *idx = calloc(nr ? nr : 1, sizeof(uint32_t));
	if (!idx)
		return -ENOMEM;
	ret = read_index(l, vid, idx, nr);
	if (ret) {
		free(idx);
		return ret;
	}
	*index = idx;
	*nr_objs = nr;
	return SD_RES_SUCCESS;
}

static int release_vdi(const struct sd_link *l, const char *name, uint32_t vid)
{
	char buf[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN] = { 0 };
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_RELEASE_VDI,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(buf) };
	struct sd_rsp rsp;
	snprintf(buf, SD_MAX_VDI_LEN, "%s", name);
	hdr.vdi.base_vdi_id = vid;
	return link_run(l, &hdr, buf, 0, &rsp);
}

int sd_vdi_release(const char *host, int port, const char *name, uint32_t vid)
{
	struct sd_link l = { host, port, NULL, NULL };
	return release_vdi(&l, name, vid);
}

static struct sd_link vdi_link(const struct sd_vdi *vdi)
{
	struct sd_link l = { vdi->host[0] ? vdi->host : NULL, vdi->port, vdi->exec, vdi->exec_ctx };
	return l;
}

static int vdi_open_link(const struct sd_link *l, const char *name, const char *snap, bool writable,
			 struct sd_vdi **out)
{
	bool snapshot = snap && *snap;
	bool lock = writable && !snapshot;
	struct sd_inode_header *h = NULL;
	struct sd_vdi *vdi = NULL;
	uint32_t vid;
	int ret;

	if (writable && snapshot)
		return SD_RES_READONLY;
	/* a guest locks the working VDI it writes; readers and snapshots only look it up */
	ret = vdi_find(l, lock ? SD_OP_LOCK_VDI : SD_OP_GET_VDI_INFO, name, snap, &vid);
	if (ret)
		return ret;
	h = calloc(1, sizeof(*h));
	vdi = calloc(1, sizeof(*vdi));
	if (!h || !vdi) {
		ret = -ENOMEM;
		goto out_release;
	}
	snprintf(vdi->host, sizeof(vdi->host), "%s", l->host ? l->host : "");
	snprintf(vdi->name, sizeof(vdi->name), "%s", name);
	snprintf(vdi->snap, sizeof(vdi->snap), "%s", snapshot ? snap : "");
	vdi->port = l->port;
	vdi->exec = l->exec;
	vdi->exec_ctx = l->ctx;
	vdi->vid = vid;
	vdi->locked = lock;
	ret = load_inode(l, vid, h, &vdi->index, &vdi->nr_objs);
	if (ret)
		goto out_release;
	if (writable && h->snap_ctime) {
		ret = SD_RES_READONLY;
		goto out_release;
	}
	vdi->size = h->vdi_size;
	vdi->shift = h->block_size_shift ? h->block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT;
	vdi->copies = h->nr_copies;
	vdi->writable = writable;
	pthread_mutex_init(&vdi->lock, NULL);
	pthread_mutex_init(&vdi->reload_lock, NULL);
	for (int i = 0; i < ALLOC_LOCKS; i++)
		pthread_mutex_init(&vdi->alloc_lock[i], NULL);
	free(h);
	*out = vdi;
	return SD_RES_SUCCESS;
out_release:
	if (lock)
		release_vdi(l, name, vid);
	if (vdi)
		free(vdi->index);
	free(vdi);
	free(h);
	return ret;
}

int sd_vdi_open(const char *host, int port, const char *name, const char *snap, bool writable,
		struct sd_vdi **out)
{
	struct sd_link l = { host, port, NULL, NULL };
	return vdi_open_link(&l, name, snap, writable, out);
}

int sd_vdi_open_via(sd_exec_fn fn, void *ctx, const char *name, const char *snap, bool writable,
		    struct sd_vdi **out)
{
	struct sd_link l = { NULL, 0, fn, ctx };
	return vdi_open_link(&l, name, snap, writable, out);
}

void sd_vdi_set_exec(struct sd_vdi *vdi, sd_exec_fn fn, void *ctx)
{
	vdi->exec = fn;
	vdi->exec_ctx = ctx;
}

uint64_t sd_vdi_size(const struct sd_vdi *vdi) { return vdi->size; }
uint32_t sd_vdi_object_size(const struct sd_vdi *vdi) { return UINT32_C(1) << vdi->shift; }
bool sd_vdi_writable(const struct sd_vdi *vdi) { return vdi->writable; }
uint8_t sd_vdi_copies(const struct sd_vdi *vdi) { return vdi->copies; }

uint32_t sd_vdi_id(struct sd_vdi *vdi)
{
	pthread_mutex_lock(&vdi->lock);
	uint32_t v = vdi->vid;
	pthread_mutex_unlock(&vdi->lock);
	return v;
}

const uint32_t *sd_vdi_index(const struct sd_vdi *vdi, uint32_t *nr_objects)
{
	*nr_objects = vdi->nr_objs;
	return vdi->index;
}

static int pool_get(struct sd_vdi *vdi)
{
	pthread_mutex_lock(&vdi->lock);
	if (vdi->nr_pool) {
		int fd = vdi->pool[--vdi->nr_pool];
		pthread_mutex_unlock(&vdi->lock);
		return fd;
	}
	pthread_mutex_unlock(&vdi->lock);
	return connect_to(vdi->host, vdi->port, 5000, 120000);
}

static void pool_put(struct sd_vdi *vdi, int fd)
{
	pthread_mutex_lock(&vdi->lock);
	if (vdi->nr_pool < POOL_MAX) {
		vdi->pool[vdi->nr_pool++] = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&vdi->lock);
	if (fd >= 0)
		close(fd);
}

/* one request of the I/O path: the in-process transport when set (it may decline with -ENOTSUP),
 * else a pooled connection */
static int vdi_exec(struct sd_vdi *vdi, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp)
{
	if (vdi->exec) {
		int ret = vdi->exec(vdi->exec_ctx, hdr, data, bufsize, rsp);
		if (ret != -ENOTSUP)
			return ret;
	}
	if (!vdi->host[0])
		return -ENOTSUP;
	int fd = pool_get(vdi);
	if (fd < 0)
		return fd;
	if (exec_req(fd, hdr, data, bufsize, rsp) < 0) {
		int err = errno ? errno : EIO;
		close(fd);
		return -err;
	}
	pool_put(vdi, fd);
	return rsp->result;
}

/* the VDI's current id and the owner of index idx, consistently */
static void index_get(struct sd_vdi *vdi, uint32_t idx, uint32_t *vid, uint32_t *owner)
{
	pthread_mutex_lock(&vdi->lock);
	*vid = vdi->vid;
	*owner = idx < vdi->nr_objs ? vdi->index[idx] : 0;
	pthread_mutex_unlock(&vdi->lock);
}

static void index_set(struct sd_vdi *vdi, uint32_t vid, uint32_t idx, uint32_t owner)
{
	pthread_mutex_lock(&vdi->lock);
	if (vdi->vid == vid && idx < vdi->nr_objs)
		vdi->index[idx] = owner;
	pthread_mutex_unlock(&vdi->lock);
}

/*
 * A write was refused with READONLY: someone took a snapshot, so stale_vid is frozen and the name
 * now maps to a new working VDI that shares its objects. Adopt the new id and index (as QEMU's
 * driver reloaded its inode); the caller retries, and its first write to each object copies it.
 */
static int vdi_reload(struct sd_vdi *vdi, uint32_t stale_vid)
{
	struct sd_inode_header *h;
	uint32_t vid, *index = NULL, nr = 0;
	int ret;

	if (vdi->snap[0] || !vdi->writable)
		return SD_RES_READONLY;
	pthread_mutex_lock(&vdi->reload_lock);
	if (sd_vdi_id(vdi) != stale_vid) {
		ret = SD_RES_SUCCESS;              /* another thread reloaded already */
		goto out_unlock;
	}
	/* a lookup, not LOCK_VDI: the guest lock we hold follows the name to its new id (a fresh LOCK
	 * would find it taken, by us) */
	struct sd_link l = vdi_link(vdi);
	ret = vdi_find(&l, SD_OP_GET_VDI_INFO, vdi->name, NULL, &vid);
	if (ret)
		goto out_unlock;
	if (vid == stale_vid) {
		ret = SD_RES_READONLY;
		goto out_unlock;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	ret = load_inode(&l, vid, h, &index, &nr);
	if (ret == SD_RES_SUCCESS) {
		pthread_mutex_lock(&vdi->lock);
		uint32_t *old = vdi->index;
		vdi->index = index;
		vdi->nr_objs = nr;
		vdi->vid = vid;
		vdi->size = h->vdi_size;
		pthread_mutex_unlock(&vdi->lock);
		free(old);
		/* where the lock stayed with the old id, let it go (else this answers NOT_LOCKED) */
		release_vdi(&l, vdi->name, stale_vid);
	}
	free(h);
out_unlock:
	pthread_mutex_unlock(&vdi->reload_lock);
	return ret;
}

static bool range_ok(const struct sd_vdi *vdi, uint64_t offset, uint64_t len)
{
	return offset <= vdi->size && len <= vdi->size - offset;
}

int sd_vdi_pread(struct sd_vdi *vdi, void *buf, size_t len, uint64_t offset)
{
	uint64_t objsize = UINT64_C(1) << vdi->shift;
	if (!range_ok(vdi, offset, len))
		return SD_RES_INVALID_PARMS;
	while (len) {
		uint32_t idx = offset >> vdi->shift;
		uint32_t off = offset & (objsize - 1);
		uint32_t n = MIN(len, objsize - off);
		uint32_t vid, owner;
		index_get(vdi, idx, &vid, &owner);
		if (!owner) {
			memset(buf, 0, n);
		} else {
			/* the owner may be a parent: a snapshot's or clone's base still holds the object */
			struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_OBJ, .data_length = n };
			struct sd_rsp rsp;
			hdr.obj.oid = vid_to_data_oid(owner, idx);
			hdr.obj.copies = vdi->copies;
			hdr.obj.offset = off;
			int ret = vdi_exec(vdi, &hdr, buf, n, &rsp);
			if (ret)
				return ret;
			if (rsp.data_length < n)
				memset((char *)buf + rsp.data_length, 0, n - rsp.data_length);
		}
		buf = (char *)buf + n;
		offset += n;
		len -= n;
	}
	return SD_RES_SUCCESS;
}

/* write within one object, creating it (or its copy-on-write copy) on first write */
static int write_one(struct sd_vdi *vdi, uint32_t idx, const void *buf, uint32_t n, uint32_t off,
		     unsigned flags)
{
	uint16_t cache = (flags & SD_VDI_SYNC) ? 0 : SD_FLAG_CMD_CACHE;
	struct sd_rsp rsp;
	uint32_t vid, owner;
	int ret, tries = 0;
again:
	index_get(vdi, idx, &vid, &owner);
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_WRITE_OBJ,
			      .flags = SD_FLAG_CMD_WRITE | cache, .data_length = n };
	hdr.obj.copies = vdi->copies;
	hdr.obj.offset = off;
	hdr.obj.oid = vid_to_data_oid(vid, idx);
	if (owner == vid) {
		ret = vdi_exec(vdi, &hdr, (void *)buf, 0, &rsp);
		goto out;
	}
	pthread_mutex_t *lk = &vdi->alloc_lock[idx % ALLOC_LOCKS];
	pthread_mutex_lock(lk);
	index_get(vdi, idx, &vid, &owner);
	hdr.obj.oid = vid_to_data_oid(vid, idx);
	if (owner == vid) {          /* another thread created it meanwhile */
		pthread_mutex_unlock(lk);
		ret = vdi_exec(vdi, &hdr, (void *)buf, 0, &rsp);
		goto out;
	}
	if (!owner && !(flags & SD_VDI_ALLOCATE) && is_all_zero(buf, n)) {
		pthread_mutex_unlock(lk);   /* zeros into a hole: nothing to store */
		return SD_RES_SUCCESS;
	}
	hdr.opcode = SD_OP_CREATE_AND_WRITE_OBJ;
	if (owner) {
		/* the index belongs to another VDI (a parent): copy its object, then lay our data over it */
		hdr.flags |= SD_FLAG_CMD_COW;
		hdr.obj.cow_oid = vid_to_data_oid(owner, idx);
	}
	ret = vdi_exec(vdi, &hdr, (void *)buf, 0, &rsp);
	if (ret == SD_RES_SUCCESS) {
		/* then record the new object: the 4-byte data_vdi_id entry of the inode */
		struct sd_req w = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_WRITE_OBJ,
				    .flags = SD_FLAG_CMD_WRITE | cache, .data_length = sizeof(vid) };
		w.obj.oid = vid_to_vdi_oid(vid);
		w.obj.copies = vdi->copies;
		w.obj.offset = SD_INODE_HEADER_SIZE + idx * sizeof(uint32_t);
		ret = vdi_exec(vdi, &w, &vid, 0, &rsp);
		if (ret == SD_RES_SUCCESS)
			index_set(vdi, vid, idx, vid);
	}
	pthread_mutex_unlock(lk);
out:
	if (ret == SD_RES_READONLY && tries++ < 3 && vdi_reload(vdi, vid) == SD_RES_SUCCESS)
		goto again;
	return ret;
}

int sd_vdi_pwrite_flags(struct sd_vdi *vdi, const void *buf, size_t len, uint64_t offset, unsigned flags)
{
	uint64_t objsize = UINT64_C(1) << vdi->shift;
	if (!vdi->writable)
		return SD_RES_READONLY;
	if (!range_ok(vdi, offset, len))
		return SD_RES_INVALID_PARMS;
	while (len) {
		uint32_t idx = offset >> vdi->shift;
		uint32_t off = offset & (objsize - 1);
		uint32_t n = MIN(len, objsize - off);
		int ret = write_one(vdi, idx, buf, n, off, flags);
		if (ret)
			return ret;
		buf = (const char *)buf + n;
		offset += n;
		len -= n;
	}
	return SD_RES_SUCCESS;
}

int sd_vdi_pwrite(struct sd_vdi *vdi, const void *buf, size_t len, uint64_t offset)
{
	return sd_vdi_pwrite_flags(vdi, buf, len, offset, 0);
}

/* DISCARD_OBJ of one whole object: the inode entry goes back to 0 (and the object, if ours) */
static int discard_one(struct sd_vdi *vdi, uint32_t idx)
{
	pthread_mutex_t *lk = &vdi->alloc_lock[idx % ALLOC_LOCKS];
	uint32_t vid, owner;
	int ret, tries = 0;
again:
	pthread_mutex_lock(lk);
	index_get(vdi, idx, &vid, &owner);
	if (!owner) {
		pthread_mutex_unlock(lk);
		return SD_RES_SUCCESS;
	}
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_DISCARD_OBJ };
	struct sd_rsp rsp;
	hdr.obj.oid = vid_to_data_oid(vid, idx);
	hdr.obj.copies = vdi->copies;
	ret = vdi_exec(vdi, &hdr, NULL, 0, &rsp);
	if (ret == SD_RES_SUCCESS)
		index_set(vdi, vid, idx, 0);
	pthread_mutex_unlock(lk);
	if (ret == SD_RES_READONLY && tries++ < 3 && vdi_reload(vdi, vid) == SD_RES_SUCCESS)
		goto again;
	return ret;
}

int sd_vdi_write_zeroes(struct sd_vdi *vdi, uint64_t offset, uint64_t len, unsigned flags)
{
	uint64_t objsize = UINT64_C(1) << vdi->shift;
	char *zero = NULL;
	int ret = SD_RES_SUCCESS;

	if (!vdi->writable)
		return SD_RES_READONLY;
	if (!range_ok(vdi, offset, len))
		return SD_RES_INVALID_PARMS;
	if (flags & SD_VDI_FAST) {
		/* only holes are cheap: refuse when zeros would have to be written */
		if (flags & SD_VDI_ALLOCATE)
			return SD_RES_NO_SUPPORT;
		for (uint64_t o = offset, l = len; l;) {
			uint32_t idx = o >> vdi->shift, off = o & (objsize - 1), vid, owner;
			uint32_t n = MIN(l, objsize - off);
			index_get(vdi, idx, &vid, &owner);
			if (owner && n != objsize)
				return SD_RES_NO_SUPPORT;
			o += n;
			l -= n;
		}
	}
	while (len && ret == SD_RES_SUCCESS) {
		uint32_t idx = offset >> vdi->shift, off = offset & (objsize - 1), vid, owner;
		uint32_t n = MIN(len, objsize - off);
		index_get(vdi, idx, &vid, &owner);
		if (n == objsize && !(flags & SD_VDI_ALLOCATE)) {
			ret = discard_one(vdi, idx);
		} else if (owner || (flags & SD_VDI_ALLOCATE)) {
			if (!zero && !(zero = calloc(1, objsize)))
				ret = -ENOMEM;
			else
				ret = write_one(vdi, idx, zero, n, off, flags);
		}
		offset += n;
		len -= n;
	}
	free(zero);
	return ret;
}

int sd_vdi_block_status(struct sd_vdi *vdi, uint64_t offset, uint64_t len, bool *allocated, uint64_t *run)
{
	uint64_t objsize = UINT64_C(1) << vdi->shift;
	uint32_t vid, owner;
	if (offset >= vdi->size || !len)
		return SD_RES_INVALID_PARMS;
	len = MIN(len, vdi->size - offset);
	uint32_t idx = offset >> vdi->shift;
	index_get(vdi, idx, &vid, &owner);
	bool a = owner != 0;
	uint64_t end = MIN(((uint64_t)idx + 1) * objsize, offset + len);
	while (end < offset + len) {
		idx++;
		index_get(vdi, idx, &vid, &owner);
		if ((owner != 0) != a)
			break;
		end = MIN(((uint64_t)idx + 1) * objsize, offset + len);
	}
	*allocated = a;
	*run = end - offset;
	return SD_RES_SUCCESS;
}

int sd_vdi_flush(struct sd_vdi *vdi)
{
	struct sd_req hdr = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_FLUSH_VDI };
	struct sd_rsp rsp;
	hdr.obj.oid = vid_to_vdi_oid(sd_vdi_id(vdi));
	return vdi_exec(vdi, &hdr, NULL, 0, &rsp);
}

void sd_vdi_close(struct sd_vdi *vdi)
{
	if (!vdi)
		return;
	if (vdi->locked) {
		struct sd_link l = vdi_link(vdi);
		release_vdi(&l, vdi->name, vdi->vid);
	}
	while (vdi->nr_pool)
		close(vdi->pool[--vdi->nr_pool]);
	free(vdi->index);
	free(vdi);
}
