/*
 * test_upstream.c - server selection and passive health of gateway/upstream.c.
 *
 * No sockets and no event loop: a config is loaded from a string, a
 * struct cr_worker is built by hand with base = NULL, and only the parts of
 * upstream.c that never touch a bufferevent are called (pools_init/free,
 * pick, server_failed/ok). Each test gets a fresh worker, so the smooth
 * round robin state starts from zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "conf/conf.h"
#include "gateway/log.h"
#include "gateway/upstream.h"
#include "gateway/worker.h"
#include "gateway/http.h"
#include "shm/layout.h"

/*
 * Pools used below, by name:
 *   wrr    round robin, weights 5, 1, 1
 *   even   round robin, weights 1, 1, 1
 *   lc     least_conn, weights 1, 1, 1
 *   lcw    least_conn, weights 2, 1
 *   fails  round robin, max_fails 2, fail_timeout 500ms, weights 1, 1
 *   never  round robin, max_fails 0, weights 1, 1
 *   eject  outlier: 1 failure, 100ms doubling up to 1s, 5xx count
 *   p2c    random (two choices), weights 1, 1, 1
 *   byhdr / bycookie / byaddr   hash on X-User, cookie sid, client address
 */
static const char conf_yaml[] =
    "workers: 1\n"
    "listen: [ \"127.0.0.1:18080\" ]\n"
    "upstreams:\n"
    "  wrr:\n"
    "    servers:\n"
    "      - { address: 127.0.0.1:19001, weight: 5 }\n"
    "      - { address: 127.0.0.1:19002, weight: 1 }\n"
    "      - { address: 127.0.0.1:19003, weight: 1 }\n"
    "  even:\n"
    "    servers: [ 127.0.0.1:19011, 127.0.0.1:19012, 127.0.0.1:19013 ]\n"
    "  lc:\n"
    "    balance: least_conn\n"
    "    servers: [ 127.0.0.1:19021, 127.0.0.1:19022, 127.0.0.1:19023 ]\n"
    "  lcw:\n"
    "    balance: least_conn\n"
    "    servers:\n"
    "      - { address: 127.0.0.1:19031, weight: 2 }\n"
    "      - { address: 127.0.0.1:19032, weight: 1 }\n"
    "  fails:\n"
    "    max_fails: 2\n"
    "    fail_timeout: 500ms\n"
    "    servers: [ 127.0.0.1:19041, 127.0.0.1:19042 ]\n"
    "  never:\n"
    "    max_fails: 0\n"
    "    servers: [ 127.0.0.1:19051, 127.0.0.1:19052 ]\n"
    "  eject:\n"
    "    outlier: { failures: 1, base_ejection: 100ms, max_ejection: 1s, count_5xx: true }\n"
    "    servers: [ 127.0.0.1:19061, 127.0.0.1:19062 ]\n"
    "  p2c:\n"
    "    balance: random\n"
    "    servers: [ 127.0.0.1:19071, 127.0.0.1:19072, 127.0.0.1:19073 ]\n"
    "  byhdr:\n"
    "    balance: hash\n"
    "    hash: { header: X-User }\n"
    "    servers: [ 127.0.0.1:19081, 127.0.0.1:19082, 127.0.0.1:19083 ]\n"
    "  bycookie:\n"
    "    balance: hash\n"
    "    hash: { cookie: sid }\n"
    "    servers: [ 127.0.0.1:19091, 127.0.0.1:19092, 127.0.0.1:19093 ]\n"
    "  byaddr:\n"
    "    balance: hash\n"
    "    hash: client_address\n"
    "    servers: [ 127.0.0.1:19101, 127.0.0.1:19102, 127.0.0.1:19103 ]\n"
    "routes:\n"
    "  - { match: { path: /wrr },   upstream: wrr }\n"
    "  - { match: { path: /even },  upstream: even }\n"
    "  - { match: { path: /lc },    upstream: lc }\n"
    "  - { match: { path: /lcw },   upstream: lcw }\n"
    "  - { match: { path: /fails }, upstream: fails }\n"
    "  - { match: { path: /never }, upstream: never }\n";

