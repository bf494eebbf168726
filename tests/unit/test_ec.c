/* test_ec.c: lib/ec.c against a slow GF(2^8) Reed-Solomon written here: for every D:P policy the
 * parity equals the reference's, and every erasure pattern of up to P strips decodes back (all
 * patterns where there are at most 40000, else 3000 seeded random ones); policy parsing. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "ec.h"

#define LEN 67          /* odd on purpose: the SIMD kernels' tail handling */
#define EXHAUSTIVE_MAX 40000
#define SAMPLED 3000

/* GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), bit by bit */
static uint8_t ref_mul(uint8_t a, uint8_t b)
{
	uint8_t r = 0;
	while (b) {
		if (b & 1)
			r ^= a;
		a = (uint8_t)((a << 1) ^ ((a & 0x80) ? 0x1d : 0));
		b >>= 1;
	}
	return r;
}

static uint8_t ref_inv(uint8_t a)
{
	for (int x = 1; x < 256; x++)
		if (ref_mul(a, (uint8_t)x) == 1)
			return (uint8_t)x;
	return 0;
}

/* parity row i (0-based among parity) column j of the Cauchy matrix: 1 / ((d + i) ^ j) */
static void ref_encode(int d, int p, uint8_t data[][LEN], uint8_t parity[][LEN])
{
	for (int i = 0; i < p; i++)
		for (int k = 0; k < LEN; k++) {
			uint8_t s = 0;
			for (int j = 0; j < d; j++)
				s ^= ref_mul(ref_inv((uint8_t)((d + i) ^ j)), data[j][k]);
			parity[i][k] = s;
		}
}

static unsigned long long binom(int n, int k)
{
	unsigned long long r = 1;
	for (int i = 1; i <= k; i++)
		r = r * (unsigned long long)(n - k + i) / (unsigned long long)i;
	return r;
}

static unsigned long long patterns_up_to(int n, int p)
{
	unsigned long long t = 0;
	for (int k = 1; k <= p; k++)
		t += binom(n, k);
	return t;
}

/* decode the strips missing in lost[] (n flags) from the first d present ones; compare */
static int check_pattern(const struct ec_codec *c, int d, int n, const bool *lost, uint8_t strips[][LEN])
{
	int have_idx[EC_MAX_DATA], want[EC_MAX_STRIPS], nr_have = 0, nr_want = 0;
	uint8_t *have[EC_MAX_DATA], *out[EC_MAX_STRIPS];
	static uint8_t rebuilt[EC_MAX_STRIPS][LEN];
	for (int i = 0; i < n; i++) {
		if (lost[i]) {
			want[nr_want] = i;
			out[nr_want] = rebuilt[nr_want];
			nr_want++;
		} else if (nr_have < d) {
			have_idx[nr_have] = i;
			have[nr_have++] = strips[i];
		}
	}
	if (ec_decode(c, LEN, have_idx, have, nr_want, want, out) < 0)
		return -1;
	for (int k = 0; k < nr_want; k++)
		if (memcmp(rebuilt[k], strips[want[k]], LEN))
			return -1;
	return 0;
}

static void test_every_policy(void)
{
	static const int ds[] = { 2, 4, 8, 16 };
	unsigned seed = 15;
	for (size_t di = 0; di < 4; di++)
		for (int p = 1; p <= EC_MAX_PARITY; p++) {
			int d = ds[di], n = d + p, failures = 0;
			const struct ec_codec *c = ec_codec_get(ec_policy_make(d, p));
			CU_ASSERT_PTR_NOT_NULL_FATAL(c);
			static uint8_t strips[EC_MAX_STRIPS][LEN], ref[EC_MAX_PARITY][LEN];
			uint8_t *data[EC_MAX_DATA], *parity[EC_MAX_PARITY];
			for (int i = 0; i < n; i++)
				for (int k = 0; k < LEN; k++)
					strips[i][k] = (uint8_t)rand_r(&seed);
			for (int i = 0; i < d; i++)
				data[i] = strips[i];
			for (int i = 0; i < p; i++)
				parity[i] = strips[d + i];
			ec_encode(c, LEN, data, parity);
			ref_encode(d, p, strips, ref);
			CU_ASSERT(!memcmp(ref, strips[d], (size_t)p * LEN));

			bool lost[EC_MAX_STRIPS];
			if (patterns_up_to(n, p) <= EXHAUSTIVE_MAX) {
				/* every subset of up to p lost strips, as bit masks over n strips */
				for (unsigned long mask = 1; mask < (1ul << n); mask++) {
					if (__builtin_popcountl(mask) > p)
						continue;
					for (int i = 0; i < n; i++)
						lost[i] = mask >> i & 1;
					failures += check_pattern(c, d, n, lost, strips) < 0;
				}
			} else {
				for (int t = 0; t < SAMPLED; t++) {
					int k = 1 + rand_r(&seed) % p;
					memset(lost, 0, sizeof(lost));
					for (int got = 0; got < k;) {
						int i = rand_r(&seed) % n;
						got += !lost[i];
						lost[i] = true;
					}
					failures += check_pattern(c, d, n, lost, strips) < 0;
				}
			}
			if (failures)
				fprintf(stderr, "ec %d:%d: %d erasure patterns fail\n", d, p, failures);
			CU_ASSERT_EQUAL(failures, 0);
		}
	ec_codecs_free();
}

static void test_decode_bad_input(void)
{
	const struct ec_codec *c = ec_codec_get(ec_policy_make(2, 1));
	uint8_t a[8] = { 0 }, b[8] = { 0 }, o[8];
	uint8_t *have[2] = { a, b }, *out[1] = { o };
	int twice[2] = { 1, 1 }, range[2] = { 0, 3 }, want = 0;
	CU_ASSERT_EQUAL(ec_decode(c, 8, twice, have, 1, &want, out), -1);
	CU_ASSERT_EQUAL(ec_decode(c, 8, range, have, 1, &want, out), -1);
	CU_ASSERT_PTR_NULL(ec_codec_get(0));
	CU_ASSERT_PTR_NULL(ec_codec_get(ec_policy_make(2, 0)));
	ec_codecs_free();
}

static void test_policy_parse(void)
{
	uint8_t pol = 0;
	CU_ASSERT_EQUAL(ec_policy_parse("2:1", &pol), 0);
	CU_ASSERT_EQUAL(pol, 0x11);
	CU_ASSERT_EQUAL(ec_policy_parse("4:2", &pol), 0);
	CU_ASSERT_EQUAL(pol, 0x22);
	CU_ASSERT_EQUAL(ec_policy_parse("16:15", &pol), 0);
	CU_ASSERT_EQUAL(pol, 0x8f);
	CU_ASSERT_EQUAL(ec_policy_data(pol), 16);
	CU_ASSERT_EQUAL(ec_policy_parity(pol), 15);
	static const char *bad[] = { "3:1", "2:0", "2:16", "32:1", "2:", ":1", "2:1x", "2", "-2:1", "2:-1",
				     "6:2", "0:1", "2:+1", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(ec_policy_parse(bad[i], &pol), -1);
}

int ec_add_suites(void)
{
	CU_pSuite s = CU_add_suite("erasure coding", NULL, NULL);
	if (!s)
		return -1;
	struct { const char *name; void (*fn)(void); } tests[] = {
		{ "every D:P against the slow reference, every erasure pattern up to P", test_every_policy },
		{ "decode refuses repeated or out-of-range strips", test_decode_bad_input },
		{ "D:P parsing and the copy_policy byte", test_policy_parse },
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
