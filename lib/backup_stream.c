/* backup_stream.c: records of the vdi backup stream and the block diff that produces them.
 *
 * Format version 1; every integer little-endian. A stream is a sequence of records; each is a
 * 32-byte header followed by `length` payload bytes:
 *
 *   off size field
 *     0    4 magic        0x4b424653 (the bytes "SFBK")
 *     4    2 type         1 HEADER, 2 DATA, 3 ZERO, 4 END; others are extensions
 *     6    2 flags        bit 0 OPTIONAL: a reader that does not know the type skips the record;
 *                         an unknown type without it makes the stream unreadable
 *     8    8 offset       byte offset in the VDI (DATA, ZERO; 0 otherwise)
 *    16    4 length       payload bytes after the header (at most 16 MiB)
 *    20    4 payload_crc  CRC-32C of the payload
 *    24    4 seq          record number, from 0
 *    28    4 header_crc   CRC-32C of header bytes 0-27
 *
 * HEADER (first record, once): struct backup_info: format version, object size shift and size
 * of the VDI at the TO snapshot, the identities of the FROM (0 for a full stream) and TO
 * snapshots, and for people the VDI name, tags, snapshot ids and the creation time.
 * DATA: the bytes at [offset, offset + length).
 * ZERO: payload u64 n: [offset, offset + n) reads as zeros. A full stream starts with a ZERO
 * record over the whole VDI, and its DATA records then hold only non-zero 4 KiB blocks.
 * END (last record, once): struct backup_end: records before END, DATA bytes, and the CRC-32C
 * of every byte of the stream before the END record. Nothing may follow it.
 * Records apply in stream order. A snapshot's identity is FNV-1a-64 over its VDI id (u32),
 * create_time and snap_ctime (u64 each, little-endian). */
#include <string.h>

#include "backup_stream.h"
#include "crc32c.h"
#include "util.h"

void backup_rec_fill(struct backup_rec *r, uint16_t type, uint64_t offset, const void *payload, uint32_t len,
		     uint32_t seq)
{
	memset(r, 0, sizeof(*r));
	r->magic = BACKUP_MAGIC;
	r->type = type;
	r->offset = offset;
	r->length = len;
	r->payload_crc = crc32c(0, payload, len);
	r->seq = seq;
	r->header_crc = crc32c(0, r, offsetof(struct backup_rec, header_crc));
}

enum backup_rec_error backup_rec_check(const struct backup_rec *r, uint32_t want_seq)
{
	if (r->magic != BACKUP_MAGIC || r->header_crc != crc32c(0, r, offsetof(struct backup_rec, header_crc)))
		return BACKUP_REC_BAD_HEADER;
	if (r->seq != want_seq)
		return BACKUP_REC_BAD_SEQ;
	if (r->length > BACKUP_REC_MAX_PAYLOAD)
		return BACKUP_REC_TOO_LONG;
	return BACKUP_REC_OK;
}

bool backup_payload_ok(const struct backup_rec *r, const void *payload)
{
	return r->payload_crc == crc32c(0, payload, r->length);
}

uint64_t backup_snapshot_identity(uint32_t vdi_id, uint64_t create_time, uint64_t snap_ctime)
{
	uint8_t b[20];
	for (int i = 0; i < 4; i++)
		b[i] = vdi_id >> (8 * i);
	for (int i = 0; i < 8; i++) {
		b[4 + i] = create_time >> (8 * i);
		b[12 + i] = snap_ctime >> (8 * i);
	}
	return fnv_64a_buf(b, sizeof(b), FNV1A_64_INIT);
}

size_t backup_diff_runs(const char *to, const char *from, uint64_t len,
			void (*emit)(void *ctx, int kind, uint64_t start, uint64_t length), void *ctx)
{
	uint64_t run = 0, i;
	int kind = 0;    /* 0 none, else the kind of the run in progress */
	size_t nr = 0;
	for (i = 0;; i += BACKUP_BLOCK) {
		int k = 0;
		uint64_t n = i < len ? MIN((uint64_t)BACKUP_BLOCK, len - i) : 0;
		if (n) {
			bool zero = is_all_zero(to + i, n);
			if (from ? memcmp(to + i, from + i, n) != 0 : !zero)
				k = zero ? BACKUP_REC_ZERO : BACKUP_REC_DATA;
		}
		if (k != kind) {
			if (kind) {
				emit(ctx, kind, run, MIN(i, len) - run);
				nr++;
			}
			kind = k;
			run = i;
		}
		if (!n)
			break;
	}
	return nr;
}
