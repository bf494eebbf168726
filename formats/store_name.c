/* store_name.c: where a name that an image holds (backing file, data file, extent, parent)
 * lives: relative names are taken from the image's own location (a file's directory, a URL's
 * path, a VDI's cluster); a remote image (URL, VDI) may only name what lies at its own location
 * unless the caller allows any name on purpose. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "formats.h"

bool fmt_store_is_url(const char *s)
{
	const char *p = strstr(s, "://");
	if (!p || p == s)
		return false;
	for (const char *q = s; q < p; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '+'))
			return false;
	return true;
}

/* Where a file named inside an image (backing file, extent) lives. Absolute names and URLs stand
 * as they are; a relative name is taken from the directory of spec (a URL's path, a file's dir). */
char *fmt_store_sibling(const char *spec, const char *name)
{
	char *out;
	size_t dirlen = 0;

	if (!spec || !name)
		return NULL;
	if (!strncmp(spec, "mem:", 4)) {   /* never leave memory */
		const char *base = !strncmp(name, "mem:", 4) ? name + 4 : name;
		if (asprintf(&out, "mem:%s", base) < 0)
			return NULL;
		return out;
	}
	if (name[0] == '/' || fmt_store_is_url(name) || !strncmp(name, "sheepdog:", 9))
		return strdup(name);
	if (!strncmp(spec, "sheepdog:", 9) && !fmt_store_is_url(spec)) {
		/* sheepdog:HOST:PORT:VDI -> same host and port; sheepdog:VDI -> sheepdog:NAME */
		int colons = 0;
		for (const char *p = spec; *p; p++)
			colons += *p == ':';
		if (colons >= 3) {
			const char *p = spec;
			for (int i = 0; i < 3; i++)
				p = strchr(p, ':') + 1;
			dirlen = p - spec;
		} else {
			dirlen = 9;
		}
	} else {
		const char *slash = strrchr(spec, '/');
		if (fmt_store_is_url(spec)) {
			const char *path = strchr(strstr(spec, "://") + 3, '/');
			if (!path) {
				if (asprintf(&out, "%s/%s", spec, name) < 0)
					return NULL;
				return out;
			}
		}
		if (slash)
			dirlen = slash - spec + 1;
	}
	out = malloc(dirlen + strlen(name) + 1);
	if (!out)
		return NULL;
	memcpy(out, spec, dirlen);
	strcpy(out + dirlen, name);
	return out;
}

/* ---- what a remote image may name ---------------------------------------------------------- */

static bool store_name_follow_any;

void fmt_store_set_follow_any_name(bool allow)
{
	__atomic_store_n(&store_name_follow_any, allow, __ATOMIC_RELAXED);
}

/* The location a remote spec stands at, as a prefix length: "scheme://authority" of a URL,
 * "sheepdog:HOST:PORT:" or "sheepdog:" of a VDI. 0 for a local file or a memory store. */
static size_t store_name_location(const char *spec)
{
	if (fmt_store_is_url(spec)) {
		const char *auth = strstr(spec, "://") + 3;
		return strcspn(auth, "/?#") + (size_t)(auth - spec);
	}
	if (!strncmp(spec, "sheepdog:", 9)) {
		const char *p = spec;
		int colons = 0;
		for (const char *q = spec; *q; q++)
			colons += *q == ':';
		if (colons < 3)
			return 9;
		for (int i = 0; i < 3; i++)
			p = strchr(p, ':') + 1;
		return (size_t)(p - spec);
	}
	return 0;
}

int fmt_store_name_resolve(const char *spec, const char *name, const char *what, char **out)
{
	size_t loc = store_name_location(spec);
	char *path = fmt_store_sibling(spec, name);

	*out = NULL;
	if (!path) {
		fmt_error("%s: out of memory", spec);
		return -ENOMEM;
	}
	if (loc && !__atomic_load_n(&store_name_follow_any, __ATOMIC_RELAXED) &&
	    (store_name_location(path) != loc || strncasecmp(path, spec, loc))) {
		fmt_error("%s: %s '%s' is not at the remote image's own location; refused "
			  "(--allow-local-backing follows it)", spec, what, name);
		free(path);
		return -EPERM;
	}
	*out = path;
	return 0;
}
