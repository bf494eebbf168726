/* recovery.c: collie node recovery and cluster recover enable|disable|force|throttle. */
#include <errno.h>
#include <inttypes.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collie.h"
#include "json_out.h"
#include "net.h"
#include "ring.h"
#include "sd_client.h"
#include "util.h"

static const char *phase_str(uint8_t phase)
{
	switch (phase) {
	case RECOVERY_IDLE: return "idle";
	case RECOVERY_LISTING: return "listing";
	case RECOVERY_RUNNING: return "recovering";
	case RECOVERY_DONE: return "done";
	case RECOVERY_DISABLED: return "disabled";
	case RECOVERY_STOPPED: return "stopped";
	case RECOVERY_INCOMPLETE: return "incomplete";
	}
	return "unknown";
}

int node_recovery(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr, ret = get_node_list(&nodes, &nr, NULL), failed = 0;
	if (ret)
		return report_failure("node recovery", ret);
	struct json_object *list = json_output ? json_object_new_array() : NULL;
	if (!raw_output && !list)
		printf("  Id   Host:Port                 Epoch  State        Progress           Rate      Throttle\n");
	for (int i = 0; i < nr; i++) {
		struct recovery_info ri;
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_RECOVERY,
				      .data_length = sizeof(ri) };
		struct sd_rsp rsp;
		char nb[80];
		node_to_str(&nodes[i], nb, sizeof(nb));
		ret = node_exec(&nodes[i], &req, &ri, sizeof(ri), &rsp);
		if (ret || rsp.data_length < sizeof(ri)) {
			die_msg("node recovery: cannot reach node %d (%s)", i, nb);
			failed = EXIT_SYSFAIL;
			continue;
		}
		uint64_t rate = ri.elapsed_ms ? ri.bytes * 1000 / ri.elapsed_ms : 0;
		const char *state = phase_str(ri.phase);
		if (list) {
			struct json_object *o = node_json(i, &nodes[i]);
			json_add_u64(o, "epoch", ri.epoch);
			json_add_str(o, "state", state);
			json_add_bool(o, "cluster-done", ri.cluster_done);
			json_add_u64(o, "done", ri.done);
			json_add_u64(o, "total", ri.total);
			json_add_u64(o, "failed", ri.failed);
			json_add_u64(o, "bytes", ri.bytes);
			json_add_u64(o, "rate", rate);
			json_add_u64(o, "inflight", ri.inflight);
			json_add_u64(o, "pause-ms", ri.pause_ms);
			json_object_object_add(o, "message", json_object_new_string_len(ri.message,
									  strnlen(ri.message, sizeof(ri.message))));
			json_object_array_add(list, o);
		} else if (raw_output) {
			printf("%d %s %u %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %u %u\n", i, nb, ri.epoch,
			       state, ri.done, ri.total, ri.failed, rate, ri.cluster_done, ri.inflight, ri.pause_ms);
		} else {
			char prog[48], rs[32], thr[32];
			snprintf(prog, sizeof(prog), "%" PRIu64 "/%" PRIu64 "%s", ri.done, ri.total,
				 ri.failed ? " (failed)" : "");
			snprintf(thr, sizeof(thr), "%u+%ums", ri.inflight, ri.pause_ms);
			size_to_str(rate, rs, sizeof(rs));
			printf("%c%3d   %-24s %6u  %-12s %-18s %7s/s  %s%s%s\n", ' ', i, nb, ri.epoch,
			       ri.phase == RECOVERY_DONE && ri.cluster_done ? "done (all)" : state, prog, rs, thr,
			       ri.message[0] ? "  " : "", ri.message[0] ? ri.message : "");
		}
	}
	if (list)
		json_print(list);
	free(nodes);
	return failed;
}

static int cluster_op(uint8_t opcode, const char *what)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = opcode };
	struct sd_rsp rsp;
	int ret = sheep_exec(&req, NULL, 0, &rsp);
	return ret ? report_failure(what, ret) : 0;
}

/* cluster recover throttle N[:MS]: every node fetches N objects at once and pauses MS ms after
 * each, from now on (sheep -R sets it at start); without N, each node's throttle */
static int cluster_recover_throttle(int argc, char **argv)
{
	if (!argc)
		return node_recovery(0, NULL);
	struct sd_recovery_throttle t = { 0 };
	char *end;
	unsigned long n = strtoul(argv[0], &end, 10), ms = 0;
	if (*end == ':')
		ms = strtoul(end + 1, &end, 10);
	if (*end || !isdigit((unsigned char)argv[0][0]) || n < 1 || n > SD_RECOVERY_MAX_INFLIGHT || ms > SD_RECOVERY_MAX_PAUSE_MS) {
		die_msg("cluster recover throttle: invalid throttle '%s' (N[:MS], N 1 to 64, MS 0 to 60000)", argv[0]);
		return EXIT_USAGE;
	}
	t.inflight = n;
	t.pause_ms = ms;
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_RECOVERY_THROTTLE,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(t) };
	struct sd_rsp rsp;
	int ret = sheep_exec(&req, &t, sizeof(t), &rsp);
	if (ret)
		return report_failure("cluster recover throttle", ret);
	printf("recovery throttle: %lu objects at once, %lu ms pause after each, on every node\n", n, ms);
	return 0;
}

int cluster_recover(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[0], "throttle")) {
		die_msg("cluster recover %s: takes no argument", argv[0]);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[0], "enable"))
		return cluster_op(SD_OP_ENABLE_RECOVER, "cluster recover enable");
	if (!strcmp(argv[0], "disable"))
		return cluster_op(SD_OP_DISABLE_RECOVER, "cluster recover disable");
	if (!strcmp(argv[0], "force")) {
		int ret = cluster_op(SD_OP_FORCE_RECOVER, "cluster recover force");
		if (!ret)
			printf("The cluster runs without the nodes that did not come back\n");
		return ret;
	}
	if (!strcmp(argv[0], "throttle"))
		return cluster_recover_throttle(argc - 1, argv + 1);
	die_msg("cluster recover: unknown action '%s' (enable, disable, force or throttle)", argv[0]);
	return EXIT_USAGE;
}
