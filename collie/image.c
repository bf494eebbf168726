/* image.c: collie image info | check | convert | compare | map | create: the formats library
 * on local files and URLs, with output shaped like qemu-img's. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "collie.h"
#include "formats.h"
#include "image_util.h"
#include "json_out.h"
#include "util.h"

enum {
	IMG_OPT_OUTPUT = 256,
	IMG_OPT_OBJECT,
	IMG_OPT_TARGET_IS_ZERO,
	IMG_OPT_SOURCE_OPTIONS,
};

#define IMAGE_PROMPT_SECRET "collie-prompt"

/* Did the open fail for want of a key? Then, on a terminal, ask for the password once, register
 * it as a secret and name it in opts under both the qcow2/qcow and the luks option names. */
bool image_prompt_key(struct fmt_options **opts)
{
	static bool asked;
	const char *msg = fmt_last_error();
	char pw[512], spec[600];
	struct termios old, quiet;
	bool restore;

	if (asked || !isatty(STDIN_FILENO) ||
	    (!strstr(msg, "no key given") && !strstr(msg, "is required for cipher")))
		return false;
	asked = true;
	fprintf(stderr, "Password: ");
	fflush(stderr);
	restore = !tcgetattr(STDIN_FILENO, &old);
	if (restore) {
		quiet = old;
		quiet.c_lflag &= ~ECHO;
		tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
	}
	char *got = fgets(pw, sizeof(pw), stdin);
	if (restore)
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
	fprintf(stderr, "\n");
	if (!got)
		return false;
	pw[strcspn(pw, "\r\n")] = 0;
	/* the secret parser takes ',,' for a literal comma */
	size_t n = snprintf(spec, sizeof(spec), "secret,id=%s,data=", IMAGE_PROMPT_SECRET);
	for (char *p = pw; *p && n + 3 < sizeof(spec); p++) {
		spec[n++] = *p;
		if (*p == ',')
			spec[n++] = ',';
	}
	spec[n] = 0;
	memset(pw, 0, sizeof(pw));
	if (fmt_secret_add(spec) < 0)
		return false;
	fmt_options_set(opts, "encrypt.key-secret", IMAGE_PROMPT_SECRET);
	fmt_options_set(opts, "key-secret", IMAGE_PROMPT_SECRET);
	return true;
}

/* qemu's size_to_str: three significant digits, binary units */
const char *image_human_size(uint64_t val, char *buf, size_t len)
{
	static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
	int e;
	frexp(val / (1000.0 / 1024.0), &e);
	int i = (e - 1) / 10;
	if (i < 0)
		i = 0;
	if (i > 6)
		i = 6;
	snprintf(buf, len, "%0.3g %sB", (double)val / (double)(1ULL << (i * 10)), suffixes[i]);
	return buf;
}

/* register every "secret,..." object of a (possibly ','-joined) --object argument */
int image_add_objects(const char *arg)
{
	char *copy, *start;
	int ret = 0;

	if (!arg)
		return 0;
	copy = strdup(arg);
	if (!copy)
		return -1;
	start = copy;
	/* a new object starts at an item that is exactly "secret" (",," is an escaped comma) */
	for (char *p = copy;; p++) {
		if (*p == ',' && p[1] == ',') {
			p++;
			continue;
		}
		if (*p == 0 || (*p == ',' && !strncmp(p + 1, "secret", 6) && (p[7] == ',' || p[7] == 0))) {
			char save = *p;
			*p = 0;
			if (*start && fmt_secret_add(start) < 0) {
				die_msg("%s", fmt_last_error());
				ret = -1;
				break;
			}
			if (!save)
				break;
			start = p + 1;
		}
	}
	free(copy);
	return ret;
}

int image_setup(const char *objects)
{
	fmt_store_set_follow_any_name(opt_set(IMAGE_OPT_ALLOW_LOCAL_BACKING));
	return image_add_objects(objects);
}

/* -t CACHE: unsafe (the default: no fdatasync) or writeback/writethrough/none/directsync
 * (flushed, so the target is on disk when collie exits); prints errors */
int image_cache_mode(const char *mode)
{
	if (!mode || !strcmp(mode, "unsafe")) {
		fmt_store_set_unsafe(true);
		return 0;
	}
	if (!strcmp(mode, "writeback") || !strcmp(mode, "writethrough") || !strcmp(mode, "none") ||
	    !strcmp(mode, "directsync")) {
		fmt_store_set_unsafe(false);
		return 0;
	}
	die_msg("Invalid cache option: %s (unsafe, writeback, writethrough, none or directsync)", mode);
	return -1;
}

