/* store_name.c: where a name that an image holds (backing file, data file, extent, parent)
 * lives: relative names are taken from the image's own location (a file's directory, a URL's
 * path, a VDI's cluster). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

static bool store_is_url(const char *s)
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
	if (name[0] == '/' || store_is_url(name) || !strncmp(name, "sheepdog:", 9))
		return strdup(name);
	if (!strncmp(spec, "sheepdog:", 9) && !store_is_url(spec)) {
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
		if (store_is_url(spec)) {
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
