/* qcow2_state.h: the qcow2 on-disk constants and the driver state shared by the qcow2_*.c files,
 * with what each of them offers the others. Nothing here is part of the library contract. */
#ifndef FMT_QCOW2_STATE_H
#define FMT_QCOW2_STATE_H

#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "byteorder.h"
#include "formats.h"
#include "luks.h"
#include "qcow2_compress.h"

#define QCOW2_MAX_L1_BYTES         (32u << 20)
#define QCOW2_MAX_RT_BYTES         (8u << 20)
#define QCOW2_MAX_SNAPSHOTS        65536
#define QCOW2_MAX_BACKING_NAME     1023
#define QCOW2_L2_WAYS              4      /* L2 cache slots per set */

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

/* qcow2_cache.c */
int qcow2_l2_load(struct qcow2_state *s, uint64_t l2_off, uint64_t **table);
int qcow2_l2_claim(struct qcow2_state *s, uint64_t l2_off, uint64_t **table);
int qcow2_l2_writeback(struct qcow2_state *s, struct qcow2_l2_slot *slot);
struct qcow2_l2_slot *qcow2_l2_slot_of(struct qcow2_state *s, const uint64_t *table);
void qcow2_l2_cache_free(struct qcow2_state *s);

/* qcow2_read.c */
int qcow2_read_unlocked_range(struct qcow2_state *s, void *buf, size_t len, uint64_t off);
int qcow2_read_compressed(struct qcow2_state *s, uint64_t entry, void *out);
int qcow2_read(struct fmt_image *img, void *buf, size_t len, uint64_t off);
int qcow2_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *run);

/* qcow2_refcount.c */
int qcow2_load_refcounts(struct qcow2_state *s, uint64_t *bad);
void qcow2_free_refcounts(struct qcow2_state *s);
uint64_t qcow2_refblock_get(const struct qcow2_state *s, const uint8_t *rb, uint64_t i);
void qcow2_refblock_set(const struct qcow2_state *s, uint8_t *rb, uint64_t i, uint64_t v);
int qcow2_refcount_get(struct qcow2_state *s, uint64_t cluster, uint64_t *ref);
int qcow2_refcount_add(struct qcow2_state *s, uint64_t cluster, int64_t delta);
int64_t qcow2_alloc_clusters(struct qcow2_state *s, uint64_t n);
int64_t qcow2_alloc_bytes(struct qcow2_state *s, uint64_t len);

/* qcow2_meta.c */
int qcow2_write_header(struct qcow2_state *s);
int qcow2_grow_l1(struct qcow2_state *s, uint32_t min_size);
int qcow2_flush_metadata(struct qcow2_state *s);

/* qcow2_write.c */
int qcow2_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off);
int qcow2_write_compressed(struct fmt_image *img, const void *buf, size_t len, uint64_t off);
int qcow2_flush(struct fmt_image *img);

/* qcow2_snapshot.c */
int qcow2_snapshots(struct fmt_image *img, struct fmt_snapshot **out, int *nr);
int qcow2_snapshot_load(struct fmt_image *img, const char *id_or_name);

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

#endif
