/* raw.c: the raw format: the store's bytes are the disk. Holes in the store are reported as
 * zeros; creation honours preallocation=off|falloc|full. Safe to call from many threads. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

/* raw is the fallback: the weakest score that still counts */
static int raw_probe(const uint8_t *buf, size_t len, const char *spec)
{
	return 1;
}

static int raw_open(struct fmt_image *img, const struct fmt_options *opts)
{
	/* as qemu: the disk is whole sectors, a partial last sector reads as zeros past the end */
	img->virtual_size = (img->store->size + 511) & ~511ULL;
	img->cluster_size = 0;
	return 0;
}

static int raw_read(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	return fmt_store_pread(img->store, buf, len, off);
}

static int raw_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	return fmt_store_pwrite(img->store, buf, len, off);
}

static int raw_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *run)
{
	bool data;
	int ret = fmt_store_block_status(img->store, off, len, &data, run);
	if (ret)
		return ret;
	*bits = FMT_BS_ALLOCATED | (data ? FMT_BS_DATA : FMT_BS_ZERO);
	return 0;
}

/* write zeros over [0, size) in 1 MiB pieces (preallocation=full) */
static int raw_fill_zeros(struct fmt_store *st, uint64_t size)
{
	const size_t chunk = 1 << 20;
	char *z = calloc(1, chunk);
	int ret = 0;

	if (!z)
		return -ENOMEM;
	for (uint64_t off = 0; off < size && !ret; off += chunk)
		ret = fmt_store_pwrite(st, z, size - off < chunk ? size - off : chunk, off);
	free(z);
	return ret;
}

static int raw_create(const char *spec, uint64_t size, const struct fmt_options *opts)
{
	struct fmt_store *st = NULL;
	const char *prealloc = fmt_options_get(opts, "preallocation");
	int ret;

	size = (size + 511) & ~511ULL;   /* as qemu-img: whole sectors */
	if (prealloc && strcmp(prealloc, "off") && strcmp(prealloc, "falloc") && strcmp(prealloc, "full")) {
		fmt_error("%s: Invalid preallocation mode: '%s'", spec, prealloc);
		return -EINVAL;
	}
	/* qemu accepts these for raw and ignores them outside btrfs */
	fmt_options_use(opts, "nocow");
	fmt_options_use(opts, "extent_size_hint");
	ret = fmt_store_create(spec, size, &st);
	if (ret)
		return ret;
	if (prealloc && !strcmp(prealloc, "full"))
		ret = raw_fill_zeros(st, size);
	else if (prealloc && !strcmp(prealloc, "falloc") && st->ops->name && !strcmp(st->ops->name, "file")) {
		/* the file store keeps its descriptor first in its private data */
		int fd = *(int *)st->priv;
		ret = posix_fallocate(fd, 0, size);
		if (ret) {
			fmt_error("%s: Could not preallocate: %s", spec, strerror(ret));
			ret = -ret;
		}
	}
	fmt_store_close(st);
	return ret;
}

static int raw_flush(struct fmt_image *img)
{
	return 0;
}

static void raw_close(struct fmt_image *img)
{
}

const struct fmt_driver fmt_raw_driver = {
	.name = "raw",
	.flags = FMT_DRV_WRITE | FMT_DRV_CREATE | FMT_DRV_THREADS,
	.probe = raw_probe,
	.open = raw_open,
	.read = raw_read,
	.write = raw_write,
	.block_status = raw_block_status,
	.create = raw_create,
	.flush = raw_flush,
	.close = raw_close,
};
