/* proto_check.c: what makes a request header acceptable: version, opcode, payload size. */
#include "internal_proto.h"
#include "proto_check.h"

int sd_check_request_header(const struct sd_req *hdr, bool opcode_known, uint32_t max_data)
{
	/* clients speak 0x00-0x02; internal ops come from sheep or collie with ours */
	if (hdr->opcode < 0x80 ? hdr->proto_ver > SD_PROTO_VER : hdr->proto_ver > SD_SHEEP_PROTO_VER)
		return SD_RES_VER_MISMATCH;
	if (!opcode_known)
		return SD_RES_INVALID_PARMS;
	if (hdr->data_length > max_data)
		return SD_RES_INVALID_PARMS;
	return 0;
}
