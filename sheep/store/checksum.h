/* checksum.h: the layout of one object file (header, per-block crc32c table, data) and the reads
 * and writes that keep data and checksums together. Works on an open file descriptor only: where
 * the file lives is the caller's business. Results are SD_RES_* codes. */
#ifndef SHEEP_STORE_CHECKSUM_H
#define SHEEP_STORE_CHECKSUM_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define OBJ_BLOCK_SHIFT 12
#define OBJ_BLOCK_SIZE  (1u << OBJ_BLOCK_SHIFT)
_Static_assert(OBJ_BLOCK_SIZE == STORE_BLOCK_SIZE, "the block size store.h promises");

/* an empty object of obj_size bytes in a new, empty file: header written, table and data holes */
int objfile_format(int fd, uint64_t obj_size);
/* verified data; a block that fails its checksum, a bad header or a short file: SD_RES_CHECKSUM.
 * Bytes past the object's logical size read as zeros. */
int objfile_read(int fd, uint64_t oid, void *buf, uint32_t len, uint64_t offset);
/* checksums first, then data; fresh: the file was just formatted (no old blocks to verify) */
int objfile_write(int fd, uint64_t oid, const void *buf, uint32_t len, uint64_t offset, bool fresh);
/* every block of the object: *nr_bad blocks fail (first one in *first_bad); SD_RES_CHECKSUM when
 * any does or the header is bad */
int objfile_verify(int fd, uint64_t oid, uint32_t *nr_bad, uint32_t *first_bad);
/* the object's logical size from its header */
int objfile_size(int fd, uint64_t *obj_size);

#endif
