/* check.c: collie cluster check and vdi check: every replica of every object (of every VDI, or of
 * one) verifies its checksums on the node the ring names; a replica that is missing, fails its
 * checksums or differs is rewritten from one that verifies, never by ring order. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "collie.h"
#include "ec.h"
#include "json_out.h"
#include "net.h"
#include "progress.h"
#include "ring.h"
#include "sd_client.h"
#include "util.h"

/* exit statuses (man/collie.8) */
#define CHECK_CLEAN    0
#define CHECK_FAILED   1    /* the check itself could not run */
#define CHECK_REPAIRED 2    /* something was wrong and is repaired (with -n: is repairable) */
#define CHECK_LOST     3    /* some object has no good copy, or its repair failed */

struct check_stats {
	uint64_t objects, replicas, bad, missing, differ, repaired, unrecoverable;
};

struct check_ctx {
	struct vnode_info *vi;
	uint32_t epoch;
	int default_copies;
	bool repair;
	uint32_t *index;
	int nr_vdis;
	struct check_stats st;
	struct json_object *problems;   /* --output=json: the problems found, else NULL */
	struct progress bar;            /* VDIs of a cluster check, objects of a vdi check */
	bool bar_by_object;
	uint64_t bar_done, bar_total;
};

/* one problem of one replica (node) or object (node NULL): a line of the report, or an entry
 * {"oid", "node", "problem", "outcome"} of "problems" with --output=json */
static void check_problem(struct check_ctx *c, uint64_t oid, const char *node, const char *problem,
			  const char *key, const char *outcome)
{
	if (c->problems) {
		struct json_object *o = json_object_new_object();
		char hex[20];
		snprintf(hex, sizeof(hex), "%016" PRIx64, oid);
		json_add_str(o, "oid", hex);
		json_add_str(o, "node", node);
		json_add_str(o, "problem", key);
		json_add_str(o, "outcome", outcome ? outcome : "reported");
		json_object_array_add(c->problems, o);
		return;
	}
	if (node)
		printf("object %016" PRIx64 ": the replica on %s %s%s%s\n", oid, node, problem, outcome ? ": " : "",
		       outcome ? outcome : "");
	else
		printf("object %016" PRIx64 ": %s\n", oid, problem);
}

/* the whole object from node n */
static int read_replica(const struct sd_node *n, uint64_t oid, void *buf, uint32_t size)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_READ_PEER, .data_length = size };
	struct sd_rsp rsp;
	req.obj.oid = oid;
	int ret = node_exec(n, &req, buf, size, &rsp);
	if (!ret && rsp.data_length < size)
		memset((char *)buf + rsp.data_length, 0, size - rsp.data_length);
	return ret;
}

/* the object through the gateway, which pieces it together block by block from the replicas */
static int read_pieced(uint64_t oid, void *buf, uint32_t size, bool repair)
{
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_OBJ, .data_length = size,
			      .flags = repair ? 0 : SD_FLAG_CMD_NO_REPAIR };
	struct sd_rsp rsp;
	req.obj.oid = oid;
	return sheep_exec(&req, buf, size, &rsp);
}

static int write_replica(const struct sd_node *n, uint64_t oid, void *buf, uint32_t size, uint32_t epoch)
{
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_CREATE_AND_WRITE_PEER,
			      .flags = SD_FLAG_CMD_WRITE, .epoch = epoch, .data_length = size };
	struct sd_rsp rsp;
	req.obj.oid = oid;
	return node_exec(n, &req, buf, size, &rsp);
}

struct replicas {
	int idx[SD_MAX_COPIES], res[SD_MAX_COPIES], nr;
	struct object_hash h[SD_MAX_COPIES];
	int good;     /* the replica whose content is the majority of those that verify, or -1 */
	bool tie;     /* replicas that verify disagree with no majority */
};

