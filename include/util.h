/* util.h: small helpers shared by every program: whole reads and writes, sizes, time, lists. */
#ifndef UTIL_H
#define UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Read/write exactly len bytes, retrying on EINTR and short transfers.
 * Return len, or fewer at end of file (xread), or -1 with errno set. */
ssize_t xread(int fd, void *buf, size_t len);
ssize_t xwrite(int fd, const void *buf, size_t len);
ssize_t xpread(int fd, void *buf, size_t len, off_t off);
ssize_t xpwrite(int fd, const void *buf, size_t len, off_t off);

/* "10", "512K", "4M", "1.5G", "2T" (binary units). Returns 0 or -EINVAL / -ERANGE. */
int parse_size(const char *s, uint64_t *out);
/* Human-readable size into buf ("4.0 MB" style, binary units). */
const char *size_to_str(uint64_t size, char *buf, size_t len);
/* Strict decimal/hex unsigned parse of the whole string. */
int parse_u64(const char *s, uint64_t *out);

uint64_t now_ns(void);          /* CLOCK_MONOTONIC */
uint64_t wall_ns(void);         /* CLOCK_REALTIME */

bool is_all_zero(const void *buf, size_t len);

/* Atomic file replace: write path.tmp, fsync, rename, fsync the directory. */
int atomic_write_file(const char *path, const void *buf, size_t len);
/* Whole small file into a malloc'd buffer. Returns length or -errno. */
ssize_t read_whole_file(const char *path, void **out, size_t max);
int mkdir_p(const char *path, mode_t mode);

/* intrusive doubly-linked list */
struct list_head { struct list_head *next, *prev; };
#define LIST_HEAD_INIT(name) { &(name), &(name) }
static inline void INIT_LIST_HEAD(struct list_head *h) { h->next = h->prev = h; }
static inline bool list_empty(const struct list_head *h) { return h->next == h; }
static inline void list_add_between(struct list_head *n, struct list_head *p, struct list_head *nx)
{
	nx->prev = n; n->next = nx; n->prev = p; p->next = n;
}
static inline void list_add_tail(struct list_head *n, struct list_head *h) { list_add_between(n, h->prev, h); }
static inline void list_add(struct list_head *n, struct list_head *h) { list_add_between(n, h, h->next); }
static inline void list_del(struct list_head *e)
{
	e->next->prev = e->prev; e->prev->next = e->next; e->next = e->prev = e;
}
static inline void list_splice_init(struct list_head *from, struct list_head *to)
{
	if (list_empty(from))
		return;
	struct list_head *first = from->next, *last = from->prev, *at = to->prev;
	at->next = first; first->prev = at; last->next = to; to->prev = last;
	INIT_LIST_HEAD(from);
}
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(h, type, member) list_entry((h)->next, type, member)
#define list_for_each_safe(pos, n, head) \
	for (pos = (head)->next, n = pos->next; pos != (head); pos = n, n = pos->next)

#endif
