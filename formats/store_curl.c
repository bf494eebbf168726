/* store_curl.c: read-only byte stores over http, https, ftp, ftps and tftp (libcurl).
 *
 * A server that honours range requests is read at random: one ranged GET per read, on a pooled
 * handle, retried with back-off on transient failures (connection errors, timeouts, short
 * bodies, HTTP 5xx and 429). A server without ranges (and tftp) is streamed: one GET feeds a
 * ring buffer from a thread; reads move forward (the first 1 MiB is kept, so probing and
 * re-reading headers work). The first read behind the stream restarts the transfer from the start
 * and from then on spools what it downloads into an unlinked temporary file ($TMPDIR or
 * /var/tmp), so formats that jump around (qcow2 tables) cost one download, not one per jump.
 * A server that does not tell the size (tftp) is spooled from the start while it is measured. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "formats.h"

#define CURL_POOL_MAX     16
#define CURL_RETRIES      5
#define CURL_RING_SIZE    (4u << 20)
#define CURL_HEAD_MAX     (1u << 20)
#define CURL_TIMEOUT_SECS 30L

struct store_curl {
	pthread_mutex_t lock;
	CURL *pool[CURL_POOL_MAX];
	int nr_pool;
	bool is_http;

	/* streaming */
	bool stream;
	pthread_t thread;
	bool thread_running;
	pthread_cond_t cond;
	uint8_t *ring;
	size_t ring_start, ring_len;   /* bytes at stream position pos .. pos+ring_len */
	uint64_t pos;                  /* stream offset of the ring's first byte */
	bool abort, eof;
	CURLcode result;
	long http_code;
	int retries;                   /* transient failures of the stream so far */
	int spool_fd;                  /* -1, or the temporary file holding [0, spool_len) */
	uint64_t spool_len;
	int spool_err;
	uint8_t *head;                 /* bytes [0, head_len) of the file */
	size_t head_len;
	char *spec;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void store_curl_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool store_curl_matches(const char *spec)
{
	static const char *const schemes[] = { "http://", "https://", "ftp://", "ftps://", "tftp://" };
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncasecmp(spec, schemes[i], strlen(schemes[i])))
			return true;
	return false;
}

static void store_curl_setup(CURL *h, const char *url)
{
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	/* a stalled transfer fails instead of hanging */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, CURL_TIMEOUT_SECS);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "sheepfold-collie");
}

static CURL *store_curl_get(struct store_curl *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->lock);
	if (c->nr_pool)
		h = c->pool[--c->nr_pool];
	pthread_mutex_unlock(&c->lock);
	return h ? h : curl_easy_init();
}

static void store_curl_put(struct store_curl *c, CURL *h)
{
	pthread_mutex_lock(&c->lock);
	if (c->nr_pool < CURL_POOL_MAX) {
		c->pool[c->nr_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (h)
		curl_easy_cleanup(h);
}

static bool store_curl_transient(CURLcode rc, long code)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	case CURLE_OK:
		return code >= 500 || code == 429;
	default:
		return false;
	}
}

static void store_curl_backoff(int attempt)
{
	usleep(100000u << (attempt < 5 ? attempt : 5));
}

struct curl_sink {
	uint8_t *buf;
	size_t len, got;
};

static size_t store_curl_sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct curl_sink *s = arg;
	size_t n = size * nmemb, take = n;
	if (take > s->len - s->got)
		take = s->len - s->got;
	memcpy(s->buf + s->got, data, take);
	s->got += take;
	return n;
}

static size_t store_curl_discard(char *data, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

/* the range probe: more bytes than asked for means the range was ignored; stop at once */
static size_t store_curl_probe_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct curl_sink *s = arg;
	size_t n = size * nmemb;
	if (n > s->len - s->got) {
		s->got = s->len + 1;
		return 0;
	}
	memcpy(s->buf + s->got, data, n);
	s->got += n;
	return n;
}

/* HEAD (or ftp SIZE): the length, -1 if the server does not say */
static int store_curl_probe_size(struct fmt_store *st, CURL *h, int64_t *size)
{
	curl_off_t cl = -1;
	long code = 0;
	CURLcode rc = CURLE_OK;

	if (!strncasecmp(st->spec, "tftp", 4)) {
		*size = -1;   /* tftp has no HEAD: the stream will tell */
		return 0;
	}
	for (int attempt = 0; attempt <= CURL_RETRIES; attempt++) {
		store_curl_setup(h, st->spec);
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, store_curl_discard);
		curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
		rc = curl_easy_perform(h);
		code = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		if (!store_curl_transient(rc, code) || attempt == CURL_RETRIES)
			break;
		store_curl_backoff(attempt);
	}
	if (rc != CURLE_OK) {
		fmt_error("%s: Could not open: %s", st->spec, curl_easy_strerror(rc));
		return -EIO;
	}
	if (code >= 400) {
		fmt_error("%s: Could not open: the server answered %ld", st->spec, code);
		return code == 404 ? -ENOENT : -EIO;
	}
	curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	*size = cl;
	return 0;
}

