/* auth.c: the cluster key and the client side of connection authentication. The key file holds
 * hex text; a connection proves the key by answering the sheep's nonce with HMAC-SHA256 (OpenSSL)
 * over both nonces and its role, and checks the sheep's answer to its own nonce in turn. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "internal_proto.h"
#include "net.h"
#include "util.h"

#define KEY_FILE_MAX 4096     /* bytes of text: room for a 256-byte key and generous whitespace */
#define KEYGEN_BYTES 32

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int auth_parse_key_text(const char *text, size_t len, struct sd_auth_key *key, char *err, size_t errlen)
{
	size_t digits = 0;
	memset(key, 0, sizeof(*key));
	for (size_t i = 0; i < len; i++) {
		unsigned char c = text[i];
		if (isspace(c))
			continue;
		int v = hex_value(c);
		if (v < 0) {
			snprintf(err, errlen, "not hex: unexpected %s at byte %zu", isprint(c) ? "character" : "byte", i);
			return -1;
		}
		if (digits / 2 >= SD_AUTH_KEY_MAX) {
			snprintf(err, errlen, "key too long: more than %d hex digits", SD_AUTH_KEY_MAX * 2);
			return -1;
		}
		key->bytes[digits / 2] |= (digits % 2) ? v : v << 4;
		digits++;
	}
	if (digits % 2) {
		snprintf(err, errlen, "odd number of hex digits (%zu)", digits);
		return -1;
	}
	if (digits < SD_AUTH_KEY_MIN * 2) {
		snprintf(err, errlen, "key too short: %zu hex digits, at least %d needed", digits, SD_AUTH_KEY_MIN * 2);
		return -1;
	}
	key->len = digits / 2;
	return 0;
}

int auth_read_secret_file(const char *path, const char *what, size_t max, char **text, size_t *len, char *err,
			  size_t errlen)
{
	char *buf = NULL;
	int ret = -1;
	*text = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s is not a regular file", what, path);
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s %s is accessible by group or others (mode %03o); chmod 600 it", what, path,
			 (unsigned)(st.st_mode & 0777));
		goto out;
	}
	buf = malloc(max + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory reading %s %s", what, path);
		goto out;
	}
	ssize_t n = xread(fd, buf, max + 1);
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if ((size_t)n > max) {
		snprintf(err, errlen, "%s %s: longer than %zu bytes", what, path, max);
		goto out;
	}
	buf[n] = 0;
	*text = buf;
	*len = n;
	buf = NULL;
	ret = 0;
out:
	if (buf) {
		OPENSSL_cleanse(buf, max + 1);
		free(buf);
	}
	close(fd);
	return ret;
}

void auth_free_secret_text(char *text, size_t len)
{
	if (!text)
		return;
	OPENSSL_cleanse(text, len);
	free(text);
}

int auth_load_key_file(const char *path, struct sd_auth_key *key, char *err, size_t errlen)
{
	char *text, why[128];
	size_t n;
	if (auth_read_secret_file(path, "key file", KEY_FILE_MAX, &text, &n, err, errlen) < 0)
		return -1;
	int ret = auth_parse_key_text(text, n, key, why, sizeof(why));
	if (ret < 0)
		snprintf(err, errlen, "key file %s: %s", path, why);
	auth_free_secret_text(text, n + 1);
	return ret;
}

const char *auth_key_file_choice(const char *flag_value)
{
	if (flag_value)
		return flag_value;
	const char *env = getenv(SD_KEY_FILE_ENV);
	return env && *env ? env : NULL;
}

int auth_random(void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = getrandom((char *)buf + done, len - done, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += n;
	}
	return 0;
}

