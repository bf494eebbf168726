/* ec_encode_bench.c: ISA-L encode throughput of lib/ec.c on one core: data bytes encoded per
 * second for 2:1, 4:2, 8:3 and 16:4 over strips of 1 MiB (a 4 MiB object at 4:2), median of 7. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ec.h"
#include "bench_time.h"

#define STRIP (1u << 20)
#define ROUNDS 40

int main(void)
{
	static const int policies[][2] = { { 2, 1 }, { 4, 2 }, { 8, 3 }, { 16, 4 } };
	uint8_t *buf = malloc((size_t)EC_MAX_STRIPS * STRIP);
	if (!buf) {
		fprintf(stderr, "ec-encode-bench: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < (size_t)EC_MAX_STRIPS * STRIP; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	for (size_t k = 0; k < sizeof(policies) / sizeof(policies[0]); k++) {
		int d = policies[k][0], p = policies[k][1];
		const struct ec_codec *c = ec_codec_get(ec_policy_make(d, p));
		uint8_t *data[EC_MAX_DATA], *parity[EC_MAX_PARITY];
		double rates[7];
		for (int i = 0; i < d; i++)
			data[i] = buf + (size_t)i * STRIP;
		for (int i = 0; i < p; i++)
			parity[i] = buf + (size_t)(d + i) * STRIP;
		for (int r = 0; r < 7; r++) {
			double t0 = now_s();
			for (int n = 0; n < ROUNDS; n++)
				ec_encode(c, STRIP, data, parity);
			rates[r] = (double)d * STRIP * ROUNDS / (now_s() - t0) / 1e9;
		}
		qsort(rates, 7, sizeof(rates[0]), cmp_double);
		printf("ISA-L encode %2d:%-2d one core: %6.2f GB/s of data\n", d, p, rates[3]);
	}
	ec_codecs_free();
	free(buf);
	return 0;
}
