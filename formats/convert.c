/* convert.c: the convert engine (copy one image's virtual disk into another) and fmt_compare.
 *
 * The disk is cut into 2 MiB requests handed out in order to a pool of worker threads. A worker
 * asks the source for block status (through the backing chain), reads only the runs that hold
 * data, finds zero blocks of at least min_sparse bytes in what it read, and writes the rest.
 * Zero runs are skipped when the target is known to read as zeros (freshly created, or
 * --target-is-zero), else written as zeros (punched on a raw target).
 * A driver without FMT_DRV_THREADS is called under a lock; a target driver without it also gets
 * its writes in disk order (appending formats such as streamOptimized need that), while reads and
 * zero detection of later requests go on in parallel. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "formats.h"
#include "util.h"

#define CONVERT_CHUNK       (2u << 20)
#define CONVERT_MAX_THREADS 16
#define CONVERT_MAX_RUNS    512

struct convert_job {
	struct fmt_image *src, *dst;
	const struct fmt_convert_opts *o;
	uint64_t size;           /* bytes to copy: the source's virtual size */
	uint32_t chunk;          /* bytes per request */
	uint32_t gran;           /* zero-detection / write granularity */
	bool compress;
	bool dst_zero;           /* the target reads as zeros before we write */
	bool dst_punch;          /* zero runs may be punched in the target's store */
	bool ordered;            /* writes in disk order */
	bool src_serial, dst_serial;
	const uint8_t *zeros;    /* CONVERT_CHUNK zero bytes */

	pthread_mutex_t lock;    /* everything below */
	pthread_cond_t cond;
	uint64_t next;           /* next request offset to hand out */
	uint64_t next_write;     /* ordered mode: index of the request allowed to write */
	uint64_t done;
	int nr_running;
	int error;
	char errmsg[1024];

	pthread_mutex_t src_lock, dst_lock;
};

/* one run of a request: [off, off+len) and whether it is known to read as zeros */
struct convert_run {
	uint64_t off, len;
	bool zero;
};

