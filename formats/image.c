/* image.c: images over byte stores: probing, opening with the backing chain (loops and chains
 * deeper than 64 are refused), bounds-checked reads through the chain, block status, create,
 * and the helpers drivers share: reads and block status through a run map (fmt_map_*), the
 * header read at open, and reads of what a layer does not hold (fmt_image_read_backing).
 * The generic layer owns img->spec, img->backing_spec and img->backing_fmt (malloc'd strings,
 * freed here after the driver's close) and the opened backing chain. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats.h"
#include "util.h"

#define IMAGE_MAX_CHAIN 64
#define IMAGE_PROBE_LEN 4096
#define IMAGE_MAX_SIZE  (1ULL << 62)

/* names of the images being opened on this thread, outermost first: a backing file that names
 * one of them is a loop, whoever (generic layer or driver) opens it */
static __thread char *image_chain[IMAGE_MAX_CHAIN + 2];
static __thread int image_chain_depth;

int fmt_probe(struct fmt_store *st, const struct fmt_driver **drv)
{
	uint8_t *buf;
	size_t len = st->size < IMAGE_PROBE_LEN ? st->size : IMAGE_PROBE_LEN;
	const struct fmt_driver *best = NULL;
	int best_score = 0, ret;

	buf = calloc(1, IMAGE_PROBE_LEN);
	if (!buf)
		return -ENOMEM;
	ret = fmt_store_pread(st, buf, len, 0);
	if (ret)
		goto out;
	for (const struct fmt_driver *const *d = fmt_driver_table(); *d; d++) {
		if (!(*d)->probe)
			continue;
		int score = (*d)->probe(buf, len, st->spec);
		if (score > best_score) {
			best_score = score;
			best = *d;
		}
	}
	if (!best)
		best = fmt_driver_find("raw");
	if (!best) {
		fmt_error("%s: Could not determine the image format", st->spec);
		ret = -EINVAL;
		goto out;
	}
	*drv = best;
out:
	free(buf);
	return ret;
}

/* the name that identifies an image in the chain: the real path of a local file */
static char *image_canonical_name(const char *spec)
{
	char *rp;
	if (strstr(spec, "://") || !strncmp(spec, "sheepdog:", 9) || !strncmp(spec, "mem:", 4))
		return strdup(spec);
	rp = realpath(!strncmp(spec, "file:", 5) ? spec + 5 : spec, NULL);
	return rp ? rp : strdup(spec);
}

/* make sure the error names the image */
static void image_error_names(const char *spec)
{
	const char *msg = fmt_last_error();
	if (!*msg)
		fmt_error("%s: Could not open the image", spec);
	else if (!strstr(msg, spec))
		fmt_error("%s: %s", spec, msg);
}

static void image_free(struct fmt_image *img)
{
	if (!img)
		return;
	fmt_store_close(img->store);
	free(img->spec);
	free(img->backing_spec);
	free(img->backing_fmt);
	free(img);
}

static int image_open_backing(struct fmt_image *img, int flags)
{
	char *bspec;
	int ret = fmt_store_name_resolve(img->spec, img->backing_spec, "backing file", &bspec);

	if (ret < 0)
		return ret;
	ret = fmt_image_open(bspec, img->backing_fmt && *img->backing_fmt ? img->backing_fmt : NULL,
			     flags & ~FMT_OPEN_RDWR, NULL, &img->backing);
	/* only the top image wraps the message: deep chains would repeat it for every layer */
	if (ret && image_chain_depth == 1) {
		char *inner = strdup(fmt_last_error());
		fmt_error("%s: Could not open backing file '%s': %s", img->spec, img->backing_spec,
			  inner ? inner : "");
		free(inner);
	}
	free(bspec);
	return ret;
}

int fmt_image_open(const char *spec, const char *fmt, int flags, const struct fmt_options *opts,
		   struct fmt_image **out)
{
	struct fmt_image *img = NULL;
	struct fmt_store *st = NULL;
	const struct fmt_driver *drv = NULL;
	char *canon = NULL;
	bool pushed = false, drv_opened = false;
	int ret;

