/* progress.h: the progress bar of long collie work (import, export, check, alter-copy). */
#ifndef COLLIE_PROGRESS_H
#define COLLIE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

/* --no-progress: never a bar, even on a terminal */
#define OPT_NO_PROGRESS 460
#define PROGRESS_OPTION_ROW { OPT_NO_PROGRESS, "no-progress", 0, NULL, "no progress bar, even on a terminal" }

struct progress {
	const char *what;     /* "import", "check", ... */
	bool on;
	bool bytes;           /* counts are bytes (shown as sizes), else items */
	uint64_t last_ns;     /* when the bar was last drawn */
	int width;            /* characters of the last line, to clear it */
};

/* a bar on stderr when forced (-p where the command has it), else when stderr is a terminal
 * and --no-progress is not given; nothing at all otherwise */
void progress_start(struct progress *p, const char *what, bool forced, bool bytes);
/* redraws at most ten times a second */
void progress_update(struct progress *p, uint64_t done, uint64_t total);
/* draws the final state and ends the line */
void progress_end(struct progress *p, uint64_t done, uint64_t total);

#endif
