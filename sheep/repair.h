/* repair.h: read repair (repair.c): a replica of this node that failed its checksum on a read is
 * rewritten from a good copy in the background. */
#ifndef SHEEP_REPAIR_H
#define SHEEP_REPAIR_H

#include <stdint.h>

/* hooks read repair into the peer ops (at start) */
void repair_init(void);
/* rewrite this node's replica of oid from a good copy, in the background; once per object at a time */
void repair_schedule(uint64_t oid);
/* the same, now, in the caller's thread: SD_RES_SUCCESS when the replica verifies again */
int repair_object_now(uint64_t oid);

#endif