/* -o OPTS into a list; prints the error itself */
int image_parse_options(const char *text, struct fmt_options **opts)
{
	if (text && fmt_options_parse(opts, text) < 0) {
		die_msg("%s", fmt_last_error());
		return -1;
	}
	return 0;
}

/* prints only when the figure changes, as qemu-img does */
void image_progress_print(void *ctx, uint64_t done, uint64_t total)
{
	static char last[32];
	char now[32];
	double pct = total ? 100.0 * (double)done / (double)total : 100.0;
	snprintf(now, sizeof(now), "%.2f", pct);
	if (!strcmp(now, last))
		return;
	snprintf(last, sizeof(last), "%s", now);
	printf("    (%s/100%%)\r", now);
	fflush(stdout);
}

/* ---- info ------------------------------------------------------------------------------- */

struct info_kv {
	char *key, *value;
};

struct info_list {
	struct info_kv *v;
	int nr;
};

static void info_emit(void *ctx, const char *key, const char *value)
{
	struct info_list *l = ctx;
	struct info_kv *v = realloc(l->v, (l->nr + 1) * sizeof(*v));
	if (!v)
		return;
	l->v = v;
	l->v[l->nr].key = strdup(key);
	l->v[l->nr].value = strdup(value ? value : "");
	if (l->v[l->nr].key && l->v[l->nr].value)
		l->nr++;
}

/* values that are numbers, booleans or JSON already stand as they are */
static struct json_object *json_value(const char *v)
{
	char *end;
	if (!strcmp(v, "true") || !strcmp(v, "false"))
		return json_object_new_boolean(v[0] == 't');
	if (v[0] == '[' || v[0] == '{') {
		struct json_object *parsed = json_tokener_parse(v);
		if (parsed)
			return parsed;
	}
	if (*v && (isdigit((unsigned char)*v) || (*v == '-' && isdigit((unsigned char)v[1])))) {
		errno = 0;
		if (*v == '-') {
			long long n = strtoll(v, &end, 10);
			if (!*end && !errno)
				return json_object_new_int64(n);
		} else {
			unsigned long long n = strtoull(v, &end, 10);
			if (!*end && !errno)
				return json_object_new_uint64(n);
		}
	}
	return json_object_new_string(v);
}

/* Format-specific data arrives as flat "key: value" pairs; dotted keys ("encrypt.format",
 * "extents.0.filename") are paths into nested objects, and an object whose keys are all
 * numbers is an array, as qemu-img prints them. */
struct info_node {
	char *name;
	const char *value;            /* leaves only */
	struct info_node *child, *last, *next;
};

static struct info_node *info_node_child(struct info_node *parent, const char *name, size_t len)
{
	for (struct info_node *c = parent->child; c; c = c->next)
		if (strlen(c->name) == len && !strncmp(c->name, name, len))
			return c;
	struct info_node *c = calloc(1, sizeof(*c));
	if (!c || !(c->name = strndup(name, len))) {
		free(c);
		return NULL;
	}
	if (parent->last)
		parent->last->next = c;
	else
		parent->child = c;
	parent->last = c;
	return c;
}

static void info_tree_build(struct info_node *root, const struct info_list *fs)
{
	for (int i = 0; i < fs->nr; i++) {
		struct info_node *n = root;
		const char *p = fs->v[i].key;
		for (;;) {
			const char *dot = strchr(p, '.');
			n = info_node_child(n, p, dot ? (size_t)(dot - p) : strlen(p));
			if (!n || !dot)
				break;
			p = dot + 1;
		}
		if (n && !n->child)
			n->value = fs->v[i].value;
	}
}

static void info_tree_free(struct info_node *n)
{
	while (n) {
		struct info_node *next = n->next;
		info_tree_free(n->child);
		free(n->name);
		free(n);
		n = next;
	}
}

static bool info_is_array(const struct info_node *n)
{
	if (!n->child)
		return false;
	for (const struct info_node *c = n->child; c; c = c->next)
		if (!*c->name || strspn(c->name, "0123456789") != strlen(c->name))
			return false;
	return true;
}