#define BIT(i)  (1ULL << (i))

struct fixture {
    struct cr_conf      *conf;
    struct cr_worker     w;
};

static int
setup(void **state)
{
    struct cr_conf_errs  errs = { NULL, 0 };
    struct fixture      *f;
    char                 err[256] = "";
    size_t               i;

    cr_log_set_level(CR_LOG_ERROR);     /* "marked down" warnings are expected */
    f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->conf = cr_conf_load_buf("upstream.yaml", conf_yaml, strlen(conf_yaml), &errs);
    for (i = 0; i < errs.n; i++) {
        print_error("unexpected: %s\n", errs.msgs[i]);
    }
    cr_conf_errs_free(&errs);
    assert_non_null(f->conf);

    f->w.base = NULL;
    f->w.conf = f->conf;
    TAILQ_INIT(&f->w.conns);
    if (cr_upstream_pools_init(&f->w, err, sizeof(err)) != CR_OK) {
        print_error("cr_upstream_pools_init: %s\n", err);
        fail();
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    cr_upstream_pools_free(&f->w);
    assert_null(f->w.pools);
    cr_conf_free(f->conf);
    free(f);
    return 0;
}

static struct cr_upstream_pool *
pool_named(void **state, const char *name)
{
    struct fixture *f = *state;
    size_t i;

    for (i = 0; i < f->conf->nupstreams; i++) {
        if (strcmp(f->w.pools[i].conf->name, name) == 0) {
            return &f->w.pools[i];
        }
    }
    fail_msg("no pool \"%s\"", name);
    return NULL;
}

/* cr_upstream_pick() for a request without a hash key. */
static struct cr_upstream_server *
pick(struct cr_upstream_pool *pool, uint64_t tried)
{
    struct cr_upstream_want want = { tried, 0, 0 };

    return cr_upstream_pick(pool, &want);
}

/* Index of the picked server; fails the test on NULL. */
static unsigned
pick_idx(struct cr_upstream_pool *pool, uint64_t tried)
{
    struct cr_upstream_server *s = pick(pool, tried);

    assert_non_null(s);
    assert_ptr_equal(s->pool, pool);
    assert_true(s->idx < pool->nservers);
    assert_ptr_equal(s, &pool->servers[s->idx]);
    return s->idx;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) == -1) {
        /* interrupted: sleep the rest */
    }
}

/* ---------------------------------------------------------------------- */
/* Pools                                                                   */

static void
test_upstream_pools_mirror_the_conf(void **state)
{
    struct fixture *f = *state;
    size_t i, j;

    assert_non_null(f->w.pools);
    for (i = 0; i < f->conf->nupstreams; i++) {
        struct cr_upstream_pool *pool = &f->w.pools[i];

        assert_ptr_equal(pool->conf, &f->conf->upstreams[i]);
        assert_ptr_equal(pool->w, &f->w);
        assert_int_equal(pool->nservers, f->conf->upstreams[i].nservers);
        assert_int_equal(pool->nidle, 0);
        assert_null(TAILQ_FIRST(&pool->idle));
        for (j = 0; j < pool->nservers; j++) {
            struct cr_upstream_server *s = &pool->servers[j];

            assert_ptr_equal(s->conf, &f->conf->upstreams[i].servers[j]);
            assert_ptr_equal(s->pool, pool);
            assert_int_equal(s->idx, j);
            assert_int_equal(s->active, 0);
            assert_non_null(s->row);
            assert_int_equal(s->row->fails, 0);
            assert_int_equal(s->row->ejected_until_ms, 0);
        }
    }
}

/* ---------------------------------------------------------------------- */
/* Smooth weighted round robin                                             */

