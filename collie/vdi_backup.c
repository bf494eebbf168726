/* vdi_backup.c: collie vdi backup | restore: a snapshot, or the difference between two
 * snapshots, as a self-describing stream (format: lib/backup_stream.c and collie(8)), and
 * applying such a stream to a VDI. restore reads the whole stream first (into a temporary file)
 * and checks every checksum, the record order, the ranges and the base before it changes
 * anything; it records the TO snapshot's identity in the attribute "sheepfold.backup.snapshot"
 * of the snapshot it creates, so that a later incremental stream can tell whether the VDI is at
 * its FROM state. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup_stream.h"
#include "collie.h"
#include "crc32c.h"
#include "sd_client.h"
#include "util.h"
#include "vdi_lifecycle.h"

#define REC_HEADER        BACKUP_REC_HEADER
#define REC_DATA          BACKUP_REC_DATA
#define REC_ZERO          BACKUP_REC_ZERO
#define REC_END           BACKUP_REC_END
#define REC_FLAG_OPTIONAL BACKUP_REC_FLAG_OPTIONAL
#define REC_MAX_PAYLOAD   BACKUP_REC_MAX_PAYLOAD
#define BACKUP_ATTR_KEY   "sheepfold.backup.snapshot"

static uint64_t snapshot_identity(const struct sd_inode_header *h)
{
	return backup_snapshot_identity(h->vdi_id, h->create_time, h->snap_ctime);
}

/* ---- writing ---- */

struct stream_out {
	int fd;
	uint32_t seq;
	uint32_t crc;          /* of everything written so far */
	uint64_t data_bytes;
	int err;
};

static void emit(struct stream_out *o, uint16_t type, uint64_t offset, const void *payload, uint32_t len)
{
	struct backup_rec h;
	backup_rec_fill(&h, type, offset, payload, len, o->seq++);
	if (o->err)
		return;
	if (xwrite(o->fd, &h, sizeof(h)) != sizeof(h) || (len && xwrite(o->fd, payload, len) != (ssize_t)len)) {
		o->err = -errno;
		return;
	}
	o->crc = crc32c(o->crc, &h, sizeof(h));
	o->crc = crc32c(o->crc, payload, len);
	if (type == REC_DATA)
		o->data_bytes += len;
}

static void emit_zero(struct stream_out *o, uint64_t offset, uint64_t n)
{
	emit(o, REC_ZERO, offset, &n, sizeof(n));
}

/* DATA records for [off, off+len) of buf (at most REC_MAX_PAYLOAD each) */
static void emit_data(struct stream_out *o, uint64_t offset, const char *buf, uint64_t len)
{
	while (len) {
		uint32_t n = MIN(len, (uint64_t)REC_MAX_PAYLOAD);
		emit(o, REC_DATA, offset, buf, n);
		offset += n;
		buf += n;
		len -= n;
	}
}

struct object_ctx {
	struct stream_out *o;
	uint64_t base;
	const char *to;
};

static void emit_run(void *arg, int kind, uint64_t start, uint64_t len)
{
	struct object_ctx *c = arg;
	if (kind == REC_DATA)
		emit_data(c->o, c->base + start, c->to + start, len);
	else
		emit_zero(c->o, c->base + start, len);
}

/* one object's records: what differs from `from` (NULL: the non-zero blocks) */
static void emit_object(struct stream_out *o, uint64_t base, const char *to, const char *from, uint64_t len)
{
	struct object_ctx c = { .o = o, .base = base, .to = to };
	backup_diff_runs(to, from, len, emit_run, &c);
}

