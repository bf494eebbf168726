/* qcow2.c: the qcow2 driver's open-time validation (qemu 7.2's rules and messages), close, info
 * and the driver table entry. The L2 cache is in qcow2_cache.c, reads in qcow2_read.c, writes in
 * qcow2_write.c, refcounts in qcow2_refcount.c, metadata writeback in qcow2_meta.c, snapshots in
 * qcow2_snapshot.c, creation in qcow2_create.c, check in qcow2_check.c.
 * Locking: s->lock guards all metadata; data preads run without it. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_state.h"

static int qcow2_probe(const uint8_t *buf, size_t len, const char *spec)
{
	if (len < 8 || fmt_be32(buf) != QCOW_MAGIC)
		return 0;
	/* version 1 is qcow's; any other version is ours to refuse at open ("Unsupported qcow2
	 * version N"), never a raw disk that happens to start with the magic */
	return fmt_be32(buf + 4) != 1 ? 100 : 0;
}

/* ---- open --------------------------------------------------------------------------------- */

static int qcow2_parse_extensions(struct qcow2_state *s, const uint8_t *hdr, uint64_t start, uint64_t end)
{
	struct fmt_image *img = s->img;
	uint64_t pos = start;

	while (pos + 8 <= end) {
		uint32_t type = fmt_be32(hdr + pos);
		uint32_t len = fmt_be32(hdr + pos + 4);
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
			s->crypto_off = fmt_be64(data);
			s->crypto_len = fmt_be64(data + 8);
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
			if (fmt_be32(data + 4)) {
				fmt_error("%s: bitmaps_ext: Reserved field is not zero", img->spec);
				return -EINVAL;
			}
			s->bitmaps_nr = fmt_be32(data);
			s->bitmaps_dir_size = fmt_be64(data + 8);
			s->bitmaps_dir_off = fmt_be64(data + 16);
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
		fmt_put32(dir + pos + 12, fmt_be32(dir + pos + 12) | 1);
		pos += (24 + fmt_be32(dir + pos + 20) + fmt_be16(dir + pos + 18) + 7) & ~7ull;
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

/* the fixed fields in the first bytes of the header (v2: 72, v3: up to 112) */
static int qcow2_parse_fixed_header(struct qcow2_state *s, const uint8_t *first)
{
	const char *name = s->img->spec;

	if (fmt_be32(first) != QCOW_MAGIC) {
		fmt_error("%s: Image is not in qcow2 format", name);
		return -EINVAL;
	}
	s->version = fmt_be32(first + 4);
	if (s->version < 2 || s->version > 3) {
		fmt_error("%s: Unsupported qcow2 version %u", name, s->version);
		return -EINVAL;
	}
	s->cluster_bits = fmt_be32(first + 20);
	if (s->cluster_bits < 9 || s->cluster_bits > 21) {
		fmt_error("%s: Unsupported cluster size: 2^%u", name, s->cluster_bits);
		return -EINVAL;
	}
	s->cluster_size = 1u << s->cluster_bits;
	if (s->version == 2) {
		s->refcount_order = 4;
		s->header_length = 72;
	} else {
		s->incompat = fmt_be64(first + 72);
		s->compat = fmt_be64(first + 80);
		s->autoclear = fmt_be64(first + 88);
		s->refcount_order = fmt_be32(first + 96);
		s->header_length = fmt_be32(first + 100);
		if (s->header_length < 104) {
			fmt_error("%s: qcow2 header too short", name);
			return -EINVAL;
		}
		if (s->header_length > s->cluster_size) {
			fmt_error("%s: qcow2 header exceeds cluster size", name);
			return -EINVAL;
		}
		if (s->header_length > 104)
			s->compression_type = first[104];
	}
	if (s->file_size < s->header_length) {
		fmt_error("%s: qcow2 header truncated (file is %" PRIu64 " bytes)", name, s->file_size);
		return -EINVAL;
	}
	return 0;
}

/* feature bits, compression type and refcount width; then the L2 geometry they imply */
static int qcow2_check_features(struct qcow2_state *s)
{
	const char *name = s->img->spec;

	if (s->incompat & ~QCOW2_INCOMPAT_KNOWN) {
		uint64_t unknown = s->incompat & ~QCOW2_INCOMPAT_KNOWN;
		fmt_error("%s: Unsupported qcow2 feature(s): Unknown incompatible feature: %" PRIx64, name, unknown);
		return -ENOTSUP;
	}
	if (s->compression_type && !(s->incompat & QCOW2_INCOMPAT_COMPRESSION)) {
		fmt_error("%s: qcow2: Compression type incompatible feature bit must be set", name);
		return -EINVAL;
	}
	if (!s->compression_type && (s->incompat & QCOW2_INCOMPAT_COMPRESSION)) {
		fmt_error("%s: qcow2: Compression type incompatible feature bit must not be set", name);
		return -EINVAL;
	}
	if (s->compression_type > 1) {
		fmt_error("%s: qcow2: unknown compression type: %u", name, s->compression_type);
		return -EINVAL;
	}
	if (s->refcount_order > 6) {
		fmt_error("%s: Reference count entry width too large; may not exceed 64 bits", name);
		return -EINVAL;
	}
	s->ext_l2 = !!(s->incompat & QCOW2_INCOMPAT_EXTL2);
	if (s->ext_l2 && s->cluster_bits < 14) {
		fmt_error("%s: Unsupported subcluster size", name);
		return -EINVAL;
	}
	s->l2_entries = s->cluster_size / (s->ext_l2 ? 16 : 8);
	s->l2_bits = s->cluster_bits - (s->ext_l2 ? 4 : 3);
	s->subcluster_size = s->ext_l2 ? s->cluster_size / 32 : s->cluster_size;
	s->csize_shift = 62 - (s->cluster_bits - 8);
	s->csize_mask = (1ull << (s->cluster_bits - 8)) - 1;
	s->coffset_mask = (1ull << s->csize_shift) - 1;
	return 0;
}

/* the refcount table, snapshot table and L1 table fields: sizes, alignment, inside the file */
static int qcow2_check_tables(struct qcow2_state *s, const uint8_t *hdr)
{
	const char *name = s->img->spec;

	s->size = fmt_be64(hdr + 24);
	s->l1_size = fmt_be32(hdr + 36);
	s->l1_offset = fmt_be64(hdr + 40);
	s->rt_offset = fmt_be64(hdr + 48);
	s->rt_clusters = fmt_be32(hdr + 56);
	s->nb_snapshots = fmt_be32(hdr + 60);
	s->snapshots_offset = fmt_be64(hdr + 64);

	if (s->rt_clusters == 0) {
		fmt_error("%s: Image does not contain a reference count table", name);
		return -EINVAL;
	}
	if ((uint64_t)s->rt_clusters << s->cluster_bits > QCOW2_MAX_RT_BYTES) {
		fmt_error("%s: Reference count table too large", name);
		return -EINVAL;
	}
	if (s->rt_offset & (s->cluster_size - 1) || s->rt_offset == 0) {
		fmt_error("%s: Reference count table offset invalid", name);
		return -EINVAL;
	}
	if (s->rt_offset >= s->file_size) {
		fmt_error("%s: Reference count table offset %#" PRIx64 " past end of file", name, s->rt_offset);
		return -EINVAL;
	}
	s->rt_size = ((uint64_t)s->rt_clusters << s->cluster_bits) / 8;
	s->refs_per_block = (uint64_t)s->cluster_size * 8 >> s->refcount_order;
	if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
		fmt_error("%s: Snapshot table too large", name);
		return -EINVAL;
	}
	if (s->nb_snapshots && (s->snapshots_offset & (s->cluster_size - 1))) {
		fmt_error("%s: Snapshot table offset invalid", name);
		return -EINVAL;
	}
	if (s->nb_snapshots && s->snapshots_offset >= s->file_size) {
		fmt_error("%s: Snapshot table offset %#" PRIx64 " past end of file", name, s->snapshots_offset);
		return -EINVAL;
	}
	if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
		fmt_error("%s: Active L1 table too large", name);
		return -EINVAL;
	}
	if (s->l1_size && (s->l1_offset & (s->cluster_size - 1))) {
		fmt_error("%s: Active L1 table offset invalid", name);
		return -EINVAL;
	}
	uint64_t shift = s->cluster_bits + s->l2_bits;
	if (s->size > (1ull << 62) || ((s->size + (1ull << shift) - 1) >> shift) > INT_MAX / 8) {
		fmt_error("%s: Image is too big", name);
		return -EINVAL;
	}
	if (s->l1_size < (s->size + (1ull << shift) - 1) >> shift) {
		fmt_error("%s: L1 table is too small", name);
		return -EINVAL;
	}
	if (s->l1_size && (s->l1_offset >= s->file_size ||
			   (uint64_t)s->l1_size * 8 > s->file_size - s->l1_offset)) {
		fmt_error("%s: Active L1 table offset %#" PRIx64 " past end of file", name, s->l1_offset);
		return -EINVAL;
	}
	return 0;
}