static void
test_upstream_rr_follows_weights(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "wrr");
    unsigned seq[70];
    size_t i, k;

    for (i = 0; i < CR_NELEM(seq); i++) {
        seq[i] = pick_idx(pool, 0);
    }
    /*
     * Any 7 consecutive picks, not just aligned cycles, hold the weights
     * exactly: 5 of the heavy server and one each of the light ones.
     */
    for (i = 0; i + 7 <= CR_NELEM(seq); i++) {
        unsigned n[3] = { 0, 0, 0 };

        for (k = i; k < i + 7; k++) {
            n[seq[k]]++;
        }
        if (n[0] != 5 || n[1] != 1 || n[2] != 1) {
            fail_msg("picks %zu..%zu: %u/%u/%u, want 5/1/1", i, i + 6, n[0], n[1], n[2]);
        }
    }
}

static void
test_upstream_rr_interleaves_instead_of_bursting(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "wrr");
    unsigned first[7], run = 0, longest = 0, prev = 99;
    size_t i;

    for (i = 0; i < 70; i++) {
        unsigned s = pick_idx(pool, 0);

        if (i < 7) {
            first[i] = s;
        }
        run = (s == prev) ? run + 1 : 1;
        prev = s;
        if (s == 0 && run > longest) {
            longest = run;
        }
    }
    /*
     * Plain weighted round robin sends 5 in a row to the heavy server; the
     * smooth variant spreads the light ones among them. Within a cycle it
     * runs at most 2 in a row; where one cycle's tail meets the next one's
     * head, at most 4 (a a b a c a a | a a b ...): never the whole weight.
     */
    assert_true(longest < 5);
    for (i = 0; i + 2 < 7; i++) {
        if (first[i] == 0 && first[i + 1] == 0 && first[i + 2] == 0) {
            fail_msg("first cycle has 3 heavy picks in a row at %zu", i);
        }
    }
}

static void
test_upstream_rr_equal_weights_take_turns(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "even");
    size_t i;

    for (i = 0; i < 30; i += 3) {
        unsigned a = pick_idx(pool, 0);
        unsigned b = pick_idx(pool, 0);
        unsigned c = pick_idx(pool, 0);

        assert_true(a != b && b != c && a != c);
    }
}

static void
test_upstream_rr_keeps_weights_among_servers_left(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "wrr");
    unsigned n[3] = { 0, 0, 0 };
    size_t i;

    /* the third server excluded: 5:1 over every 6 picks */
    for (i = 0; i < 60; i++) {
        n[pick_idx(pool, BIT(2))]++;
    }
    assert_int_equal(n[0], 50);
    assert_int_equal(n[1], 10);
    assert_int_equal(n[2], 0);
}

/* ---------------------------------------------------------------------- */
/* Least connections                                                       */

static void
test_upstream_least_conn_picks_least_active(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "lc");
    size_t i;

    pool->servers[0].active = 3;
    pool->servers[1].active = 1;
    pool->servers[2].active = 2;
    /* whatever the rotation, the least loaded wins */
    for (i = 0; i < 6; i++) {
        assert_int_equal(pick_idx(pool, 0), 1);
    }
    pool->servers[1].active = 4;
    for (i = 0; i < 6; i++) {
        assert_int_equal(pick_idx(pool, 0), 2);
    }
}

static void
test_upstream_least_conn_divides_by_weight(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "lcw");
    size_t i;

    /* 3 in flight on weight 2 (1.5 each) beats 2 on weight 1 */
    pool->servers[0].active = 3;
    pool->servers[1].active = 2;
    for (i = 0; i < 4; i++) {
        assert_int_equal(pick_idx(pool, 0), 0);
    }
    /* 5 on weight 2 (2.5 each) loses to 2 on weight 1 */
    pool->servers[0].active = 5;
    for (i = 0; i < 4; i++) {
        assert_int_equal(pick_idx(pool, 0), 1);
    }
}

