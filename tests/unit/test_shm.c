/*
 * test_shm.c - the stats segment (shm/shm.c) and its rendering (shm/report.c).
 *
 * Each test that needs a segment gets a fresh one named "test-<pid>-<n>"
 * from its setup, and its teardown unlinks it whether the test passed or
 * not. Counters are written the way workers write them (cr_shm_add into a
 * slot, its route and server rows, cr_shm_hist_add), the master's part is
 * played by cr_shm_slot_alloc / cr_shm_slot_retire / cr_shm_route_row /
 * cr_shm_server_row, and readers always work on cr_shm_snapshot() copies.
 *
 * JSON output is checked by parsing it back with a small recursive-descent
 * parser below (syntax, and values looked up by path such as
 * "totals.responses.2xx"); Prometheus output line by line against the
 * exposition format's grammar, plus the histogram invariants.
 */
#include <math.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf/common.h"
#include "shm/report.h"
#include "shm/shm.h"

struct fixture {
    struct cr_shm            shm;
    char                     name[64];
    struct cr_shm_header    *h;
    int                      r_api;     /* route rows */
    int                      r_ping;
    int                      s_a;       /* server rows */
    int                      s_b;
};

static unsigned seq;

static int
seg_setup(void **state)
{
    struct cr_shm_sizes sz = { 2, 4, 4, 4 };
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];

    assert_non_null(f);
    snprintf(f->name, sizeof(f->name), "test-%d-%u", (int)getpid(), seq++);
    if (cr_shm_create(&f->shm, f->name, &sz, 0640, err, sizeof(err)) != CR_OK) {
        fail_msg("cr_shm_create: %s", err);
    }
    f->h = f->shm.hdr;
    f->h->generation = 1;
    f->r_api = cr_shm_route_row(f->h, "api", "app");
    f->r_ping = cr_shm_route_row(f->h, "ping", NULL);
    f->s_a = cr_shm_server_row(f->h, "app", "127.0.0.1:9001", 2);
    f->s_b = cr_shm_server_row(f->h, "app", "127.0.0.1:9002", 1);
    *state = f;
    return 0;
}

static int
seg_teardown(void **state)
{
    struct fixture *f = *state;

    cr_shm_unlink(&f->shm);
    cr_shm_detach(&f->shm);
    free(f);
    return 0;
}

static void *
snap(const struct cr_shm_header *h)
{
    void *p = malloc(h->total_size);

    assert_non_null(p);
    assert_int_equal(cr_shm_snapshot(h, p), CR_OK);
    return p;
}

/* What a worker does for one request of <us> microseconds with <status>. */
static void
request(struct fixture *f, int slot, int route, int server, int status, uint64_t us)
{
    struct cr_shm_slot *s = cr_shm_slot(f->h, (unsigned)slot);
    struct cr_shm_route_stats *rs = cr_shm_slot_route(f->h, s, (unsigned)route);
    unsigned cls = (unsigned)status / 100 - 1;

    cr_shm_add(&s->counters[CR_SHM_C_connections_accepted_total], 1);
    cr_shm_add(&s->counters[CR_SHM_C_requests_total], 1);
    cr_shm_add(&s->counters[CR_SHM_C_responses_1xx_total + cls], 1);
    cr_shm_add(&s->counters[CR_SHM_C_client_bytes_in_total], 100);
    cr_shm_add(&s->counters[CR_SHM_C_client_bytes_out_total], 1000);
    if (status == 502) {
        cr_shm_add(&s->counters[CR_SHM_C_errors_502_total], 1);
    }
    cr_shm_hist_add(&s->request_time, us);
    cr_shm_add(&rs->counters[CR_SHM_R_requests_total], 1);
    cr_shm_add(&rs->counters[CR_SHM_R_responses_1xx_total + cls], 1);
    cr_shm_add(&rs->counters[CR_SHM_R_bytes_out_total], 1000);
    cr_shm_hist_add(&rs->request_time, us);
    if (server >= 0) {
        struct cr_shm_server_stats *ss = cr_shm_slot_server(f->h, s, (unsigned)server);

        cr_shm_add(&ss->counters[CR_SHM_S_requests_total], 1);
        cr_shm_add(&ss->counters[CR_SHM_S_responses_1xx_total + cls], 1);
        cr_shm_hist_add(&ss->ttfb, us / 2);
        cr_shm_hist_add(&s->upstream_ttfb, us / 2);
    }
}

static int
start_worker(struct fixture *f, unsigned id, int pid)
{
    int slot = cr_shm_slot_alloc(f->h, f->h->generation, id);

    assert_true(slot >= 0);
    cr_shm_slot(f->h, (unsigned)slot)->pid = pid;
    cr_shm_slot(f->h, (unsigned)slot)->state = CR_SHM_SLOT_RUNNING;
    return slot;
}

static void
set_gauges(struct fixture *f, int slot, uint64_t conns, uint64_t active)
{
    struct cr_shm_slot *s = cr_shm_slot(f->h, (unsigned)slot);

    cr_shm_set(&s->counters[CR_SHM_C_connections_active], conns);
    cr_shm_set(&s->counters[CR_SHM_C_requests_active], active);
    cr_shm_set(&cr_shm_slot_route(f->h, s, (unsigned)f->r_api)
                   ->counters[CR_SHM_R_requests_active], active);
}

static void
totals_of(const struct cr_shm_header *snapshot, struct cr_report_totals *t)
{
    struct cr_report_in in = { snapshot, NULL, 0, snapshot->start_ms + 10000, 0 };

    cr_report_totals(&in, t);
}

/* ------------------------------------------------------------------------ */
/* a small JSON parser: syntax check and lookup by dotted path */

