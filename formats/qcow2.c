/* qcow2.c: the qcow2 driver's open-time validation (qemu 7.2's rules and messages), the L2 table
 * cache, the read path (contiguous host runs in one pread, compressed and encrypted clusters),
 * block status, info, internal snapshots and the driver table entry. Writing, allocation and
 * refcounts live in qcow2_write.c, image creation in qcow2_create.c, check in qcow2_check.c.
 * Locking: s->lock guards all metadata; data preads run without it. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

enum { QCOW2_MAP_UNALLOC, QCOW2_MAP_ZERO, QCOW2_MAP_ZERO_ALLOC, QCOW2_MAP_DATA, QCOW2_MAP_COMPRESSED };

#define QCOW2_L2_WAYS 4

static int qcow2_probe(const uint8_t *buf, size_t len, const char *spec)
{
	if (len < 8 || qcow2_be32(buf) != QCOW_MAGIC)
		return 0;
	uint32_t v = qcow2_be32(buf + 4);
	return (v == 2 || v == 3) ? 100 : 0;
}

/* ---- L2 cache: set-associative, QCOW2_L2_WAYS slots per set, LRU inside a set ------------- */

/* each table buffer is preceded by one word holding its slot's index */
struct qcow2_l2_slot *qcow2_l2_slot_of(struct qcow2_state *s, const uint64_t *table)
{
	return &s->l2_cache[table[-1]];
}

static void qcow2_l2_cache_free(struct qcow2_state *s)
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
		uint64_t entry = be64toh(table[s->ext_l2 ? 2 * idx : idx]);
		uint64_t hoff = entry & QCOW2_OFFSET_MASK;
		uint64_t in_unit = ((u + 1) << unit_bits) - (off + done);
		int t;
		uint64_t h = 0;

		if (in_unit > len - done)
			in_unit = len - done;
		if (entry & QCOW2_OFLAG_COMPRESSED) {
			if (s->data_store) {
				fmt_error("%s: compressed cluster in an image with an external data file", s->img->spec);
				return -EIO;
			}
			t = QCOW2_MAP_COMPRESSED;
			h = entry;
			if ((entry & s->coffset_mask) >= s->file_size) {
				fmt_error("%s: compressed cluster offset %#" PRIx64 " past end of file", s->img->spec,
					  entry & s->coffset_mask);
				return -EIO;
			}
		} else {
			if (s->ext_l2) {
				uint64_t bm = be64toh(table[2 * idx + 1]);
				uint32_t sc = u & 31;
				if (bm & (1ull << (32 + sc)))
					t = QCOW2_MAP_ZERO;
				else if (bm & (1ull << sc))
					t = QCOW2_MAP_DATA;
				else
					t = QCOW2_MAP_UNALLOC;
				if (t == QCOW2_MAP_DATA)
					h = hoff + ((uint64_t)sc << unit_bits);
			} else if (entry & QCOW2_OFLAG_ZERO) {
				if (s->version < 3) {
					fmt_error("%s: Zero cluster entry found in pre-v3 image (guest offset %" PRIu64 ")",
						  s->img->spec, off + done);
					return -EIO;
				}
				t = hoff ? QCOW2_MAP_ZERO_ALLOC : QCOW2_MAP_ZERO;
			} else if (hoff || (s->data_store && (entry & QCOW2_OFLAG_COPIED))) {
				t = QCOW2_MAP_DATA;
				h = hoff;
			} else {
				t = QCOW2_MAP_UNALLOC;
			}
			if (t == QCOW2_MAP_DATA) {
				if (hoff & (s->cluster_size - 1)) {
					fmt_error("%s: data cluster offset %#" PRIx64 " unaligned (guest offset %" PRIu64 ")",
						  s->img->spec, hoff, off + done);
					return -EIO;
				}
				if (!s->data_store && hoff >= s->file_size) {
					fmt_error("%s: data cluster offset %#" PRIx64 " past end of file (guest offset %" PRIu64 ")",
						  s->img->spec, hoff, off + done);
					return -EIO;
				}
				h += (off + done) & ((1ull << unit_bits) - 1);
			}
		}
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
			fmt_error("%s: image is encrypted; no key given (encrypt.key-secret)", s->img->spec);
			ret = -EACCES;
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

static int qcow2_read(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	return qcow2_read_unlocked_range(img->priv, buf, len, off);
}

static int qcow2_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *run)
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

/* ---- open --------------------------------------------------------------------------------- */

