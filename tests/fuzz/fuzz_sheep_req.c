/* fuzz_sheep_req.c: libFuzzer harness for the sheep request header checks (lib/proto_check.c) that
 * every request from the network passes before anything reads its payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal_proto.h"
#include "proto_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sd_req hdr;
	if (size < sizeof(hdr) + 1)
		return 0;
	memcpy(&hdr, data, sizeof(hdr));
	bool known = data[sizeof(hdr)] & 1;
	uint32_t max = SD_MAX_DATA_LENGTH;
	int res = sd_check_request_header(&hdr, known, max);
	/* accepted means: a known opcode, a payload within the limit, a version we speak */
	if (res == 0) {
		if (!known || hdr.data_length > max)
			abort();
		if (hdr.opcode < 0x80 && hdr.proto_ver > SD_PROTO_VER)
			abort();
		if (hdr.proto_ver > SD_SHEEP_PROTO_VER)
			abort();
	} else if (res != SD_RES_VER_MISMATCH && res != SD_RES_INVALID_PARMS) {
		abort();
	}
	return 0;
}
