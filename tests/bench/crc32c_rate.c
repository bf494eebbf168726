/* crc32c_rate.c: how fast this machine's crc32c (lib/crc32c.c, as the store calls it: one 4 KiB
 * block at a time) runs: prints nanoseconds per 4 KiB block, the median of 5 rounds. Used by
 * bench/checksum to put the checksum's cost beside the I/O time. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "crc32c.h"
#include "bench_time.h"

#define BLOCK  4096
#define BLOCKS 1024           /* a 4 MiB buffer */
#define ROUNDS 5
#define REPEAT 64             /* passes over the buffer per round */

int main(void)
{
	unsigned char *buf = malloc((size_t)BLOCK * BLOCKS);
	double ns[ROUNDS];
	volatile uint32_t sink = 0;
	if (!buf) {
		fprintf(stderr, "crc32c_rate: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < (size_t)BLOCK * BLOCKS; i++)
		buf[i] = (unsigned char)(i * 2654435761u >> 24);
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_s();
		for (int k = 0; k < REPEAT; k++)
			for (int b = 0; b < BLOCKS; b++)
				sink ^= crc32c(0, buf + (size_t)b * BLOCK, BLOCK);
		ns[r] = (now_s() - t0) * 1e9 / ((double)REPEAT * BLOCKS);
	}
	qsort(ns, ROUNDS, sizeof(ns[0]), cmp_double);
	printf("%.1f\n", ns[ROUNDS / 2]);
	free(buf);
	return sink == 0x12345678 ? 2 : 0;   /* keeps the loop */
}
