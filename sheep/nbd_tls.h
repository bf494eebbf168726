/* nbd_tls.h: TLS with a pre-shared key for the NBD export (nbd_tls.c, OpenSSL): the key file,
 * the server context, and one connection's TLS session over its non-blocking socket. */
#ifndef SHEEP_NBD_TLS_H
#define SHEEP_NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct nbd_tls;

/* Load FILE (lines "identity:hexkey", the format of qemu's tls-creds-psk keys.psk and of
 * nbdinfo's --tls-psk-file) and make the server context; from then on every NBD client must
 * send STARTTLS first. 0, or -1 with a one-line reason in err. Once, at start-up. */
int nbd_tls_setup(const char *path, char *err, size_t errlen);
bool nbd_tls_required(void);

/* a TLS session on fd, server side; NULL if out of memory. Freeing does not close fd. */
struct nbd_tls *nbd_tls_new(int fd);
void nbd_tls_free(struct nbd_tls *t);

enum nbd_tls_step { NBD_TLS_DONE, NBD_TLS_WANT_READ, NBD_TLS_WANT_WRITE, NBD_TLS_FAILED };
/* drive the handshake as far as the socket lets it; a failure is logged (rate limited) */
enum nbd_tls_step nbd_tls_handshake(struct nbd_tls *t, const char *peer);

/* like read() and write() on a non-blocking socket: bytes moved, 0 at the end of the stream
 * (read), or -1 with errno (EAGAIN when the socket must become ready first) */
ssize_t nbd_tls_read(struct nbd_tls *t, void *buf, size_t len);
ssize_t nbd_tls_write(struct nbd_tls *t, const void *buf, size_t len);
/* decrypted bytes waiting that no socket event will announce */
bool nbd_tls_pending(const struct nbd_tls *t);

#endif