static void
test_upstream_least_conn_ties_rotate(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "lc");
    size_t round;

    /* all idle: three picks in a row visit all three servers */
    for (round = 0; round < 4; round++) {
        unsigned a = pick_idx(pool, 0);
        unsigned b = pick_idx(pool, 0);
        unsigned c = pick_idx(pool, 0);

        assert_true(a != b && b != c && a != c);
    }
    /* a tie between two of three: both get picked, never the busy one */
    pool->servers[0].active = 7;
    pool->servers[1].active = 1;
    pool->servers[2].active = 1;
    {
        unsigned n[3] = { 0, 0, 0 };

        for (round = 0; round < 12; round++) {
            n[pick_idx(pool, 0)]++;
        }
        assert_int_equal(n[0], 0);
        assert_true(n[1] > 0);
        assert_true(n[2] > 0);
    }
}

/* ---------------------------------------------------------------------- */
/* The tried mask                                                          */

static void
test_upstream_tried_servers_are_skipped(void **state)
{
    const char *names[] = { "wrr", "lc" };
    size_t p, i;

    for (p = 0; p < CR_NELEM(names); p++) {
        struct cr_upstream_pool *pool = pool_named(state, names[p]);

        for (i = 0; i < 20; i++) {
            assert_int_not_equal(pick_idx(pool, BIT(0)), 0);
            assert_int_equal(pick_idx(pool, BIT(0) | BIT(2)), 1);
            assert_int_equal(pick_idx(pool, BIT(0) | BIT(1)), 2);
        }
    }
}

static void
test_upstream_all_tried_gives_null(void **state)
{
    const char *names[] = { "wrr", "lc" };
    size_t p;

    for (p = 0; p < CR_NELEM(names); p++) {
        struct cr_upstream_pool *pool = pool_named(state, names[p]);

        assert_null(pick(pool, BIT(0) | BIT(1) | BIT(2)));
        assert_null(pick(pool, UINT64_MAX));
        /* bits of servers the pool does not have change nothing */
        assert_non_null(pick(pool, BIT(0) | BIT(1) | BIT(5)));
    }
}

static void
test_upstream_least_conn_tried_beats_load(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "lc");

    pool->servers[0].active = 9;
    pool->servers[1].active = 0;
    pool->servers[2].active = 9;
    /* the idle one was tried already: one of the busy ones, not NULL */
    assert_int_not_equal(pick_idx(pool, BIT(1)), 1);
}

/* ---------------------------------------------------------------------- */
/* Passive health                                                          */

static void
test_upstream_one_failure_below_max_fails_keeps_server_up(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "fails");
    struct cr_upstream_server *s0 = &pool->servers[0];

    cr_upstream_server_failed(s0, CR_UPSTREAM_FAIL_CONNECT);
    assert_int_equal(s0->row->fails, 1);
    assert_int_equal(s0->row->ejected_until_ms, 0);
    /* still chosen when it is the only one left */
    assert_int_equal(pick_idx(pool, BIT(1)), 0);
}

static void
test_upstream_max_fails_marks_server_down_for_fail_timeout(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "fails");
    struct cr_upstream_server *s0 = &pool->servers[0];
    uint64_t before, after, now;
    size_t i;

    before = cr_upstream_now();
    cr_upstream_server_failed(s0, CR_UPSTREAM_FAIL_CONNECT);
    cr_upstream_server_failed(s0, CR_UPSTREAM_FAIL_CONNECT);
    after = cr_upstream_now();
    assert_true(s0->row->ejected_until_ms >= before + 500);
    assert_true(s0->row->ejected_until_ms <= after + 500);

    /* skipped, whatever the rotation */
    for (i = 0; i < 10; i++) {
        assert_int_equal(pick_idx(pool, 0), 1);
    }
    assert_null(pick(pool, BIT(1)));

    /* back after fail_timeout, without any success reported */
    now = cr_upstream_now();
    if (now < s0->row->ejected_until_ms) {
        sleep_ms((long)(s0->row->ejected_until_ms - now) + 50);
    }
    assert_int_equal(pick_idx(pool, BIT(1)), 0);
}

static void
test_upstream_all_servers_down_gives_null(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "fails");
    size_t i;

    for (i = 0; i < pool->nservers; i++) {
        cr_upstream_server_failed(&pool->servers[i], CR_UPSTREAM_FAIL_CONNECT);
        cr_upstream_server_failed(&pool->servers[i], CR_UPSTREAM_FAIL_CONNECT);
    }
    assert_null(pick(pool, 0));
    assert_null(pick(pool, 0));
}

