/* repair.c: read repair. A read that finds this node's replica failing its checksum has already
 * been answered from another replica; here the bad replica is rewritten, whole and atomically,
 * from what the gateway reads elsewhere (block by block where every replica has bad blocks). */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "internal_proto.h"
#include "logger.h"
#include "net.h"
#include "sd_client.h"
#include "sheepdog_proto.h"
#include "alloc.h"
#include "cluster_view.h"
#include "gateway.h"
#include "peer.h"
#include "repair.h"
#include "store/store.h"
#include "vdi_state.h"

#define REPAIR_MAX_INFLIGHT 64

static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t inflight[REPAIR_MAX_INFLIGHT];
static int nr_inflight;

/* true when oid was not being repaired and now is */
static bool claim(uint64_t oid)
{
	pthread_mutex_lock(&inflight_lock);
	bool ok = nr_inflight < REPAIR_MAX_INFLIGHT;
	for (int i = 0; i < nr_inflight && ok; i++)
		ok = inflight[i] != oid;
	if (ok)
		inflight[nr_inflight++] = oid;
	pthread_mutex_unlock(&inflight_lock);
	return ok;
}

static void release(uint64_t oid)
{
	pthread_mutex_lock(&inflight_lock);
	for (int i = 0; i < nr_inflight; i++)
		if (inflight[i] == oid) {
			inflight[i] = inflight[--nr_inflight];
			break;
		}
	pthread_mutex_unlock(&inflight_lock);
}

/* a piece of a good copy, from wherever the gateway finds one */
static int fetch_good(void *unused, uint64_t oid, void *buf, uint32_t len, uint32_t offset)
{
	return gateway_read_obj(oid, buf, len, offset);
}

int repair_object_now(uint64_t oid)
{
	char node[128];
	uint32_t nr_bad = 0, first_bad = 0;
	uint64_t size = obj_size_of(oid);
	node_to_str(&sys->this_node, node, sizeof(node));
	store_lock(oid);    /* local writes wait: none lands between the good read and the rewrite */
	int ret = store_verify(oid, &nr_bad, &first_bad);
	if (ret != SD_RES_CHECKSUM)
		goto out;    /* whole again, gone or unreadable: nothing to rewrite */
	ret = store_build_from(oid, size, fetch_good, NULL);
	if (ret == SD_RES_SUCCESS)
		sd_warn("read repair: %016" PRIx64 " on %s: %u bad blocks (first: block %u) rewritten from a good copy",
			oid, node, nr_bad, first_bad);
	else
		sd_err("read repair: %016" PRIx64 " on %s: %u bad blocks (first: block %u), no good copy (%s); "
		       "this replica is kept as it is", oid, node, nr_bad, first_bad, sd_strerror(ret));
out:
	store_unlock(oid);
	return ret;
}

static void *repair_thread(void *arg)
{
	uint64_t oid = (uintptr_t)arg;
	repair_object_now(oid);
	release(oid);
	return NULL;
}

void repair_schedule(uint64_t oid)
{
	pthread_t t;
	pthread_attr_t attr;
	if (sys->shutting_down || !claim(oid))
		return;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, repair_thread, (void *)(uintptr_t)oid)) {
		sd_err("read repair: %016" PRIx64 ": no thread for it", oid);
		release(oid);
	}
	pthread_attr_destroy(&attr);
}

void repair_init(void)
{
	peer_set_repairer(repair_schedule);
}