static int qcow2_parse_extensions(struct qcow2_state *s, const uint8_t *hdr, uint64_t start, uint64_t end)
{
	struct fmt_image *img = s->img;
	uint64_t pos = start;

	while (pos + 8 <= end) {
		uint32_t type = qcow2_be32(hdr + pos);
		uint32_t len = qcow2_be32(hdr + pos + 4);
		const uint8_t *data = hdr + pos + 8;

		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - pos - 8) {
			fmt_error("%s: header extension %#x too large (%u bytes)", img->spec, type, len);
			return -EINVAL;
		}
		switch (type) {
		case QCOW2_EXT_BACKING_FMT:
			free(img->backing_fmt);
			img->backing_fmt = strndup((const char *)data, len);
			break;
		case QCOW2_EXT_CRYPTO:
			if (s->crypt_method != QCOW2_CRYPT_LUKS) {
				fmt_error("%s: CRYPTO header extension only expected with LUKS encryption method",
					  img->spec);
				return -EINVAL;
			}
			if (len != 16) {
				fmt_error("%s: CRYPTO header extension size %u, but expected size 16", img->spec, len);
				return -EINVAL;
			}
			s->crypto_off = qcow2_be64(data);
			s->crypto_len = qcow2_be64(data + 8);
			if (s->crypto_off & (s->cluster_size - 1)) {
				fmt_error("%s: Encryption header offset '%" PRIu64 "' is not a multiple of cluster size '%u'",
					  img->spec, s->crypto_off, s->cluster_size);
				return -EINVAL;
			}
			break;
		case QCOW2_EXT_DATA_FILE:
			free(s->data_file);
			s->data_file = strndup((const char *)data, len);
			if (!s->data_file)
				return -ENOMEM;
			break;
		case QCOW2_EXT_BITMAPS:
			if (len != 24) {
				fmt_error("%s: bitmaps_ext: Invalid extension length", img->spec);
				return -EINVAL;
			}
			if (qcow2_be32(data + 4)) {
				fmt_error("%s: bitmaps_ext: Reserved field is not zero", img->spec);
				return -EINVAL;
			}
			s->bitmaps_nr = qcow2_be32(data);
			s->bitmaps_dir_size = qcow2_be64(data + 8);
			s->bitmaps_dir_off = qcow2_be64(data + 16);
			if (s->bitmaps_nr > 65535) {
				fmt_error("%s: bitmaps_ext: Image has %u bitmaps, exceeding the QEMU supported maximum of 65535",
					  img->spec, s->bitmaps_nr);
				return -EINVAL;
			}
			if (s->bitmaps_dir_off & (s->cluster_size - 1)) {
				fmt_error("%s: bitmaps_ext: invalid bitmap directory offset", img->spec);
				return -EINVAL;
			}
			/* kept verbatim when the header is rewritten */
			__attribute__((fallthrough));
		default:
			if (type != QCOW2_EXT_FEATURES) {
				uint64_t elen = 8 + ((len + 7ull) & ~7ull);
				if (elen > end - pos)
					elen = end - pos;
				uint8_t *n = realloc(s->unknown_ext, s->unknown_ext_len + elen);
				if (!n) {
					fmt_error("%s: out of memory", img->spec);
					return -ENOMEM;
				}
				memcpy(n + s->unknown_ext_len, hdr + pos, elen);
				s->unknown_ext = n;
				s->unknown_ext_len += elen;
			}
			break;
		}
		pos += 8 + ((len + 7ull) & ~7ull);
	}
	return 0;
}

static int qcow2_open_crypto(struct qcow2_state *s, const struct fmt_options *opts)
{
	struct fmt_image *img = s->img;
	const char *id = fmt_options_get(opts, "encrypt.key-secret");
	const char *pass = NULL;

	fmt_options_use(opts, "encrypt.key-secret");
	fmt_options_use(opts, "encrypt.format");
	img->encrypted = true;
	if (id) {
		pass = fmt_crypto_secret(img->spec, opts, "encrypt.key-secret");
		if (!pass)
			return -EINVAL;
	}
	if (s->crypt_method == QCOW2_CRYPT_AES) {
		if (!pass) {
			s->need_key = true;
			return 0;
		}
		s->cipher = fmt_cipher_new_qcow_aes(pass);
		return s->cipher ? 0 : -ENOMEM;
	}
	if (!s->crypto_off && !s->crypto_len) {
		fmt_error("%s: Missing CRYPTO header for crypt method 2", img->spec);
		return -EINVAL;
	}
	if (s->crypto_off >= s->file_size || s->crypto_len > s->file_size - s->crypto_off) {
		fmt_error("%s: LUKS header at offset %" PRIu64 " (%" PRIu64 " bytes) past end of file", img->spec,
			  s->crypto_off, s->crypto_len);
		return -EINVAL;
	}
	int ret = luks_open(img->store, img->spec, s->crypto_off, s->crypto_len, pass, &s->luks,
			    pass ? &s->cipher : NULL);
	if (ret < 0)
		return ret;
	if (!pass)
		s->need_key = true;
	return 0;
}

