/* logger.c: one log stream per process; a line per message with time, level and function; the
 * per-call-site rate limit that collapses floods of one message into a count. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "logger.h"

static FILE *log_fp;
static int log_level = LOG_INFO_;
static const char *log_prog = "sheep";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {
	[LOG_EMERG_] = "EMERG", [1] = "ALERT", [2] = "CRIT", [LOG_ERR_] = "ERROR",
	[LOG_WARN_] = "WARN", [5] = "NOTICE", [LOG_INFO_] = "INFO", [LOG_DEBUG_] = "DEBUG",
};

int log_open(const char *path, int level, const char *prog)
{
	log_level = level;
	if (prog)
		log_prog = prog;
	if (!path) {
		log_fp = NULL;
		return 0;
	}
	FILE *fp = fopen(path, "a");
	if (!fp)
		return -errno;
	setvbuf(fp, NULL, _IOLBF, 0);
	log_fp = fp;
	return 0;
}

void log_close(void)
{
	if (log_fp)
		fclose(log_fp);
	log_fp = NULL;
}

void log_set_level(int level) { log_level = level; }
int log_get_level(void) { return log_level; }

const char *log_level_name(int level)
{
	return level >= 0 && level <= LOG_DEBUG_ ? level_names[level] : "?";
}

int log_level_from_name(const char *name)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (level_names[i] && !strcasecmp(name, level_names[i]))
			return i;
	if (!strcasecmp(name, "warning"))
		return LOG_WARN_;
	if (!strcasecmp(name, "err"))
		return LOG_ERR_;
	if (name[0] >= '0' && name[0] <= '7' && !name[1])
		return name[0] - '0';
	return -1;
}

void log_write(int level, const char *func, int line, const char *fmt, ...)
{
	char msg[2048], stamp[64];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);

	pthread_mutex_lock(&log_lock);
	FILE *fp = log_fp ? log_fp : stderr;
	fprintf(fp, "%s.%06ld %s %s %s(%d) %s\n", stamp, (long)tv.tv_usec, log_prog,
		level >= 0 && level <= 7 && level_names[level] ? level_names[level] : "?",
		func, line, msg);
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}

static unsigned rl_burst = LOG_RATELIMIT_BURST, rl_window_s = LOG_RATELIMIT_WINDOW;

void log_set_ratelimit(unsigned burst, unsigned window_s)
{
	rl_burst = burst;
	rl_window_s = window_s ? window_s : 1;
}

static long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_mutex_t rl_list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_ratelimit *rl_listed;   /* sites that have suppressed something */

/* rl->lock held: a new window starts; returns the count to report */
static unsigned window_restart(struct log_ratelimit *rl, long long now, long long *span_s)
{
	unsigned report = rl->suppressed;
	*span_s = rl->window_start_ms ? (now - rl->window_start_ms + 999) / 1000 : 0;
	rl->window_start_ms = now;
	rl->printed = 0;
	rl->suppressed = 0;
	return report;
}

static bool window_over(const struct log_ratelimit *rl, long long now)
{
	return !rl->window_start_ms || now - rl->window_start_ms >= (long long)rl_window_s * 1000;
}

static void list_site(struct log_ratelimit *rl)
{
	pthread_mutex_lock(&rl_list_lock);
	rl->next_listed = rl_listed;
	rl_listed = rl;
	pthread_mutex_unlock(&rl_list_lock);
}

int log_ratelimit_pass(struct log_ratelimit *rl, int level, const char *func, int line)
{
	if (!rl_burst)
		return 1;
	long long now = monotonic_ms(), span_s = 0;
	unsigned report = 0;
	bool new_site = false;
	int pass;
	pthread_mutex_lock(&rl->lock);
	if (window_over(rl, now))
		report = window_restart(rl, now, &span_s);
	pass = rl->printed < rl_burst;
	if (pass) {
		rl->printed++;
	} else {
		rl->suppressed++;
		rl->level = level;
		rl->func = func;
		rl->line = line;
		new_site = !rl->listed;
		rl->listed = 1;
	}
	pthread_mutex_unlock(&rl->lock);
	if (new_site)
		list_site(rl);
	if (report)
		log_write(level, func, line, "%u more like this in the last %lld s", report, span_s);
	return pass;
}

void log_ratelimit_flush(void)
{
	long long now = monotonic_ms();
	pthread_mutex_lock(&rl_list_lock);
	for (struct log_ratelimit *rl = rl_listed; rl; rl = rl->next_listed) {
		long long span_s = 0;
		unsigned report = 0;
		pthread_mutex_lock(&rl->lock);
		if (rl->suppressed && window_over(rl, now))
			report = window_restart(rl, now, &span_s);
		pthread_mutex_unlock(&rl->lock);
		if (report)
			log_write(rl->level, rl->func, rl->line, "%u more like this in the last %lld s", report, span_s);
	}
	pthread_mutex_unlock(&rl_list_lock);
}
