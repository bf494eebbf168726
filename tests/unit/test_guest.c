/* test_guest.c: the sheepdog guest flow of lib/sd_client.c against an in-memory fake cluster (no
 * sockets): the exact requests protocol.md prescribes for lookup, locking, reads from the owner,
 * first writes (COW from a parent), the 4-byte index update, zeroing, flush, release, and the
 * reload after a snapshot taken under an open VDI. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "internal_proto.h"
#include "sd_client.h"

#define FAKE_OBJS 64
#define FAKE_LOG  256
#define OBJ_SHIFT 20
#define OBJ       (1u << OBJ_SHIFT)

struct fake_req {
	uint8_t op;
	uint16_t flags;
	uint64_t oid, cow;
	uint32_t offset, len, vid;
	uint32_t word;            /* first 4 payload bytes (index updates) */
};

struct fake {
	struct { uint64_t oid; uint8_t *buf; size_t size; } obj[FAKE_OBJS];
	int nr_obj;
	struct fake_req log[FAKE_LOG];
	int nr_log;
	uint32_t readonly_vid;    /* data writes to this vid fail with READONLY (a snapshot now) */
};

static struct fake *fake_new(void)
{
	return calloc(1, sizeof(struct fake));
}

static void fake_free(struct fake *f)
{
	for (int i = 0; i < f->nr_obj; i++)
		free(f->obj[i].buf);
	free(f);
}

static int fake_find(struct fake *f, uint64_t oid)
{
	for (int i = 0; i < f->nr_obj; i++)
		if (f->obj[i].oid == oid && f->obj[i].buf)
			return i;
	return -1;
}

static uint8_t *fake_put(struct fake *f, uint64_t oid, size_t size)
{
	int i = fake_find(f, oid);
	if (i < 0) {
		i = f->nr_obj++;
		f->obj[i].oid = oid;
		f->obj[i].buf = calloc(1, size);
		f->obj[i].size = size;
	}
	return f->obj[i].buf;
}

static struct sd_inode *fake_inode(struct fake *f, uint32_t vid)
{
	int i = fake_find(f, vid_to_vdi_oid(vid));
	return i < 0 ? NULL : (struct sd_inode *)f->obj[i].buf;
}

static struct sd_inode *fake_vdi(struct fake *f, const char *name, const char *tag, uint32_t vid, uint32_t nr_objs)
{
	struct sd_inode *ino = (struct sd_inode *)fake_put(f, vid_to_vdi_oid(vid), SD_INODE_SIZE);
	strcpy(ino->name, name);
	strcpy(ino->tag, tag);
	ino->snap_ctime = tag[0] ? 1 : 0;
	ino->vdi_size = (uint64_t)nr_objs * OBJ;
	ino->block_size_shift = OBJ_SHIFT;
	ino->nr_copies = 3;
	ino->vdi_id = vid;
	ino->snap_id = 1;
	return ino;
}

static uint8_t *fake_data(struct fake *f, uint32_t vid, uint32_t idx, int fill)
{
	uint8_t *b = fake_put(f, vid_to_data_oid(vid, idx), OBJ);
	memset(b, fill, OBJ);
	fake_inode(f, vid)->data_vdi_id[idx] = vid;
	return b;
}

