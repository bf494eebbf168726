/* store_sheepdog.c: cluster VDIs as byte stores: sheepdog:VDI[:SNAP], sheepdog:HOST:PORT:VDI[:SNAP]
 * and sheepdog://HOST[:PORT]/VDI[#SNAP]. I/O goes through lib/sd_client (thread-safe, pooled
 * connections); block status is the VDI's object index. Creating makes a new VDI (cluster default
 * copies); collie's vdi import creates the VDI itself and opens it with -n semantics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "sd_client.h"
#include "sheepdog_proto.h"

#define SHEEPDOG_DEFAULT_HOST "127.0.0.1"
#define SHEEPDOG_DEFAULT_PORT 7000

struct store_sheepdog_name {
	char host[256];
	int port;
	char vdi[SD_MAX_VDI_LEN];
	char snap[SD_MAX_VDI_TAG_LEN];
};

static bool store_sheepdog_matches(const char *spec)
{
	return !strncmp(spec, "sheepdog:", 9);
}

static bool store_sheepdog_digits(const char *s, size_t n)
{
	if (!n || n > 5)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int store_sheepdog_copy(char *dst, size_t cap, const char *src, size_t n, const char *spec,
			       const char *what)
{
	if (n >= cap || (!n && strcmp(what, "snapshot"))) {
		fmt_error("%s: invalid %s name (%zu bytes)", spec, what, n);
		return -EINVAL;
	}
	memcpy(dst, src, n);
	dst[n] = 0;
	return 0;
}

static int store_sheepdog_parse(const char *spec, struct store_sheepdog_name *n)
{
	const char *p = spec + 9, *vdi, *end;
	int ret;

	memset(n, 0, sizeof(*n));
	strcpy(n->host, SHEEPDOG_DEFAULT_HOST);
	n->port = SHEEPDOG_DEFAULT_PORT;
	if (!strncmp(p, "//", 2)) {   /* sheepdog://HOST[:PORT]/VDI[#SNAP] */
		const char *h = p + 2, *slash = strchr(h, '/'), *colon;
		if (!slash) {
			fmt_error("%s: expected sheepdog://HOST:PORT/VDI", spec);
			return -EINVAL;
		}
		colon = memchr(h, ':', slash - h);
		const char *hend = colon ? colon : slash;
		if (hend > h && (ret = store_sheepdog_copy(n->host, sizeof(n->host), h, hend - h, spec, "host")))
			return ret;
		if (colon) {
			if (!store_sheepdog_digits(colon + 1, slash - colon - 1) || atoi(colon + 1) < 1 ||
			    atoi(colon + 1) > 65535) {
				fmt_error("%s: invalid port", spec);
				return -EINVAL;
			}
			n->port = atoi(colon + 1);
		}
		vdi = slash + 1;
		end = strchr(vdi, '#');
		if (end && (ret = store_sheepdog_copy(n->snap, sizeof(n->snap), end + 1, strlen(end + 1), spec,
						      "snapshot")))
			return ret;
		return store_sheepdog_copy(n->vdi, sizeof(n->vdi), vdi, end ? (size_t)(end - vdi) : strlen(vdi), spec,
					   "VDI");
	}
	/* sheepdog:HOST:PORT:VDI[:SNAP] when the second field is a port, else sheepdog:VDI[:SNAP] */
	const char *c1 = strchr(p, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (c1 && c2 && store_sheepdog_digits(c1 + 1, c2 - c1 - 1)) {
		if ((ret = store_sheepdog_copy(n->host, sizeof(n->host), p, c1 - p, spec, "host")))
			return ret;
		n->port = atoi(c1 + 1);
		if (n->port < 1 || n->port > 65535) {
			fmt_error("%s: invalid port", spec);
			return -EINVAL;
		}
		p = c2 + 1;
	}
	end = strchr(p, ':');
	if (end && (ret = store_sheepdog_copy(n->snap, sizeof(n->snap), end + 1, strlen(end + 1), spec, "snapshot")))
		return ret;
	return store_sheepdog_copy(n->vdi, sizeof(n->vdi), p, end ? (size_t)(end - p) : strlen(p), spec, "VDI");
}

