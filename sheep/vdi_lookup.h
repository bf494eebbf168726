/* vdi_lookup.h: finding a VDI by name along its probe run (vdi_lookup.c), and the name and tag
 * a VDI request carries. */
#ifndef SHEEP_VDI_LOOKUP_H
#define SHEEP_VDI_LOOKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "request_types.h"

#define INODE_LOOKUP_SIZE 568    /* name, tag, times, sizes, ids: all lookup needs */
/* What one walk along a name's probe run found. */
struct vdi_probe {
	uint32_t working;       /* the name's working VDI, 0 if none */
	uint32_t match;         /* the inode asked for, 0 if none */
	uint32_t max_snap_id;   /* highest snap_id among the name's inodes */
	uint32_t free_vid;      /* the first free id after the run */
	bool name_seen;
};

int vdi_probe(const char *name, const char *tag, uint32_t snapid, struct vdi_probe *p,
	      struct sd_inode_header *hdr);
int vdi_lookup(const char *name, const char *tag, uint32_t snapid, uint32_t *vid, struct sd_inode_header *hdr);
int vdi_lookup_settled(const char *name, const char *tag, uint32_t snapid, uint32_t *vid,
		       struct sd_inode_header *hdr);
int vdi_parse_name_tag(const struct request *req, char *name, char *tag);
uint32_t vdi_nr_objs(const struct sd_inode_header *h);

#endif
