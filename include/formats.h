/* formats.h: the disk-image library (libsdformats.a): byte stores (file, block device, URL,
 * cluster VDI), one image driver table (raw, qcow2, qcow, vmdk, vdi, vpc and the read-only
 * formats), and the convert engine that collie's image and vdi import/export commands drive.
 *
 * Conventions for everything here:
 *  - functions return 0 (or a count) on success and a negative errno on failure, after calling
 *    fmt_error() with one line naming the file and the problem ("x.qcow2: L1 table offset past
 *    end of file"); the caller prints fmt_last_error() once and decides whether to exit.
 *  - nothing in formats/ calls exit(), abort() or prints to stdout; progress goes through a
 *    callback.
 *  - every offset, length and count read from a file is checked against the file size and the
 *    format's limits before it is used.
 */
#ifndef FORMATS_H
#define FORMATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- errors --------------------------------------------------------------------------- */

/* Record the current thread's error message (printf-style, no trailing newline). */
void fmt_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message recorded on this thread ("" if none). */
const char *fmt_last_error(void);

/* ---- options: "-o key=value,key=value" and "--object secret,id=..,data=.." ------------------ */

struct fmt_options;  /* ordered key=value list */

/* Parse a qemu-style option string (',,' escapes a comma) and append it; NULL/"" adds nothing. */
int fmt_options_parse(struct fmt_options **opts, const char *text);
int fmt_options_set(struct fmt_options **opts, const char *key, const char *value);
const char *fmt_options_get(const struct fmt_options *opts, const char *key);
/* Mark a key as used; fmt_options_check_unused() reports the first unused one ("Invalid parameter 'x'"). */
void fmt_options_use(const struct fmt_options *opts, const char *key);
int fmt_options_check_unused(const struct fmt_options *opts, const char *fmt_name);
/* Typed getters: missing key -> default; bad value -> -EINVAL with fmt_error set. */
int fmt_options_get_size(const struct fmt_options *opts, const char *key, uint64_t def, uint64_t *out);
int fmt_options_get_bool(const struct fmt_options *opts, const char *key, bool def, bool *out);
void fmt_options_free(struct fmt_options *opts);
/* Secrets registered with --object secret,id=ID,data=D | file=F; looked up by encrypt.key-secret. */
int fmt_secret_add(const char *object_spec);
const char *fmt_secret_get(const char *id);

/* ---- byte stores ------------------------------------------------------------------------ */

/* A byte store holds an image's bytes: a local file, a block device, an http(s)/ftp(s)/tftp URL,
 * or a cluster VDI (sheepdog:VDI, sheepdog:HOST:PORT:VDI, sheepdog://HOST:PORT/VDI). */
struct fmt_store;

struct fmt_store_ops {
	const char *name;                                   /* "file", "host_device", "curl", "sheepdog" */
	bool (*matches)(const char *spec);                  /* does this backend own the spec? */
	int (*open)(struct fmt_store *st, const char *spec, int flags);
	int (*create)(struct fmt_store *st, const char *spec, uint64_t size);  /* optional */
	/* pread: bytes past the end read as zeros (short files are the driver's business to reject) */
	int (*pread)(struct fmt_store *st, void *buf, size_t len, uint64_t off);
	int (*pwrite)(struct fmt_store *st, const void *buf, size_t len, uint64_t off);   /* optional */
	int (*truncate)(struct fmt_store *st, uint64_t size);                            /* optional */
	/* allocated/data run starting at off (SEEK_DATA, VDI index); optional: all data */
	int (*block_status)(struct fmt_store *st, uint64_t off, uint64_t len, bool *data, uint64_t *run);
	int (*discard)(struct fmt_store *st, uint64_t off, uint64_t len);                 /* optional */
	int (*flush)(struct fmt_store *st);
	void (*close)(struct fmt_store *st);
};

struct fmt_store {
	const struct fmt_store_ops *ops;
	char *spec;          /* as given: used in error messages */
	uint64_t size;       /* current size in bytes */
	bool writable;
	bool seekable;       /* false for a server without range support: reads must be sequential */
	void *priv;
};

#define FMT_STORE_RDONLY  0x0
#define FMT_STORE_RDWR    0x1
#define FMT_STORE_CREATE  0x2   /* create (or truncate) the store; size from fmt_store_create */

int fmt_store_open(const char *spec, int flags, struct fmt_store **out);
/* the new store holds at least size bytes, reading as zeros (out may be NULL: closed again) */
int fmt_store_create(const char *spec, uint64_t size, struct fmt_store **out);
int fmt_store_pread(struct fmt_store *st, void *buf, size_t len, uint64_t off);
int fmt_store_pwrite(struct fmt_store *st, const void *buf, size_t len, uint64_t off);
void fmt_store_close(struct fmt_store *st);
/* path of a sibling file (backing file, extent): relative names resolve against spec's directory */
char *fmt_store_sibling(const char *spec, const char *name);
/* spec is a URL: SCHEME://... with a scheme of letters, digits and '+' */
bool fmt_store_is_url(const char *spec);
/* A name held by the image at spec (what: "backing file", "data file", "extent", ...) resolved
 * like fmt_store_sibling into *out (malloc'd). An image at a URL or in a VDI may only name a store
 * at the same scheme and host, or in the same cluster: anything else (a local path, another
 * host or protocol) is refused with -EPERM and a one-line error naming it, unless
 * fmt_store_set_follow_any_name(true) was called (collie's --allow-local-backing). */