static void hash_replicas(const struct check_ctx *c, uint64_t oid, int copies, struct replicas *r)
{
	int best = 0;
	r->nr = ring_pick_nodes(c->vi, oid, copies, r->idx);
	r->good = -1;
	r->tie = false;
	for (int i = 0; i < r->nr; i++) {
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_HASH,
				      .data_length = sizeof(r->h[i]) };
		struct sd_rsp rsp;
		req.obj.oid = oid;
		r->res[i] = node_exec(&c->vi->nodes[r->idx[i]], &req, &r->h[i], sizeof(r->h[i]), &rsp);
	}
	for (int i = 0; i < r->nr; i++) {
		if (r->res[i])
			continue;    /* missing, or fails its checksums: it has no vote */
		int votes = 0;
		for (int k = 0; k < r->nr; k++)
			votes += !r->res[k] && r->h[k].crc == r->h[i].crc;
		if (votes > best) {
			best = votes;
			r->good = i;
			r->tie = false;
		} else if (votes == best && r->h[i].crc != r->h[r->good].crc) {
			r->tie = true;
		}
	}
}

static bool replica_fine(const struct replicas *r, int i)
{
	return r->good >= 0 && !r->tie && !r->res[i] && r->h[i].crc == r->h[r->good].crc;
}

/* what is wrong with replica i, counted */
/* what is wrong with replica i, in words, and as the key of --output=json's "problem" */
static const char *replica_fault(struct check_stats *st, const struct replicas *r, int i, const char **key)
{
	if (r->res[i] == SD_RES_CHECKSUM) {
		st->bad++;
		*key = "checksum";
		return "fails its checksums";
	}
	if (r->res[i]) {
		st->missing++;
		*key = r->res[i] == SD_RES_NO_OBJ ? "missing" : "unreadable";
		return r->res[i] == SD_RES_NO_OBJ ? "is missing" : sd_strerror(r->res[i]);
	}
	st->differ++;
	*key = "differs";
	return r->tie ? "verifies but differs from another that verifies" : "differs from the majority";
}

/* the good content of the object into buf; a description of where it came from */
static const char *good_content(const struct check_ctx *c, uint64_t oid, uint32_t size, const struct replicas *r,
				char *buf)
{
	static char from[96];
	if (r->good >= 0 && !r->tie) {
		const struct sd_node *n = &c->vi->nodes[r->idx[r->good]];
		if (read_replica(n, oid, buf, size))
			return NULL;
		return node_to_str(n, from, sizeof(from));
	}
	if (r->good < 0 && !read_pieced(oid, buf, size, c->repair))
		return "the blocks that verify on each replica";
	return NULL;
}

static void check_object(struct check_ctx *c, uint64_t oid, uint32_t obj_size, int copies)
{
	struct check_stats *st = &c->st;
	struct replicas r;
	char nb[80];
	st->objects++;
	hash_replicas(c, oid, copies, &r);
	st->replicas += r.nr;
	int nr_fine = 0;
	for (int i = 0; i < r.nr; i++)
		nr_fine += replica_fine(&r, i);
	if (nr_fine == r.nr)
		return;
	char *buf = malloc(obj_size);
	const char *from = buf ? good_content(c, oid, obj_size, &r, buf) : NULL;
	bool lost = !from;
	for (int i = 0; i < r.nr; i++) {
		const struct sd_node *n = &c->vi->nodes[r.idx[i]];
		if (replica_fine(&r, i))
			continue;
		node_to_str(n, nb, sizeof(nb));
		const char *key, *fault = replica_fault(st, &r, i, &key), *outcome = NULL;
		char from_buf[128];
		if (!c->repair) {
			outcome = NULL;
		} else if (!from) {
			outcome = "no good copy to repair it from, every copy kept";
		} else if (write_replica(n, oid, buf, obj_size, c->epoch)) {
			outcome = "repair failed";
			lost = true;
		} else {
			snprintf(from_buf, sizeof(from_buf), "repaired from %s", from);
			outcome = from_buf;
			st->repaired++;
		}
		check_problem(c, oid, nb, fault, key, outcome);
	}
	if (lost && !c->repair)
		check_problem(c, oid, NULL, "no good copy to repair it from", "lost", NULL);
	st->unrecoverable += lost;
	free(buf);
}