/*
 * An exchange that was in flight when the server was ejected may still
 * succeed; that does not cut the ejection short, or one slow success
 * would undo the verdict of several failures.
 */
static void
test_upstream_success_does_not_end_an_ejection(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "fails");
    struct cr_upstream_server *s0 = &pool->servers[0];

    cr_upstream_server_failed(s0, CR_UPSTREAM_FAIL_CONNECT);
    cr_upstream_server_failed(s0, CR_UPSTREAM_FAIL_ERROR);
    assert_true(cr_upstream_server_ejected(s0, cr_upstream_now()));
    cr_upstream_server_ok(s0, 200);
    assert_true(cr_upstream_server_ejected(s0, cr_upstream_now()));
    assert_int_equal(pick_idx(pool, 0), 1);
    assert_int_equal(s0->row->ejections_total, 1);
    assert_int_equal(s0->row->eject_streak, 1);
}

/*
 * A server that fails again right after its ejection ends is ejected for
 * twice as long each time, up to max_ejection; one that worked for a base
 * ejection time in between starts again from the base.
 */
static void
test_upstream_repeated_ejection_doubles_up_to_max(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "eject");
    struct cr_upstream_server *s0 = &pool->servers[0];
    static const uint64_t want[] = { 100, 200, 400, 800, 1000, 1000 };
    uint64_t now;
    size_t i;

    for (i = 0; i < CR_NELEM(want); i++) {
        /* as if the previous ejection had just ended */
        s0->row->ejected_until_ms = cr_upstream_now();
        if (i == 0) {
            s0->row->ejected_until_ms = 0;
        }
        now = cr_upstream_now();
        cr_upstream_server_failed(s0, CR_UPSTREAM_FAIL_TIMEOUT);
        assert_true(s0->row->ejected_until_ms >= now + want[i]);
        assert_true(s0->row->ejected_until_ms <= cr_upstream_now() + want[i]);
        assert_int_equal(s0->row->ejections_total, i + 1);
        assert_int_equal(s0->row->last_ejection_for_ms, want[i]);
    }
    /* healthy for longer than the base time since: back to the base */
    s0->row->ejected_until_ms = cr_upstream_now() - 150;
    now = cr_upstream_now();
    cr_upstream_server_failed(s0, CR_UPSTREAM_FAIL_TIMEOUT);
    assert_true(s0->row->ejected_until_ms <= cr_upstream_now() + 100);
    assert_true(s0->row->ejected_until_ms >= now + 100);
    assert_int_equal(s0->row->eject_streak, 1);
}

/* 5xx answers count as failures only where outlier.count_5xx says so. */
static void
test_upstream_5xx_counts_only_when_configured(void **state)
{
    struct cr_upstream_pool *plain = pool_named(state, "fails");
    struct cr_upstream_pool *strict = pool_named(state, "eject");
    size_t i;

    for (i = 0; i < 10; i++) {
        cr_upstream_server_ok(&plain->servers[0], 503);
    }
    assert_false(cr_upstream_server_ejected(&plain->servers[0], cr_upstream_now()));
    assert_int_equal(plain->servers[0].row->fails, 0);

    cr_upstream_server_ok(&strict->servers[0], 500);
    assert_true(cr_upstream_server_ejected(&strict->servers[0], cr_upstream_now()));
    assert_int_equal(pick_idx(strict, 0), 1);
}