/* the backing file name, which lies inside cluster 0 */
static int qcow2_parse_backing_name(struct qcow2_state *s, const uint8_t *hdr)
{
	struct fmt_image *img = s->img;
	uint64_t boff = fmt_be64(hdr + 8);
	uint32_t blen = fmt_be32(hdr + 16);

	if (!boff)
		return 0;
	if (boff > s->cluster_size) {
		fmt_error("%s: Invalid backing file offset", img->spec);
		return -EINVAL;
	}
	if (blen > QCOW2_MAX_BACKING_NAME || blen > s->cluster_size - boff) {
		fmt_error("%s: Backing file name too long", img->spec);
		return -EINVAL;
	}
	if (blen) {
		img->backing_spec = strndup((const char *)hdr + boff, blen);
		if (!img->backing_spec)
			return -ENOMEM;
	}
	return 0;
}

/* what the open mode rules out, and the external data file the image names */
static int qcow2_open_data_file(struct qcow2_state *s)
{
	struct fmt_image *img = s->img;
	const char *name = img->spec;
	char *path;
	int ret;

	if ((s->incompat & QCOW2_INCOMPAT_CORRUPT) && img->writable) {
		fmt_error("%s: qcow2: Image is corrupt; cannot be opened read/write", name);
		return -EINVAL;
	}
	if (s->incompat & QCOW2_INCOMPAT_DATA_FILE) {
		if (!s->data_file || !*s->data_file) {
			fmt_error("%s: 'data-file' is required for this image", name);
			return -EINVAL;
		}
		if (img->writable) {
			fmt_error("%s: writing images with an external data file is not supported", name);
			return -ENOTSUP;
		}
		ret = fmt_store_name_resolve(img->spec, s->data_file, "data file", &path);
		if (ret < 0)
			return ret;
		ret = fmt_store_open(path, FMT_STORE_RDONLY, &s->data_store);
		free(path);
		if (ret < 0)
			return ret;
	}
	if (s->ext_l2 && img->writable) {
		fmt_error("%s: writing images with extended L2 entries is not supported", name);
		return -ENOTSUP;
	}
	return 0;
}

