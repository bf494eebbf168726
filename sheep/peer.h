/* peer.h: the peer ops on the local store (peer.c): a replica's share of an object op, for a
 * peer's request or the gateway's own share. */
#ifndef SHEEP_PEER_H
#define SHEEP_PEER_H

#include <stdint.h>

#include "internal_proto.h"

/* how a write finds an object that moved here and has not arrived yet (recovery's, at start) */
void peer_set_object_fetcher(int (*fetch)(uint64_t oid));
/* what a read that finds this node's replica failing its checksum calls (read repair's, at start) */
void peer_set_repairer(void (*repair)(uint64_t oid));
/* how a copy-on-write create finds a parent object this node lacks: one attempt at its holders
 * (the gateway's, at start) */
void peer_set_parent_reader(int (*read)(uint64_t oid, void *buf, uint32_t len));
int peer_read(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
int peer_create_and_write(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
int peer_write(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
int peer_remove(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
/* REPAIR_REPLICA: this node's replica failed a write the others took: it is dropped and fetched
 * again from the other holders: SUCCESS, or NO_OBJ when it is missing here now (never the old
 * version); another error when it could not even be removed */
int peer_replace(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);
int peer_flush(const struct sd_req *hdr, void *data, struct sd_rsp *rsp);

#endif