/* The health checker's verdict in the row is honoured on the next pick. */
static void
test_upstream_health_down_is_skipped(void **state)
{
    const char *names[] = { "wrr", "lc", "p2c", "byhdr" };
    size_t p, i;

    for (p = 0; p < CR_NELEM(names); p++) {
        struct cr_upstream_pool *pool = pool_named(state, names[p]);

        pool->servers[0].row->health = CR_SHM_HEALTH_DOWN;
        for (i = 0; i < 50; i++) {
            assert_int_not_equal(pick_idx(pool, 0), 0);
        }
        pool->servers[1].row->health = CR_SHM_HEALTH_DOWN;
        pool->servers[2].row->health = CR_SHM_HEALTH_DOWN;
        assert_null(pick(pool, 0));
        /* up and unknown (never checked) are both usable */
        pool->servers[1].row->health = CR_SHM_HEALTH_UP;
        pool->servers[2].row->health = CR_SHM_HEALTH_UNKNOWN;
        for (i = 0; i < 20; i++) {
            assert_int_not_equal(pick_idx(pool, 0), 0);
        }
    }
}

/* random: the less loaded of two choices, so a busy server is avoided. */
static void
test_upstream_random_prefers_idle_server(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "p2c");
    unsigned count[3] = { 0, 0, 0 };
    size_t i;

    pool->servers[0].active = 50;
    pool->servers[1].active = 50;
    pool->servers[2].active = 0;
    for (i = 0; i < 3000; i++) {
        count[pick_idx(pool, 0)]++;
    }
    /* server 2 is in 2 of the 3 possible pairs and wins both: ~2/3 */
    assert_true(count[2] > 1700);
    assert_true(count[0] > 300 && count[1] > 300);
}

/* A parser holding <head> as a request head. */
static void
parse_head(struct cr_http_parser *hp, const char *head)
{
    static const struct cr_http_limits lim = { 16384, 100, 0, 0 };
    enum cr_http_event ev;

    cr_http_parser_init(hp, 1, &lim, NULL, NULL, NULL);
    cr_http_parser_execute(hp, head, strlen(head), &ev);
    assert_int_equal(ev, CR_HTTP_EV_HEAD);
}

/* Pick for a request with head <head> from client <peer>. */
static unsigned
pick_for(struct cr_upstream_pool *pool, const char *head, const char *peer, int *has_key)
{
    struct cr_http_parser hp;
    struct cr_upstream_want want = { 0, 0, 0 };
    struct cr_upstream_server *s;

    parse_head(&hp, head);
    cr_upstream_want_key(pool, &hp, peer, &want);
    *has_key = want.has_key;
    s = cr_upstream_pick(pool, &want);
    cr_http_parser_free(&hp);
    assert_non_null(s);
    return s->idx;
}

/* hash: the same key always lands on the same server; the key's source
 * is the configured header, cookie or client address. */
static void
test_upstream_hash_keys_are_sticky(void **state)
{
    struct cr_upstream_pool *hdr = pool_named(state, "byhdr");
    struct cr_upstream_pool *cookie = pool_named(state, "bycookie");
    struct cr_upstream_pool *addr = pool_named(state, "byaddr");
    char head[256];
    unsigned first, seen = 0;
    int has;
    size_t i, k;

    for (k = 0; k < 30; k++) {
        snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\nX-User: u%zu\r\n\r\n", k);
        first = pick_for(hdr, head, "127.0.0.1", &has);
        assert_true(has);
        seen |= 1u << first;
        for (i = 0; i < 5; i++) {
            assert_int_equal(pick_for(hdr, head, "127.0.0.2", &has), first);
        }
        snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\n"
                 "Cookie: a=1; sid=s%zu; b=2\r\n\r\n", k);
        first = pick_for(cookie, head, "127.0.0.1", &has);
        assert_true(has);
        snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\n"
                 "Cookie: sid=s%zu\r\n\r\n", k);
        assert_int_equal(pick_for(cookie, head, "127.0.0.9", &has), first);
    }
    assert_int_equal(seen, 7);      /* 30 keys reach all three servers */

    first = pick_for(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "10.1.2.3", &has);
    assert_true(has);
    for (i = 0; i < 5; i++) {
        assert_int_equal(pick_for(addr, "GET /other HTTP/1.1\r\nHost: y\r\n\r\n",
                                  "10.1.2.3", &has), first);
    }
    /* no such header or cookie: no key, still served */
    pick_for(hdr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.1", &has);
    assert_false(has);
    pick_for(cookie, "GET / HTTP/1.1\r\nHost: x\r\nCookie: sidx=1\r\n\r\n", "127.0.0.1",
             &has);
    assert_false(has);
}