static struct json_object *info_json_node(const struct info_node *n)
{
	if (!n->child)
		return json_value(n->value ? n->value : "");
	bool arr = info_is_array(n);
	struct json_object *o = arr ? json_object_new_array() : json_object_new_object();
	for (const struct info_node *c = n->child; c; c = c->next) {
		if (arr)
			json_object_array_add(o, info_json_node(c));
		else
			json_object_object_add(o, c->name, info_json_node(c));
	}
	return o;
}

static struct json_object *info_json(const struct info_list *fs)
{
	struct info_node root = { 0 };
	struct json_object *o = json_object_new_object();
	info_tree_build(&root, fs);
	for (const struct info_node *c = root.child; c; c = c->next)
		json_object_object_add(o, c->name, info_json_node(c));
	info_tree_free(root.child);
	return o;
}

static void info_print_key(const char *key)
{
	for (; *key; key++)
		putchar(*key == '-' ? ' ' : *key);
}

static void info_human_node(const struct info_node *n, int indent, bool in_array)
{
	printf("%*s", indent, "");
	if (in_array)
		printf("[%s]", n->name);
	else
		info_print_key(n->name);
	if (!n->child) {
		printf(": %s\n", n->value ? n->value : "");
		return;
	}
	printf(":\n");
	bool arr = info_is_array(n);
	for (const struct info_node *c = n->child; c; c = c->next)
		info_human_node(c, indent + 4, arr);
}

static void info_print_human(const struct info_list *fs)
{
	struct info_node root = { 0 };
	info_tree_build(&root, fs);
	for (const struct info_node *c = root.child; c; c = c->next)
		info_human_node(c, 4, false);
	info_tree_free(root.child);
}

/* bytes allocated on disk for the image, its extent files (format-specific "extents.N.filename")
 * counted too, as qemu-img does; -1 when it is not a local file */
static int64_t image_actual_size(const char *spec, const struct info_list *fs)
{
	struct stat sb, self;
	int64_t total;

	if (strstr(spec, "://") || !strncmp(spec, "sheepdog:", 9) || stat(spec, &self) < 0)
		return -1;
	total = (int64_t)self.st_blocks * 512;
	for (int i = 0; i < fs->nr; i++) {
		const char *k = fs->v[i].key, *tail = strrchr(k, '.');
		if (strncmp(k, "extents.", 8) || !tail || strcmp(tail, ".filename"))
			continue;
		char *path = fmt_store_sibling(spec, fs->v[i].value);
		if (path && !stat(path, &sb) && (sb.st_dev != self.st_dev || sb.st_ino != self.st_ino))
			total += (int64_t)sb.st_blocks * 512;
		free(path);
	}
	return total;
}

