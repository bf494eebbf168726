/* vdi_transfer.c: collie vdi import | export: images (files, URLs) into cluster VDIs and back,
 * through the formats library's convert engine. Many NAME SOURCE pairs (or --list FILE) run
 * concurrently with one overall progress line; a failure is reported by name and sets the exit
 * status without stopping the others. Import creates the VDI only after the image's headers
 * check out (at its virtual size) and deletes it again if the copy fails. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collie.h"
#include "formats.h"
#include "image_util.h"
#include "progress.h"
#include "sd_client.h"
#include "util.h"

#define TRANSFER_MAX_JOBS 4   /* transfers running at once */

enum {
	XFER_OPT_PORT = 300,
	XFER_OPT_LIST,
	XFER_OPT_OBJECT,
};

struct transfer_job {
	char *name, *path;    /* VDI name and image (source of an import, target of an export) */
	uint64_t done, total;
	int failed;           /* 0, or the job's exit status */
	char err[1024];
};

struct transfer {
	bool import;
	struct transfer_job *jobs;
	int nr_jobs;
	int next;             /* next job to start */
	int finished;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int parallel;         /* convert requests in flight per job */
	/* options shared by every job */
	const char *fmt;      /* import: -f; export: -O */
	const char *opts;     /* import: source open options; export: target options */
	const char *snapshot; /* export -s */
	uint8_t copies, copy_policy;
	bool compress;
};

static void transfer_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct transfer_job *j = ctx;
	__atomic_store_n(&j->total, total, __ATOMIC_RELAXED);
	__atomic_store_n(&j->done, done, __ATOMIC_RELAXED);
}

/* the cluster VDI as a store name: sheepdog://HOST:PORT/NAME[#SNAP] */
static int transfer_vdi_spec(const char *name, const char *snap, char *buf, size_t len)
{
	if (strchr(name, '#')) {
		if (strchr(name, ':') || snap) {
			snprintf(buf, len, "VDI name '%s' cannot be used here (it holds both '#' and ':')", name);
			return -1;
		}
		snprintf(buf, len, "sheepdog:%s:%d:%s", sd_addr, sd_port, name);
		return 0;
	}
	snprintf(buf, len, "sheepdog://%s:%d/%s%s%s", sd_addr, sd_port, name, snap ? "#" : "", snap ? snap : "");
	return 0;
}

static void transfer_fail(struct transfer_job *j, const char *msg, int status)
{
	j->failed = status;
	snprintf(j->err, sizeof(j->err), "%s", msg);
}