/* An erasure-coded object: each strip is read whole from the node that holds it (its checksums
 * verified there). The strips that verify must be one codeword: the content is the re-encoding of
 * D of them that most of the others agree with (every start in the ring of verifying strips is
 * tried), and a strip that is missing, fails its checksums or disagrees is rewritten from it. */
static void check_ec_object(struct check_ctx *c, uint64_t oid, uint32_t obj_size, uint8_t policy)
{
	struct check_stats *st = &c->st;
	const struct ec_codec *codec = ec_codec_get(policy);
	int d = ec_policy_data(policy), n = d + ec_policy_parity(policy);
	int idx[SD_MAX_COPIES], res[EC_MAX_STRIPS], good[EC_MAX_STRIPS], nr_good = 0;
	int nr = ring_pick_nodes(c->vi, oid, n, idx);
	uint32_t s = obj_size / d;
	uint8_t *strips = malloc((size_t)n * s), *code = malloc((size_t)n * s);
	uint8_t *sp[EC_MAX_STRIPS], *cp[EC_MAX_STRIPS];
	char nb[80];
	st->objects++;
	if (!codec || !strips || !code) {
		check_problem(c, oid, NULL, "cannot be checked (out of memory)", "unchecked", NULL);
		st->unrecoverable++;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		sp[i] = strips + (size_t)i * s;
		cp[i] = code + (size_t)i * s;
		res[i] = i < nr ? read_replica(&c->vi->nodes[idx[i]], ec_strip_oid(oid, i), sp[i], s) : SD_RES_NO_OBJ;
		if (!res[i])
			good[nr_good++] = i;
	}
	st->replicas += nr;
	int best = -1, best_agree = -1;
	for (int start = 0; nr_good >= d && start < nr_good; start++) {
		int have_idx[EC_MAX_DATA], want[EC_MAX_STRIPS], agree = 0;
		uint8_t *have[EC_MAX_DATA];
		for (int k = 0; k < d; k++) {
			have_idx[k] = good[(start + k) % nr_good];
			have[k] = sp[have_idx[k]];
		}
		for (int i = 0; i < n; i++)
			want[i] = i;
		if (ec_decode(codec, s, have_idx, have, n, want, cp))
			continue;
		for (int k = 0; k < nr_good; k++)
			agree += !memcmp(cp[good[k]], sp[good[k]], s);
		if (agree > best_agree) {
			best_agree = agree;
			best = start;
		}
		if (agree == nr_good)
			break;
	}
	if (best < 0) {
		check_problem(c, oid, NULL, "fewer strips verify than it needs to decode", "lost", NULL);
		st->unrecoverable++;
		goto out;
	}
	if (best_agree != nr_good || nr_good != nr) {
		/* the winning re-encoding into code[] again (the loop may have gone past it) */
		int have_idx[EC_MAX_DATA], want[EC_MAX_STRIPS];
		uint8_t *have[EC_MAX_DATA];
		for (int k = 0; k < d; k++) {
			have_idx[k] = good[(best + k) % nr_good];
			have[k] = sp[have_idx[k]];
		}
		for (int i = 0; i < n; i++)
			want[i] = i;
		ec_decode(codec, s, have_idx, have, n, want, cp);
	}
	if (best_agree < d) {
		check_problem(c, oid, NULL, "its strips that verify do not agree on one content", "lost", NULL);
		st->unrecoverable++;
		goto out;
	}
	for (int i = 0; i < nr; i++) {
		if (!res[i] && !memcmp(cp[i], sp[i], s))
			continue;
		const char *key, *fault, *outcome = NULL;
		if (res[i] == SD_RES_CHECKSUM) {
			st->bad++;
			key = "checksum";
			fault = "fails its checksums";
		} else if (res[i]) {
			st->missing++;
			key = res[i] == SD_RES_NO_OBJ ? "missing" : "unreadable";
			fault = res[i] == SD_RES_NO_OBJ ? "is missing" : sd_strerror(res[i]);
		} else {
			st->differ++;
			key = "differs";
			fault = "does not match the code of the others";
		}
		char what[120];
		snprintf(what, sizeof(what), "strip %d of %d:%d %s", i, d, n - d, fault);
		if (c->repair) {
			if (write_replica(&c->vi->nodes[idx[i]], ec_strip_oid(oid, i), cp[i], s, c->epoch)) {
				outcome = "repair failed";
				st->unrecoverable++;
			} else {
				outcome = "rebuilt from the others";
				st->repaired++;
			}
		}
		check_problem(c, oid, node_to_str(&c->vi->nodes[idx[i]], nb, sizeof(nb)), what, key, outcome);
	}
out:
	free(strips);
	free(code);
}