static void info_snapshots_human(struct fmt_snapshot *s, int nr)
{
	char buf[64];
	printf("Snapshot list:\n");
	printf("%-9s %-17s %7s %19s %12s %10s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
	for (int i = 0; i < nr; i++) {
		time_t t = (time_t)s[i].date_sec;
		struct tm tm;
		char date[32], clock[32];
		localtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		uint64_t secs = s[i].vm_clock_nsec / 1000000000ULL;
		snprintf(clock, sizeof(clock), "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64, secs / 3600,
			 (secs / 60) % 60, secs % 60, (s[i].vm_clock_nsec / 1000000) % 1000);
		printf("%-9s %-17s %7s %19s %12s %10s\n", s[i].id, s[i].name,
		       image_human_size(s[i].vm_state_size, buf, sizeof(buf)), date, clock,
		       s[i].icount_valid ? "0" : "--");
	}
}

static int image_info(int argc, char **argv)
{
	struct fmt_image *img = NULL;
	struct fmt_options *opts = NULL;
	struct info_list fs = { 0 };
	struct fmt_snapshot *snaps = NULL;
	int nr_snaps = 0, ret = 1;
	bool json = false;
	char buf[64], buf2[64];

	if (opt(IMG_OPT_OUTPUT)) {
		if (!strcmp(opt(IMG_OPT_OUTPUT), "json"))
			json = true;
		else if (strcmp(opt(IMG_OPT_OUTPUT), "human")) {
			die_msg("--output must be 'human' or 'json', not '%s'", opt(IMG_OPT_OUTPUT));
			return EXIT_USAGE;
		}
	}
	if (image_setup(opt(IMG_OPT_OBJECT)) < 0)
		return 1;
	if (opt('o') && image_parse_options(opt('o'), &opts) < 0)
		return 1;
	if (fmt_image_open(argv[0], opt('f'), FMT_OPEN_NO_BACKING, opts, &img) < 0 &&
	    (!image_prompt_key(&opts) || fmt_image_open(argv[0], opt('f'), FMT_OPEN_NO_BACKING, opts, &img) < 0)) {
		die_msg("%s", fmt_last_error());
		goto out;
	}
	if (img->drv->info && img->drv->info(img, info_emit, &fs) < 0) {
		die_msg("%s", fmt_last_error());
		goto out;
	}
	if (img->drv->snapshots && img->drv->snapshots(img, &snaps, &nr_snaps) < 0) {
		die_msg("%s", fmt_last_error());
		goto out;
	}
	int64_t actual = image_actual_size(argv[0], &fs);
	char *full_backing = img->backing_spec ? fmt_store_sibling(argv[0], img->backing_spec) : NULL;
	if (json) {
		struct json_object *doc = json_object_new_object();
		if (nr_snaps) {
			struct json_object *list = json_object_new_array();
			for (int i = 0; i < nr_snaps; i++) {
				struct json_object *sn = json_object_new_object();
				json_add_u64(sn, "icount", 0);
				json_add_u64(sn, "vm-clock-nsec", snaps[i].vm_clock_nsec % 1000000000u);
				json_add_str(sn, "name", snaps[i].name);
				json_add_u64(sn, "date-sec", snaps[i].date_sec);
				json_add_u64(sn, "date-nsec", snaps[i].date_nsec);
				json_add_u64(sn, "vm-clock-sec", snaps[i].vm_clock_nsec / 1000000000u);
				json_add_str(sn, "id", snaps[i].id);
				json_add_u64(sn, "vm-state-size", snaps[i].vm_state_size);
				json_object_array_add(list, sn);
			}
			json_object_object_add(doc, "snapshots", list);
		}
		if (img->backing_fmt)
			json_add_str(doc, "backing-filename-format", img->backing_fmt);
		json_add_u64(doc, "virtual-size", img->virtual_size);
		json_add_str(doc, "filename", argv[0]);
		if (img->cluster_size)
			json_add_u64(doc, "cluster-size", img->cluster_size);
		json_add_str(doc, "format", img->drv->name);
		if (actual >= 0)
			json_add_i64(doc, "actual-size", actual);
		if (fs.nr) {
			struct json_object *spec = json_object_new_object();
			json_add_str(spec, "type", img->drv->name);
			json_object_object_add(spec, "data", info_json(&fs));
			json_object_object_add(doc, "format-specific", spec);
		}
		if (img->encrypted)
			json_add_bool(doc, "encrypted", true);
		if (img->backing_spec) {
			json_add_str(doc, "full-backing-filename", full_backing ? full_backing : img->backing_spec);
			json_add_str(doc, "backing-filename", img->backing_spec);
		}
		json_add_bool(doc, "dirty-flag", false);
		json_print(doc);
	} else {
		printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRIu64 " bytes)\ndisk size: %s\n", argv[0],
		       img->drv->name, image_human_size(img->virtual_size, buf, sizeof(buf)), img->virtual_size,
		       actual >= 0 ? image_human_size(actual, buf2, sizeof(buf2)) : "unavailable");
		if (img->cluster_size)
			printf("cluster_size: %u\n", img->cluster_size);
		if (img->encrypted)
			printf("encrypted: yes\n");
		if (img->backing_spec) {
			printf("backing file: %s", img->backing_spec);
			if (full_backing && strcmp(full_backing, img->backing_spec))
				printf(" (actual path: %s)", full_backing);
			printf("\n");
		}
		if (img->backing_fmt)
			printf("backing file format: %s\n", img->backing_fmt);
		if (nr_snaps)
			info_snapshots_human(snaps, nr_snaps);
		if (fs.nr) {
			printf("Format specific information:\n");
			info_print_human(&fs);
		}
	}
	free(full_backing);
	ret = 0;
out:
	for (int i = 0; i < fs.nr; i++) {
		free(fs.v[i].key);
		free(fs.v[i].value);
	}
	free(fs.v);
	free(snaps);
	fmt_image_close(img);
	fmt_options_free(opts);
	return ret;
}

/* ---- check ------------------------------------------------------------------------------ */

