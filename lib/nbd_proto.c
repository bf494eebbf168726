/* nbd_proto.c: pure NBD parsing and checking (no sockets, no allocation), shared by sheep's NBD
 * export, the unit tests and the fuzz harness. Every length read from the wire is bounded by the
 * buffer it came in before it is used. */
#include <stdio.h>
#include <string.h>

#include "nbd_proto.h"

int nbd_parse_request(const uint8_t *buf, struct nbd_request *rq)
{
	rq->magic = nbd_get32(buf);
	rq->flags = nbd_get16(buf + 4);
	rq->type = nbd_get16(buf + 6);
	rq->cookie = nbd_get64(buf + 8);
	rq->offset = nbd_get64(buf + 16);
	rq->length = nbd_get32(buf + 24);
	return rq->magic == NBD_REQUEST_MAGIC ? 0 : -1;
}

/* the range [offset, offset + length) lies inside the export */
static bool in_range(const struct nbd_request *rq, uint64_t size)
{
	return rq->offset <= size && rq->length <= size - rq->offset;
}

int nbd_check_request(const struct nbd_request *rq, const struct nbd_export_limits *lim)
{
	uint16_t allowed;

	switch (rq->type) {
	case NBD_CMD_READ:
		allowed = NBD_CMD_FLAG_FUA | (lim->structured ? NBD_CMD_FLAG_DF : 0);
		break;
	case NBD_CMD_WRITE:
	case NBD_CMD_TRIM:
		allowed = NBD_CMD_FLAG_FUA;
		break;
	case NBD_CMD_WRITE_ZEROES:
		allowed = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
		break;
	case NBD_CMD_BLOCK_STATUS:
		allowed = NBD_CMD_FLAG_REQ_ONE;
		break;
	case NBD_CMD_FLUSH:
	case NBD_CMD_DISC:
		allowed = 0;
		break;
	default:
		return NBD_EINVAL;     /* CACHE, RESIZE and unknown commands are not offered */
	}
	if (rq->flags & ~allowed)
		return NBD_EINVAL;

	switch (rq->type) {
	case NBD_CMD_DISC:
		return 0;
	case NBD_CMD_FLUSH:
		return rq->offset || rq->length ? NBD_EINVAL : 0;
	case NBD_CMD_READ:
		if (!rq->length)
			return NBD_EINVAL;
		if (rq->length > lim->max_request)
			return lim->structured ? NBD_EOVERFLOW : NBD_EINVAL;
		return in_range(rq, lim->size) ? 0 : NBD_EINVAL;
	case NBD_CMD_WRITE:
		if (lim->read_only)
			return NBD_EPERM;
		if (!rq->length || rq->length > lim->max_request)
			return NBD_EINVAL;
		return in_range(rq, lim->size) ? 0 : NBD_ENOSPC;
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		if (lim->read_only)
			return NBD_EPERM;
		if (!rq->length)
			return NBD_EINVAL;
		if (!in_range(rq, lim->size))
			return rq->type == NBD_CMD_TRIM ? NBD_EINVAL : NBD_ENOSPC;
		return 0;
	case NBD_CMD_BLOCK_STATUS:
		if (!lim->structured || !lim->meta_allocation || !rq->length)
			return NBD_EINVAL;
		return in_range(rq, lim->size) ? 0 : NBD_EINVAL;
	}
	return NBD_EINVAL;
}

/* a wire string: no NUL inside, at most NBD_MAX_STRING bytes */
static bool copy_string(const uint8_t *p, uint32_t len, char *out)
{
	if (len > NBD_MAX_STRING || memchr(p, 0, len))
		return false;
	memcpy(out, p, len);
	out[len] = 0;
	return true;
}

/* an option that starts with a 32-bit name length and the name, followed by at least count_len
 * bytes: the name into name, *p at what follows it and *rest the bytes after count_len */
static bool parse_opt_name(const uint8_t *data, uint32_t len, uint32_t count_len, char *name,
			   const uint8_t **p, uint32_t *rest)
{
	if (len < 4)
		return false;
	uint32_t nlen = nbd_get32(data);
	if (nlen > len - 4 || len - 4 - nlen < count_len)
		return false;
	if (!copy_string(data + 4, nlen, name))
		return false;
	*p = data + 4 + nlen;
	*rest = len - 4 - nlen - count_len;
	return true;
}

