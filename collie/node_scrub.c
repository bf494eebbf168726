/* node_scrub.c: collie node scrub [start|stop|status]: every node's background scrub (sheep
 * verifies and repairs its own objects): start a pass now, stop one, or show each node's progress
 * and findings. node info shows the same through node_scrub_get and node_scrub_json. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "collie.h"
#include "json_out.h"
#include "net.h"
#include "node_scrub.h"
#include "util.h"

static const char *const state_names[] = {
	[SD_SCRUB_IDLE] = "idle", [SD_SCRUB_RUNNING] = "running", [SD_SCRUB_DONE] = "done",
	[SD_SCRUB_STOPPED] = "stopped",
};

const char *node_scrub_state(const struct sd_scrub_info *si)
{
	return si->state <= SD_SCRUB_STOPPED ? state_names[si->state] : "unknown";
}

int node_scrub_get(const struct sd_node *n, uint32_t command, struct sd_scrub_info *si)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_SCRUB,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(*si) };
	struct sd_rsp rsp;
	memset(si, 0, sizeof(*si));
	si->command = command;
	int ret = node_exec(n, &req, si, sizeof(*si), &rsp);
	if (!ret && rsp.data_length < sizeof(*si))
		ret = SD_RES_SYSTEM_ERROR;
	if (si->nr_findings > SD_SCRUB_MAX_FINDINGS)
		si->nr_findings = SD_SCRUB_MAX_FINDINGS;
	return ret;
}

struct json_object *node_scrub_json(const struct sd_scrub_info *si)
{
	struct json_object *o = json_object_new_object(), *list = json_object_new_array();
	char oid[32];
	json_add_str(o, "state", node_scrub_state(si));
	json_add_u64(o, "interval", si->interval_s);
	json_add_u64(o, "rate", si->rate);
	json_add_u64(o, "passes", si->passes);
	json_add_u64(o, "started", si->started);
	json_add_u64(o, "finished", si->finished);
	json_add_u64(o, "objects", si->objects_total);
	json_add_u64(o, "objects-done", si->objects_done);
	json_add_u64(o, "bytes-done", si->bytes_done);
	json_add_u64(o, "bad", si->bad);
	json_add_u64(o, "repaired", si->repaired);
	json_add_u64(o, "unrecoverable", si->unrecoverable);
	for (uint32_t i = 0; i < si->nr_findings; i++) {
		const struct sd_scrub_finding *f = &si->findings[i];
		struct json_object *fo = json_object_new_object();
		snprintf(oid, sizeof(oid), "%016" PRIx64, f->oid);
		json_add_str(fo, "oid", oid);
		json_add_u64(fo, "bad-blocks", f->nr_bad);
		json_add_u64(fo, "first-bad-block", f->first_bad);
		json_add_str(fo, "outcome", f->outcome == SD_SCRUB_REPAIRED ? "repaired" : "unrecoverable");
		json_object_array_add(list, fo);
	}
	json_object_object_add(o, "findings", list);
	return o;
}

/* "done 40/40 objects, 1 bad, 1 repaired, 0 unrecoverable" */
void node_scrub_summary(const struct sd_scrub_info *si, char *buf, size_t len)
{
	snprintf(buf, len, "%s %" PRIu64 "/%" PRIu64 " objects, %" PRIu64 " bad, %" PRIu64 " repaired, %" PRIu64
		 " unrecoverable", node_scrub_state(si), si->objects_done, si->objects_total, si->bad, si->repaired,
		 si->unrecoverable);
}

int node_scrub(int argc, char **argv)
{
	static const struct { const char *name; uint32_t command; } verbs[] = {
		{ "status", SD_SCRUB_STATUS }, { "start", SD_SCRUB_START }, { "stop", SD_SCRUB_STOP },
	};
	const char *verb = argc ? argv[0] : "status";
	uint32_t command = UINT32_MAX;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verb, verbs[i].name))
			command = verbs[i].command;
	if (command == UINT32_MAX) {
		die_msg("node scrub: unknown action '%s' (start, stop or status)", verb);
		return EXIT_USAGE;
	}
	struct sd_node *nodes;
	int nr, failed = 0, ret = get_node_list(&nodes, &nr, NULL);
	if (ret)
		return report_failure("node scrub", ret);
	struct json_object *list = json_output ? json_object_new_array() : NULL;
	for (int i = 0; i < nr; i++) {
		struct sd_scrub_info si;
		char nb[80], what[160], line[200];
		node_to_str(&nodes[i], nb, sizeof(nb));
		if ((ret = node_scrub_get(&nodes[i], command, &si))) {
			snprintf(what, sizeof(what), "node scrub: node %d (%s)", i, nb);
			failed = report_failure(what, ret);
			continue;
		}
		if (json_output) {
			struct json_object *o = node_json(i, &nodes[i]);
			json_object_object_add(o, "scrub", node_scrub_json(&si));
			json_object_array_add(list, o);
			continue;
		}
		if (raw_output) {
			printf("%d %s %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", i, nb,
			       node_scrub_state(&si), si.objects_done, si.objects_total, si.bytes_done, si.bad,
			       si.repaired, si.unrecoverable);
		} else {
			node_scrub_summary(&si, line, sizeof(line));
			printf("node %d (%s): %s\n", i, nb, command == SD_SCRUB_START ? "scrub started" :
			       command == SD_SCRUB_STOP ? "scrub stopping" : line);
		}
		for (uint32_t f = 0; f < si.nr_findings; f++)
			printf(raw_output ? "%d finding %016" PRIx64 " %u %u %s\n" :
					    "  %d: %016" PRIx64 ": %u bad blocks (first: block %u), %s\n", i,
			       si.findings[f].oid, si.findings[f].nr_bad, si.findings[f].first_bad,
			       si.findings[f].outcome == SD_SCRUB_REPAIRED ? "repaired" : "unrecoverable");
	}
	if (json_output)
		json_print(list);
	free(nodes);
	return failed;
}
