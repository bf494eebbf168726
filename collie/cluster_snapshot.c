/* cluster_snapshot.c: collie cluster snapshot save|load|list: every VDI and snapshot of the
 * cluster (inodes and the objects each owns) into a content-addressed directory, deduplicated
 * by SHA-256 across objects and saves, and back into an empty cluster.
 *
 * DIR/objects/XX/REST  one object's bytes, named by the SHA-256 of those bytes (hex)
 * DIR/snapshots/TAG    a manifest: struct csnap_header, then nr_entries struct csnap_entry;
 *                      the header's digest covers the entries
 * Objects that are all zeros are recorded with CSNAP_ZERO and stored nowhere. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "collie.h"
#include "net.h"
#include "progress.h"
#include "sd_client.h"
#include "util.h"
#include "vdi_lifecycle.h"

#define CSNAP_MAGIC   "SFCLSNAP"
#define CSNAP_VERSION 1
#define CSNAP_ZERO    0x1          /* entry flag: the object reads as zeros */
#define CSNAP_INODE   0x2          /* entry flag: an inode (header + index) */
#define OPT_FORCE     470

struct csnap_header {
	char magic[8];
	uint32_t version;
	uint32_t nr_entries;
	uint64_t saved;                /* Unix seconds */
	uint32_t nr_vdis;              /* inodes among the entries */
	uint8_t copies;                /* the cluster's default when saved */
	uint8_t __pad[3];
	uint8_t digest[32];            /* SHA-256 of the entries */
};
SD_CHECK(sizeof(struct csnap_header) == 64);

struct csnap_entry {
	uint64_t oid;
	uint32_t len;                  /* bytes saved (the rest of the object reads as zeros) */
	uint32_t flags;
	uint8_t sha[32];
};
SD_CHECK(sizeof(struct csnap_entry) == 48);

struct csnap {
	const char *dir;
	struct csnap_entry *e;
	uint32_t nr, cap, nr_vdis;
	uint64_t stored, deduped;      /* bytes written to the farm, bytes found there already */
};

static void sha256(const void *buf, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL);
}

static void object_path(const char *dir, const uint8_t sha[32], char *path, size_t len, bool mkdirs)
{
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sha[i]);
	snprintf(path, len, "%s/objects/%.2s", dir, hex);
	if (mkdirs)
		mkdir(path, 0755);
	snprintf(path, len, "%s/objects/%.2s/%s", dir, hex, hex + 2);
}

/* a whole file written durably under its final name: a temporary, fsync, rename */
static int write_file_durably(const char *path, const void *a, size_t alen, const void *b, size_t blen)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644), ret = 0;
	if (fd < 0)
		return -errno;
	if (xwrite(fd, a, alen) < 0 || (blen && xwrite(fd, b, blen) < 0) || fsync(fd) < 0)
		ret = -errno ? -errno : -EIO;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

static int add_entry(struct csnap *s, uint64_t oid, const void *buf, uint32_t len, uint32_t flags)
{
	if (s->nr == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 256;
		struct csnap_entry *e = realloc(s->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		s->e = e;
		s->cap = cap;
	}
	struct csnap_entry *e = &s->e[s->nr++];
	memset(e, 0, sizeof(*e));
	e->oid = oid;
	e->len = len;
	e->flags = flags;
	while (e->len && ((const char *)buf)[e->len - 1] == 0)
		e->len--;                  /* trailing zeros need no room */
	if (!e->len) {
		e->flags |= CSNAP_ZERO;
		return 0;
	}
	sha256(buf, e->len, e->sha);
	char path[PATH_MAX];
	struct stat st;
	object_path(s->dir, e->sha, path, sizeof(path), true);
	if (stat(path, &st) == 0 && st.st_size == e->len) {
		s->deduped += e->len;
		return 0;
	}
	s->stored += e->len;
	return write_file_durably(path, buf, e->len, NULL, 0);
}

static int check_tag(const char *tag)
{
	if (!*tag || strlen(tag) > 255 || strchr(tag, '/') || tag[0] == '.') {
		die_msg("invalid snapshot tag '%s' (1 to 255 bytes, no '/', not starting with '.')", tag);
		return EXIT_USAGE;
	}
	return 0;
}

/* VDIs a guest holds open (their saved contents could be torn) in *nr; a request failure */
static int count_locked(int *nr)
{
	size_t cap = SD_NR_VDIS / 8;
	struct vdi_lock_info *locks = calloc(1, cap);
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_VDI_LOCKS, .data_length = cap };
	struct sd_rsp rsp;
	if (!locks)
		return -ENOMEM;
	int ret = sheep_exec(&req, locks, cap, &rsp);
	free(locks);
	if (!ret)
		*nr = (int)(rsp.data_length / sizeof(*locks));
	return ret;
}

