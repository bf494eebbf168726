/* store.c: byte stores: the table of store backends (memory, cluster VDI, URL, local file) and
 * the fmt_store_* entry points that dispatch to them. The entry points own the common rules:
 * reads past the end return zeros, writes grow the recorded size. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "util.h"

extern const struct fmt_store_ops fmt_store_file_ops;
extern const struct fmt_store_ops fmt_store_curl_ops __attribute__((weak));
extern const struct fmt_store_ops fmt_store_sheepdog_ops __attribute__((weak));
extern const struct fmt_store_ops fmt_store_nbd_ops __attribute__((weak));
static const struct fmt_store_ops store_mem_ops;

/* first match wins; the file backend takes whatever nobody else claims but a URL of a protocol
 * no backend knows (the URL, NBD and cluster backends are weak: NULL when not linked in) */
static const struct fmt_store_ops *const store_backends[] = {
	&store_mem_ops, &fmt_store_sheepdog_ops, &fmt_store_curl_ops, &fmt_store_nbd_ops, &fmt_store_file_ops,
};

static const struct fmt_store_ops *store_find_backend(const char *spec)
{
	for (size_t i = 0; i < ARRAY_SIZE(store_backends); i++)
		if (store_backends[i] && store_backends[i]->matches(spec))
			return store_backends[i];
	return NULL;
}

/* a store for spec, not opened yet: its backend (NULL if none matches) and its name */
static int store_new(const char *spec, struct fmt_store **out)
{
	struct fmt_store *st;

	if (!spec || !*spec) {
		fmt_error("an empty file name");
		return -EINVAL;
	}
	st = calloc(1, sizeof(*st));
	if (!st || !(st->spec = strdup(spec))) {
		free(st);
		fmt_error("%s: out of memory", spec);
		return -ENOMEM;
	}
	st->ops = store_find_backend(spec);
	st->seekable = true;
	if (st->ops == &fmt_store_file_ops && fmt_store_is_url(spec)) {
		fmt_error("%s: Unknown protocol '%.*s'", spec, (int)(strstr(spec, "://") - spec), spec);
		free(st->spec);
		free(st);
		return -EPROTONOSUPPORT;
	}
	*out = st;
	return 0;
}

int fmt_store_open(const char *spec, int flags, struct fmt_store **out)
{
	struct fmt_store *st;
	int ret;

	ret = store_new(spec, &st);
	if (ret)
		return ret;
	if (!st->ops) {
		fmt_error("%s: no store backend handles this name", spec);
		ret = -ENOENT;
		goto fail;
	}
	if ((flags & FMT_STORE_RDWR) && !st->ops->pwrite) {
		fmt_error("%s: the %s store is read-only", spec, st->ops->name);
		ret = -EROFS;
		goto fail;
	}
	ret = st->ops->open(st, spec, flags);
	if (ret)
		goto fail;
	st->writable = flags & (FMT_STORE_RDWR | FMT_STORE_CREATE);
	*out = st;
	return 0;
fail:
	free(st->spec);
	free(st);
	return ret;
}

int fmt_store_create(const char *spec, uint64_t size, struct fmt_store **out)
{
	struct fmt_store *st;
	int ret;

	ret = store_new(spec, &st);
	if (ret)
		return ret;
	if (!st->ops || !st->ops->create) {
		fmt_error("%s: cannot create images on the %s store", spec, st->ops ? st->ops->name : "(unknown)");
		ret = -ENOTSUP;
		goto fail;
	}
	ret = st->ops->create(st, spec, size);
	if (ret)
		goto fail;
	st->writable = true;
	if (out)
		*out = st;
	else
		fmt_store_close(st);
	return 0;
fail:
	free(st->spec);
	free(st);
	return ret;
}

int fmt_store_pread(struct fmt_store *st, void *buf, size_t len, uint64_t off)
{
	uint64_t size = __atomic_load_n(&st->size, __ATOMIC_ACQUIRE);
	size_t n = len;

	if (off > UINT64_MAX - len) {
		fmt_error("%s: read at offset %llu overflows", st->spec, (unsigned long long)off);
		return -EINVAL;
	}
	if (off >= size)
		n = 0;
	else if (off + len > size)
		n = size - off;
	if (n) {
		int ret = st->ops->pread(st, buf, n, off);
		if (ret < 0)
			return ret;
	}
	if (n < len)
		memset((char *)buf + n, 0, len - n);
	return 0;
}

int fmt_store_pwrite(struct fmt_store *st, const void *buf, size_t len, uint64_t off)
{
	int ret;

	if (!st->writable || !st->ops->pwrite) {
		fmt_error("%s: the store is not open for writing", st->spec);
		return -EROFS;
	}
	if (off > UINT64_MAX - len) {
		fmt_error("%s: write at offset %llu overflows", st->spec, (unsigned long long)off);
		return -EINVAL;
	}
	ret = st->ops->pwrite(st, buf, len, off);
	if (ret < 0)
		return ret;
	/* grow the recorded size; writers may race, the largest end wins */
	uint64_t end = off + len, cur = __atomic_load_n(&st->size, __ATOMIC_ACQUIRE);
	while (end > cur && !__atomic_compare_exchange_n(&st->size, &cur, end, false, __ATOMIC_ACQ_REL,
							 __ATOMIC_ACQUIRE))
		;
	return 0;
}

int fmt_store_block_status(struct fmt_store *st, uint64_t off, uint64_t len, bool *data, uint64_t *run)
{
	uint64_t size = __atomic_load_n(&st->size, __ATOMIC_ACQUIRE);

	if (!len) {
		*data = false;
		*run = 0;
		return 0;
	}
	if (off >= size) {   /* past the end: zeros */
		*data = false;
		*run = len;
		return 0;
	}
	if (!st->ops->block_status) {
		*data = true;
		*run = len;
		return 0;
	}
	int ret = st->ops->block_status(st, off, len, data, run);
	if (ret < 0)
		return ret;
	if (*run == 0 || *run > len)
		*run = len;
	return 0;
}