static void convert_fail(struct convert_job *j, int err)
{
	pthread_mutex_lock(&j->lock);
	if (!j->error) {
		j->error = err ? err : -EIO;
		snprintf(j->errmsg, sizeof(j->errmsg), "%s", fmt_last_error());
	}
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

/* the 2 MiB of zeros that zero runs are written from */
static const uint8_t *convert_zeros;

static int convert_src_status(struct convert_job *j, uint64_t off, uint64_t len, unsigned *bits, uint64_t *run)
{
	int ret;
	if (j->src_serial)
		pthread_mutex_lock(&j->src_lock);
	ret = fmt_image_block_status_deep(j->src, off, len, bits, run, NULL);
	if (j->src_serial)
		pthread_mutex_unlock(&j->src_lock);
	return ret;
}

static int convert_src_read(struct convert_job *j, void *buf, uint64_t len, uint64_t off)
{
	int ret;
	if (j->src_serial)
		pthread_mutex_lock(&j->src_lock);
	ret = fmt_image_read(j->src, buf, len, off);
	if (j->src_serial)
		pthread_mutex_unlock(&j->src_lock);
	return ret;
}

/* Fill buf with [off, off+len) of the source; runs[] says which parts are known zeros (those are
 * not read and not cleared in buf). Returns the number of runs or a negative errno. */
static int convert_read_request(struct convert_job *j, uint8_t *buf, uint64_t off, uint64_t len,
				struct convert_run *runs)
{
	int nr = 0, ret;
	uint64_t pos = off;

	if (!j->o->min_sparse) {   /* -S 0: everything is data, no block status */
		ret = convert_src_read(j, buf, len, off);
		if (ret)
			return ret;
		runs[0] = (struct convert_run){ off, len, false };
		return 1;
	}
	while (pos < off + len) {
		unsigned bits;
		uint64_t run;
		ret = convert_src_status(j, pos, off + len - pos, &bits, &run);
		if (ret)
			return ret;
		bool zero = (bits & FMT_BS_ZERO) != 0;
		if (nr && runs[nr - 1].zero == zero && runs[nr - 1].off + runs[nr - 1].len == pos) {
			runs[nr - 1].len += run;
		} else {
			if (nr == CONVERT_MAX_RUNS) {   /* very fragmented: treat the rest as data */
				runs[nr - 1].len = off + len - runs[nr - 1].off;
				runs[nr - 1].zero = false;
				break;
			}
			runs[nr++] = (struct convert_run){ pos, run, zero };
		}
		pos += run;
	}
	for (int i = 0; i < nr; i++) {
		if (runs[i].zero)
			continue;
		ret = convert_src_read(j, buf + (runs[i].off - off), runs[i].len, runs[i].off);
		if (ret)
			return ret;
	}
	return nr;
}

static int convert_write_data(struct convert_job *j, const uint8_t *buf, uint64_t len, uint64_t off)
{
	int ret = 0;
	if (j->dst_serial)
		pthread_mutex_lock(&j->dst_lock);
	if (j->compress) {
		/* one cluster (or the disk's tail) at a time */
		uint64_t cs = j->gran;
		for (uint64_t p = 0; p < len && !ret; p += cs) {
			uint64_t n = len - p < cs ? len - p : cs;
			ret = j->dst->drv->write_compressed(j->dst, buf + p, n, off + p);
		}
	} else {
		ret = fmt_image_write(j->dst, buf, len, off);
	}
	if (j->dst_serial)
		pthread_mutex_unlock(&j->dst_lock);
	return ret;
}

static int convert_write_zeros(struct convert_job *j, uint64_t len, uint64_t off)
{
	int ret;
	if (j->dst_zero)
		return 0;
	if (j->dst_punch && !fmt_store_discard(j->dst->store, off, len))
		return 0;
	for (uint64_t p = 0; p < len; p += CONVERT_CHUNK) {
		uint64_t n = len - p < CONVERT_CHUNK ? len - p : CONVERT_CHUNK;
		ret = convert_write_data(j, j->zeros, n, off + p);
		if (ret)
			return ret;
	}
	return 0;
}

/* classify gran-sized blocks (aligned to the disk) as zero or data and write merged segments */
static int convert_write_request(struct convert_job *j, uint8_t *buf, uint64_t off, uint64_t len,
				 const struct convert_run *runs, int nr)
{
	uint64_t seg_start = off;
	int seg_zero = -1, r = 0, ret;

	for (uint64_t b = off; b < off + len;) {
		uint64_t e = (b / j->gran + 1) * j->gran;
		bool zero = true;
		if (e > off + len)
			e = off + len;
		if (!j->o->min_sparse) {
			zero = false;
		} else {
			/* known-zero runs need no scan; runs that were read are scanned */
			while (r < nr && runs[r].off + runs[r].len <= b)
				r++;
			for (int k = r; k < nr && runs[k].off < e && zero; k++)
				if (!runs[k].zero) {
					uint64_t s = runs[k].off > b ? runs[k].off : b;
					uint64_t t = runs[k].off + runs[k].len < e ? runs[k].off + runs[k].len : e;
					zero = is_all_zero(buf + (s - off), t - s);
				}
		}
		if (seg_zero != -1 && seg_zero != (int)zero) {
			if (seg_zero)
				ret = convert_write_zeros(j, b - seg_start, seg_start);
			else
				ret = convert_write_data(j, buf + (seg_start - off), b - seg_start, seg_start);
			if (ret)
				return ret;
			seg_start = b;
		}
		if (!zero) {
			/* known-zero parts inside a data block were not read: clear them (runs
			 * before r end before b) */
			for (int k = r; k < nr && runs[k].off < e; k++)
				if (runs[k].zero) {
					uint64_t s = runs[k].off > b ? runs[k].off : b;
					uint64_t t = runs[k].off + runs[k].len < e ? runs[k].off + runs[k].len : e;
					memset(buf + (s - off), 0, t - s);
				}
		}
		seg_zero = zero;
		b = e;
	}
	if (seg_zero == 1)
		return convert_write_zeros(j, off + len - seg_start, seg_start);
	if (seg_zero == 0)
		return convert_write_data(j, buf + (seg_start - off), off + len - seg_start, seg_start);
	return 0;
}

static void *convert_worker(void *arg)
{
	struct convert_job *j = arg;
	uint8_t *buf = malloc(j->chunk);
	struct convert_run *runs = malloc(CONVERT_MAX_RUNS * sizeof(*runs));
	int ret;

	if (!buf || !runs) {
		fmt_error("%s: out of memory", j->src->spec);
		convert_fail(j, -ENOMEM);
		goto out;
	}
	for (;;) {
		uint64_t off, len, idx;

		pthread_mutex_lock(&j->lock);
		if (j->error || j->next >= j->size) {
			pthread_mutex_unlock(&j->lock);
			break;
		}
		off = j->next;
		len = j->size - off < j->chunk ? j->size - off : j->chunk;
		j->next += len;
		idx = off / j->chunk;
		pthread_mutex_unlock(&j->lock);

		int nr = convert_read_request(j, buf, off, len, runs);
		if (nr < 0) {
			convert_fail(j, nr);
			break;
		}
		if (j->ordered) {
			pthread_mutex_lock(&j->lock);
			while (j->next_write != idx && !j->error)
				pthread_cond_wait(&j->cond, &j->lock);
			bool stop = j->error != 0;
			pthread_mutex_unlock(&j->lock);
			if (stop)
				break;
		}
		ret = convert_write_request(j, buf, off, len, runs, nr);
		if (ret) {
			convert_fail(j, ret);
			break;
		}
		pthread_mutex_lock(&j->lock);
		j->done += len;
		if (j->ordered)
			j->next_write++;
		pthread_cond_broadcast(&j->cond);
		pthread_mutex_unlock(&j->lock);
	}
out:
	pthread_mutex_lock(&j->lock);
	j->nr_running--;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	free(buf);
	free(runs);
	return NULL;
}

/* does every layer of the chain take calls from several threads, over seekable stores? */
static bool convert_chain_threaded(struct fmt_image *img, bool *seekable)
{
	bool ok = true;
	*seekable = true;
	for (; img; img = img->backing) {
		if (!(img->drv->flags & FMT_DRV_THREADS))
			ok = false;
		if (!img->store->seekable)
			*seekable = false;
	}
	return ok;
}

static int convert_run_workers(struct convert_job *j, int nthreads)
{
	pthread_t tids[CONVERT_MAX_THREADS];
	int started = 0;

	pthread_mutex_lock(&j->lock);
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&tids[i], NULL, convert_worker, j))
			break;
		started++;
		j->nr_running++;
	}
	if (!started) {
		pthread_mutex_unlock(&j->lock);
		fmt_error("%s: cannot start worker threads", j->src->spec);
		return -EAGAIN;
	}
	/* report progress from this thread while the workers run, five times a second */
	struct timespec next;
	clock_gettime(CLOCK_REALTIME, &next);
	while (j->nr_running) {
		next.tv_nsec += 200 * 1000 * 1000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000;
		}
		while (j->nr_running && pthread_cond_timedwait(&j->cond, &j->lock, &next) != ETIMEDOUT)
			;
		if (j->o->progress && j->nr_running) {
			uint64_t done = j->done;
			pthread_mutex_unlock(&j->lock);
			j->o->progress(j->o->progress_ctx, done, j->size);
			pthread_mutex_lock(&j->lock);
		}
	}
	pthread_mutex_unlock(&j->lock);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (j->error) {
		fmt_error("%s", j->errmsg);
		return j->error;
	}
	if (j->o->progress)
		j->o->progress(j->o->progress_ctx, j->size, j->size);
	return 0;
}