uint32_t nbd_parse_info_opt(const uint8_t *data, uint32_t len, struct nbd_info_opt *out)
{
	const uint8_t *p;
	uint32_t rest;
	memset(out, 0, sizeof(*out));
	if (!parse_opt_name(data, len, 2, out->name, &p, &rest))
		return NBD_REP_ERR_INVALID;
	out->nr_info = nbd_get16(p);
	p += 2;
	if (rest != (uint32_t)out->nr_info * 2)
		return NBD_REP_ERR_INVALID;
	for (uint32_t i = 0; i < out->nr_info; i++) {
		switch (nbd_get16(p + 2 * i)) {
		case NBD_INFO_NAME: out->want_name = true; break;
		case NBD_INFO_DESCRIPTION: out->want_description = true; break;
		case NBD_INFO_BLOCK_SIZE: out->want_block_size = true; break;
		default: break;        /* EXPORT is always sent; unknown ones are ignored */
		}
	}
	return 0;
}

uint32_t nbd_parse_meta_opt(const uint8_t *data, uint32_t len, bool list, struct nbd_meta_opt *out)
{
	const uint8_t *p;
	uint32_t rest;
	memset(out, 0, sizeof(*out));
	if (!parse_opt_name(data, len, 4, out->name, &p, &rest))
		return NBD_REP_ERR_INVALID;
	out->nr_queries = nbd_get32(p);
	p += 4;
	if (!out->nr_queries && list)
		out->base_allocation = true;      /* LIST with no query: every context */
	for (uint32_t i = 0; i < out->nr_queries; i++) {
		char q[NBD_MAX_STRING + 1];
		if (rest < 4)
			return NBD_REP_ERR_INVALID;
		uint32_t qlen = nbd_get32(p);
		if (qlen > rest - 4 || !copy_string(p + 4, qlen, q))
			return NBD_REP_ERR_INVALID;
		p += 4 + qlen;
		rest -= 4 + qlen;
		if (!strcmp(q, "base:allocation") || (list && !strcmp(q, "base:")))
			out->base_allocation = true;
	}
	return rest ? NBD_REP_ERR_INVALID : 0;
}

int nbd_split_export_name(const char *export, char *vdi, size_t vdi_len, char *tag, size_t tag_len)
{
	const char *at = strrchr(export, '@');
	size_t n = at ? (size_t)(at - export) : strlen(export);
	if (!n || n >= vdi_len)
		return -1;
	memcpy(vdi, export, n);
	vdi[n] = 0;
	if (!at) {
		tag[0] = 0;
		return 0;
	}
	size_t t = strlen(at + 1);
	if (!t || t >= tag_len)
		return -1;
	memcpy(tag, at + 1, t + 1);
	return 0;
}

size_t nbd_build_option_reply(uint8_t *out, uint32_t option, uint32_t type, uint32_t len)
{
	uint8_t *p = nbd_put64(out, NBD_REP_MAGIC);
	p = nbd_put32(p, option);
	p = nbd_put32(p, type);
	p = nbd_put32(p, len);
	return p - out;
}

size_t nbd_build_simple_reply(uint8_t *out, uint32_t error, uint64_t cookie)
{
	uint8_t *p = nbd_put32(out, NBD_SIMPLE_REPLY_MAGIC);
	p = nbd_put32(p, error);
	p = nbd_put64(p, cookie);
	return p - out;
}

size_t nbd_build_chunk_header(uint8_t *out, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t len)
{
	uint8_t *p = nbd_put32(out, NBD_STRUCTURED_REPLY_MAGIC);
	p = nbd_put16(p, flags);
	p = nbd_put16(p, type);
	p = nbd_put64(p, cookie);
	p = nbd_put32(p, len);
	return p - out;
}

const char *nbd_err_name(uint32_t err)
{
	switch (err) {
	case 0: return "success";
	case NBD_EPERM: return "EPERM";
	case NBD_EIO: return "EIO";
	case NBD_ENOMEM: return "ENOMEM";
	case NBD_EINVAL: return "EINVAL";
	case NBD_ENOSPC: return "ENOSPC";
	case NBD_EOVERFLOW: return "EOVERFLOW";
	case NBD_ENOTSUP: return "ENOTSUP";
	case NBD_ESHUTDOWN: return "ESHUTDOWN";
	}
	return "error";
}

const char *nbd_cmd_name(uint16_t type)
{
	static const char *const names[] = { "READ", "WRITE", "DISC", "FLUSH", "TRIM", "CACHE",
					     "WRITE_ZEROES", "BLOCK_STATUS" };
	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "UNKNOWN";
}
