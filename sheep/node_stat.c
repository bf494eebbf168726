/* node_stat.c: request statistics of this node. Each kind of request (client reads, writes,
 * flushes, VDI operations, peer I/O, the rest) keeps counters and a histogram of latencies in
 * power-of-two microsecond buckets, updated with relaxed atomics from any thread. */
#include <stdatomic.h>
#include <string.h>

#include "internal_proto.h"
#include "node_stat.h"

enum stat_kind { K_READ, K_WRITE, K_FLUSH, K_VDI, K_PEER_READ, K_PEER_WRITE, K_OTHER, K_NR };
static const char *const kind_name[K_NR] = {
	[K_READ] = "read", [K_WRITE] = "write", [K_FLUSH] = "flush", [K_VDI] = "vdi",
	[K_PEER_READ] = "peer read", [K_PEER_WRITE] = "peer write", [K_OTHER] = "other",
};

#define NR_BUCKETS 40   /* bucket b: latencies below 2^b microseconds */
struct kind_stat {
	_Atomic uint64_t count, errors, bytes, sum_us, max_us;
	_Atomic uint64_t bucket[NR_BUCKETS];
};
static struct kind_stat stats[K_NR];

static enum stat_kind kind_of(uint8_t opcode)
{
	switch (opcode) {
	case SD_OP_READ_OBJ: return K_READ;
	case SD_OP_WRITE_OBJ: case SD_OP_CREATE_AND_WRITE_OBJ: case SD_OP_DISCARD_OBJ: return K_WRITE;
	case SD_OP_FLUSH_VDI: return K_FLUSH;
	case SD_OP_NEW_VDI: case SD_OP_DEL_VDI: case SD_OP_LOCK_VDI: case SD_OP_RELEASE_VDI:
	case SD_OP_GET_VDI_INFO: case SD_OP_READ_VDIS: return K_VDI;
	case SD_OP_READ_PEER: return K_PEER_READ;
	case SD_OP_WRITE_PEER: case SD_OP_CREATE_AND_WRITE_PEER: case SD_OP_REMOVE_PEER: return K_PEER_WRITE;
	default: return K_OTHER;
	}
}

void node_stat_note(uint8_t opcode, uint32_t result, uint64_t bytes, uint64_t ns)
{
	struct kind_stat *k = &stats[kind_of(opcode)];
	uint64_t us = ns / 1000, max = atomic_load_explicit(&k->max_us, memory_order_relaxed);
	int b = 0;
	while (b < NR_BUCKETS - 1 && us >= (1ULL << b))
		b++;
	atomic_fetch_add_explicit(&k->count, 1, memory_order_relaxed);
	if (result != SD_RES_SUCCESS)
		atomic_fetch_add_explicit(&k->errors, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&k->bytes, bytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&k->sum_us, us, memory_order_relaxed);
	atomic_fetch_add_explicit(&k->bucket[b], 1, memory_order_relaxed);
	while (us > max && !atomic_compare_exchange_weak_explicit(&k->max_us, &max, us, memory_order_relaxed,
								  memory_order_relaxed))
		;
}

uint64_t node_stat_client_ops(void)
{
	static const enum stat_kind io_kinds[] = { K_READ, K_WRITE, K_FLUSH, K_PEER_READ, K_PEER_WRITE };
	uint64_t n = 0;
	for (size_t i = 0; i < sizeof(io_kinds) / sizeof(io_kinds[0]); i++)
		n += atomic_load_explicit(&stats[io_kinds[i]].count, memory_order_relaxed);
	return n;
}

/* the upper bound of the bucket that holds the q-th fraction of the samples */
static uint64_t percentile_us(const uint64_t *bucket, uint64_t count, double q)
{
	uint64_t want = (uint64_t)(count * q), seen = 0;
	for (int b = 0; b < NR_BUCKETS; b++) {
		seen += bucket[b];
		if (seen > want || (seen == count && bucket[b]))
			return 1ULL << b;
	}
	return 0;
}

int main_node_stat(const struct sd_req *rq, struct sd_rsp *rp, void *data)
{
	struct sd_node_stat out[K_NR];
	if (rq->data_length < sizeof(out))
		return SD_RES_BUFFER_SMALL;
	memset(out, 0, sizeof(out));
	for (int i = 0; i < K_NR; i++) {
		struct kind_stat *k = &stats[i];
		uint64_t bucket[NR_BUCKETS];
		for (int b = 0; b < NR_BUCKETS; b++)
			bucket[b] = atomic_load_explicit(&k->bucket[b], memory_order_relaxed);
		strncpy(out[i].name, kind_name[i], SD_STAT_NAME_LEN - 1);
		out[i].count = atomic_load_explicit(&k->count, memory_order_relaxed);
		out[i].errors = atomic_load_explicit(&k->errors, memory_order_relaxed);
		out[i].bytes = atomic_load_explicit(&k->bytes, memory_order_relaxed);
		out[i].max_us = atomic_load_explicit(&k->max_us, memory_order_relaxed);
		out[i].avg_us = out[i].count ? atomic_load_explicit(&k->sum_us, memory_order_relaxed) / out[i].count : 0;
		out[i].p50_us = percentile_us(bucket, out[i].count, 0.50);
		out[i].p99_us = percentile_us(bucket, out[i].count, 0.99);
	}
	memcpy(data, out, sizeof(out));
	rp->data_length = sizeof(out);
	return SD_RES_SUCCESS;
}
