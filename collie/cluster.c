/* cluster.c: collie cluster format | info | shutdown. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "collie.h"
#include "progress.h"
#include "json_out.h"
#include "net.h"
#include "util.h"

static int cluster_format(int argc, char **argv)
{
	uint8_t copies = SD_DEFAULT_COPIES, policy = 0;
	char red[16];
	if (opt('c') && parse_redundancy(opt('c'), &copies, &policy) < 0)
		return EXIT_USAGE;
	struct sd_cluster_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_MAKE_FS };
	req.copies = copies;
	req.copy_policy = policy;
	req.block_size_shift = SD_DEFAULT_BLOCK_SIZE_SHIFT;
	struct sd_rsp rsp;
	int ret = sheep_exec((struct sd_req *)&req, NULL, 0, &rsp);
	if (ret)
		return report_failure("cluster format", ret);
	if (!raw_output)
		printf(policy ? "Cluster formatted with erasure code %s\n" : "Cluster formatted with %s copies\n",
		       redundancy_str(copies, policy, red, sizeof(red)));
	return 0;
}

static const char *status_str(int st, bool recovery_disabled)
{
	switch (st) {
	case SD_STATUS_OK: return recovery_disabled ? "running, auto-recovery disabled" : "running, auto-recovery enabled";
	case SD_STATUS_WAIT_FOR_FORMAT: return "Waiting for cluster to be formatted";
	case SD_STATUS_WAIT: return "Waiting for other nodes to join cluster";
	case SD_STATUS_SHUTDOWN: return "System is shutting down";
	case SD_STATUS_HALT: return "halted: not enough nodes";
	default: return "unknown";
	}
}

/* whether the sheep demands the cluster key */
static void print_access(void)
{
	int keyed = auth_probe(sd_addr, sd_port);
	if (keyed > 0)
		printf("Access: cluster key required for peer and admin requests\n");
	else if (keyed == 0)
		printf("Access: OPEN - no cluster key; anyone who can reach port %d can run every request\n", sd_port);
}

static const char *status_word(int st)
{
	switch (st) {
	case SD_STATUS_OK: return "running";
	case SD_STATUS_WAIT_FOR_FORMAT: return "unformatted";
	case SD_STATUS_SHUTDOWN: return "shutdown";
	case SD_STATUS_HALT: return "halted";
	default: return "waiting";
	}
}

static struct json_object *cluster_info_json(const struct sd_rsp *rsp)
{
	const struct sd_cluster_rsp *cr = (const struct sd_cluster_rsp *)rsp;
	struct json_object *o = json_object_new_object();
	json_add_str(o, "status", status_word(cr->status));
	json_add_bool(o, "recovery-enabled", !cr->recovery_disabled);
	json_add_u64(o, "epoch", rsp->epoch);
	json_add_u64(o, "copies", cr->nr_copies);
	json_add_u64(o, "object-size", cr->ctime ? UINT64_C(1) << cr->block_size_shift : 0);
	json_add_i64(o, "created", (int64_t)(cr->ctime >> 32));
	json_object_object_add(o, "epochs", json_object_new_array());
	return o;
}

static int cluster_info(int argc, char **argv)
{
	uint32_t bufsize = 4 << 20;
	char *buf = calloc(1, bufsize);
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_CLUSTER, .data_length = bufsize };
	struct sd_rsp rsp;
	int ret = buf ? sheep_exec(&req, buf, bufsize, &rsp) : -ENOMEM;
	if (ret) {
		free(buf);
		return report_failure("cluster info", ret);
	}
	struct sd_cluster_rsp *cr = (struct sd_cluster_rsp *)&rsp;
	time_t ct = cr->ctime >> 32;
	char tbuf[64];
	struct json_object *doc = json_output ? cluster_info_json(&rsp) : NULL, *epochs = NULL;
	if (doc) {
		json_object_object_get_ex(doc, "epochs", &epochs);
	} else if (raw_output) {
		const char *st = cr->status == SD_STATUS_HALT ? "waiting" : status_word(cr->status);
		printf("%s %u %u %lld\n", st, rsp.epoch, cr->nr_copies, (long long)ct);
	} else {
		printf("Cluster status: %s\n", status_str(cr->status, cr->recovery_disabled));
		print_access();
		if (cr->ctime) {
			strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", localtime(&ct));
			printf("Cluster created at %s\n", tbuf);
			printf("Copies: %s, object size %u MiB\n", redundancy_str(cr->nr_copies, cr->copy_policy, tbuf, sizeof(tbuf)),
			       1u << (cr->block_size_shift - 20));
			printf("\nEpoch Time           Version\n");
		}
	}
	uint32_t off = 0;
	const struct epoch_log *log;
	for (uint32_t i = 0; i < cr->nr_entries && (log = epoch_log_next(buf, rsp.data_length, &off)); i++) {
		time_t t = log->time;
		if (epochs) {
			struct json_object *e = json_object_new_object(), *members = json_object_new_array();
			json_add_u64(e, "epoch", log->epoch);
			json_add_i64(e, "time", (int64_t)t);
			for (uint32_t k = 0; k < log->nr_nodes; k++)
				json_object_array_add(members, node_json(k, &log->nodes[k]));
			json_object_object_add(e, "nodes", members);
			json_object_array_add(epochs, e);
			continue;
		}
		strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", localtime(&t));
		if (raw_output)
			printf("%u %lld", log->epoch, (long long)t);
		else
			printf("%s %6u [", tbuf, log->epoch);
		for (uint32_t k = 0; k < log->nr_nodes; k++) {
			char nb[80];
			node_to_str(&log->nodes[k], nb, sizeof(nb));
			printf(raw_output ? " %s" : "%s%s", raw_output ? nb : (k ? ", " : ""), raw_output ? "" : nb);
		}
		printf(raw_output ? "\n" : "]\n");
	}
	if (doc)
		json_print(doc);
	free(buf);
	return 0;
}

