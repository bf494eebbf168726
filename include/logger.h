/* logger.h: leveled, timestamped, thread-safe logging to a file or stderr. */
#ifndef LOGGER_H
#define LOGGER_H

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

#endif
