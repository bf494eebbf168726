/* dmg.c: Apple UDIF disk images (.dmg), read only: raw, zero/ignore and zlib chunks.
 *
 * A 512-byte "koly" trailer at the end of the file points at an XML property list whose
 * <data> elements are base64 "mish" block tables; each table lists 40-byte chunk entries
 * {type, comment, sector, sector count, offset, length} relative to the table's first sector
 * and data offset. Chunks are sorted by sector at open and looked up by binary search; the
 * last inflated chunk is cached. Detected by the trailer, not by the file name.
 * Not supported: the legacy resource fork without a plist, and ADC/bzip2/lzfse chunks (reading
 * those sectors fails with a message naming the chunk type).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inflate.h"
#include "formats.h"

#define DMG_KOLY_SIZE       512
#define DMG_MISH_MAGIC      0x6d697368u
#define DMG_MISH_HDR        204
#define DMG_CHUNK_SIZE      40
#define DMG_MAX_XML         (16u << 20)
#define DMG_MAX_SECTORS     131072u       /* per chunk */
#define DMG_MAX_LENGTH      (64u << 20)   /* compressed bytes per chunk */
#define DMG_MAX_CHUNKS      (4u << 20)
#define DMG_T_ZERO          0x00000000u
#define DMG_T_RAW           0x00000001u
#define DMG_T_IGNORE        0x00000002u
#define DMG_T_ZLIB          0x80000005u
#define DMG_T_COMMENT       0x7ffffffeu
#define DMG_T_END           0xffffffffu

struct dmg_chunk {
	uint32_t type;
	uint64_t sector, count;     /* virtual sectors */
	uint64_t offset, length;    /* bytes in the file */
};

struct dmg_state {
	struct dmg_chunk *chunks;
	size_t nr, cap;
	uint8_t *cbuf, *dbuf;
	size_t cbuf_size, dbuf_size;
	size_t cached;              /* chunk index in dbuf, or SIZE_MAX */
};

/* by the trailer, so the store is opened once more here; the probe buffer cannot hold it */
static int dmg_probe(const uint8_t *buf, size_t len, const char *spec)
{
	struct fmt_store *st;
	char sig[4];
	int score = 0;

	/* an NBD server often takes one client at a time (qemu-nbd's default) and the image holds
	 * that connection already: a second one would wait for ever */
	if (!spec || (fmt_store_is_url(spec) && !strncasecmp(spec, "nbd", 3)))
		return 0;
	if (fmt_store_open(spec, FMT_STORE_RDONLY, &st) < 0)
		return 0;
	/* a store that can only stream (an http server without ranges) is not read from its end */
	if (st->seekable && st->size >= DMG_KOLY_SIZE &&
	    fmt_store_pread(st, sig, 4, st->size - DMG_KOLY_SIZE) == 0 && !memcmp(sig, "koly", 4))
		score = 90;
	fmt_store_close(st);
	fmt_error("%s", "");
	return score;
}

static void dmg_close(struct fmt_image *img)
{
	struct dmg_state *s = img->priv;
	if (!s)
		return;
	free(s->chunks);
	free(s->cbuf);
	free(s->dbuf);
	free(s);
	img->priv = NULL;
}

static int dmg_b64(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* decode base64 text (whitespace ignored) into out; returns the length or -1 */
static ssize_t dmg_base64_decode(const char *in, size_t len, uint8_t *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)in[i], v;
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		if (c == '=')
			break;
		v = dmg_b64(c);
		if (v < 0)
			return -1;
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = acc >> bits;
		}
	}
	return n;
}

