/* store_health.h: what this node does about the health of its store (store_health.c): it leaves
 * the cluster when the disk keeps failing, and warns when the store runs short of space. */
#ifndef SHEEP_STORE_HEALTH_H
#define SHEEP_STORE_HEALTH_H

#include <stdint.h>

#define STORE_SPACE_WARN_DEFAULT 90   /* percent of the store in use */

/* on the main thread, once the store is open; warn_pct 0: no space warnings. 0 or -errno */
int store_health_init(uint32_t warn_pct);
uint32_t store_health_warn_pct(void);

#endif
