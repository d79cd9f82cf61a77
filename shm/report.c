/*
 * report.c - sums, rates, quantiles and their JSON / Prometheus rendering.
 *
 * Design notes. Everything works on snapshots (private copies made by
 * cr_shm_snapshot()), never on the live mapping, so a document is
 * consistent with itself: per-worker rows add up to the totals printed next
 * to them. Offsets come from the snapshot's own header, which the caller
 * validated.
 *
 * Windows. A rate needs two snapshots of the same segment. A worker slot
 * in <cur> is matched to the same slot in <prev> only if it still holds the
 * same process (same start time, generation, id and pid); a slot reused in
 * between was zeroed when its old worker was retired, so its whole count
 * belongs to the window. Sums over every slot plus the retired slot only
 * grow, so their differences are the window's counts; a difference that
 * would be negative (the snapshots do not belong together) is taken as 0.
 * The same subtraction on histograms gives quantiles over the window.
 *
 * Output. JSON is printed with two-space indentation by a small writer that
 * tracks commas per nesting level; strings are escaped so the output is
 * valid JSON whatever bytes a name holds (bytes >= 0x7f come out as
 * \u00XX). Prometheus output follows text exposition format 0.0.4: one
 * family at a time (HELP, TYPE, its series), label values escaped (\\, \",
 * \n), histogram buckets cumulative and their +Inf bucket equal to _count.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/common.h"
#include "report.h"
#include "shm.h"

/* ------------------------------------------------------------------------ */
/* buffer */

void
cr_report_buf_init(struct cr_report_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void
cr_report_buf_free(struct cr_report_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void
cr_report_buf_reset(struct cr_report_buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

static int
buf_reserve(struct cr_report_buf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->failed) {
        return CR_ERR;
    }
    if (b->len + n + 1 <= b->cap) {
        return CR_OK;
    }
    cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) {
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return CR_ERR;
    }
    b->data = p;
    b->cap = cap;
    return CR_OK;
}

int
cr_report_buf_add(struct cr_report_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) != CR_OK) {
        return CR_ERR;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return CR_OK;
}

int
cr_report_buf_printf(struct cr_report_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (buf_reserve(b, 128) != CR_OK) {
        return CR_ERR;
    }
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return CR_ERR;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (buf_reserve(b, (size_t)n) != CR_OK) {
            return CR_ERR;
        }
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return CR_OK;
}

static void
buf_adds(struct cr_report_buf *b, const char *s)
{
    cr_report_buf_add(b, s, strlen(s));
}

/* ------------------------------------------------------------------------ */
/* sums, windows, quantiles */

const char *
cr_report_state_name(uint32_t state)
{
    switch (state) {
    case CR_SHM_SLOT_FREE:      return "free";
    case CR_SHM_SLOT_STARTING:  return "starting";
    case CR_SHM_SLOT_RUNNING:   return "running";
    case CR_SHM_SLOT_DRAINING:  return "draining";
    case CR_SHM_SLOT_EXITED:    return "exited";
    }
    return "unknown";
}

const char *
cr_report_health_name(uint32_t health)
{
    switch (health) {
    case CR_SHM_HEALTH_UP:      return "up";
    case CR_SHM_HEALTH_DOWN:    return "down";
    }
    return "unknown";
}

static int
is_gauge(const char *name)
{
    size_t n = strlen(name);

    return n < 6 || strcmp(name + n - 6, "_total") != 0;
}

static int
state_live(uint32_t state)
{
    return state == CR_SHM_SLOT_STARTING || state == CR_SHM_SLOT_RUNNING
           || state == CR_SHM_SLOT_DRAINING;
}

/* <prev> usable for a window: a snapshot of the same segment, earlier. */
static const struct cr_shm_header *
usable_prev(const struct cr_report_in *in)
{
    const struct cr_shm_header *c = in->cur, *p = in->prev;

    if (p == NULL || !(in->elapsed > 0)) {
        return NULL;
    }
    if (p->master_pid != c->master_pid || p->start_ms != c->start_ms
        || p->total_size != c->total_size || p->nslots != c->nslots
        || p->slot_size != c->slot_size || p->routes_cap != c->routes_cap
        || p->servers_cap != c->servers_cap)
    {
        return NULL;
    }
    return p;
}

static uint64_t
sub0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static double
per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0;
}

static void
hist_addto(struct cr_shm_hist *to, const struct cr_shm_hist *from)
{
    unsigned i;

    for (i = 0; i < CR_SHM_HIST_BUCKETS; i++) {
        to->buckets[i] += from->buckets[i];
    }
    to->count += from->count;
    to->sum_us += from->sum_us;
}

/* <cur> - <prev> bucket by bucket, into <out>. */
static void
hist_delta(struct cr_shm_hist *out, const struct cr_shm_hist *cur,
           const struct cr_shm_hist *prev)
{
    unsigned i;

    for (i = 0; i < CR_SHM_HIST_BUCKETS; i++) {
        out->buckets[i] = sub0(cur->buckets[i], prev->buckets[i]);
    }
    out->count = sub0(cur->count, prev->count);
    out->sum_us = sub0(cur->sum_us, prev->sum_us);
}

static void
lat_of(struct cr_report_lat *l, const struct cr_shm_hist *h)
{
    l->p50 = cr_shm_hist_quantile(h, 0.50) / 1000.0;
    l->p90 = cr_shm_hist_quantile(h, 0.90) / 1000.0;
    l->p99 = cr_shm_hist_quantile(h, 0.99) / 1000.0;
}

static double
uptime_of(uint64_t start_ms, uint64_t now_ms)
{
    return now_ms > start_ms && start_ms != 0 ? (double)(now_ms - start_ms) / 1000.0 : 0;
}

/*
 * Slot <i> of <p> still holds the process slot <i> of <c> holds. (A pid of
 * 0 in <p> is a worker forked but not yet recorded: it counted nothing.)
 */
