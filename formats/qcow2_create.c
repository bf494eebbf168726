/* qcow2_create.c: qcow2 image creation with qemu-img's -o options. The image starts as qemu
 * lays it out (header, refcount table, first refblock, L1) and is then grown through the normal
 * allocator (LUKS header, preallocated L2 tables and data), so refcounts are exact by
 * construction. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_state.h"

extern const struct fmt_driver fmt_qcow2_driver;

enum { PREALLOC_OFF, PREALLOC_METADATA, PREALLOC_FALLOC, PREALLOC_FULL };

struct qcow2_create_opts {
	uint32_t version, cluster_bits, refcount_order, compression_type, crypt_method;
	bool lazy_refcounts;
	int prealloc;
	const char *backing_file, *backing_fmt;
	const char *passphrase;
};

/* backing_file and backing_fmt: both or neither, as qemu-img 7.x requires */
static int qcow2_parse_backing_opts(const char *spec, const struct fmt_options *opts, struct qcow2_create_opts *o)
{
	o->backing_file = fmt_options_get(opts, "backing_file");
	o->backing_fmt = fmt_options_get(opts, "backing_fmt");
	if (o->backing_file && !*o->backing_file)
		o->backing_file = NULL;
	if (o->backing_fmt && !o->backing_file) {
		fmt_error("%s: backing_fmt given without backing_file", spec);
		return -EINVAL;
	}
	if (o->backing_file && !o->backing_fmt) {
		fmt_error("%s: Backing file specified without backing format", spec);
		return -EINVAL;
	}
	if (o->backing_file && strlen(o->backing_file) > QCOW2_MAX_BACKING_NAME) {
		fmt_error("%s: Backing file name too long", spec);
		return -EINVAL;
	}
	if (o->backing_file && o->prealloc != PREALLOC_OFF) {
		fmt_error("%s: Backing file and preallocation can only be used at the same time if "
			  "extended_l2 is on", spec);
		return -EINVAL;
	}
	return 0;
}

/* encryption (deprecated) and encrypt.format with its key secret */
static int qcow2_parse_crypt_opts(const char *spec, const struct fmt_options *opts, struct qcow2_create_opts *o)
{
	const char *v;
	bool b;
	int ret;

	v = fmt_options_get(opts, "encrypt.format");
	ret = fmt_options_get_bool(opts, "encryption", false, &b);
	if (ret < 0)
		return ret;
	if (b && v && strcmp(v, "aes")) {
		fmt_error("%s: Options \"encryption\" and \"encrypt.format\" are incompatible", spec);
		return -EINVAL;
	}
	if (b && !v)
		v = "aes";
	if (v) {
		if (!strcmp(v, "aes"))
			o->crypt_method = QCOW2_CRYPT_AES;
		else if (!strcmp(v, "luks"))
			o->crypt_method = QCOW2_CRYPT_LUKS;
		else {
			fmt_error("%s: Parameter 'encrypt.format' does not accept value '%s'", spec, v);
			return -EINVAL;
		}
		if (!fmt_options_get(opts, "encrypt.key-secret")) {
			fmt_error("%s: Parameter 'encrypt.key-secret' is required for cipher", spec);
			return -EINVAL;
		}
		o->passphrase = fmt_crypto_secret(spec, opts, "encrypt.key-secret");
		if (!o->passphrase)
			return -EINVAL;
		if (o->prealloc != PREALLOC_OFF && o->prealloc != PREALLOC_METADATA) {
			fmt_error("%s: preallocation=%s is not supported with encryption", spec, v);
			return -ENOTSUP;
		}
	}
	return 0;
}

