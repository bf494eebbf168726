/* scrub.c: background scrub. One thread walks this node's objects, a pass every interval
 * (sheep --scrub-interval, a day by default) or when asked (collie node scrub start): each object
 * is read whole and verified against its per-block checksums (store_verify); a bad one is checked
 * again under its lock (a write racing with the scan is not rot) and then rewritten from a good
 * copy by read repair (repair_object_now), and the finding is kept for collie node scrub status
 * and node info. The scan stays under a rate (sheep --scrub-rate, bytes per second) and waits
 * while clients do I/O on this node (up to SCRUB_YIELD_MAX_MS per object, so a busy node still
 * gets scrubbed). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logger.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "cluster_view.h"
#include "node_stat.h"
#include "repair.h"
#include "scrub.h"
#include "store/store.h"
#include "vdi_state.h"

#define SCRUB_YIELD_STEP_MS 20     /* a client op within this long: wait */
#define SCRUB_YIELD_MAX_MS  1000   /* waited at most this long per object */

static pthread_mutex_t scrub_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scrub_cond = PTHREAD_COND_INITIALIZER;
static struct sd_scrub_info info;   /* under scrub_lock; command unused */
static bool start_asked, stop_asked;

static void sleep_ms(uint64_t ms)
{
	nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L }, NULL);
}

/* wait while clients keep this node busy, a bounded time */
static void yield_to_clients(void)
{
	for (int waited = 0; waited < SCRUB_YIELD_MAX_MS; waited += SCRUB_YIELD_STEP_MS) {
		uint64_t before = node_stat_client_ops();
		sleep_ms(SCRUB_YIELD_STEP_MS);
		if (node_stat_client_ops() == before)
			return;
	}
}

static void note_finding(uint64_t oid, uint32_t nr_bad, uint32_t first_bad, uint32_t outcome)
{
	pthread_mutex_lock(&scrub_lock);
	memmove(&info.findings[1], &info.findings[0], (SD_SCRUB_MAX_FINDINGS - 1) * sizeof(info.findings[0]));
	info.findings[0] = (struct sd_scrub_finding){ .oid = oid, .nr_bad = nr_bad, .first_bad = first_bad,
						      .outcome = outcome };
	if (info.nr_findings < SD_SCRUB_MAX_FINDINGS)
		info.nr_findings++;
	info.bad++;
	if (outcome == SD_SCRUB_REPAIRED)
		info.repaired++;
	else
		info.unrecoverable++;
	pthread_mutex_unlock(&scrub_lock);
}

/* verify one object, repair it if it is bad; the bytes read */
static uint64_t scrub_object(uint64_t oid)
{
	uint32_t nr_bad = 0, first_bad = 0;
	int ret = store_verify(oid, &nr_bad, &first_bad);
	if (ret == SD_RES_CHECKSUM) {
		store_lock(oid);    /* no write half done under the lock */
		ret = store_verify(oid, &nr_bad, &first_bad);
		store_unlock(oid);
	}
	if (ret != SD_RES_CHECKSUM)
		return ret == SD_RES_SUCCESS ? obj_size_of(oid) : 0;   /* gone since the listing: skipped */
	ret = repair_object_now(oid);
	sd_warn("scrub: %016" PRIx64 ": %u bad blocks (first: block %u): %s", oid, nr_bad, first_bad,
		ret == SD_RES_SUCCESS ? "repaired from a good copy" : "no good copy, kept as it is");
	note_finding(oid, nr_bad, first_bad, ret == SD_RES_SUCCESS ? SD_SCRUB_REPAIRED : SD_SCRUB_UNRECOVERABLE);
	return obj_size_of(oid);
}

