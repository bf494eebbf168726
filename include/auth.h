/* auth.h: the cluster key (its file, parsing and generation) and the challenge-response that
 * proves a connection holds it (HMAC-SHA256 over both sides' nonces and a role byte). */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SD_KEY_FILE_ENV      "SHEEPFOLD_KEY_FILE"
#define SD_AUTH_KEY_MIN      32       /* bytes: 64 hex digits */
#define SD_AUTH_KEY_MAX      256
#define SD_AUTH_NONCE_LEN    32
#define SD_AUTH_MAC_LEN      32       /* HMAC-SHA256 */

/* role bytes in the MAC: who answers the challenge */
#define SD_AUTH_ROLE_PEER    'P'      /* a sheep connecting to another sheep */
#define SD_AUTH_ROLE_ADMIN   'A'      /* collie and other tools holding the key */
#define SD_AUTH_ROLE_SERVER  'S'      /* the sheep's proof back to the client */

struct sd_auth_key {
	uint8_t bytes[SD_AUTH_KEY_MAX];
	size_t len;
};

/* Hex text, whitespace ignored, at least SD_AUTH_KEY_MIN bytes. 0, or -1 with a one-line reason
 * in err. */
int auth_parse_key_text(const char *text, size_t len, struct sd_auth_key *key, char *err, size_t errlen);
/* Read a secret file (WHAT names it in errors: "key file") into a new NUL-terminated *text of
 * *len bytes: a regular file of at most max bytes, not accessible by group or others. 0, or -1
 * with a one-line reason in err. Free with auth_free_secret_text(text, len + 1), which wipes it. */
int auth_read_secret_file(const char *path, const char *what, size_t max, char **text, size_t *len, char *err,
			  size_t errlen);
void auth_free_secret_text(char *text, size_t len);
/* the file must be a regular file, not accessible by group or others */
int auth_load_key_file(const char *path, struct sd_auth_key *key, char *err, size_t errlen);
/* the key file to use: the flag's value if given, else $SHEEPFOLD_KEY_FILE, else NULL */
const char *auth_key_file_choice(const char *flag_value);
/* a fresh key from the kernel's random source in a new 0600 file; 0 or -1 with err */
int auth_write_new_key_file(const char *path, char *err, size_t errlen);
/* len bytes from getrandom(); 0 or -errno */
int auth_random(void *buf, size_t len);

/* HMAC-SHA256(key, first || second || role), each nonce SD_AUTH_NONCE_LEN bytes */
void auth_mac(const struct sd_auth_key *key, const uint8_t *first, const uint8_t *second, uint8_t role,
	      uint8_t out[SD_AUTH_MAC_LEN]);
bool auth_mac_equal(const uint8_t *a, const uint8_t *b);   /* constant time */

/* ---- client side ---- */
/* From now on every connection lib/net makes to a sheep proves the key (role: PEER or ADMIN)
 * before it is used, and checks the sheep's proof back. */
void auth_client_use_key(const struct sd_auth_key *key, uint8_t role);
/* the exchange on a connected blocking socket; 0, -EACCES when refused, other -errno */
int auth_client_handshake(int fd);
/* does the sheep at host:port demand a key? 1 yes, 0 no (open), -errno unreachable */
int auth_probe(const char *host, int port);

#endif
