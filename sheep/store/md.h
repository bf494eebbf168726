/* md.h: the disks under the object store. A node started with one store directory keeps its
 * objects in DIR/obj (one "disk"); one started with META,DISK1,DISK2,... keeps them in the disk
 * directories themselves, each object on the disk its oid hashes to on a ring of the disks
 * weighted by their space. Knows directories only: store.c asks it where an object lives. */
#ifndef SHEEP_STORE_MD_H
#define SHEEP_STORE_MD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal_proto.h"

#define MD_MAX_DISKS 64
/* one vnode on the disk ring for every MD_BYTES_PER_VNODE of a disk's space, 1 to
 * MD_MAX_DISK_VNODES (16 TiB; larger disks weigh the same) */
#define MD_BYTES_PER_VNODE  (64ull << 20)
#define MD_MAX_DISK_VNODES  262144

/* nr == 0: one directory, meta/obj. Otherwise the disks (absolute paths); meta keeps the list of
 * disks in use (meta/md.disks) so that a disk that left and comes back is not trusted: objects
 * found on a disk that was not in use are set aside in its .stale. Returns 0 or -errno. */
int md_init(const char *meta, char *const *disks, int nr);
/* where oid is stored now, else where it belongs: a directory path in buf */
void md_object_dir(uint64_t oid, char *buf, size_t len);
/* a copy of every object directory in use (malloc'd array in *dirs, freed by the caller) */
int md_dirs(char (**dirs)[SD_MD_PATH_LEN]);
/* one entry per disk, failed ones included; returns how many (at most max) */
int md_info(struct sd_md_disk *out, int max);
/* SD_RES_*: NO_SUPPORT on a one-directory node, NO_OBJ for a path that is no directory (plug)
 * or no disk of this node (unplug), VDI_EXIST when already plugged, INVALID_PARMS for the last
 * disk, one disk too many or a path too long */
int md_plug(const char *path);
int md_unplug(const char *path);
/* an I/O error: the disks are checked now */
void md_note_error(int err);
/* the disk that holds oid keeps failing (why says how): dropped, if it is not the last one */
bool md_fail_disk_of(uint64_t oid, const char *why);
/* goes up by one every time the set of disks changes (plug, unplug, a disk that failed) */
unsigned md_generation(void);

#endif