/* does a ranged GET come back as 206 with exactly the bytes asked for? */
static bool store_curl_has_ranges(struct fmt_store *st, CURL *h, int64_t size)
{
	uint8_t b[2];
	struct curl_sink s = { b, sizeof(b), 0 };
	long code = 0;
	CURLcode rc;

	if (size < 2)
		return false;
	store_curl_setup(h, st->spec);
	curl_easy_setopt(h, CURLOPT_RANGE, "0-1");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, store_curl_probe_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK)
		return false;
	if (!strncasecmp(st->spec, "ftp", 3))
		return rc == CURLE_OK && s.got == 2;   /* REST works */
	return code == 206 && s.got == 2;
}

/* ---- ranged reads ------------------------------------------------------------------------- */

static int store_curl_range_read(struct fmt_store *st, void *buf, size_t len, uint64_t off)
{
	struct store_curl *c = st->priv;
	CURL *h = store_curl_get(c);
	char range[64];
	CURLcode rc = CURLE_OK;
	long code = 0;
	struct curl_sink s;

	if (!h) {
		fmt_error("%s: out of memory", st->spec);
		return -ENOMEM;
	}
	snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)off, (unsigned long long)(off + len - 1));
	for (int attempt = 0; attempt <= CURL_RETRIES; attempt++) {
		s = (struct curl_sink){ buf, len, 0 };
		store_curl_setup(h, st->spec);
		curl_easy_setopt(h, CURLOPT_RANGE, range);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, store_curl_sink_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
		rc = curl_easy_perform(h);
		code = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		if (rc == CURLE_OK && (!c->is_http || code == 206) && s.got == len)
			break;
		if (rc == CURLE_OK && s.got != len)
			rc = CURLE_PARTIAL_FILE;
		if (rc == CURLE_OK && c->is_http && code != 206 && code < 500 && code != 429)
			break;
		if (!store_curl_transient(rc, code) || attempt == CURL_RETRIES)
			break;
		store_curl_backoff(attempt);
	}
	store_curl_put(c, h);
	if (rc != CURLE_OK) {
		fmt_error("%s: read of %zu bytes at offset %llu failed: %s", st->spec, len, (unsigned long long)off,
			  curl_easy_strerror(rc));
		return -EIO;
	}
	if (c->is_http && code != 206) {
		fmt_error("%s: read at offset %llu failed: the server answered %ld", st->spec,
			  (unsigned long long)off, code);
		return -EIO;
	}
	return 0;
}

/* ---- streaming ---------------------------------------------------------------------------- */

static size_t store_curl_stream_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct store_curl *c = arg;
	size_t n = size * nmemb, done = 0;

	pthread_mutex_lock(&c->lock);
	while (done < n) {
		while (c->ring_len == CURL_RING_SIZE && !c->abort)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->abort) {
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		size_t tail = (c->ring_start + c->ring_len) % CURL_RING_SIZE;
		size_t room = CURL_RING_SIZE - c->ring_len;
		size_t take = n - done < room ? n - done : room;
		if (take > CURL_RING_SIZE - tail)
			take = CURL_RING_SIZE - tail;
		memcpy(c->ring + tail, data + done, take);
		c->ring_len += take;
		done += take;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return n;
}