static int qcow2_parse_create_opts(const char *spec, const struct fmt_options *opts, struct qcow2_create_opts *o)
{
	static const char *const used[] = {
		"size", "compat", "cluster_size", "refcount_bits", "lazy_refcounts", "compression_type",
		"backing_file", "backing_fmt", "preallocation", "encryption", "encrypt.format", "encrypt.key-secret",
		"encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.hash-alg", "encrypt.iter-time",
		"encrypt.ivgen-alg", "encrypt.ivgen-hash-alg", "extended_l2", "data_file", "data_file_raw",
		"extent_size_hint", "nocow",
	};
	const char *v;
	uint64_t n;
	bool b;
	int ret;

	for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++)
		fmt_options_use(opts, used[i]);
	memset(o, 0, sizeof(*o));
	o->version = 3;
	o->cluster_bits = 16;
	o->refcount_order = 4;

	v = fmt_options_get(opts, "compat");
	if (v) {
		if (!strcmp(v, "0.10") || !strcmp(v, "v2")) {
			o->version = 2;
		} else if (!strcmp(v, "1.1") || !strcmp(v, "v3")) {
			o->version = 3;
		} else {
			fmt_error("%s: Invalid parameter '%s'", spec, v);
			return -EINVAL;
		}
	}
	ret = fmt_options_get_size(opts, "cluster_size", 65536, &n);
	if (ret < 0)
		return ret;
	if (n < 512 || n > (2u << 20) || (n & (n - 1))) {
		fmt_error("%s: Cluster size must be a power of two between 512 and 2048k", spec);
		return -EINVAL;
	}
	o->cluster_bits = __builtin_ctzll(n);
	ret = fmt_options_get_size(opts, "refcount_bits", 16, &n);
	if (ret < 0)
		return ret;
	if (n < 1 || n > 64 || (n & (n - 1))) {
		fmt_error("%s: Refcount width must be a power of two and may not exceed 64 bits", spec);
		return -EINVAL;
	}
	o->refcount_order = __builtin_ctzll(n);
	if (o->version < 3 && n != 16) {
		fmt_error("%s: Different refcount widths than 16 bits require compatibility level 1.1 or above "
			  "(use compat=1.1 or greater)", spec);
		return -EINVAL;
	}
	ret = fmt_options_get_bool(opts, "lazy_refcounts", false, &o->lazy_refcounts);
	if (ret < 0)
		return ret;
	if (o->lazy_refcounts && o->version < 3) {
		fmt_error("%s: Lazy refcounts only supported with compatibility level 1.1 and above "
			  "(use compat=1.1 or greater)", spec);
		return -EINVAL;
	}
	v = fmt_options_get(opts, "compression_type");
	if (v) {
		if (!strcmp(v, "zlib")) {
			o->compression_type = QCOW2_COMPRESS_ZLIB;
		} else if (!strcmp(v, "zstd")) {
			o->compression_type = QCOW2_COMPRESS_ZSTD;
		} else {
			fmt_error("%s: Parameter 'compression-type' does not accept value '%s'", spec, v);
			return -EINVAL;
		}
		if (o->compression_type && o->version < 3) {
			fmt_error("%s: Non-zlib compression type is only supported with compatibility level 1.1 and "
				  "above (use compat=1.1 or greater)", spec);
			return -EINVAL;
		}
	}
	ret = fmt_options_get_bool(opts, "extended_l2", false, &b);
	if (ret < 0)
		return ret;
	if (b) {
		fmt_error("%s: extended_l2=on is not supported for new images", spec);
		return -ENOTSUP;
	}
	if (fmt_options_get(opts, "data_file")) {
		fmt_error("%s: data_file is not supported", spec);
		return -ENOTSUP;
	}
	v = fmt_options_get(opts, "preallocation");
	if (!v || !strcmp(v, "off"))
		o->prealloc = PREALLOC_OFF;
	else if (!strcmp(v, "metadata"))
		o->prealloc = PREALLOC_METADATA;
	else if (!strcmp(v, "falloc"))
		o->prealloc = PREALLOC_FALLOC;
	else if (!strcmp(v, "full"))
		o->prealloc = PREALLOC_FULL;
	else {
		fmt_error("%s: Parameter 'preallocation' does not accept value '%s'", spec, v);
		return -EINVAL;
	}
	ret = qcow2_parse_backing_opts(spec, opts, o);
	if (ret < 0)
		return ret;
	return qcow2_parse_crypt_opts(spec, opts, o);
}

