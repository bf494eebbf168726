/* peer.c: the peer ops a gateway sends to each replica, executed on the local store. Writes are
 * refused from a gateway on another epoch, so no write lands on a placement the cluster left.
 * A write to an object this node should hold but does not yet (it moved here in a new epoch)
 * first fetches the object from a holder of an earlier epoch. A read that finds the replica failing
 * its checksum hands it to read repair. A replica whose write failed while the others' worked is
 * replaced from them (REPAIR_REPLICA, sent by the gateway before it answers the write). A create
 * with SD_FLAG_CMD_COW carries only the new bytes: the replica copies the parent object (cow_oid)
 * from its own store, else from the parent's holders, lays them over it and creates the object. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "internal_proto.h"
#include "logger.h"
#include "sd_client.h"
#include "sheepdog_proto.h"
#include "cluster_view.h"
#include "peer.h"
#include "store/store.h"
#include "vdi_state.h"

static int (*fetch_object)(uint64_t oid);   /* recovery's, set at start */

void peer_set_object_fetcher(int (*fetch)(uint64_t oid))
{
	fetch_object = fetch;
}

static void (*repair_replica)(uint64_t oid);   /* read repair's, set at start */

void peer_set_repairer(void (*repair)(uint64_t oid))
{
	repair_replica = repair;
}

static int (*read_parent)(uint64_t oid, void *buf, uint32_t len);   /* the gateway's, set at start */

void peer_set_parent_reader(int (*read)(uint64_t oid, void *buf, uint32_t len))
{
	read_parent = read;
}

static int check_epoch(const struct sd_req *hdr)
{
	uint32_t mine = sys_epoch();
	if (hdr->epoch < mine)
		return SD_RES_OLD_NODE_VER;
	/* the gateway saw a membership change we have not applied yet: it waited for it in
	 * epoch_wait.c before it came here, so it is too late now */
	if (hdr->epoch > mine)
		return SD_RES_NEW_NODE_VER;
	return SD_RES_SUCCESS;
}

static bool in_object(const struct sd_req *hdr)
{
	return (uint64_t)hdr->obj.offset + hdr->data_length <= obj_size_of(hdr->obj.oid);
}

static bool sync_write(const struct sd_req *hdr)
{
	return !(hdr->flags & SD_FLAG_CMD_CACHE);
}

int peer_read(const struct sd_req *hdr, void *data, struct sd_rsp *rsp)
{
	if (!in_object(hdr))
		return SD_RES_INVALID_PARMS;
	int ret = store_read(hdr->obj.oid, data, hdr->data_length, hdr->obj.offset);
	if (ret == SD_RES_SUCCESS)
		rsp->data_length = hdr->data_length;
	else if (ret == SD_RES_CHECKSUM && repair_replica && !(hdr->flags & SD_FLAG_CMD_NO_REPAIR))
		repair_replica(hdr->obj.oid);    /* the gateway reads another replica meanwhile */
	return ret;
}

/* a change to an object: in its bounds, and from a gateway on this node's epoch */
static int may_change(const struct sd_req *hdr)
{
	if (!in_object(hdr))
		return SD_RES_INVALID_PARMS;
	return check_epoch(hdr);
}

/* the whole parent object of a copy-on-write: this node's replica if it has a good one, else one
 * attempt at its holders (NO_OBJ: the gateway sends the whole object instead) */
static int read_parent_obj(uint64_t cow_oid, char *buf, uint32_t size)
{
	int ret = store_read(cow_oid, buf, size, 0);
	if (ret == SD_RES_CHECKSUM && repair_replica)
		repair_replica(cow_oid);
	if (ret != SD_RES_SUCCESS && read_parent)
		ret = read_parent(cow_oid, buf, size);
	if (ret != SD_RES_SUCCESS)
		sd_warn("%016" PRIx64 ", the parent of a copy on write: no copy here or at its holders (%s)",
			cow_oid, sd_strerror(ret));
	return ret == SD_RES_SUCCESS ? ret : SD_RES_NO_OBJ;
}