struct jp {
    const char  *p;
    const char  *end;
    int          ok;
};

static void json_value(struct jp *j);

static void
ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')) {
        j->p++;
    }
}

static void
json_string(struct jp *j)
{
    if (j->p >= j->end || *j->p != '"') {
        j->ok = 0;
        return;
    }
    for (j->p++; j->p < j->end && *j->p != '"'; j->p++) {
        if ((unsigned char)*j->p < 0x20) {
            j->ok = 0;
            return;
        }
        if (*j->p == '\\') {
            j->p++;
            if (j->p >= j->end || strchr("\"\\/bfnrtu", *j->p) == NULL) {
                j->ok = 0;
                return;
            }
            if (*j->p == 'u') {
                int i;

                for (i = 0; i < 4; i++) {
                    j->p++;
                    if (j->p >= j->end || strchr("0123456789abcdefABCDEF", *j->p) == NULL) {
                        j->ok = 0;
                        return;
                    }
                }
            }
        }
    }
    if (j->p >= j->end) {
        j->ok = 0;
        return;
    }
    j->p++;
}

static void
json_value(struct jp *j)
{
    ws(j);
    if (!j->ok || j->p >= j->end) {
        j->ok = 0;
        return;
    }
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        int obj = *j->p == '{';

        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return;
        }
        for (;;) {
            if (obj) {
                ws(j);
                json_string(j);
                ws(j);
                if (!j->ok || j->p >= j->end || *j->p != ':') {
                    j->ok = 0;
                    return;
                }
                j->p++;
            }
            json_value(j);
            ws(j);
            if (!j->ok || j->p >= j->end) {
                j->ok = 0;
                return;
            }
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p == close) {
                j->p++;
                return;
            }
            j->ok = 0;
            return;
        }
    } else if (*j->p == '"') {
        json_string(j);
    } else if (strncmp(j->p, "true", 4) == 0 || strncmp(j->p, "null", 4) == 0) {
        j->p += 4;
    } else if (strncmp(j->p, "false", 5) == 0) {
        j->p += 5;
    } else {
        char *e;

        strtod(j->p, &e);
        if (e == j->p) {
            j->ok = 0;
            return;
        }
        j->p = e;
    }
}

static int
json_valid(const char *s)
{
    struct jp j = { s, s + strlen(s), 1 };

    json_value(&j);
    ws(&j);
    return j.ok && j.p == j.end;
}

/*
 * The value at <path> ("totals.requests", "workers.1.pid"): a pointer to
 * its first character, or NULL. Keys hold no dots or escapes here.
 */
static const char *
json_at(const char *doc, const char *path)
{
    struct jp j = { doc, doc + strlen(doc), 1 };
    char part[64];

    while (*path != '\0') {
        size_t n = strcspn(path, ".");

        snprintf(part, sizeof(part), "%.*s", (int)n, path);
        path += n + (path[n] == '.');
        ws(&j);
        if (j.p >= j.end) {
            return NULL;
        }
        if (*j.p == '{') {
            j.p++;
            for (;;) {
                const char *k;

                ws(&j);
                if (j.p >= j.end || *j.p != '"') {
                    return NULL;
                }
                k = j.p + 1;
                json_string(&j);
                if (!j.ok) {
                    return NULL;
                }
                ws(&j);
                j.p++;          /* ':' */
                if ((size_t)(j.p - 2 - k) == strlen(part)
                    && strncmp(k, part, strlen(part)) == 0 && k[strlen(part)] == '"')
                {
                    break;
                }
                json_value(&j);
                ws(&j);
                if (!j.ok || j.p >= j.end || *j.p != ',') {
                    return NULL;
                }
                j.p++;
            }
        } else if (*j.p == '[') {
            long i, want = strtol(part, NULL, 10);

            j.p++;
            for (i = 0; i < want; i++) {
                json_value(&j);
                ws(&j);
                if (!j.ok || j.p >= j.end || *j.p != ',') {
                    return NULL;
                }
                j.p++;
            }
        } else {
            return NULL;
        }
    }
    ws(&j);
    return j.p;
}

static double
json_num(const char *doc, const char *path)
{
    const char *v = json_at(doc, path);

    if (v == NULL) {
        fail_msg("no JSON value at %s", path);
    }
    return strtod(v, NULL);
}

/* The JSON string at <path> starts with the quoted <want>. */
static void
assert_json_str(const char *doc, const char *path, const char *want)
{
    const char *v = json_at(doc, path);
    size_t n = strlen(want);

    if (v == NULL) {
        fail_msg("no JSON value at %s", path);
    }
    if (v[0] != '"' || strncmp(v + 1, want, n) != 0 || v[n + 1] != '"') {
        fail_msg("%s: expected \"%s\", got %.40s", path, want, v);
    }
}

/* ------------------------------------------------------------------------ */
/* create, attach, validate */

static void
test_shm_create_then_attach_reads_same_header(void **state)
{
    struct fixture *f = *state;
    struct cr_shm ro;
    struct stat st;
    char err[256], path[128];

    assert_int_equal(cr_shm_attach(&ro, f->name, err, sizeof(err)), CR_OK);
    assert_int_equal(ro.hdr->magic, CR_SHM_MAGIC);
    assert_int_equal(ro.hdr->major, CR_SHM_MAJOR);
    assert_int_equal(ro.hdr->nslots, 4);
    assert_int_equal(ro.hdr->routes_cap, 4);
    assert_int_equal(ro.hdr->master_pid, getpid());
    assert_string_equal(ro.hdr->name, f->name);
    assert_int_equal(ro.size, ro.hdr->total_size);
    assert_false(ro.writable);
    cr_shm_detach(&ro);

    snprintf(path, sizeof(path), "/dev/shm/corral.%s", f->name);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
}

