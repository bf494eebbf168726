/* nbd_proto.h: the NBD wire protocol (fixed newstyle, structured replies): constants, and pure
 * parsers and checkers of option payloads and transmission requests, without sockets. */
#ifndef NBD_PROTO_H
#define NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NBD_DEFAULT_PORT          10809
#define NBD_MAGIC                 UINT64_C(0x4e42444d41474943)   /* "NBDMAGIC" */
#define NBD_IHAVEOPT              UINT64_C(0x49484156454f5054)   /* "IHAVEOPT" */
#define NBD_REP_MAGIC             UINT64_C(0x0003e889045565a9)
#define NBD_REQUEST_MAGIC         0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC    0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

/* handshake flags (server) and client flags */
#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

/* options */
#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10
#define NBD_OPT_EXTENDED_HEADERS  11

/* option replies */
#define NBD_REP_ACK               1
#define NBD_REP_SERVER            2
#define NBD_REP_INFO              3
#define NBD_REP_META_CONTEXT      4
#define NBD_REP_FLAG_ERROR        (1u << 31)
#define NBD_REP_ERR_UNSUP         (NBD_REP_FLAG_ERROR | 1)
#define NBD_REP_ERR_POLICY        (NBD_REP_FLAG_ERROR | 2)
#define NBD_REP_ERR_INVALID       (NBD_REP_FLAG_ERROR | 3)
#define NBD_REP_ERR_PLATFORM      (NBD_REP_FLAG_ERROR | 4)
#define NBD_REP_ERR_TLS_REQD      (NBD_REP_FLAG_ERROR | 5)
#define NBD_REP_ERR_UNKNOWN       (NBD_REP_FLAG_ERROR | 6)
#define NBD_REP_ERR_SHUTDOWN      (NBD_REP_FLAG_ERROR | 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_FLAG_ERROR | 8)
#define NBD_REP_ERR_TOO_BIG       (NBD_REP_FLAG_ERROR | 9)

/* info types in GO/INFO */
#define NBD_INFO_EXPORT           0
#define NBD_INFO_NAME             1
#define NBD_INFO_DESCRIPTION      2
#define NBD_INFO_BLOCK_SIZE       3

/* transmission flags */
#define NBD_FLAG_HAS_FLAGS        (1u << 0)
#define NBD_FLAG_READ_ONLY        (1u << 1)
#define NBD_FLAG_SEND_FLUSH       (1u << 2)
#define NBD_FLAG_SEND_FUA         (1u << 3)
#define NBD_FLAG_ROTATIONAL       (1u << 4)
#define NBD_FLAG_SEND_TRIM        (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF          (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN   (1u << 8)
#define NBD_FLAG_SEND_RESIZE      (1u << 9)
#define NBD_FLAG_SEND_CACHE       (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO   (1u << 11)

/* commands and command flags */
#define NBD_CMD_READ              0
#define NBD_CMD_WRITE             1
#define NBD_CMD_DISC              2
#define NBD_CMD_FLUSH             3
#define NBD_CMD_TRIM              4
#define NBD_CMD_CACHE             5
#define NBD_CMD_WRITE_ZEROES      6
#define NBD_CMD_BLOCK_STATUS      7
#define NBD_CMD_FLAG_FUA          (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE      (1u << 1)
#define NBD_CMD_FLAG_DF           (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE      (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO    (1u << 4)

/* structured reply chunks */
#define NBD_REPLY_FLAG_DONE       (1u << 0)
#define NBD_REPLY_TYPE_NONE       0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR      32769
#define NBD_REPLY_TYPE_ERROR_OFFSET 32770

/* base:allocation extent flags */
#define NBD_STATE_HOLE            (1u << 0)
#define NBD_STATE_ZERO            (1u << 1)

/* errors on the wire */
#define NBD_EPERM                 1
#define NBD_EIO                   5
#define NBD_ENOMEM                12
#define NBD_EINVAL                22
#define NBD_ENOSPC                28
#define NBD_EOVERFLOW             75
#define NBD_ENOTSUP               95
#define NBD_ESHUTDOWN             108

#define NBD_MAX_STRING            4096            /* export names, queries */
#define NBD_MAX_OPTION_DATA       (64u << 10)     /* larger option payloads are refused */
#define NBD_MAX_REQUEST           (32u << 20)     /* the advertised maximum block size */
#define NBD_REQUEST_SIZE          28
#define NBD_SIMPLE_REPLY_SIZE     16
#define NBD_CHUNK_HEADER_SIZE     20
#define NBD_META_ID_BASE_ALLOCATION 1

/* big-endian fields */
static inline uint16_t nbd_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t nbd_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t nbd_get64(const uint8_t *p) { return (uint64_t)nbd_get32(p) << 32 | nbd_get32(p + 4); }
static inline uint8_t *nbd_put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; return p + 2; }
static inline uint8_t *nbd_put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
	return p + 4;
}
static inline uint8_t *nbd_put64(uint8_t *p, uint64_t v) { nbd_put32(p, v >> 32); return nbd_put32(p + 4, v); }

/* one transmission request as received */
struct nbd_request {
	uint32_t magic;
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t length;
};

/* what the checks need to know about the export and the connection */
struct nbd_export_limits {
	uint64_t size;
	uint32_t max_request;     /* largest READ/WRITE payload */
	bool read_only;
	bool structured;          /* structured replies negotiated */
	bool meta_allocation;     /* base:allocation selected */
};

/* Decode 28 bytes. Returns 0, or -1 when the magic is wrong (the stream cannot be trusted). */
int nbd_parse_request(const uint8_t *buf, struct nbd_request *rq);

/* Check a decoded request against the export. Returns 0 when it may be served, else the NBD error
 * to answer with. A WRITE's payload must be read (or skipped) whatever the answer. */
int nbd_check_request(const struct nbd_request *rq, const struct nbd_export_limits *lim);

/* GO and INFO payload: u32 name length, name, u16 count, count x u16 info. */
struct nbd_info_opt {
	char name[NBD_MAX_STRING + 1];
	uint16_t nr_info;
	bool want_name, want_description, want_block_size;
};
/* Returns 0 or an NBD_REP_ERR_* code. */
uint32_t nbd_parse_info_opt(const uint8_t *data, uint32_t len, struct nbd_info_opt *out);

/* LIST_META_CONTEXT and SET_META_CONTEXT payload: u32 name length, name, u32 count, queries.
 * Records whether base:allocation is selected (a query "base:allocation"; for LIST also an empty
 * query list or "base:"). Returns 0 or an NBD_REP_ERR_* code. */
struct nbd_meta_opt {
	char name[NBD_MAX_STRING + 1];
	uint32_t nr_queries;
	bool base_allocation;
};
uint32_t nbd_parse_meta_opt(const uint8_t *data, uint32_t len, bool list, struct nbd_meta_opt *out);

/* Split an export name "VDI" or "VDI@TAG" into its parts. Returns 0 or -1 if not a valid name. */
int nbd_split_export_name(const char *export, char *vdi, size_t vdi_len, char *tag, size_t tag_len);

/* reply headers: each returns the number of bytes written into out */
size_t nbd_build_option_reply(uint8_t *out, uint32_t option, uint32_t type, uint32_t len);
size_t nbd_build_simple_reply(uint8_t *out, uint32_t error, uint64_t cookie);
size_t nbd_build_chunk_header(uint8_t *out, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t len);

/* NBD error name for logs */
const char *nbd_err_name(uint32_t err);
const char *nbd_cmd_name(uint16_t type);

#endif