static int
same_process(const struct cr_shm_slot *c, const struct cr_shm_slot *p)
{
    return p->state != CR_SHM_SLOT_FREE && p->start_ms == c->start_ms
           && p->generation == c->generation && p->id == c->id
           && (p->pid == c->pid || p->pid == 0);
}

int
cr_report_worker(const struct cr_report_in *in, unsigned slot, struct cr_report_worker *out)
{
    const struct cr_shm_header *h = in->cur, *prev = usable_prev(in);
    const struct cr_shm_slot *s, *ps = NULL;
    struct cr_shm_hist win;
    unsigned c;

    memset(out, 0, sizeof(*out));
    if (slot >= h->nslots) {
        return CR_ERR;
    }
    s = cr_shm_slot(h, slot);
    if (s->state == CR_SHM_SLOT_FREE) {
        return CR_ERR;
    }
    out->slot = slot;
    out->s = s;
    out->live = state_live(s->state);
    out->current = s->generation == h->generation;
    for (c = 0; c < CR_SHM_NCOUNTERS; c++) {
        out->c[c] = (is_gauge(cr_shm_counter_names[c]) && !out->live) ? 0 : s->counters[c];
    }
    out->uptime_s = uptime_of(s->start_ms, in->now_ms);
    out->heartbeat_age_ms = -1;
    if (in->now_mono_ms != 0 && s->heartbeat_ms != 0 && s->heartbeat_ms <= in->now_mono_ms) {
        out->heartbeat_age_ms = (double)(in->now_mono_ms - s->heartbeat_ms);
    }
    if (prev != NULL) {
        ps = cr_shm_slot(prev, slot);
        if (!same_process(s, ps)) {
            ps = NULL;      /* a new process: all of its counts are in the window */
        }
        out->rps = per_s(sub0(s->counters[CR_SHM_C_requests_total],
                              ps ? ps->counters[CR_SHM_C_requests_total] : 0), in->elapsed);
        if (ps != NULL) {
            hist_delta(&win, &s->request_time, &ps->request_time);
            lat_of(&out->latency, &win);
            hist_delta(&win, &s->upstream_ttfb, &ps->upstream_ttfb);
            lat_of(&out->ttfb, &win);
        } else {
            lat_of(&out->latency, &s->request_time);
            lat_of(&out->ttfb, &s->upstream_ttfb);
        }
    } else {
        out->rps = per_s(s->counters[CR_SHM_C_requests_total], out->uptime_s);
        lat_of(&out->latency, &s->request_time);
        lat_of(&out->ttfb, &s->upstream_ttfb);
    }
    return CR_OK;
}

/* Sums of every slot and the retired slot; gauges from live slots only. */
static void
sum_workers(const struct cr_shm_header *h, uint64_t *c, struct cr_shm_hist *rt,
            struct cr_shm_hist *ttfb, unsigned *live)
{
    unsigned i, k;

    memset(c, 0, sizeof(uint64_t) * CR_SHM_NCOUNTERS);
    memset(rt, 0, sizeof(*rt));
    memset(ttfb, 0, sizeof(*ttfb));
    *live = 0;
    for (i = 0; i <= h->nslots; i++) {
        const struct cr_shm_slot *s = i < h->nslots ? cr_shm_slot(h, i) : cr_shm_retired(h);
        int is_live = i < h->nslots && state_live(s->state);

        *live += is_live;
        for (k = 0; k < CR_SHM_NCOUNTERS; k++) {
            if (is_live || !is_gauge(cr_shm_counter_names[k])) {
                c[k] += s->counters[k];
            }
        }
        hist_addto(rt, &s->request_time);
        hist_addto(ttfb, &s->upstream_ttfb);
    }
}

void
cr_report_totals(const struct cr_report_in *in, struct cr_report_totals *out)
{
    const struct cr_shm_header *prev = usable_prev(in);
    struct cr_shm_hist rt, ttfb, prt, pttfb, win;
    uint64_t pc[CR_SHM_NCOUNTERS];
    unsigned plive;

    memset(out, 0, sizeof(*out));
    sum_workers(in->cur, out->c, &rt, &ttfb, &out->live);
    out->uptime_s = uptime_of(in->cur->start_ms, in->now_ms);
    if (prev != NULL) {
        sum_workers(prev, pc, &prt, &pttfb, &plive);
        out->window_s = in->elapsed;
        out->rps = per_s(sub0(out->c[CR_SHM_C_requests_total], pc[CR_SHM_C_requests_total]),
                         in->elapsed);
        hist_delta(&win, &rt, &prt);
        lat_of(&out->latency, &win);
        hist_delta(&win, &ttfb, &pttfb);
        lat_of(&out->ttfb, &win);
    } else {
        out->rps = per_s(out->c[CR_SHM_C_requests_total], out->uptime_s);
        lat_of(&out->latency, &rt);
        lat_of(&out->ttfb, &ttfb);
    }
}

static void
sum_route(const struct cr_shm_header *h, unsigned row, uint64_t *c, struct cr_shm_hist *rt)
{
    unsigned i, k;

    memset(c, 0, sizeof(uint64_t) * CR_SHM_NROUTE_COUNTERS);
    memset(rt, 0, sizeof(*rt));
    for (i = 0; i <= h->nslots; i++) {
        struct cr_shm_slot *s = i < h->nslots ? cr_shm_slot(h, i) : cr_shm_retired(h);
        const struct cr_shm_route_stats *rs = cr_shm_slot_route(h, s, row);
        int is_live = i < h->nslots && state_live(s->state);

        for (k = 0; k < CR_SHM_NROUTE_COUNTERS; k++) {
            if (is_live || !is_gauge(cr_shm_route_counter_names[k])) {
                c[k] += rs->counters[k];
            }
        }
        hist_addto(rt, &rs->request_time);
    }
}