static void scrub_pass(void)
{
	uint64_t *oids;
	size_t nr;
	if (store_list(&oids, &nr) != SD_RES_SUCCESS) {
		sd_err("scrub: cannot list the store");
		return;
	}
	pthread_mutex_lock(&scrub_lock);
	info.state = SD_SCRUB_RUNNING;
	info.started = wall_ns() / 1000000000ull;
	info.finished = 0;
	info.objects_total = nr;
	info.objects_done = info.bytes_done = info.bad = info.repaired = info.unrecoverable = 0;
	uint64_t rate = info.rate;
	pthread_mutex_unlock(&scrub_lock);
	sd_info("scrub: a pass over %zu objects starts", nr);

	uint64_t t0 = now_ns(), bytes = 0;
	bool stopped = false;
	for (size_t i = 0; i < nr && !stopped; i++) {
		yield_to_clients();
		bytes += scrub_object(oids[i]);
		/* stay under the rate: the time these bytes may take, less the time taken; a stop
		 * ends the wait */
		uint64_t due_ns = rate ? bytes * 1000000000ull / rate : 0, spent = now_ns() - t0;
		pthread_mutex_lock(&scrub_lock);
		info.objects_done = i + 1;
		info.bytes_done = bytes;
		if (due_ns > spent) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			uint64_t ns = until.tv_nsec + (due_ns - spent);
			until.tv_sec += ns / 1000000000ull;
			until.tv_nsec = ns % 1000000000ull;
			while (!stop_asked && !sys->shutting_down &&
			       pthread_cond_timedwait(&scrub_cond, &scrub_lock, &until) != ETIMEDOUT)
				;
		}
		stopped = stop_asked || sys->shutting_down;
		pthread_mutex_unlock(&scrub_lock);
	}
	free(oids);
	pthread_mutex_lock(&scrub_lock);
	info.state = stopped ? SD_SCRUB_STOPPED : SD_SCRUB_DONE;
	info.finished = wall_ns() / 1000000000ull;
	info.passes += !stopped;
	stop_asked = false;
	sd_info("scrub: pass %s: %" PRIu64 " of %" PRIu64 " objects, %" PRIu64 " MiB, %" PRIu64 " bad, %" PRIu64
		" repaired, %" PRIu64 " unrecoverable", stopped ? "stopped" : "done", info.objects_done,
		info.objects_total, info.bytes_done >> 20, info.bad, info.repaired, info.unrecoverable);
	pthread_mutex_unlock(&scrub_lock);
}

static void *scrub_thread(void *unused)
{
	pthread_mutex_lock(&scrub_lock);
	for (;;) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += info.interval_s;
		while (!start_asked) {
			if (info.interval_s && pthread_cond_timedwait(&scrub_cond, &scrub_lock, &until) == ETIMEDOUT)
				break;
			if (!info.interval_s)
				pthread_cond_wait(&scrub_cond, &scrub_lock);
		}
		start_asked = false;
		stop_asked = false;
		pthread_mutex_unlock(&scrub_lock);
		if (!sys->shutting_down)
			scrub_pass();
		pthread_mutex_lock(&scrub_lock);
	}
	return NULL;
}

int scrub_init(uint32_t interval_s, uint64_t rate)
{
	pthread_t t;
	pthread_attr_t attr;
	info.interval_s = interval_s;
	info.rate = rate;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int ret = pthread_create(&t, &attr, scrub_thread, NULL);
	pthread_attr_destroy(&attr);
	return -ret;
}

int main_scrub(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct sd_scrub_info *io = data;
	if (rq->data_length < sizeof(*io))
		return SD_RES_BUFFER_SMALL;
	uint32_t command = (rq->flags & SD_FLAG_CMD_WRITE) ? io->command : SD_SCRUB_STATUS;
	if (command > SD_SCRUB_STOP)
		return SD_RES_INVALID_PARMS;
	pthread_mutex_lock(&scrub_lock);
	if (command == SD_SCRUB_START && info.state != SD_SCRUB_RUNNING) {
		start_asked = true;
		info.state = SD_SCRUB_RUNNING;    /* at once, so a status right after says so */
		info.objects_done = info.objects_total = info.bytes_done = 0;
		info.finished = 0;
		pthread_cond_broadcast(&scrub_cond);
		sd_info("scrub: a pass asked for");
	} else if (command == SD_SCRUB_STOP && info.state == SD_SCRUB_RUNNING) {
		stop_asked = true;
		pthread_cond_broadcast(&scrub_cond);
		sd_info("scrub: stop asked for");
	}
	memcpy(io, &info, sizeof(*io));
	io->command = command;
	pthread_mutex_unlock(&scrub_lock);
	rp->data_length = sizeof(*io);
	return SD_RES_SUCCESS;
}
