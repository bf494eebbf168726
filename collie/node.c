/* node.c: collie node list | info | recovery, and the table of node commands (kill and reweight
 * live in node_admin.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collie.h"
#include "net.h"
#include "sd_client.h"
#include "util.h"

static int node_list(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr, local, ret = get_node_list(&nodes, &nr, &local);
	if (ret)
		return report_failure("node list", ret);
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

static int node_info(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr, ret = get_node_list(&nodes, &nr, NULL);
	uint64_t tsize = 0, tused = 0;
	int failed = 0;
	if (ret)
		return report_failure("node info", ret);
	if (!raw_output)
		printf("Id\tSize\tUsed\tAvail\tUse%%\n");
	for (int i = 0; i < nr; i++) {
		char nb[80], s1[32], s2[32], s3[32];
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_SHEEP };
		struct sd_rsp rsp;
		if (node_exec(&nodes[i], &req, NULL, 0, &rsp)) {
			die_msg("node info: cannot reach node %d (%s)", i, node_to_str(&nodes[i], nb, sizeof(nb)));
			failed = 1;
			continue;
		}
		struct sd_node_rsp *nrsp = (struct sd_node_rsp *)&rsp;
		uint64_t size = nrsp->store_size, used = size - nrsp->store_free;
		tsize += size;
		tused += used;
		printf(raw_output ? "%d %s %s %s %d%%\n" : "%2d\t%s\t%s\t%s\t%3d%%\n", i, fmt_size(size, s1, sizeof(s1)),
		       fmt_size(used, s2, sizeof(s2)), fmt_size(size - used, s3, sizeof(s3)),
		       size ? (int)(used * 100 / size) : 0);
	}
	char s1[32], s2[32], s3[32];
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

static const struct subcommand node_subs[] = {
	{ "list", "", "list the nodes of the cluster", NULL, CMD_CLUSTER, 0, 0, node_list },
	{ "info", "", "show each node's store size and use", NULL, CMD_CLUSTER, 0, 0, node_info },
	{ "recovery", "", "show each node's recovery: epoch, state, objects done/total, rate, throttle",
	  NULL, CMD_CLUSTER, 0, 0, node_recovery },
	{ "kill", "ID", "make node ID leave the cluster (its objects are recovered elsewhere)",
	  NULL, CMD_CLUSTER, 1, 1, node_kill },
	{ "reweight", "[ID [CAPACITY]]", "vnodes follow each node's capacity again; with CAPACITY "
	  "(K/M/G/T, 0 = its filesystem), node ID weighs that much", NULL, CMD_CLUSTER, 0, 2, node_reweight },
	{ "stat", "[ID]", "requests each node served since it started: counts, errors, bytes, latencies",
	  NULL, CMD_CLUSTER, 0, 1, node_stat },
	{ "log", "level [LEVEL]", "show or set the log level of the node collie talks to",
	  NULL, CMD_CLUSTER, 1, 2, node_log },
	{ NULL },
};

const struct command node_command = { "node", "node operations", node_subs };
