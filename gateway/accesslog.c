/*
 * accesslog.c - one line per request, buffered per worker.
 *
 * Design notes
 *
 * Every worker appends to the same file, opened with O_APPEND: the kernel
 * places each write(2) at the end of the file, so lines of two workers
 * never overwrite each other. A worker keeps its lines in a buffer of
 * access_log.buffer bytes and writes only whole lines, when the next line
 * would not fit, when the flush timer fires (access_log.flush) and when it
 * exits or reopens; a line is at most ACCESS_LINE_MAX bytes, longer values are
 * cut. With buffer 0 each line is written at once.
 *
 * Values a client controls (target, Referer, User-Agent, X-Request-Id) are
 * escaped: "combined" writes \xNN for quotes, backslashes, control bytes
 * and bytes past 0x7e (as nginx does); "json" writes \uNNNN for the same
 * bytes, so every line is valid JSON whatever the client sent.
 *
 * Rotation: logrotate moves the file away and runs `corralctl reopen`. The
 * master (still root) creates the new file owned by the configured user
 * (cr_access_log_prepare) and passes SIGUSR1 on; each worker flushes what
 * it holds into the old file, then opens the path again.
 *
 * Request ids: a worker draws 64 random bits at start and numbers its
 * requests; a bijective mix of (seed, counter) gives ids that do not
 * repeat within a worker and look unrelated across workers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include <event2/event.h>
#include <llhttp.h>

#include "conf/conf.h"
#include "accesslog.h"
#include "http.h"
#include "log.h"
#include "stats.h"

#define ACCESS_LINE_MAX 8192        /* one log line, cut past it */
#define FIELD_MAX       2048        /* one client-controlled value */
#define LOG_MODE        0640

struct access_log {
    const struct cr_conf_access_log *conf;
    int              fd;            /* -1: no log */
    int              own_fd;        /* fd is ours to close (not stdout) */
    char            *buf;
    size_t           len;
    size_t           cap;           /* 0: write every line at once */
    struct event    *timer;
    uint64_t         write_errors;  /* lines lost; logged once per burst */
};

static struct access_log alog = { .fd = -1 };

static uint64_t id_seed;
static uint64_t id_counter;
static char     id_prefix[16] = "0000000000000000"; /* hex16(mix(id_seed)) */

/* splitmix64's finaliser: a bijection, so distinct inputs never collide. */
static uint64_t
mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* <v> as 16 lower-case hex digits (once per request: no printf). */
static void
hex16(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    int i;

    for (i = 14; i >= 0; i -= 2) {
        out[i + 1] = digits[v & 15];
        out[i] = digits[(v >> 4) & 15];
        v >>= 8;
    }
}

/* ---------------------------------------------------------------------- */
/* Files                                                                   */

static int
open_path(const char *path, char *err, size_t errlen)
{
    int fd;

    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, LOG_MODE);
    if (fd == -1) {
        snprintf(err, errlen, "access log %s: %s", path, strerror(errno));
    }
    return fd;
}

int
cr_access_log_prepare(const struct cr_conf *conf, char *err, size_t errlen)
{
    const struct cr_conf_identity *id = &conf->identity;
    int fd;

    if (conf->access_log.path == NULL || strcmp(conf->access_log.path, "stdout") == 0) {
        return CR_OK;
    }
    fd = open_path(conf->access_log.path, err, errlen);
    if (fd == -1) {
        return CR_ERR;
    }
    /* only root can give a file away; otherwise we already are that user */
    if ((id->user != NULL || id->group != NULL) && geteuid() == 0
        && fchown(fd, id->user != NULL ? id->uid : (uid_t)-1, id->gid) == -1)
    {
        snprintf(err, errlen, "access log %s: chown: %s", conf->access_log.path,
                 strerror(errno));
        close(fd);
        return CR_ERR;
    }
    close(fd);
    return CR_OK;
}

