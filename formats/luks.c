/* luks.c: LUKS1 headers (parse, unlock with PBKDF2 + anti-forensic merge, build with one key
 * slot) as used by qcow2's encrypt.format=luks, and the standalone `luks` image format: a LUKS1
 * volume whose payload at payload_offset is the disk, encrypted per 512-byte sector with IVs
 * numbered from the start of the payload. All header fields are big-endian. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "byteorder.h"
#include "luks.h"

#define LUKS_MAGIC_LEN      6
#define LUKS_HDR_SIZE       592
#define LUKS_SLOTS          8
#define LUKS_SLOT_ACTIVE    0x00AC71F3u
#define LUKS_SLOT_INACTIVE  0x0000DEADu
#define LUKS_STRIPES        4000
#define LUKS_DIGEST_LEN     20
#define LUKS_SALT_LEN       32
#define LUKS_SECTOR         512
#define LUKS_ALIGN_SECTORS  8      /* key material aligned to 4 KiB */

static const uint8_t luks_magic[LUKS_MAGIC_LEN] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

struct luks_slot {
	uint32_t active, iterations;
	uint8_t salt[LUKS_SALT_LEN];
	uint32_t km_offset, stripes;
};

struct luks_hdr {
	char cipher_name[33], cipher_mode[33], hash_spec[33];
	uint32_t payload_offset, key_bytes;
	uint8_t mk_digest[LUKS_DIGEST_LEN], mk_salt[LUKS_SALT_LEN];
	uint32_t mk_iter;
	char uuid[41];
	struct luks_slot slots[LUKS_SLOTS];
};

static const EVP_MD *luks_hash(const char *name)
{
	if (!strcmp(name, "sha1"))
		return EVP_sha1();
	if (!strcmp(name, "sha256"))
		return EVP_sha256();
	if (!strcmp(name, "sha512"))
		return EVP_sha512();
	if (!strcmp(name, "sha384"))
		return EVP_sha384();
	if (!strcmp(name, "sha224"))
		return EVP_sha224();
	return NULL;
}

/* cipher name + mode + key size -> EVP cipher and IV generator */
static int luks_cipher(const char *name, const char *spec, const char *mode, uint32_t key_bytes,
		       const void **evp, int *ivgen)
{
	char m[33];
	const char *iv;

	if (strcmp(name, "aes")) {
		fmt_error("%s: Algorithm '%s' with key size %u bytes not supported", spec, name, key_bytes);
		return -ENOTSUP;
	}
	snprintf(m, sizeof(m), "%s", mode);
	char *dash = strchr(m, '-');
	iv = dash ? dash + 1 : "plain";
	if (dash)
		*dash = 0;
	if (!strcmp(iv, "plain64"))
		*ivgen = FMT_IV_PLAIN64;
	else if (!strcmp(iv, "plain"))
		*ivgen = FMT_IV_PLAIN;
	else if (!strcmp(iv, "essiv:sha256"))
		*ivgen = FMT_IV_ESSIV;
	else {
		fmt_error("%s: Unsupported LUKS IV generator '%s'", spec, iv);
		return -ENOTSUP;
	}
	*evp = NULL;
	if (!strcmp(m, "xts")) {
		if (key_bytes == 32)
			*evp = EVP_aes_128_xts();
		else if (key_bytes == 64)
			*evp = EVP_aes_256_xts();
	} else if (!strcmp(m, "cbc")) {
		if (key_bytes == 16)
			*evp = EVP_aes_128_cbc();
		else if (key_bytes == 24)
			*evp = EVP_aes_192_cbc();
		else if (key_bytes == 32)
			*evp = EVP_aes_256_cbc();
	} else if (!strcmp(m, "ecb")) {
		if (key_bytes == 16)
			*evp = EVP_aes_128_ecb();
		else if (key_bytes == 32)
			*evp = EVP_aes_256_ecb();
	} else {
		fmt_error("%s: Unsupported LUKS cipher mode '%s'", spec, mode);
		return -ENOTSUP;
	}
	if (!*evp) {
		fmt_error("%s: Algorithm '%s-%s' with key size %u bytes not supported", spec, name, m, key_bytes);
		return -ENOTSUP;
	}
	return 0;
}