int
cr_report_route(const struct cr_report_in *in, unsigned row, struct cr_report_route *out)
{
    const struct cr_shm_header *h = in->cur, *prev = usable_prev(in);
    uint64_t pc[CR_SHM_NROUTE_COUNTERS];
    struct cr_shm_hist rt, prt, win;

    memset(out, 0, sizeof(*out));
    if (row >= h->routes_cap || !cr_shm_route_at(h, row)->used) {
        return CR_ERR;
    }
    out->row = row;
    out->r = cr_shm_route_at(h, row);
    sum_route(h, row, out->c, &rt);
    if (prev != NULL) {
        sum_route(prev, row, pc, &prt);
        out->rps = per_s(sub0(out->c[CR_SHM_R_requests_total], pc[CR_SHM_R_requests_total]),
                         in->elapsed);
        hist_delta(&win, &rt, &prt);
        lat_of(&out->latency, &win);
    } else {
        out->rps = per_s(out->c[CR_SHM_R_requests_total], uptime_of(h->start_ms, in->now_ms));
        lat_of(&out->latency, &rt);
    }
    return CR_OK;
}

static void
sum_server(const struct cr_shm_header *h, unsigned row, uint64_t *c, struct cr_shm_hist *tt)
{
    unsigned i, k;

    memset(c, 0, sizeof(uint64_t) * CR_SHM_NSERVER_COUNTERS);
    memset(tt, 0, sizeof(*tt));
    for (i = 0; i <= h->nslots; i++) {
        struct cr_shm_slot *s = i < h->nslots ? cr_shm_slot(h, i) : cr_shm_retired(h);
        const struct cr_shm_server_stats *ss = cr_shm_slot_server(h, s, row);
        int is_live = i < h->nslots && state_live(s->state);

        for (k = 0; k < CR_SHM_NSERVER_COUNTERS; k++) {
            if (is_live || !is_gauge(cr_shm_server_counter_names[k])) {
                c[k] += ss->counters[k];
            }
        }
        hist_addto(tt, &ss->ttfb);
    }
}

int
cr_report_server(const struct cr_report_in *in, unsigned row, struct cr_report_server *out)
{
    const struct cr_shm_header *h = in->cur, *prev = usable_prev(in);
    uint64_t pc[CR_SHM_NSERVER_COUNTERS];
    struct cr_shm_hist tt, ptt, win;

    memset(out, 0, sizeof(*out));
    if (row >= h->servers_cap || !cr_shm_server_at(h, row)->used) {
        return CR_ERR;
    }
    out->row = row;
    out->sv = cr_shm_server_at(h, row);
    sum_server(h, row, out->c, &tt);
    if (prev != NULL) {
        sum_server(prev, row, pc, &ptt);
        out->rps = per_s(sub0(out->c[CR_SHM_S_requests_total], pc[CR_SHM_S_requests_total]),
                         in->elapsed);
        hist_delta(&win, &tt, &ptt);
        lat_of(&out->ttfb, &win);
    } else {
        out->rps = per_s(out->c[CR_SHM_S_requests_total], uptime_of(h->start_ms, in->now_ms));
        lat_of(&out->ttfb, &tt);
    }
    if (in->now_mono_ms != 0 && out->sv->ejected_until_ms > in->now_mono_ms) {
        out->ejected_for_ms = out->sv->ejected_until_ms - in->now_mono_ms;
    }
    return CR_OK;
}

/* ------------------------------------------------------------------------ */
/* JSON writer */

#define JW_DEPTH 16

struct jw {
    struct cr_report_buf    *b;
    int                      depth;
    int                      count[JW_DEPTH];   /* values written per level */
};

static void
jw_escape(struct cr_report_buf *b, const char *s, size_t max)
{
    size_t i, n = strnlen(s, max);

    cr_report_buf_add(b, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\') {
            char e[2] = { '\\', (char)ch };

            cr_report_buf_add(b, e, 2);
        } else if (ch == '\n') {
            cr_report_buf_add(b, "\\n", 2);
        } else if (ch == '\t') {
            cr_report_buf_add(b, "\\t", 2);
        } else if (ch < 0x20 || ch >= 0x7f) {
            cr_report_buf_printf(b, "\\u%04x", ch);
        } else {
            cr_report_buf_add(b, s + i, 1);
        }
    }
    cr_report_buf_add(b, "\"", 1);
}

/* Comma, newline, indentation and "key": before a value. */
static void
jw_pre(struct jw *w, const char *key)
{
    int i;

    if (w->count[w->depth] > 0) {
        cr_report_buf_add(w->b, ",", 1);
    }
    w->count[w->depth]++;
    if (w->depth > 0) {
        cr_report_buf_add(w->b, "\n", 1);
        for (i = 0; i < w->depth; i++) {
            cr_report_buf_add(w->b, "  ", 2);
        }
    }
    if (key != NULL) {
        jw_escape(w->b, key, strlen(key));
        cr_report_buf_add(w->b, ": ", 2);
    }
}

static void
jw_open(struct jw *w, const char *key, char ch)
{
    jw_pre(w, key);
    cr_report_buf_add(w->b, &ch, 1);
    if (w->depth < JW_DEPTH - 1) {
        w->depth++;
    }
    w->count[w->depth] = 0;
}

static void
jw_close(struct jw *w, char ch)
{
    int had = w->count[w->depth], i;

    if (w->depth > 0) {
        w->depth--;
    }
    if (had > 0) {
        cr_report_buf_add(w->b, "\n", 1);
        for (i = 0; i < w->depth; i++) {
            cr_report_buf_add(w->b, "  ", 2);
        }
    }
    cr_report_buf_add(w->b, &ch, 1);
}