static int image_check(int argc, char **argv)
{
	struct fmt_image *img = NULL;
	struct fmt_options *opts = NULL;
	struct fmt_check_result r;
	bool json = opt(IMG_OPT_OUTPUT) && !strcmp(opt(IMG_OPT_OUTPUT), "json");
	int ret = 1;

	memset(&r, 0, sizeof(r));
	if (image_setup(opt(IMG_OPT_OBJECT)) < 0)
		return 1;
	if (fmt_image_open(argv[0], opt('f'), FMT_OPEN_NO_BACKING, opts, &img) < 0) {
		die_msg("%s", fmt_last_error());
		return 1;
	}
	if (!img->drv->check) {
		die_msg("%s: This image format does not support checks", argv[0]);
		ret = 63;
		goto out;
	}
	if (img->drv->check(img, &r) < 0) {
		die_msg("%s: Check failed: %s", argv[0], fmt_last_error());
		ret = 1;
		goto out;
	}
	if (json) {
		struct json_object *doc = json_object_new_object();
		json_add_u64(doc, "image-end-offset", r.image_end_offset);
		json_add_u64(doc, "total-clusters", r.total_clusters);
		json_add_u64(doc, "check-errors", r.check_errors);
		if (r.leaks)
			json_add_u64(doc, "leaks", r.leaks);
		if (r.corruptions)
			json_add_u64(doc, "corruptions", r.corruptions);
		if (r.fragmented_clusters)
			json_add_u64(doc, "fragmented-clusters", r.fragmented_clusters);
		if (r.compressed_clusters)
			json_add_u64(doc, "compressed-clusters", r.compressed_clusters);
		json_add_u64(doc, "allocated-clusters", r.allocated_clusters);
		json_add_str(doc, "filename", argv[0]);
		json_add_str(doc, "format", img->drv->name);
		json_print(doc);
	} else {
		if (!r.corruptions && !r.leaks && !r.check_errors)
			printf("No errors were found on the image.\n");
		if (r.corruptions)
			printf("\n%" PRIu64 " errors were found on the image.\n"
			       "Data may be corrupted, or further writes to the image may corrupt it.\n", r.corruptions);
		if (r.leaks)
			printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
			       "This means waste of disk space, but no harm to data.\n", r.leaks);
		if (r.check_errors)
			printf("\n%" PRIu64 " internal errors have occurred during the check.\n", r.check_errors);
		if (r.total_clusters)
			printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed clusters\n",
			       r.allocated_clusters, r.total_clusters, 100.0 * r.allocated_clusters / r.total_clusters,
			       r.allocated_clusters ? 100.0 * r.fragmented_clusters / r.allocated_clusters : 0.0,
			       r.allocated_clusters ? 100.0 * r.compressed_clusters / r.allocated_clusters : 0.0);
		if (r.image_end_offset)
			printf("Image end offset: %" PRIu64 "\n", r.image_end_offset);
	}
	if (r.check_errors)
		ret = 1;
	else if (r.corruptions)
		ret = 2;
	else if (r.leaks)
		ret = 3;
	else
		ret = 0;
out:
	fmt_image_close(img);
	fmt_options_free(opts);
	return ret;
}

/* ---- convert ---------------------------------------------------------------------------- */

/* -l NAME, -l snapshot.name=NAME or -l snapshot.id=ID */
static const char *image_snapshot_arg(const char *arg)
{
	if (!strncmp(arg, "snapshot.name=", 14))
		return arg + 14;
	if (!strncmp(arg, "snapshot.id=", 12))
		return arg + 12;
	return arg;
}

int image_parse_sparse(const char *arg, uint64_t *out)
{
	if (parse_size(arg, out) < 0 || *out % 512 || *out > (16u << 20)) {
		die_msg("Invalid buffer size for sparse output specified: '%s' (a multiple of 512 up to 16M)", arg);
		return -1;
	}
	return 0;
}

