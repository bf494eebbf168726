/* node_disks.c: this node's disks as the cluster sees them. collie node md info|plug|unplug are
 * the MD_* opcodes; after any change of the disks (a plug, an unplug, a disk that failed, all in
 * store/md.c) the node's weight follows their capacity: a REWEIGHT of this node, which makes a
 * new epoch whose recovery also fetches what the lost disk held; when the weight stays the same,
 * the node's own recovery runs again in the current epoch and fetches it from the other holders. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "ring.h"
#include "sheepdog_proto.h"
#include "cluster_view.h"
#include "group.h"
#include "node_disks.h"
#include "node_weight.h"
#include "recovery.h"
#include "store/md.h"

#define DISK_WATCH_MS 500

int local_md_info(struct request *req)
{
	int max = req->rq.data_length / sizeof(struct sd_md_disk);
	if (max < 1)
		return SD_RES_BUFFER_SMALL;
	int n = md_info(req->data, max);
	req->rp.data_length = n * sizeof(struct sd_md_disk);
	return SD_RES_SUCCESS;
}

/* the path in a PLUG or UNPLUG payload, NUL-terminated in buf */
static int payload_path(struct request *req, char *buf, size_t len)
{
	uint32_t n = req->rq.data_length;
	if (!(req->rq.flags & SD_FLAG_CMD_WRITE) || !n || !req->data)
		return SD_RES_INVALID_PARMS;
	n = strnlen(req->data, n);
	if (!n || n >= len)
		return SD_RES_INVALID_PARMS;
	memcpy(buf, req->data, n);
	buf[n] = 0;
	req->rp.data_length = 0;
	return SD_RES_SUCCESS;
}

int local_md_plug(struct request *req)
{
	char path[SD_MD_PATH_LEN];
	int ret = payload_path(req, path, sizeof(path));
	return ret ? ret : md_plug(path);
}

int local_md_unplug(struct request *req)
{
	char path[SD_MD_PATH_LEN];
	int ret = payload_path(req, path, sizeof(path));
	return ret ? ret : md_unplug(path);
}

/* main thread: the disks changed; false to try again later (the node is not serving yet) */
static bool follow_disks(void)
{
	if (atomic_load(&sys->status) != SD_STATUS_OK)
		return false;
	uint16_t have = sys->this_node.nr_vnodes;
	if (!sys->fixed_vnodes && have) {
		uint16_t want = ring_vnodes_for_capacity(node_capacity());
		if (want != have) {
			struct sd_node n = sys->this_node;
			struct sd_req rq = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_REWEIGHT,
					     .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(n) };
			n.nr_vnodes = want;
			sd_info("md: the disks changed: %u vnodes instead of %u", want, have);
			group_notify(&rq, &n);
			return true;
		}
	}
	sd_info("md: the disks changed: recovering what this node lost in epoch %u", sys_epoch());
	recovery_rerun();
	return true;
}

static unsigned seen_generation;

static void watch_disks(void *unused)
{
	unsigned g = md_generation();
	if (g != seen_generation && follow_disks())
		seen_generation = g;
	add_timer(DISK_WATCH_MS, watch_disks, NULL);
}

void node_disks_watch(void)
{
	seen_generation = md_generation();
	add_timer(DISK_WATCH_MS, watch_disks, NULL);
}
