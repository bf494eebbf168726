/* node_admin.c: collie node kill | reweight | stat | log: one node leaves the cluster; every
 * node's weight (vnodes) is brought in line with its capacity, in one epoch; what each node
 * served and how fast; a node's log level. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "collie.h"
#include "json_out.h"
#include "logger.h"
#include "net.h"
#include "util.h"

/* a node ID argument: an index into the node list */
static int parse_node_id(const char *s, int nr, int *id)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0 || v >= nr) {
		die_msg("no node %s in the cluster (ids 0 to %d; see collie node list)", s, nr - 1);
		return -1;
	}
	*id = (int)v;
	return 0;
}

/* "collie: CMD: node ID (ADDR:PORT): REASON"; returns the exit status */
static int node_failure(const char *cmd, int id, const struct sd_node *n, int res)
{
	char nb[80], what[160];
	snprintf(what, sizeof(what), "%s: node %d (%s)", cmd, id, node_to_str(n, nb, sizeof(nb)));
	return report_failure(what, res);
}

int node_kill(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr, id, ret = get_node_list(&nodes, &nr, NULL);
	char nb[80];
	if (ret)
		return report_failure("node kill", ret);
	if (parse_node_id(argv[0], nr, &id) < 0) {
		free(nodes);
		return EXIT_MISSING;
	}
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_KILL_NODE };
	struct sd_rsp rsp;
	node_to_str(&nodes[id], nb, sizeof(nb));
	ret = node_exec(&nodes[id], &req, NULL, 0, &rsp);
	if (ret)
		ret = node_failure("node kill", id, &nodes[id], ret);
	free(nodes);
	if (ret)
		return ret;
	printf("node %d (%s) is leaving the cluster\n", id, nb);
	return 0;
}

/* ask node n for its weight; capacity != NULL first sets its capacity */
static int node_weight(const struct sd_node *n, const uint64_t *capacity, struct sd_node_weight *w)
{
	char buf[sizeof(*w)] = { 0 };
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_NODE_WEIGHT,
			      .data_length = sizeof(buf) };
	struct sd_rsp rsp;
	if (capacity) {
		req.flags = SD_FLAG_CMD_WRITE;
		memcpy(buf, capacity, sizeof(*capacity));
	}
	int ret = node_exec(n, &req, buf, sizeof(buf), &rsp);
	if (!ret && rsp.data_length < sizeof(*w))
		ret = SD_RES_SYSTEM_ERROR;
	memcpy(w, buf, sizeof(*w));
	return ret;
}

/* collie node reweight [ID [CAPACITY]]: with CAPACITY, node ID weighs that much from now on
 * (0: its filesystem's size again); then every node whose vnodes differ from what its capacity
 * asks for gets them, in one epoch */
int node_reweight(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr, id = -1, changed = 0, ret = get_node_list(&nodes, &nr, NULL);
	uint64_t capacity = 0;
	char nb[80], s1[32];
	if (ret)
		return report_failure("node reweight", ret);
	if (argc >= 1 && parse_node_id(argv[0], nr, &id) < 0) {
		ret = EXIT_MISSING;
		goto out;
	}
	if (argc >= 2 && strcmp(argv[1], "0") && parse_size_arg(argv[1], "capacity", &capacity) < 0) {
		ret = EXIT_USAGE;
		goto out;
	}
	for (int i = 0; i < nr; i++) {
		struct sd_node_weight w;
		if (id >= 0 && i != id)
			continue;
		ret = node_weight(&nodes[i], i == id && argc >= 2 ? &capacity : NULL, &w);
		node_to_str(&nodes[i], nb, sizeof(nb));
		if (ret) {
			ret = node_failure("node reweight", i, &nodes[i], ret);
			goto out;
		}
		if (w.want_vnodes == nodes[i].nr_vnodes) {
			printf("node %d (%s): %u vnodes, capacity %s%s: unchanged\n", i, nb, w.nr_vnodes,
			       fmt_size(w.capacity, s1, sizeof(s1)), w.fixed ? " (fixed by -V)" : "");
			continue;
		}
		printf("node %d (%s): %u vnodes -> %u, capacity %s\n", i, nb, nodes[i].nr_vnodes,
		       w.want_vnodes, fmt_size(w.capacity, s1, sizeof(s1)));
		nodes[changed] = nodes[i];
		nodes[changed].nr_vnodes = w.want_vnodes;
		changed++;
	}
	ret = 0;
	if (!changed)
		goto out;
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_REWEIGHT,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = changed * sizeof(*nodes) };
	struct sd_rsp rsp;
	ret = sheep_exec(&req, nodes, req.data_length, &rsp);
	if (ret) {
		ret = report_failure("node reweight", ret);
		goto out;
	}
	printf("%d node%s reweighted; the data moves in the new epoch (collie node recovery)\n",
	       changed, changed == 1 ? "" : "s");