/* set the in_use flag of every persistent bitmap (we write without updating them) */
static int qcow2_bitmaps_mark_in_use(struct qcow2_state *s)
{
	uint64_t pos = 0;
	uint8_t *dir;
	int ret;

	if (!s->bitmaps_nr || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
		return 0;
	if (s->bitmaps_dir_size > (64u << 20) || s->bitmaps_dir_off >= s->file_size ||
	    s->bitmaps_dir_size > s->file_size - s->bitmaps_dir_off) {
		fmt_error("%s: bitmaps_ext: invalid bitmap directory offset", s->img->spec);
		return -EINVAL;
	}
	dir = malloc(s->bitmaps_dir_size + 1);
	if (!dir)
		return -ENOMEM;
	ret = fmt_store_pread(s->img->store, dir, s->bitmaps_dir_size, s->bitmaps_dir_off);
	for (uint32_t i = 0; ret >= 0 && i < s->bitmaps_nr; i++) {
		if (pos + 24 > s->bitmaps_dir_size) {
			fmt_error("%s: bitmap directory truncated", s->img->spec);
			ret = -EINVAL;
			break;
		}
		qcow2_put32(dir + pos + 12, qcow2_be32(dir + pos + 12) | 1);
		pos += (24 + qcow2_be32(dir + pos + 20) + qcow2_be16(dir + pos + 18) + 7) & ~7ull;
	}
	if (ret >= 0)
		ret = fmt_store_pwrite(s->img->store, dir, s->bitmaps_dir_size, s->bitmaps_dir_off);
	free(dir);
	return ret < 0 ? ret : 0;
}

/* everything the state owns, for a failed open (any part may be missing) and for close */
static void qcow2_state_free(struct fmt_image *img)
{
	struct qcow2_state *s = img->priv;

	img->priv = NULL;
	if (s->data_store)
		fmt_store_close(s->data_store);
	free(s->data_file);
	fmt_cipher_free(s->cipher);
	if (s->l2_cache)
		qcow2_l2_cache_free(s);
	qcow2_free_refcounts(s);
	free(s->l1);
	free(s->unknown_ext);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int qcow2_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct qcow2_state *s;
	uint8_t *hdr = NULL;
	uint8_t first[112];
	int ret = -EINVAL;
	const char *name = img->spec;

	s = calloc(1, sizeof(*s));
	if (!s) {
		fmt_error("%s: out of memory", name);
		return -ENOMEM;
	}
	s->img = img;
	pthread_mutex_init(&s->lock, NULL);
	img->priv = s;
	s->file_size = img->store->size;
	s->disk_end = s->file_size;

	memset(first, 0, sizeof(first));
	if (s->file_size < 72) {
		fmt_error("%s: qcow2 header truncated (file is %" PRIu64 " bytes)", name, s->file_size);
		goto fail;
	}
	ret = fmt_store_pread(img->store, first, sizeof(first), 0);
	if (ret < 0)
		goto fail;
	ret = -EINVAL;
	if (qcow2_be32(first) != QCOW_MAGIC) {
		fmt_error("%s: Image is not in qcow2 format", name);
		goto fail;
	}
	s->version = qcow2_be32(first + 4);
	if (s->version < 2 || s->version > 3) {
		fmt_error("%s: Unsupported qcow2 version %u", name, s->version);
		goto fail;
	}
	s->cluster_bits = qcow2_be32(first + 20);
	if (s->cluster_bits < 9 || s->cluster_bits > 21) {
		fmt_error("%s: Unsupported cluster size: 2^%u", name, s->cluster_bits);
		goto fail;
	}
	s->cluster_size = 1u << s->cluster_bits;
	if (s->version == 2) {
		s->refcount_order = 4;
		s->header_length = 72;
	} else {
		s->incompat = qcow2_be64(first + 72);
		s->compat = qcow2_be64(first + 80);
		s->autoclear = qcow2_be64(first + 88);
		s->refcount_order = qcow2_be32(first + 96);
		s->header_length = qcow2_be32(first + 100);
		if (s->header_length < 104) {
			fmt_error("%s: qcow2 header too short", name);
			goto fail;
		}
		if (s->header_length > s->cluster_size) {
			fmt_error("%s: qcow2 header exceeds cluster size", name);
			goto fail;
		}
		if (s->header_length > 104)
			s->compression_type = first[104];
	}
	if (s->file_size < s->header_length) {
		fmt_error("%s: qcow2 header truncated (file is %" PRIu64 " bytes)", name, s->file_size);
		goto fail;
	}
	/* the whole of cluster 0 holds the header, its extensions and the backing file name */
	hdr = calloc(1, s->cluster_size);
	if (!hdr) {
		fmt_error("%s: out of memory", name);
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, hdr, s->cluster_size, 0);
	if (ret < 0)
		goto fail;
	ret = -EINVAL;

	if (s->incompat & ~QCOW2_INCOMPAT_KNOWN) {
		uint64_t unknown = s->incompat & ~QCOW2_INCOMPAT_KNOWN;
		fmt_error("%s: Unsupported qcow2 feature(s): Unknown incompatible feature: %" PRIx64, name, unknown);
		ret = -ENOTSUP;
		goto fail;
	}
	if (s->compression_type && !(s->incompat & QCOW2_INCOMPAT_COMPRESSION)) {
		fmt_error("%s: qcow2: Compression type incompatible feature bit must be set", name);
		goto fail;
	}
	if (!s->compression_type && (s->incompat & QCOW2_INCOMPAT_COMPRESSION)) {
		fmt_error("%s: qcow2: Compression type incompatible feature bit must not be set", name);
		goto fail;
	}
	if (s->compression_type > 1) {
		fmt_error("%s: qcow2: unknown compression type: %u", name, s->compression_type);
		goto fail;
	}
	if (s->refcount_order > 6) {
		fmt_error("%s: Reference count entry width too large; may not exceed 64 bits", name);
		goto fail;
	}
	s->ext_l2 = !!(s->incompat & QCOW2_INCOMPAT_EXTL2);
	if (s->ext_l2 && s->cluster_bits < 14) {
		fmt_error("%s: Unsupported subcluster size", name);
		goto fail;
	}
	s->l2_entries = s->cluster_size / (s->ext_l2 ? 16 : 8);
	s->l2_bits = s->cluster_bits - (s->ext_l2 ? 4 : 3);
	s->subcluster_size = s->ext_l2 ? s->cluster_size / 32 : s->cluster_size;
	s->csize_shift = 62 - (s->cluster_bits - 8);
	s->csize_mask = (1ull << (s->cluster_bits - 8)) - 1;
	s->coffset_mask = (1ull << s->csize_shift) - 1;

	s->crypt_method = qcow2_be32(hdr + 32);
	if (s->crypt_method > 2) {
		fmt_error("%s: Unsupported encryption method %u", name, s->crypt_method);
		goto fail;
	}
	ret = qcow2_parse_extensions(s, hdr, s->header_length, s->cluster_size);
	if (ret < 0)
		goto fail;
	ret = -EINVAL;

	s->size = qcow2_be64(hdr + 24);
	s->l1_size = qcow2_be32(hdr + 36);
	s->l1_offset = qcow2_be64(hdr + 40);
	s->rt_offset = qcow2_be64(hdr + 48);
	s->rt_clusters = qcow2_be32(hdr + 56);
	s->nb_snapshots = qcow2_be32(hdr + 60);
	s->snapshots_offset = qcow2_be64(hdr + 64);

	if (s->rt_clusters == 0) {
		fmt_error("%s: Image does not contain a reference count table", name);
		goto fail;
	}
	if ((uint64_t)s->rt_clusters << s->cluster_bits > QCOW2_MAX_RT_BYTES) {
		fmt_error("%s: Reference count table too large", name);
		goto fail;
	}
	if (s->rt_offset & (s->cluster_size - 1) || s->rt_offset == 0) {
		fmt_error("%s: Reference count table offset invalid", name);
		goto fail;
	}
	if (s->rt_offset >= s->file_size) {
		fmt_error("%s: Reference count table offset %#" PRIx64 " past end of file", name, s->rt_offset);
		goto fail;
	}
	s->rt_size = ((uint64_t)s->rt_clusters << s->cluster_bits) / 8;
	s->refs_per_block = (uint64_t)s->cluster_size * 8 >> s->refcount_order;
	if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
		fmt_error("%s: Snapshot table too large", name);
		goto fail;
	}
	if (s->nb_snapshots && (s->snapshots_offset & (s->cluster_size - 1))) {
		fmt_error("%s: Snapshot table offset invalid", name);
		goto fail;
	}
	if (s->nb_snapshots && s->snapshots_offset >= s->file_size) {
		fmt_error("%s: Snapshot table offset %#" PRIx64 " past end of file", name, s->snapshots_offset);
		goto fail;
	}
	if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
		fmt_error("%s: Active L1 table too large", name);
		goto fail;
	}
	if (s->l1_size && (s->l1_offset & (s->cluster_size - 1))) {
		fmt_error("%s: Active L1 table offset invalid", name);
		goto fail;
	}
	{
		uint64_t shift = s->cluster_bits + s->l2_bits;
		uint64_t need;
		if (s->size > (1ull << 62)) {
			fmt_error("%s: Image is too big", name);
			goto fail;
		}
		need = (s->size + (1ull << shift) - 1) >> shift;
		if (need > INT_MAX / 8) {
			fmt_error("%s: Image is too big", name);
			goto fail;
		}
		if (s->l1_size < need) {
			fmt_error("%s: L1 table is too small", name);
			goto fail;
		}
	}
	if (s->l1_size && (s->l1_offset >= s->file_size ||
			   (uint64_t)s->l1_size * 8 > s->file_size - s->l1_offset)) {
		fmt_error("%s: Active L1 table offset %#" PRIx64 " past end of file", name, s->l1_offset);
		goto fail;
	}

	/* backing file name */
	{
		uint64_t boff = qcow2_be64(hdr + 8);
		uint32_t blen = qcow2_be32(hdr + 16);
		if (boff) {
			if (boff > s->cluster_size) {
				fmt_error("%s: Invalid backing file offset", name);
				goto fail;
			}
			if (blen > QCOW2_MAX_BACKING_NAME || blen > s->cluster_size - boff) {
				fmt_error("%s: Backing file name too long", name);
				goto fail;
			}
			if (blen) {
				img->backing_spec = strndup((const char *)hdr + boff, blen);
				if (!img->backing_spec) {
					ret = -ENOMEM;
					goto fail;
				}
			}
		}
	}

	if ((s->incompat & QCOW2_INCOMPAT_CORRUPT) && img->writable) {
		fmt_error("%s: qcow2: Image is corrupt; cannot be opened read/write", name);
		goto fail;
	}
	if (s->incompat & QCOW2_INCOMPAT_DATA_FILE) {
		char *path;
		if (!s->data_file || !*s->data_file) {
			fmt_error("%s: 'data-file' is required for this image", name);
			goto fail;
		}
		if (img->writable) {
			fmt_error("%s: writing images with an external data file is not supported", name);
			ret = -ENOTSUP;
			goto fail;
		}
		path = fmt_store_sibling(img->spec, s->data_file);
		if (!path) {
			ret = -ENOMEM;
			goto fail;
		}
		ret = fmt_store_open(path, FMT_STORE_RDONLY, &s->data_store);
		free(path);
		if (ret < 0)
			goto fail;
		ret = -EINVAL;
	}
	if (s->ext_l2 && img->writable) {
		fmt_error("%s: writing images with extended L2 entries is not supported", name);
		ret = -ENOTSUP;
		goto fail;
	}

	/* L1 table */
	s->l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	if (!s->l1) {
		fmt_error("%s: out of memory for the L1 table", name);
		ret = -ENOMEM;
		goto fail;
	}
	if (s->l1_size) {
		ret = fmt_store_pread(img->store, s->l1, (size_t)s->l1_size * 8, s->l1_offset);
		if (ret < 0)
			goto fail;
		for (uint32_t i = 0; i < s->l1_size; i++)
			s->l1[i] = be64toh(s->l1[i]);
	}

	/* L2 cache: ~8 MiB (at least one set of QCOW2_L2_WAYS tables), bounded in count */
	s->l2_cache_slots = (8u << 20) >> s->cluster_bits;
	if (s->l2_cache_slots < QCOW2_L2_WAYS)
		s->l2_cache_slots = QCOW2_L2_WAYS;
	if (s->l2_cache_slots > 4096)
		s->l2_cache_slots = 4096;
	s->l2_cache = calloc(s->l2_cache_slots, sizeof(*s->l2_cache));
	if (!s->l2_cache) {
		ret = -ENOMEM;
		fmt_error("%s: out of memory", name);
		goto fail;
	}

	if (s->crypt_method) {
		ret = qcow2_open_crypto(s, opts);
		if (ret < 0)
			goto fail;
	}
	if (img->writable && (s->incompat & QCOW2_INCOMPAT_DIRTY)) {
		/* lazy refcounts left stale: rebuild them, as qemu does on a read/write open */
		ret = qcow2_rebuild_refcounts(s);
		if (ret < 0)
			goto fail;
	}
	if (img->writable) {
		ret = s->rt ? 0 : qcow2_load_refcounts(s, NULL);
		if (ret < 0)
			goto fail;
		/* a writer clears the autoclear bits of what it does not maintain; persistent
		 * bitmaps stay (their clusters stay referenced) but are marked in use: stale */
		ret = qcow2_bitmaps_mark_in_use(s);
		if (ret < 0)
			goto fail;
		if (s->autoclear & ~QCOW2_AUTOCLEAR_BITMAPS) {
			s->autoclear &= QCOW2_AUTOCLEAR_BITMAPS;
			s->header_dirty = true;
		}
	}

	img->virtual_size = s->size;
	img->cluster_size = s->cluster_size;
	free(hdr);
	return 0;