static void transfer_import_one(struct transfer *t, struct transfer_job *j)
{
	struct fmt_image *img = NULL;
	struct fmt_options *sopts = NULL;
	struct fmt_convert_opts o;
	char spec[600];
	uint64_t size;
	uint32_t vid;
	int ret;

	if (t->opts && fmt_options_parse(&sopts, t->opts) < 0) {
		transfer_fail(j, fmt_last_error(), EXIT_USAGE);
		return;
	}
	/* the headers (and the backing chain) must check out before the VDI exists */
	ret = fmt_image_open(j->path, t->fmt, 0, sopts, &img);
	if (ret < 0 && t->nr_jobs == 1 && image_prompt_key(&sopts))
		ret = fmt_image_open(j->path, t->fmt, 0, sopts, &img);
	if (ret < 0) {
		transfer_fail(j, fmt_last_error(), errno_exit_status(ret));
		goto out;
	}
	size = img->virtual_size;
	if (!size || size > SD_MAX_VDI_SIZE) {
		char m[700];
		snprintf(m, sizeof(m), "%s: a virtual size of %" PRIu64 " bytes does not fit a VDI (1 byte to 4 TiB)",
			 j->path, size);
		transfer_fail(j, m, EXIT_FAILED);
		goto out;
	}
	__atomic_store_n(&j->total, size, __ATOMIC_RELAXED);
	if (transfer_vdi_spec(j->name, NULL, spec, sizeof(spec)) < 0) {
		transfer_fail(j, spec, EXIT_USAGE);
		goto out;
	}
	ret = sd_vdi_create(sd_addr, sd_port, j->name, size, t->copies, t->copy_policy, false, &vid);
	if (ret) {
		char m[700];
		snprintf(m, sizeof(m), "cannot create the VDI: %s", ret < 0 ? strerror(-ret) : sd_strerror(ret));
		transfer_fail(j, m, exit_status(ret));
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.src_fmt = t->fmt;
	o.src_opts = sopts;
	o.src_image = img;   /* opened once: a URL source is not fetched and probed twice */
	o.dst_fmt = "raw";
	o.target_exists = true;
	o.target_is_zero = true;   /* a new VDI reads as zeros */
	o.min_sparse = 4096;
	o.parallel = t->parallel;
	o.progress = transfer_progress;
	o.progress_ctx = j;
	ret = fmt_convert(j->path, spec, &o);
	if (ret < 0) {
		transfer_fail(j, fmt_last_error(), errno_exit_status(ret));
		ret = sd_vdi_delete(sd_addr, sd_port, j->name, NULL);
		if (ret) {
			size_t l = strlen(j->err);
			snprintf(j->err + l, sizeof(j->err) - l, " (and the partial VDI could not be deleted: %s)",
				 ret < 0 ? strerror(-ret) : sd_strerror(ret));
		}
	}
out:
	if (img)
		fmt_image_close(img);
	fmt_options_free(sopts);
}

static void transfer_export_one(struct transfer *t, struct transfer_job *j)
{
	struct fmt_convert_opts o;
	char spec[600];

	memset(&o, 0, sizeof(o));
	if (t->opts && fmt_options_parse(&o.dst_opts, t->opts) < 0) {
		transfer_fail(j, fmt_last_error(), EXIT_USAGE);
		return;
	}
	if (transfer_vdi_spec(j->name, t->snapshot, spec, sizeof(spec)) < 0) {
		transfer_fail(j, spec, EXIT_USAGE);
		goto out;
	}
	o.src_fmt = "raw";   /* a VDI's bytes are the disk, whatever they look like */
	o.dst_fmt = t->fmt ? t->fmt : "raw";
	o.compress = t->compress;
	o.min_sparse = 4096;
	o.parallel = t->parallel;
	o.progress = transfer_progress;
	o.progress_ctx = j;
	int ret = fmt_convert(spec, j->path, &o);
	if (ret < 0)
		transfer_fail(j, fmt_last_error(), errno_exit_status(ret));
out:
	fmt_options_free(o.dst_opts);
}

static void *transfer_worker(void *arg)
{
	struct transfer *t = arg;
	for (;;) {
		pthread_mutex_lock(&t->lock);
		int i = t->next < t->nr_jobs ? t->next++ : -1;
		pthread_mutex_unlock(&t->lock);
		if (i < 0)
			break;
		if (t->import)
			transfer_import_one(t, &t->jobs[i]);
		else
			transfer_export_one(t, &t->jobs[i]);
		pthread_mutex_lock(&t->lock);
		t->finished++;
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
	}
	return NULL;
}

/* the bar: bytes copied of every job, and how many VDIs are done */
static void transfer_show_progress(struct transfer *t, struct progress *p, bool last)
{
	uint64_t done = 0, total = 0;
	char what[48];
	for (int i = 0; i < t->nr_jobs; i++) {
		done += __atomic_load_n(&t->jobs[i].done, __ATOMIC_RELAXED);
		total += __atomic_load_n(&t->jobs[i].total, __ATOMIC_RELAXED);
	}
	snprintf(what, sizeof(what), "%s %d/%d", t->import ? "import" : "export", t->finished, t->nr_jobs);
	p->what = what;
	if (last)
		progress_end(p, total, total);
	else
		progress_update(p, done, total);
	p->what = NULL;
}

static int transfer_run(struct transfer *t, bool force_progress)
{
	struct progress bar;
	pthread_t tids[TRANSFER_MAX_JOBS];
	int nthreads = t->nr_jobs < TRANSFER_MAX_JOBS ? t->nr_jobs : TRANSFER_MAX_JOBS, started = 0, failed = 0;
	int ret = check_cluster_running(t->import ? "vdi import" : "vdi export", NULL);

	if (ret)
		return ret;
	progress_start(&bar, NULL, force_progress, true);

	/* 8 requests in flight in all (each up to 4 MiB): memory stays bounded however many run */
	t->parallel = nthreads > 1 ? (8 / nthreads > 2 ? 8 / nthreads : 2) : 8;
	for (int i = 0; i < nthreads; i++)
		if (!pthread_create(&tids[started], NULL, transfer_worker, t))
			started++;
	if (!started) {
		die_msg("cannot start worker threads");
		return EXIT_SYSFAIL;
	}
	pthread_mutex_lock(&t->lock);
	while (t->finished < t->nr_jobs) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&t->cond, &t->lock, &ts);
		if (bar.on) {
			pthread_mutex_unlock(&t->lock);
			transfer_show_progress(t, &bar, false);
			pthread_mutex_lock(&t->lock);
		}
	}
	pthread_mutex_unlock(&t->lock);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	transfer_show_progress(t, &bar, true);
	int status = EXIT_OK;
	for (int i = 0; i < t->nr_jobs; i++)
		if (t->jobs[i].failed) {
			if (!failed++)
				status = t->jobs[i].failed;   /* the first failure's, in job order */
			die_msg("vdi %s %s: %s", t->import ? "import" : "export", t->jobs[i].name, t->jobs[i].err);
		}
	if (t->nr_jobs > 1)
		printf("%s %d of %d VDIs%s%d failed\n", t->import ? "imported" : "exported", t->nr_jobs - failed,
		       t->nr_jobs, failed ? "; " : "; ", failed);
	return status;
}