static int image_convert(int argc, char **argv)
{
	struct fmt_convert_opts o;
	int ret = 1;

	memset(&o, 0, sizeof(o));
	o.src_fmt = opt('f');
	o.dst_fmt = opt('O') ? opt('O') : "raw";
	o.compress = opt_set('c');
	o.target_exists = opt_set('n');
	o.target_is_zero = opt_set(IMG_OPT_TARGET_IS_ZERO);
	o.min_sparse = 4096;
	o.snapshot = opt('l') ? image_snapshot_arg(opt('l')) : NULL;
	if (opt('S') && image_parse_sparse(opt('S'), &o.min_sparse) < 0)
		return 1;
	if (image_cache_mode(opt('t')) < 0)
		return 1;
	if (opt('m')) {
		uint64_t m;
		if (parse_u64(opt('m'), &m) < 0 || m < 1 || m > 16) {
			die_msg("Invalid number of parallel requests '%s' (1 to 16)", opt('m'));
			return 1;
		}
		o.parallel = (int)m;
	}
	if (opt_set('p') && !opt_set('q'))
		o.progress = image_progress_print;
	if (image_setup(opt(IMG_OPT_OBJECT)) < 0)
		return 1;
	if (image_parse_options(opt('o'), &o.dst_opts) < 0)
		goto out;
	if (o.progress)
		image_progress_print(NULL, 0, 1);
	if (image_parse_options(opt(IMG_OPT_SOURCE_OPTIONS), &o.src_opts) < 0)
		goto out;
	ret = fmt_convert(argv[0], argv[1], &o);
	if (ret < 0 && image_prompt_key(&o.src_opts))
		ret = fmt_convert(argv[0], argv[1], &o);
	if (ret < 0) {
		ret = 1;
		if (o.progress)
			printf("\n");
		die_msg("%s", fmt_last_error());
		goto out;
	}
	if (o.progress)
		printf("\n");
	ret = 0;
out:
	fmt_options_free(o.dst_opts);
	fmt_options_free(o.src_opts);
	return ret;
}

/* ---- compare ---------------------------------------------------------------------------- */

static int image_compare(int argc, char **argv)
{
	struct fmt_image *a = NULL, *b = NULL;
	uint64_t diff = 0;
	int ret;

	if (image_setup(opt(IMG_OPT_OBJECT)) < 0)
		return 2;
	if (fmt_image_open(argv[0], opt('f'), 0, NULL, &a) < 0) {
		die_msg("%s", fmt_last_error());
		return 2;
	}
	if (fmt_image_open(argv[1], opt('F') ? opt('F') : opt('f'), 0, NULL, &b) < 0) {
		die_msg("%s", fmt_last_error());
		fmt_image_close(a);
		return 2;
	}
	if (a->virtual_size != b->virtual_size)
		printf("Warning: Image size mismatch!\n");
	ret = fmt_compare(a, b, &diff);
	if (ret < 0) {
		die_msg("%s", fmt_last_error());
		ret = 4;
	} else if (ret == 1) {
		/* qemu-img names the first differing sector */
		printf("Content mismatch at offset %" PRIu64 "!\n", diff & ~(uint64_t)511);
	} else {
		printf("Images are identical.\n");
	}
	fmt_image_close(a);
	fmt_image_close(b);
	return ret;
}

/* ---- map -------------------------------------------------------------------------------- */

struct map_extent {
	uint64_t start, length;
	int depth;
	bool present, zero, data, has_offset;
	uint64_t offset;
	const char *file;
};

/* one extent: into the JSON array (printed at the end), or a human line if it holds data */
static void map_print(const struct map_extent *e, struct json_object *json, bool *first)
{
	if (json) {
		struct json_object *o = json_object_new_object();
		json_add_u64(o, "start", e->start);
		json_add_u64(o, "length", e->length);
		json_add_i64(o, "depth", e->depth);
		json_add_bool(o, "present", e->present);
		json_add_bool(o, "zero", e->zero);
		json_add_bool(o, "data", e->data);
		if (e->has_offset)
			json_add_u64(o, "offset", e->offset);
		json_object_array_add(json, o);
	} else if (e->data) {
		if (*first)
			printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
		char a[32], b[32], c[32];
		snprintf(a, sizeof(a), e->start ? "%#" PRIx64 : "0", e->start);
		snprintf(b, sizeof(b), "%#" PRIx64, e->length);
		if (e->has_offset)
			snprintf(c, sizeof(c), e->offset ? "%#" PRIx64 : "0", e->offset);
		else
			snprintf(c, sizeof(c), "-");
		printf("%-16s%-16s%-16s%s\n", a, b, c, e->file);
	} else {
		return;
	}
	*first = false;
}

