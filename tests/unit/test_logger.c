/* test_logger.c: the per-call-site log rate limit. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logger.h"

static int count_lines(const char *path, const char *needle)
{
	FILE *fp = fopen(path, "r");
	char line[4096];
	int n = 0;
	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (strstr(line, needle))
			n++;
	fclose(fp);
	return n;
}

static void flood(int n)
{
	for (int i = 0; i < n; i++)
		sd_warn_rl("flood message %d", i);
}

static void test_ratelimit(void)
{
	char path[] = "/tmp/sheepfold-log-XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	int level = log_get_level();
	CU_ASSERT_EQUAL_FATAL(log_open(path, LOG_INFO_, "test"), 0);
	log_set_ratelimit(10, 1);
	flood(1000);
	CU_ASSERT_EQUAL(count_lines(path, "flood message"), 10);
	CU_ASSERT_EQUAL(count_lines(path, "more like this"), 0);
	usleep(1100 * 1000);
	flood(5);
	CU_ASSERT_EQUAL(count_lines(path, "990 more like this in the last"), 1);
	CU_ASSERT_EQUAL(count_lines(path, "flood message"), 15);
	/* a site that went quiet gets its count from the flush */
	flood(30);
	CU_ASSERT_EQUAL(count_lines(path, "flood message"), 20);
	log_ratelimit_flush();
	CU_ASSERT_EQUAL(count_lines(path, "more like this"), 1);   /* its window is still open */
	usleep(1100 * 1000);
	log_ratelimit_flush();
	CU_ASSERT_EQUAL(count_lines(path, "25 more like this in the last"), 1);
	log_ratelimit_flush();
	CU_ASSERT_EQUAL(count_lines(path, "more like this"), 2);
	/* burst 0: no limit */
	log_set_ratelimit(0, 1);
	flood(50);
	CU_ASSERT_EQUAL(count_lines(path, "flood message"), 70);
	log_set_ratelimit(LOG_RATELIMIT_BURST, LOG_RATELIMIT_WINDOW);
	log_close();
	log_open(NULL, level, NULL);
	unlink(path);
}

int logger_add_suites(void)
{
	CU_pSuite s = CU_add_suite("logger", NULL, NULL);
	if (!s || !CU_add_test(s, "per-call-site rate limit", test_ratelimit))
		return -1;
	return 0;
}