/* "NAME PATH" lines; blank lines and '#' comments are skipped. 0 or an exit status. */
static int transfer_read_list(const char *file, struct transfer *t)
{
	FILE *fp = fopen(file, "r");
	char line[8192];
	int lineno = 0, ret = 0;

	if (!fp) {
		die_msg("%s: cannot read the list: %s", file, strerror(errno));
		return errno_exit_status(errno);
	}
	while (fgets(line, sizeof(line), fp)) {
		char *p = line, *name, *path;
		lineno++;
		if (!strchr(line, '\n') && !feof(fp)) {
			die_msg("%s:%d: line too long", file, lineno);
			ret = EXIT_USAGE;
			break;
		}
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		name = strtok(p, " \t\r\n");
		path = strtok(NULL, " \t\r\n");
		if (!name || !path || strtok(NULL, " \t\r\n")) {
			die_msg("%s:%d: expected 'NAME PATH'", file, lineno);
			ret = EXIT_USAGE;
			break;
		}
		struct transfer_job *jobs = realloc(t->jobs, (t->nr_jobs + 1) * sizeof(*jobs));
		if (!jobs) {
			ret = EXIT_SYSFAIL;
			break;
		}
		t->jobs = jobs;
		memset(&t->jobs[t->nr_jobs], 0, sizeof(*jobs));
		t->jobs[t->nr_jobs].name = strdup(name);
		t->jobs[t->nr_jobs].path = strdup(path);
		t->nr_jobs++;
	}
	fclose(fp);
	return ret;
}

/* the jobs and options; 0 or an exit status */
static int transfer_setup(struct transfer *t, bool import, int argc, char **argv)
{
	int ret;
	memset(t, 0, sizeof(*t));
	t->import = import;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	if (opt('a'))
		sd_addr = opt('a');
	if (opt(XFER_OPT_PORT)) {
		uint64_t p;
		if (parse_u64(opt(XFER_OPT_PORT), &p) < 0 || p < 1 || p > 65535) {
			die_msg("invalid port '%s'", opt(XFER_OPT_PORT));
			return EXIT_USAGE;
		}
		sd_port = (int)p;
	}
	if (argc % 2) {
		die_msg("vdi %s: NAME and %s come in pairs", import ? "import" : "export", import ? "SOURCE" : "DEST");
		return EXIT_USAGE;
	}
	if (!argc && !opt(XFER_OPT_LIST)) {
		die_msg("vdi %s: give NAME %s pairs or --list FILE", import ? "import" : "export",
			import ? "SOURCE" : "DEST");
		return EXIT_USAGE;
	}
	if (argc) {
		t->jobs = calloc(argc / 2, sizeof(*t->jobs));
		if (!t->jobs)
			return EXIT_SYSFAIL;
		for (int i = 0; i < argc; i += 2) {
			t->jobs[t->nr_jobs].name = strdup(argv[i]);
			t->jobs[t->nr_jobs].path = strdup(argv[i + 1]);
			t->nr_jobs++;
		}
	}
	if (opt(XFER_OPT_LIST) && (ret = transfer_read_list(opt(XFER_OPT_LIST), t)))
		return ret;
	if (!t->nr_jobs) {
		die_msg("%s: the list names no VDIs", opt(XFER_OPT_LIST));
		return EXIT_USAGE;
	}
	for (int i = 0; i < t->nr_jobs; i++) {
		if (!t->jobs[i].name || !t->jobs[i].path || check_vdi_name(t->jobs[i].name) < 0)
			return EXIT_USAGE;
		for (int k = 0; k < i; k++)
			if (!strcmp(t->jobs[k].name, t->jobs[i].name) ||
			    (!import && !strcmp(t->jobs[k].path, t->jobs[i].path))) {
				die_msg("vdi %s: '%s' is named twice", import ? "import" : "export",
					!strcmp(t->jobs[k].name, t->jobs[i].name) ? t->jobs[i].name : t->jobs[i].path);
				return EXIT_USAGE;
			}
	}
	if (image_setup(opt(XFER_OPT_OBJECT)) < 0)
		return EXIT_USAGE;
	return 0;
}

