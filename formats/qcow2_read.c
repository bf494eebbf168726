/* qcow2_read.c: the qcow2 read path: guest offsets mapped through L1 and L2 (contiguous host runs
 * in one pread), compressed and encrypted clusters, reads of the backing chain for runs this
 * layer does not hold, and block status. Data preads run without s->lock. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_state.h"

enum { QCOW2_MAP_UNALLOC, QCOW2_MAP_ZERO, QCOW2_MAP_ZERO_ALLOC, QCOW2_MAP_DATA, QCOW2_MAP_COMPRESSED };

/* L1 entry -> checked L2 offset (0 = none) */
static int qcow2_l2_offset(struct qcow2_state *s, const uint64_t *l1, uint64_t l1_index, uint64_t *l2_off)
{
	uint64_t off = l1[l1_index] & QCOW2_OFFSET_MASK;
	*l2_off = off;
	if (!off)
		return 0;
	if (off & (s->cluster_size - 1)) {
		fmt_error("%s: L2 table offset %#" PRIx64 " unaligned (L1 index %" PRIu64 ")", s->img->spec,
			  off, l1_index);
		return -EIO;
	}
	if (off >= s->file_size) {
		fmt_error("%s: L2 table offset %#" PRIx64 " past end of file (L1 index %" PRIu64 ")",
			  s->img->spec, off, l1_index);
		return -EIO;
	}
	return 0;
}

/* what unit u (a cluster, or a subcluster with extended L2) of guest offset guest is: *type
 * (QCOW2_MAP_*) and, for data and compressed units, *host (guest's byte in the file, or the
 * compressed entry); bad entries are errors */
static int qcow2_map_unit(struct qcow2_state *s, const uint64_t *table, uint64_t idx, uint64_t u,
			  uint32_t unit_bits, uint64_t guest, int *type, uint64_t *host)
{
	uint64_t entry = be64toh(table[s->ext_l2 ? 2 * idx : idx]);
	uint64_t hoff = entry & QCOW2_OFFSET_MASK;

	*host = 0;
	if (entry & QCOW2_OFLAG_COMPRESSED) {
		if (s->data_store) {
			fmt_error("%s: compressed cluster in an image with an external data file", s->img->spec);
			return -EIO;
		}
		if ((entry & s->coffset_mask) >= s->file_size) {
			fmt_error("%s: compressed cluster offset %#" PRIx64 " past end of file", s->img->spec,
				  entry & s->coffset_mask);
			return -EIO;
		}
		*type = QCOW2_MAP_COMPRESSED;
		*host = entry;
		return 0;
	}
	if (s->ext_l2) {
		uint64_t bm = be64toh(table[2 * idx + 1]);
		uint32_t sc = u & 31;
		if (bm & (1ull << (32 + sc)))
			*type = QCOW2_MAP_ZERO;
		else if (bm & (1ull << sc))
			*type = QCOW2_MAP_DATA;
		else
			*type = QCOW2_MAP_UNALLOC;
		if (*type == QCOW2_MAP_DATA)
			*host = hoff + ((uint64_t)sc << unit_bits);
	} else if (entry & QCOW2_OFLAG_ZERO) {
		if (s->version < 3) {
			fmt_error("%s: Zero cluster entry found in pre-v3 image (guest offset %" PRIu64 ")",
				  s->img->spec, guest);
			return -EIO;
		}
		*type = hoff ? QCOW2_MAP_ZERO_ALLOC : QCOW2_MAP_ZERO;
	} else if (hoff || (s->data_store && (entry & QCOW2_OFLAG_COPIED))) {
		*type = QCOW2_MAP_DATA;
		*host = hoff;
	} else {
		*type = QCOW2_MAP_UNALLOC;
	}
	if (*type != QCOW2_MAP_DATA)
		return 0;
	if (hoff & (s->cluster_size - 1)) {
		fmt_error("%s: data cluster offset %#" PRIx64 " unaligned (guest offset %" PRIu64 ")", s->img->spec,
			  hoff, guest);
		return -EIO;
	}
	if (!s->data_store && hoff >= s->file_size) {
		fmt_error("%s: data cluster offset %#" PRIx64 " past end of file (guest offset %" PRIu64 ")",
			  s->img->spec, hoff, guest);
		return -EIO;
	}
	*host += guest & ((1ull << unit_bits) - 1);
	return 0;
}