static int save_vdi(struct csnap *s, int fd, const struct vdi_entry *v, char *buf, struct progress *bar,
		    uint64_t *done, uint64_t total)
{
	uint32_t obj_size = 1u << (v->hdr.block_size_shift ? v->hdr.block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT);
	uint64_t nr = DIV_ROUND_UP(v->hdr.vdi_size, obj_size);
	uint32_t ilen = SD_INODE_HEADER_SIZE + nr * sizeof(uint32_t);
	struct sd_inode *inode = malloc(ilen);
	int ret;
	if (!inode)
		return -ENOMEM;
	if (nr > SD_INODE_DATA_INDEX) {
		ret = SD_RES_INVALID_PARMS;
		goto out;
	}
	if ((ret = vdi_read_obj_fd(fd, vid_to_vdi_oid(v->vid), inode, ilen, 0)))
		goto out;
	if ((ret = add_entry(s, vid_to_vdi_oid(v->vid), inode, ilen, CSNAP_INODE)))
		goto out;
	s->nr_vdis++;
	for (uint64_t i = 0; i < nr && !ret; i++) {
		if (inode->data_vdi_id[i] != v->vid)
			continue;
		uint64_t oid = vid_to_data_oid(v->vid, i);
		if (!(ret = vdi_read_obj_fd(fd, oid, buf, obj_size, 0)))
			ret = add_entry(s, oid, buf, obj_size, 0);
		progress_update(bar, ++*done, total);
	}
out:
	free(inode);
	return ret;
}

