/* recovery.h: bringing this node's share of the objects in after a membership change
 * (recovery.c). */
#ifndef SHEEP_RECOVERY_H
#define SHEEP_RECOVERY_H

#include <stdint.h>

#include "internal_proto.h"

extern int recovery_inflight;        /* objects fetched at once (throttle) */
extern uint32_t recovery_pause_ms;   /* pause after each object (throttle) */
int recovery_init(void);
/* main thread, before the ring of epoch old_epoch + 1 is installed: set aside the objects that
 * become this node's in the new epoch but were not in the old one (they may be out of date) */
void recovery_epoch_transition(uint32_t old_epoch, const struct sd_node *nodes, int nr);
/* main thread: a new epoch is in place (or recovery was enabled): bring this node's share in */
void recovery_start(void);
/* recover the current epoch again, even if done: this node lost objects (a disk left) */
void recovery_rerun(void);
/* fetch one object this node should hold from the newest live holder; caller holds its lock */
int recover_object_now(uint64_t oid);
void recovery_get_info(struct recovery_info *out);
/* client I/O arrived: recovery yields to it for a while (the built-in part of the throttle) */
void recovery_note_client_io(void);
/* main thread: a member announced it finished epoch e */
void recovery_member_done(const struct sd_node *n, uint32_t e);

#endif