	*out = NULL;
	if (image_chain_depth > IMAGE_MAX_CHAIN) {
		fmt_error("%s: backing chain is deeper than %d images", spec, IMAGE_MAX_CHAIN);
		return -ELOOP;
	}
	canon = image_canonical_name(spec);
	if (!canon) {
		fmt_error("%s: out of memory", spec);
		return -ENOMEM;
	}
	for (int i = 0; i < image_chain_depth; i++)
		if (!strcmp(image_chain[i], canon)) {
			fmt_error("%s: backing file loop: the image is its own backing file (through the chain)", spec);
			free(canon);
			return -ELOOP;
		}
	image_chain[image_chain_depth++] = canon;
	pushed = true;

	if (fmt) {
		drv = fmt_driver_find(fmt);
		if (!drv) {
			fmt_error("%s: Unknown driver '%s'", spec, fmt);
			ret = -EINVAL;
			goto fail;
		}
	}
	if ((flags & FMT_OPEN_RDWR) && drv && !(drv->flags & FMT_DRV_WRITE)) {
		fmt_error("%s: Driver '%s' can only be used for read-only devices", spec, drv->name);
		ret = -EROFS;
		goto fail;
	}
	ret = fmt_store_open(spec, (flags & FMT_OPEN_RDWR) ? FMT_STORE_RDWR : FMT_STORE_RDONLY, &st);
	if (ret)
		goto fail;
	if (!drv) {
		ret = fmt_probe(st, &drv);
		if (ret)
			goto fail;
		if ((flags & FMT_OPEN_RDWR) && !(drv->flags & FMT_DRV_WRITE)) {
			fmt_error("%s: Driver '%s' can only be used for read-only devices", spec, drv->name);
			ret = -EROFS;
			goto fail;
		}
	}
	img = calloc(1, sizeof(*img));
	if (!img || !(img->spec = strdup(spec))) {
		fmt_error("%s: out of memory", spec);
		ret = -ENOMEM;
		goto fail;
	}
	img->drv = drv;
	img->store = st;
	st = NULL;
	img->writable = flags & FMT_OPEN_RDWR;
	fmt_error("%s", "");
	ret = drv->open(img, opts);
	if (ret) {
		if (ret > 0)
			ret = -EINVAL;
		image_error_names(spec);
		goto fail;
	}
	drv_opened = true;
	if (img->virtual_size > IMAGE_MAX_SIZE) {
		fmt_error("%s: virtual size %llu is too large", spec, (unsigned long long)img->virtual_size);
		ret = -EFBIG;
		goto fail;
	}
	if (img->backing_spec && !*img->backing_spec) {
		free(img->backing_spec);
		img->backing_spec = NULL;
	}
	if (!img->backing && img->backing_spec && !(flags & FMT_OPEN_NO_BACKING)) {
		ret = image_open_backing(img, flags);
		if (ret)
			goto fail;
	}
	image_chain_depth--;
	free(canon);
	*out = img;
	return 0;
fail:
	if (img) {
		if (img->backing)
			fmt_image_close(img->backing);
		img->backing = NULL;
		if (drv_opened && drv->close)
			drv->close(img);
		image_free(img);
	}
	fmt_store_close(st);
	if (pushed) {
		image_chain_depth--;
		free(canon);
	}
	return ret;
}

static int image_check_range(struct fmt_image *img, size_t len, uint64_t off, const char *what)
{
	if (off > img->virtual_size || len > img->virtual_size - off) {
		fmt_error("%s: %s of %zu bytes at offset %llu is past the end of the disk (%llu bytes)", img->spec,
			  what, len, (unsigned long long)off, (unsigned long long)img->virtual_size);
		return -EINVAL;
	}
	return 0;
}

int fmt_image_read_backing(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	struct fmt_image *b = img->backing;
	size_t n = 0;

	if (b && off < b->virtual_size)
		n = b->virtual_size - off < len ? b->virtual_size - off : len;
	if (n) {
		int ret = fmt_image_read(b, buf, n, off);
		if (ret)
			return ret;
	}
	memset((char *)buf + n, 0, len - n);
	return 0;
}

