/* qcow2_cache.c: the qcow2 L2 table cache: set-associative, QCOW2_L2_WAYS slots per set, LRU
 * inside a set; dirty tables are written back on eviction and at flush. Callers hold s->lock. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_state.h"


/* each table buffer is preceded by one word holding its slot's index */
struct qcow2_l2_slot *qcow2_l2_slot_of(struct qcow2_state *s, const uint64_t *table)
{
	return &s->l2_cache[table[-1]];
}

void qcow2_l2_cache_free(struct qcow2_state *s)
{
	for (uint32_t i = 0; i < s->l2_cache_slots; i++)
		if (s->l2_cache[i].table)
			free(s->l2_cache[i].table - 1);
	free(s->l2_cache);
}

int qcow2_l2_writeback(struct qcow2_state *s, struct qcow2_l2_slot *slot)
{
	if (!slot->dirty)
		return 0;
	int ret = fmt_store_pwrite(s->img->store, slot->table, s->cluster_size, slot->offset);
	if (ret < 0)
		return ret;
	qcow2_note_write(s, slot->offset + s->cluster_size);
	slot->dirty = false;
	return 0;
}

/* The cache slot for the table at l2_off, read from the store on a miss when read is set. */
static int qcow2_l2_get(struct qcow2_state *s, uint64_t l2_off, bool read, uint64_t **table)
{
	uint32_t sets = s->l2_cache_slots / QCOW2_L2_WAYS;
	uint64_t h = (l2_off >> s->cluster_bits) * 0x9E3779B97F4A7C15ull;
	struct qcow2_l2_slot *set = &s->l2_cache[(h >> 32) % sets * QCOW2_L2_WAYS];
	struct qcow2_l2_slot *victim = &set[0];
	int ret;

	for (int i = 0; i < QCOW2_L2_WAYS; i++) {
		if (set[i].offset == l2_off && set[i].table) {
			set[i].last_use = ++s->l2_clock;
			*table = set[i].table;
			return 0;
		}
		if (set[i].last_use < victim->last_use)
			victim = &set[i];
	}
	ret = qcow2_l2_writeback(s, victim);
	if (ret < 0)
		return ret;
	if (!victim->table) {
		uint64_t *b = malloc(s->cluster_size + 8);
		if (!b) {
			fmt_error("%s: out of memory for the L2 cache", s->img->spec);
			return -ENOMEM;
		}
		b[0] = victim - s->l2_cache;
		victim->table = b + 1;
	}
	if (read) {
		victim->offset = 0;
		ret = fmt_store_pread(s->img->store, victim->table, s->cluster_size, l2_off);
		if (ret < 0)
			return ret;
	}
	victim->offset = l2_off;
	victim->dirty = false;
	victim->last_use = ++s->l2_clock;
	*table = victim->table;
	return 0;
}

/* The table at l2_off (checked by the caller) with the lock held; the pointer stays valid until
 * the next qcow2_l2_load or qcow2_l2_claim. */
int qcow2_l2_load(struct qcow2_state *s, uint64_t l2_off, uint64_t **table)
{
	return qcow2_l2_get(s, l2_off, true, table);
}

/* A slot for a table just allocated at l2_off, nothing read: the caller fills all of it and
 * marks it dirty. A slot that is evicted keeps its old contents in the buffer handed out. */
int qcow2_l2_claim(struct qcow2_state *s, uint64_t l2_off, uint64_t **table)
{
	return qcow2_l2_get(s, l2_off, false, table);
}
