/* access.h (sheep): who may run what on a client connection: the per-connection key exchange
 * state, the opcode classes, and the networks guests may come from. */
#ifndef SHEEP_ACCESS_H
#define SHEEP_ACCESS_H

#include <stdbool.h>
#include <stdint.h>
#include "auth.h"
#include "sheepdog_proto.h"

struct request;

/* per client connection; main thread only */
struct auth_conn {
	bool authenticated;       /* proved the cluster key */
	bool guest_ok;            /* comes from a network in --guest-allow */
	bool nonce_valid;         /* a challenge was issued and not yet answered */
	uint8_t nonce[SD_AUTH_NONCE_LEN];
	char peer[64];            /* the client's address, for the log */
};

/* before daemonizing: load the key file (NULL: open cluster) and parse --guest-allow (NULL:
 * loopback and self_addr, this node's address). 0, or -1 after a one-line error on stderr. */
int sheep_auth_setup(const char *key_file, const char *guest_allow, const uint8_t self_addr[16]);
/* once the log is open: say whether the node demands a key */
void sheep_auth_announce(int port);
bool sheep_auth_has_key(void);

void auth_conn_init(struct auth_conn *ac, int fd);
/* AUTH_CHALLENGE and AUTH_RESPONSE, which auth_conn_handle answers */
bool auth_opcode(uint8_t opcode);
/* a request header is in: 0 to go on, or SD_RES_PERM_DENIED (logged, rate limited, naming op_name) */
int auth_check_request(struct auth_conn *ac, const struct sd_req *hdr, const char *op_name);
/* answer an auth opcode on the main thread: fills req->rp (and the payload); returns its result.
 * A refused response should close the connection. */
int auth_conn_handle(struct auth_conn *ac, struct request *req);

#endif
