/* qcow.c: the qcow (version 1) format: 48-byte big-endian header, backing file name, one L1
 * table of L2 table offsets, L2 tables of cluster offsets (bit 63 = compressed, with the byte
 * length above the offset), raw deflate (-12) compression and legacy AES-128-CBC encryption
 * with guest-sector plain64 IVs. No refcounts: new L2 tables and clusters are appended at the
 * cluster-aligned end of the file; L2 entry updates are written through at once. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "crypto.h"
#include "qcow2_compress.h"

#define QCOW_HDR_SIZE        48
#define QCOW_OFLAG_COMPRESSED (1ull << 63)
#define QCOW_L2_CACHE        256

struct qcow_l2_slot {
	uint64_t l1_index;
	uint64_t offset;   /* 0 = empty */
	uint64_t *table;   /* big-endian */
};

struct qcow_state {
	struct fmt_image *img;
	pthread_mutex_t lock;
	uint32_t cluster_bits, cluster_size, l2_bits, l2_size;
	uint64_t size;
	uint32_t crypt_method;
	uint64_t l1_offset;
	uint32_t l1_size;
	uint64_t *l1;          /* host-endian */
	uint64_t coffset_mask;
	uint64_t file_size;    /* append point is the cluster-aligned end */
	struct qcow_l2_slot cache[QCOW_L2_CACHE];
	struct fmt_cipher *cipher;
	bool need_key;
};

static int qcow_probe(const uint8_t *buf, size_t len, const char *spec)
{
	return len >= 8 && fmt_be32(buf) == QCOW_MAGIC && fmt_be32(buf + 4) == 1 ? 100 : 0;
}

static void qcow_free(struct qcow_state *s)
{
	for (int i = 0; i < QCOW_L2_CACHE; i++)
		free(s->cache[i].table);
	fmt_cipher_free(s->cipher);
	free(s->l1);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int qcow_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct qcow_state *s = calloc(1, sizeof(*s));
	uint8_t h[QCOW_HDR_SIZE];
	const char *name = img->spec;
	int ret = -EINVAL;

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->img = img;
	s->file_size = img->store->size;
	if (s->file_size < QCOW_HDR_SIZE) {
		fmt_error("%s: qcow header truncated (file is %" PRIu64 " bytes)", name, s->file_size);
		goto fail;
	}
	ret = fmt_store_pread(img->store, h, sizeof(h), 0);
	if (ret < 0)
		goto fail;
	ret = -EINVAL;
	if (fmt_be32(h) != QCOW_MAGIC) {
		fmt_error("%s: Image not in qcow format", name);
		goto fail;
	}
	if (fmt_be32(h + 4) != 1) {
		fmt_error("%s: qcow (v1) does not support qcow version %u; Try the 'qcow2' driver instead", name,
			  fmt_be32(h + 4));
		ret = -ENOTSUP;
		goto fail;
	}
	s->size = fmt_be64(h + 24);
	s->cluster_bits = h[32];
	s->l2_bits = h[33];
	s->crypt_method = fmt_be32(h + 36);
	s->l1_offset = fmt_be64(h + 40);
	if (s->size <= 1) {
		fmt_error("%s: Image size is too small (must be at least 2 bytes)", name);
		goto fail;
	}
	if (s->cluster_bits < 9 || s->cluster_bits > 16) {
		fmt_error("%s: Cluster size must be between 512 and 64k", name);
		goto fail;
	}
	if (s->l2_bits < 6 || s->l2_bits > 13) {
		fmt_error("%s: L2 table size must be between 512 and 64k", name);
		goto fail;
	}
	if (s->crypt_method > 1) {
		fmt_error("%s: invalid encryption method in qcow header", name);
		goto fail;
	}
	s->cluster_size = 1u << s->cluster_bits;
	s->l2_size = 1u << s->l2_bits;
	s->coffset_mask = (1ull << (63 - s->cluster_bits)) - 1;
	uint32_t shift = s->cluster_bits + s->l2_bits;
	if (s->size > (1ull << 62)) {
		fmt_error("%s: Image too large", name);
		goto fail;
	}
	uint64_t l1 = (s->size + (1ull << shift) - 1) >> shift;
	if (l1 > INT_MAX / 8) {
		fmt_error("%s: Image too large", name);
		goto fail;
	}
	s->l1_size = l1;
	if (s->l1_offset < QCOW_HDR_SIZE || s->l1_offset >= s->file_size ||
	    (uint64_t)s->l1_size * 8 > s->file_size - s->l1_offset) {
		fmt_error("%s: L1 table offset %#" PRIx64 " invalid or past end of file", name, s->l1_offset);
		goto fail;
	}
	/* backing file name */
	uint64_t boff = fmt_be64(h + 8);
	uint32_t blen = fmt_be32(h + 16);
	if (boff) {
		if (blen > 1023 || boff >= s->file_size || blen > s->file_size - boff) {
			fmt_error("%s: Backing file name too long or past end of file", name);
			goto fail;
		}
		img->backing_spec = calloc(1, blen + 1);
		if (!img->backing_spec) {
			ret = -ENOMEM;
			goto fail;
		}
		ret = fmt_store_pread(img->store, img->backing_spec, blen, boff);
		if (ret < 0)
			goto fail;
		ret = -EINVAL;
	}
	s->l1 = calloc(s->l1_size + 1, 8);
	if (!s->l1) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, s->l1, (size_t)s->l1_size * 8, s->l1_offset);
	if (ret < 0)
		goto fail;
	for (uint32_t i = 0; i < s->l1_size; i++)
		s->l1[i] = be64toh(s->l1[i]);
	if (s->crypt_method) {
		img->encrypted = true;
		fmt_options_use(opts, "encrypt.key-secret");
		fmt_options_use(opts, "encrypt.format");
		if (fmt_options_get(opts, "encrypt.key-secret")) {
			const char *pass = fmt_crypto_secret(name, opts, "encrypt.key-secret");
			if (!pass) {
				ret = -EINVAL;
				goto fail;
			}
			s->cipher = fmt_cipher_new_qcow_aes(pass);
			if (!s->cipher) {
				ret = -ENOMEM;
				goto fail;
			}
		} else {
			s->need_key = true;
		}
	}
	img->virtual_size = s->size;
	img->cluster_size = s->cluster_size;
	img->priv = s;
	return 0;
