/* vdi_lock.c: the cluster-wide VDI lock table (LOCK_VDI / RELEASE_VDI). Every change runs in
 * process_main of a totally ordered cluster op, so every node holds the same table. */
#include <pthread.h>
#include <string.h>

#include "internal_proto.h"
#include "sheepdog_proto.h"
#include "alloc.h"
#include "group.h"
#include "vdi_lock.h"

/*
 * A lock belongs to the sheep (gateway) that asked for it, named by node_id_hash32() of its
 * address. Normal locks have one holder; shared locks (type 1, for multipath targets) have up to
 * SD_LOCK_MAX_OWNERS. A joiner copies the table from a member (GET_VDI_LOCKS). Applying an op is
 * idempotent on the table, which makes replaying an op the joiner already copied harmless.
 * Holders that left the cluster are dropped the next time the table changes or is listed.
 * Locks live in memory: a whole-cluster restart starts with none.
 */

#define LOCK_BUCKETS 256

struct lock_entry {
	struct vdi_lock_info info;
	struct lock_entry *next;
};

static struct lock_entry *lock_table[LOCK_BUCKETS];
static pthread_mutex_t lock_table_lock = PTHREAD_MUTEX_INITIALIZER;

/* caller holds lock_table_lock */
static struct lock_entry **lock_find(uint32_t vid)
{
	struct lock_entry **pp = &lock_table[vid % LOCK_BUCKETS];
	while (*pp && (*pp)->info.vid != vid)
		pp = &(*pp)->next;
	return pp;
}

/* caller holds lock_table_lock */
static void lock_unlink(struct lock_entry **pp)
{
	struct lock_entry *e = *pp;
	*pp = e->next;
	free(e);
}

static bool owner_is_member(uint32_t owner, const struct sd_node *nodes, int nr)
{
	for (int i = 0; i < nr; i++)
		if (node_id_hash32(&nodes[i]) == owner)
			return true;
	return false;
}

/* drop holders that are no longer members (main thread) */
static void lock_purge_departed(void)
{
	struct sd_node *nodes = xmalloc(SD_MAX_NODES * sizeof(*nodes));
	int nr = group_node_list(nodes, SD_MAX_NODES);
	pthread_mutex_lock(&lock_table_lock);
	for (int b = 0; b < LOCK_BUCKETS; b++) {
		struct lock_entry **pp = &lock_table[b];
		while (*pp) {
			struct vdi_lock_info *li = &(*pp)->info;
			for (int i = 0; i < li->nr_owners;) {
				if (owner_is_member(li->owners[i], nodes, nr)) {
					i++;
					continue;
				}
				li->owners[i] = li->owners[--li->nr_owners];
			}
			if (!li->nr_owners)
				lock_unlink(pp);
			else
				pp = &(*pp)->next;
		}
	}
	pthread_mutex_unlock(&lock_table_lock);
	free(nodes);
}

int vdi_lock_acquire(uint32_t vid, uint32_t owner, uint32_t type)
{
	int ret = SD_RES_SUCCESS;
	if (type != SD_LOCK_NORMAL && type != SD_LOCK_SHARED)
		return SD_RES_INVALID_PARMS;
	lock_purge_departed();
	pthread_mutex_lock(&lock_table_lock);
	struct lock_entry **pp = lock_find(vid);
	if (!*pp) {
		struct lock_entry *e = xzalloc(sizeof(*e));
		e->info.vid = vid;
		e->info.type = type;
		e->info.nr_owners = 1;
		e->info.owners[0] = owner;
		*pp = e;
		goto out;
	}
	struct vdi_lock_info *li = &(*pp)->info;
	if (type != SD_LOCK_SHARED || li->type != SD_LOCK_SHARED) {
		ret = SD_RES_VDI_LOCKED;
		goto out;
	}
	for (int i = 0; i < li->nr_owners; i++)
		if (li->owners[i] == owner)
			goto out;
	if (li->nr_owners == SD_LOCK_MAX_OWNERS) {
		ret = SD_RES_VDI_LOCKED;
		goto out;
	}
	li->owners[li->nr_owners++] = owner;
out:
	pthread_mutex_unlock(&lock_table_lock);
	return ret;
}

