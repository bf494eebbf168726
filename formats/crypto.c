/* crypto.c: sector ciphers for encrypted images (OpenSSL EVP): the legacy qcow/qcow2 AES
 * scheme (AES-128-CBC, key = passphrase zero-padded to 16 bytes, plain64 IVs) and the LUKS
 * payload ciphers (aes-xts / aes-cbc with plain, plain64 or essiv:sha256 IVs). Every call builds
 * its own EVP context, so one fmt_cipher may be used from several threads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "crypto.h"

struct fmt_cipher *fmt_cipher_new(const void *evp, const uint8_t *key, size_t keylen, int ivgen)
{
	struct fmt_cipher *c = calloc(1, sizeof(*c));

	if (!c || keylen > sizeof(c->key)) {
		free(c);
		return NULL;
	}
	c->evp = evp;
	memcpy(c->key, key, keylen);
	c->keylen = keylen;
	c->ivgen = ivgen;
	if (ivgen == FMT_IV_ESSIV) {
		/* ESSIV: IVs are plain64 sector numbers encrypted with sha256(key) */
		unsigned int n = 0;
		EVP_Digest(key, keylen, c->essiv_key, &n, EVP_sha256(), NULL);
		c->essiv_evp = EVP_aes_256_ecb();
	}
	return c;
}

struct fmt_cipher *fmt_cipher_new_qcow_aes(const char *passphrase)
{
	uint8_t key[16];
	size_t n = strlen(passphrase);

	memset(key, 0, sizeof(key));
	memcpy(key, passphrase, n < 16 ? n : 16);
	return fmt_cipher_new(EVP_aes_128_cbc(), key, 16, FMT_IV_PLAIN64);
}

static int fmt_cipher_iv(struct fmt_cipher *c, EVP_CIPHER_CTX *essiv, uint64_t sector, uint8_t iv[16])
{
	memset(iv, 0, 16);
	if (c->ivgen == FMT_IV_PLAIN)
		sector &= 0xffffffffu;
	uint64_t le = htole64(sector);
	memcpy(iv, &le, 8);
	if (c->ivgen == FMT_IV_ESSIV) {
		int outl = 0;
		if (!EVP_EncryptUpdate(essiv, iv, &outl, iv, 16))
			return -EIO;
	}
	return 0;
}

int fmt_cipher_crypt(struct fmt_cipher *c, bool encrypt, uint8_t *buf, size_t len, uint64_t first_sector)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new(), *essiv = NULL;
	uint8_t iv[16];
	int ret = -EIO, outl;

	if (!ctx)
		return -ENOMEM;
	if (!EVP_CipherInit_ex(ctx, c->evp, NULL, c->key, NULL, encrypt ? 1 : 0))
		goto out;
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	if (c->ivgen == FMT_IV_ESSIV) {
		essiv = EVP_CIPHER_CTX_new();
		if (!essiv || !EVP_EncryptInit_ex(essiv, c->essiv_evp, NULL, c->essiv_key, NULL))
			goto out;
		EVP_CIPHER_CTX_set_padding(essiv, 0);
	}
	for (size_t done = 0; done < len; done += 512) {
		if (fmt_cipher_iv(c, essiv, first_sector + done / 512, iv) < 0)
			goto out;
		if (!EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1))
			goto out;
		if (!EVP_CipherUpdate(ctx, buf + done, &outl, buf + done, 512))
			goto out;
	}
	ret = 0;
out:
	if (ret < 0)
		fmt_error("encryption failure in OpenSSL");
	EVP_CIPHER_CTX_free(essiv);
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

int fmt_cipher_pread(struct fmt_cipher *c, struct fmt_store *st, uint8_t *buf, size_t len, uint64_t host,
		     uint64_t iv_off)
{
	/* whole sectors are read and decrypted; an unaligned request goes through a bounce buffer */
	uint64_t head = host & 511;
	size_t alen = (head + len + 511) & ~511ull;
	uint8_t *tmp = (head || (len & 511)) ? malloc(alen) : buf;
	int ret;

	if (!tmp) {
		fmt_error("%s: out of memory", st->spec);
		return -ENOMEM;
	}
	ret = fmt_store_pread(st, tmp, alen, host - head);
	if (ret >= 0)
		ret = fmt_cipher_crypt(c, false, tmp, alen, (iv_off - head) >> 9);
	if (ret >= 0 && tmp != buf)
		memcpy(buf, tmp + head, len);
	if (tmp != buf)
		free(tmp);
	return ret < 0 ? ret : 0;
}

void fmt_cipher_free(struct fmt_cipher *c)
{
	if (c) {
		memset(c->key, 0, sizeof(c->key));
		free(c);
	}
}

int fmt_cipher_no_key(const char *spec, const char *key)
{
	fmt_error("%s: image is encrypted; no key given (%s)", spec, key);
	return -EACCES;
}

const char *fmt_crypto_secret(const char *name, const struct fmt_options *opts, const char *key)
{
	const char *id = fmt_options_get(opts, key);
	const char *secret;

	fmt_options_use(opts, key);
	if (!id) {
		fmt_error("%s: Parameter '%s' is required for cipher", name, key);
		return NULL;
	}
	secret = fmt_secret_get(id);
	if (!secret)
		fmt_error("%s: No secret with id '%s'", name, id);
	return secret;
}