/* the inode and every data object the VDI owns */
static void check_vdi(struct check_ctx *c, uint32_t vid, int cluster_copies)
{
	struct sd_inode_header h;
	if (sd_read_inode_header(sd_addr, sd_port, vid, &h)) {
		check_problem(c, vid_to_vdi_oid(vid), NULL, "its inode cannot be read", "inode-unreadable", NULL);
		c->st.unrecoverable++;
		return;
	}
	int copies = h.nr_copies ? h.nr_copies : cluster_copies;
	bool ec = h.copy_policy && ec_policy_valid(h.copy_policy);
	uint32_t obj_size = 1u << (h.block_size_shift ? h.block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT);
	uint64_t nr_objs = DIV_ROUND_UP(h.vdi_size, obj_size);
	c->nr_vdis++;
	check_object(c, vid_to_vdi_oid(vid), SD_INODE_SIZE, ec ? ec_policy_parity(h.copy_policy) + 1 : copies);
	if (nr_objs > SD_INODE_DATA_INDEX || sd_read_inode_index(sd_addr, sd_port, vid, c->index, nr_objs)) {
		check_problem(c, vid_to_vdi_oid(vid), NULL, "its object index cannot be read", "index-unreadable", NULL);
		c->st.unrecoverable++;
		return;
	}
	if (c->bar_by_object)
		c->bar_total = nr_objs;
	for (uint64_t i = 0; i < nr_objs; i++) {
		if (c->index[i] == vid && ec)
			check_ec_object(c, vid_to_data_oid(vid, i), obj_size, h.copy_policy);
		else if (c->index[i] == vid)
			check_object(c, vid_to_data_oid(vid, i), obj_size, copies);
		if (c->bar_by_object)
			progress_update(&c->bar, i + 1, nr_objs);
	}
}

/* the ring and epoch of a running cluster */
static int check_begin(struct check_ctx *c, const char *what)
{
	struct sd_node *nodes = NULL;
	int nr, ret;
	memset(c, 0, sizeof(*c));
	c->repair = !opt_set('n');
	progress_start(&c->bar, what, false, false);
	if (json_output)
		c->problems = json_object_new_array();
	if ((ret = get_node_list(&nodes, &nr, NULL)))
		return report_failure(what, ret);
	struct sd_req creq = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_STAT_CLUSTER };
	struct sd_rsp crsp;
	if ((ret = sheep_exec(&creq, NULL, 0, &crsp))) {
		free(nodes);
		return report_failure(what, ret);
	}
	const struct sd_cluster_rsp *cr = (const struct sd_cluster_rsp *)&crsp;
	if (cr->status != SD_STATUS_OK) {
		free(nodes);
		die_msg("%s: the cluster is not running (status %u)", what, cr->status);
		return CHECK_FAILED;
	}
	c->epoch = crsp.epoch;
	c->default_copies = cr->nr_copies;
	c->vi = ring_build(nodes, nr);
	c->index = calloc(SD_INODE_DATA_INDEX, sizeof(uint32_t));
	free(nodes);
	if (!c->vi || !c->index) {
		die_msg("%s: out of memory", what);
		return CHECK_FAILED;
	}
	return CHECK_CLEAN;
}

