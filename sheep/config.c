/* config.c: DIR/config (what cluster this store belongs to) and DIR/epoch/NNNNNNNN (membership
 * of every epoch). Both are replaced atomically. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal_proto.h"
#include "logger.h"
#include "util.h"
#include "alloc.h"
#include "cluster_view.h"
#include "config.h"

#define CONFIG_MAGIC 0x53464c44u   /* "SFLD" */
#define CONFIG_VERSION 1

struct config_file {
	uint32_t magic;
	uint16_t version;
	uint8_t nr_copies;
	uint8_t block_size_shift;
	uint64_t ctime;
	uint32_t last_epoch;
	uint8_t shutdown;
	uint8_t copy_policy;     /* 0 in files written before erasure coding */
	uint8_t __pad[2];
};

int config_load(struct sheep_config *cfg)
{
	char path[4200];
	void *buf;
	snprintf(path, sizeof(path), "%s/config", sys->dir);
	ssize_t n = read_whole_file(path, &buf, 4096);
	if (n < 0)
		return n;
	struct config_file f;
	if (n != sizeof(f)) {
		free(buf);
		return -EINVAL;
	}
	memcpy(&f, buf, sizeof(f));
	free(buf);
	if (f.magic != CONFIG_MAGIC || f.version != CONFIG_VERSION)
		return -EINVAL;
	cfg->ctime = f.ctime;
	cfg->nr_copies = f.nr_copies;
	cfg->copy_policy = f.copy_policy;
	cfg->block_size_shift = f.block_size_shift;
	cfg->version = f.version;
	cfg->last_epoch = f.last_epoch;
	cfg->shutdown = f.shutdown;
	return 0;
}

int config_save(const struct sheep_config *cfg)
{
	char path[4200];
	struct config_file f = {
		.magic = CONFIG_MAGIC, .version = CONFIG_VERSION, .nr_copies = cfg->nr_copies, .copy_policy = cfg->copy_policy,
		.block_size_shift = cfg->block_size_shift, .ctime = cfg->ctime,
		.last_epoch = cfg->last_epoch, .shutdown = cfg->shutdown,
	};
	snprintf(path, sizeof(path), "%s/config", sys->dir);
	return atomic_write_file(path, &f, sizeof(f));
}

int epoch_log_write(uint32_t epoch, const struct sd_node *nodes, int nr)
{
	char path[4200];
	struct epoch_log *log = xzalloc(sizeof(*log));
	snprintf(path, sizeof(path), "%s/epoch", sys->dir);
	mkdir_p(path, 0755);
	snprintf(path, sizeof(path), "%s/epoch/%08u", sys->dir, epoch);
	log->ctime = sys->ctime;
	log->time = time(NULL);
	log->epoch = epoch;
	log->nr_nodes = nr;
	memcpy(log->nodes, nodes, nr * sizeof(*nodes));
	int ret = atomic_write_file(path, log, EPOCH_LOG_HDR_SIZE + nr * sizeof(*nodes));
	free(log);
	if (ret < 0)
		sd_err("cannot write epoch log %u: %s", epoch, strerror(-ret));
	return ret;
}

int epoch_log_read(uint32_t epoch, struct epoch_log *log)
{
	char path[4200];
	void *buf;
	snprintf(path, sizeof(path), "%s/epoch/%08u", sys->dir, epoch);
	ssize_t n = read_whole_file(path, &buf, sizeof(*log));
	if (n < 0)
		return n;
	if ((size_t)n < EPOCH_LOG_HDR_SIZE) {
		free(buf);
		return -EINVAL;
	}
	memset(log, 0, EPOCH_LOG_HDR_SIZE);
	memcpy(log, buf, n);
	free(buf);
	if (log->nr_nodes > SD_MAX_NODES || EPOCH_LOG_HDR_SIZE + log->nr_nodes * sizeof(struct sd_node) != (size_t)n)
		return -EINVAL;
	return 0;
}

/* DIR/epoch, its path in path; NULL when there is none */
static DIR *open_epoch_dir(char *path, size_t len)
{
	snprintf(path, len, "%s/epoch", sys->dir);
	return opendir(path);
}

uint32_t epoch_log_latest(void)
{
	char path[4200];
	uint32_t latest = 0;
	DIR *d = open_epoch_dir(path, sizeof(path));
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		unsigned long e = strtoul(de->d_name, &end, 10);
		if (strlen(de->d_name) == 8 && !*end && e > latest)
			latest = e;
	}
	closedir(d);
	return latest;
}

int epoch_log_remove_all(void)
{
	char path[4200];
	DIR *d = open_epoch_dir(path, sizeof(path));
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[4500];
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		unlink(p);
	}
	closedir(d);
	return 0;
}