/* Map the run starting at guest offset off (at most len bytes, not crossing an L2 table):
 * *type, *host (DATA: host offset of off; COMPRESSED: the L2 entry) and *run. Lock held. */
static int qcow2_map(struct qcow2_state *s, const uint64_t *l1, uint64_t off, uint64_t len,
		     int *type, uint64_t *host, uint64_t *run)
{
	uint64_t cluster = off >> s->cluster_bits;
	uint64_t l1_index = cluster >> s->l2_bits;
	uint64_t table_end = (l1_index + 1) << (s->l2_bits + s->cluster_bits);
	uint64_t orig_end = off + len;
	uint64_t l2_off, *table;
	int ret;

	if (len > table_end - off)
		len = table_end - off;
	*host = 0;
	if (l1_index >= s->l1_size) {
		*type = QCOW2_MAP_UNALLOC;
		*run = orig_end - off;
		return 0;
	}
	ret = qcow2_l2_offset(s, l1, l1_index, &l2_off);
	if (ret < 0)
		return ret;
	if (!l2_off) {
		/* unallocated: extend over the following empty L1 entries */
		uint64_t span = 1ull << (s->l2_bits + s->cluster_bits), end = off + len;
		while (++l1_index < s->l1_size && !(l1[l1_index] & QCOW2_OFFSET_MASK) && table_end < orig_end) {
			table_end += span;
			end = table_end < orig_end ? table_end : orig_end;
		}
		if (l1_index >= s->l1_size)
			end = orig_end;
		*type = QCOW2_MAP_UNALLOC;
		*run = end - off;
		return 0;
	}
	ret = qcow2_l2_load(s, l2_off, &table);
	if (ret < 0)
		return ret;

	/* one unit is a cluster, or a subcluster with extended L2 */
	uint32_t unit_bits = s->ext_l2 ? s->cluster_bits - 5 : s->cluster_bits;
	uint64_t done = 0;
	int first_type = -1;
	uint64_t first_host = 0;

	while (done < len) {
		uint64_t u = (off + done) >> unit_bits;
		uint64_t c = u >> (s->ext_l2 ? 5 : 0);
		uint64_t idx = c & (s->l2_entries - 1);
		uint64_t in_unit = ((u + 1) << unit_bits) - (off + done);
		int t;
		uint64_t h;

		if (in_unit > len - done)
			in_unit = len - done;
		ret = qcow2_map_unit(s, table, idx, u, unit_bits, off + done, &t, &h);
		if (ret < 0)
			return ret;
		if (first_type < 0) {
			first_type = t;
			first_host = h;
		} else if (t != first_type || t == QCOW2_MAP_COMPRESSED ||
			   (t == QCOW2_MAP_DATA && h != first_host + done)) {
			break;
		}
		done += in_unit;
		if (t == QCOW2_MAP_COMPRESSED)
			break;
	}
	*type = first_type;
	*host = first_host;
	*run = done;
	return 0;
}

/* Read and decompress the cluster of compressed L2 entry `entry` into out (one cluster). */
int qcow2_read_compressed(struct qcow2_state *s, uint64_t entry, void *out)
{
	uint64_t coff = entry & s->coffset_mask;
	uint64_t nsect = ((entry >> s->csize_shift) & s->csize_mask) + 1;
	uint64_t start = coff & ~511ull;
	size_t clen = nsect * 512 - (coff - start);
	uint8_t *cbuf;
	int ret;

	if (s->crypt_method) {
		fmt_error("%s: compressed cluster in an encrypted image", s->img->spec);
		return -EIO;
	}
	if (coff + clen > s->file_size) {  /* the last sector may be partial at the end of file */
		if (coff >= s->file_size)
			goto past_end;
		clen = s->file_size - coff;
	}
	cbuf = malloc(clen);
	if (!cbuf) {
		fmt_error("%s: out of memory", s->img->spec);
		return -ENOMEM;
	}
	ret = fmt_store_pread(s->img->store, cbuf, clen, coff);
	if (ret >= 0) {
		ret = qcow2_decompress(s->compression_type, out, s->cluster_size, cbuf, clen);
		if (ret < 0)
			fmt_error("%s: corrupt compressed cluster at offset %#" PRIx64, s->img->spec, coff);
	}
	free(cbuf);
	return ret < 0 ? ret : 0;
past_end:
	fmt_error("%s: compressed cluster offset %#" PRIx64 " past end of file", s->img->spec, coff);
	return -EIO;
}