fail:
	free(hdr);
	qcow2_state_free(img);
	return ret;
}

static void qcow2_close(struct fmt_image *img)
{
	if (!img->priv)
		return;
	if (img->writable && !qcow2_flush(img))
		fmt_store_flush(img->store);
	qcow2_state_free(img);
}

/* ---- header rewrite ------------------------------------------------------------------------ */

static size_t qcow2_put_ext(uint8_t *p, uint32_t type, const void *data, uint32_t len)
{
	qcow2_put32(p, type);
	qcow2_put32(p + 4, len);
	memcpy(p + 8, data, len);
	size_t padded = (len + 7u) & ~7u;
	memset(p + 8 + len, 0, padded - len);
	return 8 + padded;
}

static const struct { uint8_t type, bit; const char *name; } qcow2_feature_names[] = {
	{ 0, 0, "dirty bit" }, { 0, 1, "corrupt bit" }, { 0, 2, "external data file" },
	{ 0, 3, "compression type" }, { 0, 4, "extended L2 entries" }, { 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" }, { 2, 1, "raw external data" },
};

/* Write cluster 0 from the state: header fields, extensions (backing format, crypto, feature
 * names when they fit, the ones we kept), end marker, backing file name. */
int qcow2_write_header(struct qcow2_state *s)
{
	struct fmt_image *img = s->img;
	uint8_t *h = calloc(1, s->cluster_size);
	size_t pos, blen = img->backing_spec ? strlen(img->backing_spec) : 0;
	int ret;

	if (!h) {
		fmt_error("%s: out of memory", img->spec);
		return -ENOMEM;
	}
	qcow2_put32(h, QCOW_MAGIC);
	qcow2_put32(h + 4, s->version);
	qcow2_put32(h + 20, s->cluster_bits);
	qcow2_put64(h + 24, s->size);
	qcow2_put32(h + 32, s->crypt_method);
	qcow2_put32(h + 36, s->l1_size);
	qcow2_put64(h + 40, s->l1_offset);
	qcow2_put64(h + 48, s->rt_offset);
	qcow2_put32(h + 56, s->rt_clusters);
	qcow2_put32(h + 60, s->nb_snapshots);
	qcow2_put64(h + 64, s->snapshots_offset);
	if (s->version >= 3) {
		qcow2_put64(h + 72, s->incompat);
		qcow2_put64(h + 80, s->compat);
		qcow2_put64(h + 88, s->autoclear);
		qcow2_put32(h + 96, s->refcount_order);
		if (s->header_length < 112)
			s->header_length = 112;
		qcow2_put32(h + 100, s->header_length);
		h[104] = s->compression_type;
		pos = s->header_length;
	} else {
		pos = 72;
	}

	size_t need = pos + 8 + blen + s->unknown_ext_len;
	if (img->backing_fmt)
		need += 8 + ((strlen(img->backing_fmt) + 7) & ~7ul);
	if (s->crypt_method == QCOW2_CRYPT_LUKS)
		need += 24;
	if (need > s->cluster_size) {
		fmt_error("%s: header and backing file name do not fit in one cluster", img->spec);
		free(h);
		return -EINVAL;
	}
	if (img->backing_fmt)
		pos += qcow2_put_ext(h + pos, QCOW2_EXT_BACKING_FMT, img->backing_fmt, strlen(img->backing_fmt));
	if (s->crypt_method == QCOW2_CRYPT_LUKS) {
		uint8_t c[16];
		qcow2_put64(c, s->crypto_off);
		qcow2_put64(c + 8, s->crypto_len);
		pos += qcow2_put_ext(h + pos, QCOW2_EXT_CRYPTO, c, 16);
	}
	if (s->version >= 3 && need + 8 + 48 * 8 <= s->cluster_size) {
		uint8_t t[48 * 8];
		memset(t, 0, sizeof(t));
		for (size_t i = 0; i < 8; i++) {
			t[48 * i] = qcow2_feature_names[i].type;
			t[48 * i + 1] = qcow2_feature_names[i].bit;
			strncpy((char *)t + 48 * i + 2, qcow2_feature_names[i].name, 45);
		}
		pos += qcow2_put_ext(h + pos, QCOW2_EXT_FEATURES, t, sizeof(t));
	}
	if (s->unknown_ext_len)
		memcpy(h + pos, s->unknown_ext, s->unknown_ext_len);
	pos += s->unknown_ext_len;
	pos += 8;  /* end marker: already zero */
	if (blen) {
		qcow2_put64(h + 8, pos);
		qcow2_put32(h + 16, blen);
		memcpy(h + pos, img->backing_spec, blen);
		pos += blen;
	}
	ret = fmt_store_pwrite(img->store, h, pos, 0);
	if (ret >= 0)
		qcow2_note_write(s, pos);
	if (ret >= 0)
		s->header_dirty = false;
	free(h);
	return ret < 0 ? ret : 0;
}

/* ---- snapshots ----------------------------------------------------------------------------- */

struct qcow2_snap_entry {
	struct fmt_snapshot pub;
	uint64_t l1_offset;
	uint32_t l1_size;
};

/* parse the snapshot table; *out is malloc'd (nb_snapshots entries) */
static int qcow2_read_snapshots(struct qcow2_state *s, struct qcow2_snap_entry **out)
{
	struct fmt_image *img = s->img;
	struct qcow2_snap_entry *list = NULL;
	uint8_t *tab = NULL;
	uint64_t tab_len = 64ull << 20, pos = 0;
	int ret;

	*out = NULL;
	if (!s->nb_snapshots)
		return 0;
	if (tab_len > s->file_size - s->snapshots_offset)
		tab_len = s->file_size - s->snapshots_offset;
	tab = malloc(tab_len);
	list = calloc(s->nb_snapshots, sizeof(*list));
	if (!tab || !list) {
		fmt_error("%s: out of memory for the snapshot table", img->spec);
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, tab, tab_len, s->snapshots_offset);
	if (ret < 0)
		goto fail;
	ret = -EINVAL;
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		struct qcow2_snap_entry *e = &list[i];
		if (pos + 40 > tab_len)
			goto truncated;
		const uint8_t *p = tab + pos;
		e->l1_offset = qcow2_be64(p);
		e->l1_size = qcow2_be32(p + 8);
		uint16_t id_len = qcow2_be16(p + 12), name_len = qcow2_be16(p + 14);
		e->pub.date_sec = qcow2_be32(p + 16);
		e->pub.date_nsec = qcow2_be32(p + 20);
		e->pub.vm_clock_nsec = qcow2_be64(p + 24);
		e->pub.vm_state_size = qcow2_be32(p + 32);
		uint32_t extra = qcow2_be32(p + 36);
		e->pub.disk_size = s->size;
		if (extra > 1024) {
			fmt_error("%s: Too much extra metadata in snapshot table entry %u", img->spec, i);
			goto fail;
		}
		if (pos + 40 + extra + id_len + name_len > tab_len)
			goto truncated;
		if (extra >= 8)
			e->pub.vm_state_size = qcow2_be64(p + 40);
		if (extra >= 16)
			e->pub.disk_size = qcow2_be64(p + 48);
		if (extra >= 24)
			e->pub.icount_valid = qcow2_be64(p + 56) != UINT64_MAX;
		size_t n = id_len < sizeof(e->pub.id) - 1 ? id_len : sizeof(e->pub.id) - 1;
		memcpy(e->pub.id, p + 40 + extra, n);
		n = name_len < sizeof(e->pub.name) - 1 ? name_len : sizeof(e->pub.name) - 1;
		memcpy(e->pub.name, p + 40 + extra + id_len, n);
		if ((uint64_t)e->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
			fmt_error("%s: Snapshot L1 table too large", img->spec);
			goto fail;
		}
		if (e->l1_offset & (s->cluster_size - 1)) {
			fmt_error("%s: Snapshot L1 table offset invalid", img->spec);
			goto fail;
		}
		pos += (40 + extra + id_len + name_len + 7) & ~7ull;
	}
	free(tab);
	*out = list;
	return 0;
truncated:
	fmt_error("%s: snapshot table truncated or past end of file", img->spec);
fail:
	free(tab);
	free(list);
	return ret;
}