static int snapshot_save(const char *tag, const char *dir)
{
	struct csnap s = { .dir = dir };
	struct vdi_entry *list = NULL;
	struct progress bar;
	char path[PATH_MAX], *buf = NULL;
	struct sd_rsp crsp;
	int nr = 0, fd = -1, status = EXIT_FAILED, ret;
	uint64_t total = 0, done = 0;

	if ((status = check_cluster_running("cluster snapshot save", &crsp)))
		return status;
	status = EXIT_FAILED;
	snprintf(path, sizeof(path), "%s/snapshots/%s", dir, tag);
	if (access(path, F_OK) == 0) {
		die_msg("cluster snapshot save: %s has a snapshot '%s' already", dir, tag);
		return EXIT_EXISTS;
	}
	int locked = 0;
	if ((ret = count_locked(&locked)))
		return report_failure("cluster snapshot save", ret);
	if (locked > 0 && !opt_set(OPT_FORCE)) {
		die_msg("cluster snapshot save: %d VDI%s open by guests (collie vdi lock list); stop them, or "
			"--force for a copy that is only consistent object by object", locked, locked == 1 ? " is" : "s are");
		return EXIT_FAILED;
	}
	snprintf(path, sizeof(path), "%s/objects", dir);
	if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || (mkdir(path, 0755) < 0 && errno != EEXIST)) {
		die_msg("cluster snapshot save: cannot make %s: %s", path, strerror(errno));
		return errno_exit_status(errno);
	}
	snprintf(path, sizeof(path), "%s/snapshots", dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		die_msg("cluster snapshot save: cannot make %s: %s", path, strerror(errno));
		return errno_exit_status(errno);
	}
	if ((ret = vdi_collect(&list, &nr, false))) {
		status = report_failure("cluster snapshot save", ret);
		goto out;
	}
	size_t max_obj = 4096;
	for (int i = 0; i < nr; i++) {
		uint32_t os = 1u << (list[i].hdr.block_size_shift ? list[i].hdr.block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT);
		total += DIV_ROUND_UP(list[i].hdr.vdi_size, os);
		max_obj = MAX(max_obj, (size_t)os);
	}
	buf = malloc(max_obj);
	fd = connect_to(sd_addr, sd_port, 5000, 120000);
	if (!buf || fd < 0) {
		die_msg("cluster snapshot save: %s", !buf ? "out of memory" : "cannot reach the sheep");
		status = !buf ? EXIT_FAILED : EXIT_SYSFAIL;
		goto out;
	}
	progress_start(&bar, "snapshot save", false, false);
	for (int i = 0; i < nr; i++)
		if ((ret = save_vdi(&s, fd, &list[i], buf, &bar, &done, total))) {
			progress_end(&bar, done, total);
			char what[300];
			snprintf(what, sizeof(what), "cluster snapshot save: VDI %s", list[i].hdr.name);
			status = ret < 0 ? errno_exit_status(ret) : report_failure(what, ret);
			if (ret < 0)
				die_msg("%s: %s", what, strerror(-ret));
			goto out;
		}
	progress_end(&bar, total, total);
	struct csnap_header h = { .magic = CSNAP_MAGIC, .version = CSNAP_VERSION, .nr_entries = s.nr,
				  .saved = (uint64_t)time(NULL), .nr_vdis = s.nr_vdis,
				  .copies = ((const struct sd_cluster_rsp *)&crsp)->nr_copies };
	sha256(s.e, (size_t)s.nr * sizeof(*s.e), h.digest);
	snprintf(path, sizeof(path), "%s/snapshots/%s", dir, tag);
	if ((ret = write_file_durably(path, &h, sizeof(h), s.e, (size_t)s.nr * sizeof(*s.e)))) {
		die_msg("cluster snapshot save: cannot write %s: %s", path, strerror(-ret));
		status = errno_exit_status(ret);
		goto out;
	}
	char a[32], b[32];
	if (!raw_output)
		printf("saved '%s': %u VDIs and snapshots, %u objects; %s new in %s, %s shared with earlier saves\n", tag,
		       s.nr_vdis, s.nr - s.nr_vdis, size_to_str(s.stored, a, sizeof(a)), dir,
		       size_to_str(s.deduped, b, sizeof(b)));
	status = EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(list);
	free(s.e);
	return status;
}

/* the manifest of TAG, checked: its digest, every entry's object present */
static int read_manifest(const char *what, const char *dir, const char *tag, struct csnap_header *h,
			 struct csnap_entry **out)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/snapshots/%s", dir, tag);
	FILE *f = fopen(path, "rb");
	if (!f) {
		int err = errno;
		die_msg("%s: no snapshot '%s' in %s: %s", what, tag, dir, strerror(err));
		return err == ENOENT ? EXIT_MISSING : errno_exit_status(err);
	}
	struct csnap_entry *e = NULL;
	uint8_t digest[32];
	int status = EXIT_FAILED;
	if (fread(h, sizeof(*h), 1, f) != 1 || memcmp(h->magic, CSNAP_MAGIC, 8) || h->version != CSNAP_VERSION ||
	    h->nr_entries > (1u << 28)) {
		die_msg("%s: %s is not a cluster snapshot manifest (or of another version)", what, path);
		goto out;
	}
	e = malloc(((size_t)h->nr_entries ? h->nr_entries : 1) * sizeof(*e));
	if (!e || fread(e, sizeof(*e), h->nr_entries, f) != h->nr_entries || fgetc(f) != EOF) {
		die_msg("%s: %s is %s", what, path, e ? "truncated or has trailing bytes" : "too big to read");
		goto out;
	}
	sha256(e, (size_t)h->nr_entries * sizeof(*e), digest);
	if (memcmp(digest, h->digest, 32)) {
		die_msg("%s: %s is damaged (its digest does not match its entries)", what, path);
		goto out;
	}
	*out = e;
	e = NULL;
	status = EXIT_OK;
