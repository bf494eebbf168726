/* drivers.c: the image driver table. Each format is one file that defines one struct fmt_driver;
 * a driver file that is not linked in (weak reference is NULL) simply drops out of the table. */
#include <string.h>

#include "formats.h"

#define DRIVER(n) extern const struct fmt_driver n __attribute__((weak))
DRIVER(fmt_qcow2_driver);
DRIVER(fmt_qcow_driver);
DRIVER(fmt_vmdk_driver);
DRIVER(fmt_vdi_driver);
DRIVER(fmt_vpc_driver);
DRIVER(fmt_qed_driver);
DRIVER(fmt_cow_driver);
DRIVER(fmt_dmg_driver);
DRIVER(fmt_parallels_driver);
DRIVER(fmt_cloop_driver);
DRIVER(fmt_bochs_driver);
DRIVER(fmt_luks_driver);
DRIVER(fmt_raw_driver);

/* probe order does not matter (highest score wins); raw stays last as the fallback */
static const struct fmt_driver *const all_drivers[] = {
	&fmt_qcow2_driver, &fmt_qcow_driver, &fmt_vmdk_driver, &fmt_vdi_driver, &fmt_vpc_driver,
	&fmt_qed_driver, &fmt_cow_driver, &fmt_dmg_driver, &fmt_parallels_driver, &fmt_cloop_driver,
	&fmt_bochs_driver, &fmt_luks_driver, &fmt_raw_driver,
};

#define NR_DRIVERS (sizeof(all_drivers) / sizeof(all_drivers[0]))
static const struct fmt_driver *linked[NR_DRIVERS + 1];

/* the table without the drivers that are not linked in; NULL-terminated */
const struct fmt_driver *const *fmt_driver_table(void)
{
	if (!linked[0]) {
		size_t n = 0;
		for (size_t i = 0; i < NR_DRIVERS; i++)
			if (all_drivers[i])
				linked[n++] = all_drivers[i];
		linked[n] = NULL;
	}
	return linked;
}

const struct fmt_driver *fmt_driver_find(const char *name)
{
	for (const struct fmt_driver *const *d = fmt_driver_table(); *d; d++)
		if (!strcmp((*d)->name, name))
			return *d;
	return NULL;
}
