/* corosync.c: the cluster driver over corosync's CPG: one process group, AGREED (totally ordered)
 * multicast, and configuration changes delivered in the same order as messages. */
#include <corosync/cpg.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "util.h"
#include "../cluster.h"

#define GROUP_NAME "sheepfold"

static cpg_handle_t handle;
static struct cpg_name group;
static uint32_t local_nodeid;
static int cpg_fd = -1;
static const struct cluster_events *events;

static struct cluster_id to_id(const struct cpg_address *a)
{
	struct cluster_id id = { .nodeid = a->nodeid, .pid = a->pid };
	return id;
}

static void cpg_deliver(cpg_handle_t h, const struct cpg_name *name, uint32_t nodeid, uint32_t pid,
			void *msg, size_t len)
{
	struct cluster_id id = { .nodeid = nodeid, .pid = pid };
	events->deliver(&id, msg, len);
}

static void cpg_confchg(cpg_handle_t h, const struct cpg_name *name,
			const struct cpg_address *member_list, size_t member_list_entries,
			const struct cpg_address *left_list, size_t left_list_entries,
			const struct cpg_address *joined_list, size_t joined_list_entries)
{
	struct cluster_id m[SD_MAX_NODES], l[SD_MAX_NODES], j[SD_MAX_NODES];
	size_t nm = MIN(member_list_entries, SD_MAX_NODES), nl = MIN(left_list_entries, SD_MAX_NODES);
	size_t nj = MIN(joined_list_entries, SD_MAX_NODES);
	for (size_t i = 0; i < nm; i++)
		m[i] = to_id(&member_list[i]);
	for (size_t i = 0; i < nl; i++)
		l[i] = to_id(&left_list[i]);
	for (size_t i = 0; i < nj; i++)
		j[i] = to_id(&joined_list[i]);
	events->confchg(m, nm, l, nl, j, nj);
}

static cpg_callbacks_t callbacks = {
	.cpg_deliver_fn = cpg_deliver,
	.cpg_confchg_fn = cpg_confchg,
};

static void cpg_event(int fd, uint32_t events, void *data)
{
	cs_error_t err = cpg_dispatch(handle, CS_DISPATCH_ALL);
	if (err != CS_OK) {
		sd_emerg("lost the connection to corosync (error %d); leaving", err);
		unregister_event(fd);
		exit(1);
	}
}

static int corosync_init(const char *opts, const struct cluster_events *ev)
{
	events = ev;
	cs_error_t err;
	for (int tries = 0; tries < 50; tries++) {
		err = cpg_initialize(&handle, &callbacks);
		if (err != CS_ERR_TRY_AGAIN)
			break;
		usleep(100000);
	}
	if (err != CS_OK) {
		sd_err("cannot connect to corosync (error %d): is corosync running?", err);
		return -ENOTCONN;
	}
	if (cpg_local_get(handle, &local_nodeid) != CS_OK) {
		sd_err("cannot get the local corosync node id");
		return -ENOTCONN;
	}
	if (cpg_fd_get(handle, &cpg_fd) != CS_OK)
		return -ENOTCONN;
	return 0;
}

static int corosync_join(void)
{
	cs_error_t err;
	snprintf(group.value, sizeof(group.value), "%s", GROUP_NAME);
	group.length = strlen(group.value);
	for (int tries = 0; tries < 100; tries++) {
		err = cpg_join(handle, &group);
		if (err != CS_ERR_TRY_AGAIN)
			break;
		usleep(100000);
	}
	if (err != CS_OK) {
		sd_err("cannot join the corosync group (error %d)", err);
		return -ENOTCONN;
	}
	return register_event(cpg_fd, cpg_event, NULL, EPOLLIN);
}

static int corosync_leave(void)
{
	return cpg_leave(handle, &group) == CS_OK ? 0 : -EIO;
}

static int corosync_send(const void *msg, size_t len)
{
	struct iovec iov = { (void *)msg, len };
	cs_error_t err;
	for (int tries = 0; tries < 1000; tries++) {
		err = cpg_mcast_joined(handle, CPG_TYPE_AGREED, &iov, 1);
		if (err != CS_ERR_TRY_AGAIN)
			break;
		usleep(10000);
	}
	if (err != CS_OK) {
		sd_err("corosync multicast failed (error %d)", err);
		return -EIO;
	}
	return 0;
}

static struct cluster_id corosync_my_id(void)
{
	struct cluster_id id = { .nodeid = local_nodeid, .pid = getpid() };
	return id;
}

const struct cluster_driver cdrv_corosync = {
	.name = "corosync",
	.init = corosync_init,
	.join = corosync_join,
	.leave = corosync_leave,
	.send = corosync_send,
	.my_id = corosync_my_id,
};