/* the cluster: names by inode contents, objects in memory */
static int fake_exec(void *ctx, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp)
{
	struct fake *f = ctx;
	struct fake_req *l = &f->log[f->nr_log < FAKE_LOG ? f->nr_log++ : FAKE_LOG - 1];
	uint64_t oid = hdr->obj.oid;
	int ret = SD_RES_SUCCESS, i;

	memset(rsp, 0, sizeof(*rsp));
	memset(l, 0, sizeof(*l));
	l->op = hdr->opcode;
	l->flags = hdr->flags;
	l->oid = oid;
	l->cow = hdr->obj.cow_oid;
	l->offset = hdr->obj.offset;
	l->len = hdr->data_length;
	l->vid = hdr->vdi.base_vdi_id;
	if ((hdr->flags & SD_FLAG_CMD_WRITE) && hdr->data_length >= 4)
		memcpy(&l->word, data, 4);
	switch (hdr->opcode) {
	case SD_OP_GET_VDI_INFO:
	case SD_OP_LOCK_VDI:
		ret = SD_RES_NO_VDI;
		for (i = 0; i < f->nr_obj; i++) {
			struct sd_inode *ino = (struct sd_inode *)f->obj[i].buf;
			if (!is_vdi_obj(f->obj[i].oid) || strcmp(ino->name, data) ||
			    strcmp(ino->tag, (char *)data + SD_MAX_VDI_LEN) ||
			    (!((char *)data)[SD_MAX_VDI_LEN] && ino->snap_ctime))
				continue;
			rsp->vdi.vdi_id = ino->vdi_id;
			ret = SD_RES_SUCCESS;
		}
		break;
	case SD_OP_RELEASE_VDI:
	case SD_OP_FLUSH_VDI:
		break;
	case SD_OP_READ_OBJ:
		if ((i = fake_find(f, oid)) < 0) {
			ret = SD_RES_NO_OBJ;
			break;
		}
		CU_ASSERT_FATAL(hdr->obj.offset + hdr->data_length <= f->obj[i].size && hdr->data_length <= bufsize);
		memcpy(data, f->obj[i].buf + hdr->obj.offset, hdr->data_length);
		rsp->data_length = hdr->data_length;
		break;
	case SD_OP_WRITE_OBJ:
		if ((i = fake_find(f, oid)) < 0) {
			ret = SD_RES_NO_OBJ;
			break;
		}
		if (is_data_obj(oid) && oid_to_vid(oid) == f->readonly_vid) {
			ret = SD_RES_READONLY;
			break;
		}
		CU_ASSERT_FATAL(hdr->obj.offset + hdr->data_length <= f->obj[i].size);
		memcpy(f->obj[i].buf + hdr->obj.offset, data, hdr->data_length);
		break;
	case SD_OP_CREATE_AND_WRITE_OBJ: {
		if (oid_to_vid(oid) == f->readonly_vid) {
			ret = SD_RES_READONLY;
			break;
		}
		uint8_t *b = fake_put(f, oid, OBJ);
		if (hdr->flags & SD_FLAG_CMD_COW) {
			int c = fake_find(f, hdr->obj.cow_oid);
			CU_ASSERT_FATAL(c >= 0);
			memcpy(b, f->obj[c].buf, OBJ);
		}
		memcpy(b + hdr->obj.offset, data, hdr->data_length);
		break;
	}
	case SD_OP_DISCARD_OBJ: {
		struct sd_inode *ino = fake_inode(f, oid_to_vid(oid));
		uint32_t idx = data_oid_to_idx(oid);
		if (ino->data_vdi_id[idx] == oid_to_vid(oid) && (i = fake_find(f, oid)) >= 0) {
			free(f->obj[i].buf);
			f->obj[i].buf = NULL;
		}
		ino->data_vdi_id[idx] = 0;
		break;
	}
	default:
		ret = SD_RES_INVALID_PARMS;
	}
	rsp->result = ret;
	return ret;
}

static const struct fake_req *last(struct fake *f, int back)
{
	return &f->log[f->nr_log - 1 - back];
}