/* the active L1 table into memory, and an empty L2 cache */
static int qcow2_load_l1(struct qcow2_state *s)
{
	const char *name = s->img->spec;
	int ret;

	s->l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	if (!s->l1) {
		fmt_error("%s: out of memory for the L1 table", name);
		return -ENOMEM;
	}
	if (s->l1_size) {
		ret = fmt_store_pread(s->img->store, s->l1, (size_t)s->l1_size * 8, s->l1_offset);
		if (ret < 0)
			return ret;
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
		fmt_error("%s: out of memory", name);
		return -ENOMEM;
	}
	return 0;
}

/* a read/write open: refcounts rebuilt if lazy ones were left stale (as qemu does), loaded, and
 * the autoclear bits of what this writer does not maintain cleared */
static int qcow2_open_for_write(struct qcow2_state *s)
{
	int ret;

	if (s->incompat & QCOW2_INCOMPAT_DIRTY) {
		ret = qcow2_rebuild_refcounts(s);
		if (ret < 0)
			return ret;
	}
	ret = s->rt ? 0 : qcow2_load_refcounts(s, NULL);
	if (ret < 0)
		return ret;
	/* persistent bitmaps stay (their clusters stay referenced) but are marked in use: stale */
	ret = qcow2_bitmaps_mark_in_use(s);
	if (ret < 0)
		return ret;
	if (s->autoclear & ~QCOW2_AUTOCLEAR_BITMAPS) {
		s->autoclear &= QCOW2_AUTOCLEAR_BITMAPS;
		s->header_dirty = true;
	}
	return 0;
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
	ret = qcow2_parse_fixed_header(s, first);
	if (ret < 0)
		goto fail;
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
	ret = qcow2_check_features(s);
	if (ret < 0)
		goto fail;
	s->crypt_method = fmt_be32(hdr + 32);
	if (s->crypt_method > 2) {
		fmt_error("%s: Unsupported encryption method %u", name, s->crypt_method);
		ret = -EINVAL;
		goto fail;
	}
	ret = qcow2_parse_extensions(s, hdr, s->header_length, s->cluster_size);
	if (ret >= 0)
		ret = qcow2_check_tables(s, hdr);
	if (ret >= 0)
		ret = qcow2_parse_backing_name(s, hdr);
	if (ret >= 0)
		ret = qcow2_open_data_file(s);
	if (ret >= 0)
		ret = qcow2_load_l1(s);
	if (ret >= 0 && s->crypt_method)
		ret = qcow2_open_crypto(s, opts);
	if (ret >= 0 && img->writable)
		ret = qcow2_open_for_write(s);
	if (ret < 0)
		goto fail;

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
		luks_info_emit(&s->luks, "encrypt.", "plain64", (uint64_t)s->luks.payload_offset * 512, emit, ctx);
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
