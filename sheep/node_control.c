/* node_control.c: run-time settings an operator changes without a restart: the log level of one
 * node (LOG_LEVEL) and the recovery throttle of every node (RECOVERY_THROTTLE, a cluster op). */
#include <string.h>

#include "internal_proto.h"
#include "logger.h"
#include "node_control.h"
#include "recovery.h"

int main_log_level(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	int32_t level;
	if (rq->data_length < sizeof(level))
		return SD_RES_BUFFER_SMALL;
	if (rq->flags & SD_FLAG_CMD_WRITE) {
		memcpy(&level, data, sizeof(level));
		if (level < LOG_EMERG_ || level > LOG_DEBUG_)
			return SD_RES_INVALID_PARMS;
		sd_info("log level %d (was %d)", level, log_get_level());
		log_set_level(level);
	}
	level = log_get_level();
	memcpy(data, &level, sizeof(level));
	rp->data_length = sizeof(level);
	return SD_RES_SUCCESS;
}

int main_recovery_throttle(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct sd_recovery_throttle t;
	if (rq->data_length < sizeof(t))
		return SD_RES_INVALID_PARMS;
	memcpy(&t, data, sizeof(t));
	if (t.inflight < 1 || t.inflight > SD_RECOVERY_MAX_INFLIGHT || t.pause_ms > SD_RECOVERY_MAX_PAUSE_MS)
		return SD_RES_INVALID_PARMS;
	recovery_inflight = (int)t.inflight;
	recovery_pause_ms = t.pause_ms;
	sd_info("recovery throttle: %u objects at once, %u ms pause", t.inflight, t.pause_ms);
	return SD_RES_SUCCESS;
}