/* caller holds lock_table_lock: the entry whose lock had id vid before snapshots moved it */
static struct lock_entry **lock_find_moved(uint32_t vid)
{
	for (int b = 0; b < LOCK_BUCKETS; b++)
		for (struct lock_entry **pp = &lock_table[b]; *pp; pp = &(*pp)->next)
			for (int i = 0; i < SD_LOCK_PREV_VIDS; i++)
				if ((*pp)->info.prev_vids[i] == vid)
					return pp;
	return NULL;
}

int vdi_lock_release(uint32_t vid, uint32_t owner, bool all)
{
	int ret = SD_RES_VDI_NOT_LOCKED;
	pthread_mutex_lock(&lock_table_lock);
	struct lock_entry **pp = lock_find(vid);
	if (!*pp) {
		/* the holder may not have seen a snapshot move its lock to a new id */
		struct lock_entry **moved = vid ? lock_find_moved(vid) : NULL;
		if (moved)
			pp = moved;
	}
	if (*pp) {
		struct vdi_lock_info *li = &(*pp)->info;
		for (int i = 0; i < li->nr_owners;) {
			if (all || li->owners[i] == owner) {
				li->owners[i] = li->owners[--li->nr_owners];
				ret = SD_RES_SUCCESS;
			} else {
				i++;
			}
		}
		if (!li->nr_owners)
			lock_unlink(pp);
	}
	pthread_mutex_unlock(&lock_table_lock);
	return ret;
}

bool vdi_lock_held(uint32_t vid)
{
	pthread_mutex_lock(&lock_table_lock);
	bool held = *lock_find(vid) != NULL;
	pthread_mutex_unlock(&lock_table_lock);
	return held;
}

/* a snapshot gave the working VDI a new id: its lock follows it */
void vdi_lock_move(uint32_t from, uint32_t to)
{
	pthread_mutex_lock(&lock_table_lock);
	struct lock_entry **pp = lock_find(from);
	if (*pp && !*lock_find(to)) {
		struct lock_entry *e = *pp;
		*pp = e->next;
		memmove(&e->info.prev_vids[1], &e->info.prev_vids[0], (SD_LOCK_PREV_VIDS - 1) * sizeof(uint32_t));
		e->info.prev_vids[0] = from;
		e->info.vid = to;
		e->next = lock_table[to % LOCK_BUCKETS];
		lock_table[to % LOCK_BUCKETS] = e;
	}
	pthread_mutex_unlock(&lock_table_lock);
}

void vdi_lock_drop(uint32_t vid)
{
	pthread_mutex_lock(&lock_table_lock);
	struct lock_entry **pp = lock_find(vid);
	if (*pp)
		lock_unlink(pp);
	pthread_mutex_unlock(&lock_table_lock);
}

/* the table into buf (at most max entries); returns the number of entries */
size_t vdi_lock_list(struct vdi_lock_info *buf, size_t max)
{
	size_t n = 0;
	lock_purge_departed();
	pthread_mutex_lock(&lock_table_lock);
	for (int b = 0; b < LOCK_BUCKETS; b++)
		for (struct lock_entry *e = lock_table[b]; e && n < max; e = e->next)
			buf[n++] = e->info;
	pthread_mutex_unlock(&lock_table_lock);
	return n;
}

/* a joiner adopts a member's table */
void vdi_lock_replace_all(const struct vdi_lock_info *list, size_t nr)
{
	pthread_mutex_lock(&lock_table_lock);
	for (int b = 0; b < LOCK_BUCKETS; b++)
		while (lock_table[b])
			lock_unlink(&lock_table[b]);
	for (size_t i = 0; i < nr; i++) {
		if (!list[i].nr_owners || list[i].nr_owners > SD_LOCK_MAX_OWNERS || *lock_find(list[i].vid))
			continue;
		struct lock_entry *e = xzalloc(sizeof(*e));
		e->info = list[i];
		e->next = lock_table[list[i].vid % LOCK_BUCKETS];
		lock_table[list[i].vid % LOCK_BUCKETS] = e;
	}
	pthread_mutex_unlock(&lock_table_lock);
}
