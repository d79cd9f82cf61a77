/*
 * stats.c - corralctl's reading side: attach a segment, take snapshots,
 * print status, workers, routes, upstreams, metrics, stats and describe.
 *
 * Reads go through cr_shm_snapshot() into private buffers, so a table is
 * consistent with itself and no value is torn, and each snapshot is
 * validated again (a header is only trusted after its copy passed
 * cr_shm_validate()). A file truncated under our mapping would raise
 * SIGBUS on the copy: that is caught around the copy and reported as one
 * line, like every other problem with the segment.
 *
 * Rates need two snapshots: the table commands take one, sleep --interval
 * (default 0.5 s) and take another; --interval 0 prints lifetime averages
 * from a single snapshot.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/common.h"
#include "ctl.h"

#define DEFAULT_INTERVAL    0.5

/* ------------------------------------------------------------------------ */
/* clocks */

uint64_t
cr_ctl_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
cr_ctl_unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
cr_ctl_sleep(double seconds)
{
    struct timespec ts;

    if (!(seconds > 0)) {
        return;
    }
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
        /* the remainder is in ts */
    }
}

/* ------------------------------------------------------------------------ */
/* reader */

static sigjmp_buf bus_jmp;

static void
bus_handler(int sig)
{
    (void)sig;
    siglongjmp(bus_jmp, 1);
}

void
cr_ctl_attach_error(const struct cr_shm *shm, const char *err)
{
    if (strstr(err, "/dev/shm") != NULL) {
        fprintf(stderr, "corralctl: %s\n", err);
    } else {
        fprintf(stderr, "corralctl: /dev/shm%s: %s\n", shm->path, err);
    }
}

int
cr_ctl_open(struct cr_ctl_reader *r, const char *name, int quiet)
{
    char err[256];

    memset(r, 0, sizeof(*r));
    r->name = name;
    r->quiet = quiet;
    if (cr_shm_attach(&r->shm, name, err, sizeof(err)) != CR_OK) {
        if (!quiet) {
            cr_ctl_attach_error(&r->shm, err);
        }
        return CR_ERR;
    }
    r->cur = malloc(r->shm.size);
    r->prev = malloc(r->shm.size);
    if (r->cur == NULL || r->prev == NULL) {
        if (!quiet) {
            fprintf(stderr, "corralctl: out of memory for a %zu-byte snapshot\n",
                    r->shm.size);
        }
        cr_ctl_close(r);
        return CR_ERR;
    }
    return CR_OK;
}

void
cr_ctl_close(struct cr_ctl_reader *r)
{
    free(r->cur);
    free(r->prev);
    r->cur = r->prev = NULL;
    cr_shm_detach(&r->shm);
}

void
cr_ctl_forget(struct cr_ctl_reader *r)
{
    r->have_prev = 0;
}

int
cr_ctl_read(struct cr_ctl_reader *r)
{
    struct sigaction sa, old;
    char err[256];
    void *tmp;
    int rc;

    /* the fresh snapshot goes into the older buffer */
    tmp = r->prev;
    r->prev = r->cur;
    r->cur = tmp;
    r->have_prev = r->cur_mono_ms != 0;
    r->prev_mono_ms = r->cur_mono_ms;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = bus_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old);
    if (sigsetjmp(bus_jmp, 1) == 0) {
        rc = cr_shm_snapshot(r->shm.hdr, r->cur);
        snprintf(err, sizeof(err), "the master kept rewriting the segment; try again");
    } else {
        rc = CR_ERR;
        snprintf(err, sizeof(err), "/dev/shm%s shrank while being read", r->shm.path);
    }
    sigaction(SIGBUS, &old, NULL);
    if (rc == CR_OK) {
        rc = cr_shm_validate(r->cur, r->shm.size, err, sizeof(err));
    }
    if (rc != CR_OK) {
        if (!r->quiet) {
            fprintf(stderr, "corralctl: %s\n", err);
        }
        /* keep the last good snapshot as cur */
        tmp = r->prev;
        r->prev = r->cur;
        r->cur = tmp;
        r->have_prev = 0;
        return CR_ERR;
    }
    r->cur_mono_ms = cr_ctl_mono_ms();
    r->cur_ms = cr_ctl_unix_ms();
    return CR_OK;
}