static void luks_parse(const uint8_t *b, struct luks_hdr *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->cipher_name, b + 8, 32);
	memcpy(h->cipher_mode, b + 40, 32);
	memcpy(h->hash_spec, b + 72, 32);
	h->payload_offset = fmt_be32(b + 104);
	h->key_bytes = fmt_be32(b + 108);
	memcpy(h->mk_digest, b + 112, LUKS_DIGEST_LEN);
	memcpy(h->mk_salt, b + 132, LUKS_SALT_LEN);
	h->mk_iter = fmt_be32(b + 164);
	memcpy(h->uuid, b + 168, 40);
	for (int i = 0; i < LUKS_SLOTS; i++) {
		const uint8_t *p = b + 208 + 48 * i;
		h->slots[i].active = fmt_be32(p);
		h->slots[i].iterations = fmt_be32(p + 4);
		memcpy(h->slots[i].salt, p + 8, LUKS_SALT_LEN);
		h->slots[i].km_offset = fmt_be32(p + 40);
		h->slots[i].stripes = fmt_be32(p + 44);
	}
}

static void luks_serialize(const struct luks_hdr *h, uint8_t *b)
{
	memset(b, 0, LUKS_HDR_SIZE);
	memcpy(b, luks_magic, LUKS_MAGIC_LEN);
	fmt_put16(b + 6, 1);
	memcpy(b + 8, h->cipher_name, 32);
	memcpy(b + 40, h->cipher_mode, 32);
	memcpy(b + 72, h->hash_spec, 32);
	fmt_put32(b + 104, h->payload_offset);
	fmt_put32(b + 108, h->key_bytes);
	memcpy(b + 112, h->mk_digest, LUKS_DIGEST_LEN);
	memcpy(b + 132, h->mk_salt, LUKS_SALT_LEN);
	fmt_put32(b + 164, h->mk_iter);
	memcpy(b + 168, h->uuid, 40);
	for (int i = 0; i < LUKS_SLOTS; i++) {
		uint8_t *p = b + 208 + 48 * i;
		fmt_put32(p, h->slots[i].active);
		fmt_put32(p + 4, h->slots[i].iterations);
		memcpy(p + 8, h->slots[i].salt, LUKS_SALT_LEN);
		fmt_put32(p + 40, h->slots[i].km_offset);
		fmt_put32(p + 44, h->slots[i].stripes);
	}
}

/* the LUKS1 diffusion: hash each digest-sized block with its big-endian index in front */
static int luks_diffuse(const EVP_MD *md, uint8_t *buf, size_t len)
{
	size_t ds = EVP_MD_size(md);
	uint8_t out[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0, off = 0; off < len; i++, off += ds) {
		uint8_t be[4];
		size_t n = len - off < ds ? len - off : ds;
		fmt_put32(be, (uint32_t)i);
		if (!EVP_DigestInit_ex(ctx, md, NULL) || !EVP_DigestUpdate(ctx, be, 4) ||
		    !EVP_DigestUpdate(ctx, buf + off, n) || !EVP_DigestFinal_ex(ctx, out, NULL)) {
			EVP_MD_CTX_free(ctx);
			return -EIO;
		}
		memcpy(buf + off, out, n);
	}
	EVP_MD_CTX_free(ctx);
	return 0;
}

/* the diffused XOR of the first stripes - 1 stripes of split material, which the last stripe
 * turns into the key (merge) or is made from (split) */
