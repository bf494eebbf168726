/* vdi.c: collie vdi create | list | delete | resize | read | write | object, and the vdi command
 * table (the lifecycle commands live in vdi_snap.c, vdi_attr.c and vdi_backup.c). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collie.h"
#include "progress.h"
#include "json_out.h"
#include "net.h"
#include "sd_client.h"
#include "util.h"
#include "vdi_lifecycle.h"
#include "vdi_strips.h"

#define IO_WINDOW 8     /* pieces in flight for read and write */
#define IO_PIECE (4u << 20)   /* at most one object, or this much of a larger one, per piece */

static int vdi_create(int argc, char **argv)
{
	uint64_t size;
	uint8_t copies = 0, policy = 0;
	if (check_vdi_name(argv[0]) < 0 || parse_size_arg(argv[1], "size", &size) < 0)
		return EXIT_USAGE;
	if (!size || size > SD_MAX_VDI_SIZE) {
		die_msg("invalid VDI size %" PRIu64 ": from 1 byte to 4 TiB", size);
		return EXIT_USAGE;
	}
	if (opt('c') && parse_redundancy(opt('c'), &copies, &policy) < 0)
		return EXIT_USAGE;
	uint64_t shift = 0;
	if (opt('z') && (parse_u64(opt('z'), &shift) < 0 || shift < 20 || shift > 31)) {
		die_msg("invalid object size shift '%s' (20 to 31: 1 MiB to 2 GiB objects)", opt('z'));
		return EXIT_USAGE;
	}
	if (shift && size > (UINT64_C(1) << shift) * SD_INODE_DATA_INDEX) {
		die_msg("invalid VDI size %" PRIu64 ": at most %" PRIu64 " bytes with -z %" PRIu64, size,
			(UINT64_C(1) << shift) * SD_INODE_DATA_INDEX, shift);
		return EXIT_USAGE;
	}
	if (shift && opt_set('P')) {
		die_msg("vdi create: -P and -z cannot be combined");
		return EXIT_USAGE;
	}
	uint32_t vid;
	int ret;
	if (shift) {
		char buf[SD_MAX_VDI_LEN] = { 0 };
		struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_NEW_VDI,
				      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(buf) };
		struct sd_rsp rsp;
		memcpy(buf, argv[0], strlen(argv[0]));
		req.vdi.vdi_size = size;
		req.vdi.copies = copies;
		req.vdi.copy_policy = policy;
		req.vdi.block_size_shift = shift;
		ret = sheep_exec(&req, buf, 0, &rsp);
	} else {
		ret = sd_vdi_create(sd_addr, sd_port, argv[0], size, copies, policy, opt_set('P'), &vid);
	}
	if (ret) {
		char what[300];
		snprintf(what, sizeof(what), "vdi create %s", argv[0]);
		return report_failure(what, ret);
	}
	return 0;
}

static int vdi_delete(int argc, char **argv)
{
	char what[600];
	if (check_vdi_name(argv[0]) < 0 || check_snap_arg(opt('s')) < 0)
		return EXIT_USAGE;
	snprintf(what, sizeof(what), "vdi delete %s%s%s", argv[0], opt('s') ? " -s " : "", opt('s') ? opt('s') : "");
	int ret = sd_vdi_delete(sd_addr, sd_port, argv[0], opt('s'));
	switch (ret) {
	case SD_RES_SUCCESS:
		return 0;
	case SD_RES_NO_TAG:
		die_msg("%s: no such snapshot", what);
		return EXIT_MISSING;
	case SD_RES_VDI_LOCKED:
		die_msg("%s: the VDI is locked (see: collie vdi lock list)", what);
		return EXIT_FAILED;
	}
	return report_failure(what, ret);
}