void
cr_ctl_input(const struct cr_ctl_reader *r, int window, struct cr_report_in *in)
{
    memset(in, 0, sizeof(*in));
    in->cur = r->cur;
    in->now_ms = r->cur_ms;
    in->now_mono_ms = r->cur_mono_ms;
    if (window && r->have_prev && r->cur_mono_ms > r->prev_mono_ms) {
        in->prev = r->prev;
        in->elapsed = (double)(r->cur_mono_ms - r->prev_mono_ms) / 1000.0;
    }
}

int
cr_ctl_master_alive(const struct cr_shm_header *h)
{
    return cr_ctl_pid_alive(__atomic_load_n(&h->master_pid, __ATOMIC_RELAXED));
}

int
cr_ctl_pid_alive(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *f;
    size_t n;

    if (pid <= 0 || (kill(pid, 0) == -1 && errno == ESRCH)) {
        return 0;
    }
    /* a zombie has not been reaped by its parent yet: it is gone for us */
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* ------------------------------------------------------------------------ */
/* formatting */

void
cr_ctl_fmt_bytes(char *out, size_t len, double n)
{
    static const char units[] = "KMGTP";
    int u = -1;

    if (n < 1024) {
        snprintf(out, len, "%.0f", n);
        return;
    }
    while (n >= 1024 && u < 4) {
        n /= 1024;
        u++;
    }
    snprintf(out, len, n < 10 ? "%.1f%c" : "%.0f%c", n, units[u]);
}

void
cr_ctl_fmt_dur(char *out, size_t len, double s)
{
    unsigned long long t = s > 0 ? (unsigned long long)s : 0;

    if (t < 60) {
        snprintf(out, len, "%llus", t);
    } else if (t < 3600) {
        snprintf(out, len, "%llum%02llus", t / 60, t % 60);
    } else if (t < 86400) {
        snprintf(out, len, "%lluh%02llum", t / 3600, t % 3600 / 60);
    } else {
        snprintf(out, len, "%llud%02lluh", t / 86400, t % 86400 / 3600);
    }
}

void
cr_ctl_fmt_ms(char *out, size_t len, double ms)
{
    if (!(ms > 0)) {
        snprintf(out, len, "-");
    } else if (ms < 1) {
        snprintf(out, len, "%.3f", ms);
    } else if (ms < 10) {
        snprintf(out, len, "%.2f", ms);
    } else if (ms < 1000) {
        snprintf(out, len, "%.1f", ms);
    } else {
        snprintf(out, len, "%.0f", ms);
    }
}

/* ------------------------------------------------------------------------ */
/* tables: cells collected, then printed with each column as wide as needed */

#define TCOLS   16
#define TCELL   80

struct trow {
    char                 c[TCOLS][TCELL];
    double               key;           /* sort key */
};

struct table {
    unsigned             ncols;
    const char          *const *head;
    const char          *align;         /* 'l' or 'r' per column */
    struct trow         *rows;
    size_t               n;
    size_t               cap;
};

static struct trow *
table_row(struct table *t)
{
    struct trow *r;

    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;

        r = realloc(t->rows, cap * sizeof(*r));
        if (r == NULL) {
            return NULL;
        }
        t->rows = r;
        t->cap = cap;
    }
    r = &t->rows[t->n++];
    memset(r, 0, sizeof(*r));
    return r;
}

static void
cell(struct trow *r, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
cell(struct trow *r, unsigned col, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->c[col], TCELL, fmt, ap);
    va_end(ap);
}

static int
by_key_desc(const void *a, const void *b)
{
    const struct trow *x = a, *y = b;

    return x->key < y->key ? 1 : x->key > y->key ? -1 : 0;
}