static int luks_af_diffuse(const EVP_MD *md, const uint8_t *src, size_t key_bytes, uint32_t stripes, uint8_t d[64])
{
	memset(d, 0, 64);
	for (uint32_t i = 0; i + 1 < stripes; i++) {
		for (size_t j = 0; j < key_bytes; j++)
			d[j] ^= src[i * key_bytes + j];
		int ret = luks_diffuse(md, d, key_bytes);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* stripes x key_bytes of split material -> the key */
static int luks_af_merge(const EVP_MD *md, const uint8_t *src, size_t key_bytes, uint32_t stripes, uint8_t *key)
{
	uint8_t d[64];
	int ret = luks_af_diffuse(md, src, key_bytes, stripes, d);

	if (ret < 0)
		return ret;
	for (size_t j = 0; j < key_bytes; j++)
		key[j] = d[j] ^ src[(size_t)(stripes - 1) * key_bytes + j];
	return 0;
}

static int luks_af_split(const EVP_MD *md, const uint8_t *key, size_t key_bytes, uint32_t stripes, uint8_t *dst)
{
	uint8_t d[64];
	int ret;

	if (RAND_bytes(dst, (int)((stripes - 1) * key_bytes)) != 1)
		return -EIO;
	ret = luks_af_diffuse(md, dst, key_bytes, stripes, d);
	if (ret < 0)
		return ret;
	for (size_t j = 0; j < key_bytes; j++)
		dst[(size_t)(stripes - 1) * key_bytes + j] = d[j] ^ key[j];
	return 0;
}

static int luks_pbkdf2(const EVP_MD *md, const void *pass, size_t plen, const uint8_t *salt, uint32_t iter,
		       uint8_t *out, size_t olen)
{
	return PKCS5_PBKDF2_HMAC(pass, (int)plen, salt, LUKS_SALT_LEN, (int)iter, md, (int)olen, out) == 1 ? 0 : -EIO;
}

static size_t luks_km_sectors(uint32_t key_bytes, uint32_t stripes)
{
	return ((size_t)key_bytes * stripes + LUKS_SECTOR - 1) / LUKS_SECTOR;
}

int luks_open(struct fmt_store *st, const char *name, uint64_t off, uint64_t len, const char *passphrase,
	      struct luks_info *info, struct fmt_cipher **cipher)
{
	uint8_t b[LUKS_HDR_SIZE];
	struct luks_hdr h;
	const EVP_MD *md;
	const void *evp;
	int ivgen, ret;
	uint8_t *km = NULL, mk[64], digest[LUKS_DIGEST_LEN];

	if (len < LUKS_HDR_SIZE) {
		fmt_error("%s: LUKS header truncated", name);
		return -EINVAL;
	}
	ret = fmt_store_pread(st, b, sizeof(b), off);
	if (ret < 0)
		return ret;
	if (memcmp(b, luks_magic, LUKS_MAGIC_LEN)) {
		fmt_error("%s: Volume is not in LUKS format", name);
		return -EINVAL;
	}
	if (fmt_be16(b + 6) != 1) {
		fmt_error("%s: Unsupported LUKS version %u", name, fmt_be16(b + 6));
		return -ENOTSUP;
	}
	luks_parse(b, &h);
	md = luks_hash(h.hash_spec);
	if (!md) {
		fmt_error("%s: Unsupported LUKS hash '%s'", name, h.hash_spec);
		return -ENOTSUP;
	}
	if (h.key_bytes == 0 || h.key_bytes > 64) {
		fmt_error("%s: LUKS key size %u invalid", name, h.key_bytes);
		return -EINVAL;
	}
	ret = luks_cipher(h.cipher_name, name, h.cipher_mode, h.key_bytes, &evp, &ivgen);
	if (ret < 0)
		return ret;
	if (h.mk_iter == 0) {
		fmt_error("%s: LUKS master key digest iterations is zero", name);
		return -EINVAL;
	}
	memset(info, 0, sizeof(*info));
	memcpy(info->cipher_name, h.cipher_name, sizeof(info->cipher_name) - 1);
	memcpy(info->cipher_mode, h.cipher_mode, sizeof(info->cipher_mode) - 1);
	memcpy(info->hash_spec, h.hash_spec, sizeof(info->hash_spec) - 1);
	memcpy(info->uuid, h.uuid, sizeof(info->uuid) - 1);
	info->payload_offset = h.payload_offset;
	info->key_bytes = h.key_bytes;
	info->mk_iterations = h.mk_iter;
	for (int i = 0; i < LUKS_SLOTS; i++) {
		struct luks_slot *s = &h.slots[i];
		if (s->active != LUKS_SLOT_ACTIVE && s->active != LUKS_SLOT_INACTIVE) {
			fmt_error("%s: Keyslot %d state (active/disable) is corrupted", name, i);
			return -EINVAL;
		}
		if (s->active != LUKS_SLOT_ACTIVE)
			continue;
		if (s->stripes != LUKS_STRIPES) {
			fmt_error("%s: Keyslot %d is corrupted (stripes %u != %u)", name, i, s->stripes, LUKS_STRIPES);
			return -EINVAL;
		}
		if (s->iterations == 0) {
			fmt_error("%s: Keyslot %d iteration count is zero", name, i);
			return -EINVAL;
		}
		if ((uint64_t)s->km_offset * LUKS_SECTOR < LUKS_HDR_SIZE) {
			fmt_error("%s: Keyslot %d is overlapping with the LUKS header", name, i);
			return -EINVAL;
		}
		if (((uint64_t)s->km_offset + luks_km_sectors(h.key_bytes, s->stripes)) * LUKS_SECTOR > len) {
			fmt_error("%s: Keyslot %d key material extends past the LUKS header area", name, i);
			return -EINVAL;
		}
		info->active_slots++;
		info->slot_active_mask |= 1u << i;
		info->slot_iterations[i] = s->iterations;
	}
	if (!passphrase)
		return 0;

	size_t km_len = luks_km_sectors(h.key_bytes, LUKS_STRIPES) * LUKS_SECTOR;
	km = malloc(km_len);
	if (!km)
		return -ENOMEM;
	ret = -EACCES;
	for (int i = 0; i < LUKS_SLOTS; i++) {
		struct luks_slot *s = &h.slots[i];
		uint8_t slot_key[64];
		struct fmt_cipher *kc;
		if (s->active != LUKS_SLOT_ACTIVE)
			continue;
		if (luks_pbkdf2(md, passphrase, strlen(passphrase), s->salt, s->iterations, slot_key, h.key_bytes) < 0 ||
		    fmt_store_pread(st, km, km_len, off + (uint64_t)s->km_offset * LUKS_SECTOR) < 0) {
			ret = -EIO;
			break;
		}
		kc = fmt_cipher_new(evp, slot_key, h.key_bytes, ivgen);
		if (!kc || fmt_cipher_crypt(kc, false, km, km_len, 0) < 0) {
			fmt_cipher_free(kc);
			ret = -EIO;
			break;
		}
		fmt_cipher_free(kc);
		if (luks_af_merge(md, km, h.key_bytes, LUKS_STRIPES, mk) < 0 ||
		    luks_pbkdf2(md, mk, h.key_bytes, h.mk_salt, h.mk_iter, digest, LUKS_DIGEST_LEN) < 0) {
			ret = -EIO;
			break;
		}
		if (!memcmp(digest, h.mk_digest, LUKS_DIGEST_LEN)) {
			ret = 0;
			break;
		}
	}
	free(km);
	if (ret == -EACCES)
		fmt_error("%s: Invalid password, cannot unlock any keyslot", name);
	else if (ret < 0)
		fmt_error("%s: LUKS key slot could not be read or decrypted", name);
	if (ret < 0)
		return ret;
	*cipher = fmt_cipher_new(evp, mk, h.key_bytes, ivgen);
	memset(mk, 0, sizeof(mk));
	return *cipher ? 0 : -ENOMEM;
}

/* PBKDF2 iterations for about ms milliseconds on this machine (at least 1000) */
static uint32_t luks_calibrate(const EVP_MD *md, uint64_t ms, size_t key_bytes)
{
	uint8_t salt[LUKS_SALT_LEN] = { 0 }, out[64];
	uint32_t iter = 1 << 14;
	struct timespec a, b;

	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		luks_pbkdf2(md, "calibrate", 9, salt, iter, out, key_bytes);
		clock_gettime(CLOCK_MONOTONIC, &b);
		uint64_t ns = (b.tv_sec - a.tv_sec) * 1000000000ull + (b.tv_nsec - a.tv_nsec);
		if (ns > 20000000 || iter >= (1u << 30)) {
			uint64_t n = ns ? (uint64_t)iter * ms * 1000000 / ns : iter;
			if (n < 1000)
				n = 1000;
			if (n > UINT32_MAX / 2)
				n = UINT32_MAX / 2;
			return (uint32_t)n;
		}
		iter *= 4;
	}
}

int luks_build(const char *name, const struct fmt_options *opts, const char *passphrase, uint32_t align,
	       uint8_t **out, size_t *len, struct fmt_cipher **cipher)
{
	/* options appear as encrypt.X inside qcow2 and as X for the luks format */
	const char *pre = fmt_options_get(opts, "encrypt.format") ? "encrypt." : "";
	char key[64];
	const char *alg, *mode, *ivalg, *hash, *ivhash;
	uint64_t iter_ms = 2000;
	struct luks_hdr h;
	const EVP_MD *md;
	const void *evp;
	int ivgen, ret;
	uint8_t mk[64], slot_key[64];

#define LUKS_OPT(var, k, def) do { snprintf(key, sizeof(key), "%s%s", pre, k); fmt_options_use(opts, key); \
		var = fmt_options_get(opts, key); if (!var) var = def; } while (0)
	LUKS_OPT(alg, "cipher-alg", "aes-256");
	LUKS_OPT(mode, "cipher-mode", "xts");
	LUKS_OPT(ivalg, "ivgen-alg", "plain64");
	LUKS_OPT(hash, "hash-alg", "sha256");
	LUKS_OPT(ivhash, "ivgen-hash-alg", "sha256");
	snprintf(key, sizeof(key), "%siter-time", pre);
	fmt_options_use(opts, key);
	if (fmt_options_get(opts, key)) {
		char *end;
		iter_ms = strtoull(fmt_options_get(opts, key), &end, 10);
		if (*end || !iter_ms) {
			fmt_error("%s: invalid %s '%s'", name, key, fmt_options_get(opts, key));
			return -EINVAL;
		}
	}
#undef LUKS_OPT
	memset(&h, 0, sizeof(h));
	if (!strcmp(alg, "aes-128"))
		h.key_bytes = 16;
	else if (!strcmp(alg, "aes-192"))
		h.key_bytes = 24;
	else if (!strcmp(alg, "aes-256"))
		h.key_bytes = 32;
	else {
		fmt_error("%s: Parameter 'cipher-alg' does not accept value '%s'", name, alg);
		return -EINVAL;
	}
	if (!strcmp(mode, "xts"))
		h.key_bytes *= 2;
	else if (strcmp(mode, "cbc")) {
		fmt_error("%s: Parameter 'cipher-mode' does not accept value '%s'", name, mode);
		return -EINVAL;
	}
	strcpy(h.cipher_name, "aes");
	if (!strcmp(ivalg, "essiv"))
		snprintf(h.cipher_mode, sizeof(h.cipher_mode), "%s-essiv:%s", mode, ivhash);
	else
		snprintf(h.cipher_mode, sizeof(h.cipher_mode), "%s-%s", mode, ivalg);
	snprintf(h.hash_spec, sizeof(h.hash_spec), "%s", hash);
	md = luks_hash(hash);
	if (!md) {
		fmt_error("%s: Parameter 'hash-alg' does not accept value '%s'", name, hash);
		return -EINVAL;
	}
	ret = luks_cipher(h.cipher_name, name, h.cipher_mode, h.key_bytes, &evp, &ivgen);
	if (ret < 0)
		return ret;

	/* uuid, master key and its digest */
	uint8_t u[16];
	if (RAND_bytes(u, 16) != 1 || RAND_bytes(mk, h.key_bytes) != 1 || RAND_bytes(h.mk_salt, LUKS_SALT_LEN) != 1) {
		fmt_error("%s: no random numbers", name);
		return -EIO;
	}
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
	snprintf(h.uuid, sizeof(h.uuid), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	uint32_t iters = luks_calibrate(md, iter_ms, h.key_bytes);
	h.mk_iter = iters / 8 < 1000 ? 1000 : iters / 8;
	if (luks_pbkdf2(md, mk, h.key_bytes, h.mk_salt, h.mk_iter, h.mk_digest, LUKS_DIGEST_LEN) < 0)
		return -EIO;

	/* slots: 0 active, the rest disabled; key material areas 4 KiB aligned after the header */
	size_t km_sectors = luks_km_sectors(h.key_bytes, LUKS_STRIPES);
	size_t slot_sectors = (km_sectors + LUKS_ALIGN_SECTORS - 1) / LUKS_ALIGN_SECTORS * LUKS_ALIGN_SECTORS;
	for (int i = 0; i < LUKS_SLOTS; i++) {
		h.slots[i].active = LUKS_SLOT_INACTIVE;
		h.slots[i].stripes = LUKS_STRIPES;
		h.slots[i].km_offset = LUKS_ALIGN_SECTORS + i * slot_sectors;
	}
	uint64_t hdr_sectors = LUKS_ALIGN_SECTORS + LUKS_SLOTS * slot_sectors;
	if (align > LUKS_SECTOR)
		hdr_sectors = (hdr_sectors + align / LUKS_SECTOR - 1) / (align / LUKS_SECTOR) * (align / LUKS_SECTOR);
	h.payload_offset = hdr_sectors;
	h.slots[0].active = LUKS_SLOT_ACTIVE;
	h.slots[0].iterations = iters;
	if (RAND_bytes(h.slots[0].salt, LUKS_SALT_LEN) != 1)
		return -EIO;

	uint8_t *buf = calloc(1, hdr_sectors * LUKS_SECTOR);
	if (!buf) {
		fmt_error("%s: out of memory", name);
		return -ENOMEM;
	}
	uint8_t *km = buf + (size_t)h.slots[0].km_offset * LUKS_SECTOR;
	struct fmt_cipher *kc = NULL;
	ret = -EIO;
	if (luks_af_split(md, mk, h.key_bytes, LUKS_STRIPES, km) < 0 ||
	    luks_pbkdf2(md, passphrase, strlen(passphrase), h.slots[0].salt, iters, slot_key, h.key_bytes) < 0)
		goto fail;
	kc = fmt_cipher_new(evp, slot_key, h.key_bytes, ivgen);
	if (!kc || fmt_cipher_crypt(kc, true, km, km_sectors * LUKS_SECTOR, 0) < 0)
		goto fail;
	luks_serialize(&h, buf);
	*cipher = fmt_cipher_new(evp, mk, h.key_bytes, ivgen);
	if (!*cipher)
		goto fail;
	fmt_cipher_free(kc);
	memset(mk, 0, sizeof(mk));
	*out = buf;
	*len = hdr_sectors * LUKS_SECTOR;
	return 0;
fail:
	fmt_error("%s: could not build the LUKS header", name);
	fmt_cipher_free(kc);
	free(buf);
	return ret;
}

/* ---- the standalone luks format ------------------------------------------------------------ */

struct luks_state {
	struct luks_info info;
	struct fmt_cipher *cipher;
	uint64_t payload;        /* bytes */
	pthread_mutex_t lock;    /* read-modify-write of partial sectors */
};

void luks_info_emit(const struct luks_info *info, const char *prefix, const char *default_ivgen, uint64_t payload,
		    void (*emit)(void *ctx, const char *key, const char *value), void *ctx)
{
	char buf[64], key[48];

#define LUKS_EMIT(name, value) (snprintf(key, sizeof(key), "%s%s", prefix, name), emit(ctx, key, value))
	snprintf(buf, sizeof(buf), "%s-%u", info->cipher_name,
		 info->key_bytes * (strncmp(info->cipher_mode, "xts", 3) ? 8 : 4));
	LUKS_EMIT("cipher-alg", buf);
	snprintf(buf, sizeof(buf), "%.31s", info->cipher_mode);
	char *dash = strchr(buf, '-');
	if (dash)
		*dash = 0;
	LUKS_EMIT("cipher-mode", buf);
	dash = strchr(info->cipher_mode, '-');
	LUKS_EMIT("ivgen-alg", dash ? dash + 1 : default_ivgen);
	LUKS_EMIT("hash-alg", info->hash_spec);
	LUKS_EMIT("uuid", info->uuid);
	snprintf(buf, sizeof(buf), "%" PRIu64, payload);
	LUKS_EMIT("payload-offset", buf);
	snprintf(buf, sizeof(buf), "%u", info->mk_iterations);
	LUKS_EMIT("master-key-iters", buf);
#undef LUKS_EMIT
}

static int luks_probe(const uint8_t *buf, size_t len, const char *spec)
{
	return len >= LUKS_MAGIC_LEN && !memcmp(buf, luks_magic, LUKS_MAGIC_LEN) ? 100 : 0;
}

static int luks_fmt_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct luks_state *s = calloc(1, sizeof(*s));
	const char *pass;
	int ret;

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	img->encrypted = true;
	fmt_options_use(opts, "key-secret");
	/* without a key the header can still be shown; reads and writes refuse */
	pass = NULL;
	if (fmt_options_get(opts, "key-secret")) {
		pass = fmt_crypto_secret(img->spec, opts, "key-secret");
		if (!pass) {
			ret = -EACCES;
			goto fail;
		}
	}
	ret = luks_open(img->store, img->spec, 0, img->store->size, pass, &s->info, pass ? &s->cipher : NULL);
	if (ret < 0)
		goto fail;
	s->payload = (uint64_t)s->info.payload_offset * LUKS_SECTOR;
	if (s->payload > img->store->size) {
		fmt_error("%s: LUKS payload offset past end of file", img->spec);
		ret = -EINVAL;
		goto fail;
	}
	img->virtual_size = (img->store->size - s->payload) & ~511ull;
	img->priv = s;
	return 0;
fail:
	fmt_cipher_free(s->cipher);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return ret;
}