/* names with spaces or backslashes are escaped in raw output */
static void print_raw_name(const char *s)
{
	for (; *s; s++) {
		if (*s == ' ' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
}

static int vdi_list(int argc, char **argv)
{
	struct vdi_entry *list = NULL;
	struct json_object *json_list = json_output ? json_object_new_array() : NULL;
	uint32_t *index = calloc(SD_INODE_DATA_INDEX, sizeof(uint32_t));
	int nr = 0, fd = -1, ret = -ENOMEM;
	if (!index)
		goto out;
	ret = vdi_collect(&list, &nr, false);
	if (ret)
		goto out;
	fd = connect_to(sd_addr, sd_port, 5000, 120000);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	if (!raw_output && !json_list)
		printf("  Name        Id    Size    Used  Shared    Creation time   VDI id  Copies  Tag            Block Size Shift\n");
	for (int k = 0; k < nr; k++) {
		const struct sd_inode_header *h = &list[k].hdr;
		uint32_t vid = list[k].vid;
		if (argc && strcmp(argv[0], h->name))
			continue;
		uint8_t shift = h->block_size_shift ? h->block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT;
		uint64_t n = DIV_ROUND_UP(h->vdi_size, UINT64_C(1) << shift), used = 0, shared = 0;
		if (n > SD_INODE_DATA_INDEX)
			n = SD_INODE_DATA_INDEX;
		ret = n ? vdi_read_obj_fd(fd, vid_to_vdi_oid(vid), index, n * sizeof(uint32_t), SD_INODE_HEADER_SIZE) : 0;
		if (ret)
			goto out;
		for (uint64_t i = 0; i < n; i++) {
			if (index[i] == vid)
				used++;
			else if (index[i])
				shared++;
		}
		/* a snapshot shows when it was taken */
		time_t ct = (h->snap_ctime ? h->snap_ctime : h->create_time) >> 32;
		char tbuf[64], s1[32], s2[32], s3[32], red[16];
		redundancy_str(h->nr_copies, h->copy_policy, red, sizeof(red));
		bool snap = h->snap_ctime != 0, clone = !snap && (h->reserved_area[SD_INODE_FLAGS_WORD] & SD_INODE_FLAG_CLONE);
		if (json_list) {
			struct json_object *o = vdi_json(h, vid);
			json_add_u64(o, "size", h->vdi_size);
			json_add_u64(o, "used", used << shift);
			json_add_u64(o, "shared", shared << shift);
			json_add_u64(o, "copies", h->nr_copies);
			if (h->copy_policy)
				json_add_str(o, "erasure-code", red);
			json_add_u64(o, "block-size-shift", shift);
			json_object_array_add(json_list, o);
		} else if (raw_output) {
			printf("%c ", snap ? 's' : clone ? 'c' : '=');
			print_raw_name(h->name);
			printf(" %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %lld %x %s %s %u\n", snap ? h->snap_id : 0,
			       h->vdi_size, used << shift, shared << shift, (long long)ct, vid, red, h->tag, shift);
		} else {
			strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M", localtime(&ct));
			printf("%c %-8s %5u %7s %7s %7s %s %7x %6s  %-14s %u\n", snap ? 's' : clone ? 'c' : ' ', h->name,
			       snap ? h->snap_id : 0, fmt_size(h->vdi_size, s1, sizeof(s1)), fmt_size(used << shift, s2, sizeof(s2)),
			       fmt_size(shared << shift, s3, sizeof(s3)), tbuf, vid, red, h->tag, shift);
		}
	}
	if (json_list)
		json_print(json_list);
	json_list = NULL;
	ret = 0;
out:
	if (json_list)
		json_object_put(json_list);
	if (fd >= 0)
		close(fd);
	free(list);
	free(index);
	return ret ? report_failure("vdi list", ret) : 0;
}

static int vdi_resize(int argc, char **argv)
{
	uint64_t size;
	uint32_t vid;
	struct sd_inode_header h;
	if (check_vdi_name(argv[0]) < 0 || parse_size_arg(argv[1], "size", &size) < 0)
		return EXIT_USAGE;
	int ret = sd_vdi_lookup(sd_addr, sd_port, argv[0], NULL, &vid);
	if (!ret)
		ret = sd_read_inode_header(sd_addr, sd_port, vid, &h);
	if (ret)
		return report_failure("vdi resize", ret);
	uint8_t shift = h.block_size_shift ? h.block_size_shift : SD_DEFAULT_BLOCK_SIZE_SHIFT;
	uint64_t max = (UINT64_C(1) << shift) * SD_INODE_DATA_INDEX;
	if (!size || size > max) {
		die_msg("vdi resize: invalid size %" PRIu64 " (at most %" PRIu64 " bytes)", size, max);
		return EXIT_USAGE;
	}
	if (size < h.vdi_size) {
		/* shrinking is safe only if no data lies past the new end */
		uint64_t first = DIV_ROUND_UP(size, UINT64_C(1) << shift), last = DIV_ROUND_UP(h.vdi_size, UINT64_C(1) << shift);
		uint32_t *index = calloc(last, sizeof(uint32_t));
		if (!index)
			return report_failure("vdi resize", -ENOMEM);
		ret = sd_read_inode_index(sd_addr, sd_port, vid, index, last);
		bool tail_used = (size & ((UINT64_C(1) << shift) - 1)) && index[first - 1];
		for (uint64_t i = first; i < last && !ret; i++)
			if (index[i])
				tail_used = true;
		free(index);
		if (ret)
			return report_failure("vdi resize", ret);
		if (tail_used) {
			die_msg("vdi resize: cannot shrink %s to %" PRIu64 " bytes: data is stored past that size", argv[0], size);
			return EXIT_FAILED;
		}
	}
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_WRITE_OBJ,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(size) };
	struct sd_rsp rsp;
	req.obj.oid = vid_to_vdi_oid(vid);
	req.obj.offset = offsetof(struct sd_inode, vdi_size);
	ret = sheep_exec(&req, &size, 0, &rsp);
	if (ret)
		return report_failure("vdi resize", ret);
	return 0;
}

/* ---- read and write: IO_WINDOW objects at a time, each on its own thread ---- */

struct io_slot {
	pthread_t thread;
	struct sd_vdi *vdi;
	char *buf;
	size_t len;
	uint64_t offset;
	bool write;
	int ret;
};

static void *io_slot_run(void *arg)
{
	struct io_slot *s = arg;
	s->ret = s->write ? sd_vdi_pwrite(s->vdi, s->buf, s->len, s->offset)
			  : sd_vdi_pread(s->vdi, s->buf, s->len, s->offset);
	return NULL;
}

/* OFFSET and LEN arguments within a VDI of size bytes: 0, or the exit status of the error */
static int parse_range(int argc, char **argv, uint64_t size, uint64_t *off, uint64_t *len, bool *len_given)
{
	*off = 0;
	*len = size;
	*len_given = false;
	if (argc > 1 && parse_size_arg(argv[1], "offset", off) < 0)
		return EXIT_USAGE;
	if (*off > size) {
		die_msg("offset %" PRIu64 " is past the end of the VDI (%" PRIu64 " bytes)", *off, size);
		return EXIT_FAILED;
	}
	*len = size - *off;
	if (argc > 2) {
		if (parse_size_arg(argv[2], "length", len) < 0)
			return EXIT_USAGE;
		if (*len > size - *off) {
			die_msg("offset + length (%" PRIu64 " + %" PRIu64 ") is past the end of the VDI (%" PRIu64 " bytes)",
				*off, *len, size);
			return EXIT_FAILED;
		}
		*len_given = true;
	}
	return 0;
}

static int run_window(struct io_slot *slots, int n)
{
	int ret = 0;
	for (int i = 0; i < n; i++)
		if (pthread_create(&slots[i].thread, NULL, io_slot_run, &slots[i]))
			io_slot_run(&slots[i]), slots[i].thread = 0;
	for (int i = 0; i < n; i++) {
		if (slots[i].thread)
			pthread_join(slots[i].thread, NULL);
		if (slots[i].ret && !ret)
			ret = slots[i].ret;
	}
	return ret;
}

/* vdi read | write: the VDI (or its snapshot -s) open and the byte range of the arguments;
 * 0, or an exit status */
static int io_open(const char *what, int argc, char **argv, bool write, struct sd_vdi **vdi, uint64_t *off,
		   uint64_t *len, bool *len_given)
{
	if (check_vdi_name(argv[0]) < 0 || check_snap_arg(opt('s')) < 0)
		return EXIT_USAGE;
	int ret = sd_vdi_open(sd_addr, sd_port, argv[0], opt('s'), write, vdi);
	if (ret == SD_RES_READONLY) {
		die_msg("%s %s: snapshot '%s' is read-only (clone it to write)", what, argv[0], opt('s'));
		return EXIT_FAILED;
	}
	if (ret)
		return report_failure(what, ret);
	ret = parse_range(argc, argv, sd_vdi_size(*vdi), off, len, len_given);
	if (ret)
		sd_vdi_close(*vdi);
	return ret;
}

/* the window's slots, each with an object-sized buffer; -ENOMEM when one could not be had */
static int io_slots_init(struct io_slot *slots, struct sd_vdi *vdi, bool write)
{
	uint32_t objsize = sd_vdi_object_size(vdi);
	int ret = 0;
	memset(slots, 0, sizeof(*slots) * IO_WINDOW);
	for (int i = 0; i < IO_WINDOW; i++) {
		slots[i].buf = malloc(MIN(objsize, IO_PIECE));
		slots[i].vdi = vdi;
		slots[i].write = write;
		if (!slots[i].buf)
			ret = -ENOMEM;
	}
	return ret;
}

static int vdi_read(int argc, char **argv)
{
	struct sd_vdi *vdi;
	uint64_t off, len;
	bool len_given;
	int ret = io_open("vdi read", argc, argv, false, &vdi, &off, &len, &len_given);
	if (ret)
		return ret;
	uint32_t objsize = sd_vdi_object_size(vdi);
	struct io_slot slots[IO_WINDOW];
	ret = io_slots_init(slots, vdi, false);
	while (len && !ret) {
		int n = 0;
		for (; n < IO_WINDOW && len; n++) {
			size_t chunk = MIN(MIN(len, objsize - (off % objsize)), IO_PIECE);
			slots[n].len = chunk;
			slots[n].offset = off;
			off += chunk;
			len -= chunk;
		}
		ret = run_window(slots, n);
		for (int i = 0; i < n && !ret; i++)
			if (xwrite(STDOUT_FILENO, slots[i].buf, slots[i].len) != (ssize_t)slots[i].len) {
				die_msg("vdi read: writing to standard output: %s", strerror(errno));
				ret = -1;
			}
	}
	for (int i = 0; i < IO_WINDOW; i++)
		free(slots[i].buf);
	sd_vdi_close(vdi);
	if (ret > 0 || ret < -1)
		return report_failure("vdi read", ret);
	return ret ? EXIT_FAILED : EXIT_OK;
}

static int vdi_write(int argc, char **argv)
{
	struct sd_vdi *vdi;
	uint64_t off, len;
	bool len_given;
	int ret = io_open("vdi write", argc, argv, true, &vdi, &off, &len, &len_given);
	if (ret)
		return ret;
	/* a regular file on stdin: refuse before writing anything if it cannot fit */
	struct stat st;
	if (!len_given && fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
		off_t pos = lseek(STDIN_FILENO, 0, SEEK_CUR);
		uint64_t avail = st.st_size > pos && pos >= 0 ? st.st_size - pos : 0;
		if (avail > len) {
			die_msg("vdi write: the input (%" PRIu64 " bytes) does not fit in %s at offset %" PRIu64
				" (%" PRIu64 " bytes left)", avail, argv[0], off, len);
			sd_vdi_close(vdi);
			return EXIT_FAILED;
		}
	}
	uint32_t objsize = sd_vdi_object_size(vdi);
	struct io_slot slots[IO_WINDOW];
	ret = io_slots_init(slots, vdi, true);
	bool eof = false;
	uint64_t written = 0;
	while (!ret && !eof && len) {
		int n = 0;
		for (; n < IO_WINDOW && len && !eof; n++) {
			size_t chunk = MIN(MIN(len, objsize - (off % objsize)), IO_PIECE);
			ssize_t got = xread(STDIN_FILENO, slots[n].buf, chunk);
			if (got < 0) {
				die_msg("vdi write: reading standard input: %s", strerror(errno));
				ret = -1;
				break;
			}
			if ((size_t)got < chunk)
				eof = true;
			if (!got)
				break;
			slots[n].len = got;
			slots[n].offset = off;
			off += got;
			len -= got;
		}
		if (ret)
			break;
		if (n && !slots[n - 1].len)
			n--;
		ret = run_window(slots, n);
		for (int i = 0; i < n && !ret; i++)
			written += slots[i].len;
	}
	if (!ret && !len && !len_given) {
		/* the VDI is full: anything more on stdin could not be stored */
		char c;
		if (xread(STDIN_FILENO, &c, 1) == 1) {
			die_msg("vdi write: the input is larger than the space left in %s; only %" PRIu64 " bytes were written",
				argv[0], written);
			ret = -1;
		}
	}
	if (!ret && len_given && len) {
		die_msg("vdi write: the input ended %" PRIu64 " bytes short of the requested length", len);
		ret = -1;
	}
	if (ret >= 0) {
		int f = sd_vdi_flush(vdi);
		if (!ret)
			ret = f;
	}
	for (int i = 0; i < IO_WINDOW; i++)
		free(slots[i].buf);
	sd_vdi_close(vdi);
	if (ret > 0 || ret < -1)
		return report_failure("vdi write", ret);
	return ret ? EXIT_FAILED : EXIT_OK;
}

/* ---- where objects live ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool has_oid(const uint64_t *list, size_t n, uint64_t oid)
{
	return n && bsearch(&oid, list, n, sizeof(uint64_t), cmp_u64);
}

/* {"type": inode|data, "index" (-1 for the inode), "oid", "allocated", "copies", "nodes"} */
static struct json_object *object_json(int64_t idx, uint64_t oid, struct json_object *holders)
{
	struct json_object *o = json_object_new_object();
	char hex[20];
	snprintf(hex, sizeof(hex), "%016" PRIx64, oid);
	json_add_str(o, "type", idx < 0 ? "inode" : "data");
	json_add_i64(o, "index", idx);
	json_add_str(o, "oid", oid ? hex : "");
	json_add_bool(o, "allocated", oid != 0);
	json_add_u64(o, "copies", holders ? json_object_array_length(holders) : 0);
	json_object_object_add(o, "nodes", holders ? holders : json_object_new_array());
	return o;
}

struct obj_lists {
	uint64_t **lists;
	size_t *counts;
};

static bool node_lists(int node, uint64_t oid, void *ctx)
{
	const struct obj_lists *l = ctx;
	return has_oid(l->lists[node], l->counts[node], oid);
}

/* a data object of an erasure-coded VDI: which node holds each strip */
static void print_ec_object(int64_t idx, uint64_t oid, uint8_t policy, const struct sd_node *nodes, int nr_nodes,
			    struct obj_lists *l, struct json_object *objs)
{
	char line[8192], red[16];
	struct json_object *strips = objs ? json_object_new_array() : NULL;
	int present = strips_held(oid, policy, nodes, nr_nodes, node_lists, l, line, sizeof(line), strips);
	if (objs) {
		struct json_object *o = object_json(idx, oid, NULL);
		json_object_object_del(o, "copies");
		json_add_u64(o, "copies", present);
		json_add_str(o, "policy", redundancy_str(0, policy, red, sizeof(red)));
		json_object_object_add(o, "strips", strips);
		json_object_array_add(objs, o);
	} else {
		printf(raw_output ? "%" PRId64 " %016" PRIx64 " %d%s\n" : "%-8" PRId64 " %016" PRIx64 "  %6d %s\n", idx, oid,
		       present, line);
	}
}

static int vdi_object(int argc, char **argv)
{
	struct sd_node *nodes;
	int nr_nodes, ret;
	uint32_t vid, nr_objs;
	struct sd_vdi *vdi;
	uint64_t want = UINT64_MAX;
	if (check_vdi_name(argv[0]) < 0)
		return EXIT_USAGE;
	if (opt('i') && parse_u64(opt('i'), &want) < 0) {
		die_msg("invalid index '%s'", opt('i'));
		return EXIT_USAGE;
	}
	ret = sd_vdi_open(sd_addr, sd_port, argv[0], opt('s'), false, &vdi);
	if (ret)
		return report_failure("vdi object", ret);
	vid = sd_vdi_id(vdi);
	const uint32_t *index = sd_vdi_index(vdi, &nr_objs);
	if (want != UINT64_MAX && want >= nr_objs) {
		die_msg("index %" PRIu64 " is past the end of %s (%u objects)", want, argv[0], nr_objs);
		sd_vdi_close(vdi);
		return EXIT_FAILED;
	}
	ret = get_node_list(&nodes, &nr_nodes, NULL);
	if (ret) {
		sd_vdi_close(vdi);
		return report_failure("vdi object", ret);
	}
	/* each node's object list, sorted */
	uint64_t **lists = calloc(nr_nodes, sizeof(*lists));
	size_t *counts = calloc(nr_nodes, sizeof(*counts));
	uint32_t bufsize = 16u << 20;
	for (int i = 0; i < nr_nodes; i++) {
		char nb[80];
		struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_OBJ_LIST, .data_length = bufsize };
		struct sd_rsp rsp;
		lists[i] = malloc(bufsize);
		if (!lists[i] || node_exec(&nodes[i], &req, lists[i], bufsize, &rsp)) {
			die_msg("vdi object: cannot list the objects of node %d (%s)", i,
				node_to_str(&nodes[i], nb, sizeof(nb)));
			continue;
		}
		counts[i] = rsp.data_length / sizeof(uint64_t);
		qsort(lists[i], counts[i], sizeof(uint64_t), cmp_u64);
	}
	struct json_object *objs = json_output ? json_object_new_array() : NULL;
	if (!raw_output && !objs)
		printf("Index    Object ID         Copies  Nodes\n");
	for (int64_t idx = -1; idx < (int64_t)nr_objs; idx++) {
		uint64_t oid;
		if (idx < 0) {
			if (want != UINT64_MAX)
				continue;
			oid = vid_to_vdi_oid(vid);
		} else {
			if (want != UINT64_MAX && (uint64_t)idx != want)
				continue;
			if (!index[idx]) {
				if (want != UINT64_MAX && objs)
					json_object_array_add(objs, object_json(idx, 0, NULL));
				else if (want != UINT64_MAX)
					printf(raw_output ? "%" PRId64 " unallocated\n" : "%-8" PRId64 " (not allocated)\n", idx);
				continue;
			}
			oid = vid_to_data_oid(index[idx], idx);
			uint8_t policy = vdi_policy_of(index[idx]);
			if (policy) {
				struct obj_lists l = { lists, counts };
				print_ec_object(idx, oid, policy, nodes, nr_nodes, &l, objs);
				continue;
			}
		}
		int copies = 0;
		char line[8192] = "";
		size_t pos = 0;
		struct json_object *holders = objs ? json_object_new_array() : NULL;
		for (int i = 0; i < nr_nodes; i++) {
			if (!has_oid(lists[i], counts[i], oid))
				continue;
			if (holders) {
				json_object_array_add(holders, node_json(i, &nodes[i]));
				copies++;
				continue;
			}
			char nb[80];
			node_to_str(&nodes[i], nb, sizeof(nb));
			pos += snprintf(line + pos, sizeof(line) - MIN(pos, sizeof(line)), " %s", nb);
			copies++;
			if (pos >= sizeof(line))
				break;
		}
		if (objs)
			json_object_array_add(objs, object_json(idx, oid, holders));
		else if (idx < 0)
			printf(raw_output ? "inode %016" PRIx64 " %d%s\n" : "inode    %016" PRIx64 "  %6d %s\n", oid, copies, line);
		else
			printf(raw_output ? "%" PRId64 " %016" PRIx64 " %d%s\n" : "%-8" PRId64 " %016" PRIx64 "  %6d %s\n", idx, oid,
			       copies, line);
	}
	if (objs)
		json_print(objs);
	for (int i = 0; i < nr_nodes; i++)
		free(lists[i]);
	free(lists);
	free(counts);
	free(nodes);
	sd_vdi_close(vdi);
	return 0;
}