static void test_first_write_and_index(void)
{
	struct fake *f = fake_new();
	struct sd_vdi *vdi;
	const uint32_t vid = 0x100;
	char buf[3000], rd[2 * OBJ];
	fake_vdi(f, "base", "", vid, 4);

	CU_ASSERT_EQUAL_FATAL(sd_vdi_open_via(fake_exec, f, "base", NULL, true, &vdi), 0);
	CU_ASSERT_EQUAL(f->nr_log, 3);
	CU_ASSERT_EQUAL(f->log[0].op, SD_OP_LOCK_VDI);              /* a writer locks */
	CU_ASSERT_EQUAL(f->log[1].op, SD_OP_READ_OBJ);              /* the inode header */
	CU_ASSERT_EQUAL(f->log[1].oid, vid_to_vdi_oid(vid));
	CU_ASSERT_EQUAL(f->log[1].len, SD_INODE_HEADER_SIZE);
	CU_ASSERT_EQUAL(f->log[2].offset, SD_INODE_HEADER_SIZE);    /* then the index */
	CU_ASSERT_EQUAL(f->log[2].len, 4 * 4);
	CU_ASSERT_EQUAL(sd_vdi_size(vdi), 4 * OBJ);

	/* first write to index 1: create the object, then the 4-byte data_vdi_id entry */
	memset(buf, 0x5a, sizeof(buf));
	f->nr_log = 0;
	CU_ASSERT_EQUAL(sd_vdi_pwrite(vdi, buf, 1000, OBJ + 10), 0);
	CU_ASSERT_EQUAL_FATAL(f->nr_log, 2);
	CU_ASSERT_EQUAL(f->log[0].op, SD_OP_CREATE_AND_WRITE_OBJ);
	CU_ASSERT_EQUAL(f->log[0].oid, vid_to_data_oid(vid, 1));
	CU_ASSERT_FALSE(f->log[0].flags & SD_FLAG_CMD_COW);
	CU_ASSERT_EQUAL(f->log[0].offset, 10);
	CU_ASSERT_EQUAL(f->log[0].len, 1000);
	CU_ASSERT_EQUAL(f->log[1].op, SD_OP_WRITE_OBJ);
	CU_ASSERT_EQUAL(f->log[1].oid, vid_to_vdi_oid(vid));
	CU_ASSERT_EQUAL(f->log[1].offset, SD_INODE_HEADER_SIZE + 4 * 1);
	CU_ASSERT_EQUAL(f->log[1].len, 4);
	CU_ASSERT_EQUAL(f->log[1].word, vid);
	CU_ASSERT_EQUAL(fake_inode(f, vid)->data_vdi_id[1], vid);

	/* the next write there is a plain WRITE_OBJ; zeros into a hole send nothing */
	f->nr_log = 0;
	CU_ASSERT_EQUAL(sd_vdi_pwrite(vdi, buf, 100, OBJ + 2000), 0);
	CU_ASSERT_EQUAL(f->nr_log, 1);
	CU_ASSERT_EQUAL(last(f, 0)->op, SD_OP_WRITE_OBJ);
	CU_ASSERT_EQUAL(last(f, 0)->oid, vid_to_data_oid(vid, 1));
	CU_ASSERT_TRUE(last(f, 0)->flags & SD_FLAG_CMD_CACHE);
	memset(buf, 0, sizeof(buf));
	CU_ASSERT_EQUAL(sd_vdi_pwrite(vdi, buf, sizeof(buf), 2 * OBJ + 5), 0);
	CU_ASSERT_EQUAL(f->nr_log, 1);

	/* a read over a hole and an object asks only the object */
	f->nr_log = 0;
	CU_ASSERT_EQUAL(sd_vdi_pread(vdi, rd, sizeof(rd), 0), 0);
	CU_ASSERT_EQUAL(f->nr_log, 1);
	CU_ASSERT_EQUAL(last(f, 0)->oid, vid_to_data_oid(vid, 1));
	CU_ASSERT_EQUAL(rd[0], 0);
	CU_ASSERT_EQUAL(rd[OBJ + 9], 0);
	CU_ASSERT_EQUAL(rd[OBJ + 10], 0x5a);
	CU_ASSERT_EQUAL(rd[OBJ + 1009], 0x5a);
	CU_ASSERT_EQUAL(rd[OBJ + 1010], 0);

	/* a sync write goes without the CACHE flag; a write straddling objects is split */
	f->nr_log = 0;
	memset(buf, 0x77, sizeof(buf));
	CU_ASSERT_EQUAL(sd_vdi_pwrite_flags(vdi, buf, 200, 2 * OBJ - 100, SD_VDI_SYNC), 0);
	CU_ASSERT_EQUAL(f->nr_log, 1 + 2);
	CU_ASSERT_EQUAL(f->log[0].op, SD_OP_WRITE_OBJ);
	CU_ASSERT_EQUAL(f->log[0].len, 100);
	CU_ASSERT_FALSE(f->log[0].flags & SD_FLAG_CMD_CACHE);
	CU_ASSERT_EQUAL(f->log[1].op, SD_OP_CREATE_AND_WRITE_OBJ);
	CU_ASSERT_EQUAL(f->log[1].oid, vid_to_data_oid(vid, 2));
	CU_ASSERT_FALSE(f->log[2].flags & SD_FLAG_CMD_CACHE);
	CU_ASSERT_EQUAL(sd_vdi_pwrite(vdi, buf, 2, 4 * OBJ - 1), SD_RES_INVALID_PARMS);

	f->nr_log = 0;
	CU_ASSERT_EQUAL(sd_vdi_flush(vdi), 0);
	CU_ASSERT_EQUAL(last(f, 0)->op, SD_OP_FLUSH_VDI);
	CU_ASSERT_EQUAL(last(f, 0)->oid, vid_to_vdi_oid(vid));
	sd_vdi_close(vdi);
	CU_ASSERT_EQUAL(last(f, 0)->op, SD_OP_RELEASE_VDI);
	CU_ASSERT_EQUAL(last(f, 0)->vid, vid);
	fake_free(f);
}

