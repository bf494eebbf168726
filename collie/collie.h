/* collie.h: the admin CLI's command table types and the helpers every command file shares. */
#ifndef COLLIE_H
#define COLLIE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* exit statuses, as sheepdog's dog has them (collie(8) documents them; status.c maps results) */
#define EXIT_OK        0
#define EXIT_FAILED    1   /* the command failed */
#define EXIT_SYSFAIL   2   /* the cluster or the local host: unreachable, not formatted, halted */
#define EXIT_EXISTS    3   /* the thing exists already */
#define EXIT_FULL      4   /* no space left in the cluster */
#define EXIT_MISSING   5   /* the thing does not exist */
#define EXIT_USAGE     64  /* invalid command, arguments or options */

/* Option keys: a letter for short options ('c'), or a value >= 256 for long-only ones. */
struct collie_option {
	int key;
	const char *long_name;    /* may be NULL */
	int has_arg;              /* 0 no, 1 required */
	const char *arg_name;     /* "COPIES"; shown in help */
	const char *help;
};

#define CMD_CLUSTER 0x1   /* talks to a sheep: takes -a ADDR, -p PORT, -r, --key-file */
#define CMD_JSON    0x2   /* lists or shows: takes --output=human|json (sets json_output) */
#define OPT_KEY_FILE 300  /* --key-file, with the other options of CMD_CLUSTER commands */
#define OPT_OUTPUT  450   /* the key of --output */

struct subcommand {
	const char *name;
	const char *synopsis;                 /* positional arguments and options, for usage */
	const char *help;                     /* one line */
	const struct collie_option *options;  /* terminated by {0}; NULL for none */
	unsigned flags;
	int min_args, max_args;               /* positional arguments after the verb; -1 = unlimited */
	int (*fn)(int argc, char **argv);     /* positional arguments only; returns an exit status */
};

struct command {
	const char *name;
	const char *help;
	const struct subcommand *subs;        /* terminated by {NULL} */
};

extern const struct command cluster_command, node_command, vdi_command, image_command;

/* Options of the running subcommand, parsed by main: NULL if absent, the argument or "" if present.
 * A repeated option keeps all its arguments joined with ','. */
const char *opt(int key);
bool opt_set(int key);

/* the sheep collie talks to, and output mode */
extern const char *sd_addr;
extern int sd_port;
extern bool raw_output;
extern bool json_output;

/* one-line error to stderr, prefixed "collie: " */
void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* common.c: talking to the sheep */
#include "sheepdog_proto.h"
#include "internal_proto.h"
/* one request: -errno when the sheep cannot be reached, else the SD_RES_* result */
int sheep_exec(struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp);
/* one request to one node of the cluster (not the -a/-p sheep): -errno or the SD_RES_* result */
int node_exec(const struct sd_node *n, struct sd_req *req, void *data, uint32_t size, struct sd_rsp *rsp);
/* node.c: a JSON object {"id", "address", "port"} for node n (json-c; callers add to it) */
struct json_object;
struct json_object *node_json(int id, const struct sd_node *n);
/* the cluster's nodes (malloc'd) */
int get_node_list(struct sd_node **nodes, int *nr, int *local_idx);
/* the epoch log entry at *off of a STAT_CLUSTER payload of len bytes, checked to lie within it,
 * and *off moved past it; NULL at the end or at a malformed entry */
const struct epoch_log *epoch_log_next(const char *buf, uint32_t len, uint32_t *off);
/* print "collie: WHAT: REASON" for a failed result; returns its exit status (exit_status) */
int report_failure(const char *what, int res);
/* status.c: the exit status for a sheep request's result: 0, an SD_RES_* code, or -errno when
 * the request did not complete (EXIT_SYSFAIL) */
int exit_status(int res);
/* the exit status for a local failure (a file, an image, this host): errno or -errno */
int errno_exit_status(int err);
/* size for output: bytes with -r, else human-readable */
const char *fmt_size(uint64_t size, char *buf, size_t len);
/* strict size argument (K/M/G/T suffixes); prints the error itself (exit EXIT_USAGE) */
int parse_size_arg(const char *s, const char *what, uint64_t *out);
/* the cluster answers and runs (formatted, not halted): 0 and its STAT_CLUSTER answer in *out
 * (may be NULL), else prints "WHAT: why" and returns the exit status */
int check_cluster_running(const char *what, struct sd_rsp *out);
/* a VDI name argument: 1..255 bytes */
int check_vdi_name(const char *name);
/* -c: N copies or D:P erasure coding (one failure line and -1 when it is neither) */
int parse_redundancy(const char *s, uint8_t *copies, uint8_t *policy);
/* "3" or "2:1" */
const char *redundancy_str(uint8_t copies, uint8_t policy, char *buf, size_t len);

#endif