fail:
	qcow_free(s);
	return ret;
}

static void qcow_close(struct fmt_image *img)
{
	if (img->priv)
		qcow_free(img->priv);
	img->priv = NULL;
}

/* the L2 table of l1_index (NULL if none); lock held */
static int qcow_l2(struct qcow_state *s, uint64_t l1_index, uint64_t **table)
{
	uint64_t off = s->l1[l1_index];
	struct qcow_l2_slot *slot = &s->cache[l1_index % QCOW_L2_CACHE];
	size_t bytes = (size_t)s->l2_size * 8;

	*table = NULL;
	if (!off)
		return 0;
	if (slot->offset == off && slot->l1_index == l1_index) {
		*table = slot->table;
		return 0;
	}
	if (off >= s->file_size || bytes > s->file_size - off) {
		fmt_error("%s: L2 table offset %#" PRIx64 " past end of file (L1 index %" PRIu64 ")", s->img->spec,
			  off, l1_index);
		return -EIO;
	}
	if (!slot->table && !(slot->table = malloc(bytes)))
		return -ENOMEM;
	slot->offset = 0;
	int ret = fmt_store_pread(s->img->store, slot->table, bytes, off);
	if (ret < 0)
		return ret;
	slot->offset = off;
	slot->l1_index = l1_index;
	*table = slot->table;
	return 0;
}

enum { QCOW_UNALLOC, QCOW_DATA, QCOW_COMPRESSED };