static void transfer_free(struct transfer *t)
{
	for (int i = 0; i < t->nr_jobs; i++) {
		free(t->jobs[i].name);
		free(t->jobs[i].path);
	}
	free(t->jobs);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
}

int vdi_import(int argc, char **argv)
{
	struct transfer t;
	int ret = transfer_setup(&t, true, argc, argv);

	if (ret)
		goto out;
	if (opt('c') && parse_redundancy(opt('c'), &t.copies, &t.copy_policy) < 0) {
		ret = EXIT_USAGE;
		goto out;
	}
	t.fmt = opt('f');
	t.opts = opt('o');
	ret = transfer_run(&t, opt_set('p'));
out:
	transfer_free(&t);
	return ret;
}

int vdi_export(int argc, char **argv)
{
	struct transfer t;
	int ret = transfer_setup(&t, false, argc, argv);

	if (ret)
		goto out;
	ret = EXIT_USAGE;
	if (image_cache_mode(opt('t')) < 0)
		goto out;
	t.fmt = opt('O');
	t.opts = opt('o');
	t.snapshot = opt('s');
	t.compress = opt_set('c');
	if (t.fmt && !fmt_driver_find(t.fmt)) {
		die_msg("Unknown file format '%s'", t.fmt);
		goto out;
	}
	ret = transfer_run(&t, opt_set('p'));
out:
	transfer_free(&t);
	return ret;
}

const struct collie_option vdi_import_opts[] = {
	{ 'f', "format", 1, "FMT", "image format (default: detected from the content)" },
	{ 'c', "copies", 1, "COPIES", "copies of each object, or D:P erasure coding (default: the cluster's)" },
	{ 'o', "options", 1, "OPTS", "image open options (encrypt.key-secret=ID)" },
	{ 'p', "progress", 0, NULL, "show a progress bar even when stderr is not a terminal" },
	PROGRESS_OPTION_ROW,
	{ XFER_OPT_LIST, "list", 1, "FILE", "read NAME SOURCE pairs from FILE, one a line" },
	{ XFER_OPT_OBJECT, "object", 1, "secret,id=ID,data=D", "a secret for encrypted images" },
	IMAGE_ALLOW_LOCAL_BACKING_ROW,
	{ 'a', "address", 1, "ADDR", "sheep to talk to (default 127.0.0.1)" },
	{ XFER_OPT_PORT, "port", 1, "PORT", "its port (default 7000)" },
	{ 0 },
};

const struct collie_option vdi_export_opts[] = {
	{ 'O', "output-format", 1, "FMT", "image format (default raw)" },
	{ 'o', "options", 1, "OPTS", "image options, as qemu-img's (-o subformat=fixed)" },
	{ 'c', "compress", 0, NULL, "compress the image's data (qcow2, qcow, vmdk streamOptimized)" },
	{ 's', "snapshot", 1, "TAG|ID", "export a snapshot of the VDI" },
	{ 't', "cache", 1, "CACHE", "target cache: unsafe (default, no flushes) or writeback (flushed at the end)" },
	{ 'p', "progress", 0, NULL, "show a progress bar even when stderr is not a terminal" },
	PROGRESS_OPTION_ROW,
	{ XFER_OPT_LIST, "list", 1, "FILE", "read NAME DEST pairs from FILE, one a line" },
	{ XFER_OPT_OBJECT, "object", 1, "secret,id=ID,data=D", "a secret for encrypted images" },
	{ 'a', "address", 1, "ADDR", "sheep to talk to (default 127.0.0.1)" },
	{ XFER_OPT_PORT, "port", 1, "PORT", "its port (default 7000)" },
	{ 0 },
};