int vdi_backup(int argc, char **argv)
{
	const char *to_snap = opt('s'), *from_snap = opt('F');
	struct sd_vdi *to = NULL, *from = NULL;
	struct sd_inode_header *th = calloc(1, sizeof(*th)), *fh = calloc(1, sizeof(*fh));
	struct backup_info *info = calloc(1, sizeof(*info));
	char what[300], *tbuf = NULL, *fbuf = NULL;
	struct stream_out out = { .fd = STDOUT_FILENO };
	int ret = -ENOMEM;

	snprintf(what, sizeof(what), "vdi backup %s", argv[0]);
	if (!th || !fh || !info)
		goto fail;
	if (check_vdi_name(argv[0]) < 0 || check_snap_arg(to_snap) < 0 || check_snap_arg(from_snap) < 0) {
		ret = EXIT_USAGE;
		goto out;
	}
	if (!to_snap) {
		die_msg("%s: name the snapshot to back up with -s TAG|ID", what);
		ret = EXIT_USAGE;
		goto out;
	}
	if (isatty(STDOUT_FILENO)) {
		die_msg("%s: standard output is a terminal; redirect it to a file", what);
		ret = EXIT_USAGE;
		goto out;
	}
	ret = sd_vdi_open(sd_addr, sd_port, argv[0], to_snap, false, &to);
	if (ret == SD_RES_NO_TAG || ret == SD_RES_NO_VDI) {
		die_msg("%s: %s", what, ret == SD_RES_NO_TAG ? "no such snapshot" : "no such VDI");
		ret = EXIT_MISSING;
		goto out;
	}
	if (!ret)
		ret = sd_read_inode_header(sd_addr, sd_port, sd_vdi_id(to), th);
	if (ret)
		goto fail;
	if (!th->snap_ctime) {
		die_msg("%s: -s %s names the working VDI; back up a snapshot", what, to_snap);
		ret = EXIT_FAILED;
		goto out;
	}
	if (from_snap) {
		ret = sd_vdi_open(sd_addr, sd_port, argv[0], from_snap, false, &from);
		if (ret == SD_RES_NO_TAG) {
			die_msg("%s: no such snapshot '%s' (-F)", what, from_snap);
			ret = EXIT_MISSING;
			goto out;
		}
		if (!ret)
			ret = sd_read_inode_header(sd_addr, sd_port, sd_vdi_id(from), fh);
		if (ret)
			goto fail;
		if (!fh->snap_ctime || sd_vdi_id(from) == sd_vdi_id(to) ||
		    fh->block_size_shift != th->block_size_shift) {
			die_msg("%s: -F %s must be another snapshot of %s", what, from_snap, argv[0]);
			ret = EXIT_FAILED;
			goto out;
		}
	}

	uint32_t objsize = sd_vdi_object_size(to), nr_to, nr_from = 0;
	const uint32_t *tidx = sd_vdi_index(to, &nr_to), *fidx = from ? sd_vdi_index(from, &nr_from) : NULL;
	uint64_t size = sd_vdi_size(to), fsize = from ? sd_vdi_size(from) : 0;
	info->version = BACKUP_VERSION;
	info->block_size_shift = th->block_size_shift ? th->block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT;
	info->vdi_size = size;
	info->from_id = from ? snapshot_identity(fh) : 0;
	info->to_id = snapshot_identity(th);
	info->from_snap_id = from ? fh->snap_id : 0;
	info->to_snap_id = th->snap_id;
	info->created = time(NULL);
	memcpy(info->name, th->name, sizeof(info->name));
	memcpy(info->to_tag, th->tag, sizeof(info->to_tag));
	if (from)
		memcpy(info->from_tag, fh->tag, sizeof(info->from_tag));
	emit(&out, REC_HEADER, 0, info, sizeof(*info));
	if (!from)
		emit_zero(&out, 0, size);
	tbuf = malloc(objsize);
	fbuf = malloc(objsize);
	if (!tbuf || !fbuf) {
		ret = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < nr_to && !out.err; i++) {
		uint64_t off = (uint64_t)i * objsize, len = MIN((uint64_t)objsize, size - off);
		uint32_t fowner = i < nr_from ? fidx[i] : 0;
		if (from && tidx[i] == fowner)
			continue;                        /* the same object: unchanged */
		if (!from && !tidx[i])
			continue;                        /* a hole: the ZERO record covers it */
		ret = sd_vdi_pread(to, tbuf, len, off);
		if (ret)
			goto fail;
		if (!from) {
			emit_object(&out, off, tbuf, NULL, len);
			continue;
		}
		/* FROM's bytes at these offsets: zeros past its end or where it has no object */
		memset(fbuf, 0, len);
		if (fowner && off < fsize) {
			ret = sd_vdi_pread(from, fbuf, MIN(len, fsize - off), off);
			if (ret)
				goto fail;
		}
		emit_object(&out, off, tbuf, fbuf, len);
	}
	struct backup_end end = { .records = out.seq, .data_bytes = out.data_bytes, .stream_crc = out.crc };
	emit(&out, REC_END, 0, &end, sizeof(end));
	if (out.err) {
		die_msg("%s: writing standard output: %s", what, strerror(-out.err));
		ret = EXIT_FAILED;
		goto out;
	}
	ret = 0;
	goto out;
fail:
	ret = report_failure(what, ret);
out:
	sd_vdi_close(to);
	sd_vdi_close(from);
	free(th);
	free(fh);
	free(info);
	free(tbuf);
	free(fbuf);
	return ret;
}