/* the run at off: type, host offset (or compressed entry) and length; lock held */
static int qcow_map(struct qcow_state *s, uint64_t off, uint64_t len, int *type, uint64_t *host, uint64_t *run)
{
	uint64_t cluster = off >> s->cluster_bits;
	uint64_t l1_index = cluster >> s->l2_bits;
	uint64_t *t;
	int ret = qcow_l2(s, l1_index, &t);
	uint64_t table_end = (l1_index + 1) << (s->l2_bits + s->cluster_bits);

	if (ret < 0)
		return ret;
	if (len > table_end - off)
		len = table_end - off;
	if (!t) {
		*type = QCOW_UNALLOC;
		*host = 0;
		*run = len;
		return 0;
	}
	uint64_t done = 0;
	*type = -1;
	while (done < len) {
		uint64_t c = (off + done) >> s->cluster_bits;
		uint64_t e = be64toh(t[c & (s->l2_size - 1)]);
		uint64_t in = (off + done) & (s->cluster_size - 1);
		uint64_t n = s->cluster_size - in < len - done ? s->cluster_size - in : len - done;
		int ty = !e ? QCOW_UNALLOC : (e & QCOW_OFLAG_COMPRESSED) ? QCOW_COMPRESSED : QCOW_DATA;
		uint64_t h = ty == QCOW_DATA ? e + in : e;

		if (ty == QCOW_DATA && ((e & (s->cluster_size - 1)) || e >= s->file_size)) {
			fmt_error("%s: cluster offset %#" PRIx64 " unaligned or past end of file", s->img->spec, e);
			return -EIO;
		}
		if (*type < 0) {
			*type = ty;
			*host = h;
		} else if (ty != *type || ty == QCOW_COMPRESSED || (ty == QCOW_DATA && h != *host + done)) {
			break;
		}
		done += n;
		if (ty == QCOW_COMPRESSED)
			break;
	}
	*run = done;
	return 0;
}

static int qcow_read_compressed(struct qcow_state *s, uint64_t e, uint8_t *out)
{
	uint64_t coff = e & s->coffset_mask;
	uint64_t csize = (e & ~QCOW_OFLAG_COMPRESSED) >> (63 - s->cluster_bits);
	int ret;

	if (coff >= s->file_size || csize > s->file_size - coff || csize == 0 || csize > 2ull * s->cluster_size) {
		fmt_error("%s: compressed cluster at %#" PRIx64 " (%" PRIu64 " bytes) invalid or past end of file",
			  s->img->spec, coff, csize);
		return -EIO;
	}
	uint8_t *c = malloc(csize);
	if (!c)
		return -ENOMEM;
	ret = fmt_store_pread(s->img->store, c, csize, coff);
	if (ret >= 0 && qcow2_decompress(QCOW2_COMPRESS_ZLIB, out, s->cluster_size, c, csize) < 0) {
		fmt_error("%s: corrupt compressed cluster at offset %#" PRIx64, s->img->spec, coff);
		ret = -EIO;
	}
	free(c);
	return ret < 0 ? ret : 0;
}

static int qcow_read(struct fmt_image *img, void *vbuf, size_t len, uint64_t off)
{
	struct qcow_state *s = img->priv;
	uint8_t *buf = vbuf, *tmp = NULL;
	int ret = 0;

	while (len) {
		int type;
		uint64_t host, run;
		pthread_mutex_lock(&s->lock);
		ret = s->need_key ? fmt_cipher_no_key(img->spec, "encrypt.key-secret")
				  : qcow_map(s, off, len, &type, &host, &run);
		pthread_mutex_unlock(&s->lock);
		if (ret < 0)
			break;
		if (type == QCOW_UNALLOC) {
			ret = fmt_image_read_backing(img, buf, run, off);
		} else if (type == QCOW_COMPRESSED || s->cipher) {
			/* whole clusters through a bounce buffer */
			uint64_t in = off & (s->cluster_size - 1);
			if (type == QCOW_DATA && run > s->cluster_size - in)
				run = s->cluster_size - in;
			if (!tmp && !(tmp = malloc(s->cluster_size))) {
				ret = -ENOMEM;
				break;
			}
			if (type == QCOW_COMPRESSED) {
				ret = qcow_read_compressed(s, host, tmp);
			} else {
				ret = fmt_store_pread(img->store, tmp, s->cluster_size, host - in);
				if (ret >= 0)
					ret = fmt_cipher_crypt(s->cipher, false, tmp, s->cluster_size, (off - in) >> 9);
			}
			if (ret >= 0)
				memcpy(buf, tmp + in, run);
		} else {
			ret = fmt_store_pread(img->store, buf, run, host);
		}
		if (ret < 0)
			break;
		buf += run;
		off += run;
		len -= run;
	}
	free(tmp);
	return ret < 0 ? ret : 0;
}

