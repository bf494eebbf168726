/* main.c: the CUnit runner for every unit suite. Each area registers its suites from its own
 * file; an area without unit tests links without one (the references are weak). */
#include <CUnit/Basic.h>
#include <stdio.h>

int lib_add_suites(void);
int formats_add_suites(void) __attribute__((weak));
int recovery_add_suites(void) __attribute__((weak));
int lifecycle_add_suites(void) __attribute__((weak));
int nbd_add_suites(void) __attribute__((weak));
int ring_add_suites(void) __attribute__((weak));
int auth_add_suites(void) __attribute__((weak));
int logger_add_suites(void) __attribute__((weak));
int checksum_add_suites(void) __attribute__((weak));
int ec_add_suites(void) __attribute__((weak));
int fdcache_add_suites(void) __attribute__((weak));

static int (*const suites[])(void) = {
	lib_add_suites, formats_add_suites, recovery_add_suites, lifecycle_add_suites,
	nbd_add_suites, ring_add_suites, auth_add_suites, logger_add_suites, checksum_add_suites,
	ec_add_suites, fdcache_add_suites,
};

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		if (suites[i] && suites[i]()) {
			fprintf(stderr, "cannot register the unit suites\n");
			CU_cleanup_registry();
			return 2;
		}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	unsigned ran = CU_get_number_of_tests_run(), tests_failed = CU_get_number_of_tests_failed();
	CU_cleanup_registry();   /* resets the counts: read them first */
	printf("unit: %u passed, %u failed\n", ran - tests_failed, tests_failed);
	return failed ? 1 : 0;
}