out:
	fclose(f);
	free(e);
	return status;
}

/* one saved object's bytes into buf (of cap bytes), checked against its digest */
static int read_object(const char *dir, const struct csnap_entry *e, char *buf, uint32_t cap)
{
	char path[PATH_MAX];
	uint8_t sha[32];
	if (e->flags & CSNAP_ZERO)
		return 0;
	if (e->len > cap)
		return -EINVAL;
	object_path(dir, e->sha, path, sizeof(path), false);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	ssize_t n = xread(fd, buf, e->len);
	close(fd);
	if (n != (ssize_t)e->len)
		return -EIO;
	sha256(buf, e->len, sha);
	return memcmp(sha, e->sha, 32) ? -EBADMSG : 0;
}

static int write_object(uint64_t oid, const void *buf, uint32_t len)
{
	static const char zero_block[4096];
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_CREATE_AND_WRITE_OBJ,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = len ? len : sizeof(zero_block) };
	struct sd_rsp rsp;
	req.obj.oid = oid;
	return sheep_exec(&req, len ? (void *)buf : (void *)zero_block, 0, &rsp);
}

/* NOTIFY_VDI_ADD: every node learns the VDI (as a snapshot or, while its objects are written,
 * as writable) */
static int announce_vdi(const struct sd_inode_header *ih, bool as_snapshot)
{
	struct sd_req rq = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_NOTIFY_VDI_ADD };
	struct sd_rsp rsp;
	rq.vdi.base_vdi_id = ih->vdi_id;
	rq.vdi.copies = ih->nr_copies;
	rq.vdi.copy_policy = ih->copy_policy;
	rq.vdi.block_size_shift = ih->block_size_shift;
	rq.vdi.snapid = as_snapshot ? 1 : 0;
	return sheep_exec(&rq, NULL, 0, &rsp);
}

static int snapshot_load(const char *tag, const char *dir)
{
	uint64_t done = 0;
	struct csnap_header h;
	struct csnap_entry *e = NULL;
	struct vdi_entry *list = NULL;
	struct progress bar;
	char *buf = NULL;
	int nr = 0, status, ret;

	if ((status = check_cluster_running("cluster snapshot load", NULL)))
		return status;
	if ((status = read_manifest("cluster snapshot load", dir, tag, &h, &e)))
		return status;
	status = EXIT_FAILED;
	if ((ret = vdi_collect(&list, &nr, false))) {
		status = report_failure("cluster snapshot load", ret);
		goto out;
	}
	if (nr) {
		die_msg("cluster snapshot load: the cluster holds %d VDIs and snapshots; load into an empty cluster "
			"(collie cluster format)", nr);
		status = EXIT_EXISTS;
		goto out;
	}
	uint32_t max_len = 4096;
	for (uint32_t i = 0; i < h.nr_entries; i++)
		max_len = MAX(max_len, e[i].len);
	buf = malloc(max_len);
	if (!buf) {
		die_msg("cluster snapshot load: out of memory");
		goto out;
	}
	/* every object is present and whole before anything is written */
	for (uint32_t i = 0; i < h.nr_entries; i++)
		if ((ret = read_object(dir, &e[i], buf, max_len))) {
			die_msg("cluster snapshot load: object %016" PRIx64 " of '%s' is %s", e[i].oid, tag,
				ret == -EBADMSG ? "damaged (its digest differs)" : "missing from the directory");
			goto out;
		}
	/* the inodes first, each announced (copies, object size) so its objects land where they
	 * belong, as writable; then the data; then the snapshots are announced as snapshots */
	progress_start(&bar, "snapshot load", false, false);
	for (uint32_t pass = 0; pass < 3; pass++)
		for (uint32_t i = 0; i < h.nr_entries; i++) {
			bool inode = e[i].flags & CSNAP_INODE;
			if (inode != (pass != 1))
				continue;
			if ((ret = read_object(dir, &e[i], buf, max_len)))
				goto fail;
			if (inode) {
				struct sd_inode_header *ih = (struct sd_inode_header *)buf;
				if (e[i].len < SD_INODE_HEADER_SIZE || ih->vdi_id != oid_to_vid(e[i].oid)) {
					ret = -EBADMSG;
					goto fail;
				}
				if (pass == 2 && !ih->snap_ctime)
					continue;
				if ((ret = announce_vdi(ih, pass == 2)))
					goto fail;
			}
			if (pass < 2 && (ret = write_object(e[i].oid, buf, e[i].len)))
				goto fail;
			if (pass < 2)
				progress_update(&bar, ++done, h.nr_entries);
		}
	progress_end(&bar, 1, 1);
	if (!raw_output)
		printf("loaded '%s': %u VDIs and snapshots, %u objects\n", tag, h.nr_vdis, h.nr_entries - h.nr_vdis);
	status = EXIT_OK;
	goto out;
fail:
	progress_end(&bar, 0, 1);
	if (ret < 0)
		die_msg("cluster snapshot load: %s", strerror(-ret));
	else
		report_failure("cluster snapshot load", ret);
	die_msg("cluster snapshot load: stopped part way; format the cluster before trying again");
	status = ret < 0 ? EXIT_FAILED : exit_status(ret);
out:
	free(buf);
	free(list);
	free(e);
	return status;
}