static int image_map(int argc, char **argv)
{
	struct fmt_image *img = NULL;
	bool first = true, have = false;
	struct map_extent cur = { 0 };
	uint64_t off = 0;
	int ret = 1;

	if (image_setup(opt(IMG_OPT_OBJECT)) < 0)
		return 1;
	if (fmt_image_open(argv[0], opt('f'), 0, NULL, &img) < 0) {
		die_msg("%s", fmt_last_error());
		return 1;
	}
	struct json_object *json = opt(IMG_OPT_OUTPUT) && !strcmp(opt(IMG_OPT_OUTPUT), "json") ?
				   json_object_new_array() : NULL;
	while (off < img->virtual_size) {
		unsigned bits;
		uint64_t run;
		int depth;
		if (fmt_image_block_status_deep(img, off, img->virtual_size - off, &bits, &run, &depth) < 0) {
			if (!json && (!first || have))
				printf("\n");
			die_msg("%s", fmt_last_error());
			goto out;
		}
		struct fmt_image *layer = img;
		for (int i = 0; i < depth && layer->backing; i++)
			layer = layer->backing;
		struct map_extent e = {
			.start = off, .length = run, .depth = depth, .present = (bits & FMT_BS_ALLOCATED) != 0,
			.zero = (bits & FMT_BS_ZERO) != 0, .data = (bits & FMT_BS_DATA) != 0, .file = layer->spec,
		};
		/* as qemu-img: the human map cannot show where compressed or encrypted data lives */
		if (!json && e.data && ((bits & FMT_BS_COMPRESSED) || layer->encrypted)) {
			if (have)
				map_print(&cur, json, &first);
			die_msg("File contains external, encrypted or compressed clusters.");
			goto out;
		}
		/* raw maps guest offsets onto the same file offsets */
		if (!strcmp(layer->drv->name, "raw") && e.present) {
			e.has_offset = true;
			e.offset = off;
		}
		if (have && cur.depth == e.depth && cur.present == e.present && cur.zero == e.zero &&
		    cur.data == e.data && cur.has_offset == e.has_offset && cur.file == e.file &&
		    (!e.has_offset || cur.offset + cur.length == e.offset)) {
			cur.length += e.length;
		} else {
			if (have)
				map_print(&cur, json, &first);
			cur = e;
			have = true;
		}
		off += run;
	}
	if (have)
		map_print(&cur, json, &first);
	if (json) {
		json_print_lines(json);
		json = NULL;
	}
	ret = 0;
out:
	if (json)
		json_object_put(json);
	fmt_image_close(img);
	return ret;
}

/* ---- create ----------------------------------------------------------------------------- */

