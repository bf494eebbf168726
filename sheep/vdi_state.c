/* vdi_state.c: what every node knows of every VDI, kept in step by totally ordered cluster ops:
 * the in-use bitmap of VDI ids, the state table (copies, block size, snapshot, deleted) and the
 * tombstones known to be clean. From it follow an object's size and its number of copies. */
#include <errno.h>
#include <string.h>

#include "internal_proto.h"
#include "sheepdog_proto.h"
#include "ec.h"
#include "alloc.h"
#include "cluster_view.h"
#include "vdi_state.h"

#define STATE_BUCKETS 4096

static uint8_t *vdi_bitmap;      /* SD_NR_VDIS bits */
static pthread_mutex_t vdi_lock = PTHREAD_MUTEX_INITIALIZER;

struct state_entry {
	struct vdi_state st;
	struct state_entry *next;
};
static struct state_entry *states[STATE_BUCKETS];
static size_t nr_states;
static uint8_t *clean_tombstones;   /* SD_NR_VDIS bits: tombstones known to have nothing pending */

int vdi_init(void)
{
	vdi_bitmap = xzalloc(SD_NR_VDIS / 8);
	return 0;
}

bool vdi_bit_test(uint32_t vid)
{
	pthread_mutex_lock(&vdi_lock);
	bool set = vdi_bitmap[(vid & SD_VDI_MASK) / 8] & (1u << (vid % 8));
	pthread_mutex_unlock(&vdi_lock);
	return set;
}

void vdi_bit_set(uint32_t vid)
{
	pthread_mutex_lock(&vdi_lock);
	vdi_bitmap[(vid & SD_VDI_MASK) / 8] |= 1u << (vid % 8);
	pthread_mutex_unlock(&vdi_lock);
}

void vdi_bitmap_copy(void *out)
{
	pthread_mutex_lock(&vdi_lock);
	memcpy(out, vdi_bitmap, SD_NR_VDIS / 8);
	pthread_mutex_unlock(&vdi_lock);
}

void vdi_bitmap_merge(const void *in)
{
	const uint8_t *b = in;
	pthread_mutex_lock(&vdi_lock);
	for (size_t i = 0; i < SD_NR_VDIS / 8; i++)
		vdi_bitmap[i] |= b[i];
	pthread_mutex_unlock(&vdi_lock);
}

void vdi_bitmap_clear_all(void)
{
	pthread_mutex_lock(&vdi_lock);
	memset(vdi_bitmap, 0, SD_NR_VDIS / 8);
	pthread_mutex_unlock(&vdi_lock);
}

int vdi_state_lookup(uint32_t vid, struct vdi_state *out)
{
	int ret = -ENOENT;
	pthread_mutex_lock(&vdi_lock);
	for (struct state_entry *e = states[vid % STATE_BUCKETS]; e; e = e->next)
		if (e->st.vid == vid) {
			*out = e->st;
			ret = 0;
			break;
		}
	pthread_mutex_unlock(&vdi_lock);
	return ret;
}

void vdi_state_set(const struct vdi_state *st)
{
	pthread_mutex_lock(&vdi_lock);
	struct state_entry *e;
	for (e = states[st->vid % STATE_BUCKETS]; e; e = e->next)
		if (e->st.vid == st->vid)
			break;
	if (!e) {
		e = xzalloc(sizeof(*e));
		e->next = states[st->vid % STATE_BUCKETS];
		states[st->vid % STATE_BUCKETS] = e;
		nr_states++;
	}
	e->st = *st;
	pthread_mutex_unlock(&vdi_lock);
}

int vdi_state_list(struct vdi_state **out, size_t *nr)
{
	pthread_mutex_lock(&vdi_lock);
	struct vdi_state *list = xmalloc(nr_states * sizeof(*list));
	size_t n = 0;
	for (int b = 0; b < STATE_BUCKETS; b++)
		for (struct state_entry *e = states[b]; e; e = e->next)
			list[n++] = e->st;
	pthread_mutex_unlock(&vdi_lock);
	*out = list;
	*nr = n;
	return 0;
}

void vdi_state_clear_all(void)
{
	pthread_mutex_lock(&vdi_lock);
	free(clean_tombstones);
	clean_tombstones = NULL;
	for (int b = 0; b < STATE_BUCKETS; b++) {
		struct state_entry *e = states[b];
		while (e) {
			struct state_entry *n = e->next;
			free(e);
			e = n;
		}
		states[b] = NULL;
	}
	nr_states = 0;
	pthread_mutex_unlock(&vdi_lock);
}

