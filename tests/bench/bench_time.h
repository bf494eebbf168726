/* bench_time.h: the clock and the median sort the micro-benchmarks of tests/bench share. */
#ifndef BENCH_TIME_H
#define BENCH_TIME_H

#include <time.h>

static inline double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* qsort comparison of doubles, for medians */
static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#endif
