/* vdi_copies.h: changing how many copies a VDI or the cluster keeps (collie alter-copy). */
#ifndef SHEEP_VDI_COPIES_H
#define SHEEP_VDI_COPIES_H

#include "request_types.h"

/* ALTER_VDI_COPY: one step (enum sd_alter_step) of an alter-copy of rq.vdi.base_vdi_id; SET
 * records rq.vdi.copies and copy_policy in its inode (work, on the sender) */
int vdi_alter_copy_work(struct request *req);
/* ... and every node's state table follows (main, every node, in cluster order) */
int main_alter_vdi_copy(const struct sd_req *rq, struct sd_rsp *rp, void *data);
/* ALTER_CLUSTER_COPY: the default copies of new VDIs, checked on the sender (the old count in
 * rp.vdi.copies), then kept in every node's config */
int cluster_alter_copy_work(struct request *req);
int main_alter_cluster_copy(const struct sd_req *rq, struct sd_rsp *rp, void *data);
/* SETTLE_REPLICA: this node's holding of rq.obj.oid made right for the current ring and the
 * object's copies (rq.obj.copies, which must be this node's view too): fetched from the other
 * replicas when it should hold a copy and has none, set aside when it holds one it should not */
int local_settle_replica(struct request *req);
/* CONVERT_OBJ: a data object of a VDI being converted gets (SD_CONVERT_WRITE) or loses
 * (SD_CONVERT_REMOVE) the layout in transit */
int local_convert_obj(struct request *req);

#endif