static void test_clone_reads_parent_and_copies_on_write(void)
{
	struct fake *f = fake_new();
	struct sd_vdi *vdi;
	char buf[OBJ];
	fake_vdi(f, "base", "snap", 0x200, 2);
	fake_data(f, 0x200, 0, 'A');
	struct sd_inode *clone = fake_vdi(f, "clone", "", 0x201, 2);
	clone->data_vdi_id[0] = 0x200;
	clone->parent_vdi_id = 0x200;

	CU_ASSERT_EQUAL_FATAL(sd_vdi_open_via(fake_exec, f, "clone", NULL, true, &vdi), 0);
	f->nr_log = 0;
	CU_ASSERT_EQUAL(sd_vdi_pread(vdi, buf, 10, 5), 0);
	CU_ASSERT_EQUAL(last(f, 0)->oid, vid_to_data_oid(0x200, 0));   /* the parent's object */
	CU_ASSERT_EQUAL(buf[0], 'A');

	f->nr_log = 0;
	memset(buf, 'B', 100);
	CU_ASSERT_EQUAL(sd_vdi_pwrite(vdi, buf, 100, 50), 0);
	CU_ASSERT_EQUAL_FATAL(f->nr_log, 2);
	CU_ASSERT_EQUAL(f->log[0].op, SD_OP_CREATE_AND_WRITE_OBJ);
	CU_ASSERT_EQUAL(f->log[0].oid, vid_to_data_oid(0x201, 0));
	CU_ASSERT_TRUE(f->log[0].flags & SD_FLAG_CMD_COW);
	CU_ASSERT_EQUAL(f->log[0].cow, vid_to_data_oid(0x200, 0));
	CU_ASSERT_EQUAL(f->log[1].offset, SD_INODE_HEADER_SIZE);
	CU_ASSERT_EQUAL(f->log[1].word, 0x201);

	CU_ASSERT_EQUAL(sd_vdi_pread(vdi, buf, OBJ, 0), 0);
	CU_ASSERT_EQUAL(buf[49], 'A');
	CU_ASSERT_EQUAL(buf[50], 'B');
	CU_ASSERT_EQUAL(buf[149], 'B');
	CU_ASSERT_EQUAL(buf[150], 'A');
	CU_ASSERT_EQUAL(fake_put(f, vid_to_data_oid(0x200, 0), OBJ)[60], 'A');   /* parent untouched */
	sd_vdi_close(vdi);

	/* the snapshot opens read-only, by lookup, and refuses writes without asking */
	CU_ASSERT_EQUAL(sd_vdi_open_via(fake_exec, f, "base", "snap", true, &vdi), SD_RES_READONLY);
	f->nr_log = 0;
	CU_ASSERT_EQUAL_FATAL(sd_vdi_open_via(fake_exec, f, "base", "snap", false, &vdi), 0);
	CU_ASSERT_EQUAL(f->log[0].op, SD_OP_GET_VDI_INFO);
	f->nr_log = 0;
	CU_ASSERT_EQUAL(sd_vdi_pwrite(vdi, buf, 10, 0), SD_RES_READONLY);
	CU_ASSERT_EQUAL(sd_vdi_write_zeroes(vdi, 0, OBJ, 0), SD_RES_READONLY);
	CU_ASSERT_EQUAL(f->nr_log, 0);
	sd_vdi_close(vdi);
	CU_ASSERT_EQUAL(f->nr_log, 0);                                    /* nothing to release */
	fake_free(f);
}

