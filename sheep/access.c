/* access.c: the server side of connection authentication. It holds the cluster key and
 * the --guest-allow networks, answers AUTH_CHALLENGE / AUTH_RESPONSE, and refuses peer and admin
 * opcodes on connections that have not proved the key (guest opcodes only from allowed networks). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal_proto.h"
#include "logger.h"
#include "net.h"
#include "util.h"
#include "ops.h"
#include "request_types.h"
#include "access.h"

#define MAX_GUEST_NETS 64

struct net_prefix {
	uint8_t addr[16];     /* IPv6; IPv4 as IPv4-mapped */
	unsigned bits;
};

static struct sd_auth_key server_key;
static struct net_prefix guest_nets[MAX_GUEST_NETS];
static int nr_guest_nets;
static bool guest_allow_default;

static const char *const op_class_names[] = {
	[OP_CLASS_NONE] = "unknown", [OP_CLASS_GUEST] = "guest", [OP_CLASS_PEER] = "peer",
	[OP_CLASS_ADMIN] = "admin",
};

/* ---- --guest-allow ---- */

static int parse_prefix(const char *text, struct net_prefix *p)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	unsigned max_bits = 128, bits;
	struct in_addr a4;
	if (!n || n >= sizeof(host))
		return -1;
	memcpy(host, text, n);
	host[n] = 0;
	memset(p, 0, sizeof(*p));
	if (inet_pton(AF_INET, host, &a4) == 1) {
		p->addr[10] = p->addr[11] = 0xff;
		memcpy(p->addr + 12, &a4, 4);
		max_bits = 32;
	} else if (inet_pton(AF_INET6, host, p->addr) != 1) {
		return -1;
	}
	bits = max_bits;
	if (slash) {
		char *end;
		unsigned long v = strtoul(slash + 1, &end, 10);
		if (!slash[1] || *end || v > max_bits)
			return -1;
		bits = v;
	}
	p->bits = bits + (128 - max_bits);
	return 0;
}

static bool prefix_match(const struct net_prefix *p, const uint8_t addr[16])
{
	unsigned full = p->bits / 8, rest = p->bits % 8;
	if (memcmp(p->addr, addr, full))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (p->addr[full] & mask) == (addr[full] & mask);
}

static int add_guest_net(const char *text)
{
	if (nr_guest_nets == MAX_GUEST_NETS) {
		fprintf(stderr, "sheep: --guest-allow: more than %d networks\n", MAX_GUEST_NETS);
		return -1;
	}
	if (parse_prefix(text, &guest_nets[nr_guest_nets]) < 0) {
		fprintf(stderr, "sheep: --guest-allow: invalid network '%s' (ADDR or ADDR/BITS, IPv4 or IPv6)\n", text);
		return -1;
	}
	nr_guest_nets++;
	return 0;
}

static int parse_guest_allow(const char *list)
{
	char item[128];
	const char *p = list;
	if (!*list) {
		fprintf(stderr, "sheep: --guest-allow: empty list\n");
		return -1;
	}
	while (*p) {
		size_t n = strcspn(p, ",");
		if (!n || n >= sizeof(item)) {
			fprintf(stderr, "sheep: --guest-allow: invalid network list '%s'\n", list);
			return -1;
		}
		memcpy(item, p, n);
		item[n] = 0;
		if (add_guest_net(item) < 0)
			return -1;
		p += n;
		if (*p == ',' && !*++p) {
			fprintf(stderr, "sheep: --guest-allow: invalid network list '%s'\n", list);
			return -1;
		}
	}
	return 0;
}

int sheep_auth_setup(const char *key_file, const char *guest_allow, const uint8_t self_addr[16])
{
	char err[512];
	if (key_file && auth_load_key_file(key_file, &server_key, err, sizeof(err)) < 0) {
		fprintf(stderr, "sheep: %s\n", err);
		return -1;
	}
	if (guest_allow)
		return parse_guest_allow(guest_allow);
	guest_allow_default = true;
	struct net_prefix self = { .bits = 128 };
	memcpy(self.addr, self_addr, 16);
	guest_nets[nr_guest_nets++] = self;
	return add_guest_net("127.0.0.0/8") < 0 || add_guest_net("::1") < 0 ? -1 : 0;
}

bool sheep_auth_has_key(void)
{
	return server_key.len != 0;
}

void sheep_auth_announce(int port)
{
	if (!sheep_auth_has_key()) {
		sd_warn("no cluster key (--key-file): this sheep is open to anyone who can reach port %d", port);
		return;
	}
	auth_client_use_key(&server_key, SD_AUTH_ROLE_PEER);
	sd_info("cluster key loaded: peer and admin opcodes need an authenticated connection; guests "
		"from %d network(s)%s", nr_guest_nets, guest_allow_default ? " (loopback and this node)" : "");
}

/* ---- per connection ---- */