static void
test_shm_attach_missing_segment_says_so(void **state)
{
    struct cr_shm ro;
    char err[256], name[64];

    (void)state;
    snprintf(name, sizeof(name), "test-%d-missing", (int)getpid());
    assert_int_equal(cr_shm_attach(&ro, name, err, sizeof(err)), CR_ERR);
    assert_non_null(strstr(err, "no corral instance"));
}

/* A private copy of a valid segment to break in various ways. */
static struct cr_shm_header *
copy_of(struct fixture *f)
{
    struct cr_shm_header *c = malloc(f->h->total_size);

    assert_non_null(c);
    memcpy(c, f->h, f->h->total_size);
    return c;
}

static void
expect_invalid(struct cr_shm_header *c, size_t size, const char *needle)
{
    char err[256] = "";

    assert_int_equal(cr_shm_validate(c, size, err, sizeof(err)), CR_ERR);
    if (strstr(err, needle) == NULL) {
        fail_msg("validate: expected an error containing \"%s\", got \"%s\"", needle, err);
    }
}

static void
test_shm_validate_rejects_broken_segments(void **state)
{
    struct fixture *f = *state;
    size_t size = f->h->total_size;
    struct cr_shm_header *c = copy_of(f);
    char err[256];

    assert_int_equal(cr_shm_validate(c, size, err, sizeof(err)), CR_OK);

    c->magic ^= 1;
    expect_invalid(c, size, "bad magic");
    memcpy(c, f->h, size);

    c->major = CR_SHM_MAJOR + 1;
    expect_invalid(c, size, "layout version");
    memcpy(c, f->h, size);

    expect_invalid(c, sizeof(*c) - 1, "truncated");
    expect_invalid(c, size - 64, "does not match");

    c->total_size = size + 4096;
    expect_invalid(c, size, "does not match");
    memcpy(c, f->h, size);

    c->routes_off = size;
    expect_invalid(c, size, "inconsistent");
    memcpy(c, f->h, size);

    c->servers_cap = 1000000;
    expect_invalid(c, size, "inconsistent");
    memcpy(c, f->h, size);

    c->nslots = 0;
    expect_invalid(c, size, "inconsistent");
    memcpy(c, f->h, size);

    c->slots_off = size;
    c->retired_off = size + (uint64_t)c->nslots * c->slot_size;
    expect_invalid(c, size, "outside");
    memcpy(c, f->h, size);

    c->retired_off += c->slot_size;
    expect_invalid(c, size, "outside");
    memcpy(c, f->h, size);

    c->slot_servers_off = c->slot_size;
    expect_invalid(c, size, "inconsistent");
    memcpy(c, f->h, size);

    c->ready = 0;
    expect_invalid(c, size, "not initialised");
    free(c);
}

/* ------------------------------------------------------------------------ */
/* slots, retire, snapshot */

static void
test_shm_slot_alloc_until_full(void **state)
{
    struct fixture *f = *state;
    unsigned i;

    for (i = 0; i < 4; i++) {
        int s = cr_shm_slot_alloc(f->h, 7, i + 10);

        assert_int_equal(s, (int)i);
        assert_int_equal(cr_shm_slot(f->h, i)->state, CR_SHM_SLOT_STARTING);
        assert_int_equal(cr_shm_slot(f->h, i)->generation, 7);
        assert_int_equal(cr_shm_slot(f->h, i)->id, i + 10);
    }
    assert_int_equal(cr_shm_slot_alloc(f->h, 7, 99), -1);
    cr_shm_slot_retire(f->h, 2);
    assert_int_equal(cr_shm_slot_alloc(f->h, 8, 5), 2);
}

static void
test_shm_route_and_server_rows_are_found_again(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(cr_shm_route_row(f->h, "api", "app"), f->r_api);
    assert_int_equal(cr_shm_server_row(f->h, "app", "127.0.0.1:9002", 3), f->s_b);
    assert_int_equal(cr_shm_server_at(f->h, (unsigned)f->s_b)->weight, 3);
    cr_shm_tables_begin(f->h);
    assert_int_equal(cr_shm_route_at(f->h, (unsigned)f->r_api)->current, 0);
    assert_int_equal(cr_shm_route_row(f->h, "api", "app"), f->r_api);
    assert_int_equal(cr_shm_route_at(f->h, (unsigned)f->r_api)->current, 1);
    assert_int_equal(cr_shm_route_at(f->h, (unsigned)f->r_ping)->current, 0);
    assert_int_equal(cr_shm_route_row(f->h, "r3", NULL), 2);
    assert_int_equal(cr_shm_route_row(f->h, "r4", NULL), 3);
    assert_int_equal(cr_shm_route_row(f->h, "r5", NULL), -1);
}