static int store_sheepdog_result(const char *spec, const char *what, int res)
{
	if (res < 0) {
		fmt_error("%s: %s: cannot reach the sheep: %s", spec, what, strerror(-res));
		return res;
	}
	fmt_error("%s: %s: %s", spec, what, sd_strerror(res));
	return res == SD_RES_NO_VDI || res == SD_RES_NO_TAG ? -ENOENT : -EIO;
}

static int store_sheepdog_open(struct fmt_store *st, const char *spec, int flags)
{
	struct store_sheepdog_name n;
	struct sd_vdi *vdi;
	int ret = store_sheepdog_parse(spec, &n);

	if (ret)
		return ret;
	ret = sd_vdi_open(n.host, n.port, n.vdi, n.snap[0] ? n.snap : NULL,
			  (flags & (FMT_STORE_RDWR | FMT_STORE_CREATE)) != 0, &vdi);
	if (ret)
		return store_sheepdog_result(spec, "cannot open the VDI", ret);
	st->priv = vdi;
	st->size = sd_vdi_size(vdi);
	return 0;
}

static int store_sheepdog_create(struct fmt_store *st, const char *spec, uint64_t size)
{
	struct store_sheepdog_name n;
	uint32_t vid;
	int ret = store_sheepdog_parse(spec, &n);

	if (ret)
		return ret;
	if (n.snap[0]) {
		fmt_error("%s: cannot create a snapshot", spec);
		return -EINVAL;
	}
	if (!size || size > SD_MAX_VDI_SIZE) {
		fmt_error("%s: a VDI holds 1 byte to 4 TiB, not %llu bytes", spec, (unsigned long long)size);
		return -EINVAL;
	}
	ret = sd_vdi_create(n.host, n.port, n.vdi, size, 0, 0, false, &vid);
	if (ret)
		return store_sheepdog_result(spec, "cannot create the VDI", ret);
	return store_sheepdog_open(st, spec, FMT_STORE_RDWR);
}

static int store_sheepdog_pread(struct fmt_store *st, void *buf, size_t len, uint64_t off)
{
	int ret = sd_vdi_pread(st->priv, buf, len, off);
	return ret ? store_sheepdog_result(st->spec, "read failed", ret) : 0;
}

static int store_sheepdog_pwrite(struct fmt_store *st, const void *buf, size_t len, uint64_t off)
{
	if (off > st->size || len > st->size - off) {
		fmt_error("%s: write past the end of the VDI (offset %llu)", st->spec, (unsigned long long)off);
		return -ENOSPC;
	}
	int ret = sd_vdi_pwrite(st->priv, buf, len, off);
	return ret ? store_sheepdog_result(st->spec, "write failed", ret) : 0;
}

static int store_sheepdog_truncate(struct fmt_store *st, uint64_t size)
{
	if (size > st->size) {
		fmt_error("%s: the VDI is smaller than %llu bytes", st->spec, (unsigned long long)size);
		return -ENOSPC;
	}
	return 0;
}

static int store_sheepdog_block_status(struct fmt_store *st, uint64_t off, uint64_t len, bool *data, uint64_t *run)
{
	int ret = sd_vdi_block_status(st->priv, off, len, data, run);
	return ret ? store_sheepdog_result(st->spec, "block status failed", ret) : 0;
}

static int store_sheepdog_flush(struct fmt_store *st)
{
	int ret = sd_vdi_flush(st->priv);
	return ret ? store_sheepdog_result(st->spec, "flush failed", ret) : 0;
}

static void store_sheepdog_close(struct fmt_store *st)
{
	if (st->priv)
		sd_vdi_close(st->priv);
}

const struct fmt_store_ops fmt_store_sheepdog_ops = {
	.name = "sheepdog",
	.matches = store_sheepdog_matches,
	.open = store_sheepdog_open,
	.create = store_sheepdog_create,
	.pread = store_sheepdog_pread,
	.pwrite = store_sheepdog_pwrite,
	.truncate = store_sheepdog_truncate,
	.block_status = store_sheepdog_block_status,
	.flush = store_sheepdog_flush,
	.close = store_sheepdog_close,
};
