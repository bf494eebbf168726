/* error.c: the formats library's one-line error message, kept per thread (fmt_error/fmt_last_error). */
#include <stdarg.h>
#include <stdio.h>

#include "formats.h"

static __thread char error_msg[1024];

void fmt_error(const char *fmt, ...)
{
	va_list ap;
	char tmp[sizeof(error_msg)];

	/* format into a copy first: callers may pass fmt_last_error() as an argument */
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	for (char *p = tmp; *p; p++)   /* one line, always */
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	snprintf(error_msg, sizeof(error_msg), "%s", tmp);
}

const char *fmt_last_error(void)
{
	return error_msg;
}