static void
test_shm_retire_keeps_totals_and_drops_gauges(void **state)
{
    struct fixture *f = *state;
    struct cr_report_totals before, after;
    struct cr_report_route rb, ra;
    struct cr_report_server sb, sa;
    struct cr_report_in in;
    struct cr_shm_header *s1, *s2;
    int w0, w1, i;
    unsigned c;

    w0 = start_worker(f, 0, 1000);
    w1 = start_worker(f, 1, 1001);
    for (i = 0; i < 30; i++) {
        request(f, w0, f->r_api, f->s_a, 200, 100);
    }
    for (i = 0; i < 12; i++) {
        request(f, w1, f->r_api, f->s_b, i < 2 ? 502 : 200, 1000);
    }
    set_gauges(f, w0, 5, 2);
    set_gauges(f, w1, 3, 1);

    s1 = snap(f->h);
    totals_of(s1, &before);
    in = (struct cr_report_in){ s1, NULL, 0, s1->start_ms + 1000, 0 };
    assert_int_equal(cr_report_route(&in, (unsigned)f->r_api, &rb), CR_OK);
    assert_int_equal(cr_report_server(&in, (unsigned)f->s_a, &sb), CR_OK);
    assert_int_equal(before.c[CR_SHM_C_requests_total], 42);
    assert_int_equal(before.c[CR_SHM_C_connections_active], 8);
    assert_int_equal(before.live, 2);

    /* worker 0 dies; the master folds its slot */
    cr_shm_slot(f->h, (unsigned)w0)->state = CR_SHM_SLOT_EXITED;
    cr_shm_slot_retire(f->h, w0);
    assert_int_equal(f->h->fold_seq % 2, 0);
    assert_int_equal(cr_shm_slot(f->h, (unsigned)w0)->state, CR_SHM_SLOT_FREE);
    assert_int_equal(cr_shm_slot(f->h, (unsigned)w0)->counters[CR_SHM_C_requests_total], 0);
    assert_int_equal(cr_shm_retired(f->h)->counters[CR_SHM_C_requests_total], 30);
    assert_int_equal(cr_shm_retired(f->h)->counters[CR_SHM_C_connections_active], 0);

    s2 = snap(f->h);
    totals_of(s2, &after);
    for (c = 0; c < CR_SHM_NCOUNTERS; c++) {
        size_t l = strlen(cr_shm_counter_names[c]);

        if (strcmp(cr_shm_counter_names[c] + l - 6, "_total") == 0) {
            assert_int_equal(after.c[c], before.c[c]);
        }
    }
    assert_int_equal(after.c[CR_SHM_C_connections_active], 3);
    assert_int_equal(after.c[CR_SHM_C_requests_active], 1);
    assert_int_equal(after.live, 1);

    in.cur = s2;
    assert_int_equal(cr_report_route(&in, (unsigned)f->r_api, &ra), CR_OK);
    assert_int_equal(ra.c[CR_SHM_R_requests_total], rb.c[CR_SHM_R_requests_total]);
    assert_int_equal(ra.c[CR_SHM_R_requests_total], 42);
    assert_int_equal(ra.c[CR_SHM_R_requests_active], 1);
    assert_int_equal(cr_report_server(&in, (unsigned)f->s_a, &sa), CR_OK);
    assert_int_equal(sa.c[CR_SHM_S_requests_total], sb.c[CR_SHM_S_requests_total]);
    assert_int_equal(sa.c[CR_SHM_S_requests_total], 30);

    /* a new worker in the same slot starts from zero; sums still only grow */
    w0 = start_worker(f, 0, 1002);
    request(f, w0, f->r_ping, -1, 200, 10);
    free(s2);
    s2 = snap(f->h);
    totals_of(s2, &after);
    assert_int_equal(after.c[CR_SHM_C_requests_total], 43);
    free(s1);
    free(s2);
}