static int dmg_add_mish(struct fmt_image *img, const uint8_t *m, size_t len)
{
	struct dmg_state *s = img->priv;
	uint64_t base, data_off;
	if (len < DMG_MISH_HDR || be32toh(*(const uint32_t *)m) != DMG_MISH_MAGIC)
		return 0;   /* another kind of resource: not a block table */
	memcpy(&base, m + 8, 8);
	memcpy(&data_off, m + 24, 8);
	base = be64toh(base);
	data_off = be64toh(data_off);
	for (size_t p = DMG_MISH_HDR; p + DMG_CHUNK_SIZE <= len; p += DMG_CHUNK_SIZE) {
		struct dmg_chunk c;
		uint64_t v[4];
		memcpy(&c.type, m + p, 4);
		memcpy(v, m + p + 8, 32);
		c.type = be32toh(c.type);
		c.sector = be64toh(v[0]);
		c.count = be64toh(v[1]);
		c.offset = be64toh(v[2]);
		c.length = be64toh(v[3]);
		if (c.type == DMG_T_COMMENT || c.type == DMG_T_END || c.count == 0)
			continue;
		if (c.sector > (UINT64_MAX >> 10) - base || c.count > DMG_MAX_SECTORS) {
			fmt_error("%s: sector count %" PRIu64 " for chunk %zu is larger than max (%u)", img->spec,
				  c.count, s->nr, DMG_MAX_SECTORS);
			return -EINVAL;
		}
		c.sector += base;
		if (c.type != DMG_T_ZERO && c.type != DMG_T_IGNORE) {
			if (c.length > DMG_MAX_LENGTH) {
				fmt_error("%s: length %" PRIu64 " for chunk %zu is larger than max (%u)", img->spec,
					  c.length, s->nr, DMG_MAX_LENGTH);
				return -EINVAL;
			}
			if (c.offset > UINT64_MAX - data_off || c.offset + data_off > img->store->size ||
			    c.length > img->store->size - c.offset - data_off) {
				fmt_error("%s: chunk %zu data is past the end of the file", img->spec, s->nr);
				return -EINVAL;
			}
			if (c.type == DMG_T_RAW && c.length < c.count * 512) {
				fmt_error("%s: raw chunk %zu is shorter than its sectors", img->spec, s->nr);
				return -EINVAL;
			}
			c.offset += data_off;
		}
		if (s->nr == s->cap) {
			size_t ncap = s->cap ? s->cap * 2 : 64;
			struct dmg_chunk *n;
			if (ncap > DMG_MAX_CHUNKS) {
				fmt_error("%s: too many chunks", img->spec);
				return -EFBIG;
			}
			n = realloc(s->chunks, ncap * sizeof(*n));
			if (!n)
				return -ENOMEM;
			s->chunks = n;
			s->cap = ncap;
		}
		s->chunks[s->nr++] = c;
	}
	return 0;
}

static int dmg_cmp_chunk(const void *a, const void *b)
{
	const struct dmg_chunk *x = a, *y = b;
	return x->sector < y->sector ? -1 : x->sector > y->sector;
}