/* size from the backing file when none was given */
static int qcow2_backing_size(const char *spec, const struct qcow2_create_opts *o, uint64_t *size)
{
	char *path = fmt_store_sibling(spec, o->backing_file);
	struct fmt_image *b = NULL;
	int ret;

	if (!path) {
		fmt_error("%s: out of memory", spec);
		return -ENOMEM;
	}
	ret = fmt_image_open(path, o->backing_fmt, FMT_OPEN_NO_BACKING, NULL, &b);
	free(path);
	if (ret < 0)
		return ret;
	*size = b->virtual_size;
	fmt_image_close(b);
	return 0;
}

/* write header, refcount table and first refblock: clusters 0..2 */
static int qcow2_write_skeleton(struct fmt_store *st, const char *spec, const struct qcow2_create_opts *o)
{
	uint32_t cs = 1u << o->cluster_bits;
	uint8_t *buf = calloc(3, cs);
	struct qcow2_state s;
	int ret;

	if (!buf) {
		fmt_error("%s: out of memory", spec);
		return -ENOMEM;
	}
	memset(&s, 0, sizeof(s));
	s.refcount_order = o->refcount_order;
	fmt_put32(buf, QCOW_MAGIC);
	fmt_put32(buf + 4, o->version);
	fmt_put32(buf + 20, o->cluster_bits);
	fmt_put64(buf + 48, cs);         /* refcount table: cluster 1 */
	fmt_put32(buf + 56, 1);
	if (o->version >= 3) {
		fmt_put32(buf + 96, o->refcount_order);
		fmt_put32(buf + 100, 112);
	}
	fmt_put64(buf + cs, 2ull * cs);   /* first refblock: cluster 2 */
	for (int i = 0; i < 3; i++)
		qcow2_refblock_set(&s, buf + 2 * cs, i, 1);
	ret = fmt_store_pwrite(st, buf, 3ull * cs, 0);
	free(buf);
	return ret < 0 ? ret : 0;
}

/* preallocate L2 tables (and data clusters) for the whole disk */
static int qcow2_preallocate(struct qcow2_state *s, int mode)
{
	uint64_t clusters = (s->size + s->cluster_size - 1) >> s->cluster_bits;
	uint8_t *zeros = NULL;
	size_t zlen = 0;
	int ret = 0;

	if (mode == PREALLOC_FULL) {
		zlen = 4u << 20;
		if (zlen < s->cluster_size)
			zlen = s->cluster_size;
		zeros = calloc(1, zlen);
		if (!zeros)
			return -ENOMEM;
	}
	for (uint64_t c = 0; c < clusters;) {
		uint64_t l1_index = c >> s->l2_bits;
		uint64_t idx = c & (s->l2_entries - 1);
		uint64_t n = s->l2_entries - idx;
		int64_t l2off, data;

		if (n > clusters - c)
			n = clusters - c;
		l2off = qcow2_alloc_clusters(s, 1);
		if (l2off < 0) {
			ret = (int)l2off;
			break;
		}
		data = qcow2_alloc_clusters(s, n);
		if (data < 0) {
			ret = (int)data;
			break;
		}
		uint64_t *table;
		ret = qcow2_l2_claim(s, l2off, &table);
		if (ret < 0)
			break;
		memset(table, 0, s->cluster_size);
		for (uint64_t i = 0; i < n; i++)
			table[idx + i] = htobe64(((uint64_t)data + (i << s->cluster_bits)) | QCOW2_OFLAG_COPIED);
		qcow2_l2_slot_of(s, table)->dirty = true;
		s->l1[l1_index] = (uint64_t)l2off | QCOW2_OFLAG_COPIED;
		s->l1_dirty = true;
		if (mode == PREALLOC_FULL) {
			for (uint64_t done = 0; done < (n << s->cluster_bits); done += zlen) {
				uint64_t len = (n << s->cluster_bits) - done < zlen ? (n << s->cluster_bits) - done : zlen;
				ret = fmt_store_pwrite(s->img->store, zeros, len, data + done);
				if (ret < 0)
					goto out;
				qcow2_note_write(s, data + done + len);
			}
		}
		c += n;
	}
out:
	free(zeros);
	return ret < 0 ? ret : 0;
}