static void test_write_zeroes(void)
{
	struct fake *f = fake_new();
	struct sd_vdi *vdi;
	const uint32_t vid = 0x300;
	bool allocated;
	uint64_t run;
	fake_vdi(f, "z", "", vid, 4);
	fake_data(f, vid, 0, 1);
	fake_data(f, vid, 1, 1);
	CU_ASSERT_EQUAL_FATAL(sd_vdi_open_via(fake_exec, f, "z", NULL, true, &vdi), 0);

	/* a whole object: DISCARD_OBJ, a hole again */
	f->nr_log = 0;
	CU_ASSERT_EQUAL(sd_vdi_write_zeroes(vdi, 0, OBJ, 0), 0);
	CU_ASSERT_EQUAL(f->nr_log, 1);
	CU_ASSERT_EQUAL(last(f, 0)->op, SD_OP_DISCARD_OBJ);
	CU_ASSERT_EQUAL(last(f, 0)->oid, vid_to_data_oid(vid, 0));
	CU_ASSERT_EQUAL(fake_inode(f, vid)->data_vdi_id[0], 0);
	CU_ASSERT_EQUAL(sd_vdi_block_status(vdi, 0, 4 * OBJ, &allocated, &run), 0);
	CU_ASSERT_FALSE(allocated);
	CU_ASSERT_EQUAL(run, OBJ);

	/* part of an allocated object: zeros written; part of a hole: nothing */
	f->nr_log = 0;
	CU_ASSERT_EQUAL(sd_vdi_write_zeroes(vdi, OBJ + 100, 200, 0), 0);
	CU_ASSERT_EQUAL(f->nr_log, 1);
	CU_ASSERT_EQUAL(last(f, 0)->op, SD_OP_WRITE_OBJ);
	CU_ASSERT_EQUAL(last(f, 0)->len, 200);
	CU_ASSERT_EQUAL(sd_vdi_write_zeroes(vdi, 2 * OBJ + 100, 200, 0), 0);
	CU_ASSERT_EQUAL(f->nr_log, 1);

	/* FAST_ZERO: refused where zeros would have to be written, and then nothing is sent */
	CU_ASSERT_EQUAL(sd_vdi_write_zeroes(vdi, OBJ + 100, 200, SD_VDI_FAST), SD_RES_NO_SUPPORT);
	CU_ASSERT_EQUAL(sd_vdi_write_zeroes(vdi, 2 * OBJ, OBJ, SD_VDI_FAST | SD_VDI_ALLOCATE), SD_RES_NO_SUPPORT);
	CU_ASSERT_EQUAL(f->nr_log, 1);
	CU_ASSERT_EQUAL(sd_vdi_write_zeroes(vdi, 2 * OBJ, 2 * OBJ, SD_VDI_FAST), 0);

	/* NO_HOLE: allocate even for zeros */
	f->nr_log = 0;
	CU_ASSERT_EQUAL(sd_vdi_write_zeroes(vdi, 3 * OBJ + 10, 20, SD_VDI_ALLOCATE), 0);
	CU_ASSERT_EQUAL(f->nr_log, 2);
	CU_ASSERT_EQUAL(f->log[0].op, SD_OP_CREATE_AND_WRITE_OBJ);
	CU_ASSERT_EQUAL(f->log[1].offset, SD_INODE_HEADER_SIZE + 4 * 3);
	CU_ASSERT_EQUAL(sd_vdi_block_status(vdi, 2 * OBJ, 2 * OBJ, &allocated, &run), 0);
	CU_ASSERT_FALSE(allocated);
	CU_ASSERT_EQUAL(run, OBJ);
	CU_ASSERT_EQUAL(sd_vdi_block_status(vdi, 3 * OBJ + 5, OBJ, &allocated, &run), 0);
	CU_ASSERT_TRUE(allocated);
	CU_ASSERT_EQUAL(run, OBJ - 5);
	sd_vdi_close(vdi);
	fake_free(f);
}

