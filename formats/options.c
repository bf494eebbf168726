/* options.c: qemu-style "key=value,key=value" option lists (',,' escapes a comma), their typed
 * getters, the "was every option used" check, and the secrets registered with --object.
 * Getters mark a key as used, so a driver that reads an option has consumed it. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

struct fmt_option {
	char *key, *value;
	bool used;
};

struct fmt_options {
	struct fmt_option *v;
	int nr, cap;
};

static struct fmt_option *options_find(const struct fmt_options *opts, const char *key)
{
	if (!opts)
		return NULL;
	/* the last setting of a key wins, as with qemu */
	for (int i = opts->nr - 1; i >= 0; i--)
		if (!strcmp(opts->v[i].key, key))
			return &opts->v[i];
	return NULL;
}

int fmt_options_set(struct fmt_options **opts, const char *key, const char *value)
{
	struct fmt_options *o = *opts;

	if (!o) {
		o = calloc(1, sizeof(*o));
		if (!o)
			return -ENOMEM;
		*opts = o;
	}
	if (o->nr == o->cap) {
		int cap = o->cap ? o->cap * 2 : 8;
		struct fmt_option *v = realloc(o->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->nr].key = strdup(key);
	o->v[o->nr].value = strdup(value ? value : "");
	o->v[o->nr].used = false;
	if (!o->v[o->nr].key || !o->v[o->nr].value) {
		free(o->v[o->nr].key);
		free(o->v[o->nr].value);
		return -ENOMEM;
	}
	o->nr++;
	return 0;
}

/* one "key[=value]" item ended by an unescaped ',' or the end; ',,' is a literal comma */
int fmt_options_parse(struct fmt_options **opts, const char *text)
{
	size_t len = text ? strlen(text) : 0;
	char *item = NULL;
	int ret = 0;

	if (!len)
		return 0;
	item = malloc(len + 1);
	if (!item)
		return -ENOMEM;
	const char *p = text;
	while (*p) {
		size_t n = 0;
		while (*p) {
			if (*p == ',' && p[1] == ',') {
				item[n++] = ',';
				p += 2;
				continue;
			}
			if (*p == ',')
				break;
			item[n++] = *p++;
		}
		item[n] = 0;
		if (*p == ',')
			p++;
		if (!n) {
			fmt_error("Invalid option list '%s': empty option", text);
			ret = -EINVAL;
			goto out;
		}
		char *eq = strchr(item, '=');
		if (eq)
			*eq = 0;
		if (!*item) {
			fmt_error("Invalid option list '%s': option without a name", text);
			ret = -EINVAL;
			goto out;
		}
		/* a bare key is a boolean switched on, as qemu's "-o lazy_refcounts" */
		ret = fmt_options_set(opts, item, eq ? eq + 1 : "on");
		if (ret)
			goto out;
	}
out:
	free(item);
	return ret;
}

const char *fmt_options_get(const struct fmt_options *opts, const char *key)
{
	struct fmt_option *o = options_find(opts, key);
	if (!o)
		return NULL;
	fmt_options_use(opts, key);
	return o->value;
}

void fmt_options_use(const struct fmt_options *opts, const char *key)
{
	if (!opts)
		return;
	for (int i = 0; i < opts->nr; i++)
		if (!strcmp(opts->v[i].key, key))
			opts->v[i].used = true;
}

int fmt_options_check_unused(const struct fmt_options *opts, const char *fmt_name)
{
	if (!opts)
		return 0;
	for (int i = 0; i < opts->nr; i++)
		if (!opts->v[i].used) {
			fmt_error("Invalid parameter '%s'%s%s%s", opts->v[i].key, fmt_name ? " for format '" : "",
				  fmt_name ? fmt_name : "", fmt_name ? "'" : "");
			return -EINVAL;
		}
	return 0;
}

/* sizes as qemu takes them: a decimal number (fractions allowed) with an optional
 * k/K, M, G, T, P, E suffix (powers of 1024), or a plain byte count */
static int options_parse_size(const char *s, uint64_t *out)
{
	char *end;
	double mult = 1;

	if (!s || !*s || !(isdigit((unsigned char)*s) || *s == '.'))
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 0: break;
	case 'b': case 'B': end++; break;
	case 'k': case 'K': mult = 1ULL << 10; end++; break;
	case 'm': case 'M': mult = 1ULL << 20; end++; break;
	case 'g': case 'G': mult = 1ULL << 30; end++; break;
	case 't': case 'T': mult = 1ULL << 40; end++; break;
	case 'p': case 'P': mult = 1ULL << 50; end++; break;
	case 'e': case 'E': mult = 1ULL << 60; end++; break;
	default: return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	v *= mult;
	if (v < 0 || v >= 18446744073709551615.0)
		return -ERANGE;
	if (mult == 1 && strchr(s, '.'))
		return -EINVAL;   /* fractional bytes */
	*out = (uint64_t)v;
	return 0;
}

int fmt_options_get_size(const struct fmt_options *opts, const char *key, uint64_t def, uint64_t *out)
{
	const char *v = fmt_options_get(opts, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (options_parse_size(v, out) < 0) {
		fmt_error("Parameter '%s' expects a size (a number with an optional k, M, G, T, P or E suffix), not '%s'",
			  key, v);
		return -EINVAL;
	}
	return 0;
}

int fmt_options_get_bool(const struct fmt_options *opts, const char *key, bool def, bool *out)
{
	const char *v = fmt_options_get(opts, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "y")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "n")) {
		*out = false;
		return 0;
	}
	fmt_error("Parameter '%s' expects 'on' or 'off'", key);
	return -EINVAL;
}