int fmt_store_truncate(struct fmt_store *st, uint64_t size)
{
	if (!st->writable || !st->ops->truncate) {
		fmt_error("%s: cannot change the size of this store", st->spec);
		return -ENOTSUP;
	}
	int ret = st->ops->truncate(st, size);
	/* a cluster VDI keeps its size: "truncating" it only checks the size fits */
	if (!ret && strcmp(st->ops->name, "sheepdog"))
		__atomic_store_n(&st->size, size, __ATOMIC_RELEASE);
	return ret;
}

int fmt_store_discard(struct fmt_store *st, uint64_t off, uint64_t len)
{
	if (!st->writable || !st->ops->discard)
		return -ENOTSUP;
	return st->ops->discard(st, off, len);
}

int fmt_store_flush(struct fmt_store *st)
{
	if (!st->writable || !st->ops->flush)
		return 0;
	return st->ops->flush(st);
}

void fmt_store_close(struct fmt_store *st)
{
	if (!st)
		return;
	if (st->ops && st->ops->close)
		st->ops->close(st);
	free(st->spec);
	free(st);
}

/* ---- memory stores ------------------------------------------------------------------------ */

struct store_mem_buf {
	char *name;
	uint8_t *data;
	size_t len;
	struct store_mem_buf *next;
};

static struct store_mem_buf *mem_bufs;
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;

int fmt_store_mem_register(const char *name, const void *buf, size_t len)
{
	struct store_mem_buf *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->name = strdup(name);
	m->data = malloc(len ? len : 1);
	if (!m->name || !m->data) {
		free(m->name);
		free(m->data);
		free(m);
		return -ENOMEM;
	}
	memcpy(m->data, buf, len);
	m->len = len;
	pthread_mutex_lock(&mem_lock);
	m->next = mem_bufs;
	mem_bufs = m;
	pthread_mutex_unlock(&mem_lock);
	return 0;
}

void fmt_store_mem_unregister(const char *name)
{
	pthread_mutex_lock(&mem_lock);
	for (struct store_mem_buf **pp = &mem_bufs; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, name)) {
			struct store_mem_buf *m = *pp;
			*pp = m->next;
			free(m->name);
			free(m->data);
			free(m);
			break;
		}
	pthread_mutex_unlock(&mem_lock);
}

static bool store_mem_matches(const char *spec)
{
	return !strncmp(spec, "mem:", 4);
}

/* a memory store is a private copy of the registered bytes, so writes never leak out */
static int store_mem_open(struct fmt_store *st, const char *spec, int flags)
{
	int ret = -ENOENT;
	pthread_mutex_lock(&mem_lock);
	for (struct store_mem_buf *m = mem_bufs; m; m = m->next)
		if (!strcmp(m->name, spec + 4)) {
			struct store_mem_buf *c = calloc(1, sizeof(*c));
			if (c && (c->data = malloc(m->len ? m->len : 1))) {
				memcpy(c->data, m->data, m->len);
				c->len = m->len;
				st->priv = c;
				st->size = m->len;
				ret = 0;
			} else {
				free(c);
				ret = -ENOMEM;
			}
			break;
		}
	pthread_mutex_unlock(&mem_lock);
	if (ret == -ENOENT)
		fmt_error("%s: Could not open: No such file or directory", spec);
	else if (ret)
		fmt_error("%s: out of memory", spec);
	return ret;
}

static int store_mem_pread(struct fmt_store *st, void *buf, size_t len, uint64_t off)
{
	struct store_mem_buf *m = st->priv;
	size_t n = off < m->len ? (m->len - off < len ? m->len - off : len) : 0;
	if (n)
		memcpy(buf, m->data + off, n);
	memset((char *)buf + n, 0, len - n);
	return 0;
}

static int store_mem_pwrite(struct fmt_store *st, const void *buf, size_t len, uint64_t off)
{
	struct store_mem_buf *m = st->priv;
	if (off + len > m->len) {
		if (off + len > (256u << 20)) {
			fmt_error("%s: memory store limited to 256 MiB", st->spec);
			return -EFBIG;
		}
		uint8_t *d = realloc(m->data, off + len);
		if (!d)
			return -ENOMEM;
		memset(d + m->len, 0, off + len - m->len);
		m->data = d;
		m->len = off + len;
	}
	memcpy(m->data + off, buf, len);
	return 0;
}

static int store_mem_truncate(struct fmt_store *st, uint64_t size)
{
	struct store_mem_buf *m = st->priv;
	if (size > (256u << 20)) {
		fmt_error("%s: memory store limited to 256 MiB", st->spec);
		return -EFBIG;
	}
	uint8_t *d = realloc(m->data, size ? size : 1);
	if (!d)
		return -ENOMEM;
	if (size > m->len)
		memset(d + m->len, 0, size - m->len);
	m->data = d;
	m->len = size;
	return 0;
}

static int store_mem_flush(struct fmt_store *st)
{
	return 0;
}

static void store_mem_close(struct fmt_store *st)
{
	struct store_mem_buf *m = st->priv;
	if (m) {
		free(m->data);
		free(m);
	}
}

static const struct fmt_store_ops store_mem_ops = {
	.name = "mem",
	.matches = store_mem_matches,
	.open = store_mem_open,
	.pread = store_mem_pread,
	.pwrite = store_mem_pwrite,
	.truncate = store_mem_truncate,
	.flush = store_mem_flush,
	.close = store_mem_close,
};
