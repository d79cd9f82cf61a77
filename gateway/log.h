/*
 * log.h - levelled log lines to stderr.
 *
 * Owns the process's log level and role ("master", "worker 3"). Each line:
 *   2026-11-22T10:00:00.123Z [1234] worker 3 notice: message
 * libevent's own messages are routed here too (cr_log_init()).
 */
#ifndef CR_LOG_H
#define CR_LOG_H

enum cr_log_level {
    CR_LOG_ERROR = 0,
    CR_LOG_WARN,
    CR_LOG_NOTICE,
    CR_LOG_INFO,
    CR_LOG_DEBUG
};

void cr_log_init(void);                         /* libevent log callbacks */
void cr_log_set_level(enum cr_log_level level);
int  cr_log_level_parse(const char *s);         /* "info" -> CR_LOG_INFO, -1 if unknown */
void cr_log_set_role(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int  cr_log_enabled(enum cr_log_level level);
void cr_log_write(enum cr_log_level level, const char *file, int line,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define cr_log(lvl, ...)                                                \
    do {                                                                \
        if (cr_log_enabled(lvl)) {                                      \
            cr_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);       \
        }                                                               \
    } while (0)

#define cr_log_error(...)   cr_log(CR_LOG_ERROR, __VA_ARGS__)
#define cr_log_warn(...)    cr_log(CR_LOG_WARN, __VA_ARGS__)
#define cr_log_notice(...)  cr_log(CR_LOG_NOTICE, __VA_ARGS__)
#define cr_log_info(...)    cr_log(CR_LOG_INFO, __VA_ARGS__)
#define cr_log_debug(...)   cr_log(CR_LOG_DEBUG, __VA_ARGS__)

#endif /* CR_LOG_H */
