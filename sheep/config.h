/* config.h: the store's config file (which cluster it belongs to) and the epoch logs (the
 * membership of every epoch), kept by config.c. */
#ifndef SHEEP_CONFIG_H
#define SHEEP_CONFIG_H

#include <stdint.h>

#include "internal_proto.h"

struct sheep_config {
	uint64_t ctime;
	uint8_t nr_copies;
	uint8_t copy_policy;
	uint8_t block_size_shift;
	uint16_t version;
	uint32_t last_epoch;
	uint32_t shutdown;
};
int config_load(struct sheep_config *cfg);    /* -ENOENT when unformatted */
int config_save(const struct sheep_config *cfg);
int epoch_log_write(uint32_t epoch, const struct sd_node *nodes, int nr);
int epoch_log_read(uint32_t epoch, struct epoch_log *log);   /* 0 or -errno */
uint32_t epoch_log_latest(void);
int epoch_log_remove_all(void);

#endif
