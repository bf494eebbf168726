/* node_md.c: collie node md info | plug PATH | unplug PATH: the disks of the node collie talks to
 * (a multi-disk node, sheep META,DISK1,...): list them with their sizes, add one, take one out.
 * A disk taken out, or one that failed, has its objects recovered from the other nodes. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collie.h"
#include "json_out.h"
#include "util.h"

#define MD_INFO_MAX 128   /* entries asked for: the disks in use and those that failed */

static const char *md_state_name(uint8_t state)
{
	return state == SD_MD_FAILED ? "failed" : "active";
}

/* the node's disks into *out (malloc'd); -errno or an SD_RES_* result */
static int md_list(struct sd_md_disk **out, int *nr)
{
	uint32_t len = MD_INFO_MAX * sizeof(struct sd_md_disk);
	struct sd_md_disk *d = calloc(MD_INFO_MAX, sizeof(*d));
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_MD_INFO, .data_length = len };
	struct sd_rsp rsp;
	if (!d)
		return SD_RES_NO_MEM;
	int ret = sheep_exec(&req, d, len, &rsp);
	if (ret) {
		free(d);
		return ret;
	}
	*nr = rsp.data_length / sizeof(*d);
	for (int i = 0; i < *nr; i++)
		d[i].path[SD_MD_PATH_LEN - 1] = 0;
	*out = d;
	return SD_RES_SUCCESS;
}

static int md_info_show(void)
{
	struct sd_md_disk *d;
	int nr, ret = md_list(&d, &nr);
	if (ret)
		return report_failure("node md info", ret);
	if (json_output) {
		struct json_object *doc = json_object_new_object(), *list = json_object_new_array();
		for (int i = 0; i < nr; i++) {
			struct json_object *o = json_object_new_object();
			json_add_i64(o, "id", i);
			json_add_str(o, "path", d[i].path);
			json_add_str(o, "state", md_state_name(d[i].state));
			json_add_u64(o, "size", d[i].size);
			json_add_u64(o, "used", d[i].used);
			json_add_u64(o, "avail", d[i].avail);
			json_add_u64(o, "objects", d[i].nr_objects);
			json_add_u64(o, "vnodes", d[i].nr_vnodes);
			json_object_array_add(list, o);
		}
		json_object_object_add(doc, "disks", list);
		json_print(doc);
		free(d);
		return 0;
	}
	if (!raw_output)
		printf("Id  %-40s %10s %10s %10s %8s %7s  State\n", "Path", "Size", "Used", "Avail", "Objects",
		       "VNodes");
	for (int i = 0; i < nr; i++) {
		char s1[32], s2[32], s3[32];
		if (raw_output)
			printf("%d %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %u %s\n", i, d[i].path, d[i].size,
			       d[i].used, d[i].avail, d[i].nr_objects, d[i].nr_vnodes, md_state_name(d[i].state));
		else
			printf("%2d  %-40s %10s %10s %10s %8u %7u  %s\n", i, d[i].path, fmt_size(d[i].size, s1, sizeof(s1)),
			       fmt_size(d[i].used, s2, sizeof(s2)), fmt_size(d[i].avail, s3, sizeof(s3)),
			       d[i].nr_objects, d[i].nr_vnodes, md_state_name(d[i].state));
	}
	free(d);
	return 0;
}

/* plug or unplug: checked against the node's list first, for a message that says what is wrong */
static int md_change(bool plug, const char *arg)
{
	const char *verb = plug ? "plug" : "unplug";
	char path[PATH_MAX], what[PATH_MAX + 32];
	struct sd_md_disk *d;
	int nr, active = 0, found = -1, ret;
	/* collie usually runs on the node's host: a path that exists here is made absolute here */
	if (!realpath(arg, path))
		snprintf(path, sizeof(path), "%s", arg);
	snprintf(what, sizeof(what), "node md %s %s", verb, path);
	if (strlen(path) >= SD_MD_PATH_LEN) {
		die_msg("%s: path too long (at most %d bytes)", what, SD_MD_PATH_LEN - 1);
		return EXIT_USAGE;
	}
	if ((ret = md_list(&d, &nr)))
		return report_failure(what, ret);
	for (int i = 0; i < nr; i++) {
		active += d[i].state == SD_MD_ACTIVE;
		if (!strcmp(d[i].path, path))
			found = i;
	}
	bool is_active = found >= 0 && d[found].state == SD_MD_ACTIVE;
	free(d);
	if (plug && is_active) {
		die_msg("%s: already a disk of this node", what);
		return EXIT_EXISTS;
	}
	if (!plug && found < 0) {
		die_msg("%s: not a disk of this node (see collie node md info)", what);
		return EXIT_MISSING;
	}
	if (!plug && is_active && active == 1) {
		die_msg("%s: the last disk of the node cannot be unplugged", what);
		return EXIT_FAILED;
	}
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = plug ? SD_OP_MD_PLUG : SD_OP_MD_UNPLUG,
			      .flags = SD_FLAG_CMD_WRITE, .data_length = strlen(path) + 1 };
	struct sd_rsp rsp;
	ret = sheep_exec(&req, path, req.data_length, &rsp);
	switch (ret) {
	case SD_RES_SUCCESS:
		break;
	case SD_RES_NO_SUPPORT:
		die_msg("%s: the node keeps its objects in one directory (start it as sheep META,DISK1,... "
			"for several disks)", what);
		return EXIT_FAILED;
	case SD_RES_NO_OBJ:
		die_msg("%s: %s", what, plug ? "no such directory on the node" : "not a disk of this node");
		return EXIT_MISSING;
	case SD_RES_VDI_EXIST:
		die_msg("%s: already a disk of this node", what);
		return EXIT_EXISTS;
	case SD_RES_INVALID_PARMS:
		die_msg("%s: refused (%s)", what, plug ? "the META directory, or too many disks" : "the last disk");
		return EXIT_FAILED;
	default:
		return report_failure(what, ret);
	}
	if (plug)
		printf("%s plugged; new objects spread over it\n", path);
	else
		printf("%s unplugged; its objects are recovered from the other nodes (collie node recovery)\n", path);
	return 0;
}

int node_md(int argc, char **argv)
{
	if (!strcmp(argv[0], "info") && argc == 1)
		return md_info_show();
	if ((!strcmp(argv[0], "plug") || !strcmp(argv[0], "unplug")) && argc == 2)
		return md_change(!strcmp(argv[0], "plug"), argv[1]);
	if (strcmp(argv[0], "info") && strcmp(argv[0], "plug") && strcmp(argv[0], "unplug"))
		die_msg("node md: unknown action '%s' (info, plug PATH, unplug PATH)", argv[0]);
	else
		die_msg("node md %s: %s", argv[0], strcmp(argv[0], "info") ? "needs one PATH" : "takes no PATH");
	return EXIT_USAGE;
}
