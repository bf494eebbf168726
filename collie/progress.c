/* progress.c: the progress bar of long collie work: on stderr, on by default on a terminal. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "collie.h"
#include "progress.h"
#include "util.h"

#define PROGRESS_BAR_WIDTH 30
#define PROGRESS_REDRAW_NS (100ull * 1000 * 1000)

void progress_start(struct progress *p, const char *what, bool forced, bool bytes)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->bytes = bytes;
	p->on = forced || (isatty(STDERR_FILENO) && !opt_set(OPT_NO_PROGRESS));
}

static void progress_draw(struct progress *p, uint64_t done, uint64_t total, bool last)
{
	char bar[PROGRESS_BAR_WIDTH + 1], a[32], b[32], line[160];
	if (done > total)
		done = total;
	unsigned pct = total ? (unsigned)(100.0 * (double)done / (double)total) : 100;
	unsigned fill = total ? (unsigned)((double)PROGRESS_BAR_WIDTH * (double)done / (double)total)
			      : PROGRESS_BAR_WIDTH;
	for (unsigned i = 0; i < PROGRESS_BAR_WIDTH; i++)
		bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
	bar[PROGRESS_BAR_WIDTH] = 0;
	if (p->bytes)
		snprintf(line, sizeof(line), "%s %3u%% [%s] %s / %s", p->what, pct, bar,
			 size_to_str(done, a, sizeof(a)), size_to_str(total, b, sizeof(b)));
	else
		snprintf(line, sizeof(line), "%s %3u%% [%s] %llu / %llu", p->what, pct, bar,
			 (unsigned long long)done, (unsigned long long)total);
	int len = (int)strlen(line);
	fprintf(stderr, "\r%s%*s%s", line, p->width > len ? p->width - len : 0, "", last ? "\n" : "");
	fflush(stderr);
	p->width = len;
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	if (!p->on)
		return;
	uint64_t now = now_ns();
	if (p->last_ns && now - p->last_ns < PROGRESS_REDRAW_NS)
		return;
	p->last_ns = now;
	progress_draw(p, done, total, false);
}

void progress_end(struct progress *p, uint64_t done, uint64_t total)
{
	if (!p->on)
		return;
	progress_draw(p, done, total, true);
	p->on = false;
}
