/* ec.c: D:P Reed-Solomon through ISA-L. The encoding matrix is (D+P) x D: the identity over a
 * Cauchy matrix (gf_gen_cauchy1_matrix), every D x D submatrix of which is invertible, so the
 * data comes back from any D strips. Byte k of every strip forms one codeword, so any byte range
 * of the strips can be encoded or decoded on its own. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

#include "ec.h"

struct ec_codec {
	int d, p;
	uint8_t matrix[EC_MAX_STRIPS * EC_MAX_DATA];         /* (d+p) x d */
	uint8_t encode_tables[32 * EC_MAX_DATA * EC_MAX_PARITY];
};

static pthread_mutex_t codecs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ec_codec *codecs[256];

bool ec_policy_valid(uint8_t policy)
{
	int d = ec_policy_data(policy), p = ec_policy_parity(policy);
	return (d == 2 || d == 4 || d == 8 || d == 16) && p >= 1 && p <= EC_MAX_PARITY;
}

int ec_policy_parse(const char *s, uint8_t *policy)
{
	char *end;
	long d = strtol(s, &end, 10);
	if (end == s || *end != ':' || d < 2 || d > EC_MAX_DATA)
		return -1;
	const char *q = end + 1;
	long p = strtol(q, &end, 10);
	if (end == q || *end || p < 1 || p > EC_MAX_PARITY || *q == '+' || *q == '-' || *s == '+' || *s == '-')
		return -1;
	uint8_t pol = ec_policy_make((int)d, (int)p);
	if (ec_policy_data(pol) != d || !ec_policy_valid(pol))
		return -1;
	*policy = pol;
	return 0;
}

const struct ec_codec *ec_codec_get(uint8_t policy)
{
	if (!ec_policy_valid(policy))
		return NULL;
	pthread_mutex_lock(&codecs_lock);
	struct ec_codec *c = codecs[policy];
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (c) {
			c->d = ec_policy_data(policy);
			c->p = ec_policy_parity(policy);
			gf_gen_cauchy1_matrix(c->matrix, c->d + c->p, c->d);
			ec_init_tables(c->d, c->p, c->matrix + c->d * c->d, c->encode_tables);
			codecs[policy] = c;
		}
	}
	pthread_mutex_unlock(&codecs_lock);
	return c;
}

void ec_codecs_free(void)
{
	pthread_mutex_lock(&codecs_lock);
	for (int i = 0; i < 256; i++) {
		free(codecs[i]);
		codecs[i] = NULL;
	}
	pthread_mutex_unlock(&codecs_lock);
}

void ec_encode(const struct ec_codec *c, size_t len, uint8_t *const *data, uint8_t **parity)
{
	if (len)
		ec_encode_data((int)len, c->d, c->p, (unsigned char *)c->encode_tables, (unsigned char **)data,
			       parity);
}

int ec_decode(const struct ec_codec *c, size_t len, const int *have_idx, uint8_t *const *have, int nr_want,
	      const int *want, uint8_t **out)
{
	int d = c->d, n = c->d + c->p;
	uint8_t sub[EC_MAX_DATA * EC_MAX_DATA], inv[EC_MAX_DATA * EC_MAX_DATA];
	uint8_t rows[EC_MAX_STRIPS * EC_MAX_DATA];
	uint8_t tables[32 * EC_MAX_DATA * EC_MAX_STRIPS];
	bool seen[EC_MAX_STRIPS] = { false };
	if (nr_want < 0 || nr_want > n)
		return -1;
	for (int i = 0; i < d; i++) {
		if (have_idx[i] < 0 || have_idx[i] >= n || seen[have_idx[i]])
			return -1;
		seen[have_idx[i]] = true;
		memcpy(sub + i * d, c->matrix + have_idx[i] * d, d);
	}
	if (gf_invert_matrix(sub, inv, d) < 0)
		return -1;
	/* strip w = matrix row w x data = matrix row w x inv x have */
	for (int k = 0; k < nr_want; k++) {
		if (want[k] < 0 || want[k] >= n)
			return -1;
		const uint8_t *row = c->matrix + want[k] * d;
		for (int j = 0; j < d; j++) {
			uint8_t s = 0;
			for (int i = 0; i < d; i++)
				s ^= gf_mul(row[i], inv[i * d + j]);
			rows[k * d + j] = s;
		}
	}
	if (!nr_want || !len)
		return 0;
	ec_init_tables(d, nr_want, rows, tables);
	ec_encode_data((int)len, d, nr_want, tables, (unsigned char **)have, out);
	return 0;
}
