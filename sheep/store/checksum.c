/* checksum.c: one object file = a 4 KiB header, a crc32c table (two 4-byte slots per 4 KiB block)
 * and the data. Every read verifies the blocks it touches before it answers; every write puts the
 * checksums of the new blocks in the table before it writes the data. Knows file descriptors only.
 *
 * On-disk layout, version 1 (host byte order):
 *   [0, 32)                  header: magic "SHEEPOBJ", version 1, block shift 12, logical object
 *                            size, data offset, crc32c of the 28 bytes before it; the rest of the
 *                            first 4 KiB is zero
 *   [4096, data_offset)      table: for block i at 4096 + 8 * i, { cur, prev }, each stored as
 *                            crc32c(block) XOR crc32c(zero block of that length), so a hole in
 *                            the table (never written) means "this block is all zeros"
 *   [data_offset, +size)     data, sparse where never written; data_offset = 4096 +
 *                            round_up(8 * blocks, 4096); the last block may be shorter than 4 KiB
 * A write sets { cur = new, prev = old cur } and only then writes the data, so a sheep killed
 * between the two leaves a block that matches prev: a block verifies when it matches either slot,
 * and whichever it matches says whether it is the old or the new version. A file shorter than
 * data_offset + size (it is created at full length) fails like a bad block. */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../alloc.h"
#include "crc32c.h"
#include "internal_proto.h"
#include "logger.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "checksum.h"
#include "fault.h"

#define OBJ_MAGIC        "SHEEPOBJ"
#define OBJ_VERSION      1
#define OBJ_TABLE_OFFSET 4096u

struct obj_header {
	char magic[8];
	uint32_t version;
	uint32_t block_shift;
	uint64_t obj_size;
	uint32_t data_offset;
	uint32_t crc;          /* of the bytes before it */
};

struct crc_slot {
	uint32_t cur, prev;    /* XOR the zero block's crc */
};

/* the blocks covering [start, end) of the data, end clipped to the object's size */
struct span {
	uint64_t start, end;
	uint32_t first, nr;
};

static const char zero_block[OBJ_BLOCK_SIZE];
static uint32_t zero_crc_full;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void init_zero_crc(void)
{
	zero_crc_full = crc32c(0, zero_block, OBJ_BLOCK_SIZE);
}

static uint32_t zero_crc(uint32_t len)
{
	pthread_once(&zero_once, init_zero_crc);
	return len == OBJ_BLOCK_SIZE ? zero_crc_full : crc32c(0, zero_block, len);
}

static uint64_t round_up_block(uint64_t n)
{
	return (n + OBJ_BLOCK_SIZE - 1) & ~(uint64_t)(OBJ_BLOCK_SIZE - 1);
}

static uint32_t data_offset_for(uint64_t obj_size)
{
	uint64_t blocks = (obj_size + OBJ_BLOCK_SIZE - 1) >> OBJ_BLOCK_SHIFT;
	return OBJ_TABLE_OFFSET + round_up_block(blocks * sizeof(struct crc_slot));
}