static int dmg_open(struct fmt_image *img, const struct fmt_options *opts)
{
	struct dmg_state *s;
	uint8_t koly[DMG_KOLY_SIZE], *bin = NULL;
	uint64_t fsize = img->store->size, xml_off, xml_len, max_count = 0, max_len = 0;
	char *xml = NULL, *p;
	int ret;

	if (fsize < DMG_KOLY_SIZE) {
		fmt_error("%s: File too small for a DMG trailer", img->spec);
		return -EINVAL;
	}
	ret = fmt_store_pread(img->store, koly, sizeof(koly), fsize - DMG_KOLY_SIZE);
	if (ret < 0)
		return ret;
	if (memcmp(koly, "koly", 4)) {
		fmt_error("%s: no koly trailer: not a DMG image", img->spec);
		return -EINVAL;
	}
	memcpy(&xml_off, koly + 0xd8, 8);
	memcpy(&xml_len, koly + 0xe0, 8);
	xml_off = be64toh(xml_off);
	xml_len = be64toh(xml_len);
	if (xml_len == 0) {
		fmt_error("%s: DMG without an XML property list (resource fork only) is not supported", img->spec);
		return -ENOTSUP;
	}
	if (xml_len > DMG_MAX_XML) {
		fmt_error("%s: XML property list of %" PRIu64 " bytes is too large", img->spec, xml_len);
		return -EFBIG;
	}
	if (xml_off > fsize || xml_len > fsize - xml_off) {
		fmt_error("%s: XML property list is past the end of the file", img->spec);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	img->priv = s;
	s->cached = SIZE_MAX;
	xml = malloc(xml_len + 1);
	bin = malloc(xml_len);
	if (!xml || !bin) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = fmt_store_pread(img->store, xml, xml_len, xml_off);
	if (ret < 0)
		goto fail;
	xml[xml_len] = 0;
	for (p = xml; (p = strstr(p, "<data>"));) {
		char *end = strstr(p + 6, "</data>");
		ssize_t n;
		if (!end) {
			fmt_error("%s: unterminated <data> in the XML property list", img->spec);
			ret = -EINVAL;
			goto fail;
		}
		n = dmg_base64_decode(p + 6, end - p - 6, bin);
		if (n < 0) {
			fmt_error("%s: bad base64 in the XML property list", img->spec);
			ret = -EINVAL;
			goto fail;
		}
		ret = dmg_add_mish(img, bin, n);
		if (ret < 0)
			goto fail;
		p = end + 7;
	}
	if (!s->nr) {
		fmt_error("%s: DMG lists no chunks", img->spec);
		ret = -EINVAL;
		goto fail;
	}
	qsort(s->chunks, s->nr, sizeof(*s->chunks), dmg_cmp_chunk);
	for (size_t i = 0; i < s->nr; i++) {
		if (i && s->chunks[i].sector < s->chunks[i - 1].sector + s->chunks[i - 1].count) {
			fmt_error("%s: chunks overlap at sector %" PRIu64, img->spec, s->chunks[i].sector);
			ret = -EINVAL;
			goto fail;
		}
		if (s->chunks[i].count > max_count)
			max_count = s->chunks[i].count;
		if (s->chunks[i].type == DMG_T_ZLIB && s->chunks[i].length > max_len)
			max_len = s->chunks[i].length;
	}
	s->dbuf_size = max_count * 512;
	s->cbuf_size = max_len;
	s->dbuf = malloc(s->dbuf_size + 1);
	s->cbuf = malloc(s->cbuf_size + 1);
	if (!s->dbuf || !s->cbuf) {
		ret = -ENOMEM;
		goto fail;
	}
	img->virtual_size = (s->chunks[s->nr - 1].sector + s->chunks[s->nr - 1].count) * 512;
	ret = 0;
	free(xml);
	free(bin);
	return 0;
fail:
	free(xml);
	free(bin);
	dmg_close(img);
	return ret;
}

/* index of the chunk holding sector, or the first one after it (nr if none) */
static size_t dmg_find(struct dmg_state *s, uint64_t sector)
{
	size_t lo = 0, hi = s->nr;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->chunks[mid].sector + s->chunks[mid].count <= sector)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int dmg_inflate(struct fmt_image *img, size_t i)
{
	struct dmg_state *s = img->priv;
	struct dmg_chunk *c = &s->chunks[i];
	size_t out;
	int ret;

	if (s->cached == i)
		return 0;
	s->cached = SIZE_MAX;
	ret = fmt_store_pread(img->store, s->cbuf, c->length, c->offset);
	if (ret < 0)
		return ret;
	ret = fmt_inflate(FMT_INFLATE_ZLIB, s->cbuf, c->length, s->dbuf, c->count * 512, &out);
	if (ret == -ENOMEM)
		return ret;
	if (ret != 0 || out != c->count * 512) {
		fmt_error("%s: corrupt zlib chunk at sector %" PRIu64, img->spec, c->sector);
		return -EIO;
	}
	s->cached = i;
	return 0;
}

static int dmg_read(struct fmt_image *img, void *buf, size_t len, uint64_t off)
{
	struct dmg_state *s = img->priv;
	uint8_t *p = buf;
	while (len) {
		uint64_t sector = off / 512;
		size_t i = dmg_find(s, sector), n;
		struct dmg_chunk *c;
		int ret = 0;
		if (i == s->nr || s->chunks[i].sector > sector) {
			/* a gap between chunks reads as zeros */
			uint64_t next = i == s->nr ? UINT64_MAX : s->chunks[i].sector * 512;
			n = next - off < len ? next - off : len;
			memset(p, 0, n);
			goto next;
		}
		c = &s->chunks[i];
		n = (c->sector + c->count) * 512 - off;
		if (n > len)
			n = len;
		switch (c->type) {
		case DMG_T_ZERO:
		case DMG_T_IGNORE:
			memset(p, 0, n);
			break;
		case DMG_T_RAW:
			ret = fmt_store_pread(img->store, p, n, c->offset + off - c->sector * 512);
			break;
		case DMG_T_ZLIB:
			ret = dmg_inflate(img, i);
			if (ret == 0)
				memcpy(p, s->dbuf + (off - c->sector * 512), n);
			break;
		default:
			fmt_error("%s: unsupported chunk type 0x%08x at sector %" PRIu64, img->spec, c->type,
				  c->sector);
			ret = -ENOTSUP;
			break;
		}
		if (ret < 0)
			return ret;
next:
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int dmg_block_status(struct fmt_image *img, uint64_t off, uint64_t len, unsigned *bits,
			    uint64_t *run)
{
	struct dmg_state *s = img->priv;
	uint64_t sector = off / 512, end;
	size_t i = dmg_find(s, sector);
	if (i == s->nr || s->chunks[i].sector > sector) {
		end = i == s->nr ? off + len : s->chunks[i].sector * 512;
		*bits = FMT_BS_ZERO | FMT_BS_ALLOCATED;
	} else {
		struct dmg_chunk *c = &s->chunks[i];
		end = (c->sector + c->count) * 512;
		if (c->type == DMG_T_ZERO || c->type == DMG_T_IGNORE)
			*bits = FMT_BS_ZERO | FMT_BS_ALLOCATED;
		else
			*bits = FMT_BS_DATA | FMT_BS_ALLOCATED | (c->type == DMG_T_RAW ? 0 : FMT_BS_COMPRESSED);
	}
	*run = (end < off + len ? end : off + len) - off;
	return 0;
}

const struct fmt_driver fmt_dmg_driver = {
	.name = "dmg",
	.probe = dmg_probe,
	.open = dmg_open,
	.read = dmg_read,
	.block_status = dmg_block_status,
	.close = dmg_close,
};