int qcow2_create(const char *spec, uint64_t size, const struct fmt_options *opts)
{
	struct qcow2_create_opts o;
	struct fmt_store *st = NULL;
	struct fmt_image img;
	struct qcow2_state *s;
	int ret;

	ret = qcow2_parse_create_opts(spec, opts, &o);
	if (ret < 0)
		return ret;
	if (!size && o.backing_file) {
		ret = qcow2_backing_size(spec, &o, &size);
		if (ret < 0)
			return ret;
	}
	size = (size + 511) & ~511ull;
	if (size > (1ull << 62)) {
		fmt_error("%s: Image size is too large", spec);
		return -EFBIG;
	}
	uint64_t l2_span = 1ull << (o.cluster_bits * 2 - 3);
	uint64_t l1_size = (size + l2_span - 1) / l2_span;
	if (l1_size * 8 > QCOW2_MAX_L1_BYTES) {
		fmt_error("%s: The image size is too large for file format 'qcow2' (try using a larger cluster size)",
			  spec);
		return -EFBIG;
	}

	ret = fmt_store_create(spec, 0, &st);
	if (ret < 0)
		return ret;
	ret = qcow2_write_skeleton(st, spec, &o);
	if (ret < 0)
		goto out_store;

	memset(&img, 0, sizeof(img));
	img.drv = &fmt_qcow2_driver;
	img.store = st;
	img.spec = (char *)spec;
	img.writable = true;
	st->size = 3ull << o.cluster_bits;
	ret = fmt_qcow2_driver.open(&img, opts);
	if (ret < 0)
		goto out_store;
	s = img.priv;
	s->free_hint = 3;

	ret = qcow2_grow_l1(s, l1_size);
	if (ret < 0)
		goto out_close;
	s->size = size;
	s->compression_type = o.compression_type;
	if (o.compression_type)
		s->incompat |= QCOW2_INCOMPAT_COMPRESSION;
	if (o.lazy_refcounts)
		s->compat |= QCOW2_COMPAT_LAZY_REFCOUNTS;
	if (o.backing_file) {
		img.backing_spec = strdup(o.backing_file);
		img.backing_fmt = strdup(o.backing_fmt);
		if (!img.backing_spec || !img.backing_fmt) {
			ret = -ENOMEM;
			goto out_close;
		}
	}
	if (o.crypt_method == QCOW2_CRYPT_AES) {
		s->crypt_method = QCOW2_CRYPT_AES;
		s->cipher = fmt_cipher_new_qcow_aes(o.passphrase);
		if (!s->cipher) {
			ret = -ENOMEM;
			goto out_close;
		}
	} else if (o.crypt_method == QCOW2_CRYPT_LUKS) {
		uint8_t *hdr;
		size_t hlen;
		ret = luks_build(spec, opts, o.passphrase, s->cluster_size, &hdr, &hlen, &s->cipher);
		if (ret < 0)
			goto out_close;
		int64_t off = qcow2_alloc_clusters(s, (hlen + s->cluster_size - 1) >> s->cluster_bits);
		if (off < 0) {
			free(hdr);
			ret = (int)off;
			goto out_close;
		}
		ret = fmt_store_pwrite(st, hdr, hlen, off);
		free(hdr);
		if (ret < 0)
			goto out_close;
		qcow2_note_write(s, off + hlen);
		s->crypt_method = QCOW2_CRYPT_LUKS;
		s->crypto_off = off;
		s->crypto_len = hlen;
	}
	s->header_dirty = true;
	img.virtual_size = size;
	if (o.prealloc != PREALLOC_OFF) {
		ret = qcow2_preallocate(s, o.prealloc);
		if (ret < 0)
			goto out_close;
	}
	pthread_mutex_lock(&s->lock);
	ret = qcow2_flush_metadata(s);
	pthread_mutex_unlock(&s->lock);
out_close:
	fmt_qcow2_driver.close(&img);
	free(img.backing_spec);
	free(img.backing_fmt);
out_store:
	fmt_store_close(st);
	return ret < 0 ? ret : 0;
}
