/* drivers.c: the table of cluster drivers, looked up by the name before the ':' of -c. Adding a
 * driver is one file that fills a struct cluster_driver, and one row here. */
#include <stdio.h>
#include <string.h>

#include "../cluster.h"

static const struct cluster_driver *const cluster_drivers[] = {
	&cdrv_corosync,
	&cdrv_local,
	&cdrv_zookeeper,
};

#define NR_CLUSTER_DRIVERS (sizeof(cluster_drivers) / sizeof(cluster_drivers[0]))

const struct cluster_driver *cluster_driver_find(const char *name)
{
	for (size_t i = 0; i < NR_CLUSTER_DRIVERS; i++)
		if (!strcmp(cluster_drivers[i]->name, name))
			return cluster_drivers[i];
	return NULL;
}

/* "corosync, local or zookeeper": the names for an error message */
void cluster_driver_names(char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NR_CLUSTER_DRIVERS && used < len; i++) {
		const char *sep = !i ? "" : i + 1 == NR_CLUSTER_DRIVERS ? " or " : ", ";
		int n = snprintf(buf + used, len - used, "%s%s", sep, cluster_drivers[i]->name);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}