static int snapshot_list(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/snapshots", dir);
	DIR *d = opendir(path);
	if (!d) {
		int err = errno;
		die_msg("cluster snapshot list: %s: %s", path, strerror(err));
		return err == ENOENT ? EXIT_MISSING : errno_exit_status(err);
	}
	struct dirent *de;
	if (!raw_output)
		printf("Tag                  Saved               VDIs  Objects\n");
	while ((de = readdir(d))) {
		struct csnap_header h;
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp."))
			continue;
		snprintf(path, sizeof(path), "%s/snapshots/%s", dir, de->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		bool ok = fread(&h, sizeof(h), 1, f) == 1 && !memcmp(h.magic, CSNAP_MAGIC, 8);
		fclose(f);
		if (!ok)
			continue;
		char when[32];
		time_t t = (time_t)h.saved;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
		if (raw_output)
			printf("%s %" PRIu64 " %u %u\n", de->d_name, h.saved, h.nr_vdis, h.nr_entries - h.nr_vdis);
		else
			printf("%-20s %s %5u %8u\n", de->d_name, when, h.nr_vdis, h.nr_entries - h.nr_vdis);
	}
	closedir(d);
	return EXIT_OK;
}

int cluster_snapshot(int argc, char **argv)
{
	const char *verb = argv[0];
	if (!strcmp(verb, "list")) {
		if (argc != 2) {
			die_msg("cluster snapshot list DIR");
			return EXIT_USAGE;
		}
		return snapshot_list(argv[1]);
	}
	if (strcmp(verb, "save") && strcmp(verb, "load")) {
		die_msg("cluster snapshot: unknown action '%s' (save, load, list)", verb);
		return EXIT_USAGE;
	}
	if (argc != 3) {
		die_msg("cluster snapshot %s TAG DIR", verb);
		return EXIT_USAGE;
	}
	if (check_tag(argv[1]))
		return EXIT_USAGE;
	return !strcmp(verb, "save") ? snapshot_save(argv[1], argv[2]) : snapshot_load(argv[1], argv[2]);
}

const struct collie_option cluster_snapshot_opts[] = {
	{ OPT_FORCE, "force", 0, NULL, "save even while guests have VDIs open" },
	PROGRESS_OPTION_ROW,
	{ 0 },
};