static int image_create(int argc, char **argv)
{
	struct fmt_options *opts = NULL;
	const char *fmt = opt('f') ? opt('f') : "raw";
	uint64_t size = 0;
	int ret = 1;

	if (image_setup(opt(IMG_OPT_OBJECT)) < 0)
		return 1;
	if (image_parse_options(opt('o'), &opts) < 0)
		goto out;
	if (opt('b') && fmt_options_set(&opts, "backing_file", opt('b')) < 0)
		goto out;
	if (opt('F') && fmt_options_set(&opts, "backing_fmt", opt('F')) < 0)
		goto out;
	if (argc > 1) {
		if (parse_size(argv[1], &size) < 0) {
			die_msg("Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
			fprintf(stderr, "collie: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.\n");
			goto out;
		}
	} else if (!fmt_options_get(opts, "backing_file") && !fmt_options_get(opts, "size")) {
		die_msg("%s: an image size is needed (or a backing file to take it from)", argv[0]);
		goto out;
	}
	/* getting the options above marked them used; the driver must consume them again */
	struct fmt_options *fresh = NULL;
	if (image_parse_options(opt('o'), &fresh) < 0)
		goto out;
	if (opt('b'))
		fmt_options_set(&fresh, "backing_file", opt('b'));
	if (opt('F'))
		fmt_options_set(&fresh, "backing_fmt", opt('F'));
	fmt_options_free(opts);
	opts = fresh;
	printf("Formatting '%s', fmt=%s size=%" PRIu64, argv[0], fmt, size);
	if (opt('b'))
		printf(" backing_file=%s", opt('b'));
	if (opt('F'))
		printf(" backing_fmt=%s", opt('F'));
	if (opt('o'))
		printf(" %s", opt('o'));
	printf("\n");
	fflush(stdout);
	if (fmt_image_create(argv[0], fmt, size, opts) < 0) {
		die_msg("%s", fmt_last_error());
		goto out;
	}
	ret = 0;
out:
	fmt_options_free(opts);
	return ret;
}

static const struct collie_option info_opts[] = {
	{ 'f', "format", 1, "FMT", "image format (default: detected from the content)" },
	{ 'o', "options", 1, "OPTS", "open options (encrypt.key-secret=ID)" },
	{ IMG_OPT_OUTPUT, "output", 1, "human|json", "output format" },
	{ IMG_OPT_OBJECT, "object", 1, "secret,id=ID,data=D", "a secret for encrypted images" },
	IMAGE_ALLOW_LOCAL_BACKING_ROW,
	{ 0 },
};

static const struct collie_option convert_opts[] = {
	{ 'f', "format", 1, "FMT", "source format (default: detected from the content)" },
	{ 'O', "output-format", 1, "FMT", "target format (default raw)" },
	{ 'o', "options", 1, "OPTS", "target options, as qemu-img's (-o cluster_size=64k,compat=1.1)" },
	{ 'c', "compress", 0, NULL, "compress the target's data (qcow2, qcow, vmdk streamOptimized)" },
	{ 'p', "progress", 0, NULL, "show progress" },
	{ 'S', "sparse-size", 1, "SIZE", "shortest zero run left unwritten (default 4k; 0 writes everything)" },
	{ 'l', "snapshot", 1, "SNAPSHOT", "convert an internal snapshot (NAME, snapshot.id=ID)" },
	{ 'n', "no-create", 0, NULL, "the target exists already: do not create it" },
	{ 'm', "parallel", 1, "N", "requests in flight (1 to 16, default 8)" },
	{ 't', "cache", 1, "CACHE", "target cache: unsafe (default, no flushes) or writeback (flushed at the end)" },
	{ 'W', "out-of-order", 0, NULL, "accepted for qemu-img compatibility (writes are unordered when the format allows)" },
	{ 'q', "quiet", 0, NULL, "no progress output (overrides -p)" },
	{ IMG_OPT_TARGET_IS_ZERO, "target-is-zero", 0, NULL, "the existing target reads as zeros (with -n)" },
	{ IMG_OPT_SOURCE_OPTIONS, "source-options", 1, "OPTS", "source open options (encrypt.key-secret=ID)" },
	{ IMG_OPT_OBJECT, "object", 1, "secret,id=ID,data=D", "a secret for encrypted images" },
	IMAGE_ALLOW_LOCAL_BACKING_ROW,
	{ 0 },
};

static const struct collie_option compare_opts[] = {
	{ 'f', "a-format", 1, "FMT", "format of the first image" },
	{ 'F', "b-format", 1, "FMT", "format of the second image" },
	{ IMG_OPT_OBJECT, "object", 1, "secret,id=ID,data=D", "a secret for encrypted images" },
	IMAGE_ALLOW_LOCAL_BACKING_ROW,
	{ 0 },
};

static const struct collie_option check_opts[] = {
	{ 'f', "format", 1, "FMT", "image format (default: detected from the content)" },
	{ IMG_OPT_OUTPUT, "output", 1, "human|json", "output format" },
	{ IMG_OPT_OBJECT, "object", 1, "secret,id=ID,data=D", "a secret for encrypted images" },
	IMAGE_ALLOW_LOCAL_BACKING_ROW,
	{ 0 },
};

static const struct collie_option create_opts[] = {
	{ 'f', "format", 1, "FMT", "image format (default raw)" },
	{ 'o', "options", 1, "OPTS", "format options, as qemu-img's" },
	{ 'b', "backing", 1, "FILE", "backing file" },
	{ 'F', "backing-format", 1, "FMT", "format of the backing file" },
	{ IMG_OPT_OBJECT, "object", 1, "secret,id=ID,data=D", "a secret for encrypted images" },
	{ 0 },
};

static const struct subcommand image_subs[] = {
	{ "info", "[--output=json] [-f FMT] FILE", "show an image's format, sizes and format details",
	  info_opts, 0, 1, 1, image_info },
	{ "check", "[-f FMT] FILE", "check an image's metadata (exit 2: corruption, 3: leaks only)",
	  check_opts, 0, 1, 1, image_check },
	{ "convert", "[-f FMT] [-O FMT] [-o OPTS] [-c] [-p] [-S SIZE] [-l SNAPSHOT] [-n] SRC DST",
	  "copy an image into another format", convert_opts, 0, 2, 2, image_convert },
	{ "compare", "[-f FMT] [-F FMT] A B", "compare two images' disk contents", compare_opts, 0, 2, 2,
	  image_compare },
	{ "map", "[--output=json] [-f FMT] FILE", "show which parts of the disk hold data", info_opts, 0, 1, 1,
	  image_map },
	{ "create", "-f FMT [-o OPTS] FILE [SIZE]", "create an empty image", create_opts, 0, 1, 2, image_create },
	{ NULL },
};

const struct command image_command = { "image", "disk image files (qcow2, vmdk, vdi, vpc, raw...)", image_subs };
