/* byteorder.h: big-endian fields read from and written to unaligned bytes of on-disk headers
 * (qcow, qcow2, luks). */
#ifndef FMT_BYTEORDER_H
#define FMT_BYTEORDER_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t fmt_be64(const void *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static inline uint32_t fmt_be32(const void *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static inline uint16_t fmt_be16(const void *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static inline void fmt_put64(void *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static inline void fmt_put32(void *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static inline void fmt_put16(void *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }

#endif