static void check_free(struct check_ctx *c)
{
	if (c->problems)
		json_object_put(c->problems);
	c->problems = NULL;
	if (c->vi)
		ring_free(c->vi);
	free(c->index);
}

static int check_end(struct check_ctx *c, const char *what)
{
	const struct check_stats *st = &c->st;
	int status = CHECK_CLEAN;
	progress_end(&c->bar, c->bar_total, c->bar_total);
	if (c->problems) {
		struct json_object *doc = json_object_new_object();
		json_add_u64(doc, "vdis", c->nr_vdis);
		json_add_u64(doc, "objects", st->objects);
		json_add_u64(doc, "replicas", st->replicas);
		json_add_u64(doc, "replicas-bad", st->bad);
		json_add_u64(doc, "replicas-missing", st->missing);
		json_add_u64(doc, "replicas-differ", st->differ);
		json_add_u64(doc, "repaired", st->repaired);
		json_add_u64(doc, "unrecoverable", st->unrecoverable);
		json_object_object_add(doc, "problems", c->problems);
		c->problems = NULL;
		json_print(doc);   /* prints and frees it */
	} else {
		printf("checked %" PRIu64 " objects (%" PRIu64 " replicas) of %d VDI%s: %" PRIu64 " fail their "
		       "checksums, %" PRIu64 " missing, %" PRIu64 " differing; %" PRIu64 " repaired, %" PRIu64
		       " objects unrecoverable\n", st->objects, st->replicas, c->nr_vdis, c->nr_vdis == 1 ? "" : "s",
		       st->bad, st->missing, st->differ, st->repaired, st->unrecoverable);
	}
	if (st->unrecoverable) {
		die_msg("%s: %" PRIu64 " objects have no good copy%s", what, st->unrecoverable,
			c->repair ? " or could not be repaired" : "");
		status = CHECK_LOST;
	} else if (st->bad || st->missing || st->differ) {
		status = CHECK_REPAIRED;
	}
	check_free(c);
	return status;
}

int cluster_check(int argc, char **argv)
{
	struct check_ctx c;
	int ret = check_begin(&c, "cluster check");
	uint8_t *bitmap = calloc(1, SD_NR_VDIS / 8);
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_VDIS, .data_length = SD_NR_VDIS / 8 };
	struct sd_rsp rsp;
	if (ret)
		goto out_fail;
	if (!bitmap) {
		die_msg("cluster check: out of memory");
		goto out_fail;
	}
	if ((ret = sheep_exec(&req, bitmap, SD_NR_VDIS / 8, &rsp))) {
		report_failure("cluster check", ret);
		goto out_fail;
	}
	for (uint32_t vid = 1; vid < SD_NR_VDIS; vid++)
		c.bar_total += !!(bitmap[vid / 8] & (1 << (vid % 8)));
	for (uint32_t vid = 1; vid < SD_NR_VDIS; vid++)
		if (bitmap[vid / 8] & (1 << (vid % 8))) {
			check_vdi(&c, vid, c.default_copies);
			progress_update(&c.bar, ++c.bar_done, c.bar_total);
		}
	free(bitmap);
	return check_end(&c, "cluster check");
out_fail:
	free(bitmap);
	check_free(&c);
	return CHECK_FAILED;
}

int vdi_check(int argc, char **argv)
{
	struct check_ctx c;
	struct sd_vdi *vdi;
	if (check_vdi_name(argv[0]) < 0)
		return CHECK_FAILED;
	int ret = sd_vdi_open(sd_addr, sd_port, argv[0], opt('s'), false, &vdi);
	if (ret) {
		report_failure("vdi check", ret);
		return CHECK_FAILED;   /* the check's own statuses: it could not run */
	}
	uint32_t vid = sd_vdi_id(vdi);
	sd_vdi_close(vdi);
	if (check_begin(&c, "vdi check")) {
		check_free(&c);
		return CHECK_FAILED;
	}
	c.bar_by_object = true;
	check_vdi(&c, vid, c.default_copies);
	return check_end(&c, "vdi check");
}