static void
jw_u64(struct jw *w, const char *key, uint64_t v)
{
    jw_pre(w, key);
    cr_report_buf_printf(w->b, "%llu", (unsigned long long)v);
}

static void
jw_i64(struct jw *w, const char *key, long long v)
{
    jw_pre(w, key);
    cr_report_buf_printf(w->b, "%lld", v);
}

static void
jw_num(struct jw *w, const char *key, double v)
{
    jw_pre(w, key);
    if (!isfinite(v)) {
        v = 0;
    }
    cr_report_buf_printf(w->b, "%.3f", v);
}

static void
jw_str(struct jw *w, const char *key, const char *s, size_t max)
{
    jw_pre(w, key);
    jw_escape(w->b, s, max);
}

static void
jw_bool(struct jw *w, const char *key, int v)
{
    jw_pre(w, key);
    buf_adds(w->b, v ? "true" : "false");
}

static void
jw_null(struct jw *w, const char *key)
{
    jw_pre(w, key);
    buf_adds(w->b, "null");
}

static void
jw_lat(struct jw *w, const char *key, const struct cr_report_lat *l)
{
    jw_open(w, key, '{');
    jw_num(w, "p50", l->p50);
    jw_num(w, "p90", l->p90);
    jw_num(w, "p99", l->p99);
    jw_close(w, '}');
}

/*
 * "responses": {"1xx": ..}, from the counters named responses_Nxx_total
 * of <names>, in X-macro order.
 */
static void
jw_responses(struct jw *w, const char *const *names, const uint64_t *c, unsigned n)
{
    char key[8];
    unsigned i;

    jw_open(w, "responses", '{');
    for (i = 0; i < n; i++) {
        if (strncmp(names[i], "responses_", 10) == 0 && strlen(names[i]) > 13) {
            snprintf(key, sizeof(key), "%.3s", names[i] + 10);
            jw_u64(w, key, c[i]);
        }
    }
    jw_close(w, '}');
}

/* "errors": {"400": ..}, from the worker counters named errors_NNN_total. */
static void
jw_errors(struct jw *w, const uint64_t *c)
{
    char key[8];
    unsigned i;

    jw_open(w, "errors", '{');
    for (i = 0; i < CR_SHM_NCOUNTERS; i++) {
        const char *nm = cr_shm_counter_names[i];

        if (strncmp(nm, "errors_", 7) == 0 && strlen(nm) > 10) {
            snprintf(key, sizeof(key), "%.3s", nm + 7);
            jw_u64(w, key, c[i]);
        }
    }
    jw_close(w, '}');
}

static void
jw_counters(struct jw *w, const char *const *names, const uint64_t *c, unsigned n)
{
    unsigned i;

    jw_open(w, "counters", '{');
    for (i = 0; i < n; i++) {
        jw_u64(w, names[i], c[i]);
    }
    jw_close(w, '}');
}

static void
jw_worker(struct jw *w, const struct cr_report_worker *wk)
{
    const uint64_t *c = wk->c;

    jw_open(w, NULL, '{');
    jw_u64(w, "id", wk->s->id);
    jw_u64(w, "slot", wk->slot);
    jw_i64(w, "pid", wk->s->pid);
    jw_u64(w, "generation", wk->s->generation);
    jw_bool(w, "current", wk->current);
    jw_str(w, "state", cr_report_state_name(wk->s->state), 16);
    jw_num(w, "start_time", (double)wk->s->start_ms / 1000.0);
    jw_num(w, "uptime_seconds", wk->uptime_s);
    if (wk->heartbeat_age_ms >= 0) {
        jw_num(w, "heartbeat_age_ms", wk->heartbeat_age_ms);
    } else {
        jw_null(w, "heartbeat_age_ms");
    }
    jw_u64(w, "requests", c[CR_SHM_C_requests_total]);
    jw_u64(w, "requests_active", c[CR_SHM_C_requests_active]);
    jw_u64(w, "connections_accepted", c[CR_SHM_C_connections_accepted_total]);
    jw_u64(w, "connections_active", c[CR_SHM_C_connections_active]);
    jw_responses(w, cr_shm_counter_names, c, CR_SHM_NCOUNTERS);
    jw_errors(w, c);
    jw_u64(w, "bytes_in", c[CR_SHM_C_client_bytes_in_total]);
    jw_u64(w, "bytes_out", c[CR_SHM_C_client_bytes_out_total]);
    jw_num(w, "rps", wk->rps);
    jw_lat(w, "latency_ms", &wk->latency);
    jw_lat(w, "upstream_ttfb_ms", &wk->ttfb);
    jw_counters(w, cr_shm_counter_names, c, CR_SHM_NCOUNTERS);
    jw_close(w, '}');
}

static void
jw_workers(struct jw *w, const struct cr_report_in *in)
{
    struct cr_report_worker wk;
    unsigned i;

    jw_open(w, "workers", '[');
    for (i = 0; i < in->cur->nslots; i++) {
        if (cr_report_worker(in, i, &wk) == CR_OK) {
            jw_worker(w, &wk);
        }
    }
    jw_close(w, ']');
}

static int
jw_end(struct jw *w)
{
    jw_close(w, '}');
    cr_report_buf_add(w->b, "\n", 1);
    return w->b->failed ? CR_ERR : CR_OK;
}

static void
jw_begin(struct jw *w, struct cr_report_buf *b, const struct cr_report_in *in)
{
    memset(w, 0, sizeof(*w));
    w->b = b;
    jw_open(w, NULL, '{');
    jw_str(w, "instance", in->cur->name, sizeof(in->cur->name));
}

static double
window_of(const struct cr_report_in *in)
{
    return usable_prev(in) != NULL ? in->elapsed : 0;
}

