/* gateway_ec.c: the data objects of an erasure-coded VDI. A data object of size Z is cut into D
 * contiguous data strips of Z/D bytes (strip i = bytes [i*Z/D, (i+1)*Z/D)) and P parity strips of
 * the same size; byte k of every strip is one Reed-Solomon codeword (lib/ec.c), so any column
 * range [lo, hi) of the strips encodes and decodes on its own. Strip i is the store object
 * ec_strip_oid(oid, i) on the i-th node the data object picks on the ring (obj_pick_nodes).
 *
 * Reads go to the data strips that hold the range; a strip that cannot be read (holder gone,
 * checksum failure, not yet recovered anywhere) is decoded from any D strips of the same column
 * at once, without waiting for the membership. A write reads the column of the other data strips
 * (decoding if needed), lays the new bytes over it, encodes the parity of the column and writes
 * the changed data strip and every parity strip in one parallel fan-out; the reply comes when every
 * placed strip has it. Writes to one object are serialised here (one gateway writes a VDI: the
 * VDI lock), so two read-modify-writes never interleave. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ec.h"
#include "internal_proto.h"
#include "logger.h"
#include "sd_client.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "alloc.h"
#include "cluster_view.h"
#include "gateway.h"
#include "peer.h"
#include "vdi_state.h"

#define EC_RETRY_SECONDS 60
#define EC_LOCKS 256

static pthread_mutex_t ec_locks[EC_LOCKS] = { [0 ... EC_LOCKS - 1] = PTHREAD_MUTEX_INITIALIZER };

static pthread_mutex_t *object_lock(uint64_t oid)
{
	return &ec_locks[sd_hash_oid(oid) % EC_LOCKS];
}

struct ec_layout {
	const struct ec_codec *codec;
	int d, p, n;
	uint32_t strip_size;
};

/* the strips of data object oid (or of its strip) under policy */
static int layout_for(uint64_t oid, uint8_t policy, struct ec_layout *l)
{
	l->codec = ec_codec_get(policy);
	if (!l->codec)
		return SD_RES_INVALID_PARMS;
	l->d = ec_policy_data(policy);
	l->p = ec_policy_parity(policy);
	l->n = l->d + l->p;
	l->strip_size = (uint32_t)(obj_size_of(ec_strip_base(oid)) / l->d);
	return SD_RES_SUCCESS;
}

/* ... under its VDI's policy */
static int layout_of(uint64_t oid, struct ec_layout *l)
{
	return layout_for(oid, oid_copy_policy(oid), l);
}

static bool retryable(int res)
{
	return res == SD_RES_OLD_NODE_VER || res == SD_RES_NEW_NODE_VER || res == SD_RES_NETWORK_ERROR ||
	       res == SD_RES_WAIT_FOR_JOIN || res == SD_RES_KILLED;
}

/* One pass over the ring vi: fill col[i] for every wanted strip i with its bytes [lo, lo + len),
 * reading the strip itself unless it is `exclude`, and decoding the others from any D strips.
 * SD_RES_AGAIN when too few strips answered and some failure may pass with the membership. */
static int columns_once(const struct vnode_info *vi, uint64_t oid, const struct ec_layout *l, uint32_t lo,
			uint32_t len, const bool *want, uint8_t **col, int exclude, uint16_t flags)
{
	enum { UNTRIED, GOOD, BAD } state[EC_MAX_STRIPS] = { UNTRIED };
	int why[EC_MAX_STRIPS] = { 0 };
	uint8_t *buf[EC_MAX_STRIPS] = { NULL }, *tmp = NULL;
	int nr_good = 0, nr_no_obj = 0, nr_retry = 0, err = SD_RES_SUCCESS, ret;
	int nr_wanted_bad = 0;

	for (int i = 0; i < l->n; i++) {
		if (!want[i])
			continue;
		buf[i] = col[i];
		if (i == exclude) {
			state[i] = BAD;
			nr_wanted_bad++;
			continue;
		}
		ret = gateway_read_once(vi, ec_strip_oid(oid, i), col[i], len, lo, flags);
		why[i] = ret;
		state[i] = ret == SD_RES_SUCCESS ? GOOD : BAD;
		if (ret == SD_RES_SUCCESS) {
			nr_good++;
			continue;
		}
		nr_wanted_bad++;
		nr_no_obj += ret == SD_RES_NO_OBJ;
		nr_retry += retryable(ret);
		if (ret != SD_RES_NO_OBJ && !retryable(ret))
			err = ret;
	}
	if (!nr_wanted_bad)
		return SD_RES_SUCCESS;
	tmp = xmalloc((size_t)l->n * len);
	for (int i = 0; i < l->n && nr_good < l->d; i++) {
		if (state[i] != UNTRIED || i == exclude)
			continue;
		buf[i] = tmp + (size_t)i * len;
		ret = gateway_read_once(vi, ec_strip_oid(oid, i), buf[i], len, lo, flags);
		why[i] = ret;
		state[i] = ret == SD_RES_SUCCESS ? GOOD : BAD;
		if (ret == SD_RES_SUCCESS) {
			nr_good++;
			continue;
		}
		nr_no_obj += ret == SD_RES_NO_OBJ;
		nr_retry += retryable(ret);
		if (ret != SD_RES_NO_OBJ && !retryable(ret))
			err = ret;
	}
	if (nr_good < l->d) {
		ret = nr_no_obj == l->n - (exclude >= 0) ? SD_RES_NO_OBJ
		    : nr_retry ? SD_RES_AGAIN : err != SD_RES_SUCCESS ? err : SD_RES_EIO;
		if (ret != SD_RES_NO_OBJ && ret != SD_RES_AGAIN)
			sd_err("ec %016" PRIx64 ": %d of %d strips readable at epoch %u (%d missing), %d needed: %s "
			       "(strip results %x %x %x %x %x %x ...)", oid, nr_good, l->n, sys_epoch(), nr_no_obj, l->d,
			       sd_strerror(ret), why[0], why[1], why[2], why[3], why[4], why[5]);
		goto out;
	}
	int have_idx[EC_MAX_DATA] = { 0 }, wanted[EC_MAX_STRIPS] = { 0 }, nr_have = 0, nr_out = 0;
	uint8_t *have[EC_MAX_DATA] = { NULL }, *out[EC_MAX_STRIPS] = { NULL };
	for (int i = 0; i < l->n; i++) {
		if (state[i] == GOOD && nr_have < l->d) {
			have_idx[nr_have] = i;
			have[nr_have++] = buf[i];
		}
		if (want[i] && state[i] == BAD) {
			wanted[nr_out] = i;
			out[nr_out++] = col[i];
		}
	}
	ret = ec_decode(l->codec, len, have_idx, have, nr_out, wanted, out) ? SD_RES_EIO : SD_RES_SUCCESS;
	if (ret == SD_RES_SUCCESS)
		sd_debug("ec %016" PRIx64 ": decoded %d strips of [%u, %u) from %d others", oid, nr_out, lo, lo + len,
			 l->d);
out:
	free(tmp);
	return ret;
}

