/* qcow2.h: private state shared by the qcow2 driver files (qcow2.c open/read, qcow2_write.c
 * allocation and refcounts, qcow2_create.c, qcow2_check.c) and the crypto helpers used by
 * qcow2, qcow (v1) and luks. Nothing here is part of the library contract. */
#ifndef FMT_QCOW2_H
#define FMT_QCOW2_H

#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "formats.h"

#define QCOW_MAGIC                 0x514649FBu
#define QCOW2_MAX_L1_BYTES         (32u << 20)
#define QCOW2_MAX_RT_BYTES         (8u << 20)
#define QCOW2_MAX_SNAPSHOTS        65536
#define QCOW2_MAX_BACKING_NAME     1023

#define QCOW2_INCOMPAT_DIRTY       (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN       0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS    (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW   (1ull << 1)

#define QCOW2_EXT_END              0x00000000u
#define QCOW2_EXT_BACKING_FMT      0xE2792ACAu
#define QCOW2_EXT_FEATURES         0x6803F857u
#define QCOW2_EXT_BITMAPS          0x23852875u
#define QCOW2_EXT_CRYPTO           0x0537BE77u
#define QCOW2_EXT_DATA_FILE        0x44415441u

#define QCOW2_OFLAG_COPIED         (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED     (1ull << 62)
#define QCOW2_OFLAG_ZERO           (1ull << 0)
#define QCOW2_OFFSET_MASK          0x00fffffffffffe00ull
#define QCOW2_L1_RESERVED          0x7f000000000001ffull
#define QCOW2_L2_RESERVED          0x3f000000000001feull

#define QCOW2_CRYPT_NONE           0
#define QCOW2_CRYPT_AES            1
#define QCOW2_CRYPT_LUKS           2

#define QCOW2_COMPRESS_ZLIB        0
#define QCOW2_COMPRESS_ZSTD        1

/* ---- crypto helpers (crypto_aes.c, luks.c) --------------------------------------------------- */

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
/* the passphrase named by key (e.g. "encrypt.key-secret"): NULL + error if unknown */
const char *fmt_crypto_secret(const char *name, const struct fmt_options *opts, const char *key);

/* ---- compression helpers (qcow2_compress.c) -------------------------------------------------- */

/* decompress src into exactly dlen bytes of dst (raw deflate -12 or zstd); -EIO on bad data */
int qcow2_decompress(int type, void *dst, size_t dlen, const void *src, size_t slen);
/* compress; returns compressed length, or 0 if it would not fit in dlen */
size_t qcow2_compress(int type, void *dst, size_t dlen, const void *src, size_t slen);

/* ---- driver state ------------------------------------------------------------------------------ */

struct qcow2_l2_slot {
	uint64_t offset;              /* host offset of the table, 0 = empty */
	uint64_t *table;              /* big-endian entries as on disk */
	uint64_t last_use;
	bool dirty;
};

struct qcow2_state {
	struct fmt_image *img;
	pthread_mutex_t lock;          /* all metadata below */

	uint32_t version;
	uint32_t cluster_bits;
	uint32_t cluster_size;
	uint32_t l2_bits;              /* log2 of entries per L2 table */
	uint32_t l2_entries;
	bool ext_l2;
	uint32_t subcluster_size;
	uint64_t size;
	uint32_t crypt_method;
	uint64_t incompat, compat, autoclear;
	uint32_t refcount_order;
	uint32_t header_length;
	uint32_t compression_type;
	int csize_shift;               /* compressed entries: bit where the sector count starts */
	uint64_t csize_mask, coffset_mask;

	uint64_t l1_offset;
	uint32_t l1_size;
	uint64_t *l1;                  /* host-endian */
	bool l1_dirty;

	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint64_t rt_size;              /* entries */
	uint64_t *rt;                  /* host-endian */
	bool rt_dirty;
	uint8_t **refblocks;           /* lazily loaded, indexed like rt */
	bool *refblock_dirty;
	uint64_t refs_per_block;
	uint64_t free_hint;            /* cluster index to start free-space searches at */
	uint64_t comp_next;            /* next byte for compressed data (0 = start a new cluster) */
	bool header_dirty;

	uint32_t nb_snapshots;
	uint64_t snapshots_offset;

	/* L2 cache */
	struct qcow2_l2_slot *l2_cache;
	uint32_t l2_cache_slots;
	uint64_t l2_clock;

	/* header extensions we keep when rewriting the header */
	uint64_t crypto_off, crypto_len;
	uint8_t *unknown_ext;          /* raw unknown extensions (type,len,data,pad)* */
	size_t unknown_ext_len;
	uint32_t bitmaps_nr;
	uint64_t bitmaps_dir_size, bitmaps_dir_off;

	char *data_file;               /* external data file name (ext 0x44415441) */
	struct fmt_store *data_store;  /* open when the image uses it: guest data lives there */
	struct fmt_cipher *cipher;
	struct luks_info luks;
	bool need_key;                 /* encrypted but no key given: read/write refuse */
	uint64_t file_size;             /* logical end: written or claimed */
	uint64_t disk_end;              /* end of what is really in the store */
};

/* qcow2.c */
int qcow2_l2_load(struct qcow2_state *s, uint64_t l2_off, uint64_t **table);
int qcow2_l2_claim(struct qcow2_state *s, uint64_t l2_off, uint64_t **table);
int qcow2_l2_writeback(struct qcow2_state *s, struct qcow2_l2_slot *slot);
struct qcow2_l2_slot *qcow2_l2_slot_of(struct qcow2_state *s, const uint64_t *table);
int qcow2_read_unlocked_range(struct qcow2_state *s, void *buf, size_t len, uint64_t off);
int qcow2_write_header(struct qcow2_state *s);
int qcow2_read_compressed(struct qcow2_state *s, uint64_t entry, void *out);

/* qcow2_write.c */
int qcow2_refcount_get(struct qcow2_state *s, uint64_t cluster, uint64_t *ref);
int qcow2_refcount_add(struct qcow2_state *s, uint64_t cluster, int64_t delta);
int64_t qcow2_alloc_clusters(struct qcow2_state *s, uint64_t n);
int qcow2_flush_metadata(struct qcow2_state *s);
int qcow2_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off);
int qcow2_write_compressed(struct fmt_image *img, const void *buf, size_t len, uint64_t off);
int qcow2_flush(struct fmt_image *img);
int qcow2_grow_l1(struct qcow2_state *s, uint32_t min_size);
int qcow2_load_refcounts(struct qcow2_state *s, uint64_t *bad);
void qcow2_free_refcounts(struct qcow2_state *s);
uint64_t qcow2_refblock_get(const struct qcow2_state *s, const uint8_t *rb, uint64_t i);
void qcow2_refblock_set(const struct qcow2_state *s, uint8_t *rb, uint64_t i, uint64_t v);

/* qcow2_create.c */
int qcow2_create(const char *spec, uint64_t size, const struct fmt_options *opts);

/* qcow2_check.c */
int qcow2_check(struct fmt_image *img, struct fmt_check_result *res);
int qcow2_rebuild_refcounts(struct qcow2_state *s);

static inline void qcow2_note_write(struct qcow2_state *s, uint64_t end)
{
	if (end > s->file_size)
		s->file_size = end;
	if (end > s->disk_end)
		s->disk_end = end;
}

static inline uint64_t qcow2_be64(const void *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static inline uint32_t qcow2_be32(const void *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static inline uint16_t qcow2_be16(const void *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static inline void qcow2_put64(void *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static inline void qcow2_put32(void *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static inline void qcow2_put16(void *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }

#endif
