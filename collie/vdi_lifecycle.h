/* vdi_lifecycle.h: collie's VDI lifecycle commands (snapshots, clones, attributes, locks,
 * backup), implemented in vdi_snap.c, vdi_attr.c and vdi_backup.c; vdi.c holds the table. */
#ifndef VDI_LIFECYCLE_H
#define VDI_LIFECYCLE_H

#include <stdint.h>
#include "sheepdog_proto.h"

/* one live inode (working VDI or snapshot), as listing sees it */
struct vdi_entry {
	uint32_t vid;
	struct sd_inode_header hdr;
};

/* Every live inode in the cluster (malloc'd, by id); with tombstones, deleted ones too (name
 * empty). Returns 0 or an SD_RES_* / -errno code. */
int vdi_collect(struct vdi_entry **out, int *nr, bool tombstones);
/* READ_OBJ over an open connection (connect_to); 0, an SD_RES_* code, or -EIO */
int vdi_read_obj_fd(int fd, uint64_t oid, void *buf, uint32_t len, uint32_t offset);
/* a JSON object {"name", "type": vdi|snapshot|clone, "snapshot-id", "tag", "vdi-id", "created"}
 * for an inode (vdi_snap.c; callers add to it) */
struct json_object;
struct json_object *vdi_json(const struct sd_inode_header *h, uint32_t vid);
/* a snapshot argument: a tag of at most 255 bytes; prints the error itself */
int check_snap_arg(const char *snap);

int vdi_snapshot(int argc, char **argv);
int vdi_clone(int argc, char **argv);
int vdi_rollback(int argc, char **argv);
int vdi_tree(int argc, char **argv);
int vdi_setattr(int argc, char **argv);
int vdi_getattr(int argc, char **argv);
int vdi_lock(int argc, char **argv);
int vdi_backup(int argc, char **argv);
int vdi_restore(int argc, char **argv);

#endif
