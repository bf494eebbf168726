/* common.c: what every cluster command needs: one request to the sheep, the node list,
 * error reporting and size formatting. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec.h"
#include "collie.h"
#include "net.h"
#include "sd_client.h"
#include "util.h"

int sheep_exec(struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp)
{
	return sd_request(sd_addr, sd_port, hdr, data, bufsize, rsp);
}

const struct epoch_log *epoch_log_next(const char *buf, uint32_t len, uint32_t *off)
{
	if (*off > len || len - *off < EPOCH_LOG_HDR_SIZE)
		return NULL;
	const struct epoch_log *log = (const struct epoch_log *)(buf + *off);
	size_t size = EPOCH_LOG_HDR_SIZE + (size_t)log->nr_nodes * sizeof(struct sd_node);
	if (log->nr_nodes > SD_MAX_NODES || len - *off < size)
		return NULL;
	*off += size;
	return log;
}

int report_failure(const char *what, int res)
{
	if (res == -ECONNRESET || res == -ETIMEDOUT || res == -EPIPE)
		die_msg("%s: lost the connection to the sheep at %s:%d: %s", what, sd_addr, sd_port, strerror(-res));
	else if (res == -EACCES || res == -EPERM)
		die_msg("%s: the sheep at %s:%d refused this client's key: %s", what, sd_addr, sd_port, strerror(-res));
	else if (res < 0)
		die_msg("%s: cannot reach the sheep at %s:%d: %s", what, sd_addr, sd_port, strerror(-res));
	else
		die_msg("%s: %s", what, sd_strerror(res));
	return exit_status(res);
}

int get_node_list(struct sd_node **nodes, int *nr, int *local_idx)
{
	uint32_t size = SD_MAX_NODES * sizeof(struct sd_node);
	struct sd_node *buf = calloc(1, size);
	struct sd_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_NODE_LIST, .data_length = size };
	struct sd_rsp rsp;
	if (!buf)
		return -ENOMEM;
	int ret = sheep_exec(&hdr, buf, size, &rsp);
	if (ret) {
		free(buf);
		return ret;
	}
	struct sd_node_rsp *nr_rsp = (struct sd_node_rsp *)&rsp;
	*nr = MIN(nr_rsp->nr_nodes, rsp.data_length / sizeof(struct sd_node));
	if (local_idx)
		*local_idx = nr_rsp->local_idx;
	*nodes = buf;
	return 0;
}

const char *fmt_size(uint64_t size, char *buf, size_t len)
{
	if (raw_output) {
		snprintf(buf, len, "%llu", (unsigned long long)size);
		return buf;
	}
	return size_to_str(size, buf, len);
}

int parse_size_arg(const char *s, const char *what, uint64_t *out)
{
	if (parse_size(s, out) < 0) {
		die_msg("invalid %s '%s' (a number with an optional K, M, G or T suffix)", what, s);
		return -1;
	}
	return 0;
}

int parse_redundancy(const char *s, uint8_t *copies, uint8_t *policy)
{
	uint64_t n;
	*policy = 0;
	if (strchr(s, ':')) {
		if (ec_policy_parse(s, policy) < 0) {
			die_msg("invalid erasure code '%s' (D:P with D 2, 4, 8 or 16 data strips and P 1 to %d "
				"parity strips)", s, EC_MAX_PARITY);
			return -1;
		}
		*copies = (uint8_t)(ec_policy_data(*policy) + ec_policy_parity(*policy));
		return 0;
	}
	if (parse_u64(s, &n) < 0 || n < 1 || n > SD_MAX_COPIES) {
		die_msg("invalid copies '%s' (1 to %d, or D:P for erasure coding)", s, SD_MAX_COPIES);
		return -1;
	}
	*copies = (uint8_t)n;
	return 0;
}

const char *redundancy_str(uint8_t copies, uint8_t policy, char *buf, size_t len)
{
	if (policy)
		snprintf(buf, len, "%d:%d", ec_policy_data(policy), ec_policy_parity(policy));
	else
		snprintf(buf, len, "%u", copies);
	return buf;
}

int check_vdi_name(const char *name)
{
	size_t l = strlen(name);
	if (!l) {
		die_msg("the VDI name is empty");
		return -1;
	}
	if (l >= SD_MAX_VDI_LEN) {
		die_msg("the VDI name is %zu bytes long; at most %d are allowed", l, SD_MAX_VDI_LEN - 1);
		return -1;
	}
	return 0;
}

int node_exec(const struct sd_node *n, struct sd_req *req, void *data, uint32_t size, struct sd_rsp *rsp)
{
	char a[64];
	addr_to_str(n->addr, a, sizeof(a));
	return sd_request(a, n->port, req, data, size, rsp);
}

static const char *const cluster_state_words[] = {
	[SD_STATUS_WAIT_FOR_FORMAT] = "not formatted (run: collie cluster format)",
	[SD_STATUS_WAIT] = "waiting for its nodes to join",
	[SD_STATUS_SHUTDOWN] = "shutting down",
	[SD_STATUS_HALT] = "halted: not enough nodes",
};

int check_cluster_running(const char *what, struct sd_rsp *out)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_CLUSTER };
	struct sd_rsp rsp;
	int ret = sheep_exec(&req, NULL, 0, &rsp);
	if (ret)
		return report_failure(what, ret);
	const struct sd_cluster_rsp *cr = (const struct sd_cluster_rsp *)&rsp;
	if (cr->status != SD_STATUS_OK) {
		const char *w = cr->status < ARRAY_SIZE(cluster_state_words) ? cluster_state_words[cr->status] : NULL;
		if (w)
			die_msg("%s: the cluster is %s", what, w);
		else
			die_msg("%s: the cluster is not running (status %u)", what, cr->status);
		return EXIT_SYSFAIL;
	}
	if (out)
		*out = rsp;
	return 0;
}
