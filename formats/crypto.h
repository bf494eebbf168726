/* crypto.h: sector ciphers shared by the encrypted formats (qcow v1 and qcow2 AES, LUKS payloads
 * in qcow2 and in luks images) and the lookup of their passphrases. Defined in crypto.c. */
#ifndef FMT_CRYPTO_H
#define FMT_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats.h"

/* One sector cipher: legacy qcow AES-128-CBC with plain64 IVs, or a LUKS payload cipher
 * (aes-xts-plain64 / aes-cbc-plain64 / aes-cbc-essiv). Safe to use from several threads. */
#define FMT_IV_PLAIN   0
#define FMT_IV_PLAIN64 1
#define FMT_IV_ESSIV   2
struct fmt_cipher {
	const void *evp, *essiv_evp;   /* const EVP_CIPHER * */
	uint8_t key[64];
	size_t keylen;
	int ivgen;
	uint8_t essiv_key[32];
};

struct fmt_cipher *fmt_cipher_new(const void *evp, const uint8_t *key, size_t keylen, int ivgen);
struct fmt_cipher *fmt_cipher_new_qcow_aes(const char *passphrase);
/* en/decrypt len bytes (multiple of 512) in place; first_sector numbers the first 512 bytes */
int fmt_cipher_crypt(struct fmt_cipher *c, bool encrypt, uint8_t *buf, size_t len, uint64_t first_sector);
/* read and decrypt len bytes at store offset host; iv_off is the offset the sector numbers count
 * from (host & 511 == iv_off & 511) */
int fmt_cipher_pread(struct fmt_cipher *c, struct fmt_store *st, uint8_t *buf, size_t len, uint64_t host,
		     uint64_t iv_off);
void fmt_cipher_free(struct fmt_cipher *c);
/* an encrypted image opened without its key: the error for spec naming the option key, -EACCES */
int fmt_cipher_no_key(const char *spec, const char *key);

/* the passphrase named by key (e.g. "encrypt.key-secret"): NULL + error if unknown */
const char *fmt_crypto_secret(const char *name, const struct fmt_options *opts, const char *key);

#endif