out:
	free(nodes);
	return ret;
}

/* collie node stat [ID]: what each node served since it started */
/* one kind of request of one node as JSON */
static struct json_object *stat_json(const struct sd_node_stat *st)
{
	struct json_object *o = json_object_new_object();
	json_add_str(o, "request", st->name);
	json_add_u64(o, "count", st->count);
	json_add_u64(o, "errors", st->errors);
	json_add_u64(o, "bytes", st->bytes);
	json_add_u64(o, "avg-us", st->avg_us);
	json_add_u64(o, "p50-us", st->p50_us);
	json_add_u64(o, "p99-us", st->p99_us);
	json_add_u64(o, "max-us", st->max_us);
	return o;
}

int node_stat(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr, id = -1, ret = get_node_list(&nodes, &nr, NULL);
	char nb[80], sz[32];
	if (ret)
		return report_failure("node stat", ret);
	if (argc >= 1 && parse_node_id(argv[0], nr, &id) < 0) {
		free(nodes);
		return EXIT_MISSING;
	}
	struct json_object *list = json_output ? json_object_new_array() : NULL;
	for (int i = 0; i < nr; i++) {
		struct sd_node_stat st[16];
		if (id >= 0 && i != id)
			continue;
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_NODE_STAT,
				      .data_length = sizeof(st) };
		struct sd_rsp rsp;
		node_to_str(&nodes[i], nb, sizeof(nb));
		ret = node_exec(&nodes[i], &req, st, sizeof(st), &rsp);
		if (ret) {
			ret = node_failure("node stat", i, &nodes[i], ret);
			break;
		}
		int kinds = rsp.data_length / sizeof(st[0]);
		struct json_object *node = list ? node_json(i, &nodes[i]) : NULL, *reqs = NULL;
		if (node) {
			reqs = json_object_new_array();
			json_object_object_add(node, "requests", reqs);
			json_object_array_add(list, node);
		} else if (!raw_output) {
			printf("node %d (%s)\n  %-11s %10s %7s %10s %9s %9s %9s %9s\n", i, nb, "Request", "Count",
			       "Errors", "Bytes", "Avg(us)", "p50(us)", "p99(us)", "Max(us)");
		}
		for (int k = 0; k < kinds; k++) {
			st[k].name[SD_STAT_NAME_LEN - 1] = 0;
			if (reqs)
				json_object_array_add(reqs, stat_json(&st[k]));
			else if (raw_output)
				printf("%d %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
				       " %" PRIu64 "\n", i, st[k].name, st[k].count, st[k].errors, st[k].bytes,
				       st[k].avg_us, st[k].p50_us, st[k].p99_us, st[k].max_us);
			else
				printf("  %-11s %10" PRIu64 " %7" PRIu64 " %10s %9" PRIu64 " %9" PRIu64 " %9" PRIu64
				       " %9" PRIu64 "\n", st[k].name, st[k].count, st[k].errors,
				       fmt_size(st[k].bytes, sz, sizeof(sz)), st[k].avg_us, st[k].p50_us,
				       st[k].p99_us, st[k].max_us);
		}
	}
	if (list && !ret) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "nodes", list);
		json_print(doc);
	} else if (list) {
		json_object_put(list);
	}
	free(nodes);
	return ret;
}

/* collie node log level [LEVEL]: the log level of the node collie talks to; with LEVEL, set it */
int node_log(int argc, char **argv)
{
	int32_t level = 0;
	if (strcmp(argv[0], "level")) {
		die_msg("node log: unknown action '%s' (level)", argv[0]);
		return EXIT_USAGE;
	}
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_LOG_LEVEL,
			      .data_length = sizeof(level) };
	struct sd_rsp rsp;
	if (argc >= 2) {
		level = log_level_from_name(argv[1]);
		if (level < 0) {
			die_msg("node log level: invalid level '%s' (emerg, err, warn, info, debug or 0-7)", argv[1]);
			return EXIT_USAGE;
		}
		req.flags = SD_FLAG_CMD_WRITE;
	}
	int ret = sheep_exec(&req, &level, sizeof(level), &rsp);
	if (ret)
		return report_failure("node log level", ret);
	printf("%s\n", log_level_name(level));
	return 0;
}