static int luks_no_key(struct fmt_image *img)
{
	return fmt_cipher_no_key(img->spec, "key-secret");
}

static int luks_fmt_read(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	struct luks_state *s = img->priv;
	if (!s->cipher)
		return luks_no_key(img);
	return fmt_cipher_pread(s->cipher, img->store, buf, len, s->payload + off, off);
}

static int luks_fmt_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct luks_state *s = img->priv;
	if (!s->cipher)
		return luks_no_key(img);
	uint64_t head = off & 511;
	size_t alen = (head + len + 511) & ~511ull;
	uint8_t *tmp = malloc(alen);
	bool partial = head || (len & 511);
	int ret = 0;

	if (!tmp)
		return -ENOMEM;
	if (partial) {
		pthread_mutex_lock(&s->lock);
		ret = luks_fmt_read(img, tmp, alen, off - head);
	}
	if (ret >= 0) {
		memcpy(tmp + head, buf, len);
		ret = fmt_cipher_crypt(s->cipher, true, tmp, alen, (off - head) / LUKS_SECTOR);
	}
	if (ret >= 0)
		ret = fmt_store_pwrite(img->store, tmp, alen, s->payload + off - head);
	if (partial)
		pthread_mutex_unlock(&s->lock);
	free(tmp);
	return ret < 0 ? ret : 0;
}

