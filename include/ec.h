/* ec.h: Reed-Solomon erasure coding of D data strips into P parity strips (ISA-L, GF(2^8) with
 * a Cauchy matrix, so any D of the D+P strips give back the data), and the sheepdog copy_policy
 * byte that names a D:P policy. */
#ifndef EC_H
#define EC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EC_MAX_DATA   16
#define EC_MAX_PARITY 15
#define EC_MAX_STRIPS (EC_MAX_DATA + EC_MAX_PARITY)

/* copy_policy = ((D / 2) << 4) | P as sheepdog and QEMU's driver write it; 0 = replication */
static inline int ec_policy_data(uint8_t policy)
{
	return (policy >> 4) * 2;
}

static inline int ec_policy_parity(uint8_t policy)
{
	return policy & 0x0f;
}

static inline uint8_t ec_policy_make(int d, int p)
{
	return (uint8_t)(((d / 2) << 4) | p);
}

/* D in {2, 4, 8, 16}, 1 <= P <= 15 */
bool ec_policy_valid(uint8_t policy);
/* "D:P" into a policy byte; -1 when it is not a valid one */
int ec_policy_parse(const char *s, uint8_t *policy);

struct ec_codec;

/* the codec of a valid policy (built once, shared, never freed before ec_codecs_free) */
const struct ec_codec *ec_codec_get(uint8_t policy);
void ec_codecs_free(void);
/* parity[0..P) = code of data[0..D), each len bytes; len may be any size */
void ec_encode(const struct ec_codec *c, size_t len, uint8_t *const *data, uint8_t **parity);
/* rebuild strips want[0..nr_want) into out[] from D strips: have_idx[i] is the index (0..D+P)
 * of have[i]. -1 when have_idx repeats or is out of range. */
int ec_decode(const struct ec_codec *c, size_t len, const int *have_idx, uint8_t *const *have, int nr_want,
	      const int *want, uint8_t **out);

#endif