static int qcow2_snapshots(struct fmt_image *img, struct fmt_snapshot **out, int *nr)
{
	struct qcow2_state *s = img->priv;
	struct qcow2_snap_entry *list;
	int ret = qcow2_read_snapshots(s, &list);

	*out = NULL;
	*nr = 0;
	if (ret < 0 || !s->nb_snapshots)
		return ret;
	*out = calloc(s->nb_snapshots, sizeof(**out));
	if (!*out) {
		free(list);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->nb_snapshots; i++)
		(*out)[i] = list[i].pub;
	*nr = s->nb_snapshots;
	free(list);
	return 0;
}

static int qcow2_snapshot_load(struct fmt_image *img, const char *id_or_name)
{
	struct qcow2_state *s = img->priv;
	struct qcow2_snap_entry *list, *e = NULL;
	const char *want_id = NULL, *want_name = NULL;
	int ret = qcow2_read_snapshots(s, &list);

	if (ret < 0)
		return ret;
	/* "snapshot.id=X,snapshot.name=Y" or a bare id-or-name */
	char *copy = strdup(id_or_name), *tok, *save = NULL;
	if (!copy) {
		free(list);
		return -ENOMEM;
	}
	if (strstr(copy, "snapshot.")) {
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (!strncmp(tok, "snapshot.id=", 12))
				want_id = tok + 12;
			else if (!strncmp(tok, "snapshot.name=", 14))
				want_name = tok + 14;
		}
	}
	for (uint32_t i = 0; i < s->nb_snapshots && !e; i++) {
		struct qcow2_snap_entry *c = &list[i];
		if (want_id || want_name) {
			if ((!want_id || !strcmp(c->pub.id, want_id)) && (!want_name || !strcmp(c->pub.name, want_name)))
				e = c;
		} else if (!strcmp(c->pub.id, id_or_name)) {
			e = c;
		}
	}
	for (uint32_t i = 0; i < s->nb_snapshots && !e && !want_id && !want_name; i++)
		if (!strcmp(list[i].pub.name, id_or_name))
			e = &list[i];
	free(copy);
	if (!e) {
		fmt_error("%s: Failed to load snapshot: Can't find snapshot '%s'", img->spec, id_or_name);
		free(list);
		return -ENOENT;
	}
	uint64_t shift = s->cluster_bits + s->l2_bits;
	uint64_t dsize = e->pub.disk_size;
	uint64_t need = (dsize + (1ull << shift) - 1) >> shift;
	if (e->l1_size < need || dsize > (1ull << 62)) {
		fmt_error("%s: snapshot '%s': L1 table is too small", img->spec, id_or_name);
		free(list);
		return -EINVAL;
	}
	if (e->l1_size && (e->l1_offset >= s->file_size || (uint64_t)e->l1_size * 8 > s->file_size - e->l1_offset)) {
		fmt_error("%s: snapshot '%s': L1 table past end of file", img->spec, id_or_name);
		free(list);
		return -EINVAL;
	}
	uint64_t *l1 = calloc(e->l1_size ? e->l1_size : 1, 8);
	if (!l1) {
		free(list);
		return -ENOMEM;
	}
	ret = e->l1_size ? fmt_store_pread(img->store, l1, (size_t)e->l1_size * 8, e->l1_offset) : 0;
	if (ret < 0) {
		free(l1);
		free(list);
		return ret;
	}
	for (uint32_t i = 0; i < e->l1_size; i++)
		l1[i] = be64toh(l1[i]);
	pthread_mutex_lock(&s->lock);
	free(s->l1);
	s->l1 = l1;
	s->l1_size = e->l1_size;
	pthread_mutex_unlock(&s->lock);
	img->virtual_size = dsize;
	img->writable = false;
	free(list);
	return 0;
}