int objfile_format(int fd, uint64_t obj_size)
{
	struct obj_header h = { .version = OBJ_VERSION, .block_shift = OBJ_BLOCK_SHIFT,
				.obj_size = obj_size, .data_offset = data_offset_for(obj_size) };
	memcpy(h.magic, OBJ_MAGIC, sizeof(h.magic));
	h.crc = crc32c(0, &h, offsetof(struct obj_header, crc));
	if (ftruncate(fd, (off_t)h.data_offset + obj_size) < 0 ||
	    xpwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return errno == ENOSPC ? SD_RES_NO_SPACE : SD_RES_EIO;
	return SD_RES_SUCCESS;
}

static int read_header(int fd, uint64_t oid, struct obj_header *h)
{
	ssize_t n = xpread(fd, h, sizeof(*h), 0);
	if (n < 0) {
		sd_err("%016" PRIx64 ": header: %m", oid);
		return SD_RES_EIO;
	}
	if (n != sizeof(*h) || memcmp(h->magic, OBJ_MAGIC, sizeof(h->magic)) ||
	    h->crc != crc32c(0, h, offsetof(struct obj_header, crc)) || h->version != OBJ_VERSION ||
	    h->block_shift != OBJ_BLOCK_SHIFT || h->data_offset != data_offset_for(h->obj_size)) {
		sd_err("%016" PRIx64 ": object header is damaged (block header)", oid);
		return SD_RES_CHECKSUM;
	}
	return SD_RES_SUCCESS;
}

int objfile_size(int fd, uint64_t *obj_size)
{
	struct obj_header h;
	int ret = read_header(fd, 0, &h);
	if (ret == SD_RES_SUCCESS)
		*obj_size = h.obj_size;
	return ret;
}

static struct span span_of(const struct obj_header *h, uint64_t offset, uint64_t len)
{
	struct span s;
	s.first = offset >> OBJ_BLOCK_SHIFT;
	s.start = (uint64_t)s.first << OBJ_BLOCK_SHIFT;
	s.end = MIN(round_up_block(offset + len), h->obj_size);
	s.nr = (s.end - s.start + OBJ_BLOCK_SIZE - 1) >> OBJ_BLOCK_SHIFT;
	return s;
}

static uint32_t block_len(const struct span *s, uint32_t i)
{
	uint64_t b = s->start + ((uint64_t)i << OBJ_BLOCK_SHIFT);
	return MIN(OBJ_BLOCK_SIZE, s->end - b);
}

/* the table slots of the span (holes read as zeros) */
static int read_slots(int fd, uint64_t oid, const struct span *s, struct crc_slot *slots)
{
	size_t len = s->nr * sizeof(*slots);
	ssize_t n = xpread(fd, slots, len, OBJ_TABLE_OFFSET + (uint64_t)s->first * sizeof(*slots));
	if (n < 0) {
		sd_err("%016" PRIx64 ": checksum table: %m", oid);
		return SD_RES_EIO;
	}
	if ((size_t)n < len)
		memset((char *)slots + n, 0, len - n);   /* the data read will find the file short */
	return SD_RES_SUCCESS;
}

static int read_span(int fd, uint64_t oid, const struct obj_header *h, const struct span *s, char *data)
{
	size_t len = s->end - s->start;
	ssize_t n = xpread(fd, data, len, h->data_offset + s->start);
	if (n < 0) {
		sd_err("%016" PRIx64 ": read: %m", oid);
		return SD_RES_EIO;
	}
	fault_corrupt(oid, data, n);
	if ((size_t)n < len) {
		sd_err("%016" PRIx64 ": object file is short: block %" PRIu64 " is missing", oid,
		       (s->start + n) >> OBJ_BLOCK_SHIFT);
		return SD_RES_CHECKSUM;
	}
	return SD_RES_SUCCESS;
}

/* a block's table value. The bench build (make NO_CRC=1, build-nocrc/, tests/bench/checksum
 * only) keeps the table and its I/O but computes nothing: every value is 0, so the bench shows
 * what the crc32c computation itself costs. Its stores do not verify in any other build. */
static uint32_t block_crc(const char *data, uint32_t len)
{
#ifdef SD_BENCH_NO_CRC
	(void)zero_crc;
	return 0;
#else
	return crc32c(0, data, len) ^ zero_crc(len);
#endif
}

static bool block_ok(const char *data, uint32_t len, const struct crc_slot *slot)
{
	uint32_t c = block_crc(data, len);
	return c == slot->cur || c == slot->prev;
}

/* blocks [from, to) of the span, whose data starts at data; the first bad one in *bad */
static bool blocks_ok(const struct span *s, const char *data, const struct crc_slot *slots, uint32_t from,
		      uint32_t to, uint32_t *bad)
{
	for (uint32_t i = from; i < to; i++)
		if (!block_ok(data + ((uint64_t)i << OBJ_BLOCK_SHIFT), block_len(s, i), &slots[i])) {
			*bad = s->first + i;
			return false;
		}
	return true;
}

int objfile_read(int fd, uint64_t oid, void *buf, uint32_t len, uint64_t offset)
{
	struct obj_header h;
	int ret = read_header(fd, oid, &h);
	if (ret)
		return ret;
	uint32_t in = offset >= h.obj_size ? 0 : MIN(len, h.obj_size - offset);
	memset((char *)buf + in, 0, len - in);
	if (!in)
		return SD_RES_SUCCESS;
	struct span s = span_of(&h, offset, in);
	bool direct = s.start == offset && s.end == offset + in;
	char *data = direct ? buf : xmalloc(s.end - s.start);
	struct crc_slot *slots = xmalloc(s.nr * sizeof(*slots));
	uint32_t bad;
	/* data before slots: a write racing with this read updates slots first, so the old data
	 * still matches the new slots' prev */
	if ((ret = read_span(fd, oid, &h, &s, data)) || (ret = read_slots(fd, oid, &s, slots)))
		goto out;
	if (!blocks_ok(&s, data, slots, 0, s.nr, &bad)) {
		sd_err("%016" PRIx64 ": block %u fails its checksum", oid, bad);
		ret = SD_RES_CHECKSUM;
		goto out;
	}
	if (!direct)
		memcpy(buf, data + (offset - s.start), in);
out:
	free(slots);
	if (!direct)
		free(data);
	return ret;
}

/* the old content of the span around an unaligned write, verified where the write keeps some of
 * it (the first and last block); a fresh object's is zeros */
static int merge_partial(int fd, uint64_t oid, const struct obj_header *h, const struct span *s,
			 const struct crc_slot *slots, bool fresh, char *data)
{
	uint32_t bad;
	if (fresh) {
		memset(data, 0, s->end - s->start);
		return SD_RES_SUCCESS;
	}
	int ret = read_span(fd, oid, h, s, data);
	if (ret)
		return ret;
	if (!blocks_ok(s, data, slots, 0, 1, &bad) || !blocks_ok(s, data, slots, s->nr - 1, s->nr, &bad)) {
		sd_err("%016" PRIx64 ": block %u fails its checksum; the write into it is refused", oid, bad);
		return SD_RES_CHECKSUM;
	}
	return SD_RES_SUCCESS;
}

int objfile_write(int fd, uint64_t oid, const void *buf, uint32_t len, uint64_t offset, bool fresh)
{
	struct obj_header h;
	int ret = read_header(fd, oid, &h);
	if (ret)
		return ret;
	if (offset + len > h.obj_size)
		return SD_RES_INVALID_PARMS;
	if (!len || (fresh && is_all_zero(buf, len)))
		return SD_RES_SUCCESS;    /* holes already read as zeros with a zero block's checksum */
	struct span s = span_of(&h, offset, len);
	bool direct = s.start == offset && s.end == offset + len;
	struct crc_slot *slots = xzalloc(s.nr * sizeof(*slots));
	char *data = direct ? (char *)buf : xmalloc(s.end - s.start);
	if (!fresh && (ret = read_slots(fd, oid, &s, slots)))
		goto out;
	if (!direct) {
		if ((ret = merge_partial(fd, oid, &h, &s, slots, fresh, data)))
			goto out;
		memcpy(data + (offset - s.start), buf, len);
	}
	for (uint32_t i = 0; i < s.nr; i++) {
		uint32_t bl = block_len(&s, i);
		uint32_t c = block_crc(data + ((uint64_t)i << OBJ_BLOCK_SHIFT), bl);
		slots[i].prev = fresh ? c : slots[i].cur;
		slots[i].cur = c;
	}
	size_t slen = s.nr * sizeof(*slots);
	if (xpwrite(fd, slots, slen, OBJ_TABLE_OFFSET + (uint64_t)s.first * sizeof(*slots)) != (ssize_t)slen ||
	    xpwrite(fd, buf, len, h.data_offset + offset) != (ssize_t)len) {
		sd_err("%016" PRIx64 ": write: %m", oid);
		ret = errno == ENOSPC || errno == EDQUOT ? SD_RES_NO_SPACE : SD_RES_EIO;
	}
out:
	free(slots);
	if (!direct)
		free(data);
	return ret;
}

#define VERIFY_CHUNK (1u << 20)

int objfile_verify(int fd, uint64_t oid, uint32_t *nr_bad, uint32_t *first_bad)
{
	struct obj_header h;
	*nr_bad = 0;
	int ret = read_header(fd, oid, &h);
	if (ret)
		return ret;
	char *data = xmalloc(VERIFY_CHUNK);
	struct crc_slot *slots = xmalloc(VERIFY_CHUNK / OBJ_BLOCK_SIZE * sizeof(*slots));
	for (uint64_t off = 0; off < h.obj_size && ret != SD_RES_EIO; off += VERIFY_CHUNK) {
		struct span s = span_of(&h, off, MIN(VERIFY_CHUNK, h.obj_size - off));
		int r = read_span(fd, oid, &h, &s, data);
		if (r == SD_RES_SUCCESS)
			r = read_slots(fd, oid, &s, slots);
		if (r == SD_RES_EIO) {
			ret = r;
			break;
		}
		for (uint32_t i = 0; i < s.nr; i++) {
			if (r == SD_RES_SUCCESS && blocks_ok(&s, data, slots, i, i + 1, &(uint32_t){ 0 }))
				continue;
			if (!(*nr_bad)++)
				*first_bad = s.first + i;
		}
	}
	free(slots);
	free(data);
	if (ret == SD_RES_SUCCESS && *nr_bad) {
		sd_err("%016" PRIx64 ": %u blocks fail their checksums, the first is block %u", oid, *nr_bad,
		       *first_bad);
		ret = SD_RES_CHECKSUM;
	}
	return ret;
}
