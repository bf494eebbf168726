/* vmdk_state.h: VMDK on-disk constants, the extent list and driver state shared by the vmdk_*.c
 * files, with what each of them offers the others. Nothing here is part of the library contract. */
#ifndef FMT_VMDK_STATE_H
#define FMT_VMDK_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "formats.h"

#define VMDK_SECTOR          512u
#define VMDK4_MAGIC          "KDMV"
#define VMDK3_MAGIC          "COWD"
#define VMDK4_FLAG_NL_DETECT 0x1
#define VMDK4_FLAG_RGD       0x2
#define VMDK4_FLAG_ZERO_GRAIN 0x4
#define VMDK4_FLAG_COMPRESS  0x10000
#define VMDK4_FLAG_MARKER    0x20000
#define VMDK4_COMPRESS_DEFLATE 1
#define VMDK_GD_AT_END       0xffffffffffffffffull
#define VMDK_GTE_ZEROED      1u
#define VMDK_MARKER_EOS      0
#define VMDK_MARKER_GT       1
#define VMDK_MARKER_GD       2
#define VMDK_MARKER_FOOTER   3
#define VMDK_MAX_GRAIN       0x200000ull      /* sectors (1 GiB), qemu's limit */
#define VMDK_MAX_GTES        512u
#define VMDK_MAX_L1          (32u << 20)
#define VMDK_MAX_DESC        (1u << 20)
#define VMDK_MAX_EXTENTS     4096
#define VMDK_GT_CACHE        64
#define VMDK_SPLIT_SIZE      0x80000000ull    /* twoGbMaxExtent* files */
#define VMDK_DESC_SECTORS    20

struct vmdk4_header {
	char magic[4];
	uint32_t version;
	uint32_t flags;
	uint64_t capacity;
	uint64_t granularity;
	uint64_t desc_offset;
	uint64_t desc_size;
	uint32_t num_gtes_per_gt;
	uint64_t rgd_offset;
	uint64_t gd_offset;
	uint64_t grain_offset;
	uint8_t filler;
	uint8_t check_bytes[4];
	uint16_t compress_algorithm;
	uint8_t pad[433];
} __attribute__((packed));

struct vmdk3_header {
	char magic[4];
	uint32_t version;
	uint32_t flags;
	uint32_t disk_sectors;
	uint32_t granularity;
	uint32_t l1dir_offset;
	uint32_t l1dir_size;
	uint32_t file_sectors;
	uint32_t cylinders, heads, sectors_per_track;
} __attribute__((packed));

_Static_assert(sizeof(struct vmdk4_header) == VMDK_SECTOR, "VMDK4 header size");

enum vmdk_extent_type { VMDK_FLAT, VMDK_SPARSE, VMDK_COWD, VMDK_ZERO };

struct vmdk_gt_slot {
	uint64_t index;     /* GT number, UINT64_MAX = empty */
	bool dirty;
	uint32_t *gt;       /* host byte order */
};

struct vmdk_extent {
	enum vmdk_extent_type type;
	char *filename;             /* as in the descriptor */
	struct fmt_store *store;
	bool own_store;             /* false when it is img->store */
	uint64_t start;             /* virtual byte offset of the extent */
	uint64_t length;            /* bytes */
	uint64_t flat_offset;       /* FLAT: byte offset in the file */
	/* sparse */
	uint32_t version, flags;
	uint64_t grain;             /* bytes */
	uint32_t gtes;              /* entries per GT */
	uint32_t l1_size;
	uint32_t *gd, *rgd;         /* sector offsets of the GTs, host order; rgd may be NULL */
	uint64_t gd_offset, rgd_offset;   /* sectors */
	bool compressed, markers, zeroed_grain;
	uint64_t next_sector;       /* where the next grain (or GT) is appended */
	struct vmdk4_header header; /* KDMV only: as read (the footer's copy for stream files) */
	bool has_footer;            /* stream file ended in footer + EOS when opened */
	bool stream_dirty;          /* grains were appended: close rewrites the footer */
	struct vmdk_gt_slot cache[VMDK_GT_CACHE];
};

struct vmdk_state {
	struct vmdk_extent *ext;
	int nr_ext;
	char create_type[64];
	uint32_t cid, parent_cid;
	bool have_desc;
	uint8_t *grain_buf;         /* one grain, scratch for merges */
	size_t zbuf_size;           /* room for one compressed grain and its marker */
	size_t grain_buf_size;
	/* streamOptimized: a partly written grain not yet compressed */
	int pend_ext;               /* -1 = none */
	uint64_t pend_grain;        /* grain number within the extent */
	uint8_t *pend_buf;
	pthread_mutex_t lock;
};

/* the grain *g holding extent offset eoff, eoff's place *in_grain inside it, and the bytes of
 * len that lie in that grain */
static inline size_t vmdk_grain_run(const struct vmdk_extent *e, uint64_t eoff, size_t len, uint64_t *g,
				    uint64_t *in_grain)
{
	size_t n;

	*g = eoff / e->grain;
	*in_grain = eoff % e->grain;
	n = e->grain - *in_grain;
	return n < len ? n : len;
}

/* vmdk_descriptor.c */
struct vmdk_extent *vmdk_add_extent(struct fmt_image *img);
int vmdk_open_descriptor_file(struct fmt_image *img);
int vmdk_open_monolithic(struct fmt_image *img);

/* vmdk_sparse.c */
int vmdk_open_sparse4(struct fmt_image *img, struct vmdk_extent *e, uint64_t desc_sectors);
int vmdk_open_cowd(struct fmt_image *img, struct vmdk_extent *e);
int vmdk_flush_gts(struct vmdk_extent *e);
int vmdk_gte(struct vmdk_extent *e, uint64_t g, uint32_t *gte);
int vmdk_set_gte(struct vmdk_extent *e, uint64_t g, uint32_t val);
int vmdk_read_sparse(struct fmt_image *img, int ei, uint8_t *buf, size_t len, uint64_t eoff);
int vmdk_write_sparse(struct fmt_image *img, int ei, const uint8_t *buf, size_t len, uint64_t eoff);

/* vmdk_stream.c */
int vmdk_stream_put(struct fmt_image *img, int ei, uint64_t g, const uint8_t *data, bool locked);
int vmdk_flush_pending(struct fmt_image *img);
int vmdk_finish_stream(struct fmt_image *img, struct vmdk_extent *e);
int vmdk_write_stream(struct fmt_image *img, int ei, const uint8_t *buf, size_t len, uint64_t eoff);

/* vmdk_create.c */
int vmdk_create(const char *spec, uint64_t size, const struct fmt_options *opts);

#endif