/* ---- reading ---- */

/* read the whole stream into a temporary file, checking it; *info gets the HEADER payload */
static int spool_and_check(FILE *spool, struct backup_info *info, char *err, size_t errlen)
{
	struct backup_rec h;
	uint32_t crc = 0, seq = 0;
	uint64_t data_bytes = 0;
	char *buf = malloc(REC_MAX_PAYLOAD);
	bool have_info = false;
	int ret = -1;
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		ssize_t n = xread(STDIN_FILENO, &h, sizeof(h));
		if (n < 0) {
			snprintf(err, errlen, "reading standard input: %s", strerror(errno));
			goto out;
		}
		if (n == 0 && !seq) {
			snprintf(err, errlen, "the stream is empty");
			goto out;
		}
		if (n != sizeof(h)) {
			snprintf(err, errlen, "the stream is truncated after record %u (no END record)", seq);
			goto out;
		}
		switch (backup_rec_check(&h, seq)) {
		case BACKUP_REC_OK:
			break;
		case BACKUP_REC_BAD_HEADER:
			snprintf(err, errlen, "bad checksum in the header of record %u: not a backup stream, or damaged", seq);
			goto out;
		case BACKUP_REC_BAD_SEQ:
			snprintf(err, errlen, "record %u is numbered %u: records are missing or out of order", seq, h.seq);
			goto out;
		case BACKUP_REC_TOO_LONG:
			snprintf(err, errlen, "record %u is too long (%u bytes)", seq, h.length);
			goto out;
		}
		n = xread(STDIN_FILENO, buf, h.length);
		if (n != (ssize_t)h.length) {
			snprintf(err, errlen, "the stream is truncated in record %u", seq);
			goto out;
		}
		if (!backup_payload_ok(&h, buf)) {
			snprintf(err, errlen, "bad checksum in the data of record %u", seq);
			goto out;
		}
		if (!seq && h.type != REC_HEADER) {
			snprintf(err, errlen, "the stream does not start with a HEADER record");
			goto out;
		}
		switch (h.type) {
		case REC_HEADER:
			if (seq || h.length < sizeof(*info)) {
				snprintf(err, errlen, "misplaced or short HEADER record %u", seq);
				goto out;
			}
			memcpy(info, buf, sizeof(*info));
			info->name[SD_MAX_VDI_LEN - 1] = info->from_tag[SD_MAX_VDI_TAG_LEN - 1] =
				info->to_tag[SD_MAX_VDI_TAG_LEN - 1] = '\0';
			if (info->version != BACKUP_VERSION) {
				snprintf(err, errlen, "stream format version %u; this collie reads version %u", info->version,
					 BACKUP_VERSION);
				goto out;
			}
			if (info->block_size_shift < 20 || info->block_size_shift > 31 || !info->vdi_size ||
			    info->vdi_size > (UINT64_C(1) << info->block_size_shift) * SD_INODE_DATA_INDEX) {
				snprintf(err, errlen, "the HEADER record describes an impossible VDI");
				goto out;
			}
			have_info = true;
			break;
		case REC_DATA:
		case REC_ZERO: {
			uint64_t len = h.length;
			if (h.type == REC_ZERO) {
				if (h.length != sizeof(uint64_t)) {
					snprintf(err, errlen, "ZERO record %u has a %u-byte payload", seq, h.length);
					goto out;
				}
				memcpy(&len, buf, sizeof(len));
			}
			if (h.offset > info->vdi_size || len > info->vdi_size - h.offset) {
				snprintf(err, errlen, "record %u reaches past the end of the VDI", seq);
				goto out;
			}
			if (h.type == REC_DATA)
				data_bytes += len;
			break;
		}
		case REC_END: {
			struct backup_end end;
			if (h.length != sizeof(end)) {
				snprintf(err, errlen, "END record %u has a %u-byte payload", seq, h.length);
				goto out;
			}
			memcpy(&end, buf, sizeof(end));
			if (end.records != seq || end.data_bytes != data_bytes || end.stream_crc != crc) {
				snprintf(err, errlen, "the END record does not match the stream (records, bytes or checksum)");
				goto out;
			}
			char c;
			if (xread(STDIN_FILENO, &c, 1) != 0) {
				snprintf(err, errlen, "data follows the END record");
				goto out;
			}
			ret = 0;
			goto out;
		}
		default:
			if (!(h.flags & REC_FLAG_OPTIONAL)) {
				snprintf(err, errlen, "record %u has unknown type %u and is not optional", seq, h.type);
				goto out;
			}
			break;
		}
		crc = crc32c(crc, &h, sizeof(h));
		crc = crc32c(crc, buf, h.length);
		if ((h.type == REC_DATA || h.type == REC_ZERO) &&
		    (fwrite(&h, sizeof(h), 1, spool) != 1 || (h.length && fwrite(buf, h.length, 1, spool) != 1))) {
			snprintf(err, errlen, "writing the temporary file: %s", strerror(errno));
			goto out;
		}
		seq++;
	}
