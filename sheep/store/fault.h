/* fault.h: test-only fault injection under the store (fault.c). Built only with
 * `make FAULT_INJECT=1` (-DSD_FAULT_INJECT, into build-fi/); in every other build the hooks are
 * empty inline functions and the store's fast path has none of it. */
#ifndef SHEEP_STORE_FAULT_H
#define SHEEP_STORE_FAULT_H

#include <stddef.h>
#include <stdint.h>

enum fault_op { FAULT_READ, FAULT_WRITE, FAULT_SYNC, FAULT_NR_OPS };

#ifdef SD_FAULT_INJECT
/* rules are read from path, and read again whenever the file changes (its counts start afresh);
 * 0 or -errno */
int fault_init(const char *path);
/* before an op on oid (0 for the store directory): an errno to fail it with, or 0. May sleep
 * first (delay_ms). */
int fault_check(enum fault_op op, uint64_t oid);
/* after data of oid was read from the disk: flip a byte of it if a corrupt rule says so */
void fault_corrupt(uint64_t oid, void *data, size_t len);
#else
static inline int fault_check(enum fault_op op, uint64_t oid) { return 0; }
static inline void fault_corrupt(uint64_t oid, void *data, size_t len) { }
#endif

#endif