/* the driver follows the backing chain itself (fmt_image_read_backing for what it does not
 * hold), so a read is one mapping lookup per run, not a block status first and a lookup again */
int fmt_image_read(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	int ret = image_check_range(img, len, off, "read");
	if (ret || !len)
		return ret;
	if (img->drv->map)
		return fmt_map_read(img, buf, len, off, img->drv->map);
	return img->drv->read(img, buf, len, off);
}

/* one run of a driver's map, at most len bytes */
static int image_map_run(struct fmt_image *img, fmt_map_fn map, uint64_t off, uint64_t len,
			 unsigned *bits, uint64_t *host, uint64_t *n)
{
	int ret;

	*bits = 0;
	*n = 0;
	ret = map(img, off, len, bits, host, n);
	if (ret)
		return ret > 0 ? -EIO : ret;
	if (*n == 0) {
		fmt_error("%s: no mapping at offset %llu", img->spec, (unsigned long long)off);
		return -EIO;
	}
	if (*n > len)
		*n = len;
	return 0;
}

int fmt_map_read(struct fmt_image *img, void *buf, size_t len, uint64_t off, fmt_map_fn map)
{
	uint8_t *p = buf, *pend_buf = NULL;
	uint64_t pend_host = 0, pend_len = 0;   /* DATA not read yet: extended while contiguous */
	int ret;

	while (len) {
		unsigned bits;
		uint64_t host = 0, n;
		ret = image_map_run(img, map, off, len, &bits, &host, &n);
		if (ret)
			return ret;
		bool data = bits & FMT_BS_DATA;
		if (pend_len && (!data || host != pend_host + pend_len)) {
			ret = fmt_store_pread(img->store, pend_buf, pend_len, pend_host);
			if (ret)
				return ret;
			pend_len = 0;
		}
		if (data) {
			if (!pend_len) {
				pend_buf = p;
				pend_host = host;
			}
			pend_len += n;
		} else if (bits & FMT_BS_ZERO) {
			memset(p, 0, n);
		} else {
			/* not in this layer: the backing chain's bytes (zeros without one) */
			ret = fmt_image_read_backing(img, p, n, off);
			if (ret)
				return ret;
		}
		p += n;
		off += n;
		len -= n;
	}
	return pend_len ? fmt_store_pread(img->store, pend_buf, pend_len, pend_host) : 0;
}

int fmt_map_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
			 uint64_t *run, fmt_map_fn map)
{
	uint64_t done = 0;

	while (done < len) {
		unsigned b;
		uint64_t host, n;
		int ret = image_map_run(img, map, off + done, len - done, &b, &host, &n);
		if (ret)
			return ret;
		if (done && b != *bits)
			break;
		*bits = b;
		done += n;
	}
	*run = done;
	return 0;
}