int fmt_store_name_resolve(const char *spec, const char *name, const char *what, char **out);
void fmt_store_set_follow_any_name(bool allow);

/* ---- images ------------------------------------------------------------------------------ */

struct fmt_image;

/* block status bits */
#define FMT_BS_DATA       0x1   /* reads return stored data */
#define FMT_BS_ZERO       0x2   /* reads return zeros (known without reading) */
#define FMT_BS_ALLOCATED  0x4   /* allocated in this layer (not from the backing chain) */
#define FMT_BS_COMPRESSED 0x8

struct fmt_snapshot {
	char id[32];
	char name[256];
	uint64_t vm_state_size;
	uint64_t date_sec, date_nsec, vm_clock_nsec;
	uint64_t disk_size;
	uint32_t icount_valid;
};

/* results of a consistency check, as qemu-img check counts them */
struct fmt_check_result {
	uint64_t corruptions, leaks, check_errors;
	uint64_t allocated_clusters, total_clusters, fragmented_clusters, compressed_clusters;
	uint64_t image_end_offset;
};

/* Driver flags */
#define FMT_DRV_WRITE     0x1   /* can open read-write and write data */
#define FMT_DRV_CREATE    0x2   /* can create images */
#define FMT_DRV_COMPRESS  0x4   /* write_compressed works (convert -c) */
#define FMT_DRV_THREADS   0x8   /* read/write may be called from several threads at once */

/* How the disk run at off maps onto img->store: *bits (FMT_BS_*) and *n > 0 bytes mapped alike
 * (stopping at a block end is fine; going past len is allowed and ignored); with FMT_BS_DATA,
 * *host is where off lives in the file, the run's bytes following it contiguously. */
typedef int (*fmt_map_fn)(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
			  uint64_t *host, uint64_t *n);

/* One image format. Only name, probe, open, read (or map) and close are required. */
struct fmt_driver {
	const char *name;        /* as qemu-img: "qcow2", "vmdk", "vpc", "raw" ... */
	unsigned flags;
	/* score 0..100 for the first bytes of a file (len may be less than 4096 for a short file) */
	int (*probe)(const uint8_t *buf, size_t len, const char *spec);
	/* Open img->store (already open). opts carries user options (encrypt.key-secret, ...).
	 * Sets img->virtual_size, img->cluster_size; may open img->backing. */
	int (*open)(struct fmt_image *img, const struct fmt_options *opts);
	/* the whole range: the driver reads what its layer does not hold from the backing chain
	 * (fmt_image_read_backing; fmt_map_read does it for map-based drivers), so a read costs one
	 * mapping lookup per run */
	int (*read)(struct fmt_image *img, void *buf, size_t len, uint64_t off);
	/* instead of read and block_status, a driver whose layer is a run map gives the map:
	 * reads and block status then go through fmt_map_read and fmt_map_block_status */
	fmt_map_fn map;
	int (*write)(struct fmt_image *img, const void *buf, size_t len, uint64_t off);
	/* one whole cluster (or the image tail) at a cluster-aligned offset, stored compressed */
	int (*write_compressed)(struct fmt_image *img, const void *buf, size_t len, uint64_t off);
	/* status of the run starting at off, at most len bytes: *bits (FMT_BS_*), *run > 0 */
	int (*block_status)(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *run);
	/* create at spec with size and -o options (size may come from backing_file when 0) */
	int (*create)(const char *spec, uint64_t size, const struct fmt_options *opts);
	/* format-specific "key: value" lines for image info, JSON-ready (value strings) */
	int (*info)(struct fmt_image *img, void (*emit)(void *ctx, const char *key, const char *value), void *ctx);
	int (*check)(struct fmt_image *img, struct fmt_check_result *res);
	int (*snapshots)(struct fmt_image *img, struct fmt_snapshot **list, int *nr);
	int (*snapshot_load)(struct fmt_image *img, const char *id_or_name);   /* read-only view */
	int (*flush)(struct fmt_image *img);
	void (*close)(struct fmt_image *img);
};

struct fmt_image {
	const struct fmt_driver *drv;
	struct fmt_store *store;
	char *spec;
	uint64_t virtual_size;
	uint32_t cluster_size;      /* allocation unit (0 = none, e.g. raw) */
	bool writable;
	bool encrypted;
	char *backing_spec;         /* as stored in the image, NULL if none */
	char *backing_fmt;
	struct fmt_image *backing;  /* opened backing image or NULL */
	void *priv;                 /* the driver's */
};

/* The driver table (drivers linked in), NULL-terminated. */
const struct fmt_driver *const *fmt_driver_table(void);
const struct fmt_driver *fmt_driver_find(const char *name);
/* Pick a driver by content (never by file name, except dmg as qemu does) */
int fmt_probe(struct fmt_store *st, const struct fmt_driver **drv);

