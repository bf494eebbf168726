/* store_nbd.c: byte stores on NBD exports (libnbd): nbd://HOST[:PORT]/EXPORT and
 * nbd+unix:///EXPORT?socket=PATH (the URI forms libnbd and qemu take). An export has a fixed
 * size: "creating" one opens it for writing, checks it is large enough and zeroes it, so the
 * new store reads as zeros like a new file. One handle per store; its calls are serialized. */
#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "formats.h"

#define NBD_MAX_REQUEST  (32u << 20)     /* the largest read or write libnbd sends */
#define NBD_MAX_ZERO     (1u << 30)      /* write-zeroes and trim requests, well below 4 GiB */

struct store_nbd {
	struct nbd_handle *h;
	pthread_mutex_t lock;
	bool block_status;       /* the server answers base:allocation */
};

static bool store_nbd_matches(const char *spec)
{
	static const char *const schemes[] = { "nbd://", "nbds://", "nbd+unix://", "nbds+unix://" };
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncasecmp(spec, schemes[i], strlen(schemes[i])))
			return true;
	return false;
}

/* the failure of the last libnbd call on spec, as -errno (EIO when libnbd names none) */
static int store_nbd_fail(const char *spec, const char *what)
{
	int err = nbd_get_errno();
	fmt_error("%s: %s: %s", spec, what, nbd_get_error() ? nbd_get_error() : "unknown NBD error");
	return err > 0 ? -err : -EIO;
}

static void store_nbd_free(struct store_nbd *n)
{
	if (!n)
		return;
	if (n->h) {
		nbd_shutdown(n->h, 0);
		nbd_close(n->h);
	}
	pthread_mutex_destroy(&n->lock);
	free(n);
}

static int store_nbd_open(struct fmt_store *st, const char *spec, int flags)
{
	struct store_nbd *n = calloc(1, sizeof(*n));
	int64_t size;
	int ret;

	if (!n) {
		fmt_error("%s: out of memory", spec);
		return -ENOMEM;
	}
	pthread_mutex_init(&n->lock, NULL);
	n->h = nbd_create();
	if (!n->h) {
		ret = store_nbd_fail(spec, "cannot create an NBD handle");
		goto fail;
	}
	if (nbd_add_meta_context(n->h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
	    nbd_set_uri_allow_local_file(n->h, false) < 0) {
		ret = store_nbd_fail(spec, "cannot set up the NBD handle");
		goto fail;
	}
	if (nbd_connect_uri(n->h, spec) < 0) {
		ret = store_nbd_fail(spec, "Could not open");
		goto fail;
	}
	if ((flags & (FMT_STORE_RDWR | FMT_STORE_CREATE)) && nbd_is_read_only(n->h) > 0) {
		fmt_error("%s: the NBD export is read-only", spec);
		ret = -EROFS;
		goto fail;
	}
	size = nbd_get_size(n->h);
	if (size < 0) {
		ret = store_nbd_fail(spec, "cannot get the export size");
		goto fail;
	}
	n->block_status = nbd_can_meta_context(n->h, LIBNBD_CONTEXT_BASE_ALLOCATION) > 0;
	st->size = size;
	st->seekable = true;
	st->priv = n;
	return 0;
fail:
	store_nbd_free(n);
	return ret;
}

/* write zeroes over [off, off+len): WRITE_ZEROES where the server has it, else zero buffers */
static int store_nbd_zero(struct fmt_store *st, uint64_t off, uint64_t len)
{
	struct store_nbd *n = st->priv;
	bool fast = nbd_can_zero(n->h) > 0;
	void *zeros = fast ? NULL : calloc(1, NBD_MAX_REQUEST);

	if (!fast && !zeros)
		return -ENOMEM;
	while (len) {
		uint64_t chunk = len < (fast ? NBD_MAX_ZERO : NBD_MAX_REQUEST) ? len : (fast ? NBD_MAX_ZERO : NBD_MAX_REQUEST);
		int rc = fast ? nbd_zero(n->h, chunk, off, 0) : nbd_pwrite(n->h, zeros, chunk, off, 0);
		if (rc < 0) {
			free(zeros);
			return store_nbd_fail(st->spec, "cannot zero the export");
		}
		off += chunk;
		len -= chunk;
	}
	free(zeros);
	return 0;
}

static int store_nbd_create(struct fmt_store *st, const char *spec, uint64_t size)
{
	int ret = store_nbd_open(st, spec, FMT_STORE_CREATE);

	if (ret)
		return ret;
	if (st->size < size) {
		fmt_error("%s: the NBD export holds %" PRIu64 " bytes, fewer than the %" PRIu64 " the image needs",
			  spec, st->size, size);
		ret = -ENOSPC;
		goto fail;
	}
	ret = store_nbd_zero(st, 0, st->size);
	if (ret)
		goto fail;
	return 0;
fail:
	store_nbd_free(st->priv);
	st->priv = NULL;
	return ret;
}

/* one read or write, cut into requests libnbd takes */
static int store_nbd_io(struct fmt_store *st, uint8_t *p, size_t len, uint64_t off, bool write)
{
	struct store_nbd *n = st->priv;
	int ret = 0;

	pthread_mutex_lock(&n->lock);
	while (len && !ret) {
		size_t chunk = len < NBD_MAX_REQUEST ? len : NBD_MAX_REQUEST;
		if ((write ? nbd_pwrite(n->h, p, chunk, off, 0) : nbd_pread(n->h, p, chunk, off, 0)) < 0)
			ret = store_nbd_fail(st->spec, write ? "write failed" : "read failed");
		p += chunk;
		off += chunk;
		len -= chunk;
	}
	pthread_mutex_unlock(&n->lock);
	return ret;
}

static int store_nbd_pread(struct fmt_store *st, void *buf, size_t len, uint64_t off)
{
	return store_nbd_io(st, buf, len, off, false);
}

static int store_nbd_pwrite(struct fmt_store *st, const void *buf, size_t len, uint64_t off)
{
	if (off + len > st->size) {
		fmt_error("%s: write at %" PRIu64 " past the end of the %" PRIu64 "-byte NBD export", st->spec, off,
			  st->size);
		return -ENOSPC;
	}
	/* nbd_pwrite does not change the buffer */
	return store_nbd_io(st, (uint8_t *)buf, len, off, true);
}

struct store_nbd_extent {
	bool data;
	uint64_t run;
};

static int store_nbd_extent_cb(void *arg, const char *context, uint64_t offset, uint32_t *entries, size_t nr,
			       int *error)
{
	struct store_nbd_extent *x = arg;

	if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) || nr < 2)
		return 0;
	x->run = entries[0];
	x->data = !(entries[1] & LIBNBD_STATE_HOLE);
	return 0;
}

