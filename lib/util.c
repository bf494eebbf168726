/* util.c: whole-buffer I/O, size parsing and printing, clocks, atomic file replacement. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libgen.h>

#include "util.h"

ssize_t xread(int fd, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				errno = ETIMEDOUT;   /* SO_RCVTIMEO expired */
			return -1;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

ssize_t xwrite(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		done += n;
	}
	return done;
}

ssize_t xpread(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

ssize_t xpwrite(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += n;
	}
	return done;
}

int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno == ERANGE || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	double mult = 1;
	switch (*end) {
	case 'k': case 'K': mult = 1024.0; end++; break;
	case 'm': case 'M': mult = 1024.0 * 1024; end++; break;
	case 'g': case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
	case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
	case 'p': case 'P': mult = 1024.0 * 1024 * 1024 * 1024 * 1024; end++; break;
	case 'b': case 'B': end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	v *= mult;
	if (v >= 18446744073709551615.0)
		return -ERANGE;
	if (v != floor(v))
		return -EINVAL;
	*out = (uint64_t)v;
	return 0;
}

const char *size_to_str(uint64_t size, char *buf, size_t len)
{
	static const char *units[] = { "B", "KB", "MB", "GB", "TB", "PB", "EB" };
	double v = size;
	unsigned u = 0;
	while (v >= 1024 && u < 6) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", size);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* The first 16 bytes decide most data blocks at once; the rest is one pass of libc's
 * vectorised memcmp of the buffer against itself shifted by a byte. */
bool is_all_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (len >= 16) {
		uint64_t head[2];
		memcpy(head, p, sizeof(head));
		if (head[0] | head[1])
			return false;
	}
	return len == 0 || (p[0] == 0 && !memcmp(p, p + 1, len - 1));
}

static int fsync_dir_of(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	int ret = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

int atomic_write_file(const char *path, const void *buf, size_t len)
{
	char tmp[PATH_MAX];
	int ret, fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	if (xwrite(fd, buf, len) != (ssize_t)len || fsync(fd) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto out_close;
	}
	close(fd);
	return fsync_dir_of(path);
out_close:
	close(fd);
	unlink(tmp);
	return ret;
}

ssize_t read_whole_file(const char *path, void **out, size_t max)
{
	struct stat st;
	ssize_t ret;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if ((size_t)st.st_size > max) {
		ret = -EFBIG;
		goto out;
	}
	void *buf = malloc(st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	ret = xread(fd, buf, st.st_size);
	if (ret < 0) {
		ret = -errno;
		free(buf);
		goto out;
	}
	((char *)buf)[ret] = 0;
	*out = buf;
out:
	close(fd);
	return ret;
}

int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, mode) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}