static void *store_curl_stream_thread(void *arg)
{
	struct fmt_store *st = arg;
	struct store_curl *c = st->priv;
	CURL *h = curl_easy_init();
	CURLcode rc = CURLE_OUT_OF_MEMORY;
	long code = 0;

	if (h) {
		store_curl_setup(h, c->spec);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, store_curl_stream_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_cleanup(h);
	}
	pthread_mutex_lock(&c->lock);
	c->eof = true;
	c->result = rc;
	c->http_code = code;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* called with c->lock held */
static void store_curl_stream_stop(struct store_curl *c)
{
	if (!c->thread_running)
		return;
	c->abort = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_mutex_lock(&c->lock);
	c->thread_running = false;
}

/* called with c->lock held: (re)start the transfer at offset 0 */
static int store_curl_stream_start(struct fmt_store *st)
{
	struct store_curl *c = st->priv;
	store_curl_stream_stop(c);
	c->abort = c->eof = false;
	c->ring_start = c->ring_len = 0;
	c->pos = 0;
	c->result = CURLE_OK;
	c->http_code = 0;
	if (pthread_create(&c->thread, NULL, store_curl_stream_thread, st)) {
		fmt_error("%s: cannot start the download thread", st->spec);
		return -EAGAIN;
	}
	c->thread_running = true;
	return 0;
}

/* take n bytes off the stream (into dst, or dropped); keeps the head cache filled */
static void store_curl_stream_take(struct store_curl *c, uint8_t *dst, size_t n)
{
	for (size_t done = 0; done < n;) {
		size_t piece = n - done;
		if (piece > CURL_RING_SIZE - c->ring_start)
			piece = CURL_RING_SIZE - c->ring_start;
		const uint8_t *src = c->ring + c->ring_start;
		if (c->pos < CURL_HEAD_MAX && c->pos == c->head_len) {
			size_t h = CURL_HEAD_MAX - c->pos < piece ? CURL_HEAD_MAX - c->pos : piece;
			memcpy(c->head + c->head_len, src, h);
			c->head_len += h;
		}
		if (dst)
			memcpy(dst + done, src, piece);
		if (c->spool_fd >= 0 && c->pos == c->spool_len && !c->spool_err) {
			for (size_t w = 0; w < piece;) {
				ssize_t r = pwrite(c->spool_fd, src + w, piece - w, c->pos + w);
				if (r <= 0) {
					c->spool_err = r < 0 ? errno : ENOSPC;
					break;
				}
				w += r;
			}
			if (!c->spool_err)
				c->spool_len += piece;
		}
		c->ring_start = (c->ring_start + piece) % CURL_RING_SIZE;
		c->ring_len -= piece;
		c->pos += piece;
		done += piece;
	}
	pthread_cond_broadcast(&c->cond);
}

/* an unlinked temporary file for the spool */
static int store_curl_spool_open(struct fmt_store *st)
{
	struct store_curl *c = st->priv;
	const char *dir = getenv("TMPDIR");
	char path[4096];

	snprintf(path, sizeof(path), "%s/collie-spool.XXXXXX", dir && *dir ? dir : "/var/tmp");
	c->spool_fd = mkstemp(path);
	if (c->spool_fd < 0) {
		int e = errno;
		fmt_error("%s: the server has no range support and no temporary file could be made in %s: %s",
			  st->spec, dir && *dir ? dir : "/var/tmp", strerror(e));
		return -e;
	}
	unlink(path);
	c->spool_len = 0;
	c->spool_err = 0;
	return 0;
}

static int store_curl_spool_read(struct fmt_store *st, uint8_t *p, size_t n, uint64_t off)
{
	struct store_curl *c = st->priv;
	for (size_t done = 0; done < n;) {
		ssize_t r = pread(c->spool_fd, p + done, n - done, off + done);
		if (r <= 0) {
			fmt_error("%s: cannot read the download spool: %s", st->spec, r < 0 ? strerror(errno) : "short file");
			return -EIO;
		}
		done += r;
	}
	return 0;
}

static int store_curl_stream_read(struct fmt_store *st, void *buf, size_t len, uint64_t off)
{
	struct store_curl *c = st->priv;
	uint8_t *p = buf;
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	while (len) {
		if (off < c->head_len) {
			size_t n = c->head_len - off < len ? c->head_len - off : len;
			memcpy(p, c->head + off, n);
			p += n;
			off += n;
			len -= n;
			continue;
		}
		if (c->spool_err) {
			fmt_error("%s: cannot write the download spool: %s", st->spec, strerror(c->spool_err));
			ret = -EIO;
			break;
		}
		if (c->spool_fd >= 0 && off < c->spool_len) {
			size_t n = c->spool_len - off < len ? c->spool_len - off : len;
			ret = store_curl_spool_read(st, p, n, off);
			if (ret)
				break;
			p += n;
			off += n;
			len -= n;
			continue;
		}
		if (off < c->pos || !c->thread_running) {
			/* behind the stream: from now on keep what is downloaded */
			if (c->thread_running && c->spool_fd < 0 && (ret = store_curl_spool_open(st)))
				break;
			ret = store_curl_stream_start(st);
			if (ret)
				break;
		}
		while (!c->ring_len && !c->eof)
			pthread_cond_wait(&c->cond, &c->lock);
		if (!c->ring_len) {   /* the transfer ended */
			if (c->result != CURLE_OK || (c->is_http && c->http_code >= 400)) {
				if (store_curl_transient(c->result, c->http_code) && c->retries < CURL_RETRIES) {
					c->retries++;
					pthread_mutex_unlock(&c->lock);
					store_curl_backoff(c->retries);
					pthread_mutex_lock(&c->lock);
					store_curl_stream_stop(c);   /* restart below, skipping to off */
					c->pos = UINT64_MAX;
					continue;
				}
				if (c->result != CURLE_OK)
					fmt_error("%s: download failed at offset %llu: %s", st->spec,
						  (unsigned long long)c->pos, curl_easy_strerror(c->result));
				else
					fmt_error("%s: download failed: the server answered %ld", st->spec, c->http_code);
				ret = -EIO;
				break;
			}
			memset(p, 0, len);   /* shorter than announced: zeros, as past the end */
			break;
		}
		if (c->pos < off) {
			uint64_t skip = off - c->pos;
			store_curl_stream_take(c, NULL, skip < c->ring_len ? skip : c->ring_len);
			continue;
		}
		size_t n = c->ring_len < len ? c->ring_len : len;
		store_curl_stream_take(c, p, n);
		p += n;
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* ---- store operations ----------------------------------------------------------------------- */

static void store_curl_free(struct store_curl *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	store_curl_stream_stop(c);
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < c->nr_pool; i++)
		curl_easy_cleanup(c->pool[i]);
	if (c->spool_fd >= 0)
		close(c->spool_fd);
	free(c->ring);
	free(c->head);
	free(c->spec);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

static int store_curl_open(struct fmt_store *st, const char *spec, int flags)
{
	struct store_curl *c;
	CURL *h;
	int64_t size = -1;
	int ret;

	if (flags & (FMT_STORE_RDWR | FMT_STORE_CREATE)) {
		fmt_error("%s: URLs are read-only", spec);
		return -EROFS;
	}
	pthread_once(&curl_once, store_curl_global_init);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->spool_fd = -1;
	c->is_http = !strncasecmp(spec, "http", 4);
	c->spec = strdup(spec);
	h = curl_easy_init();
	if (!h || !c->spec) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = store_curl_probe_size(st, h, &size);
	if (ret)
		goto fail;
	st->priv = c;
	if (size >= 0 && store_curl_has_ranges(st, h, size)) {
		st->seekable = true;
		st->size = size;
		store_curl_put(c, h);
		return 0;
	}
	curl_easy_cleanup(h);
	h = NULL;
	/* no ranges: stream, and learn a missing size by reading it all once */
	c->stream = true;
	st->seekable = false;
	c->ring = malloc(CURL_RING_SIZE);
	c->head = malloc(CURL_HEAD_MAX);
	if (!c->ring || !c->head) {
		ret = -ENOMEM;
		goto fail;
	}
	if (size < 0) {
		uint8_t *scratch = malloc(1 << 20);
		uint64_t total = 0;
		if (!scratch) {
			ret = -ENOMEM;
			goto fail;
		}
		/* keep what the measuring pass downloads: the reads will come from the spool */
		ret = store_curl_spool_open(st);
		if (ret) {
			free(scratch);
			goto fail;
		}
		pthread_mutex_lock(&c->lock);
		ret = store_curl_stream_start(st);
		while (!ret) {
			while (!c->ring_len && !c->eof)
				pthread_cond_wait(&c->cond, &c->lock);
			if (!c->ring_len)
				break;
			size_t n = c->ring_len < (1 << 20) ? c->ring_len : (1 << 20);
			store_curl_stream_take(c, scratch, n);
			total += n;
		}
		if (!ret && c->result != CURLE_OK) {
			fmt_error("%s: Could not open: %s", spec, curl_easy_strerror(c->result));
			ret = -EIO;
		}
		if (!ret && c->spool_err) {
			fmt_error("%s: cannot write the download spool: %s", spec, strerror(c->spool_err));
			ret = -EIO;
		}
		store_curl_stream_stop(c);
		c->pos = 0;
		c->ring_len = c->ring_start = 0;
		pthread_mutex_unlock(&c->lock);
		free(scratch);
		if (ret)
			goto fail;
		size = total;
	}
	st->size = size;
	return 0;
fail:
	if (h)
		curl_easy_cleanup(h);
	if (ret == -ENOMEM)
		fmt_error("%s: out of memory", spec);
	st->priv = NULL;
	store_curl_free(c);
	return ret;
}

static int store_curl_pread(struct fmt_store *st, void *buf, size_t len, uint64_t off)
{
	struct store_curl *c = st->priv;
	return c->stream ? store_curl_stream_read(st, buf, len, off) : store_curl_range_read(st, buf, len, off);
}

static void store_curl_close(struct fmt_store *st)
{
	store_curl_free(st->priv);
}

const struct fmt_store_ops fmt_store_curl_ops = {
	.name = "curl",
	.matches = store_curl_matches,
	.open = store_curl_open,
	.pread = store_curl_pread,
	.close = store_curl_close,
};