static int read_columns(uint64_t oid, const struct ec_layout *l, uint32_t lo, uint32_t len, const bool *want,
			uint8_t **col, int exclude, uint16_t flags)
{
	uint64_t deadline = now_ns() + EC_RETRY_SECONDS * 1000000000ull;
	for (;;) {
		struct vnode_info *vi = get_vnode_info();
		uint32_t epoch = sys_epoch();
		int ret = columns_once(vi, oid, l, lo, len, want, col, exclude, flags);
		put_vnode_info(vi);
		if (ret != SD_RES_AGAIN)
			return ret;
		if (now_ns() > deadline || sys->shutting_down)
			return SD_RES_EIO;
		for (int i = 0; i < 100 && sys_epoch() == epoch; i++)
			usleep(10000);
	}
}

int gateway_ec_read(uint64_t oid, void *buf, uint32_t len, uint32_t offset, uint16_t flags)
{
	struct ec_layout l;
	int ret = layout_of(oid, &l);
	for (uint32_t done = 0; ret == SD_RES_SUCCESS && done < len;) {
		uint64_t pos = (uint64_t)offset + done;
		int i = (int)(pos / l.strip_size);
		uint32_t so = (uint32_t)(pos % l.strip_size), piece = MIN(len - done, l.strip_size - so);
		bool want[EC_MAX_STRIPS] = { false };
		uint8_t *col[EC_MAX_STRIPS] = { NULL };
		if (i >= l.d)
			return SD_RES_INVALID_PARMS;
		want[i] = true;
		col[i] = (uint8_t *)buf + done;
		ret = read_columns(oid, &l, so, piece, want, col, -1, flags);
		done += piece;
	}
	return ret;
}

static int strip_read(uint64_t strip, void *buf, uint32_t len, uint32_t offset, uint16_t flags, bool rebuild)
{
	uint64_t oid = ec_strip_base(strip);
	int i = ec_strip_index(strip);
	struct ec_layout l;
	int ret = layout_of(oid, &l);
	if (ret)
		return ret;
	if (i >= l.n || (uint64_t)offset + len > l.strip_size)
		return SD_RES_INVALID_PARMS;
	bool want[EC_MAX_STRIPS] = { false };
	uint8_t *col[EC_MAX_STRIPS] = { NULL };
	want[i] = true;
	col[i] = buf;
	return read_columns(oid, &l, offset, len, want, col, rebuild ? i : -1, flags);
}

int gateway_ec_read_strip(uint64_t strip, void *buf, uint32_t len, uint32_t offset, uint16_t flags)
{
	return strip_read(strip, buf, len, offset, flags, false);
}

int gateway_ec_rebuild_strip(uint64_t strip, void *buf, uint32_t len, uint32_t offset, uint16_t flags)
{
	return strip_read(strip, buf, len, offset, flags, true);
}

struct ec_piece {
	int strip;
	uint32_t so, len;
	const uint8_t *src;
};