static int cluster_shutdown(int argc, char **argv)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_SHUTDOWN };
	struct sd_rsp rsp;
	int ret = sheep_exec(&req, NULL, 0, &rsp);
	if (ret)
		return report_failure("cluster shutdown", ret);
	return 0;
}

static int cluster_keygen(int argc, char **argv)
{
	char err[512];
	if (auth_write_new_key_file(argv[0], err, sizeof(err)) < 0) {
		die_msg("%s", err);
		return 1;
	}
	if (!raw_output)
		printf("New cluster key written to %s (mode 0600); give every sheep and collie the same file\n", argv[0]);
	return 0;
}

static const struct collie_option format_opts[] = {
	{ 'c', "copies", 1, "COPIES", "replicas of every object, or D:P erasure coding (default 3)" },
	{ 0 },
};

static const struct collie_option alter_copy_opts[] = {
	{ 'c', "copies", 1, "COPIES", "the new default copies" },
	PROGRESS_OPTION_ROW,
	{ 0 },
};

int cluster_alter_copy(int argc, char **argv);   /* vdi_copies.c */
int cluster_snapshot(int argc, char **argv);     /* cluster_snapshot.c */
extern const struct collie_option cluster_snapshot_opts[];
int cluster_recover(int argc, char **argv);
int cluster_check(int argc, char **argv);

static const struct collie_option check_opts[] = {
	{ 'n', "no-repair", 0, NULL, "report only; change nothing" },
	PROGRESS_OPTION_ROW,
	{ 0 },
};

static const struct subcommand cluster_subs[] = {
	{ "format", "[-c COPIES]", "create a new cluster over the running nodes (erases their data)",
	  format_opts, CMD_CLUSTER, 0, 0, cluster_format },
	{ "info", "", "show the cluster's state and epoch history", NULL, CMD_CLUSTER | CMD_JSON, 0, 0, cluster_info },
	{ "shutdown", "", "stop every sheep of the cluster cleanly", NULL, CMD_CLUSTER, 0, 0, cluster_shutdown },
	{ "recover", "enable|disable|force|throttle [N[:MS]]",
	  "hold or resume automatic recovery; force: run on without the nodes that did not come back; "
	  "throttle: N objects at once and MS ms pause on every node", NULL, CMD_CLUSTER, 1, 2, cluster_recover },
	{ "check", "[-n]", "verify every replica of every object; repair from one that verifies (exit 2: repaired, 3: lost)",
	  check_opts, CMD_CLUSTER | CMD_JSON, 0, 0, cluster_check },
	{ "alter-copy", "-c COPIES|D:P", "change the default copies (and those of every VDI that kept the old "
	  "default), or make D:P erasure coding the default of new VDIs",
	  alter_copy_opts, CMD_CLUSTER, 0, 0, cluster_alter_copy },
	{ "snapshot", "save TAG DIR [--force] | load TAG DIR | list DIR",
	  "save every VDI and snapshot into DIR (deduplicated), load a save into an empty cluster, or list saves",
	  cluster_snapshot_opts, CMD_CLUSTER, 2, 3, cluster_snapshot },
	{ "keygen", "FILE", "write a fresh cluster key to the new file FILE (mode 0600)", NULL, 0, 1, 1,
	  cluster_keygen },
	{ NULL },
};

const struct command cluster_command = { "cluster", "cluster-wide operations", cluster_subs };
