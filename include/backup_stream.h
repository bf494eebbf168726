/* backup_stream.h: the vdi backup stream (records, checksums, block diff), shared by collie and
 * the unit tests. The format is described in lib/backup_stream.c and collie(8). */
#ifndef BACKUP_STREAM_H
#define BACKUP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sheepdog_proto.h"

#define BACKUP_MAGIC      0x4b424653u    /* the bytes "SFBK" */
#define BACKUP_VERSION    1
#define BACKUP_REC_HEADER 1
#define BACKUP_REC_DATA   2
#define BACKUP_REC_ZERO   3
#define BACKUP_REC_END    4
#define BACKUP_REC_FLAG_OPTIONAL 0x1
#define BACKUP_REC_MAX_PAYLOAD   (16u << 20)
#define BACKUP_BLOCK      4096

struct backup_rec {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint64_t offset;
	uint32_t length;
	uint32_t payload_crc;
	uint32_t seq;
	uint32_t header_crc;
};
SD_CHECK(sizeof(struct backup_rec) == 32);

/* HEADER payload */
struct backup_info {
	uint32_t version;
	uint32_t block_size_shift;
	uint64_t vdi_size;
	uint64_t from_id;          /* 0: a full stream */
	uint64_t to_id;
	uint32_t from_snap_id;
	uint32_t to_snap_id;
	uint64_t created;          /* seconds since 1970 */
	char name[SD_MAX_VDI_LEN];
	char from_tag[SD_MAX_VDI_TAG_LEN];
	char to_tag[SD_MAX_VDI_TAG_LEN];
};
SD_CHECK(sizeof(struct backup_info) == 816);

/* END payload */
struct backup_end {
	uint64_t records;
	uint64_t data_bytes;
	uint32_t stream_crc;
	uint32_t pad;
};
SD_CHECK(sizeof(struct backup_end) == 24);

enum backup_rec_error {
	BACKUP_REC_OK = 0,
	BACKUP_REC_BAD_HEADER,     /* magic or header checksum */
	BACKUP_REC_BAD_SEQ,
	BACKUP_REC_TOO_LONG,
};

/* a record header for payload[len] at offset, numbered seq, with both checksums */
void backup_rec_fill(struct backup_rec *r, uint16_t type, uint64_t offset, const void *payload, uint32_t len,
		     uint32_t seq);
/* is the header intact and the expected record? */
enum backup_rec_error backup_rec_check(const struct backup_rec *r, uint32_t want_seq);
bool backup_payload_ok(const struct backup_rec *r, const void *payload);
/* FNV-1a-64 over a snapshot's vdi_id, create_time and snap_ctime */
uint64_t backup_snapshot_identity(uint32_t vdi_id, uint64_t create_time, uint64_t snap_ctime);

/*
 * The records one object needs: the BACKUP_BLOCK blocks of to[0, len) that differ from
 * from[0, len) (from NULL: the non-zero blocks, for a full stream that starts from zeros),
 * merged into runs; a run whose blocks in `to` are all zero is a ZERO run, else DATA.
 * emit(kind, start, length) is called for each run in order. Returns the number of runs.
 */
size_t backup_diff_runs(const char *to, const char *from, uint64_t len,
			void (*emit)(void *ctx, int kind, uint64_t start, uint64_t length), void *ctx);

#endif