static int write_layout(uint64_t oid, const struct ec_layout *lp, const void *buf, uint32_t len, uint32_t offset,
			bool create, bool sync)
{
	const struct ec_layout l = *lp;
	struct ec_piece pieces[EC_MAX_DATA];
	struct gateway_target t[EC_MAX_STRIPS];
	int ret = SD_RES_SUCCESS, nr_pieces = 0, nr_t = 0;
	if ((uint64_t)offset + len > (uint64_t)l.strip_size * l.d)
		return SD_RES_INVALID_PARMS;
	uint32_t lo = l.strip_size, hi = 0;
	for (uint32_t done = 0; done < len;) {
		uint64_t pos = (uint64_t)offset + done;
		struct ec_piece *p = &pieces[nr_pieces++];
		p->strip = (int)(pos / l.strip_size);
		p->so = (uint32_t)(pos % l.strip_size);
		p->len = MIN(len - done, l.strip_size - p->so);
		p->src = (const uint8_t *)buf + done;
		lo = MIN(lo, p->so);
		hi = MAX(hi, p->so + p->len);
		done += p->len;
	}
	if (!nr_pieces)
		lo = hi = 0;
	uint32_t width = hi - lo;
	uint8_t *cols = xmalloc((size_t)l.n * width + 1), *col[EC_MAX_STRIPS];
	for (int i = 0; i < l.n; i++)
		col[i] = cols + (size_t)i * width;

	pthread_mutex_lock(object_lock(oid));
	if (create) {
		memset(cols, 0, (size_t)l.d * width);
	} else {
		/* the column of every data strip the write does not wholly replace */
		bool want[EC_MAX_STRIPS] = { false }, any = false;
		for (int i = 0; i < l.d; i++)
			want[i] = true;
		for (int k = 0; k < nr_pieces; k++)
			if (pieces[k].so == lo && pieces[k].len == width)
				want[pieces[k].strip] = false;
		for (int i = 0; i < l.d; i++)
			any |= want[i];
		if (any && (ret = read_columns(oid, &l, lo, width, want, col, -1, 0)) != SD_RES_SUCCESS)
			goto out;
	}
	for (int k = 0; k < nr_pieces; k++)
		memcpy(col[pieces[k].strip] + (pieces[k].so - lo), pieces[k].src, pieces[k].len);
	ec_encode(l.codec, width, col, col + l.d);

	for (int i = 0; i < l.d; i++) {
		int k;
		for (k = 0; k < nr_pieces && pieces[k].strip != i; k++)
			;
		if (k < nr_pieces)
			t[nr_t++] = (struct gateway_target){ .oid = ec_strip_oid(oid, i), .buf = col[i] + (pieces[k].so - lo),
							     .len = pieces[k].len, .offset = pieces[k].so };
		else if (create)
			t[nr_t++] = (struct gateway_target){ .oid = ec_strip_oid(oid, i) };
	}
	for (int j = 0; j < l.p; j++)
		t[nr_t++] = (struct gateway_target){ .oid = ec_strip_oid(oid, l.d + j), .buf = col[l.d + j],
						     .len = width, .offset = lo };
	ret = gateway_fanout(create ? SD_OP_CREATE_AND_WRITE_PEER : SD_OP_WRITE_PEER,
			     create ? peer_create_and_write : peer_write, sync ? 0 : SD_FLAG_CMD_CACHE, t, nr_t);
out:
	pthread_mutex_unlock(object_lock(oid));
	free(cols);
	return ret;
}

int gateway_ec_write(uint64_t oid, const void *buf, uint32_t len, uint32_t offset, bool create, bool sync)
{
	struct ec_layout l;
	int ret = layout_of(oid, &l);
	return ret ? ret : write_layout(oid, &l, buf, len, offset, create, sync);
}

static int remove_layout(uint64_t oid, const struct ec_layout *l)
{
	struct gateway_target t[EC_MAX_STRIPS];
	for (int i = 0; i < l->n; i++)
		t[i] = (struct gateway_target){ .oid = ec_strip_oid(oid, i) };
	pthread_mutex_lock(object_lock(oid));
	int ret = gateway_fanout(SD_OP_REMOVE_PEER, peer_remove, 0, t, l->n);
	pthread_mutex_unlock(object_lock(oid));
	return ret;
}

int gateway_ec_remove(uint64_t oid)
{
	struct ec_layout l;
	int ret = layout_of(oid, &l);
	return ret ? ret : remove_layout(oid, &l);
}

/* alter-copy: the strips of a whole data object under a given policy, whatever its VDI's policy
 * says now (the layout in transit places them: vdi_state.c). buf is the whole object. */
int gateway_ec_create_as(uint64_t oid, uint8_t policy, const void *buf, bool sync)
{
	struct ec_layout l;
	if (is_ec_strip(oid) || layout_for(oid, policy, &l))
		return SD_RES_INVALID_PARMS;
	return write_layout(oid, &l, buf, l.strip_size * (uint32_t)l.d, 0, true, sync);
}

/* alter-copy: remove the strips a data object has under a given policy */
int gateway_ec_remove_as(uint64_t oid, uint8_t policy)
{
	struct ec_layout l;
	if (is_ec_strip(oid) || layout_for(oid, policy, &l))
		return SD_RES_INVALID_PARMS;
	return remove_layout(oid, &l);
}