/* CREATE_AND_WRITE_PEER with SD_FLAG_CMD_COW: parent + the new bytes, created whole */
static int create_from_parent(const struct sd_req *hdr, void *data)
{
	uint64_t oid = hdr->obj.oid, cow = hdr->obj.cow_oid, size = obj_size_of(oid);
	uint32_t len = (hdr->flags & SD_FLAG_CMD_WRITE) ? hdr->data_length : 0;
	if (!is_data_obj(cow) || cow == oid || obj_size_of(cow) != size || oid_copy_policy(cow) ||
	    oid_copy_policy(oid))
		return SD_RES_INVALID_PARMS;
	char *full = xmalloc(size);
	int ret = read_parent_obj(cow, full, size);
	if (ret == SD_RES_SUCCESS)
		ret = check_epoch(hdr);    /* the cluster may have moved on while it was fetched */
	if (ret == SD_RES_SUCCESS) {
		memcpy(full + hdr->obj.offset, data, len);
		store_lock(oid);
		ret = store_create_and_write(oid, full, size, 0, size, sync_write(hdr));
		store_unlock(oid);
	}
	free(full);
	return ret;
}

int peer_create_and_write(const struct sd_req *hdr, void *data, struct sd_rsp *rsp)
{
	uint64_t oid = hdr->obj.oid;
	int ret;
	if ((ret = may_change(hdr)))
		return ret;
	if (hdr->flags & SD_FLAG_CMD_COW)
		return create_from_parent(hdr, data);
	store_lock(oid);
	ret = store_create_and_write(oid, data, (hdr->flags & SD_FLAG_CMD_WRITE) ? hdr->data_length : 0,
				     hdr->obj.offset, obj_size_of(oid), sync_write(hdr));
	store_unlock(oid);
	return ret;
}

int peer_write(const struct sd_req *hdr, void *data, struct sd_rsp *rsp)
{
	uint64_t oid = hdr->obj.oid;
	uint32_t len = hdr->data_length;
	int ret;
	if ((ret = may_change(hdr)))
		return ret;
	/* an object that moved here in this epoch and is not here yet is fetched first */
	store_lock(oid);
	ret = store_write(oid, data, len, hdr->obj.offset, sync_write(hdr));
	if (ret == SD_RES_NO_OBJ && fetch_object) {
		int fetched = fetch_object(oid);
		if (fetched == SD_RES_SUCCESS)
			ret = store_write(oid, data, len, hdr->obj.offset, sync_write(hdr));
		else if (fetched == SD_RES_EIO || fetched == SD_RES_NO_SPACE)
			ret = fetched;    /* this disk's failure, not a missing object */
	}
	store_unlock(oid);
	return ret;
}

int peer_remove(const struct sd_req *hdr, void *data, struct sd_rsp *rsp)
{
	uint64_t oid = hdr->obj.oid;
	int ret;
	if ((ret = may_change(hdr)))
		return ret;
	store_lock(oid);
	ret = store_remove(oid);
	store_unlock(oid);
	return ret;
}

int peer_replace(const struct sd_req *hdr, void *data, struct sd_rsp *rsp)
{
	uint64_t oid = hdr->obj.oid;
	int ret;
	if ((ret = check_epoch(hdr)))
		return ret;
	store_lock(oid);    /* writes to it wait: none lands between the fetch and the rewrite */
	ret = store_remove(oid);
	if (ret != SD_RES_SUCCESS && ret != SD_RES_NO_OBJ) {
		store_unlock(oid);
		sd_err("%016" PRIx64 ": a failed write left this replica behind, and it cannot be removed (%s)", oid,
		       sd_strerror(ret));
		return ret;
	}
	ret = fetch_object ? fetch_object(oid) : SD_RES_NO_OBJ;
	store_unlock(oid);
	if (ret == SD_RES_SUCCESS) {
		sd_warn("%016" PRIx64 ": a failed write left this replica behind: fetched again from the others", oid);
		return ret;
	}
	sd_err("%016" PRIx64 ": a failed write left this replica behind; it cannot be fetched again (%s) and is "
	       "missing here", oid, sd_strerror(ret));
	return SD_RES_NO_OBJ;
}

int peer_flush(const struct sd_req *hdr, void *data, struct sd_rsp *rsp)
{
	return store_flush();
}
