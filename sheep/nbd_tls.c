/* nbd_tls.c: NBD over TLS with pre-shared keys (--nbd-tls-psk): the key file, one server
 * SSL_CTX for the whole sheep, and per-connection sessions driven by the NBD event loop.
 * Main thread only (the key table is read-only after start-up). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "auth.h"
#include "logger.h"
#include "util.h"
#include "nbd_tls.h"

#define PSK_FILE_MAX      (1 << 20)
#define PSK_MAX_KEYS      1024
#define PSK_IDENTITY_MAX  128
#define PSK_KEY_MAX       256     /* bytes; qemu and GnuTLS clients use 32 or 64 */

struct psk_entry {
	char identity[PSK_IDENTITY_MAX + 1];
	uint8_t key[PSK_KEY_MAX];
	unsigned key_len;
};

static struct psk_entry *psk_keys;
static int nr_psk_keys;
static SSL_CTX *tls_ctx;

struct nbd_tls {
	SSL *ssl;
	const struct psk_entry *key;   /* the one the client proved it holds, for the log */
};

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* one "identity:hexkey" line (no newline) into e; 0 or -1 with why */
static int parse_psk_line(const char *line, size_t len, struct psk_entry *e, char *why, size_t whylen)
{
	const char *colon = memchr(line, ':', len);
	if (!colon) {
		snprintf(why, whylen, "no ':' between identity and key");
		return -1;
	}
	size_t idlen = colon - line, hexlen = len - idlen - 1;
	if (!idlen || idlen > PSK_IDENTITY_MAX) {
		snprintf(why, whylen, "identity must be 1 to %d bytes", PSK_IDENTITY_MAX);
		return -1;
	}
	if (!hexlen || hexlen % 2 || hexlen / 2 > PSK_KEY_MAX) {
		snprintf(why, whylen, "key must be an even number of hex digits, 2 to %d", PSK_KEY_MAX * 2);
		return -1;
	}
	for (size_t i = 0; i < idlen; i++)
		if ((unsigned char)line[i] < 0x21 || line[i] == 0x7f) {
			snprintf(why, whylen, "identity has a space or control character");
			return -1;
		}
	memcpy(e->identity, line, idlen);
	e->identity[idlen] = 0;
	for (size_t i = 0; i < hexlen; i += 2) {
		int hi = hex_digit(colon[1 + i]), lo = hex_digit(colon[2 + i]);
		if (hi < 0 || lo < 0) {
			snprintf(why, whylen, "key is not hex");
			return -1;
		}
		e->key[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	e->key_len = hexlen / 2;
	return 0;
}

/* the whole file's text into psk_keys */
static int parse_psk_text(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
	size_t pos = 0;
	int lineno = 0;
	psk_keys = calloc(PSK_MAX_KEYS, sizeof(*psk_keys));
	if (!psk_keys) {
		snprintf(err, errlen, "out of memory reading PSK file %s", path);
		return -1;
	}
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		pos += ll + (nl ? 1 : 0);
		lineno++;
		if (ll && line[ll - 1] == '\r')
			ll--;
		if (!ll)
			continue;
		if (nr_psk_keys == PSK_MAX_KEYS) {
			snprintf(err, errlen, "PSK file %s: more than %d keys", path, PSK_MAX_KEYS);
			return -1;
		}
		char why[96];
		if (parse_psk_line(line, ll, &psk_keys[nr_psk_keys], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "PSK file %s line %d: %s (expected identity:hexkey)", path, lineno, why);
			return -1;
		}
		for (int i = 0; i < nr_psk_keys; i++)
			if (!strcmp(psk_keys[i].identity, psk_keys[nr_psk_keys].identity)) {
				snprintf(err, errlen, "PSK file %s line %d: identity %s given twice", path, lineno,
					 psk_keys[i].identity);
				return -1;
			}
		nr_psk_keys++;
	}
	if (!nr_psk_keys) {
		snprintf(err, errlen, "PSK file %s has no key (expected identity:hexkey lines)", path);
		return -1;
	}
	return 0;
}

static int load_psk_file(const char *path, char *err, size_t errlen)
{
	char *text;
	size_t len;
	if (auth_read_secret_file(path, "PSK file", PSK_FILE_MAX, &text, &len, err, errlen) < 0)
		return -1;
	int ret = parse_psk_text(path, text, len, err, errlen);
	auth_free_secret_text(text, len + 1);
	return ret;
}

/* OpenSSL asks for the key of the identity the client named (TLS 1.2 and 1.3) */
static unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max_psk_len)
{
	if (!identity)
		return 0;
	for (int i = 0; i < nr_psk_keys; i++) {
		if (strcmp(psk_keys[i].identity, identity))
			continue;
		if (psk_keys[i].key_len > max_psk_len)
			return 0;
		memcpy(psk, psk_keys[i].key, psk_keys[i].key_len);
		struct nbd_tls *t = SSL_get_app_data(ssl);
		if (t)
			t->key = &psk_keys[i];
		return psk_keys[i].key_len;
	}
	sd_warn_rl("nbd: TLS client named unknown PSK identity '%.64s'", identity);
	return 0;
}

