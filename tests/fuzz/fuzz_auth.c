/* fuzz_auth.c: libFuzzer harness for the connection authentication of sheep (sheep/access.c):
 * a stream of requests, some AUTH_RESPONSEs carrying the right MAC, must leave the connection
 * authenticated exactly when the last exchange was a correct answer to an outstanding challenge,
 * and no peer or admin opcode may pass before. Also the key text parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal_proto.h"
#include "logger.h"
#include "access.h"
#include "ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool guest_opcode(uint8_t op)
{
	return (op >= 0x01 && op <= 0x03) || op == 0x05 || (op >= 0x11 && op <= 0x18);
}

/* access.c reads each opcode's class from the opcode table (ops.c), which the harness does not
 * link: guests' opcodes are guests', everything else needs the key */
enum sd_op_class sd_op_class(uint8_t opcode)
{
	return guest_opcode(opcode) ? OP_CLASS_GUEST : OP_CLASS_ADMIN;
}

static void check_key_text(const uint8_t *data, size_t size)
{
	struct sd_auth_key k;
	char err[128];
	if (auth_parse_key_text((const char *)data, size, &k, err, sizeof(err)) == 0 &&
	    (k.len < SD_AUTH_KEY_MIN || k.len > SD_AUTH_KEY_MAX))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static const uint8_t self[16] = { [10] = 0xff, [11] = 0xff, [12] = 10, [15] = 1 };
	if (!ready) {
		char path[] = "/tmp/fuzz-auth-key-XXXXXX", err[256];
		int fd = mkstemp(path);
		if (fd < 0 || write(fd, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 65) != 65)
			abort();
		close(fd);
		log_open("/dev/null", LOG_EMERG_, "fuzz");
		if (sheep_auth_setup(path, NULL, self) < 0 || auth_load_key_file(path, &(struct sd_auth_key){0}, err,
										sizeof(err)) < 0)
			abort();
		unlink(path);
		ready = true;
	}
	check_key_text(data, size);
	struct sd_auth_key key;
	char err[128];
	auth_parse_key_text("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 64, &key, err, 128);

	struct auth_conn ac;
	memset(&ac, 0, sizeof(ac));   /* a connection from no allowed network */
	bool expect_auth = false, nonce_out = false;
	uint8_t nonce[SD_AUTH_NONCE_LEN];
	while (size >= sizeof(struct sd_req) + 1) {
		struct sd_req hdr;
		memcpy(&hdr, data, sizeof(hdr));
		bool forge = data[sizeof(hdr)] & 1;
		data += sizeof(hdr) + 1;
		size -= sizeof(hdr) + 1;
		int res = auth_check_request(&ac, &hdr, "fuzz");
		if (!auth_opcode(hdr.opcode)) {
			if ((res == 0) != expect_auth && !(guest_opcode(hdr.opcode) && ac.guest_ok))
				abort();   /* a peer/admin opcode passed without the key, or was refused with it */
			continue;
		}
		if (res)
			continue;      /* an over-long auth request, refused */
		uint32_t len = MIN(hdr.data_length, (uint32_t)size);
		uint8_t buf[SD_AUTH_NONCE_LEN + SD_AUTH_MAC_LEN] = { 0 };
		memcpy(buf, data, MIN(len, sizeof(buf)));
		data += len;
		size -= len;
		bool right = false;
		struct sd_auth_req *ar = (struct sd_auth_req *)&hdr;
		if (hdr.opcode == SD_OP_AUTH_RESPONSE && forge && nonce_out) {
			/* the harness holds the key: answer this challenge correctly */
			hdr.flags |= SD_FLAG_CMD_WRITE;
			hdr.data_length = sizeof(buf);
			ar->role = SD_AUTH_ROLE_ADMIN;
			auth_mac(&key, nonce, buf, ar->role, buf + SD_AUTH_NONCE_LEN);
			right = true;
		}
		struct request req = { .rq = hdr, .data = buf, .data_size = sizeof(buf) };
		int ret = auth_conn_handle(&ac, &req);
		if (hdr.opcode == SD_OP_AUTH_CHALLENGE) {
			if (ret == 0) {
				memcpy(nonce, buf, sizeof(nonce));
				nonce_out = true;
				expect_auth = false;
			}
			continue;
		}
		if ((ret == 0) != right)
			abort();       /* a response without the key passed, or the right one was refused */
		nonce_out = false;
		expect_auth = right;
		if (ac.authenticated != expect_auth)
			abort();
	}
	return 0;
}
