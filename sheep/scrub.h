/* scrub.h: background scrub (scrub.c): this node reads and verifies each of its objects over
 * time, and repairs a bad one from a good copy through read repair. */
#ifndef SHEEP_SCRUB_H
#define SHEEP_SCRUB_H

#include <stdint.h>

#include "internal_proto.h"

#define SCRUB_INTERVAL_DEFAULT 86400          /* seconds: a daily pass */
#define SCRUB_RATE_DEFAULT     (16ull << 20)  /* bytes per second */

/* the scrub thread; interval_s 0: passes only when asked. 0 or -errno */
int scrub_init(uint32_t interval_s, uint64_t rate);
/* SCRUB (main thread, or any) */
int main_scrub(const struct sd_req *rq, struct sd_rsp *rp, void *data);

#endif