int
cr_report_status_json(struct cr_report_buf *b, const struct cr_report_in *in)
{
    const struct cr_shm_header *h = in->cur;
    const struct cr_shm_slot *r;
    struct cr_report_totals t;
    struct jw w;
    char hash[24];

    cr_report_totals(in, &t);
    jw_begin(&w, b, in);
    jw_i64(&w, "master_pid", h->master_pid);
    jw_num(&w, "start_time", (double)h->start_ms / 1000.0);
    jw_num(&w, "uptime_seconds", t.uptime_s);
    jw_u64(&w, "generation", h->generation);
    jw_str(&w, "config_path", h->config_path, sizeof(h->config_path));
    snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)h->config_hash);
    jw_str(&w, "config_hash", hash, sizeof(hash));
    jw_u64(&w, "reloads_ok", h->reloads_ok);
    jw_u64(&w, "reloads_failed", h->reloads_failed);
    jw_str(&w, "last_reload_error", h->last_reload_error, sizeof(h->last_reload_error));
    jw_str(&w, "reload_mechanism", h->reload_mechanism, sizeof(h->reload_mechanism));
    jw_u64(&w, "workers_configured", h->workers);
    jw_u64(&w, "workers_live", t.live);
    jw_num(&w, "window_seconds", window_of(in));
    jw_num(&w, "rps", t.rps);

    jw_open(&w, "totals", '{');
    jw_u64(&w, "requests", t.c[CR_SHM_C_requests_total]);
    jw_u64(&w, "requests_active", t.c[CR_SHM_C_requests_active]);
    jw_u64(&w, "connections_accepted", t.c[CR_SHM_C_connections_accepted_total]);
    jw_u64(&w, "connections_active", t.c[CR_SHM_C_connections_active]);
    jw_responses(&w, cr_shm_counter_names, t.c, CR_SHM_NCOUNTERS);
    jw_errors(&w, t.c);
    jw_u64(&w, "bytes_in", t.c[CR_SHM_C_client_bytes_in_total]);
    jw_u64(&w, "bytes_out", t.c[CR_SHM_C_client_bytes_out_total]);
    jw_u64(&w, "upstream_bytes_in", t.c[CR_SHM_C_upstream_bytes_in_total]);
    jw_u64(&w, "upstream_bytes_out", t.c[CR_SHM_C_upstream_bytes_out_total]);
    jw_num(&w, "rps", t.rps);
    jw_lat(&w, "latency_ms", &t.latency);
    jw_lat(&w, "upstream_ttfb_ms", &t.ttfb);
    jw_counters(&w, cr_shm_counter_names, t.c, CR_SHM_NCOUNTERS);
    jw_close(&w, '}');

    /* what exited workers counted: totals = workers[] + retired */
    r = cr_shm_retired(h);
    jw_open(&w, "retired", '{');
    jw_u64(&w, "requests", r->counters[CR_SHM_C_requests_total]);
    jw_u64(&w, "connections_accepted", r->counters[CR_SHM_C_connections_accepted_total]);
    jw_counters(&w, cr_shm_counter_names, r->counters, CR_SHM_NCOUNTERS);
    jw_close(&w, '}');

    jw_workers(&w, in);
    return jw_end(&w);
}

int
cr_report_workers_json(struct cr_report_buf *b, const struct cr_report_in *in)
{
    struct jw w;

    jw_begin(&w, b, in);
    jw_u64(&w, "generation", in->cur->generation);
    jw_num(&w, "window_seconds", window_of(in));
    jw_workers(&w, in);
    return jw_end(&w);
}

int
cr_report_routes_json(struct cr_report_buf *b, const struct cr_report_in *in)
{
    struct cr_report_route r;
    struct jw w;
    unsigned i;

    jw_begin(&w, b, in);
    jw_num(&w, "window_seconds", window_of(in));
    jw_open(&w, "routes", '[');
    for (i = 0; i < in->cur->routes_cap; i++) {
        if (cr_report_route(in, i, &r) != CR_OK) {
            continue;
        }
        jw_open(&w, NULL, '{');
        jw_str(&w, "name", r.r->name, sizeof(r.r->name));
        jw_str(&w, "upstream", r.r->upstream, sizeof(r.r->upstream));
        jw_bool(&w, "current", r.r->current != 0);
        jw_u64(&w, "requests", r.c[CR_SHM_R_requests_total]);
        jw_u64(&w, "requests_active", r.c[CR_SHM_R_requests_active]);
        jw_responses(&w, cr_shm_route_counter_names, r.c, CR_SHM_NROUTE_COUNTERS);
        jw_u64(&w, "bytes_in", r.c[CR_SHM_R_bytes_in_total]);
        jw_u64(&w, "bytes_out", r.c[CR_SHM_R_bytes_out_total]);
        jw_num(&w, "rps", r.rps);
        jw_lat(&w, "latency_ms", &r.latency);
        jw_counters(&w, cr_shm_route_counter_names, r.c, CR_SHM_NROUTE_COUNTERS);
        jw_close(&w, '}');
    }
    jw_close(&w, ']');
    return jw_end(&w);
}

