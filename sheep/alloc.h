/* alloc.h: allocation for the daemon that never returns NULL: sheep cannot run on without memory,
 * so running out is logged and aborts. */
#ifndef SHEEP_ALLOC_H
#define SHEEP_ALLOC_H

#include <stdlib.h>

#include "logger.h"

/* allocation that never returns NULL: the daemon cannot run on without memory */
static inline void *xzalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (!p) {
		sd_emerg("out of memory allocating %zu bytes", n);
		abort();
	}
	return p;
}

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		sd_emerg("out of memory allocating %zu bytes", n);
		abort();
	}
	return p;
}

#endif
