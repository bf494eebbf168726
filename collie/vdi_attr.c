/* vdi_attr.c: collie vdi setattr | getattr | lock: a VDI's attributes (key/value objects beside
 * its inode) and the cluster-wide VDI locks that guests take with LOCK_VDI. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collie.h"
#include "json_out.h"
#include "net.h"
#include "sd_client.h"
#include "util.h"
#include "vdi_lifecycle.h"

static int check_key(const char *key)
{
	if (!*key) {
		die_msg("the attribute key is empty");
		return -1;
	}
	if (strlen(key) >= SD_MAX_VDI_ATTR_KEY_LEN) {
		die_msg("the attribute key is %zu bytes long; at most %d are allowed", strlen(key),
			SD_MAX_VDI_ATTR_KEY_LEN - 1);
		return -1;
	}
	return 0;
}

/* setattr NAME KEY [VALUE]: VALUE, else standard input; -d deletes, -x only creates */
int vdi_setattr(int argc, char **argv)
{
	char what[600], *value = NULL;
	size_t len = 0;
	unsigned flags = SD_FLAG_CMD_CREAT;
	int ret;
	if (check_vdi_name(argv[0]) < 0 || check_key(argv[1]) < 0 || check_snap_arg(opt('s')) < 0)
		return EXIT_USAGE;
	snprintf(what, sizeof(what), "vdi setattr %s %s", argv[0], argv[1]);
	if (opt_set('d') && (argc > 2 || opt_set('x'))) {
		die_msg("%s: -d deletes the attribute; it takes no value and no -x", what);
		return EXIT_USAGE;
	}
	if (opt_set('d')) {
		flags = SD_FLAG_CMD_DEL;
	} else if (argc > 2) {
		len = strlen(argv[2]);
		value = strdup(argv[2]);
	} else {
		/* the value from standard input, at most SD_MAX_VDI_ATTR_VALUE_LEN bytes */
		value = malloc(SD_MAX_VDI_ATTR_VALUE_LEN + 1);
		ssize_t n = value ? xread(STDIN_FILENO, value, SD_MAX_VDI_ATTR_VALUE_LEN + 1) : -1;
		if (n < 0) {
			die_msg("%s: reading standard input: %s", what, strerror(errno));
			free(value);
			return EXIT_FAILED;
		}
		len = n;
	}
	if (len > SD_MAX_VDI_ATTR_VALUE_LEN) {
		die_msg("%s: the value is longer than %d bytes", what, SD_MAX_VDI_ATTR_VALUE_LEN);
		free(value);
		return EXIT_USAGE;
	}
	if (opt_set('x'))
		flags |= SD_FLAG_CMD_EXCL;
	ret = sd_vdi_attr(sd_addr, sd_port, argv[0], opt('s'), argv[1], value, len, flags, NULL, NULL);
	free(value);
	switch (ret) {
	case SD_RES_SUCCESS:
		return 0;
	case SD_RES_VDI_EXIST:
		die_msg("%s: the attribute exists already", what);
		return EXIT_EXISTS;
	case SD_RES_NO_OBJ:
		die_msg("%s: no such attribute", what);
		return EXIT_MISSING;
	}
	return report_failure(what, ret);
}

int vdi_getattr(int argc, char **argv)
{
	char what[600];
	uint32_t vid, attr_id;
	if (check_vdi_name(argv[0]) < 0 || check_key(argv[1]) < 0 || check_snap_arg(opt('s')) < 0)
		return EXIT_USAGE;
	snprintf(what, sizeof(what), "vdi getattr %s %s", argv[0], argv[1]);
	int ret = sd_vdi_attr(sd_addr, sd_port, argv[0], opt('s'), argv[1], NULL, 0, 0, &vid, &attr_id);
	if (ret == SD_RES_NO_OBJ) {
		die_msg("%s: no such attribute", what);
		return EXIT_MISSING;
	}
	if (ret)
		return report_failure(what, ret);
	struct sheepdog_vdi_attr *a = calloc(1, sizeof(*a));
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_READ_OBJ, .data_length = sizeof(*a) };
	struct sd_rsp rsp;
	if (!a)
		return report_failure(what, -ENOMEM);
	req.obj.oid = vid_to_attr_oid(vid, attr_id);
	ret = sheep_exec(&req, a, sizeof(*a), &rsp);
	if (!ret && a->value_len > SD_MAX_VDI_ATTR_VALUE_LEN)
		ret = SD_RES_EIO;
	if (!ret && xwrite(STDOUT_FILENO, a->value, a->value_len) != (ssize_t)a->value_len) {
		die_msg("%s: writing standard output: %s", what, strerror(errno));
		free(a);
		return EXIT_FAILED;
	}
	free(a);
	return ret ? report_failure(what, ret) : 0;
}

/* ---- locks ---- */