int
cr_report_upstreams_json(struct cr_report_buf *b, const struct cr_report_in *in)
{
    struct cr_report_server s;
    struct jw w;
    unsigned i;

    jw_begin(&w, b, in);
    jw_num(&w, "window_seconds", window_of(in));
    jw_open(&w, "servers", '[');
    for (i = 0; i < in->cur->servers_cap; i++) {
        if (cr_report_server(in, i, &s) != CR_OK) {
            continue;
        }
        jw_open(&w, NULL, '{');
        jw_str(&w, "upstream", s.sv->upstream, sizeof(s.sv->upstream));
        jw_str(&w, "address", s.sv->address, sizeof(s.sv->address));
        jw_u64(&w, "weight", s.sv->weight);
        jw_str(&w, "health", cr_report_health_name(s.sv->health), 16);
        jw_bool(&w, "current", s.sv->current != 0);
        jw_u64(&w, "requests", s.c[CR_SHM_S_requests_total]);
        jw_u64(&w, "requests_active", s.c[CR_SHM_S_requests_active]);
        jw_responses(&w, cr_shm_server_counter_names, s.c, CR_SHM_NSERVER_COUNTERS);
        jw_u64(&w, "bytes_in", s.c[CR_SHM_S_bytes_in_total]);
        jw_u64(&w, "bytes_out", s.c[CR_SHM_S_bytes_out_total]);
        jw_u64(&w, "connects", s.c[CR_SHM_S_connects_total]);
        jw_u64(&w, "failures", s.c[CR_SHM_S_failures_total]);
        jw_u64(&w, "timeouts", s.c[CR_SHM_S_timeouts_total]);
        jw_u64(&w, "checks_ok", s.sv->checks_ok);
        jw_u64(&w, "checks_failed", s.sv->checks_failed);
        jw_num(&w, "last_check_time", (double)s.sv->last_check_ms / 1000.0);
        jw_str(&w, "last_error", s.sv->last_error, sizeof(s.sv->last_error));
        jw_num(&w, "rps", s.rps);
        jw_lat(&w, "ttfb_ms", &s.ttfb);
        jw_counters(&w, cr_shm_server_counter_names, s.c, CR_SHM_NSERVER_COUNTERS);
        jw_open(&w, "check", '{');
        jw_u64(&w, "passes", s.sv->check_passes);
        jw_u64(&w, "fails", s.sv->check_fails);
        jw_u64(&w, "last_status", s.sv->last_status);
        jw_num(&w, "duration_ms", (double)s.sv->last_check_us / 1000.0);
        jw_num(&w, "changed_time", (double)s.sv->health_changed_ms / 1000.0);
        jw_close(&w, '}');
        jw_open(&w, "ejection", '{');
        jw_bool(&w, "ejected", s.ejected_for_ms != 0);
        jw_u64(&w, "remaining_ms", s.ejected_for_ms);
        jw_u64(&w, "consecutive_failures", s.sv->fails);
        jw_u64(&w, "total", s.sv->ejections_total);
        jw_u64(&w, "streak", s.sv->eject_streak);
        jw_num(&w, "last_time", (double)s.sv->last_ejection_ms / 1000.0);
        jw_u64(&w, "last_duration_ms", s.sv->last_ejection_for_ms);
        jw_close(&w, '}');
        jw_close(&w, '}');
    }
    jw_close(&w, ']');
    return jw_end(&w);
}

/* ------------------------------------------------------------------------ */
/* Prometheus text exposition */

/*
 * Label value <s> (at most <max> bytes) escaped as the exposition format
 * asks: backslash, double quote and newline. Other control bytes and bytes
 * >= 0x7f become '?', so the output stays valid UTF-8.
 */
static void
prom_label(struct cr_report_buf *b, const char *name, const char *s, size_t max)
{
    size_t i, n = strnlen(s, max);

    cr_report_buf_printf(b, "%s=\"", name);
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '\\') {
            cr_report_buf_add(b, "\\\\", 2);
        } else if (ch == '"') {
            cr_report_buf_add(b, "\\\"", 2);
        } else if (ch == '\n') {
            cr_report_buf_add(b, "\\n", 2);
        } else if (ch < 0x20 || ch >= 0x7f) {
            cr_report_buf_add(b, "?", 1);
        } else {
            cr_report_buf_add(b, s + i, 1);
        }
    }
    cr_report_buf_add(b, "\"", 1);
}

/* HELP text: backslash and newline escaped. */
static void
prom_family(struct cr_report_buf *b, const char *prefix, const char *field,
            const char *help, const char *type)
{
    const char *p;

    cr_report_buf_printf(b, "# HELP %s%s ", prefix, field);
    for (p = help; *p != '\0'; p++) {
        if (*p == '\\') {
            cr_report_buf_add(b, "\\\\", 2);
        } else if (*p == '\n') {
            cr_report_buf_add(b, "\\n", 2);
        } else {
            cr_report_buf_add(b, p, 1);
        }
    }
    cr_report_buf_printf(b, "\n# TYPE %s%s %s\n", prefix, field, type);
}

/* Labels of one series, ready to paste between braces. */
struct prom_labels {
    char                     text[1024];
};

static void
labels_make(struct prom_labels *l, const struct cr_shm_header *h, const char *k1,
            const char *v1, size_t m1, const char *k2, const char *v2, size_t m2)
{
    struct cr_report_buf b;

    cr_report_buf_init(&b);
    prom_label(&b, "instance", h->name, sizeof(h->name));
    if (k1 != NULL) {
        cr_report_buf_add(&b, ",", 1);
        prom_label(&b, k1, v1, m1);
    }
    if (k2 != NULL) {
        cr_report_buf_add(&b, ",", 1);
        prom_label(&b, k2, v2, m2);
    }
    snprintf(l->text, sizeof(l->text), "%s", b.failed || b.data == NULL ? "" : b.data);
    cr_report_buf_free(&b);
}

static void
labels_slot(struct prom_labels *l, const struct cr_shm_header *h, int slot)
{
    char id[16], sl[16];

    if (slot < 0) {
        labels_make(l, h, "worker", "retired", 8, "slot", "retired", 8);
        return;
    }
    snprintf(id, sizeof(id), "%u", cr_shm_slot(h, (unsigned)slot)->id);
    snprintf(sl, sizeof(sl), "%d", slot);
    labels_make(l, h, "worker", id, sizeof(id), "slot", sl, sizeof(sl));
}