static const struct collie_option create_opts[] = {
	{ 'c', "copies", 1, "COPIES", "replicas of each object, or D:P erasure coding (default: the cluster's)" },
	{ 'P', "prealloc", 0, NULL, "allocate every object now" },
	{ 'z', "object-size-shift", 1, "SHIFT", "objects of 2^SHIFT bytes, 20 to 31 (default: the cluster's, 22)" },
	{ 0 },
};
static const struct collie_option snapshot_opts[] = {
	{ 's', "snapshot", 1, "TAG", "tag the snapshot (not a number: numbers are snapshot ids)" },
	{ 0 },
};
static const struct collie_option attr_opts[] = {
	{ 's', "snapshot", 1, "TAG|ID", "an attribute of a snapshot instead of the working VDI" },
	{ 'd', "delete", 0, NULL, "delete the attribute" },
	{ 'x', "exclusive", 0, NULL, "fail if the attribute exists already" },
	{ 0 },
};
static const struct collie_option backup_opts[] = {
	{ 'F', "from", 1, "TAG|ID", "only the difference from this earlier snapshot" },
	{ 's', "snapshot", 1, "TAG|ID", "the snapshot to back up (required)" },
	{ 0 },
};
static const struct collie_option restore_opts[] = {
	{ 's', "snapshot", 1, "TAG", "tag of the snapshot that records the restored state (required)" },
	{ 0 },
};
static const struct collie_option snap_opts[] = {
	{ 's', "snapshot", 1, "TAG|ID", "a snapshot instead of the working VDI" },
	{ 0 },
};
static const struct collie_option object_opts[] = {
	{ 'i', "index", 1, "INDEX", "only the data object with this index" },
	{ 's', "snapshot", 1, "TAG|ID", "a snapshot instead of the working VDI" },
	{ 0 },
};

