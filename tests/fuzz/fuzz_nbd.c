/* fuzz_nbd.c: libFuzzer harness for the NBD parsers sheep runs on untrusted bytes: transmission
 * requests and their checks, GO/INFO and meta-context option payloads, export names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nbd_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nbd_info_opt info;
	static struct nbd_meta_opt meta;
	if (size < 1)
		return 0;
	uint8_t which = data[0];
	data++;
	size--;
	switch (which % 4) {
	case 0: {
		/* a request against limits taken from the input */
		uint8_t req[NBD_REQUEST_SIZE] = { 0 };
		struct nbd_request rq;
		memcpy(req, data, size < sizeof(req) ? size : sizeof(req));
		nbd_put32(req, NBD_REQUEST_MAGIC);     /* a bad magic stops early; get past it */
		if (nbd_parse_request(req, &rq) == 0) {
			struct nbd_export_limits lim = {
				.size = size > 36 ? nbd_get64(data + 28) : 64 << 20,
				.max_request = NBD_MAX_REQUEST,
				.read_only = which & 0x10, .structured = which & 0x20, .meta_allocation = which & 0x40,
			};
			int err = nbd_check_request(&rq, &lim);
			/* what the server relies on: an accepted data command stays inside the export */
			if (!err && (rq.type == NBD_CMD_READ || rq.type == NBD_CMD_WRITE || rq.type == NBD_CMD_TRIM ||
				     rq.type == NBD_CMD_WRITE_ZEROES || rq.type == NBD_CMD_BLOCK_STATUS)) {
				if (!rq.length || rq.offset > lim.size || rq.length > lim.size - rq.offset)
					abort();
				if ((rq.type == NBD_CMD_READ || rq.type == NBD_CMD_WRITE) && rq.length > lim.max_request)
					abort();
				if (rq.type != NBD_CMD_READ && rq.type != NBD_CMD_BLOCK_STATUS && lim.read_only)
					abort();
			}
		}
		break;
	}
	case 1:
		if (nbd_parse_info_opt(data, size, &info) == 0 && strlen(info.name) > NBD_MAX_STRING)
			abort();
		break;
	case 2:
		if (nbd_parse_meta_opt(data, size, which & 0x80, &meta) == 0 && strlen(meta.name) > NBD_MAX_STRING)
			abort();
		break;
	case 3: {
		char name[NBD_MAX_STRING + 1], vdi[256], tag[256];
		size_t n = size < NBD_MAX_STRING ? size : NBD_MAX_STRING;
		memcpy(name, data, n);
		name[n] = 0;
		if (nbd_split_export_name(name, vdi, sizeof(vdi), tag, sizeof(tag)) == 0 &&
		    (!vdi[0] || strlen(vdi) >= sizeof(vdi) || strlen(tag) >= sizeof(tag)))
			abort();
		break;
	}
	}
	return 0;
}