/* A key whose server is down moves to a neighbour, and comes back. */
static void
test_upstream_hash_moves_only_keys_of_a_down_server(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "byhdr");
    unsigned before[60], after;
    char head[128];
    int has;
    size_t k;

    for (k = 0; k < CR_NELEM(before); k++) {
        snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\nX-User: k%zu\r\n\r\n", k);
        before[k] = pick_for(pool, head, "127.0.0.1", &has);
    }
    pool->servers[1].row->health = CR_SHM_HEALTH_DOWN;
    for (k = 0; k < CR_NELEM(before); k++) {
        snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\nX-User: k%zu\r\n\r\n", k);
        after = pick_for(pool, head, "127.0.0.1", &has);
        if (before[k] != 1) {
            assert_int_equal(after, before[k]);
        } else {
            assert_int_not_equal(after, 1);
        }
    }
    pool->servers[1].row->health = CR_SHM_HEALTH_UP;
    for (k = 0; k < CR_NELEM(before); k++) {
        snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: x\r\nX-User: k%zu\r\n\r\n", k);
        assert_int_equal(pick_for(pool, head, "127.0.0.1", &has), before[k]);
    }
}

static void
test_upstream_server_ok_resets_failure_count(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "fails");
    struct cr_upstream_server *s0 = &pool->servers[0];

    /* failures must be consecutive: fail, ok, fail leaves it up */
    cr_upstream_server_failed(s0, CR_UPSTREAM_FAIL_CONNECT);
    cr_upstream_server_ok(s0, 200);
    cr_upstream_server_failed(s0, CR_UPSTREAM_FAIL_CONNECT);
    assert_int_equal(s0->row->ejected_until_ms, 0);
    assert_int_equal(pick_idx(pool, BIT(1)), 0);
}

static void
test_upstream_max_fails_zero_never_marks_down(void **state)
{
    struct cr_upstream_pool *pool = pool_named(state, "never");
    size_t i;

    for (i = 0; i < 1000; i++) {
        cr_upstream_server_failed(&pool->servers[0], CR_UPSTREAM_FAIL_CONNECT);
        cr_upstream_server_failed(&pool->servers[1], CR_UPSTREAM_FAIL_CONNECT);
    }
    assert_int_equal(pool->servers[0].row->ejected_until_ms, 0);
    assert_int_equal(pool->servers[1].row->ejected_until_ms, 0);
    assert_int_equal(pick_idx(pool, BIT(1)), 0);
    assert_int_equal(pick_idx(pool, BIT(0)), 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_upstream_pools_mirror_the_conf),
        T(test_upstream_rr_follows_weights),
        T(test_upstream_rr_interleaves_instead_of_bursting),
        T(test_upstream_rr_equal_weights_take_turns),
        T(test_upstream_rr_keeps_weights_among_servers_left),
        T(test_upstream_least_conn_picks_least_active),
        T(test_upstream_least_conn_divides_by_weight),
        T(test_upstream_least_conn_ties_rotate),
        T(test_upstream_tried_servers_are_skipped),
        T(test_upstream_all_tried_gives_null),
        T(test_upstream_least_conn_tried_beats_load),
        T(test_upstream_one_failure_below_max_fails_keeps_server_up),
        T(test_upstream_max_fails_marks_server_down_for_fail_timeout),
        T(test_upstream_all_servers_down_gives_null),
        T(test_upstream_success_does_not_end_an_ejection),
        T(test_upstream_repeated_ejection_doubles_up_to_max),
        T(test_upstream_5xx_counts_only_when_configured),
        T(test_upstream_health_down_is_skipped),
        T(test_upstream_random_prefers_idle_server),
        T(test_upstream_hash_keys_are_sticky),
        T(test_upstream_hash_moves_only_keys_of_a_down_server),
        T(test_upstream_server_ok_resets_failure_count),
        T(test_upstream_max_fails_zero_never_marks_down),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
