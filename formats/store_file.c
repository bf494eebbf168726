/* store_file.c: local files and block devices ("file" and "host_device" stores): positional I/O,
 * holes found with SEEK_DATA/SEEK_HOLE, punched with fallocate (BLKZEROOUT on a device). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats.h"

extern const struct fmt_store_ops fmt_store_file_ops;
static const struct fmt_store_ops store_host_device_ops;

struct store_file {
	int fd;
	bool is_dev;
	bool no_seek_data;   /* the filesystem does not answer SEEK_DATA: everything is data */
};

static bool store_file_matches(const char *spec)
{
	return true;
}

static const char *store_file_path(const char *spec)
{
	return !strncmp(spec, "file:", 5) ? spec + 5 : spec;
}

static int store_file_setup(struct fmt_store *st, int fd)
{
	struct store_file *f;
	struct stat sb;

	if (fstat(fd, &sb) < 0) {
		fmt_error("%s: cannot stat: %s", st->spec, strerror(errno));
		return -errno;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = fd;
	if (S_ISBLK(sb.st_mode)) {
		uint64_t sz = 0;
		if (ioctl(fd, BLKGETSIZE64, &sz) < 0) {
			int e = errno;
			fmt_error("%s: cannot read the device size: %s", st->spec, strerror(e));
			free(f);
			return -e;
		}
		f->is_dev = true;
		st->size = sz;
		st->ops = &store_host_device_ops;
	} else if (S_ISREG(sb.st_mode)) {
		st->size = sb.st_size;
	} else if (S_ISDIR(sb.st_mode)) {
		fmt_error("%s: is a directory", st->spec);
		free(f);
		return -EISDIR;
	} else {
		fmt_error("%s: not a regular file or block device", st->spec);
		free(f);
		return -EINVAL;
	}
	st->priv = f;
	return 0;
}

static int store_file_open(struct fmt_store *st, const char *spec, int flags)
{
	int oflags = (flags & (FMT_STORE_RDWR | FMT_STORE_CREATE)) ? O_RDWR : O_RDONLY;
	int fd, ret;

	if (flags & FMT_STORE_CREATE)
		oflags |= O_CREAT;
	fd = open(store_file_path(spec), oflags | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		fmt_error("%s: Could not open: %s", spec, strerror(errno));
		return ret;
	}
	ret = store_file_setup(st, fd);
	if (ret)
		close(fd);
	return ret;
}

/* a regular file is created (or emptied) at size; a device is used as it is if it is big enough */
static int store_file_create(struct fmt_store *st, const char *spec, uint64_t size)
{
	const char *path = store_file_path(spec);
	struct stat sb;
	int fd, ret;

	if (!stat(path, &sb) && S_ISBLK(sb.st_mode)) {
		ret = store_file_open(st, spec, FMT_STORE_RDWR);
		if (ret)
			return ret;
		if (st->size < size) {
			fmt_error("%s: the device holds %llu bytes, %llu are needed", spec,
				  (unsigned long long)st->size, (unsigned long long)size);
			close(((struct store_file *)st->priv)->fd);
			free(st->priv);
			return -ENOSPC;
		}
		return 0;
	}
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		fmt_error("%s: Could not create: %s", spec, strerror(errno));
		return ret;
	}
	if (size && ftruncate(fd, size) < 0) {
		ret = -errno;
		fmt_error("%s: Could not resize to %llu bytes: %s", spec, (unsigned long long)size, strerror(errno));
		close(fd);
		return ret;
	}
	ret = store_file_setup(st, fd);
	if (ret)
		close(fd);
	return ret;
}