out:
	free(buf);
	if (!ret && !have_info) {
		snprintf(err, errlen, "the stream has no HEADER record");
		ret = -1;
	}
	return ret;
}

static int write_vdi_size(uint32_t vid, uint64_t size)
{
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_WRITE_OBJ,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(size) };
	struct sd_rsp rsp;
	req.obj.oid = vid_to_vdi_oid(vid);
	req.obj.offset = offsetof(struct sd_inode, vdi_size);
	return sheep_exec(&req, &size, 0, &rsp);
}

static int discard_object(uint32_t vid, uint32_t idx)
{
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_DISCARD_OBJ };
	struct sd_rsp rsp;
	req.obj.oid = vid_to_data_oid(vid, idx);
	return sheep_exec(&req, NULL, 0, &rsp);
}

static int write_zeros(struct sd_vdi *vdi, uint64_t off, uint64_t len, const char *zeros, uint32_t zlen)
{
	while (len) {
		uint32_t n = MIN(len, (uint64_t)zlen);
		int ret = sd_vdi_pwrite(vdi, zeros, n, off);
		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

/* apply the spooled DATA and ZERO records to NAME's working VDI (vid) */
static int apply_records(const char *name, uint32_t vid, FILE *spool, const struct backup_info *info)
{
	struct sd_vdi *vdi = NULL;
	struct backup_rec h;
	char *buf = malloc(REC_MAX_PAYLOAD), *zeros = calloc(1, 1 << 20);
	uint32_t objsize = UINT32_C(1) << info->block_size_shift;
	int ret = -ENOMEM;
	if (!buf || !zeros)
		goto out;
	rewind(spool);
	while (fread(&h, sizeof(h), 1, spool) == 1) {
		if (h.length && fread(buf, h.length, 1, spool) != 1) {
			ret = -EIO;
			goto out;
		}
		if (!vdi) {
			ret = sd_vdi_open(sd_addr, sd_port, name, NULL, true, &vdi);
			if (ret)
				goto out;
		}
		if (h.type == REC_DATA) {
			ret = sd_vdi_pwrite(vdi, buf, h.length, h.offset);
			if (ret)
				goto out;
			continue;
		}
		/* ZERO: whole objects are discarded, the partial ends written with zeros */
		uint64_t len, off = h.offset;
		memcpy(&len, buf, sizeof(len));
		uint64_t end = off + len, first = DIV_ROUND_UP(off, objsize), last = end / objsize;
		bool discarded = false;
		if (first >= last) {
			ret = write_zeros(vdi, off, len, zeros, 1 << 20);
			if (ret)
				goto out;
			continue;
		}
		ret = write_zeros(vdi, off, first * objsize - off, zeros, 1 << 20);
		if (!ret)
			ret = write_zeros(vdi, last * objsize, end - last * objsize, zeros, 1 << 20);
		if (ret)
			goto out;
		uint32_t nr;
		const uint32_t *index = sd_vdi_index(vdi, &nr);
		for (uint64_t i = first; i < last && i < nr; i++) {
			if (!index[i])
				continue;
			ret = discard_object(vid, i);
			if (ret)
				goto out;
			discarded = true;
		}
		if (discarded) {
			/* the open VDI's copy of the index is stale now */
			ret = sd_vdi_flush(vdi);
			sd_vdi_close(vdi);
			vdi = NULL;
			if (ret)
				goto out;
		}
	}
	ret = vdi ? sd_vdi_flush(vdi) : 0;
out:
	sd_vdi_close(vdi);
	free(buf);
	free(zeros);
	return ret;
}

/* does snapshot ph of name hold the source state from_id: it is that snapshot, or a restore
 * made it and recorded so in its attribute */
static bool snapshot_holds_state(const char *name, const struct sd_inode_header *ph, uint64_t from_id)
{
	char snapid[16];
	uint32_t avid, aid;
	bool yes = false;

	if (snapshot_identity(ph) == from_id)
		return true;
	snprintf(snapid, sizeof(snapid), "%" PRIu32, ph->snap_id);
	if (sd_vdi_attr(sd_addr, sd_port, name, snapid, BACKUP_ATTR_KEY, NULL, 0, 0, &avid, &aid) != SD_RES_SUCCESS)
		return false;
	struct sheepdog_vdi_attr *a = calloc(1, sizeof(*a));
	struct sd_req r2 = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_OBJ, .data_length = sizeof(*a) };
	struct sd_rsp rsp;
	r2.obj.oid = vid_to_attr_oid(avid, aid);
	if (a && sheep_exec(&r2, a, sizeof(*a), &rsp) == 0 && a->value_len == 16) {
		char hex[17];
		memcpy(hex, a->value, 16);
		hex[16] = '\0';
		yes = strtoull(hex, NULL, 16) == from_id;
	}
	free(a);
	return yes;
}

/* an incremental stream's base: the working VDI (header wh, index widx) is unchanged since its
 * parent snapshot (read into ph), and that snapshot holds the state from_id */
static bool restore_base_ok(const char *name, const struct sd_inode_header *wh, struct sd_inode_header *ph,
			    const uint32_t *widx, uint32_t nr_w, uint64_t from_id)
{
	bool ok = false;
	if (!wh->parent_vdi_id || sd_read_inode_header(sd_addr, sd_port, wh->parent_vdi_id, ph) ||
	    !ph->snap_ctime || strcmp(ph->name, wh->name) || ph->vdi_size != wh->vdi_size ||
	    !snapshot_holds_state(name, ph, from_id))
		return false;
	uint32_t *pidx = calloc(nr_w ? nr_w : 1, sizeof(uint32_t));
	if (pidx && sd_read_inode_index(sd_addr, sd_port, wh->parent_vdi_id, pidx, nr_w) == 0)
		ok = !memcmp(pidx, widx, nr_w * sizeof(uint32_t));
	free(pidx);
	return ok;
}

/* after restoring a smaller VDI: the rest of its last object zeroed (so that growing later
 * shows zeros), then its size set */
static int restore_shrink(const char *name, uint32_t wvid, uint64_t new_size, uint64_t old_size, uint8_t shift)
{
	uint64_t objsize = UINT64_C(1) << shift, end = MIN(DIV_ROUND_UP(new_size, objsize) * objsize, old_size);
	struct sd_vdi *vdi;
	int ret = 0;
	if (end > new_size && !(ret = sd_vdi_open(sd_addr, sd_port, name, NULL, true, &vdi))) {
		char *z = calloc(1, end - new_size);
		ret = z ? sd_vdi_pwrite(vdi, z, end - new_size, new_size) : -ENOMEM;
		if (!ret)
			ret = sd_vdi_flush(vdi);
		free(z);
		sd_vdi_close(vdi);
	}
	return ret ? ret : write_vdi_size(wvid, new_size);
}

/* restore's target: NAME exists (*wvid) and has no snapshot tagged tag yet; 0, or an exit
 * status with the reason said */
static int restore_target(const char *what, const char *name, const char *tag, uint32_t *wvid)
{
	uint32_t unused;
	if (check_vdi_name(name) < 0 || check_snap_arg(tag) < 0)
		return EXIT_USAGE;
	if (!tag) {
		die_msg("%s: name the snapshot that will hold the restored state with -s TAG", what);
		return EXIT_USAGE;
	}
	if (sd_snap_is_id(tag)) {
		die_msg("%s: the tag '%s' is a number and could not be told from a snapshot id", what, tag);
		return EXIT_USAGE;
	}
	int ret = sd_vdi_lookup(sd_addr, sd_port, name, NULL, wvid);
	if (ret == SD_RES_NO_VDI) {
		die_msg("%s: no such VDI (create it first)", what);
		return EXIT_MISSING;
	}
	if (ret)
		return report_failure(what, ret);
	ret = sd_vdi_lookup(sd_addr, sd_port, name, tag, &unused);
	if (ret == SD_RES_SUCCESS) {
		die_msg("%s: a snapshot tagged '%s' exists already", what, tag);
		return EXIT_EXISTS;
	}
	return ret == SD_RES_NO_TAG ? 0 : report_failure(what, ret);
}

int vdi_restore(int argc, char **argv)
{
	const char *tag = opt('s');
	struct backup_info *info = calloc(1, sizeof(*info));
	struct sd_inode_header *wh = calloc(1, sizeof(*wh)), *ph = calloc(1, sizeof(*ph));
	uint32_t *widx = NULL, wvid, nr_w;
	FILE *spool = NULL;
	char what[300], err[256];
	bool base_ok = false;
	int ret = -ENOMEM;

	snprintf(what, sizeof(what), "vdi restore %s", argv[0]);
	if (!info || !wh || !ph)
		goto fail;
	/* the target and the tag, before reading anything */
	ret = restore_target(what, argv[0], tag, &wvid);
	if (ret)
		goto out;
	spool = tmpfile();
	if (!spool) {
		die_msg("%s: cannot create a temporary file: %s", what, strerror(errno));
		ret = EXIT_SYSFAIL;
		goto out;
	}
	if (spool_and_check(spool, info, err, sizeof(err)) < 0) {
		die_msg("%s: refusing the stream: %s; nothing was changed", what, err);
		ret = EXIT_FAILED;
		goto out;
	}
	if (fflush(spool)) {
		die_msg("%s: writing the temporary file: %s", what, strerror(errno));
		ret = EXIT_SYSFAIL;
		goto out;
	}

	/* the base: a full stream fits any VDI; an incremental one only the state it starts from */
	ret = sd_read_inode_header(sd_addr, sd_port, wvid, wh);
	if (ret)
		goto fail;
	uint8_t wshift = wh->block_size_shift ? wh->block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT;
	if (wshift != info->block_size_shift) {
		die_msg("%s: the stream has %u-byte objects, %s has %u-byte objects; nothing was changed", what,
			1u << info->block_size_shift, argv[0], 1u << wshift);
		ret = EXIT_FAILED;
		goto out;
	}
	nr_w = DIV_ROUND_UP(wh->vdi_size, UINT64_C(1) << wshift);
	widx = calloc(nr_w ? nr_w : 1, sizeof(uint32_t));
	if (!widx)
		goto fail;
	ret = sd_read_inode_index(sd_addr, sd_port, wvid, widx, nr_w);
	if (ret)
		goto fail;
	if (info->from_id) {
		base_ok = restore_base_ok(argv[0], wh, ph, widx, nr_w, info->from_id);
		if (!base_ok) {
			die_msg("%s: the stream starts from snapshot %u%s%s%s of %s, and %s is not at that state; nothing was changed",
				what, info->from_snap_id, info->from_tag[0] ? " '" : "", info->from_tag,
				info->from_tag[0] ? "'" : "", info->name, argv[0]);
			ret = EXIT_FAILED;
			goto out;
		}
	}
	/* shrinking: only over space the VDI does not use */
	if (info->vdi_size < wh->vdi_size) {
		uint64_t keep = DIV_ROUND_UP(info->vdi_size, UINT64_C(1) << wshift);
		for (uint64_t i = keep; i < nr_w; i++)
			if (widx[i]) {
				die_msg("%s: the backup is smaller than %s, which holds data past %" PRIu64 " bytes; nothing was changed",
					what, argv[0], info->vdi_size);
				ret = EXIT_FAILED;
				goto out;
			}
	}

	/* apply; from here a failure leaves the VDI partly restored (an incremental one is rolled back) */
	if (info->vdi_size > wh->vdi_size) {
		ret = write_vdi_size(wvid, info->vdi_size);
		if (ret)
			goto fail;
	}
	ret = apply_records(argv[0], wvid, spool, info);
	if (!ret && info->vdi_size < wh->vdi_size)
		ret = restore_shrink(argv[0], wvid, info->vdi_size, wh->vdi_size, wshift);
	if (ret) {
		if (base_ok) {
			char snapid[16];
			snprintf(snapid, sizeof(snapid), "%" PRIu32, ph->snap_id);
			if (sd_vdi_rollback(sd_addr, sd_port, argv[0], snapid) == 0) {
				die_msg("%s: applying the stream failed (%s); %s was rolled back", what, sd_strerror(ret), argv[0]);
				ret = exit_status(ret);
				goto out;
			}
		}
		goto fail;
	}
	ret = sd_vdi_snapshot(sd_addr, sd_port, argv[0], tag, NULL);
	if (ret)
		goto fail;
	char val[17];
	snprintf(val, sizeof(val), "%016" PRIx64, info->to_id);
	ret = sd_vdi_attr(sd_addr, sd_port, argv[0], tag, BACKUP_ATTR_KEY, val, 16, SD_FLAG_CMD_CREAT, NULL, NULL);
	if (ret) {
		die_msg("%s: restored into snapshot '%s', but cannot record which backup it holds: %s", what, tag,
			sd_strerror(ret));
		ret = exit_status(ret);
		goto out;
	}
	ret = 0;
	goto out;
fail:
	ret = report_failure(what, ret);
out:
	if (spool)
		fclose(spool);
	free(info);
	free(wh);
	free(ph);
	free(widx);
	return ret;
}