int auth_write_new_key_file(const char *path, char *err, size_t errlen)
{
	uint8_t raw[KEYGEN_BYTES];
	char text[KEYGEN_BYTES * 2 + 2];
	int ret = auth_random(raw, sizeof(raw));
	if (ret < 0) {
		snprintf(err, errlen, "cannot get random bytes: %s", strerror(-ret));
		return -1;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(text + 2 * i, 3, "%02x", raw[i]);
	text[KEYGEN_BYTES * 2] = '\n';
	text[KEYGEN_BYTES * 2 + 1] = 0;
	ret = -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || xwrite(fd, text, KEYGEN_BYTES * 2 + 1) != KEYGEN_BYTES * 2 + 1 || fsync(fd) < 0) {
		snprintf(err, errlen, "cannot write key file %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		goto out;
	}
	if (close(fd) < 0) {
		snprintf(err, errlen, "cannot write key file %s: %s", path, strerror(errno));
		unlink(path);
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(text, sizeof(text));
	return ret;
}

void auth_mac(const struct sd_auth_key *key, const uint8_t *first, const uint8_t *second, uint8_t role,
	      uint8_t out[SD_AUTH_MAC_LEN])
{
	uint8_t msg[2 * SD_AUTH_NONCE_LEN + 1];
	unsigned int outlen = SD_AUTH_MAC_LEN;
	memcpy(msg, first, SD_AUTH_NONCE_LEN);
	memcpy(msg + SD_AUTH_NONCE_LEN, second, SD_AUTH_NONCE_LEN);
	msg[2 * SD_AUTH_NONCE_LEN] = role;
	if (!HMAC(EVP_sha256(), key->bytes, (int)key->len, msg, sizeof(msg), out, &outlen))
		memset(out, 0, SD_AUTH_MAC_LEN);   /* never equal to a real MAC by chance we rely on */
}

bool auth_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return CRYPTO_memcmp(a, b, SD_AUTH_MAC_LEN) == 0;
}

/* ---- client side ---- */

static struct sd_auth_key client_key;
static uint8_t client_role;

void auth_client_use_key(const struct sd_auth_key *key, uint8_t role)
{
	client_key = *key;
	client_role = role;
	net_set_connect_hook(auth_client_handshake);
}

/* AUTH_CHALLENGE: the sheep's nonce; 1 when it has a key, 0 when open, -errno */
static int ask_challenge(int fd, uint8_t nonce[SD_AUTH_NONCE_LEN])
{
	struct sd_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_AUTH_CHALLENGE,
			      .data_length = SD_AUTH_NONCE_LEN };
	struct sd_rsp rsp;
	if (exec_req(fd, &hdr, nonce, SD_AUTH_NONCE_LEN, &rsp) < 0)
		return -(errno ? errno : EIO);
	const struct sd_auth_rsp *ar = (const struct sd_auth_rsp *)&rsp;
	if (rsp.result != SD_RES_SUCCESS || !ar->key_required)
		return 0;   /* a sheep without a key (or one that predates keys): nothing to prove */
	if (rsp.data_length != SD_AUTH_NONCE_LEN)
		return -EPROTO;
	return 1;
}

int auth_client_handshake(int fd)
{
	uint8_t server_nonce[SD_AUTH_NONCE_LEN], payload[SD_AUTH_NONCE_LEN + SD_AUTH_MAC_LEN];
	uint8_t proof[SD_AUTH_MAC_LEN], want[SD_AUTH_MAC_LEN];
	if (!client_key.len)
		return 0;
	int ret = ask_challenge(fd, server_nonce);
	if (ret <= 0)
		return ret;
	uint8_t *client_nonce = payload;
	if ((ret = auth_random(client_nonce, SD_AUTH_NONCE_LEN)) < 0)
		return ret;
	auth_mac(&client_key, server_nonce, client_nonce, client_role, payload + SD_AUTH_NONCE_LEN);
	struct sd_auth_req hdr = { .proto_ver = SD_SHEEP_PROTO_VER, .opcode = SD_OP_AUTH_RESPONSE,
				   .flags = SD_FLAG_CMD_WRITE, .data_length = sizeof(payload), .role = client_role };
	struct sd_rsp rsp;
	if (send_req(fd, (struct sd_req *)&hdr, payload, sizeof(payload)) < 0 ||
	    recv_rsp(fd, &rsp, proof, sizeof(proof)) < 0)
		return -(errno ? errno : EIO);
	if (rsp.result == SD_RES_PERM_DENIED)
		return -EACCES;
	if (rsp.result != SD_RES_SUCCESS || rsp.data_length != SD_AUTH_MAC_LEN)
		return -EPROTO;
	auth_mac(&client_key, client_nonce, server_nonce, SD_AUTH_ROLE_SERVER, want);
	return auth_mac_equal(proof, want) ? 0 : -EACCES;   /* a sheep with another key */
}

int auth_probe(const char *host, int port)
{
	uint8_t nonce[SD_AUTH_NONCE_LEN];
	int fd = connect_to(host, port, 5000, 30000);
	if (fd < 0)
		return fd;
	int ret = ask_challenge(fd, nonce);
	close(fd);
	return ret;
}
