/* luks.h: LUKS1 headers (parse and unlock, build with one key slot), shared by the luks format
 * and qcow2's encrypt.format=luks. Defined in luks.c. */
#ifndef FMT_LUKS_H
#define FMT_LUKS_H

#include <stdint.h>
#include <stddef.h>

#include "crypto.h"

/* LUKS1 header inside a byte range of a store (qcow2 crypto extension, or a luks file at 0). */
struct luks_info {
	char cipher_name[33], cipher_mode[33], hash_spec[33];
	uint32_t payload_offset;      /* sectors */
	uint32_t key_bytes;
	uint32_t mk_iterations;
	char uuid[41];
	int active_slots;
	uint32_t slot_active_mask;
	uint32_t slot_iterations[8];
};
/* parse the header at off (validates layout against len); unlock with passphrase if non-NULL */
int luks_open(struct fmt_store *st, const char *name, uint64_t off, uint64_t len,
	      const char *passphrase, struct luks_info *info, struct fmt_cipher **cipher);
/* build a LUKS1 header + one key slot for passphrase; returns a malloc'd buffer of *len bytes
 * (the header area, payload_offset sectors rounded to align) */
int luks_build(const char *name, const struct fmt_options *opts, const char *passphrase,
	       uint32_t align, uint8_t **out, size_t *len, struct fmt_cipher **cipher);
/* the header's info keys (cipher-alg, cipher-mode, ivgen-alg, hash-alg, uuid, payload-offset,
 * master-key-iters), each named with prefix; payload is in bytes */
void luks_info_emit(const struct luks_info *info, const char *prefix, const char *default_ivgen, uint64_t payload,
		    void (*emit)(void *ctx, const char *key, const char *value), void *ctx);

#endif