void fmt_options_free(struct fmt_options *opts)
{
	if (!opts)
		return;
	for (int i = 0; i < opts->nr; i++) {
		free(opts->v[i].key);
		free(opts->v[i].value);
	}
	free(opts->v);
	free(opts);
}

/* ---- secrets --------------------------------------------------------------------------- */

struct options_secret {
	char *id, *data;
	struct options_secret *next;
};

static struct options_secret *secrets;
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;

/* read a secret file whole (at most 64 KiB); qemu keeps the bytes as they are, so we do too */
static char *options_read_secret_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	size_t n;

	if (!fp) {
		fmt_error("%s: cannot read the secret file: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(65537);
	if (!buf)
		goto out;
	n = fread(buf, 1, 65537, fp);
	if (ferror(fp) || n > 65536) {
		fmt_error("%s: cannot read the secret file (error or longer than 64 KiB)", path);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = 0;
	if (strlen(buf) != n) {
		fmt_error("%s: the secret file contains a NUL byte", path);
		free(buf);
		buf = NULL;
	}
out:
	fclose(fp);
	return buf;
}

/* "secret,id=ID,data=D" or "secret,id=ID,file=F" (format=raw only) */
int fmt_secret_add(const char *object_spec)
{
	struct fmt_options *o = NULL;
	struct options_secret *s = NULL;
	const char *type, *id, *data, *file, *format;
	int ret;

	if (!object_spec || strncmp(object_spec, "secret,", 7)) {
		fmt_error("Invalid object '%s': only 'secret,id=ID,data=DATA' or 'secret,id=ID,file=FILE' is supported",
			  object_spec ? object_spec : "");
		return -EINVAL;
	}
	ret = fmt_options_parse(&o, object_spec);
	if (ret)
		goto out;
	type = fmt_options_get(o, "secret");
	(void)type;
	id = fmt_options_get(o, "id");
	data = fmt_options_get(o, "data");
	file = fmt_options_get(o, "file");
	format = fmt_options_get(o, "format");
	ret = -EINVAL;
	if (!id || !*id) {
		fmt_error("Invalid object '%s': parameter 'id' is missing", object_spec);
		goto out;
	}
	if (!!data == !!file) {
		fmt_error("secret '%s': give exactly one of 'data' and 'file'", id);
		goto out;
	}
	if (format && strcmp(format, "raw")) {
		fmt_error("secret '%s': only format=raw is supported", id);
		goto out;
	}
	if (fmt_options_check_unused(o, NULL))
		goto out;
	ret = -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	s->id = strdup(id);
	s->data = file ? options_read_secret_file(file) : strdup(data);
	if (!s->id || !s->data) {
		ret = file ? -EINVAL : -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&secrets_lock);
	s->next = secrets;
	secrets = s;
	pthread_mutex_unlock(&secrets_lock);
	s = NULL;
	ret = 0;
out:
	if (s) {
		free(s->id);
		free(s->data);
		free(s);
	}
	fmt_options_free(o);
	return ret;
}

const char *fmt_secret_get(const char *id)
{
	const char *ret = NULL;
	if (!id)
		return NULL;
	pthread_mutex_lock(&secrets_lock);
	for (struct options_secret *s = secrets; s; s = s->next)
		if (!strcmp(s->id, id)) {
			ret = s->data;
			break;
		}
	pthread_mutex_unlock(&secrets_lock);
	return ret;
}
