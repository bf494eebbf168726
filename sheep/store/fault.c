/* fault.c: fault injection for tests (built only with -DSD_FAULT_INJECT, see fault.h): reads,
 * writes and syncs of chosen objects fail with a chosen errno, are delayed, or read corrupt data.
 *
 * The rule file (sheep --fault-inject FILE) has one rule a line, '#' starts a comment:
 *   op=read|write|sync [oid=HEX] [after=N] [count=N] [errno=NAME] [delay_ms=N] [corrupt]
 * A rule matches an op of its kind (on its object, or any); it lets the first `after` matches
 * pass, then fires `count` times (default: for ever). Firing sleeps delay_ms, then fails the op
 * with errno (EIO, ENOSPC, EDQUOT, ENOMEM, EROFS) or, for corrupt reads, inverts one byte of what
 * was read. A sync of the store directory has oid 0. The file is read again whenever its mtime or
 * size changes (or it is replaced), with every count afresh; an empty or missing file injects nothing. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "logger.h"
#include "fault.h"

#define FAULT_MAX_RULES 32

struct fault_rule {
	enum fault_op op;
	bool any_oid, corrupt;
	uint64_t oid;
	uint64_t after, count;    /* count UINT64_MAX: for ever */
	uint64_t seen, fired;
	int err;
	uint32_t delay_ms;
};

static const char *const op_names[FAULT_NR_OPS] = {
	[FAULT_READ] = "read", [FAULT_WRITE] = "write", [FAULT_SYNC] = "sync",
};

static const struct { const char *name; int err; } errnos[] = {
	{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT }, { "ENOMEM", ENOMEM }, { "EROFS", EROFS },
};

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static char rule_path[4096];
static struct fault_rule rules[FAULT_MAX_RULES];
static int nr_rules;
static struct timespec loaded_mtime;
static off_t loaded_size = -1;
static ino_t loaded_ino;

static int parse_word(struct fault_rule *r, const char *w)
{
	char *end;
	if (!strcmp(w, "corrupt")) {
		r->corrupt = true;
		return 0;
	}
	const char *eq = strchr(w, '=');
	if (!eq)
		return -1;
	size_t klen = eq - w;
	const char *v = eq + 1;
	if (klen == 2 && !strncmp(w, "op", 2)) {
		for (int i = 0; i < FAULT_NR_OPS; i++)
			if (!strcmp(v, op_names[i])) {
				r->op = i;
				return 0;
			}
		return -1;
	}
	if (klen == 5 && !strncmp(w, "errno", 5)) {
		for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
			if (!strcmp(v, errnos[i].name)) {
				r->err = errnos[i].err;
				return 0;
			}
		return -1;
	}
	errno = 0;
	uint64_t n = strtoull(v, &end, !strncmp(w, "oid", 3) ? 16 : 10);
	if (!*v || *end || errno)
		return -1;
	if (klen == 3 && !strncmp(w, "oid", 3)) {
		r->oid = n;
		r->any_oid = false;
	} else if (klen == 5 && !strncmp(w, "after", 5)) {
		r->after = n;
	} else if (klen == 5 && !strncmp(w, "count", 5)) {
		r->count = n;
	} else if (klen == 8 && !strncmp(w, "delay_ms", 8) && n <= 600000) {
		r->delay_ms = (uint32_t)n;
	} else {
		return -1;
	}
	return 0;
}

/* under fault_lock: the rules of the file as it is now */
static void load_rules(void)
{
	struct stat st;
	if (stat(rule_path, &st) < 0) {
		if (loaded_size != -1 || nr_rules)
			sd_info("fault-inject: %s is gone: no faults", rule_path);
		nr_rules = 0;
		loaded_size = -1;
		return;
	}
	if (st.st_size == loaded_size && st.st_ino == loaded_ino && st.st_mtim.tv_sec == loaded_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == loaded_mtime.tv_nsec)
		return;
	loaded_size = st.st_size;
	loaded_ino = st.st_ino;
	loaded_mtime = st.st_mtim;
	nr_rules = 0;
	FILE *fp = fopen(rule_path, "r");
	if (!fp)
		return;
	char line[512];
	int lineno = 0;
	while (fgets(line, sizeof(line), fp)) {
		lineno++;
		char *hash = strchr(line, '#'), *save, *w;
		if (hash)
			*hash = 0;
		struct fault_rule r = { .op = FAULT_NR_OPS, .any_oid = true, .count = UINT64_MAX };
		bool bad = false, any = false;
		for (w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
			any = true;
			if (parse_word(&r, w) < 0) {
				sd_err("fault-inject: %s:%d: cannot read '%s'; the rule is ignored", rule_path, lineno, w);
				bad = true;
			}
		}
		if (!any || bad)
			continue;
		if (r.op == FAULT_NR_OPS || (!r.err && !r.corrupt && !r.delay_ms) ||
		    (r.corrupt && r.op != FAULT_READ) || nr_rules == FAULT_MAX_RULES) {
			sd_err("fault-inject: %s:%d: a rule needs op= and errno=, delay_ms= or (for reads) "
			       "corrupt, and at most %d rules; ignored", rule_path, lineno, FAULT_MAX_RULES);
			continue;
		}
		rules[nr_rules++] = r;
	}
	fclose(fp);
	sd_info("fault-inject: %d rules from %s", nr_rules, rule_path);
}

int fault_init(const char *path)
{
	if (strlen(path) >= sizeof(rule_path))
		return -ENAMETOOLONG;
	snprintf(rule_path, sizeof(rule_path), "%s", path);
	pthread_mutex_lock(&fault_lock);
	load_rules();
	pthread_mutex_unlock(&fault_lock);
	return 0;
}

/* under fault_lock: the rule that fires on this op now, counted, or NULL */
static struct fault_rule *fire(enum fault_op op, uint64_t oid, bool corrupt)
{
	if (!rule_path[0])
		return NULL;
	load_rules();
	for (int i = 0; i < nr_rules; i++) {
		struct fault_rule *r = &rules[i];
		if (r->op != op || r->corrupt != corrupt || (!r->any_oid && r->oid != oid))
			continue;
		if (r->seen++ < r->after || r->fired >= r->count)
			continue;
		r->fired++;
		return r;
	}
	return NULL;
}

int fault_check(enum fault_op op, uint64_t oid)
{
	pthread_mutex_lock(&fault_lock);
	struct fault_rule *r = fire(op, oid, false);
	int err = r ? r->err : 0;
	uint32_t delay = r ? r->delay_ms : 0;
	pthread_mutex_unlock(&fault_lock);
	if (!r)
		return 0;
	sd_warn("fault-inject: %s of %016" PRIx64 ": %s%s%s", op_names[op], oid,
		delay ? "delayed" : "", delay && err ? ", then " : "", err ? strerror(err) : "");
	if (delay)
		nanosleep(&(struct timespec){ delay / 1000, (delay % 1000) * 1000000L }, NULL);
	if (delay)
		sd_warn("fault-inject: %s of %016" PRIx64 ": %u ms delay over", op_names[op], oid, delay);
	return err;
}

void fault_corrupt(uint64_t oid, void *data, size_t len)
{
	if (!len)
		return;
	pthread_mutex_lock(&fault_lock);
	struct fault_rule *r = fire(FAULT_READ, oid, true);
	pthread_mutex_unlock(&fault_lock);
	if (!r)
		return;
	((unsigned char *)data)[len / 2] ^= 0xff;
	sd_warn("fault-inject: read of %016" PRIx64 ": byte %zu of %zu read inverted", oid, len / 2, len);
}