static int qcow_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits, uint64_t *run)
{
	struct qcow_state *s = img->priv;
	int type, ret;
	uint64_t host;

	pthread_mutex_lock(&s->lock);
	ret = qcow_map(s, off, len, &type, &host, run);
	pthread_mutex_unlock(&s->lock);
	if (ret < 0)
		return ret;
	if (type == QCOW_UNALLOC)
		*bits = img->backing ? 0 : FMT_BS_ZERO;
	else
		*bits = FMT_BS_DATA | FMT_BS_ALLOCATED | (type == QCOW_COMPRESSED ? FMT_BS_COMPRESSED : 0);
	return 0;
}

/* ---- writing ---------------------------------------------------------------------------------- */

static uint64_t qcow_append(struct qcow_state *s, uint64_t len)
{
	uint64_t at = (s->file_size + s->cluster_size - 1) & ~(uint64_t)(s->cluster_size - 1);
	s->file_size = at + len;
	return at;
}

static int qcow_pwrite(struct qcow_state *s, const void *buf, size_t len, uint64_t off)
{
	int ret = fmt_store_pwrite(s->img->store, buf, len, off);
	if (ret >= 0 && off + len > s->file_size)
		s->file_size = off + len;
	return ret < 0 ? ret : 0;
}

/* the L2 table for l1_index, allocated when missing; lock held */
static int qcow_l2_for_write(struct qcow_state *s, uint64_t l1_index, uint64_t **table)
{
	int ret;

	if (!s->l1[l1_index]) {
		size_t bytes = (size_t)s->l2_size * 8;
		uint64_t at = qcow_append(s, bytes);
		uint8_t *z = calloc(1, bytes);
		uint64_t be = htobe64(at);
		if (!z)
			return -ENOMEM;
		ret = qcow_pwrite(s, z, bytes, at);
		free(z);
		if (ret >= 0)
			ret = qcow_pwrite(s, &be, 8, s->l1_offset + l1_index * 8);
		if (ret < 0)
			return ret;
		s->l1[l1_index] = at;
	}
	return qcow_l2(s, l1_index, table);
}

static int qcow_set_entry(struct qcow_state *s, uint64_t *table, uint64_t l1_index, uint64_t idx, uint64_t v)
{
	table[idx] = htobe64(v);
	return qcow_pwrite(s, &table[idx], 8, s->l1[l1_index] + idx * 8);
}