#define FMT_OPEN_RDWR       0x1
#define FMT_OPEN_NO_BACKING 0x2
/* open spec with format fmt (NULL = probe); opens the backing chain (refusing loops and chains
 * deeper than 64). */
int fmt_image_open(const char *spec, const char *fmt, int flags, const struct fmt_options *opts,
		   struct fmt_image **out);
int fmt_image_create(const char *spec, const char *fmt, uint64_t size, const struct fmt_options *opts);
/* read (the driver follows the backing chain); bytes past virtual_size are refused */
int fmt_image_read(struct fmt_image *img, void *buf, size_t len, uint64_t off);
int fmt_image_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off);
int fmt_image_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *run);
int fmt_image_flush(struct fmt_image *img);
void fmt_image_close(struct fmt_image *img);

/* ---- for drivers: reads and block status through a run map ------------------------------ */

/* a driver's read: DATA runs come from img->store (runs contiguous in the file in one pread),
 * ZERO runs read as zeros, runs with neither come from the backing chain (zeros without one) */
int fmt_map_read(struct fmt_image *img, void *buf, size_t len, uint64_t off, fmt_map_fn map);
/* a driver's block_status: the neighbouring runs with the same bits as the first make one run */
int fmt_map_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
			 uint64_t *run, fmt_map_fn map);

/* Where block idx (of block_size bytes) of a table-mapped image starts in img->store: 1 and *host
 * when it is allocated (allocating it first when alloc), 0 when it is not and alloc is false */
typedef int (*fmt_block_fn)(struct fmt_image *img, uint64_t idx, bool alloc, uint64_t *host);
/* a driver's write for an image of nr_blocks fixed-size blocks: a piece that falls in an
 * unallocated block and is all zeros is skipped, every other piece written in place */
int fmt_block_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off, uint64_t block_size,
		    uint64_t nr_blocks, fmt_block_fn locate);

/* a driver's open: the header (the first len bytes of img->store) into buf; a shorter file is
 * refused with "File too small for a <what> header" as qemu words it */
int fmt_image_read_header(struct fmt_image *img, void *buf, size_t len, const char *what);

/* ---- convert ------------------------------------------------------------------------------ */

struct fmt_convert_opts {
	const char *src_fmt, *dst_fmt;    /* NULL: probe / raw */
	struct fmt_image *src_image;      /* the source, already open (src still names it); not closed */
	struct fmt_options *src_opts, *dst_opts;
	const char *snapshot;             /* -l */
	bool compress;                    /* -c */
	bool target_exists;               /* -n */
	bool target_is_zero;              /* --target-is-zero */
	uint64_t min_sparse;              /* -S, bytes; default 4096; 0 = write everything */
	int parallel;                     /* requests in flight (default 8) */
	/* progress: done and total bytes; called from the converting thread */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
};

/* Copy src's virtual disk to dst (created unless target_exists). */
int fmt_convert(const char *src, const char *dst, const struct fmt_convert_opts *o);
/* Byte-compare two images' virtual disks: 0 identical, 1 differ (*first_diff set), <0 error. */
int fmt_compare(struct fmt_image *a, struct fmt_image *b, uint64_t *first_diff);

#endif

/* ---- additions (fmt-core, appended) ---------------------------------------------------------- */

/* The rest of the store operations, dispatched like fmt_store_pread: a store without the
 * operation reports everything as data (block_status), -ENOTSUP (truncate, discard) or 0 (flush). */
int fmt_store_block_status(struct fmt_store *st, uint64_t off, uint64_t len, bool *data, uint64_t *run);
int fmt_store_truncate(struct fmt_store *st, uint64_t size);
/* the range reads as zeros afterwards (punched hole, BLKZEROOUT) */
int fmt_store_discard(struct fmt_store *st, uint64_t off, uint64_t len);
int fmt_store_flush(struct fmt_store *st);
/* Memory stores "mem:NAME" for fuzzing and tests: the buffer is copied; opening an unregistered
 * name fails as a missing file does. Siblings of "mem:X" are "mem:NAME" too (never the disk). */
int fmt_store_mem_register(const char *name, const void *buf, size_t len);
void fmt_store_mem_unregister(const char *name);

/* For drivers: [off, off+len) of img's backing image, zeros past its end or without one (the
 * runs img does not hold). */
int fmt_image_read_backing(struct fmt_image *img, void *buf, size_t len, uint64_t off);

/* Status through the backing chain (what convert and map need): runs not allocated in a layer
 * are looked up in its backing image; *depth is the layer that answered (0 = img itself).
 * Past the end of a shorter backing image the run reads as zero. */
int fmt_image_block_status_deep(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
				uint64_t *run, int *depth);

/* Durability of local file and device stores. By default a flush is an fdatasync(); after
 * fmt_store_set_unsafe(true) it does nothing, as qemu-img convert's default target cache mode
 * "unsafe" (collie image convert and vdi export use it unless -t writeback is given). */
void fmt_store_set_unsafe(bool unsafe);