static void
test_shm_snapshot_copies_and_respects_fold_seq(void **state)
{
    struct fixture *f = *state;
    struct cr_shm_header *c;
    int w;

    w = start_worker(f, 0, 1000);
    request(f, w, f->r_api, f->s_a, 200, 300);
    c = snap(f->h);
    assert_memory_equal(c, f->h, f->h->total_size);

    /* the master is folding: readers retry, then give up */
    f->h->fold_seq = 1;
    assert_int_equal(cr_shm_snapshot(f->h, c), CR_ERR);
    f->h->fold_seq = 2;
    assert_int_equal(cr_shm_snapshot(f->h, c), CR_OK);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* histograms */

static void
test_shm_hist_buckets_and_quantiles(void **state)
{
    struct cr_shm_hist h;
    int i;

    (void)state;
    assert_int_equal(cr_shm_hist_bucket(0), 0);
    assert_int_equal(cr_shm_hist_bucket(1), 0);
    assert_int_equal(cr_shm_hist_bucket(2), 1);
    assert_int_equal(cr_shm_hist_bucket(3), 2);
    assert_int_equal(cr_shm_hist_bucket(1024), 10);
    assert_int_equal(cr_shm_hist_bucket(1025), 11);
    assert_int_equal(cr_shm_hist_bucket(UINT64_MAX), CR_SHM_HIST_BUCKETS - 1);
    assert_int_equal(cr_shm_hist_bound(0), 1);
    assert_int_equal(cr_shm_hist_bound(10), 1024);
    assert_int_equal(cr_shm_hist_bound(CR_SHM_HIST_BUCKETS - 1), 0);

    memset(&h, 0, sizeof(h));
    assert_true(cr_shm_hist_quantile(&h, 0.5) == 0);

    /* 50 x 100 us, 49 x 1000 us, 1 x 100000 us */
    for (i = 0; i < 50; i++) {
        cr_shm_hist_add(&h, 100);
    }
    for (i = 0; i < 49; i++) {
        cr_shm_hist_add(&h, 1000);
    }
    cr_shm_hist_add(&h, 100000);
    assert_int_equal(h.count, 100);
    assert_int_equal(h.sum_us, 50 * 100 + 49 * 1000 + 100000);

    /* each quantile lies in the bucket holding its rank */
    assert_true(cr_shm_hist_quantile(&h, 0.25) > 64 && cr_shm_hist_quantile(&h, 0.25) <= 128);
    assert_true(cr_shm_hist_quantile(&h, 0.50) > 512 && cr_shm_hist_quantile(&h, 0.50) <= 1024);
    assert_true(cr_shm_hist_quantile(&h, 0.90) > 512 && cr_shm_hist_quantile(&h, 0.90) <= 1024);
    assert_true(cr_shm_hist_quantile(&h, 0.99) > 65536
                && cr_shm_hist_quantile(&h, 0.99) <= 131072);
    assert_true(cr_shm_hist_quantile(&h, 1.0) <= 131072);
    /* quantiles never decrease with q */
    assert_true(cr_shm_hist_quantile(&h, 0.10) <= cr_shm_hist_quantile(&h, 0.25));
    assert_true(cr_shm_hist_quantile(&h, 0.50) <= cr_shm_hist_quantile(&h, 0.90));
}

/* ------------------------------------------------------------------------ */
/* report: sums, rates, JSON */

static void
fill_two_workers(struct fixture *f, int *w0, int *w1)
{
    int i;

    *w0 = start_worker(f, 0, 4242);
    *w1 = start_worker(f, 1, 4243);
    for (i = 0; i < 20; i++) {
        request(f, *w0, f->r_api, f->s_a, 200, 200);
    }
    for (i = 0; i < 10; i++) {
        request(f, *w1, f->r_api, f->s_b, i < 3 ? 502 : 200, 3000);
    }
    for (i = 0; i < 5; i++) {
        request(f, *w1, f->r_ping, -1, 404, 20);
    }
    set_gauges(f, *w0, 4, 1);
    set_gauges(f, *w1, 2, 0);
    cr_shm_server_at(f->h, (unsigned)f->s_b)->health = CR_SHM_HEALTH_DOWN;
    cr_shm_server_at(f->h, (unsigned)f->s_a)->health = CR_SHM_HEALTH_UP;
}

static void
test_report_status_json_adds_up(void **state)
{
    struct fixture *f = *state;
    struct cr_report_buf b;
    struct cr_report_in in;
    struct cr_shm_header *s;
    int w0, w1;

    fill_two_workers(f, &w0, &w1);
    /* an exited worker's counts went to the retired slot */
    {
        int w2 = start_worker(f, 2, 4244), i;

        for (i = 0; i < 7; i++) {
            request(f, w2, f->r_ping, -1, 200, 20);
        }
        set_gauges(f, w2, 9, 9);
        cr_shm_slot_retire(f->h, w2);
    }
    s = snap(f->h);
    in = (struct cr_report_in){ s, NULL, 0, s->start_ms + 10000, 0 };
    cr_report_buf_init(&b);
    assert_int_equal(cr_report_status_json(&b, &in), CR_OK);
    if (!json_valid(b.data)) {
        fail_msg("status JSON does not parse:\n%s", b.data);
    }
    assert_json_str(b.data, "instance", f->name);
    assert_true(json_num(b.data, "master_pid") == getpid());
    assert_true(json_num(b.data, "generation") == 1);
    assert_true(json_num(b.data, "workers_live") == 2);
    assert_true(json_num(b.data, "window_seconds") == 0);
    assert_true(json_num(b.data, "totals.requests") == 42);
    assert_true(json_num(b.data, "totals.connections_accepted") == 42);
    assert_true(json_num(b.data, "totals.connections_active") == 6);
    assert_true(json_num(b.data, "totals.responses.2xx") == 34);
    assert_true(json_num(b.data, "totals.responses.4xx") == 5);
    assert_true(json_num(b.data, "totals.responses.5xx") == 3);
    assert_true(json_num(b.data, "totals.errors.502") == 3);
    assert_true(json_num(b.data, "totals.errors.504") == 0);
    assert_true(json_num(b.data, "totals.bytes_in") == 4200);
    assert_true(json_num(b.data, "totals.counters.requests_total") == 42);
    assert_true(json_num(b.data, "totals.latency_ms.p99") > 0);
    /* 42 requests over 10 s of uptime */
    assert_true(fabs(json_num(b.data, "rps") - 4.2) < 0.01);

    assert_true(json_num(b.data, "workers.0.slot") == w0);
    assert_true(json_num(b.data, "workers.0.pid") == 4242);
    assert_json_str(b.data, "workers.0.state", "running");
    assert_true(json_num(b.data, "workers.0.requests") == 20);
    assert_true(json_num(b.data, "workers.1.requests") == 15);
    assert_true(json_num(b.data, "workers.1.responses.5xx") == 3);
    assert_true(json_num(b.data, "workers.1.latency_ms.p50") > 1.0);
    assert_true(json_num(b.data, "workers.0.latency_ms.p50") < 1.0);
    assert_null(json_at(b.data, "workers.2"));      /* the retired one is no row */
    assert_true(json_num(b.data, "retired.requests") == 7);
    assert_true(json_num(b.data, "retired.counters.connections_active") == 0);
    assert_true(json_num(b.data, "workers.0.requests") + json_num(b.data, "workers.1.requests")
                + json_num(b.data, "retired.requests") == json_num(b.data, "totals.requests"));
    cr_report_buf_free(&b);
    free(s);
}

static void
test_report_rates_come_from_the_window(void **state)
{
    struct fixture *f = *state;
    struct cr_report_worker wk;
    struct cr_report_totals t;
    struct cr_report_in in;
    struct cr_shm_header *s1, *s2;
    int w0, w1, i;

    fill_two_workers(f, &w0, &w1);
    s1 = snap(f->h);
    for (i = 0; i < 50; i++) {
        request(f, w0, f->r_api, f->s_a, 200, 5000);
    }
    /* worker 1 is replaced in between: its slot's new counts are all new */
    cr_shm_slot_retire(f->h, w1);
    w1 = start_worker(f, 1, 5000);
    assert_true(w1 >= 0);
    for (i = 0; i < 10; i++) {
        request(f, w1, f->r_ping, -1, 200, 20);
    }
    s2 = snap(f->h);
    in = (struct cr_report_in){ s2, s1, 2.0, s2->start_ms + 60000, 0 };
    cr_report_totals(&in, &t);
    assert_true(fabs(t.rps - 30.0) < 1e-9);         /* (50 + 10) / 2 s */
    assert_true(t.window_s == 2.0);
    /* the window's latency is the new 5 ms requests', not the old 0.2 ms */
    assert_true(t.latency.p99 > 4.0);
    assert_int_equal(cr_report_worker(&in, (unsigned)w0, &wk), CR_OK);
    assert_true(fabs(wk.rps - 25.0) < 1e-9);
    assert_true(wk.latency.p50 > 4.0);
    assert_int_equal(cr_report_worker(&in, (unsigned)w1, &wk), CR_OK);
    assert_true(fabs(wk.rps - 5.0) < 1e-9);

    /* a previous snapshot of another segment is ignored: lifetime rates */
    s1->start_ms += 1;
    cr_report_totals(&in, &t);
    assert_true(t.window_s == 0);
    free(s1);
    free(s2);
}

static void
test_report_routes_and_upstreams_json(void **state)
{
    struct fixture *f = *state;
    struct cr_report_buf b;
    struct cr_report_in in;
    struct cr_shm_header *s;
    int w0, w1;

    fill_two_workers(f, &w0, &w1);
    cr_shm_tables_begin(f->h);
    cr_shm_route_row(f->h, "api", "app");      /* "ping" left the config */
    s = snap(f->h);
    in = (struct cr_report_in){ s, NULL, 0, s->start_ms + 1000, 0 };

    cr_report_buf_init(&b);
    assert_int_equal(cr_report_routes_json(&b, &in), CR_OK);
    if (!json_valid(b.data)) {
        fail_msg("routes JSON does not parse:\n%s", b.data);
    }
    assert_json_str(b.data, "routes.0.name", "api");
    assert_json_str(b.data, "routes.0.upstream", "app");
    assert_true(json_num(b.data, "routes.0.requests") == 30);
    assert_true(json_num(b.data, "routes.0.requests_active") == 1);
    assert_true(json_num(b.data, "routes.0.responses.5xx") == 3);
    assert_json_str(b.data, "routes.1.name", "ping");
    assert_json_str(b.data, "routes.1.upstream", "");
    assert_true(strncmp(json_at(b.data, "routes.1.current"), "false", 5) == 0);
    assert_true(json_num(b.data, "routes.1.responses.4xx") == 5);
    assert_null(json_at(b.data, "routes.2"));

    cr_report_buf_reset(&b);
    assert_int_equal(cr_report_upstreams_json(&b, &in), CR_OK);
    if (!json_valid(b.data)) {
        fail_msg("upstreams JSON does not parse:\n%s", b.data);
    }
    assert_json_str(b.data, "servers.0.upstream", "app");
    assert_json_str(b.data, "servers.0.address", "127.0.0.1:9001");
    assert_true(json_num(b.data, "servers.0.weight") == 2);
    assert_json_str(b.data, "servers.0.health", "up");
    assert_true(json_num(b.data, "servers.0.requests") == 20);
    assert_json_str(b.data, "servers.1.health", "down");
    assert_true(json_num(b.data, "servers.1.requests") == 10);
    assert_true(json_num(b.data, "servers.1.ttfb_ms.p50") > 1.0);

    cr_report_buf_reset(&b);
    assert_int_equal(cr_report_workers_json(&b, &in), CR_OK);
    assert_true(json_valid(b.data));
    assert_true(json_num(b.data, "workers.1.id") == 1);
    cr_report_buf_free(&b);
    free(s);
}

static void
test_report_json_escapes_names(void **state)
{
    struct fixture *f = *state;
    struct cr_report_buf b;
    struct cr_report_in in;
    struct cr_shm_header *s;

    cr_shm_route_row(f->h, "q\"b\\s\n\x01\xc3", NULL);
    s = snap(f->h);
    in = (struct cr_report_in){ s, NULL, 0, s->start_ms, 0 };
    cr_report_buf_init(&b);
    assert_int_equal(cr_report_routes_json(&b, &in), CR_OK);
    if (!json_valid(b.data)) {
        fail_msg("routes JSON with odd names does not parse:\n%s", b.data);
    }
    assert_non_null(strstr(b.data, "\"q\\\"b\\\\s\\n\\u0001\\u00c3\""));
    cr_report_buf_free(&b);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* report: Prometheus */

static regex_t re_help, re_type, re_sample;

static void
compile_res(void)
{
    static int done;

    if (done) {
        return;
    }
    assert_int_equal(regcomp(&re_help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* [^\n]+$",
                             REG_EXTENDED | REG_NOSUB), 0);
    assert_int_equal(regcomp(&re_type, "^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
                             "(counter|gauge|histogram)$", REG_EXTENDED | REG_NOSUB), 0);
    assert_int_equal(regcomp(&re_sample,
                             "^[a-zA-Z_:][a-zA-Z0-9_:]*"
                             "\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\"\\\\n])*\""
                             "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\"\\\\n])*\")*)?\\}"
                             " -?[0-9]+(\\.[0-9]+)?$", REG_EXTENDED | REG_NOSUB), 0);
    done = 1;
}

/* Value of the sample line starting with <prefix> (name and labels). */
static double
sample(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);

    while ((p = strstr(p, prefix)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
        p += n;
    }
    fail_msg("no sample %s", prefix);
    return -1;
}

static int
has_line_prefix(const char *text, const char *prefix)
{
    const char *p = text;

    while ((p = strstr(p, prefix)) != NULL) {
        if (p == text || p[-1] == '\n') {
            return 1;
        }
        p++;
    }
    return 0;
}

/*
 * Every line is HELP, TYPE or a sample in the exposition grammar; every
 * sample's family was declared by a TYPE line just before its series; no
 * family is declared twice.
 */
static void
check_exposition(const char *text)
{
    char family[256] = "", line[2048], type[16] = "";
    const char *p = text;
    char *seen = calloc(1, strlen(text) + 1);
    size_t seen_len = 0;

    assert_non_null(seen);
    compile_res();
    while (*p != '\0') {
        size_t n = strcspn(p, "\n");

        assert_true(n < sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (p[n] == '\n');
        if (strncmp(line, "# HELP ", 7) == 0) {
            if (regexec(&re_help, line, 0, NULL, 0) != 0) {
                fail_msg("bad HELP line: %s", line);
            }
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char key[260];

            if (regexec(&re_type, line, 0, NULL, 0) != 0) {
                fail_msg("bad TYPE line: %s", line);
            }
            sscanf(line + 7, "%255s %15s", family, type);
            snprintf(key, sizeof(key), " %s ", family);
            if (strstr(seen, key) != NULL) {
                fail_msg("family declared twice: %s", family);
            }
            memcpy(seen + seen_len, key, strlen(key));
            seen_len += strlen(key);
        } else {
            size_t fl = strlen(family);
            const char *rest = line + fl;

            if (regexec(&re_sample, line, 0, NULL, 0) != 0) {
                fail_msg("bad sample line: %s", line);
            }
            if (fl == 0 || strncmp(line, family, fl) != 0) {
                fail_msg("sample outside its family %s: %s", family, line);
            }
            if (strcmp(type, "histogram") == 0) {
                if (strncmp(rest, "_bucket{", 8) != 0 && strncmp(rest, "_sum{", 5) != 0
                    && strncmp(rest, "_count{", 7) != 0)
                {
                    fail_msg("histogram sample without _bucket/_sum/_count: %s", line);
                }
            } else if (rest[0] != '{') {
                fail_msg("sample name differs from its family %s: %s", family, line);
            }
        }
    }
    free(seen);
}

/* Buckets of one histogram series never decrease; +Inf equals _count. */
static void
check_histogram(const char *text, const char *name, const char *labels)
{
    char prefix[512];
    const char *p;
    double last = -1, v;
    size_t n;

    snprintf(prefix, sizeof(prefix), "%s_bucket{%s,le=\"", name, labels);
    n = strlen(prefix);
    for (p = text; (p = strstr(p, prefix)) != NULL; p += n) {
        const char *sp = strchr(p, ' ');

        v = strtod(sp + 1, NULL);
        assert_true(v >= last);
        last = v;
    }
    assert_true(last >= 0);
    snprintf(prefix, sizeof(prefix), "%s_bucket{%s,le=\"+Inf\"}", name, labels);
    v = sample(text, prefix);
    assert_true(v == last);
    snprintf(prefix, sizeof(prefix), "%s_count{%s}", name, labels);
    assert_true(sample(text, prefix) == last);
}

static void
test_report_prometheus_exposition(void **state)
{
    struct fixture *f = *state;
    struct cr_report_buf b;
    struct cr_report_in in;
    struct cr_shm_header *s;
    char pre[512], lab[256];
    int w0, w1, w2, i;

    fill_two_workers(f, &w0, &w1);
    w2 = start_worker(f, 2, 4244);
    for (i = 0; i < 7; i++) {
        request(f, w2, f->r_ping, -1, 200, 20);
    }
    cr_shm_slot_retire(f->h, w2);
    cr_shm_route_row(f->h, "we\"ird\\name", NULL);
    s = snap(f->h);
    in = (struct cr_report_in){ s, NULL, 0, s->start_ms + 1000, 0 };
    cr_report_buf_init(&b);
    assert_int_equal(cr_report_prometheus(&b, &in), CR_OK);
    check_exposition(b.data);

#define L(fmt, ...) (snprintf(pre, sizeof(pre), fmt, __VA_ARGS__), pre)
    assert_true(sample(b.data, L("corral_info{instance=\"%s\",generation=\"1\"}", f->name)) == 1);
    assert_true(fabs(sample(b.data, L("corral_start_time_seconds{instance=\"%s\"}", f->name))
                     - (double)s->start_ms / 1000.0) < 0.002);
    assert_true(sample(b.data, L("corral_requests_total{instance=\"%s\",worker=\"0\","
                                 "slot=\"%d\"}", f->name, w0)) == 20);
    assert_true(sample(b.data, L("corral_requests_total{instance=\"%s\",worker=\"1\","
                                 "slot=\"%d\"}", f->name, w1)) == 15);
    assert_true(sample(b.data, L("corral_requests_total{instance=\"%s\",worker=\"retired\","
                                 "slot=\"retired\"}", f->name)) == 7);
    assert_true(sample(b.data, L("corral_connections_active{instance=\"%s\",worker=\"0\","
                                 "slot=\"%d\"}", f->name, w0)) == 4);
    /* gauges: live workers only, never the retired slot */
    assert_false(has_line_prefix(b.data, L("corral_connections_active{instance=\"%s\","
                                           "worker=\"retired\"", f->name)));
    assert_true(sample(b.data, L("corral_errors_502_total{instance=\"%s\",worker=\"1\","
                                 "slot=\"%d\"}", f->name, w1)) == 3);
    assert_true(has_line_prefix(b.data, "# TYPE corral_requests_total counter"));
    assert_true(has_line_prefix(b.data, "# TYPE corral_connections_active gauge"));
    assert_true(has_line_prefix(b.data, "# HELP corral_requests_total requests received"));
    assert_true(has_line_prefix(b.data, "# TYPE corral_request_duration_seconds histogram"));

    snprintf(lab, sizeof(lab), "instance=\"%s\",worker=\"1\",slot=\"%d\"", f->name, w1);
    check_histogram(b.data, "corral_request_duration_seconds", lab);
    check_histogram(b.data, "corral_upstream_ttfb_seconds", lab);
    assert_true(sample(b.data, L("corral_request_duration_seconds_count{%s}", lab)) == 15);
    /* 10 x 3000 us + 5 x 20 us */
    assert_true(fabs(sample(b.data, L("corral_request_duration_seconds_sum{%s}", lab))
                     - 0.0301) < 1e-9);
    /* 3000 us is in the bucket up to 4096 us */
    assert_true(sample(b.data, L("corral_request_duration_seconds_bucket{%s,le=\"0.002048\"}",
                                 lab)) == 5);
    assert_true(sample(b.data, L("corral_request_duration_seconds_bucket{%s,le=\"0.004096\"}",
                                 lab)) == 15);
    snprintf(lab, sizeof(lab), "instance=\"%s\",worker=\"retired\",slot=\"retired\"", f->name);
    check_histogram(b.data, "corral_request_duration_seconds", lab);

    assert_true(sample(b.data, L("corral_route_requests_total{instance=\"%s\",route=\"api\"}",
                                 f->name)) == 30);
    assert_true(sample(b.data, L("corral_route_requests_total{instance=\"%s\",route=\"ping\"}",
                                 f->name)) == 12);
    assert_true(sample(b.data, L("corral_route_requests_total{instance=\"%s\","
                                 "route=\"we\\\"ird\\\\name\"}", f->name)) == 0);
    snprintf(lab, sizeof(lab), "instance=\"%s\",route=\"api\"", f->name);
    check_histogram(b.data, "corral_route_request_duration_seconds", lab);

    snprintf(lab, sizeof(lab), "instance=\"%s\",upstream=\"app\",server=\"127.0.0.1:9002\"",
             f->name);
    assert_true(sample(b.data, L("corral_upstream_server_requests_total{%s}", lab)) == 10);
    assert_true(sample(b.data, L("corral_upstream_server_up{%s}", lab)) == 0);
    assert_true(sample(b.data, L("corral_upstream_server_weight{%s}", lab)) == 1);
    check_histogram(b.data, "corral_upstream_server_ttfb_seconds", lab);
    snprintf(lab, sizeof(lab), "instance=\"%s\",upstream=\"app\",server=\"127.0.0.1:9001\"",
             f->name);
    assert_true(sample(b.data, L("corral_upstream_server_up{%s}", lab)) == 1);
#undef L
    cr_report_buf_free(&b);
    free(s);
}

static void
test_report_prometheus_unknown_health_counts_as_up(void **state)
{
    struct fixture *f = *state;
    struct cr_report_buf b;
    struct cr_report_in in;
    struct cr_shm_header *s;
    char pre[256];

    s = snap(f->h);
    in = (struct cr_report_in){ s, NULL, 0, s->start_ms, 0 };
    cr_report_buf_init(&b);
    assert_int_equal(cr_report_prometheus(&b, &in), CR_OK);
    check_exposition(b.data);
    snprintf(pre, sizeof(pre), "corral_upstream_server_up{instance=\"%s\",upstream=\"app\","
             "server=\"127.0.0.1:9001\"}", f->name);
    assert_true(sample(b.data, pre) == 1);
    cr_report_buf_free(&b);
    free(s);
}

static void
test_report_buf_grows(void **state)
{
    struct cr_report_buf b;
    char big[10000];
    int i;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_report_buf_init(&b);
    for (i = 0; i < 10; i++) {
        assert_int_equal(cr_report_buf_printf(&b, "%s%d", big, i), CR_OK);
    }
    assert_int_equal(b.len, 10 * (sizeof(big) - 1 + 1));
    assert_int_equal(strlen(b.data), b.len);
    assert_int_equal(b.data[b.len - 1], '9');
    cr_report_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    cr_report_buf_free(&b);
}

int
main(void)
{
#define SEG(t) cmocka_unit_test_setup_teardown(t, seg_setup, seg_teardown)
    const struct CMUnitTest tests[] = {
        SEG(test_shm_create_then_attach_reads_same_header),
        cmocka_unit_test(test_shm_attach_missing_segment_says_so),
        SEG(test_shm_validate_rejects_broken_segments),
        SEG(test_shm_slot_alloc_until_full),
        SEG(test_shm_route_and_server_rows_are_found_again),
        SEG(test_shm_retire_keeps_totals_and_drops_gauges),
        SEG(test_shm_snapshot_copies_and_respects_fold_seq),
        cmocka_unit_test(test_shm_hist_buckets_and_quantiles),
        SEG(test_report_status_json_adds_up),
        SEG(test_report_rates_come_from_the_window),
        SEG(test_report_routes_and_upstreams_json),
        SEG(test_report_json_escapes_names),
        SEG(test_report_prometheus_exposition),
        SEG(test_report_prometheus_unknown_health_counts_as_up),
        cmocka_unit_test(test_report_buf_grows),
    };
#undef SEG

    return cmocka_run_group_tests(tests, NULL, NULL);
}
