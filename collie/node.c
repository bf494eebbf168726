/* node.c: collie node list | info | recovery, and the table of node commands (kill and reweight
 * live in node_admin.c, md in node_md.c). */
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collie.h"
#include "json_out.h"
#include "net.h"
#include "node_scrub.h"
#include "sd_client.h"
#include "util.h"

struct json_object *node_json(int id, const struct sd_node *n)
{
	struct json_object *o = json_object_new_object();
	char a[64];
	json_add_i64(o, "id", id);
	json_add_str(o, "address", addr_to_str(n->addr, a, sizeof(a)));
	json_add_i64(o, "port", n->port);
	return o;
}

static void node_list_json(const struct sd_node *nodes, int nr, int local)
{
	struct json_object *list = json_object_new_array();
	for (int i = 0; i < nr; i++) {
		struct json_object *o = node_json(i, &nodes[i]);
		json_add_u64(o, "vnodes", nodes[i].nr_vnodes);
		json_add_u64(o, "zone", nodes[i].zone);
		json_add_bool(o, "local", i == local);
		json_object_array_add(list, o);
	}
	json_print(list);
}

static int node_list(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr, local, ret = get_node_list(&nodes, &nr, &local);
	if (ret)
		return report_failure("node list", ret);
	if (json_output) {
		node_list_json(nodes, nr, local);
		free(nodes);
		return 0;
	}
	if (!raw_output)
		printf("  Id   Host:Port                 V-Nodes       Zone\n");
	for (int i = 0; i < nr; i++) {
		char nb[80];
		node_to_str(&nodes[i], nb, sizeof(nb));
		if (raw_output)
			printf("%d %s %u %u\n", i, nb, nodes[i].nr_vnodes, nodes[i].zone);
		else
			printf("%c%3d   %-24s %8u %10u\n", i == local ? '*' : ' ', i, nb, nodes[i].nr_vnodes, nodes[i].zone);
	}
	free(nodes);
	return 0;
}

/* {"size": .., "used": .., "avail": .., "use-percent": ..} added to o */
static void node_space_json(struct json_object *o, uint64_t size, uint64_t used)
{
	json_add_u64(o, "size", size);
	json_add_u64(o, "used", used);
	json_add_u64(o, "avail", size - used);
	json_add_i64(o, "use-percent", size ? (int)(used * 100 / size) : 0);
}