/* the first extent base:allocation reports at off; a server without it: all data */
static int store_nbd_block_status(struct fmt_store *st, uint64_t off, uint64_t len, bool *data, uint64_t *run)
{
	struct store_nbd *n = st->priv;
	struct store_nbd_extent x = { .data = true, .run = 0 };
	int ret = 0;

	if (len > st->size - off)
		len = st->size - off;
	if (len > NBD_MAX_ZERO)
		len = NBD_MAX_ZERO;
	if (n->block_status) {
		pthread_mutex_lock(&n->lock);
		if (nbd_block_status(n->h, len, off,
				     (nbd_extent_callback) { .callback = store_nbd_extent_cb, .user_data = &x },
				     LIBNBD_CMD_FLAG_REQ_ONE) < 0)
			ret = store_nbd_fail(st->spec, "block status failed");
		pthread_mutex_unlock(&n->lock);
	}
	if (ret)
		return ret;
	*data = x.data;
	*run = x.run && x.run <= len ? x.run : len;
	return 0;
}

static int store_nbd_discard(struct fmt_store *st, uint64_t off, uint64_t len)
{
	struct store_nbd *n = st->priv;
	int ret;

	pthread_mutex_lock(&n->lock);
	ret = nbd_can_trim(n->h) > 0 ? 0 : -ENOTSUP;
	while (!ret && len) {
		uint64_t chunk = len < NBD_MAX_ZERO ? len : NBD_MAX_ZERO;
		if (nbd_trim(n->h, chunk, off, 0) < 0)
			ret = store_nbd_fail(st->spec, "trim failed");
		off += chunk;
		len -= chunk;
	}
	pthread_mutex_unlock(&n->lock);
	return ret;
}

static int store_nbd_flush(struct fmt_store *st)
{
	struct store_nbd *n = st->priv;
	int ret = 0;

	if (!st->writable || nbd_can_flush(n->h) <= 0)
		return 0;
	pthread_mutex_lock(&n->lock);
	if (nbd_flush(n->h, 0) < 0)
		ret = store_nbd_fail(st->spec, "flush failed");
	pthread_mutex_unlock(&n->lock);
	return ret;
}

static void store_nbd_close(struct fmt_store *st)
{
	store_nbd_free(st->priv);
}

const struct fmt_store_ops fmt_store_nbd_ops = {
	.name = "nbd",
	.matches = store_nbd_matches,
	.open = store_nbd_open,
	.create = store_nbd_create,
	.pread = store_nbd_pread,
	.pwrite = store_nbd_pwrite,
	.block_status = store_nbd_block_status,
	.discard = store_nbd_discard,
	.flush = store_nbd_flush,
	.close = store_nbd_close,
};
