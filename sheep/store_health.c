/* store_health.c: the node's answer to its store's health. A disk that keeps failing (the store
 * counts its I/O errors, see store.h) makes the node leave the cluster and exit, saying why, as
 * sheepdog does when its last md disk fails: the others recover its objects. A check every
 * SPACE_CHECK_MS warns, ahead of ENOSPC, when the store's filesystem is fuller than the threshold
 * (sheep --space-warn), again every SPACE_REWARN_S while it stays so. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "event.h"
#include "logger.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "group.h"
#include "store/store.h"
#include "store_health.h"

#define SPACE_CHECK_MS 5000
#define SPACE_REWARN_S 600

static int disk_failed_fd = -1;
static char disk_failed_why[4600];
static uint32_t space_warn_pct;

uint32_t store_health_warn_pct(void)
{
	return space_warn_pct;
}

/* any thread: the store's disk keeps failing; the main thread makes the node leave */
static void disk_failed(const char *why)
{
	uint64_t one = 1;
	snprintf(disk_failed_why, sizeof(disk_failed_why), "%s", why);
	if (write(disk_failed_fd, &one, sizeof(one)) != sizeof(one))
		sd_emerg("cannot wake the main thread (%m): leaving the cluster from here");
	else
		return;
	group_leave_and_exit();
}

static void leave_for_disk(int fd, uint32_t events, void *data)
{
	sd_emerg("leaving the cluster: %s", disk_failed_why);
	group_leave_and_exit();
}

static void check_space(void *unused)
{
	static uint64_t last_warn_ns;
	uint64_t size, used;
	if (store_stat(&size, &used) == SD_RES_SUCCESS && size) {
		uint32_t pct = (uint32_t)(used * 100 / size);
		if (pct >= space_warn_pct) {
			uint64_t now = now_ns();
			if (!last_warn_ns || now - last_warn_ns >= SPACE_REWARN_S * 1000000000ull) {
				sd_warn("the store is %u%% full (%" PRIu64 " of %" PRIu64 " MiB free; warns at %u%%): "
					"writes fail with 'no space' when it is full", pct, (size - used) >> 20,
					size >> 20, space_warn_pct);
				last_warn_ns = now;
			}
		} else if (last_warn_ns) {
			sd_info("the store is %u%% full again, below the %u%% warning", pct, space_warn_pct);
			last_warn_ns = 0;
		}
	}
	add_timer(SPACE_CHECK_MS, check_space, NULL);
}

int store_health_init(uint32_t warn_pct)
{
	disk_failed_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (disk_failed_fd < 0)
		return -errno;
	int ret = register_event(disk_failed_fd, leave_for_disk, NULL, EPOLLIN);
	if (ret < 0)
		return ret;
	store_set_disk_failure_hook(disk_failed);
	space_warn_pct = warn_pct;
	if (warn_pct)
		check_space(NULL);
	return 0;
}