static int node_info(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr, ret = get_node_list(&nodes, &nr, NULL);
	uint64_t tsize = 0, tused = 0;
	int failed = 0;
	struct json_object *doc = NULL, *list = NULL;
	if (ret)
		return report_failure("node info", ret);
	if (json_output) {
		doc = json_object_new_object();
		list = json_object_new_array();
		json_object_object_add(doc, "nodes", list);
	} else if (!raw_output)
		printf("Id\tSize\tUsed\tAvail\tUse%%\tScrub\n");
	for (int i = 0; i < nr; i++) {
		char nb[80], s1[32], s2[32], s3[32];
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_SHEEP };
		struct sd_rsp rsp;
		if (node_exec(&nodes[i], &req, NULL, 0, &rsp)) {
			die_msg("node info: cannot reach node %d (%s)", i, node_to_str(&nodes[i], nb, sizeof(nb)));
			failed = EXIT_SYSFAIL;
			continue;
		}
		struct sd_node_rsp *nrsp = (struct sd_node_rsp *)&rsp;
		uint64_t size = nrsp->store_size, used = size - nrsp->store_free;
		tsize += size;
		tused += used;
		bool full = nrsp->space_warn_pct && size && used * 100 / size >= nrsp->space_warn_pct;
		if (full)
			fprintf(stderr, "collie: warning: node %d (%s): its store is %d%% full (the node warns at %u%%)\n",
				i, node_to_str(&nodes[i], nb, sizeof(nb)), (int)(used * 100 / size), nrsp->space_warn_pct);
		struct sd_scrub_info si;
		bool have_scrub = node_scrub_get(&nodes[i], SD_SCRUB_STATUS, &si) == 0;
		if (json_output) {
			struct json_object *o = node_json(i, &nodes[i]);
			node_space_json(o, size, used);
			json_add_i64(o, "space-warn-percent", nrsp->space_warn_pct);
			json_add_bool(o, "space-warning", full);
			if (have_scrub)
				json_object_object_add(o, "scrub", node_scrub_json(&si));
			json_object_array_add(list, o);
			continue;
		}
		char scrub[200] = "-";
		if (have_scrub && raw_output)
			snprintf(scrub, sizeof(scrub), "%s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
				 node_scrub_state(&si), si.objects_done, si.objects_total, si.bad, si.repaired,
				 si.unrecoverable);
		else if (have_scrub)
			node_scrub_summary(&si, scrub, sizeof(scrub));
		printf(raw_output ? "%d %s %s %s %d%% %s\n" : "%2d\t%s\t%s\t%s\t%3d%%\t%s\n", i,
		       fmt_size(size, s1, sizeof(s1)), fmt_size(used, s2, sizeof(s2)), fmt_size(size - used, s3, sizeof(s3)),
		       size ? (int)(used * 100 / size) : 0, scrub);
	}
	char s1[32], s2[32], s3[32];
	if (json_output) {
		struct json_object *total = json_object_new_object();
		node_space_json(total, tsize, tused);
		json_object_object_add(doc, "total", total);
		json_print(doc);
		free(nodes);
		return failed;
	}
	printf(raw_output ? "Total %s %s %s %d%%\n" : "Total\t%s\t%s\t%s\t%3d%%\n", fmt_size(tsize, s1, sizeof(s1)),
	       fmt_size(tused, s2, sizeof(s2)), fmt_size(tsize - tused, s3, sizeof(s3)),
	       tsize ? (int)(tused * 100 / tsize) : 0);
	free(nodes);
	return failed;
}

int node_recovery(int argc, char **argv);
int node_kill(int argc, char **argv);
int node_reweight(int argc, char **argv);
int node_stat(int argc, char **argv);
int node_log(int argc, char **argv);
int node_md(int argc, char **argv);
int node_scrub(int argc, char **argv);

static const struct subcommand node_subs[] = {
	{ "list", "", "list the nodes of the cluster", NULL, CMD_CLUSTER | CMD_JSON, 0, 0, node_list },
	{ "info", "", "show each node's store size and use, and its scrub", NULL, CMD_CLUSTER | CMD_JSON, 0, 0, node_info },
	{ "recovery", "", "show each node's recovery: epoch, state, objects done/total, rate, throttle",
	  NULL, CMD_CLUSTER | CMD_JSON, 0, 0, node_recovery },
	{ "kill", "ID", "make node ID leave the cluster (its objects are recovered elsewhere)",
	  NULL, CMD_CLUSTER, 1, 1, node_kill },
	{ "reweight", "[ID [CAPACITY]]", "vnodes follow each node's capacity again; with CAPACITY "
	  "(K/M/G/T, 0 = its filesystem), node ID weighs that much", NULL, CMD_CLUSTER, 0, 2, node_reweight },
	{ "stat", "[ID]", "requests each node served since it started: counts, errors, bytes, latencies",
	  NULL, CMD_CLUSTER | CMD_JSON, 0, 1, node_stat },
	{ "md", "info | plug PATH | unplug PATH", "the disks of the node collie talks to: list them, add "
	  "one, take one out (its objects are recovered from the other nodes)", NULL, CMD_CLUSTER | CMD_JSON,
	  1, 2, node_md },
	{ "scrub", "[start|stop|status]", "each node's background scrub: start a pass now, stop it, or show "
	  "progress and findings (the default)", NULL, CMD_CLUSTER | CMD_JSON, 0, 1, node_scrub },
	{ "log", "level [LEVEL]", "show or set the log level of the node collie talks to",
	  NULL, CMD_CLUSTER, 1, 2, node_log },
	{ NULL },
};

const struct command node_command = { "node", "node operations", node_subs };