static int luks_fmt_create(const char *spec, uint64_t size, const struct fmt_options *opts)
{
	struct fmt_store *st = NULL;
	struct fmt_cipher *c = NULL;
	uint8_t *hdr = NULL;
	size_t hlen;
	const char *pass;
	int ret;

	fmt_options_use(opts, "size");
	fmt_options_use(opts, "preallocation");
	pass = fmt_crypto_secret(spec, opts, "key-secret");
	if (!pass)
		return -EINVAL;
	size = (size + 511) & ~511ull;
	ret = luks_build(spec, opts, pass, 1u << 20, &hdr, &hlen, &c);
	if (ret < 0)
		return ret;
	ret = fmt_store_create(spec, 0, &st);
	if (ret < 0)
		goto out;
	ret = fmt_store_pwrite(st, hdr, hlen, 0);
	if (ret >= 0 && size) {
		/* the payload reads back as zeros only if it holds encrypted zeros: write them */
		size_t chunk = 1u << 20;
		uint8_t *z = malloc(chunk);
		if (!z) {
			ret = -ENOMEM;
			goto out;
		}
		for (uint64_t done = 0; ret >= 0 && done < size; done += chunk) {
			size_t n = size - done < chunk ? size - done : chunk;
			memset(z, 0, n);
			ret = fmt_cipher_crypt(c, true, z, n, done / LUKS_SECTOR);
			if (ret >= 0)
				ret = fmt_store_pwrite(st, z, n, hlen + done);
		}
		free(z);
	}
out:
	if (st)
		fmt_store_close(st);
	fmt_cipher_free(c);
	free(hdr);
	return ret < 0 ? ret : 0;
}

static int luks_fmt_info(struct fmt_image *img, void (*emit)(void *ctx, const char *key, const char *value), void *ctx)
{
	struct luks_state *s = img->priv;

	luks_info_emit(&s->info, "", "plain", s->payload, emit, ctx);
	return 0;
}

static void luks_fmt_close(struct fmt_image *img)
{
	struct luks_state *s = img->priv;
	if (!s)
		return;
	fmt_cipher_free(s->cipher);
	pthread_mutex_destroy(&s->lock);
	free(s);
	img->priv = NULL;
}

const struct fmt_driver fmt_luks_driver = {
	.name = "luks",
	.flags = FMT_DRV_WRITE | FMT_DRV_CREATE | FMT_DRV_THREADS,
	.probe = luks_probe,
	.open = luks_fmt_open,
	.read = luks_fmt_read,
	.write = luks_fmt_write,
	.create = luks_fmt_create,
	.info = luks_fmt_info,
	.close = luks_fmt_close,
};