static int qcow_write_locked(struct qcow_state *s, const uint8_t *buf, size_t len, uint64_t off)
{
	struct fmt_image *img = s->img;
	uint8_t *tmp = NULL;
	int ret = 0;

	while (len) {
		uint64_t cluster = off >> s->cluster_bits;
		uint64_t l1_index = cluster >> s->l2_bits, idx = cluster & (s->l2_size - 1);
		uint64_t in = off & (s->cluster_size - 1);
		uint64_t n = s->cluster_size - in < len ? s->cluster_size - in : len;
		uint64_t *t;

		ret = qcow_l2_for_write(s, l1_index, &t);
		if (ret < 0)
			break;
		uint64_t e = be64toh(t[idx]);
		bool full = n == s->cluster_size;

		if (e && !(e & QCOW_OFLAG_COMPRESSED) && !s->cipher) {
			/* in place; extend over following clusters that are host-contiguous */
			if ((e & (s->cluster_size - 1)) || e >= s->file_size) {
				fmt_error("%s: cluster offset %#" PRIx64 " invalid", img->spec, e);
				ret = -EIO;
				break;
			}
			while (n < len && idx + 1 < s->l2_size && len - n >= s->cluster_size &&
			       be64toh(t[idx + 1]) == e + s->cluster_size) {
				idx++;
				e += s->cluster_size;
				n += s->cluster_size;
			}
			ret = qcow_pwrite(s, buf, n, be64toh(t[(cluster & (s->l2_size - 1))]) + in);
		} else if (!e && full && !s->cipher) {
			/* run of unallocated whole clusters: one append, one write */
			uint64_t k = 1;
			while (idx + k < s->l2_size && (k + 1) * s->cluster_size <= len && !t[idx + k])
				k++;
			n = k * s->cluster_size;
			uint64_t at = qcow_append(s, n);
			ret = qcow_pwrite(s, buf, n, at);
			for (uint64_t i = 0; ret >= 0 && i < k; i++)
				ret = qcow_l2(s, l1_index, &t) < 0 ? -EIO :
				      qcow_set_entry(s, t, l1_index, idx + i, at + i * s->cluster_size);
		} else {
			/* one cluster through a buffer: old contents, new bytes, (encrypt), write */
			if (!tmp && !(tmp = malloc(s->cluster_size))) {
				ret = -ENOMEM;
				break;
			}
			uint64_t guest = off - in;
			if (!full) {
				if (!e)
					ret = fmt_image_read_backing(img, tmp, s->cluster_size, guest);
				else if (e & QCOW_OFLAG_COMPRESSED)
					ret = qcow_read_compressed(s, e, tmp);
				else {
					ret = fmt_store_pread(img->store, tmp, s->cluster_size, e);
					if (ret >= 0)
						ret = fmt_cipher_crypt(s->cipher, false, tmp, s->cluster_size, guest >> 9);
				}
				if (ret < 0)
					break;
			}
			memcpy(tmp + in, buf, n);
			if (s->cipher && (ret = fmt_cipher_crypt(s->cipher, true, tmp, s->cluster_size, guest >> 9)) < 0)
				break;
			uint64_t at = (e && !(e & QCOW_OFLAG_COMPRESSED)) ? e : qcow_append(s, s->cluster_size);
			ret = qcow_pwrite(s, tmp, s->cluster_size, at);
			if (ret >= 0 && at != e) {
				ret = qcow_l2(s, l1_index, &t);
				if (ret >= 0)
					ret = qcow_set_entry(s, t, l1_index, idx, at);
			}
		}
		if (ret < 0)
			break;
		buf += n;
		off += n;
		len -= n;
	}
	free(tmp);
	return ret;
}

static int qcow_write(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct qcow_state *s = img->priv;
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = s->need_key ? fmt_cipher_no_key(img->spec, "encrypt.key-secret") : qcow_write_locked(s, buf, len, off);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int qcow_write_compressed(struct fmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct qcow_state *s = img->priv;
	uint8_t *out;
	size_t clen;
	int ret;

	ret = qcow2_compress_cluster(img->spec, QCOW2_COMPRESS_ZLIB, s->cluster_size, s->crypt_method, buf, len, off,
				     &out, &clen);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&s->lock);
	if (!clen) {
		ret = qcow_write_locked(s, buf, len, off);
	} else {
		uint64_t cluster = off >> s->cluster_bits, l1_index = cluster >> s->l2_bits, *t;
		ret = qcow_l2_for_write(s, l1_index, &t);
		if (ret >= 0) {
			uint64_t at = s->file_size;   /* compressed data is not aligned */
			ret = qcow_pwrite(s, out, clen, at);
			if (ret >= 0)
				ret = qcow_l2(s, l1_index, &t);
			if (ret >= 0)
				ret = qcow_set_entry(s, t, l1_index, cluster & (s->l2_size - 1),
						     QCOW_OFLAG_COMPRESSED | ((uint64_t)clen << (63 - s->cluster_bits)) | at);
		}
	}
	pthread_mutex_unlock(&s->lock);
	free(out);
	return ret < 0 ? ret : 0;
}