int fmt_block_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off, uint64_t block_size,
		    uint64_t nr_blocks, fmt_block_fn locate)
{
	const uint8_t *p = buf;

	while (len) {
		uint64_t idx = off / block_size, in_block = off % block_size, host;
		size_t n = block_size - in_block < len ? block_size - in_block : len;
		int ret;
		if (idx >= nr_blocks) {
			fmt_error("%s: write at %llu is past the block table", img->spec, (unsigned long long)off);
			return -EINVAL;
		}
		ret = locate(img, idx, false, &host);
		if (ret == 0 && !is_all_zero(p, n))
			ret = locate(img, idx, true, &host);
		if (ret < 0)
			return ret;
		if (ret > 0) {
			ret = fmt_store_pwrite(img->store, p, n, host + in_block);
			if (ret < 0)
				return ret;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int fmt_image_read_header(struct fmt_image *img, void *buf, size_t len, const char *what)
{
	if (img->store->size < len) {
		fmt_error("%s: File too small for a %s header", img->spec, what);
		return -EINVAL;
	}
	return fmt_store_pread(img->store, buf, len, 0);
}

int fmt_image_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	int ret = image_check_range(img, len, off, "write");
	if (ret || !len)
		return ret;
	if (!img->writable || !img->drv->write) {
		fmt_error("%s: the image is not open for writing", img->spec);
		return -EROFS;
	}
	return img->drv->write(img, buf, len, off);
}

int fmt_image_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *run)
{
	int ret;

	if (off >= img->virtual_size) {
		fmt_error("%s: block status at offset %llu is past the end of the disk", img->spec,
			  (unsigned long long)off);
		return -EINVAL;
	}
	if (len > img->virtual_size - off)
		len = img->virtual_size - off;
	if (!img->drv->block_status && !img->drv->map) {
		*bits = FMT_BS_DATA | FMT_BS_ALLOCATED;
		*run = len;
		return 0;
	}
	*run = 0;
	*bits = 0;
	ret = img->drv->map ? fmt_map_block_status(img, off, len, bits, run, img->drv->map)
			    : img->drv->block_status(img, off, len, bits, run);
	if (ret)
		return ret > 0 ? -EIO : ret;
	if (*run == 0) {
		fmt_error("%s: no block status at offset %llu", img->spec, (unsigned long long)off);
		return -EIO;
	}
	if (*run > len)
		*run = len;
	return 0;
}

int fmt_image_block_status_deep(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
				uint64_t *run, int *depth)
{
	int d = 0, ret;

	ret = fmt_image_block_status(img, off, len, bits, run);
	if (ret)
		return ret;
	len = *run;
	while (!(*bits & FMT_BS_ALLOCATED) && img->backing) {
		img = img->backing;
		d++;
		if (off >= img->virtual_size) {   /* past the end of the backing image: zeros */
			*bits = FMT_BS_ZERO;
			break;
		}
		ret = fmt_image_block_status(img, off, len, bits, run);
		if (ret)
			return ret;
		len = *run;
	}
	/* unallocated everywhere: zeros */
	if (!(*bits & FMT_BS_ALLOCATED) && !(*bits & FMT_BS_DATA))
		*bits |= FMT_BS_ZERO;
	if (depth)
		*depth = d;
	return 0;
}

int fmt_image_flush(struct fmt_image *img)
{
	int ret = 0;
	if (img->writable && img->drv->flush)
		ret = img->drv->flush(img);
	if (!ret && img->writable)
		ret = fmt_store_flush(img->store);
	return ret;
}

void fmt_image_close(struct fmt_image *img)
{
	if (!img)
		return;
	if (img->backing)
		fmt_image_close(img->backing);
	img->backing = NULL;
	if (img->drv && img->drv->close)
		img->drv->close(img);
	image_free(img);
}

int fmt_image_create(const char *spec, const char *fmt, uint64_t size, const struct fmt_options *opts)
{
	const struct fmt_driver *drv;
	struct stat sb;
	bool existed;
	int ret;

	if (!fmt)
		fmt = "raw";
	drv = fmt_driver_find(fmt);
	if (!drv) {
		fmt_error("Unknown file format '%s'", fmt);
		return -EINVAL;
	}
	if (!(drv->flags & FMT_DRV_CREATE) || !drv->create) {
		fmt_error("Format driver '%s' does not support image creation", fmt);
		return -ENOTSUP;
	}
	if (fmt_options_get(opts, "size")) {
		ret = fmt_options_get_size(opts, "size", 0, &size);
		if (ret)
			return ret;
	}
	if (size > IMAGE_MAX_SIZE) {
		fmt_error("%s: image size %llu is too large", spec, (unsigned long long)size);
		return -EFBIG;
	}
	existed = !stat(spec, &sb);
	fmt_error("%s", "");
	ret = drv->create(spec, size, opts);
	if (ret) {
		if (ret > 0)
			ret = -EINVAL;
		image_error_names(spec);
		return ret;
	}
	ret = fmt_options_check_unused(opts, fmt);
	if (ret && !existed && !strchr(spec, ':'))
		unlink(spec);
	return ret;
}