static void convert_zeros_init(void)
{
	convert_zeros = calloc(1, CONVERT_CHUNK);
}

/* one shared zero buffer, made once and never freed (read-only after that) */
static const uint8_t *convert_zeros_get(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, convert_zeros_init);
	return convert_zeros;
}

/* would writing dst destroy src? (same local file under any name) */
static bool convert_same_file(const char *src, const char *dst)
{
	struct stat a, b;
	if (strchr(src, ':') || strchr(dst, ':'))
		return !strcmp(src, dst);
	return !stat(src, &a) && !stat(dst, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* the options that rule a conversion out before anything is opened */
static int convert_check_opts(const struct fmt_convert_opts *o, const char *dst_fmt)
{
	if (o->target_is_zero && !o->target_exists) {
		fmt_error("--target-is-zero requires use of -n flag");
		return -EINVAL;
	}
	if (o->min_sparse % 512 || o->min_sparse > (16u << 20)) {
		fmt_error("Invalid buffer size for sparse output specified: %llu (a multiple of 512 up to 16 MiB)",
			  (unsigned long long)o->min_sparse);
		return -EINVAL;
	}
	const struct fmt_driver *ddrv = fmt_driver_find(dst_fmt);
	if (!ddrv) {
		fmt_error("Unknown file format '%s'", dst_fmt);
		return -EINVAL;
	}
	if (o->compress && (!(ddrv->flags & FMT_DRV_COMPRESS) || !ddrv->write_compressed)) {
		fmt_error("Compression not supported for this file format");
		return -ENOTSUP;
	}
	if (o->compress && fmt_options_get(o->dst_opts, "preallocation") &&
	    strcmp(fmt_options_get(o->dst_opts, "preallocation"), "off")) {
		fmt_error("Compression and preallocation not supported at the same time");
		return -EINVAL;
	}
	if (!o->target_exists && !(ddrv->flags & FMT_DRV_CREATE)) {
		fmt_error("Format driver '%s' does not support image creation", dst_fmt);
		return -ENOTSUP;
	}
	return 0;
}

/* convert -l: the source shows one of its internal snapshots instead of its active state */
static int convert_load_snapshot(struct fmt_image *src, const char *src_spec, const char *snapshot)
{
	if (!src->drv->snapshot_load) {
		fmt_error("%s: Failed to load snapshot '%s': the %s format has no internal snapshots", src_spec,
			  snapshot, src->drv->name);
		return -ENOTSUP;
	}
	int ret = src->drv->snapshot_load(src, snapshot);
	if (ret) {
		if (!strstr(fmt_last_error(), src_spec)) {
			char *m = strdup(fmt_last_error());
			fmt_error("%s: Failed to load snapshot '%s': %s", src_spec, snapshot, m ? m : "");
			free(m);
		}
		return ret < 0 ? ret : -EINVAL;
	}
	return 0;
}

/* request size, zero-detection granularity, which side runs serially and how many workers */
static int convert_plan(struct convert_job *j, const char *dst_spec, bool created, int *nthreads_out)
{
	const struct fmt_convert_opts *o = j->o;
	bool seekable;
	int nthreads;

	/* a cluster VDI takes whole 4 MiB objects best */
	j->chunk = CONVERT_CHUNK;
	if (!strcmp(j->dst->store->ops->name, "sheepdog") || !strcmp(j->src->store->ops->name, "sheepdog"))
		j->chunk = 2 * CONVERT_CHUNK;
	j->compress = o->compress;
	j->dst_zero = o->target_is_zero ||
		      (created && strcmp(j->dst->store->ops->name, "host_device") && !j->dst->backing_spec);
	j->dst_punch = !strcmp(j->dst->drv->name, "raw");
	j->gran = o->min_sparse ? o->min_sparse : 4096;
	if (j->dst->cluster_size > j->gran && j->dst->cluster_size <= CONVERT_CHUNK &&
	    !(CONVERT_CHUNK % j->dst->cluster_size))
		j->gran = j->dst->cluster_size;
	if (j->compress) {
		if (!j->dst->cluster_size || j->dst->cluster_size > CONVERT_CHUNK || CONVERT_CHUNK % j->dst->cluster_size) {
			fmt_error("%s: cannot compress with a cluster size of %u bytes", dst_spec, j->dst->cluster_size);
			return -EINVAL;
		}
		j->gran = j->dst->cluster_size;
	}
	j->src_serial = !convert_chain_threaded(j->src, &seekable);
	j->dst_serial = !(j->dst->drv->flags & FMT_DRV_THREADS);
	j->ordered = j->dst_serial;
	nthreads = o->parallel > 0 ? o->parallel : 8;
	if (nthreads > CONVERT_MAX_THREADS)
		nthreads = CONVERT_MAX_THREADS;
	/* a request holds at least one zero-detection block (-S up to 16 MiB); the buffers in
	 * flight stay within 32 MiB */
	if (j->gran > j->chunk)
		j->chunk = j->gran;
	while (nthreads > 2 && (uint64_t)nthreads * j->chunk > (32u << 20))
		nthreads--;
	if (!seekable) {   /* a stream must be read in order: one request at a time */
		nthreads = 1;
		j->src_serial = true;
	}
	*nthreads_out = nthreads;
	return 0;
}

int fmt_convert(const char *src_spec, const char *dst_spec, const struct fmt_convert_opts *o)
{
	struct convert_job j;
	const char *dst_fmt = o->dst_fmt ? o->dst_fmt : "raw";
	bool created = false;
	int ret, nthreads;

	memset(&j, 0, sizeof(j));
	j.o = o;
	pthread_mutex_init(&j.lock, NULL);
	pthread_mutex_init(&j.src_lock, NULL);
	pthread_mutex_init(&j.dst_lock, NULL);
	pthread_cond_init(&j.cond, NULL);

	ret = convert_check_opts(o, dst_fmt);
	if (ret)
		goto out;

	if (convert_same_file(src_spec, dst_spec)) {
		fmt_error("%s: the source and the target are the same file", dst_spec);
		ret = -EINVAL;
		goto out;
	}
	if (o->src_image)
		j.src = o->src_image;
	else if ((ret = fmt_image_open(src_spec, o->src_fmt, 0, o->src_opts, &j.src)))
		goto out;
	if (o->snapshot && *o->snapshot) {
		ret = convert_load_snapshot(j.src, src_spec, o->snapshot);
		if (ret)
			goto out;
	}
	j.size = j.src->virtual_size;

	if (!o->target_exists) {
		ret = fmt_image_create(dst_spec, dst_fmt, j.size, o->dst_opts);
		if (ret)
			goto out;
		created = true;
	}
	ret = fmt_image_open(dst_spec, dst_fmt, FMT_OPEN_RDWR | FMT_OPEN_NO_BACKING, o->dst_opts, &j.dst);
	if (ret)
		goto out;
	if (j.dst->virtual_size < j.size) {
		fmt_error("%s: the target holds %llu bytes, smaller than the source's %llu", dst_spec,
			  (unsigned long long)j.dst->virtual_size, (unsigned long long)j.size);
		ret = -ENOSPC;
		goto out;
	}

	ret = convert_plan(&j, dst_spec, created, &nthreads);
	if (ret)
		goto out;
	j.zeros = convert_zeros_get();
	if (!j.zeros) {
		fmt_error("%s: out of memory", src_spec);
		ret = -ENOMEM;
		goto out;
	}

	ret = convert_run_workers(&j, nthreads);
	if (ret)
		goto out;
	/* the target's metadata must reach its store, and the store its disk (a no-op for files
	 * under fmt_store_set_unsafe(), qemu's cache=unsafe; a cluster VDI's inode is flushed) */
	ret = fmt_image_flush(j.dst);
out:
	if (j.dst)
		fmt_image_close(j.dst);
	if (j.src && j.src != o->src_image)
		fmt_image_close(j.src);
	pthread_mutex_destroy(&j.lock);
	pthread_mutex_destroy(&j.src_lock);
	pthread_mutex_destroy(&j.dst_lock);
	pthread_cond_destroy(&j.cond);
	return ret;
}

/* ---- compare ------------------------------------------------------------------------------ */

/* the first non-zero byte of img in [off, end), or end */
static int compare_first_nonzero(struct fmt_image *img, uint64_t off, uint64_t end, uint8_t *buf,
				 uint64_t *where)
{
	while (off < end) {
		unsigned bits;
		uint64_t run;
		int ret = fmt_image_block_status_deep(img, off, end - off, &bits, &run, NULL);
		if (ret)
			return ret;
		if (!(bits & FMT_BS_ZERO)) {
			if (run > CONVERT_CHUNK)
				run = CONVERT_CHUNK;
			ret = fmt_image_read(img, buf, run, off);
			if (ret)
				return ret;
			if (!is_all_zero(buf, run)) {
				uint64_t i = 0;
				while (!buf[i])
					i++;
				*where = off + i;
				return 0;
			}
		}
		off += run;
	}
	*where = end;
	return 0;
}

int fmt_compare(struct fmt_image *a, struct fmt_image *b, uint64_t *first_diff)
{
	uint64_t common = a->virtual_size < b->virtual_size ? a->virtual_size : b->virtual_size;
	uint8_t *ba = malloc(CONVERT_CHUNK), *bb = malloc(CONVERT_CHUNK);
	uint64_t off = 0, where;
	int ret = 0;

	if (!ba || !bb) {
		ret = -ENOMEM;
		goto out;
	}
	while (off < common) {
		unsigned bits_a, bits_b;
		uint64_t ra, rb, n = common - off < CONVERT_CHUNK ? common - off : CONVERT_CHUNK;
		ret = fmt_image_block_status_deep(a, off, n, &bits_a, &ra, NULL);
		if (!ret)
			ret = fmt_image_block_status_deep(b, off, n, &bits_b, &rb, NULL);
		if (ret)
			goto out;
		n = ra < rb ? ra : rb;
		if ((bits_a & FMT_BS_ZERO) && (bits_b & FMT_BS_ZERO)) {
			off += n;
			continue;
		}
		if (bits_a & FMT_BS_ZERO)
			memset(ba, 0, n);
		else if ((ret = fmt_image_read(a, ba, n, off)))
			goto out;
		if (bits_b & FMT_BS_ZERO)
			memset(bb, 0, n);
		else if ((ret = fmt_image_read(b, bb, n, off)))
			goto out;
		if (memcmp(ba, bb, n)) {
			for (uint64_t i = 0; i < n; i++)
				if (ba[i] != bb[i]) {
					*first_diff = off + i;
					ret = 1;
					goto out;
				}
		}
		off += n;
	}
	/* the longer image's extra part must read as zeros */
	if (a->virtual_size != b->virtual_size) {
		struct fmt_image *l = a->virtual_size > b->virtual_size ? a : b;
		ret = compare_first_nonzero(l, common, l->virtual_size, ba, &where);
		if (ret)
			goto out;
		if (where < l->virtual_size) {
			*first_diff = where;
			ret = 1;
		}
	}
out:
	free(ba);
	free(bb);
	return ret;
}