static int qcow_create(const char *spec, uint64_t size, const struct fmt_options *opts)
{
	const char *bfile = fmt_options_get(opts, "backing_file");
	const char *bfmt = fmt_options_get(opts, "backing_fmt");
	const char *enc = fmt_options_get(opts, "encrypt.format");
	struct fmt_store *st = NULL;
	uint8_t *buf = NULL;
	bool encryption = false;
	int ret;

	fmt_options_use(opts, "size");
	fmt_options_use(opts, "backing_file");
	fmt_options_use(opts, "backing_fmt");
	fmt_options_use(opts, "encrypt.format");
	fmt_options_use(opts, "encrypt.key-secret");
	fmt_options_use(opts, "encryption");
	ret = fmt_options_get_bool(opts, "encryption", false, &encryption);
	if (ret < 0)
		return ret;
	if (enc && strcmp(enc, "aes")) {
		fmt_error("%s: Parameter 'encrypt.format' does not accept value '%s'", spec, enc);
		return -EINVAL;
	}
	if (enc || encryption) {
		encryption = true;
		if (!fmt_crypto_secret(spec, opts, "encrypt.key-secret"))
			return -EINVAL;
	}
	if (bfile && !*bfile)
		bfile = NULL;
	if (bfile && strlen(bfile) > 1023) {
		fmt_error("%s: Backing file name too long", spec);
		return -EINVAL;
	}
	if (bfile && !size) {
		char *path = fmt_store_sibling(spec, bfile);
		struct fmt_image *b;
		if (!path)
			return -ENOMEM;
		ret = fmt_image_open(path, bfmt, FMT_OPEN_NO_BACKING, NULL, &b);
		free(path);
		if (ret < 0)
			return ret;
		size = b->virtual_size;
		fmt_image_close(b);
	}
	size = (size + 511) & ~511ull;
	if (size < 2) {
		fmt_error("%s: Image size is too small (must be at least 2 bytes)", spec);
		return -EINVAL;
	}
	uint32_t cluster_bits = bfile ? 9 : 12, l2_bits = bfile ? 12 : 9;
	uint64_t shift = cluster_bits + l2_bits;
	uint64_t l1_size = (size + (1ull << shift) - 1) >> shift;
	if (l1_size > INT_MAX / 8) {
		fmt_error("%s: Image too large", spec);
		return -EFBIG;
	}
	size_t blen = bfile ? strlen(bfile) : 0;
	uint64_t l1_off = (QCOW_HDR_SIZE + blen + 7) & ~7ull;
	size_t total = l1_off + l1_size * 8;
	buf = calloc(1, total);
	if (!buf)
		return -ENOMEM;
	fmt_put32(buf, QCOW_MAGIC);
	fmt_put32(buf + 4, 1);
	if (bfile) {
		fmt_put64(buf + 8, QCOW_HDR_SIZE);
		fmt_put32(buf + 16, blen);
		memcpy(buf + QCOW_HDR_SIZE, bfile, blen);
	}
	fmt_put64(buf + 24, size);
	buf[32] = cluster_bits;
	buf[33] = l2_bits;
	fmt_put32(buf + 36, encryption ? 1 : 0);
	fmt_put64(buf + 40, l1_off);
	ret = fmt_store_create(spec, 0, &st);
	if (ret >= 0)
		ret = fmt_store_pwrite(st, buf, total, 0);
	if (st)
		fmt_store_close(st);
	free(buf);
	return ret < 0 ? ret : 0;
}

const struct fmt_driver fmt_qcow_driver = {
	.name = "qcow",
	.flags = FMT_DRV_WRITE | FMT_DRV_CREATE | FMT_DRV_COMPRESS | FMT_DRV_THREADS,
	.probe = qcow_probe,
	.open = qcow_open,
	.read = qcow_read,
	.write = qcow_write,
	.write_compressed = qcow_write_compressed,
	.block_status = qcow_block_status,
	.create = qcow_create,
	.close = qcow_close,
};