static void owner_name(uint32_t owner, const struct sd_node *nodes, int nr, char *buf, size_t len)
{
	for (int i = 0; i < nr; i++)
		if (node_id_hash32(&nodes[i]) == owner) {
			node_to_str(&nodes[i], buf, len);
			return;
		}
	snprintf(buf, len, "node-%08" PRIx32, owner);
}

static int lock_list(void)
{
	size_t cap = SD_NR_VDIS / 8;
	struct vdi_lock_info *locks = calloc(1, cap);
	struct sd_req req = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_GET_VDI_LOCKS, .data_length = cap };
	struct sd_rsp rsp;
	struct sd_node *nodes = NULL;
	struct sd_inode_header *h = calloc(1, sizeof(*h));
	struct json_object *list = json_output ? json_object_new_array() : NULL;
	int nr_nodes = 0, ret = -ENOMEM;
	if (!locks || !h)
		goto out;
	ret = sheep_exec(&req, locks, cap, &rsp);
	if (!ret)
		ret = get_node_list(&nodes, &nr_nodes, NULL);
	if (ret)
		goto out;
	if (!raw_output && !list)
		printf("VDI                  Tag              Id      Type    Holders\n");
	for (size_t i = 0; i < rsp.data_length / sizeof(*locks); i++) {
		const struct vdi_lock_info *li = &locks[i];
		char holders[1024] = "";
		size_t pos = 0;
		if (sd_read_inode_header(sd_addr, sd_port, li->vid, h) != SD_RES_SUCCESS)
			memset(h, 0, sizeof(*h));
		const char *type = li->type == SD_LOCK_SHARED ? "shared" : "normal";
		if (list) {
			struct json_object *o = vdi_json(h, li->vid), *who = json_object_new_array();
			json_add_str(o, "lock", type);
			for (int k = 0; k < li->nr_owners && k < SD_LOCK_MAX_OWNERS; k++) {
				char nb[80];
				owner_name(li->owners[k], nodes, nr_nodes, nb, sizeof(nb));
				json_object_array_add(who, json_object_new_string(nb));
			}
			json_object_object_add(o, "holders", who);
			json_object_array_add(list, o);
			continue;
		}
		for (int k = 0; k < li->nr_owners && k < SD_LOCK_MAX_OWNERS; k++) {
			char nb[80];
			owner_name(li->owners[k], nodes, nr_nodes, nb, sizeof(nb));
			pos += snprintf(holders + pos, sizeof(holders) - MIN(pos, sizeof(holders)), "%s%s", k ? "," : "", nb);
		}
		if (raw_output)
			printf("%s %s %x %s %s\n", h->name[0] ? h->name : "-", h->tag[0] ? h->tag : "-", li->vid, type, holders);
		else
			printf("%-20s %-16s %-7x %-7s %s\n", h->name[0] ? h->name : "?", h->tag, li->vid, type, holders);
	}
	if (list)
		json_print(list);
	list = NULL;
	ret = 0;
out:
	if (list)
		json_object_put(list);
	free(locks);
	free(nodes);
	free(h);
	return ret ? report_failure("vdi lock list", ret) : 0;
}

static int lock_unlock(const char *name)
{
	char what[300];
	uint32_t vid;
	snprintf(what, sizeof(what), "vdi lock unlock %s", name);
	int ret = sd_vdi_lookup(sd_addr, sd_port, name, opt('s'), &vid);
	if (ret == SD_RES_NO_VDI || ret == SD_RES_NO_TAG) {
		die_msg("%s: %s", what, ret == SD_RES_NO_VDI ? "no such VDI" : "no such snapshot");
		return EXIT_MISSING;
	}
	if (ret)
		return report_failure(what, ret);
	struct sd_req req = { .proto_ver = SD_PROTO_VER, .opcode = SD_OP_RELEASE_VDI, .flags = SD_FLAG_CMD_FORCE };
	struct sd_rsp rsp;
	req.vdi.base_vdi_id = vid;
	ret = sheep_exec(&req, NULL, 0, &rsp);
	if (ret == SD_RES_VDI_NOT_LOCKED) {
		die_msg("%s: the VDI is not locked", what);
		return EXIT_FAILED;
	}
	return ret ? report_failure(what, ret) : 0;
}

/* lock list | lock unlock NAME */
int vdi_lock(int argc, char **argv)
{
	if (!strcmp(argv[0], "list") && argc == 1)
		return lock_list();
	if (!strcmp(argv[0], "unlock") && argc == 2) {
		if (check_vdi_name(argv[1]) < 0 || check_snap_arg(opt('s')) < 0)
			return EXIT_USAGE;
		return lock_unlock(argv[1]);
	}
	die_msg("vdi lock: expected 'list' or 'unlock NAME'");
	return EXIT_USAGE;
}