bool vdi_tombstone_known_clean(uint32_t vid)
{
	pthread_mutex_lock(&vdi_lock);
	bool clean = clean_tombstones && (clean_tombstones[vid / 8] & (1u << (vid % 8)));
	pthread_mutex_unlock(&vdi_lock);
	return clean;
}

/* a tombstone stays clean for good: nothing can point at a deleted VDI's objects again */
void vdi_tombstone_set_clean(uint32_t vid)
{
	pthread_mutex_lock(&vdi_lock);
	if (!clean_tombstones)
		clean_tombstones = xzalloc(SD_NR_VDIS / 8);
	clean_tombstones[vid / 8] |= 1u << (vid % 8);
	pthread_mutex_unlock(&vdi_lock);
}

bool vdi_is_deleted(uint32_t vid)
{
	struct vdi_state st;
	return vdi_state_lookup(vid, &st) == 0 && st.deleted;
}

/* the D:P policy of a VDI's strips: its own, or that of the layout in transit (alter-copy) */
static uint8_t strip_policy(const struct vdi_state *st)
{
	return st->copy_policy ? st->copy_policy : st->next_policy;
}

/* the replica count of a VDI's unstriped data objects: its own, or the layout's in transit */
static int replica_copies(const struct vdi_state *st)
{
	return st->copy_policy && st->next_copies && !st->next_policy ? st->next_copies : st->nr_copies;
}

/* a data object is as large as its VDI's block size, every other object as the protocol says;
 * a strip of an erasure-coded one is 1/D of it */
uint64_t obj_size_of(uint64_t oid)
{
	struct vdi_state st;
	uint8_t shift = sys->block_size_shift;
	bool known = vdi_state_lookup(oid_to_vid(oid), &st) == 0;
	if (is_ec_strip(oid)) {
		if (known && st.block_size_shift)
			shift = st.block_size_shift;
		int d = known && strip_policy(&st) ? ec_policy_data(strip_policy(&st)) : 1;
		return sd_obj_max_size(ec_strip_base(oid), shift) / d;
	}
	if (is_data_obj(oid) && known && st.block_size_shift)
		shift = st.block_size_shift;
	return sd_obj_max_size(oid, shift);
}

uint8_t oid_copy_policy(uint64_t oid)
{
	struct vdi_state st;
	if (is_ec_strip(oid) && vdi_state_lookup(oid_to_vid(oid), &st) == 0)
		return strip_policy(&st);
	if (is_data_obj(oid) && vdi_state_lookup(oid_to_vid(oid), &st) == 0)
		return st.copy_policy;
	return 0;
}

/* copies of an object: its VDI's, else the cluster default. An erasure-coded VDI's data objects
 * have D + P strips; its inode and other objects P + 1 replicas, so they survive what the data
 * survives. While alter-copy converts a VDI, the layout in transit places the other kind of
 * data object (strips of a replicated VDI, replicas of an erasure-coded one). */
int oid_copies(uint64_t oid)
{
	struct vdi_state st;
	if (vdi_state_lookup(oid_to_vid(oid), &st) == 0 && st.nr_copies) {
		if (is_ec_strip(oid))
			return !st.copy_policy && st.next_policy ? st.next_copies : st.nr_copies;
		if (is_data_obj(oid))
			return replica_copies(&st);
		if (st.copy_policy)
			return ec_policy_parity(st.copy_policy) + 1;
		return st.nr_copies;
	}
	return sys->nr_copies ? sys->nr_copies : 1;
}

/* strip i of an erasure-coded object lives on the i-th of the D + P nodes its data object picks;
 * with fewer zones than strips, the strips past the last zone have no place (reads decode
 * without them) */
int obj_pick_nodes(const struct vnode_info *vi, uint64_t oid, int *idx)
{
	if (!is_ec_strip(oid))
		return ring_pick_nodes(vi, oid, oid_copies(oid), idx);
	int all[SD_MAX_COPIES], i = ec_strip_index(oid);
	int nr = ring_pick_nodes(vi, ec_strip_base(oid), oid_copies(oid), all);
	if (i >= nr)
		return 0;
	idx[0] = all[i];
	return 1;
}