static void
table_render(struct table *t, struct cr_report_buf *out, int sort, int *hdr_line)
{
    size_t w[TCOLS], i;
    unsigned c;

    if (sort && t->n > 1) {
        qsort(t->rows, t->n, sizeof(*t->rows), by_key_desc);
    }
    for (c = 0; c < t->ncols; c++) {
        w[c] = strlen(t->head[c]);
        for (i = 0; i < t->n; i++) {
            size_t l = strlen(t->rows[i].c[c]);

            w[c] = l > w[c] ? l : w[c];
        }
    }
    if (hdr_line != NULL) {
        *hdr_line = 0;
    }
    for (i = 0; i <= t->n; i++) {
        for (c = 0; c < t->ncols; c++) {
            const char *s = i == 0 ? t->head[c] : t->rows[i - 1].c[c];
            int last = c + 1 == t->ncols;

            if (t->align[c] == 'l' && last) {
                cr_report_buf_printf(out, "%s", s);     /* no trailing blanks */
            } else if (t->align[c] == 'l') {
                cr_report_buf_printf(out, "%-*s  ", (int)w[c], s);
            } else {
                cr_report_buf_printf(out, last ? "%*s" : "%*s  ", (int)w[c], s);
            }
        }
        cr_report_buf_add(out, "\n", 1);
    }
    free(t->rows);
    t->rows = NULL;
    t->n = t->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* text views */

void
cr_ctl_summary(struct cr_report_buf *out, const struct cr_report_in *in)
{
    const struct cr_shm_header *h = in->cur;
    struct cr_report_totals t;
    char up[32], bin[32], bout[32], p50[16], p99[16];

    cr_report_totals(in, &t);
    cr_ctl_fmt_dur(up, sizeof(up), t.uptime_s);
    cr_ctl_fmt_bytes(bin, sizeof(bin), (double)t.c[CR_SHM_C_client_bytes_in_total]);
    cr_ctl_fmt_bytes(bout, sizeof(bout), (double)t.c[CR_SHM_C_client_bytes_out_total]);
    cr_ctl_fmt_ms(p50, sizeof(p50), t.latency.p50);
    cr_ctl_fmt_ms(p99, sizeof(p99), t.latency.p99);
    cr_report_buf_printf(out, "instance %.*s  master %d%s  up %s  generation %llu  "
                         "workers %u/%u  reload %.*s  %.1f req/s%s\n",
                         (int)strnlen(h->name, sizeof(h->name)), h->name, (int)h->master_pid,
                         cr_ctl_master_alive(h) ? "" : " (not running)", up,
                         (unsigned long long)h->generation, t.live, h->workers,
                         (int)strnlen(h->reload_mechanism, sizeof(h->reload_mechanism)),
                         h->reload_mechanism[0] ? h->reload_mechanism : "-", t.rps,
                         t.window_s > 0 ? "" : " (lifetime)");
    cr_report_buf_printf(out, "requests %llu  2xx %llu  3xx %llu  4xx %llu  5xx %llu  "
                         "connections %llu active, %llu accepted  in %s  out %s  "
                         "p50 %s ms  p99 %s ms\n",
                         (unsigned long long)t.c[CR_SHM_C_requests_total],
                         (unsigned long long)t.c[CR_SHM_C_responses_2xx_total],
                         (unsigned long long)t.c[CR_SHM_C_responses_3xx_total],
                         (unsigned long long)t.c[CR_SHM_C_responses_4xx_total],
                         (unsigned long long)t.c[CR_SHM_C_responses_5xx_total],
                         (unsigned long long)t.c[CR_SHM_C_connections_active],
                         (unsigned long long)t.c[CR_SHM_C_connections_accepted_total],
                         bin, bout, p50, p99);
}

void
cr_ctl_workers_table(struct cr_report_buf *out, const struct cr_report_in *in, int by_rps,
                     int *hdr_line)
{
    static const char *const head[] = {
        "SLOT", "ID", "PID", "GEN", "STATE", "UPTIME", "CONNS", "REQ/S", "REQUESTS",
        "2XX", "4XX", "5XX", "P50MS", "P99MS", "IN", "OUT"
    };
    struct table t = { CR_NELEM(head), head, "rrrrlrrrrrrrrrrr", NULL, 0, 0 };
    struct cr_report_worker w;
    struct trow *r;
    unsigned i, old = 0;

    for (i = 0; i < in->cur->nslots; i++) {
        if (cr_report_worker(in, i, &w) != CR_OK || (r = table_row(&t)) == NULL) {
            continue;
        }
        r->key = w.rps;
        cell(r, 0, "%u", i);
        cell(r, 1, "%u", w.s->id);
        cell(r, 2, "%d", (int)w.s->pid);
        cell(r, 3, "%llu%s", (unsigned long long)w.s->generation, w.current ? "" : "*");
        old += !w.current;
        cell(r, 4, "%s", cr_report_state_name(w.s->state));
        cr_ctl_fmt_dur(r->c[5], TCELL, w.uptime_s);
        cell(r, 6, "%llu", (unsigned long long)w.c[CR_SHM_C_connections_active]);
        cell(r, 7, "%.1f", w.rps);
        cell(r, 8, "%llu", (unsigned long long)w.c[CR_SHM_C_requests_total]);
        cell(r, 9, "%llu", (unsigned long long)w.c[CR_SHM_C_responses_2xx_total]);
        cell(r, 10, "%llu", (unsigned long long)w.c[CR_SHM_C_responses_4xx_total]);
        cell(r, 11, "%llu", (unsigned long long)w.c[CR_SHM_C_responses_5xx_total]);
        cr_ctl_fmt_ms(r->c[12], TCELL, w.latency.p50);
        cr_ctl_fmt_ms(r->c[13], TCELL, w.latency.p99);
        cr_ctl_fmt_bytes(r->c[14], TCELL, (double)w.c[CR_SHM_C_client_bytes_in_total]);
        cr_ctl_fmt_bytes(r->c[15], TCELL, (double)w.c[CR_SHM_C_client_bytes_out_total]);
    }
    if (t.n == 0) {
        free(t.rows);
        cr_report_buf_printf(out, "no worker processes\n");
        if (hdr_line != NULL) {
            *hdr_line = -1;
        }
        return;
    }
    table_render(&t, out, by_rps, hdr_line);
    if (old > 0) {
        cr_report_buf_printf(out, "* previous generation (draining or exiting); "
                             "generation %llu is serving\n",
                             (unsigned long long)in->cur->generation);
    }
}

void
cr_ctl_routes_table(struct cr_report_buf *out, const struct cr_report_in *in, int by_rps,
                    int *hdr_line)
{
    static const char *const head[] = {
        "ROUTE", "UPSTREAM", "REQ/S", "REQUESTS", "ACTIVE", "2XX", "4XX", "5XX",
        "P50MS", "P99MS", "IN", "OUT"
    };
    struct table t = { CR_NELEM(head), head, "llrrrrrrrrrr", NULL, 0, 0 };
    struct cr_report_route rt;
    struct trow *r;
    unsigned i, old = 0;

    for (i = 0; i < in->cur->routes_cap; i++) {
        if (cr_report_route(in, i, &rt) != CR_OK || (r = table_row(&t)) == NULL) {
            continue;
        }
        r->key = rt.rps;
        cell(r, 0, "%.*s%s", (int)strnlen(rt.r->name, CR_SHM_NAME_MAX), rt.r->name,
             rt.r->current ? "" : "*");
        old += !rt.r->current;
        if (rt.r->upstream[0] != '\0') {
            cell(r, 1, "%.*s", (int)strnlen(rt.r->upstream, CR_SHM_NAME_MAX), rt.r->upstream);
        } else {
            cell(r, 1, "-");    /* respond / redirect */
        }
        cell(r, 2, "%.1f", rt.rps);
        cell(r, 3, "%llu", (unsigned long long)rt.c[CR_SHM_R_requests_total]);
        cell(r, 4, "%llu", (unsigned long long)rt.c[CR_SHM_R_requests_active]);
        cell(r, 5, "%llu", (unsigned long long)rt.c[CR_SHM_R_responses_2xx_total]);
        cell(r, 6, "%llu", (unsigned long long)rt.c[CR_SHM_R_responses_4xx_total]);
        cell(r, 7, "%llu", (unsigned long long)rt.c[CR_SHM_R_responses_5xx_total]);
        cr_ctl_fmt_ms(r->c[8], TCELL, rt.latency.p50);
        cr_ctl_fmt_ms(r->c[9], TCELL, rt.latency.p99);
        cr_ctl_fmt_bytes(r->c[10], TCELL, (double)rt.c[CR_SHM_R_bytes_in_total]);
        cr_ctl_fmt_bytes(r->c[11], TCELL, (double)rt.c[CR_SHM_R_bytes_out_total]);
    }
    if (t.n == 0) {
        free(t.rows);
        cr_report_buf_printf(out, "no routes\n");
        if (hdr_line != NULL) {
            *hdr_line = -1;
        }
        return;
    }
    table_render(&t, out, by_rps, hdr_line);
    if (old > 0) {
        cr_report_buf_printf(out, "* not in the configuration now serving\n");
    }
}

void
cr_ctl_upstreams_table(struct cr_report_buf *out, const struct cr_report_in *in,
                       int *hdr_line)
{
    static const char *const head[] = {
        "UPSTREAM", "ADDRESS", "WEIGHT", "HEALTH", "EJECTED", "REQ/S", "REQUESTS", "ACTIVE",
        "FAILURES", "TIMEOUTS", "TTFB_P50MS", "TTFB_P99MS"
    };
    struct table t = { CR_NELEM(head), head, "llrllrrrrrrr", NULL, 0, 0 };
    struct cr_report_server s;
    struct trow *r;
    unsigned i, old = 0;

    for (i = 0; i < in->cur->servers_cap; i++) {
        if (cr_report_server(in, i, &s) != CR_OK || (r = table_row(&t)) == NULL) {
            continue;
        }
        cell(r, 0, "%.*s%s", (int)strnlen(s.sv->upstream, CR_SHM_NAME_MAX), s.sv->upstream,
             s.sv->current ? "" : "*");
        old += !s.sv->current;
        cell(r, 1, "%.*s", (int)strnlen(s.sv->address, CR_SHM_NAME_MAX), s.sv->address);
        cell(r, 2, "%u", s.sv->weight);
        cell(r, 3, "%s", cr_report_health_name(s.sv->health));
        if (s.ejected_for_ms != 0) {
            cell(r, 4, "%.1fs", (double)s.ejected_for_ms / 1000.0);
        } else {
            cell(r, 4, "-");
        }
        cell(r, 5, "%.1f", s.rps);
        cell(r, 6, "%llu", (unsigned long long)s.c[CR_SHM_S_requests_total]);
        cell(r, 7, "%llu", (unsigned long long)s.c[CR_SHM_S_requests_active]);
        cell(r, 8, "%llu", (unsigned long long)s.c[CR_SHM_S_failures_total]);
        cell(r, 9, "%llu", (unsigned long long)s.c[CR_SHM_S_timeouts_total]);
        cr_ctl_fmt_ms(r->c[10], TCELL, s.ttfb.p50);
        cr_ctl_fmt_ms(r->c[11], TCELL, s.ttfb.p99);
    }
    if (t.n == 0) {
        free(t.rows);
        cr_report_buf_printf(out, "no upstream servers\n");
        if (hdr_line != NULL) {
            *hdr_line = -1;
        }
        return;
    }
    table_render(&t, out, 0, hdr_line);
    if (old > 0) {
        cr_report_buf_printf(out, "* not in the configuration now serving\n");
    }
}

/* ------------------------------------------------------------------------ */
/* commands */

static int
emit(struct cr_report_buf *b)
{
    if (b->failed) {
        fprintf(stderr, "corralctl: out of memory\n");
        cr_report_buf_free(b);
        return CR_CTL_EXIT_FAIL;
    }
    if (b->len > 0 && fwrite(b->data, 1, b->len, stdout) != b->len) {
        cr_report_buf_free(b);
        return CR_CTL_EXIT_FAIL;
    }
    cr_report_buf_free(b);
    return fflush(stdout) == 0 ? CR_CTL_EXIT_OK : CR_CTL_EXIT_FAIL;
}

static void
warn_stale(const struct cr_ctl_reader *r)
{
    const struct cr_shm_header *h = r->cur;

    if (!cr_ctl_master_alive(h)) {
        fprintf(stderr, "corralctl: warning: master pid %d of instance \"%s\" is not running; "
                "these are the last counts it left\n", (int)h->master_pid, r->name);
    }
}

int
cr_ctl_show(const struct cr_ctl_opts *o, enum cr_ctl_view view)
{
    struct cr_ctl_reader r;
    struct cr_report_buf b;
    struct cr_report_in in;
    double interval = o->interval < 0 ? DEFAULT_INTERVAL : o->interval;

    if (cr_ctl_open(&r, o->name, 0) != CR_OK || cr_ctl_read(&r) != CR_OK) {
        cr_ctl_close(&r);
        return CR_CTL_EXIT_FAIL;
    }
    if (interval > 0) {
        cr_ctl_sleep(interval);
        if (cr_ctl_read(&r) != CR_OK) {
            cr_ctl_close(&r);
            return CR_CTL_EXIT_FAIL;
        }
    }
    warn_stale(&r);
    cr_ctl_input(&r, interval > 0, &in);
    cr_report_buf_init(&b);
    if (o->json) {
        switch (view) {
        case CR_CTL_STATUS:     cr_report_status_json(&b, &in); break;
        case CR_CTL_WORKERS:    cr_report_workers_json(&b, &in); break;
        case CR_CTL_ROUTES:     cr_report_routes_json(&b, &in); break;
        case CR_CTL_UPSTREAMS:  cr_report_upstreams_json(&b, &in); break;
        }
    } else {
        switch (view) {
        case CR_CTL_STATUS:
            cr_ctl_summary(&b, &in);
            cr_report_buf_add(&b, "\n", 1);
            cr_ctl_workers_table(&b, &in, 0, NULL);
            break;
        case CR_CTL_WORKERS:
            cr_ctl_workers_table(&b, &in, 0, NULL);
            break;
        case CR_CTL_ROUTES:
            cr_ctl_routes_table(&b, &in, 0, NULL);
            break;
        case CR_CTL_UPSTREAMS:
            cr_ctl_upstreams_table(&b, &in, NULL);
            break;
        }
    }
    cr_ctl_close(&r);
    return emit(&b);
}

int
cr_ctl_metrics(const struct cr_ctl_opts *o)
{
    struct cr_ctl_reader r;
    struct cr_report_buf b;
    struct cr_report_in in;

    if (cr_ctl_open(&r, o->name, 0) != CR_OK || cr_ctl_read(&r) != CR_OK) {
        cr_ctl_close(&r);
        return CR_CTL_EXIT_FAIL;
    }
    warn_stale(&r);
    cr_ctl_input(&r, 0, &in);
    cr_report_buf_init(&b);
    cr_report_prometheus(&b, &in);
    cr_ctl_close(&r);
    return emit(&b);
}

/* `stats`: every worker counter summed (slots + retired), one per line. */
int
cr_ctl_stats(const struct cr_ctl_opts *o)
{
    struct cr_ctl_reader r;
    struct cr_report_totals t;
    struct cr_report_buf b;
    struct cr_report_in in;
    unsigned c;

    if (o->describe) {
        return cr_ctl_describe();
    }
    if (cr_ctl_open(&r, o->name, 0) != CR_OK || cr_ctl_read(&r) != CR_OK) {
        cr_ctl_close(&r);
        return CR_CTL_EXIT_FAIL;
    }
    warn_stale(&r);
    cr_ctl_input(&r, 0, &in);
    cr_report_totals(&in, &t);
    cr_report_buf_init(&b);
    for (c = 0; c < CR_SHM_NCOUNTERS; c++) {
        cr_report_buf_printf(&b, "%-28s %llu\n", cr_shm_counter_names[c],
                             (unsigned long long)t.c[c]);
    }
    cr_ctl_close(&r);
    return emit(&b);
}

static void
describe_group(const char *title, const char *prefix, const char *const *names,
               const char *const *help, unsigned n)
{
    unsigned i;

    printf("%s\n", title);
    for (i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        int gauge = l < 6 || strcmp(names[i] + l - 6, "_total") != 0;

        printf("  %s%-32s %-8s %s\n", prefix, names[i], gauge ? "gauge" : "counter", help[i]);
    }
}

int
cr_ctl_describe(void)
{
    describe_group("per worker (corral_<name>{worker,slot}; stats and status sum them):",
                   "", cr_shm_counter_names, cr_shm_counter_help, CR_SHM_NCOUNTERS);
    printf("\n");
    describe_group("per route (corral_route_<name>{route}):", "",
                   cr_shm_route_counter_names, cr_shm_route_counter_help,
                   CR_SHM_NROUTE_COUNTERS);
    printf("\n");
    describe_group("per upstream server (corral_upstream_server_<name>{upstream,server}):",
                   "", cr_shm_server_counter_names, cr_shm_server_counter_help,
                   CR_SHM_NSERVER_COUNTERS);
    printf("\n");
    printf("histograms (seconds, buckets 2^i us):\n"
           "  corral_request_duration_seconds          per worker: whole request\n"
           "  corral_upstream_ttfb_seconds             per worker: upstream time to first byte\n"
           "  corral_route_request_duration_seconds    per route\n"
           "  corral_upstream_server_ttfb_seconds      per upstream server\n");
    return fflush(stdout) == 0 ? CR_CTL_EXIT_OK : CR_CTL_EXIT_FAIL;
}