static const struct collie_option vdi_check_opts[] = {
	{ 'n', "no-repair", 0, NULL, "report only; change nothing" },
	{ 's', "snapshot", 1, "TAG|ID", "a snapshot instead of the working VDI" },
	PROGRESS_OPTION_ROW,
	{ 0 },
};

static const struct collie_option alter_copy_opts[] = {
	{ 'c', "copies", 1, "COPIES", "copies of every object from now on, or D:P erasure coding" },
	PROGRESS_OPTION_ROW,
	{ 0 },
};

int vdi_alter_copy(int argc, char **argv);   /* vdi_copies.c */
int vdi_track(int argc, char **argv);   /* vdi_track.c */
int vdi_check(int argc, char **argv);   /* check.c */

/* vdi_transfer.c */
extern const struct collie_option vdi_import_opts[], vdi_export_opts[];
int vdi_import(int argc, char **argv);
int vdi_export(int argc, char **argv);

static const struct subcommand vdi_subs[] = {
	{ "create", "NAME SIZE [-c COPIES] [-P] [-z SHIFT]", "create a VDI of SIZE bytes (K, M, G, T suffixes)",
	  create_opts, CMD_CLUSTER, 2, 2, vdi_create },
	{ "snapshot", "NAME [-s TAG]", "freeze NAME's current contents as a snapshot; NAME stays writable",
	  snapshot_opts, CMD_CLUSTER, 1, 1, vdi_snapshot },
	{ "clone", "SRC DST [-s TAG|ID]", "a new writable VDI DST sharing a snapshot of SRC (default: the newest)",
	  snap_opts, CMD_CLUSTER, 2, 2, vdi_clone },
	{ "rollback", "NAME -s TAG|ID", "discard NAME's changes since a snapshot: it takes that snapshot's contents",
	  snap_opts, CMD_CLUSTER, 1, 1, vdi_rollback },
	{ "list", "[NAME]", "list VDIs and snapshots with their size, own and shared space", NULL,
	  CMD_CLUSTER | CMD_JSON, 0, 1, vdi_list },
	{ "tree", "[NAME]", "draw each family of snapshots and clones", NULL, CMD_CLUSTER | CMD_JSON, 0, 1, vdi_tree },
	{ "delete", "NAME [-s TAG|ID]", "delete a VDI or a snapshot and free what nothing else uses", snap_opts,
	  CMD_CLUSTER, 1, 1, vdi_delete },
	{ "resize", "NAME SIZE", "change the size of a VDI (shrinking only over unallocated space)",
	  NULL, CMD_CLUSTER, 2, 2, vdi_resize },
	{ "read", "NAME [OFFSET [LEN]] [-s TAG|ID]", "write a VDI's (or a snapshot's) bytes to standard output",
	  snap_opts, CMD_CLUSTER, 1, 3, vdi_read },
	{ "write", "NAME [OFFSET [LEN]]", "write standard input into a VDI (snapshots are read-only)", snap_opts,
	  CMD_CLUSTER, 1, 3, vdi_write },
	{ "setattr", "NAME KEY [VALUE] [-d] [-x] [-s TAG|ID]", "set (VALUE or standard input) or delete an attribute",
	  attr_opts, CMD_CLUSTER, 2, 3, vdi_setattr },
	{ "getattr", "NAME KEY [-s TAG|ID]", "write an attribute's value to standard output", snap_opts, CMD_CLUSTER,
	  2, 2, vdi_getattr },
	{ "lock", "list | unlock NAME [-s TAG|ID]", "show the VDI locks guests hold, or force one open", snap_opts,
	  CMD_CLUSTER | CMD_JSON, 1, 2, vdi_lock },
	{ "backup", "NAME -s TO [-F FROM]", "write snapshot TO (or its difference from FROM) as a stream to stdout",
	  backup_opts, CMD_CLUSTER, 1, 1, vdi_backup },
	{ "restore", "NAME -s TAG", "apply a backup stream from stdin to NAME and snapshot the result as TAG",
	  restore_opts, CMD_CLUSTER, 1, 1, vdi_restore },
	{ "object", "NAME [-i INDEX]", "show which nodes hold each object of a VDI", object_opts,
	  CMD_CLUSTER | CMD_JSON, 1, 1, vdi_object },
	{ "track", "NAME [-i INDEX] [-s TAG|ID]", "where each object of a VDI lived in every epoch",
	  object_opts, CMD_CLUSTER, 1, 1, vdi_track },
	{ "check", "NAME [-n] [-s TAG|ID]", "verify every replica of NAME's objects; repair from one that verifies",
	  vdi_check_opts, CMD_CLUSTER | CMD_JSON, 1, 1, vdi_check },
	{ "alter-copy", "-c COPIES|D:P NAME", "change how many copies NAME and its snapshots keep (online: replicas "
	  "are added or set aside while guests run), or convert it between replicas and D:P strips (offline)",
	  alter_copy_opts, CMD_CLUSTER, 1, 1, vdi_alter_copy },
	{ "import", "[-f FMT] [-c COPIES] [-p] NAME SOURCE [NAME SOURCE...] | --list FILE",
	  "create VDIs from disk images (files or URLs), several at once", vdi_import_opts, 0, 0, -1, vdi_import },
	{ "export", "[-O FMT] [-o OPTS] [-s SNAPSHOT] [-p] NAME DEST [NAME DEST...] | --list FILE",
	  "write VDIs out as disk images, several at once", vdi_export_opts, 0, 0, -1, vdi_export },
	{ NULL },
};

const struct command vdi_command = { "vdi", "virtual disk images in the cluster", vdi_subs };