/* A bound in microseconds as seconds, without trailing zeros. */
static void
fmt_le(char *out, size_t len, uint64_t us)
{
    size_t n;

    snprintf(out, len, "%llu.%06llu", (unsigned long long)(us / 1000000),
             (unsigned long long)(us % 1000000));
    n = strlen(out);
    while (n > 0 && out[n - 1] == '0') {
        out[--n] = '\0';
    }
    if (n > 0 && out[n - 1] == '.') {
        out[--n] = '\0';
    }
}

/* One histogram series: cumulative buckets, +Inf, _sum (seconds), _count. */
static void
prom_hist(struct cr_report_buf *b, const char *name, const char *labels,
          const struct cr_shm_hist *hist)
{
    uint64_t cum = 0;
    char le[32];
    unsigned i;

    for (i = 0; i < CR_SHM_HIST_BUCKETS; i++) {
        cum += hist->buckets[i];
        if (cr_shm_hist_bound(i) == 0) {
            continue;       /* the open last bucket is +Inf */
        }
        fmt_le(le, sizeof(le), cr_shm_hist_bound(i));
        cr_report_buf_printf(b, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, le,
                             (unsigned long long)cum);
    }
    /* count from the buckets: the writer bumps a bucket before count */
    cr_report_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
                         (unsigned long long)cum);
    cr_report_buf_printf(b, "%s_sum{%s} %.6f\n", name, labels, (double)hist->sum_us / 1e6);
    cr_report_buf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

static void
prom_header(struct cr_report_buf *b, const struct cr_shm_header *h)
{
    struct prom_labels l;
    char gen[24];

    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)h->generation);
    labels_make(&l, h, "generation", gen, sizeof(gen), NULL, NULL, 0);
    prom_family(b, "corral_", "info", "corral instance; the generation label is the "
                "generation now serving", "gauge");
    cr_report_buf_printf(b, "corral_info{%s} 1\n", l.text);

    labels_make(&l, h, NULL, NULL, 0, NULL, NULL, 0);
    prom_family(b, "corral_", "start_time_seconds", "start time of the master, unix seconds",
                "gauge");
    cr_report_buf_printf(b, "corral_start_time_seconds{%s} %.3f\n", l.text,
                         (double)h->start_ms / 1000.0);
    prom_family(b, "corral_", "workers_configured", "worker processes per generation",
                "gauge");
    cr_report_buf_printf(b, "corral_workers_configured{%s} %u\n", l.text, h->workers);

    prom_family(b, "corral_", "reloads_total", "configuration reloads by result", "counter");
    labels_make(&l, h, "result", "ok", 3, NULL, NULL, 0);
    cr_report_buf_printf(b, "corral_reloads_total{%s} %llu\n", l.text,
                         (unsigned long long)h->reloads_ok);
    labels_make(&l, h, "result", "failed", 7, NULL, NULL, 0);
    cr_report_buf_printf(b, "corral_reloads_total{%s} %llu\n", l.text,
                         (unsigned long long)h->reloads_failed);
}

static void
prom_workers(struct cr_report_buf *b, const struct cr_shm_header *h)
{
    struct prom_labels l;
    unsigned c, i;

    for (c = 0; c < CR_SHM_NCOUNTERS; c++) {
        const char *nm = cr_shm_counter_names[c];
        int gauge = is_gauge(nm);

        prom_family(b, "corral_", nm, cr_shm_counter_help[c], gauge ? "gauge" : "counter");
        for (i = 0; i < h->nslots; i++) {
            const struct cr_shm_slot *s = cr_shm_slot(h, i);

            if (s->state == CR_SHM_SLOT_FREE || (gauge && !state_live(s->state))) {
                continue;
            }
            labels_slot(&l, h, (int)i);
            cr_report_buf_printf(b, "corral_%s{%s} %llu\n", nm, l.text,
                                 (unsigned long long)s->counters[c]);
        }
        if (!gauge) {
            labels_slot(&l, h, -1);
            cr_report_buf_printf(b, "corral_%s{%s} %llu\n", nm, l.text,
                                 (unsigned long long)cr_shm_retired(h)->counters[c]);
        }
    }

    prom_family(b, "corral_", "worker_start_time_seconds",
                "start time of a live worker process, unix seconds", "gauge");
    for (i = 0; i < h->nslots; i++) {
        const struct cr_shm_slot *s = cr_shm_slot(h, i);

        if (state_live(s->state)) {
            labels_slot(&l, h, (int)i);
            cr_report_buf_printf(b, "corral_worker_start_time_seconds{%s} %.3f\n", l.text,
                                 (double)s->start_ms / 1000.0);
        }
    }

    for (c = 0; c < 2; c++) {
        const char *name = c == 0 ? "corral_request_duration_seconds"
                                  : "corral_upstream_ttfb_seconds";

        prom_family(b, name, "", c == 0
                    ? "time from the first byte of a request to the end of its response"
                    : "time from sending a request upstream to the first byte of its response",
                    "histogram");
        for (i = 0; i <= h->nslots; i++) {
            const struct cr_shm_slot *s = i < h->nslots ? cr_shm_slot(h, i) : cr_shm_retired(h);

            if (i < h->nslots && s->state == CR_SHM_SLOT_FREE) {
                continue;
            }
            labels_slot(&l, h, i < h->nslots ? (int)i : -1);
            prom_hist(b, name, l.text, c == 0 ? &s->request_time : &s->upstream_ttfb);
        }
    }
}