static int store_file_pread(struct fmt_store *st, void *buf, size_t len, uint64_t off)
{
	struct store_file *f = st->priv;
	char *p = buf;

	while (len) {
		ssize_t n = pread(f->fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			fmt_error("%s: read error at offset %llu: %s", st->spec, (unsigned long long)off, strerror(e));
			return -e;
		}
		if (n == 0) {   /* shrunk underneath us: the rest reads as zeros */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int store_file_pwrite(struct fmt_store *st, const void *buf, size_t len, uint64_t off)
{
	struct store_file *f = st->priv;
	const char *p = buf;

	if (f->is_dev && (off > st->size || len > st->size - off)) {
		fmt_error("%s: write past the end of the device (offset %llu)", st->spec, (unsigned long long)off);
		return -ENOSPC;
	}
	while (len) {
		ssize_t n = pwrite(f->fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			fmt_error("%s: write error at offset %llu: %s", st->spec, (unsigned long long)off, strerror(e));
			return -e;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int store_file_truncate(struct fmt_store *st, uint64_t size)
{
	struct store_file *f = st->priv;
	if (f->is_dev) {
		if (size > st->size) {
			fmt_error("%s: the device is smaller than %llu bytes", st->spec, (unsigned long long)size);
			return -ENOSPC;
		}
		return 0;
	}
	if (ftruncate(f->fd, size) < 0) {
		int e = errno;
		fmt_error("%s: cannot resize to %llu bytes: %s", st->spec, (unsigned long long)size, strerror(e));
		return -e;
	}
	return 0;
}

/* holes via SEEK_DATA/SEEK_HOLE; a filesystem without them (or a device) is all data */
static int store_file_block_status(struct fmt_store *st, uint64_t off, uint64_t len, bool *data, uint64_t *run)
{
	struct store_file *f = st->priv;
	off_t d, h;

	*data = true;
	*run = len;
	if (f->is_dev || f->no_seek_data)
		return 0;
	d = lseek(f->fd, off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO) {   /* no data from off to the end */
			*data = false;
			return 0;
		}
		f->no_seek_data = true;
		return 0;
	}
	if ((uint64_t)d > off) {
		*data = false;
		*run = (uint64_t)d - off < len ? (uint64_t)d - off : len;
		return 0;
	}
	h = lseek(f->fd, off, SEEK_HOLE);
	if (h < 0 || (uint64_t)h <= off) {
		f->no_seek_data = true;
		return 0;
	}
	*run = (uint64_t)h - off < len ? (uint64_t)h - off : len;
	return 0;
}

static int store_file_discard(struct fmt_store *st, uint64_t off, uint64_t len)
{
	struct store_file *f = st->priv;
	if (f->is_dev) {
		uint64_t r[2] = { off, len };
		if (ioctl(f->fd, BLKZEROOUT, r) < 0)
			return -errno;
		return 0;
	}
	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) < 0)
		return -errno;
	return 0;
}

static bool store_file_unsafe;

void fmt_store_set_unsafe(bool unsafe)
{
	__atomic_store_n(&store_file_unsafe, unsafe, __ATOMIC_RELAXED);
}

static int store_file_flush(struct fmt_store *st)
{
	struct store_file *f = st->priv;
	if (__atomic_load_n(&store_file_unsafe, __ATOMIC_RELAXED))
		return 0;   /* cache=unsafe: the page cache writes it back in its own time */
	if (fdatasync(f->fd) < 0) {
		int e = errno;
		fmt_error("%s: flush failed: %s", st->spec, strerror(e));
		return -e;
	}
	return 0;
}

static void store_file_close(struct fmt_store *st)
{
	struct store_file *f = st->priv;
	if (f) {
		close(f->fd);
		free(f);
	}
}

/* files and block devices share every operation; only the name qemu reports differs */
#define STORE_FILE_OPERATIONS                          \
	.matches = store_file_matches,                 \
	.open = store_file_open,                       \
	.create = store_file_create,                   \
	.pread = store_file_pread,                     \
	.pwrite = store_file_pwrite,                   \
	.truncate = store_file_truncate,               \
	.block_status = store_file_block_status,       \
	.discard = store_file_discard,                 \
	.flush = store_file_flush,                     \
	.close = store_file_close

const struct fmt_store_ops fmt_store_file_ops = {
	.name = "file",
	STORE_FILE_OPERATIONS,
};

static const struct fmt_store_ops store_host_device_ops = {
	.name = "host_device",
	STORE_FILE_OPERATIONS,
};