static void
write_out(const char *p, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = write(alog.fd, p, n);
        if (w == -1 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            if (alog.write_errors++ == 0) {
                cr_log_error("access log %s: write: %s", alog.conf->path,
                             w == -1 ? strerror(errno) : "short write");
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
    if (alog.write_errors != 0) {
        cr_log_notice("access log %s: writing again (%llu writes failed)", alog.conf->path,
                      (unsigned long long)alog.write_errors);
        alog.write_errors = 0;
    }
}

static void
flush(void)
{
    if (alog.fd != -1 && alog.len > 0) {
        write_out(alog.buf, alog.len);
    }
    alog.len = 0;
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    flush();
}

int
cr_access_log_open(const struct cr_conf *conf, struct event_base *base, char *err,
                   size_t errlen)
{
    const struct cr_conf_access_log *lc = &conf->access_log;
    struct timeval tv;

    if (getrandom(&id_seed, sizeof(id_seed), GRND_NONBLOCK) != (ssize_t)sizeof(id_seed)) {
        id_seed = (uint64_t)getpid() << 32 ^ cr_stats_now_us();
    }
    id_counter = 0;
    hex16(id_prefix, mix(id_seed));
    if (lc->path == NULL) {
        return CR_OK;
    }
    alog.conf = lc;
    if (strcmp(lc->path, "stdout") == 0) {
        alog.fd = STDOUT_FILENO;
        alog.own_fd = 0;
    } else {
        alog.fd = open_path(lc->path, err, errlen);
        if (alog.fd == -1) {
            return CR_ERR;
        }
        alog.own_fd = 1;
    }
    alog.cap = (size_t)lc->buffer;
    if (alog.cap > 0) {
        alog.buf = malloc(alog.cap);
        alog.timer = event_new(base, -1, EV_PERSIST, timer_cb, NULL);
        tv.tv_sec = (time_t)(lc->flush_ms / 1000);
        tv.tv_usec = (suseconds_t)(lc->flush_ms % 1000 * 1000);
        if (alog.buf == NULL || alog.timer == NULL || event_add(alog.timer, &tv) == -1) {
            snprintf(err, errlen, "access log %s: cannot set up its buffer", lc->path);
            cr_access_log_close();
            return CR_ERR;
        }
    }
    return CR_OK;
}

void
cr_access_log_reopen(void)
{
    char err[256];
    int fd;

    if (alog.fd == -1 || !alog.own_fd) {
        return;
    }
    flush();
    fd = open_path(alog.conf->path, err, sizeof(err));
    if (fd == -1) {
        cr_log_error("reopen: %s; still writing to the old file", err);
        return;
    }
    close(alog.fd);
    alog.fd = fd;
    cr_log_info("access log %s reopened", alog.conf->path);
}

void
cr_access_log_close(void)
{
    flush();
    if (alog.timer != NULL) {
        event_free(alog.timer);
    }
    if (alog.own_fd && alog.fd != -1) {
        close(alog.fd);
    }
    free(alog.buf);
    memset(&alog, 0, sizeof(alog));
    alog.fd = -1;
}

/* ---------------------------------------------------------------------- */
/* Lines                                                                   */

struct line {
    char    *p;
    size_t   len;
    size_t   cap;
};

static void
add(struct line *l, const char *s, size_t n)
{
    if (n > l->cap - l->len) {
        n = l->cap - l->len;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void
addf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
addf(struct line *l, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(l->p + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        l->len += (size_t)n < l->cap - l->len ? (size_t)n : l->cap - l->len - 1;
    }
}

/* <s> (<n> bytes, at most FIELD_MAX) escaped for <format>; no quotes. */
static void
add_escaped(struct line *l, const char *s, size_t n, enum cr_log_format format)
{
    static const char hex[] = "0123456789abcdef";
    char esc[8];
    size_t i;

    if (n > FIELD_MAX) {
        n = FIELD_MAX;
    }
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            if (l->len < l->cap) {
                l->p[l->len++] = (char)ch;
            }
        } else if (format == CR_LOG_FORMAT_JSON) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            add(l, esc, 6);
        } else {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[ch >> 4];
            esc[3] = hex[ch & 15];
            add(l, esc, 4);
        }
    }
}

/* A quoted value, or the format's "none" ("-" / null) for <s> == NULL. */
static void
add_quoted(struct line *l, const char *s, size_t n, enum cr_log_format format)
{
    if (s == NULL) {
        add(l, format == CR_LOG_FORMAT_JSON ? "null" : "\"-\"",
            format == CR_LOG_FORMAT_JSON ? 4 : 3);
        return;
    }
    add(l, "\"", 1);
    add_escaped(l, s, n, format);
    add(l, "\"", 1);
}

static void
add_cstr(struct line *l, const char *s, enum cr_log_format format)
{
    add_quoted(l, s, s != NULL ? strlen(s) : 0, format);
}

static void
add_header(struct line *l, const struct cr_http_parser *hp, const char *name,
           enum cr_log_format format)
{
    const struct cr_http_field *f = cr_http_find(hp, name);

    if (f == NULL) {
        add_quoted(l, NULL, 0, format);
    } else {
        add_quoted(l, cr_http_str(hp, f->value), f->value.len, format);
    }
}

static uint64_t
upstream_us(const struct cr_access_req *r)
{
    uint64_t end = r->upstream_end_us != 0 ? r->upstream_end_us : cr_stats_now_us();

    return end > r->upstream_start_us ? end - r->upstream_start_us : 0;
}

/*
 * combined, then the extra fields as key=value:
 *   127.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 5 "-" "curl/7.88.1"
 *   rt=0.002 ua="127.0.0.1:9001" ut=0.001 id="9f..." route="default"
 */
static void
format_combined(struct line *l, const struct cr_access_entry *e, const char *method,
                const struct tm *tm)
{
    const struct cr_http_parser *hp = e->hp;
    const struct cr_access_req *r = e->req;
    char when[64];

    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", tm);
    addf(l, "%s - - [%s] \"", e->client, when);
    if (method != NULL) {
        add_escaped(l, method, strlen(method), CR_LOG_FORMAT_COMBINED);
        add(l, " ", 1);
        add_escaped(l, cr_http_str(hp, hp->target), hp->target.len, CR_LOG_FORMAT_COMBINED);
        addf(l, " HTTP/%u.%u", hp->http_major, hp->http_minor);
    } else {
        add(l, "-", 1);     /* no request line to show, as nginx writes it */
    }
    addf(l, "\" %d %llu ", e->status, (unsigned long long)r->bytes);
    add_header(l, hp, "referer", CR_LOG_FORMAT_COMBINED);
    add(l, " ", 1);
    add_header(l, hp, "user-agent", CR_LOG_FORMAT_COMBINED);
    addf(l, " rt=%.3f ua=", (double)e->total_us / 1e6);
    add_cstr(l, r->upstream, CR_LOG_FORMAT_COMBINED);
    if (r->upstream != NULL) {
        addf(l, " ut=%.3f", (double)upstream_us(r) / 1e6);
    } else {
        add(l, " ut=-", 5);
    }
    add(l, " id=", 4);
    add_cstr(l, r->id, CR_LOG_FORMAT_COMBINED);
    add(l, " route=", 7);
    add_cstr(l, r->route, CR_LOG_FORMAT_COMBINED);
}

static void
format_json(struct line *l, const struct cr_access_entry *e, const char *method,
            const struct tm *tm, long ms)
{
    const struct cr_http_parser *hp = e->hp;
    const struct cr_access_req *r = e->req;
    const enum cr_log_format j = CR_LOG_FORMAT_JSON;
    char when[64];

    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", tm);
    addf(l, "{\"time\":\"%s.%03ldZ\",\"client\":\"%s\",\"method\":", when, ms, e->client);
    if (method != NULL) {
        add_quoted(l, method, strlen(method), j);
        add(l, ",\"path\":", 8);
        add_quoted(l, cr_http_str(hp, hp->target), hp->target.len, j);
        addf(l, ",\"protocol\":\"HTTP/%u.%u\"", hp->http_major, hp->http_minor);
    } else {
        add(l, "null,\"path\":null,\"protocol\":null", 32);
    }
    addf(l, ",\"status\":%d,\"bytes\":%llu,\"request_time\":%.3f", e->status,
         (unsigned long long)r->bytes, (double)e->total_us / 1e6);
    add(l, ",\"upstream\":", 12);
    add_cstr(l, r->upstream, j);
    if (r->upstream != NULL) {
        addf(l, ",\"upstream_time\":%.3f", (double)upstream_us(r) / 1e6);
    } else {
        add(l, ",\"upstream_time\":null", 21);
    }
    add(l, ",\"request_id\":", 14);
    add_cstr(l, r->id, j);
    add(l, ",\"route\":", 9);
    add_cstr(l, r->route, j);
    add(l, ",\"referer\":", 11);
    add_header(l, hp, "referer", j);
    add(l, ",\"user_agent\":", 14);
    add_header(l, hp, "user-agent", j);
    add(l, "}", 1);
}

void
cr_access_log_request(const struct cr_access_entry *e)
{
    char buf[ACCESS_LINE_MAX];
    struct line l = { buf, 0, sizeof(buf) - 1 };    /* room for the newline */
    struct timespec ts;
    struct tm tm;
    const char *method;

    if (alog.fd == -1) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    /* a head refused before it was whole has no method for sure */
    method = e->hp->head_done ? llhttp_method_name((llhttp_method_t)e->hp->method) : NULL;
    if (alog.conf->format == CR_LOG_FORMAT_JSON) {
        format_json(&l, e, method, &tm, ts.tv_nsec / 1000000);
    } else {
        format_combined(&l, e, method, &tm);
    }
    buf[l.len++] = '\n';

    if (alog.cap == 0 || l.len > alog.cap) {
        flush();
        write_out(buf, l.len);
        return;
    }
    if (l.len > alog.cap - alog.len) {
        flush();
    }
    memcpy(alog.buf + alog.len, buf, l.len);
    alog.len += l.len;
}

/* ---------------------------------------------------------------------- */
/* Request ids                                                             */

void
cr_access_req_begin(struct cr_access_req *r, const struct cr_http_parser *hp)
{
    const struct cr_http_field *f = cr_http_find_kind(hp, CR_HDR_X_REQUEST_ID);
    size_t n;

    memset(r, 0, sizeof(*r));
    if (f != NULL && f->value.len > 0) {
        n = f->value.len < CR_ACCESS_ID_MAX ? f->value.len : CR_ACCESS_ID_MAX;
        memcpy(r->id, cr_http_str(hp, f->value), n);
        r->id[n] = '\0';
        return;
    }
    id_counter++;
    memcpy(r->id, id_prefix, sizeof(id_prefix));
    hex16(r->id + 16, mix(id_seed ^ mix(id_counter)));
    r->id[32] = '\0';
    r->id_generated = 1;
}

void
cr_access_req_upstream(struct cr_access_req *r, const char *addr)
{
    r->upstream = addr;
    r->upstream_end_us = 0;
    if (r->upstream_start_us == 0) {
        r->upstream_start_us = cr_stats_now_us();
    }
}

void
cr_access_req_upstream_done(struct cr_access_req *r)
{
    r->upstream_end_us = cr_stats_now_us();
}

void
cr_access_req_add_header(const struct cr_access_req *r, struct cr_buf *b)
{
    if (r->id_generated) {
        cr_buf_adds(b, "X-Request-Id: ");
        cr_buf_add(b, r->id, 32);
        cr_buf_adds(b, "\r\n");
    }
}