/* ---- info ---------------------------------------------------------------------------------- */

static int qcow2_info(struct fmt_image *img, void (*emit)(void *ctx, const char *key, const char *value), void *ctx)
{
	struct qcow2_state *s = img->priv;
	char buf[64];

	emit(ctx, "compat", s->version >= 3 ? "1.1" : "0.10");
	emit(ctx, "compression-type", s->compression_type == QCOW2_COMPRESS_ZSTD ? "zstd" : "zlib");
	if (s->version >= 3) {
		emit(ctx, "lazy-refcounts", (s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS) ? "true" : "false");
	}
	snprintf(buf, sizeof(buf), "%u", 1u << s->refcount_order);
	emit(ctx, "refcount-bits", buf);
	if (s->version >= 3) {   /* qemu shows these for v3 only */
		emit(ctx, "corrupt", (s->incompat & QCOW2_INCOMPAT_CORRUPT) ? "true" : "false");
		emit(ctx, "extended-l2", s->ext_l2 ? "true" : "false");
	}
	if (s->crypt_method == QCOW2_CRYPT_AES) {
		emit(ctx, "encrypt.format", "aes");
	} else if (s->crypt_method == QCOW2_CRYPT_LUKS) {
		emit(ctx, "encrypt.format", "luks");
		snprintf(buf, sizeof(buf), "%s-%u", s->luks.cipher_name, s->luks.key_bytes * (strstr(s->luks.cipher_mode, "xts") ? 4 : 8));
		emit(ctx, "encrypt.cipher-alg", buf);
		snprintf(buf, sizeof(buf), "%.31s", s->luks.cipher_mode);
		char *dash = strchr(buf, '-');
		if (dash)
			*dash = 0;
		emit(ctx, "encrypt.cipher-mode", buf);
		dash = strchr(s->luks.cipher_mode, '-');
		emit(ctx, "encrypt.ivgen-alg", dash ? dash + 1 : "plain64");
		emit(ctx, "encrypt.hash-alg", s->luks.hash_spec);
		emit(ctx, "encrypt.uuid", s->luks.uuid);
		snprintf(buf, sizeof(buf), "%" PRIu64, (uint64_t)s->luks.payload_offset * 512);
		emit(ctx, "encrypt.payload-offset", buf);
		snprintf(buf, sizeof(buf), "%u", s->luks.mk_iterations);
		emit(ctx, "encrypt.master-key-iters", buf);
	}
	return 0;
}

const struct fmt_driver fmt_qcow2_driver = {
	.name = "qcow2",
	.flags = FMT_DRV_WRITE | FMT_DRV_CREATE | FMT_DRV_COMPRESS | FMT_DRV_THREADS,
	.probe = qcow2_probe,
	.open = qcow2_open,
	.read = qcow2_read,
	.write = qcow2_write,
	.write_compressed = qcow2_write_compressed,
	.block_status = qcow2_block_status,
	.create = qcow2_create,
	.info = qcow2_info,
	.check = qcow2_check,
	.snapshots = qcow2_snapshots,
	.snapshot_load = qcow2_snapshot_load,
	.flush = qcow2_flush,
	.close = qcow2_close,
};