/* host data at host for guest off, decrypting when the image is encrypted */
static int qcow2_read_data(struct qcow2_state *s, uint8_t *buf, size_t len, uint64_t host, uint64_t off)
{
	struct fmt_store *st = s->data_store ? s->data_store : s->img->store;

	if (!s->cipher)
		return fmt_store_pread(st, buf, len, host);
	return fmt_cipher_pread(s->cipher, st, buf, len, host, s->crypt_method == QCOW2_CRYPT_AES ? off : host);
}

/* the read path: one mapping lookup per run, the data read without the lock */
int qcow2_read_unlocked_range(struct qcow2_state *s, void *vbuf, size_t len, uint64_t off)
{
	uint8_t *buf = vbuf;
	uint8_t *cbuf = NULL;
	int ret = 0;

	while (len) {
		int type;
		uint64_t host, run;

		pthread_mutex_lock(&s->lock);
		if (s->need_key) {
			pthread_mutex_unlock(&s->lock);
			ret = fmt_cipher_no_key(s->img->spec, "encrypt.key-secret");
			goto out;
		}
		ret = qcow2_map(s, s->l1, off, len, &type, &host, &run);
		pthread_mutex_unlock(&s->lock);
		if (ret < 0)
			goto out;
		switch (type) {
		case QCOW2_MAP_UNALLOC:
			ret = fmt_image_read_backing(s->img, buf, run, off);
			break;
		case QCOW2_MAP_ZERO:
		case QCOW2_MAP_ZERO_ALLOC:
			memset(buf, 0, run);
			ret = 0;
			break;
		case QCOW2_MAP_DATA:
			ret = qcow2_read_data(s, buf, run, host, off);
			break;
		case QCOW2_MAP_COMPRESSED: {
			uint64_t in = off & (s->cluster_size - 1);
			if (!in && run == s->cluster_size) {
				ret = qcow2_read_compressed(s, host, buf);
				break;
			}
			if (!cbuf && !(cbuf = malloc(s->cluster_size))) {
				fmt_error("%s: out of memory", s->img->spec);
				ret = -ENOMEM;
				goto out;
			}
			ret = qcow2_read_compressed(s, host, cbuf);
			if (ret >= 0)
				memcpy(buf, cbuf + in, run);
			break;
		}
		}
		if (ret < 0)
			goto out;
		buf += run;
		off += run;
		len -= run;
	}
out:
	free(cbuf);
	return ret < 0 ? ret : 0;
}

int qcow2_read(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	return qcow2_read_unlocked_range(img->priv, buf, len, off);
}

int qcow2_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *run)
{
	struct qcow2_state *s = img->priv;
	int type, ret;
	uint64_t host, total = 0;

	pthread_mutex_lock(&s->lock);
	ret = qcow2_map(s, s->l1, off, len, &type, &host, run);
	/* merge following runs of the same kind (DATA runs need not be host-contiguous here) */
	while (ret >= 0 && type != QCOW2_MAP_COMPRESSED) {
		int t2;
		uint64_t r2;
		total += *run;
		if (total >= len || off + total >= img->virtual_size)
			break;
		if (qcow2_map(s, s->l1, off + total, len - total, &t2, &host, &r2) < 0 ||
		    t2 != type)
			break;
		*run = r2;
	}
	pthread_mutex_unlock(&s->lock);
	if (ret < 0)
		return ret;
	if (type != QCOW2_MAP_COMPRESSED)
		*run = total;
	switch (type) {
	case QCOW2_MAP_UNALLOC:
		*bits = img->backing ? 0 : FMT_BS_ZERO;
		break;
	case QCOW2_MAP_ZERO:
	case QCOW2_MAP_ZERO_ALLOC:   /* zero flag with a cluster kept: qemu's map says zero, no data */
		*bits = FMT_BS_ZERO | FMT_BS_ALLOCATED;
		break;
	case QCOW2_MAP_DATA:
		*bits = FMT_BS_DATA | FMT_BS_ALLOCATED;
		break;
	default:
		*bits = FMT_BS_DATA | FMT_BS_ALLOCATED | FMT_BS_COMPRESSED;
		break;
	}
	if (*run > len)
		*run = len;
	return 0;
}