static void
prom_routes(struct cr_report_buf *b, const struct cr_report_in *in)
{
    const struct cr_shm_header *h = in->cur;
    struct cr_report_route r;
    struct prom_labels l;
    struct cr_shm_hist rt;
    uint64_t c[CR_SHM_NROUTE_COUNTERS];
    unsigned k, i;

    for (k = 0; k < CR_SHM_NROUTE_COUNTERS; k++) {
        const char *nm = cr_shm_route_counter_names[k];

        prom_family(b, "corral_route_", nm, cr_shm_route_counter_help[k],
                    is_gauge(nm) ? "gauge" : "counter");
        for (i = 0; i < h->routes_cap; i++) {
            if (cr_report_route(in, i, &r) != CR_OK) {
                continue;
            }
            labels_make(&l, h, "route", r.r->name, sizeof(r.r->name), NULL, NULL, 0);
            cr_report_buf_printf(b, "corral_route_%s{%s} %llu\n", nm, l.text,
                                 (unsigned long long)r.c[k]);
        }
    }
    prom_family(b, "corral_route_request_duration_seconds", "",
                "time from the first byte of a request to the end of its response, by route",
                "histogram");
    for (i = 0; i < h->routes_cap; i++) {
        if (!cr_shm_route_at(h, i)->used) {
            continue;
        }
        sum_route(h, i, c, &rt);
        labels_make(&l, h, "route", cr_shm_route_at(h, i)->name, CR_SHM_NAME_MAX,
                    NULL, NULL, 0);
        prom_hist(b, "corral_route_request_duration_seconds", l.text, &rt);
    }
}

static void
server_labels(struct prom_labels *l, const struct cr_shm_header *h,
              const struct cr_shm_server *sv)
{
    labels_make(l, h, "upstream", sv->upstream, sizeof(sv->upstream),
                "server", sv->address, sizeof(sv->address));
}

static void
prom_servers(struct cr_report_buf *b, const struct cr_report_in *in)
{
    const struct cr_shm_header *h = in->cur;
    struct cr_report_server s;
    struct prom_labels l;
    struct cr_shm_hist tt;
    uint64_t c[CR_SHM_NSERVER_COUNTERS];
    unsigned k, i, res;

    for (k = 0; k < CR_SHM_NSERVER_COUNTERS; k++) {
        const char *nm = cr_shm_server_counter_names[k];

        prom_family(b, "corral_upstream_server_", nm, cr_shm_server_counter_help[k],
                    is_gauge(nm) ? "gauge" : "counter");
        for (i = 0; i < h->servers_cap; i++) {
            if (cr_report_server(in, i, &s) != CR_OK) {
                continue;
            }
            server_labels(&l, h, s.sv);
            cr_report_buf_printf(b, "corral_upstream_server_%s{%s} %llu\n", nm, l.text,
                                 (unsigned long long)s.c[k]);
        }
    }
    prom_family(b, "corral_upstream_server_ttfb_seconds", "",
                "time from sending a request to the server to the first byte of its response",
                "histogram");
    for (i = 0; i < h->servers_cap; i++) {
        const struct cr_shm_server *sv = cr_shm_server_at(h, i);

        if (!sv->used) {
            continue;
        }
        sum_server(h, i, c, &tt);
        server_labels(&l, h, sv);
        prom_hist(b, "corral_upstream_server_ttfb_seconds", l.text, &tt);
    }

    prom_family(b, "corral_upstream_server_", "up",
                "1 if the server is up or not actively checked, 0 if checks mark it down",
                "gauge");
    for (i = 0; i < h->servers_cap; i++) {
        const struct cr_shm_server *sv = cr_shm_server_at(h, i);

        if (sv->used) {
            server_labels(&l, h, sv);
            cr_report_buf_printf(b, "corral_upstream_server_up{%s} %d\n", l.text,
                                 sv->health == CR_SHM_HEALTH_DOWN ? 0 : 1);
        }
    }
    prom_family(b, "corral_upstream_server_", "weight", "configured weight of the server",
                "gauge");
    for (i = 0; i < h->servers_cap; i++) {
        const struct cr_shm_server *sv = cr_shm_server_at(h, i);

        if (sv->used) {
            server_labels(&l, h, sv);
            cr_report_buf_printf(b, "corral_upstream_server_weight{%s} %u\n", l.text,
                                 sv->weight);
        }
    }
    prom_family(b, "corral_upstream_server_", "ejected",
                "1 while passive outlier detection keeps the server out, else 0", "gauge");
    for (i = 0; i < h->servers_cap; i++) {
        const struct cr_shm_server *sv = cr_shm_server_at(h, i);

        if (sv->used) {
            server_labels(&l, h, sv);
            cr_report_buf_printf(b, "corral_upstream_server_ejected{%s} %d\n", l.text,
                                 in->now_mono_ms != 0 && sv->ejected_until_ms > in->now_mono_ms);
        }
    }
    prom_family(b, "corral_upstream_server_", "ejections_total",
                "times passive outlier detection ejected the server", "counter");
    for (i = 0; i < h->servers_cap; i++) {
        const struct cr_shm_server *sv = cr_shm_server_at(h, i);

        if (sv->used) {
            server_labels(&l, h, sv);
            cr_report_buf_printf(b, "corral_upstream_server_ejections_total{%s} %llu\n", l.text,
                                 (unsigned long long)sv->ejections_total);
        }
    }
    prom_family(b, "corral_upstream_server_", "health_checks_total",
                "active health checks of the server by result", "counter");
    for (i = 0; i < h->servers_cap; i++) {
        const struct cr_shm_server *sv = cr_shm_server_at(h, i);

        if (!sv->used) {
            continue;
        }
        server_labels(&l, h, sv);
        for (res = 0; res < 2; res++) {
            cr_report_buf_printf(b, "corral_upstream_server_health_checks_total{%s,"
                                 "result=\"%s\"} %llu\n", l.text, res == 0 ? "ok" : "failed",
                                 (unsigned long long)(res == 0 ? sv->checks_ok
                                                                : sv->checks_failed));
        }
    }
}

int
cr_report_prometheus(struct cr_report_buf *b, const struct cr_report_in *in)
{
    prom_header(b, in->cur);
    prom_workers(b, in->cur);
    prom_routes(b, in);
    prom_servers(b, in);
    return b->failed ? CR_ERR : CR_OK;
}