void auth_conn_init(struct auth_conn *ac, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	uint8_t addr[16] = { 0 };
	int port = 0;
	memset(ac, 0, sizeof(*ac));
	snprintf(ac->peer, sizeof(ac->peer), "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &s4->sin_addr, 4);
		port = ntohs(s4->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
		memcpy(addr, &s6->sin6_addr, 16);
		port = ntohs(s6->sin6_port);
	} else {
		return;
	}
	char a[INET6_ADDRSTRLEN];
	snprintf(ac->peer, sizeof(ac->peer), "%s:%d", addr_to_str(addr, a, sizeof(a)), port);
	for (int i = 0; i < nr_guest_nets && !ac->guest_ok; i++)
		ac->guest_ok = prefix_match(&guest_nets[i], addr);
}

bool auth_opcode(uint8_t opcode)
{
	return opcode == SD_OP_AUTH_CHALLENGE || opcode == SD_OP_AUTH_RESPONSE;
}

int auth_check_request(struct auth_conn *ac, const struct sd_req *hdr, const char *op_name)
{
	if (auth_opcode(hdr->opcode))
		return hdr->data_length > SD_AUTH_NONCE_LEN + SD_AUTH_MAC_LEN ? SD_RES_INVALID_PARMS : SD_RES_SUCCESS;
	if (!sheep_auth_has_key() || ac->authenticated)
		return SD_RES_SUCCESS;
	/* the opcode table's class; an opcode without one counts as admin */
	enum sd_op_class cls = sd_op_class(hdr->opcode);
	if (cls == OP_CLASS_GUEST && ac->guest_ok)
		return SD_RES_SUCCESS;
	sd_warn_rl("permission denied: %s opcode %s (0x%02x) from %s %s", op_class_names[cls], op_name ? op_name : "?",
		   hdr->opcode, ac->peer, cls == OP_CLASS_GUEST ? "outside --guest-allow" : "without the cluster key");
	return SD_RES_PERM_DENIED;
}

static int answer_challenge(struct auth_conn *ac, struct request *req)
{
	struct sd_auth_rsp *ar = (struct sd_auth_rsp *)&req->rp;
	req->rp.data_length = 0;
	if (!sheep_auth_has_key())
		return SD_RES_SUCCESS;        /* key_required 0: an open sheep */
	if (req->data_size < SD_AUTH_NONCE_LEN)
		return SD_RES_INVALID_PARMS;
	if (auth_random(ac->nonce, SD_AUTH_NONCE_LEN) < 0)
		return SD_RES_SYSTEM_ERROR;
	ac->nonce_valid = true;
	ac->authenticated = false;        /* a new exchange starts from nothing */
	memcpy(req->data, ac->nonce, SD_AUTH_NONCE_LEN);
	ar->key_required = 1;
	req->rp.data_length = SD_AUTH_NONCE_LEN;
	return SD_RES_SUCCESS;
}

static int check_response(struct auth_conn *ac, struct request *req)
{
	const struct sd_auth_req *hdr = (const struct sd_auth_req *)&req->rq;
	const uint8_t *client_nonce = req->data;
	uint8_t want[SD_AUTH_MAC_LEN];
	bool had_nonce = ac->nonce_valid;
	req->rp.data_length = 0;
	if (!sheep_auth_has_key())
		return SD_RES_INVALID_PARMS;
	ac->nonce_valid = false;          /* one answer per challenge: no second guess, no replay */
	ac->authenticated = false;        /* and whatever it proved before counts no more */
	if (!had_nonce || !(hdr->flags & SD_FLAG_CMD_WRITE) || hdr->data_length != SD_AUTH_NONCE_LEN + SD_AUTH_MAC_LEN ||
	    (hdr->role != SD_AUTH_ROLE_PEER && hdr->role != SD_AUTH_ROLE_ADMIN))
		goto refuse;
	auth_mac(&server_key, ac->nonce, client_nonce, hdr->role, want);
	if (!auth_mac_equal(client_nonce + SD_AUTH_NONCE_LEN, want))
		goto refuse;
	ac->authenticated = true;
	auth_mac(&server_key, client_nonce, ac->nonce, SD_AUTH_ROLE_SERVER, req->data);
	req->rp.data_length = SD_AUTH_MAC_LEN;
	sd_debug("connection from %s authenticated as %s", ac->peer, hdr->role == SD_AUTH_ROLE_PEER ? "peer" : "admin");
	return SD_RES_SUCCESS;
refuse:
	sd_warn_rl("authentication refused from %s: %s", ac->peer,
		   had_nonce ? "wrong key or malformed response" : "no challenge outstanding");
	return SD_RES_PERM_DENIED;
}

int auth_conn_handle(struct auth_conn *ac, struct request *req)
{
	int ret = req->rq.opcode == SD_OP_AUTH_CHALLENGE ? answer_challenge(ac, req) : check_response(ac, req);
	req->rp.result = ret;
	return ret;
}
