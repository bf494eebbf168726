/* logger.h: leveled, timestamped, thread-safe logging to a file or stderr, and per-call-site
 * rate limiting for messages a remote party can trigger at will. */
#ifndef LOGGER_H
#define LOGGER_H

#include <pthread.h>

enum log_level { LOG_EMERG_ = 0, LOG_ERR_ = 3, LOG_WARN_ = 4, LOG_INFO_ = 6, LOG_DEBUG_ = 7 };

/* path NULL: stderr. Returns 0 or -errno. */
int log_open(const char *path, int level, const char *prog);
void log_close(void);
void log_set_level(int level);
int log_get_level(void);
int log_level_from_name(const char *name);   /* "info", "debug", "3"... -1 if unknown */
const char *log_level_name(int level);       /* "INFO" */
void log_write(int level, const char *func, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define sd_log(lvl, ...) do { if ((lvl) <= log_get_level()) log_write(lvl, __func__, __LINE__, __VA_ARGS__); } while (0)
#define sd_emerg(...) sd_log(LOG_EMERG_, __VA_ARGS__)
#define sd_err(...)   sd_log(LOG_ERR_, __VA_ARGS__)
#define sd_warn(...)  sd_log(LOG_WARN_, __VA_ARGS__)
#define sd_info(...)  sd_log(LOG_INFO_, __VA_ARGS__)
#define sd_debug(...) sd_log(LOG_DEBUG_, __VA_ARGS__)

/* A call site's rate limit: at most burst messages per window; the rest are counted and reported
 * as "N more like this in the last M s" with the first message of a later window. */
struct log_ratelimit {
	pthread_mutex_t lock;
	long long window_start_ms;
	unsigned printed;
	unsigned suppressed;
	/* where the count is reported from (set when it first suppresses one) */
	int level, line;
	const char *func;
	struct log_ratelimit *next_listed;
	int listed;
};
#define LOG_RATELIMIT_INIT { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, NULL, NULL, 0 }
#define LOG_RATELIMIT_BURST   10     /* defaults; sheep --log-ratelimit changes them */
#define LOG_RATELIMIT_WINDOW  5      /* seconds */
/* burst 0 turns rate limiting off */
void log_set_ratelimit(unsigned burst, unsigned window_s);
/* true: print this message (after reporting what an earlier window suppressed) */
int log_ratelimit_pass(struct log_ratelimit *rl, int level, const char *func, int line);
/* report the counts of call sites whose window has ended with messages suppressed, even if the
 * site is quiet now (sheep calls it from a timer) */
void log_ratelimit_flush(void);

#define sd_log_rl(lvl, ...) do { \
	static struct log_ratelimit rl_ = LOG_RATELIMIT_INIT; \
	if ((lvl) <= log_get_level() && log_ratelimit_pass(&rl_, lvl, __func__, __LINE__)) \
		log_write(lvl, __func__, __LINE__, __VA_ARGS__); \
} while (0)
#define sd_err_rl(...)   sd_log_rl(LOG_ERR_, __VA_ARGS__)
#define sd_warn_rl(...)  sd_log_rl(LOG_WARN_, __VA_ARGS__)
#define sd_info_rl(...)  sd_log_rl(LOG_INFO_, __VA_ARGS__)
#define sd_debug_rl(...) sd_log_rl(LOG_DEBUG_, __VA_ARGS__)

#endif