static void test_reload_after_snapshot(void)
{
	struct fake *f = fake_new();
	struct sd_vdi *vdi;
	char buf[64];
	struct sd_inode *old = fake_vdi(f, "v", "", 0x400, 2);
	fake_data(f, 0x400, 0, 'o');
	CU_ASSERT_EQUAL_FATAL(sd_vdi_open_via(fake_exec, f, "v", NULL, true, &vdi), 0);

	/* another client snapshots v: 0x400 freezes as "s1", 0x401 is the working VDI */
	strcpy(old->tag, "s1");
	old->snap_ctime = 1;
	struct sd_inode *cur = fake_vdi(f, "v", "", 0x401, 2);
	memcpy(cur->data_vdi_id, old->data_vdi_id, 2 * sizeof(uint32_t));
	f->readonly_vid = 0x400;

	f->nr_log = 0;
	memset(buf, 'n', sizeof(buf));
	CU_ASSERT_EQUAL(sd_vdi_pwrite(vdi, buf, sizeof(buf), 8), 0);
	CU_ASSERT_EQUAL(f->log[0].op, SD_OP_WRITE_OBJ);                   /* refused: READONLY */
	CU_ASSERT_EQUAL(f->log[1].op, SD_OP_GET_VDI_INFO);                /* find the new working VDI */
	CU_ASSERT_EQUAL(last(f, 1)->op, SD_OP_CREATE_AND_WRITE_OBJ);      /* copy on write from the snapshot */
	CU_ASSERT_EQUAL(last(f, 1)->oid, vid_to_data_oid(0x401, 0));
	CU_ASSERT_EQUAL(last(f, 1)->cow, vid_to_data_oid(0x400, 0));
	CU_ASSERT_EQUAL(last(f, 0)->oid, vid_to_vdi_oid(0x401));
	CU_ASSERT_EQUAL(sd_vdi_id(vdi), 0x401);
	bool released_old = false;
	for (int i = 0; i < f->nr_log; i++)
		released_old |= f->log[i].op == SD_OP_RELEASE_VDI && f->log[i].vid == 0x400;
	CU_ASSERT_TRUE(released_old);                                     /* the lock of the VDI left behind */
	CU_ASSERT_EQUAL(fake_put(f, vid_to_data_oid(0x400, 0), OBJ)[8], 'o');   /* the snapshot kept its data */
	CU_ASSERT_EQUAL(sd_vdi_pread(vdi, buf, 16, 0), 0);
	CU_ASSERT_EQUAL(buf[7], 'o');
	CU_ASSERT_EQUAL(buf[8], 'n');
	sd_vdi_close(vdi);
	CU_ASSERT_EQUAL(last(f, 0)->vid, 0x401);
	fake_free(f);
}

int guest_add_suites(void)
{
	CU_pSuite s = CU_add_suite("sd_client guest flow", NULL, NULL);
	if (!s)
		return -1;
	struct { const char *name; void (*fn)(void); } tests[] = {
		{ "lock, inode, first write, index update, flush, release", test_first_write_and_index },
		{ "clone reads the parent and copies on write", test_clone_reads_parent_and_copies_on_write },
		{ "write zeroes: discard, partial zeros, FAST_ZERO, NO_HOLE", test_write_zeroes },
		{ "a snapshot under an open VDI: reload and copy on write", test_reload_after_snapshot },
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return -1;
	return 0;
}
