/*
 * log.c - levelled log lines to stderr.
 *
 * Owns the process's log level and role string. Every line is built in one
 * buffer and handed to a single write(2): the master and all its workers
 * share one stderr, and lines no longer than PIPE_BUF written in one call do
 * not interleave on a pipe (and O_APPEND files and terminals behave the same
 * in practice). A line longer than the buffer is cut and ends with "...".
 *
 * Control bytes in messages (a Host header, a path) are escaped as \xNN so a
 * client cannot forge log lines.
 *
 * Format:
 *   2026-11-22T10:00:00.123Z [1234] worker 3 notice: message
 *   2026-11-22T10:00:00.123Z [1234] worker 3 debug: gateway/conn.c:88: message
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/common.h"
#include "log.h"

#define LOG_LINE_MAX    PIPE_BUF        /* atomic on pipes */
#define LOG_ROLE_MAX    48

static enum cr_log_level log_level = CR_LOG_NOTICE;
static char log_role[LOG_ROLE_MAX] = "master";

static const char *const level_names[] = {
    [CR_LOG_ERROR]  = "error",
    [CR_LOG_WARN]   = "warn",
    [CR_LOG_NOTICE] = "notice",
    [CR_LOG_INFO]   = "info",
    [CR_LOG_DEBUG]  = "debug",
};

void
cr_log_set_level(enum cr_log_level level)
{
    if (level > CR_LOG_DEBUG) {
        level = CR_LOG_DEBUG;
    }
    log_level = level;
}

int
cr_log_level_parse(const char *s)
{
    size_t i;

    if (s == NULL) {
        return -1;
    }
    for (i = 0; i < CR_NELEM(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            return (int)i;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        return CR_LOG_WARN;
    }
    return -1;
}

void
cr_log_set_role(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(log_role, sizeof(log_role), fmt, ap);
    va_end(ap);
}

int
cr_log_enabled(enum cr_log_level level)
{
    return level <= log_level;
}

/*
 * Append <src> to <buf> (<len> used of <size>), escaping control bytes.
 * Returns the new length; sets <*cut> if <src> did not fit.
 */
static size_t
append_escaped(char *buf, size_t len, size_t size, const char *src, int *cut)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p;

    for (p = (const unsigned char *)src; *p != '\0'; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            if (len + 1 > size) {
                *cut = 1;
                break;
            }
            buf[len++] = (char)*p;
        } else {
            if (len + 4 > size) {
                *cut = 1;
                break;
            }
            buf[len++] = '\\';
            buf[len++] = 'x';
            buf[len++] = hex[*p >> 4];
            buf[len++] = hex[*p & 0xf];
        }
    }
    return len;
}

/* Write all of <buf>, retrying on EINTR; a log line is never worth more. */
static void
write_all(const char *buf, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(STDERR_FILENO, buf, len);
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/*
 * Build and write one line. <file> and <line> are printed for debug lines
 * only, and not at all when <file> is NULL (libevent's messages). errno is
 * preserved so callers may log before reporting it.
 */
static void
log_va(enum cr_log_level level, const char *file, int line, const char *fmt, va_list ap)
{
    char line_buf[LOG_LINE_MAX];
    char msg[LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    size_t len;
    int saved_errno, n, cut;

    saved_errno = errno;
    if (level > CR_LOG_DEBUG) {
        level = CR_LOG_DEBUG;
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    len = strftime(line_buf, sizeof(line_buf), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line_buf + len, sizeof(line_buf) - len, ".%03ldZ [%ld] %s %s: ",
                 ts.tv_nsec / 1000000, (long)getpid(), log_role, level_names[level]);
    len += (size_t)n;
    if (level == CR_LOG_DEBUG && file != NULL) {
        n = snprintf(line_buf + len, sizeof(line_buf) - len, "%s:%d: ", file, line);
        if (n > 0) {
            len += (size_t)n;
        }
    }
    if (len > sizeof(line_buf) - 8) {
        len = sizeof(line_buf) - 8;
    }

    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    cut = n < 0 || (size_t)n >= sizeof(msg);

    /* keep room for "...\n" */
    len = append_escaped(line_buf, len, sizeof(line_buf) - 4, msg, &cut);
    if (cut) {
        memcpy(line_buf + len, "...", 3);
        len += 3;
    }
    line_buf[len++] = '\n';
    write_all(line_buf, len);

    errno = saved_errno;
}

void
cr_log_write(enum cr_log_level level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_va(level, file, line, fmt, ap);
    va_end(ap);
}

/* Print without the printf checks, for strings that are not formats. */
static void
log_str(enum cr_log_level level, const char *prefix, const char *msg)
{
    cr_log_write(level, NULL, 0, "%s%s", prefix, msg);
}

/* libevent's messages: EVENT_LOG_{DEBUG,MSG,WARN,ERR}. */
static void
libevent_log_cb(int severity, const char *msg)
{
    enum cr_log_level level;

    switch (severity) {
    case EVENT_LOG_DEBUG:
        level = CR_LOG_DEBUG;
        break;
    case EVENT_LOG_MSG:
        level = CR_LOG_INFO;
        break;
    case EVENT_LOG_WARN:
        level = CR_LOG_WARN;
        break;
    default:
        level = CR_LOG_ERROR;
        break;
    }
    if (cr_log_enabled(level)) {
        log_str(level, "libevent: ", msg);
    }
}

void
cr_log_init(void)
{
    event_set_log_callback(libevent_log_cb);
}