int nbd_tls_setup(const char *path, char *err, size_t errlen)
{
	if (load_psk_file(path, err, errlen) < 0)
		goto fail;
	tls_ctx = SSL_CTX_new(TLS_server_method());
	if (!tls_ctx) {
		snprintf(err, errlen, "cannot create a TLS context: %s", ERR_reason_error_string(ERR_get_error()));
		goto fail;
	}
	/* TLS 1.2 with the PSK suites (ephemeral key exchange first), or TLS 1.3 */
	if (!SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(tls_ctx, "ECDHE-PSK+AESGCM:ECDHE-PSK+CHACHA20:DHE-PSK+AESGCM:"
				     "DHE-PSK+CHACHA20:PSK+AESGCM:PSK+CHACHA20:ECDHE-PSK:DHE-PSK:PSK:!eNULL:!3DES")) {
		snprintf(err, errlen, "cannot set the TLS PSK ciphers: %s", ERR_reason_error_string(ERR_get_error()));
		goto fail;
	}
	SSL_CTX_set_options(tls_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_psk_server_callback(tls_ctx, psk_server_cb);
	return 0;
fail:
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
	if (psk_keys) {
		OPENSSL_cleanse(psk_keys, PSK_MAX_KEYS * sizeof(*psk_keys));
		free(psk_keys);
		psk_keys = NULL;
	}
	nr_psk_keys = 0;
	return -1;
}

bool nbd_tls_required(void)
{
	return tls_ctx != NULL;
}

struct nbd_tls *nbd_tls_new(int fd)
{
	struct nbd_tls *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ssl = SSL_new(tls_ctx);
	if (!t->ssl || !SSL_set_fd(t->ssl, fd)) {
		SSL_free(t->ssl);
		free(t);
		return NULL;
	}
	SSL_set_app_data(t->ssl, t);
	SSL_set_accept_state(t->ssl);
	return t;
}

void nbd_tls_free(struct nbd_tls *t)
{
	if (!t)
		return;
	if (SSL_is_init_finished(t->ssl))
		SSL_shutdown(t->ssl);      /* one try at close_notify; the socket closes anyway */
	SSL_free(t->ssl);
	ERR_clear_error();
	free(t);
}

enum nbd_tls_step nbd_tls_handshake(struct nbd_tls *t, const char *peer)
{
	ERR_clear_error();
	int r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		sd_info("nbd: %s: TLS %s with PSK identity %s", peer, SSL_get_version(t->ssl),
			t->key ? t->key->identity : "?");
		return NBD_TLS_DONE;
	}
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return NBD_TLS_WANT_READ;
	if (e == SSL_ERROR_WANT_WRITE)
		return NBD_TLS_WANT_WRITE;
	unsigned long code = ERR_get_error();
	sd_warn_rl("nbd: %s: TLS handshake failed: %s", peer,
		   code ? ERR_reason_error_string(code) : e == SSL_ERROR_SYSCALL ? "connection closed" : "error");
	ERR_clear_error();
	return NBD_TLS_FAILED;
}

/* the result of SSL_read or SSL_write as read() or write() would give it */
static ssize_t tls_result(struct nbd_tls *t, int r)
{
	if (r > 0)
		return r;
	int e = SSL_get_error(t->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (!errno || r == 0)
			return 0;      /* the client closed without close_notify */
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

ssize_t nbd_tls_read(struct nbd_tls *t, void *buf, size_t len)
{
	ERR_clear_error();
	errno = 0;
	return tls_result(t, SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len));
}

ssize_t nbd_tls_write(struct nbd_tls *t, const void *buf, size_t len)
{
	ERR_clear_error();
	errno = 0;
	ssize_t n = tls_result(t, SSL_write(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len));
	if (n == 0) {
		errno = EPIPE;     /* a write never ends the stream: the client is gone */
		return -1;
	}
	return n;
}

bool nbd_tls_pending(const struct nbd_tls *t)
{
	return SSL_pending(t->ssl) > 0;
}
