/* peer_client.c: one request to another sheep and its answer, over the cached connection to that
 * node (a connection that failed is dropped from the cache, never reused). */
#include "internal_proto.h"
#include "net.h"
#include "sheepdog_proto.h"
#include "peer_client.h"

/* the result of the request, or NETWORK_ERROR when the node could not be reached */
int peer_exec(const struct sd_node *n, struct sd_req *hdr, void *data, uint32_t bufsize, struct sd_rsp *rsp)
{
	int fd = sockfd_cache_get(n);
	if (fd < 0)
		return SD_RES_NETWORK_ERROR;
	if (exec_req(fd, hdr, data, bufsize, rsp) < 0) {
		sockfd_cache_del(n, fd);
		return SD_RES_NETWORK_ERROR;
	}
	sockfd_cache_put(n, fd);
	return rsp->result;
}
