/*
 * test_balance.c - the selection algorithms of gateway/balance.c on plain
 * arrays: weights over many picks, power of two choices, the consistent
 * hash ring's stability when a server leaves, and "nothing usable".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conf/common.h"
#include "gateway/balance.h"

#define NKEYS   10000

static void
nodes_init(struct cr_balance_node *n, size_t count, const unsigned *weights)
{
    size_t i;

    memset(n, 0, count * sizeof(*n));
    for (i = 0; i < count; i++) {
        n[i].weight = weights != NULL ? weights[i] : 1;
        n[i].usable = 1;
    }
}

static void
test_balance_round_robin_respects_weights(void **state)
{
    static const unsigned w[4] = { 1, 2, 3, 4 };
    struct cr_balance_node n[4];
    unsigned count[4] = { 0, 0, 0, 0 };
    size_t i;

    (void) state;
    nodes_init(n, 4, w);
    for (i = 0; i < 10000; i++) {
        int k = cr_balance_round_robin(n, 4);

        assert_true(k >= 0 && k < 4);
        count[k]++;
    }
    /* smooth WRR is exact over whole cycles of 10 picks */
    for (i = 0; i < 4; i++) {
        assert_int_equal(count[i], 1000 * w[i]);
    }
}

static void
test_balance_nothing_usable_gives_minus_one(void **state)
{
    struct cr_balance_node n[3];
    struct cr_balance_ring r;
    const char *names[3] = { "a", "b", "c" };
    static const unsigned w[3] = { 1, 1, 1 };
    uint64_t rng = 42;
    size_t i;

    (void) state;
    nodes_init(n, 3, NULL);
    for (i = 0; i < 3; i++) {
        n[i].usable = 0;
    }
    assert_int_equal(cr_balance_round_robin(n, 3), -1);
    assert_int_equal(cr_balance_least_conn(n, 3, 0), -1);
    assert_int_equal(cr_balance_p2c(n, 3, &rng), -1);
    assert_int_equal(cr_balance_ring_build(&r, names, w, 3), CR_OK);
    assert_int_equal(cr_balance_ring_pick(&r, 12345, n), -1);
    /* one usable: every balancer finds it */
    n[1].usable = 1;
    assert_int_equal(cr_balance_round_robin(n, 3), 1);
    assert_int_equal(cr_balance_least_conn(n, 3, 2), 1);
    assert_int_equal(cr_balance_p2c(n, 3, &rng), 1);
    assert_int_equal(cr_balance_ring_pick(&r, 12345, n), 1);
    cr_balance_ring_free(&r);
    assert_int_equal(cr_balance_round_robin(n, 0), -1);
}

static void
test_balance_least_conn_uses_load_per_weight(void **state)
{
    static const unsigned w[3] = { 1, 4, 1 };
    struct cr_balance_node n[3];

    (void) state;
    nodes_init(n, 3, w);
    n[0].active = 3;
    n[1].active = 8;    /* 2 per unit of weight: lighter than 3 */
    n[2].active = 5;
    assert_int_equal(cr_balance_least_conn(n, 3, 0), 1);
    n[1].active = 16;   /* 4 per unit */
    assert_int_equal(cr_balance_least_conn(n, 3, 0), 0);
    n[2].active = 3;    /* a tie goes to the first from <start> */
    assert_int_equal(cr_balance_least_conn(n, 3, 0), 0);
    assert_int_equal(cr_balance_least_conn(n, 3, 2), 2);
}

static void
test_balance_p2c_prefers_less_loaded(void **state)
{
    struct cr_balance_node n[4];
    unsigned count[4] = { 0, 0, 0, 0 };
    uint64_t rng = 7;
    size_t i;

    (void) state;
    nodes_init(n, 4, NULL);
    n[0].active = 100;
    n[1].active = 10;
    n[2].active = 10;
    n[3].active = 0;
    for (i = 0; i < 12000; i++) {
        count[cr_balance_p2c(n, 4, &rng)]++;
    }
    /*
     * With two distinct draws out of 4, a node is in half the pairs. The
     * idle node wins every pair it is in (~6000); the busiest wins none.
     */
    assert_int_equal(count[0], 0);
    assert_true(count[3] > 5400 && count[3] < 6600);
    assert_true(count[1] > 2000 && count[2] > 2000);

    /* equal load: both draws are fair, every node gets about a quarter */
    nodes_init(n, 4, NULL);
    memset(count, 0, sizeof(count));
    for (i = 0; i < 12000; i++) {
        count[cr_balance_p2c(n, 4, &rng)]++;
    }
    for (i = 0; i < 4; i++) {
        assert_true(count[i] > 2400 && count[i] < 3600);
    }
}

/* Owner of each of NKEYS keys on a ring of servers "10.0.0.<id>:80". */
static void
owners(const unsigned *ids, size_t count, int *out)
{
    struct cr_balance_ring r;
    struct cr_balance_node n[16];
    char names_buf[16][32];
    const char *names[16];
    unsigned w[16];
    char key[32];
    size_t i;

    for (i = 0; i < count; i++) {
        snprintf(names_buf[i], sizeof(names_buf[i]), "10.0.0.%u:80", ids[i]);
        names[i] = names_buf[i];
        w[i] = 1;
    }
    nodes_init(n, count, NULL);
    assert_int_equal(cr_balance_ring_build(&r, names, w, count), CR_OK);
    for (i = 0; i < NKEYS; i++) {
        int len = snprintf(key, sizeof(key), "user-%zu", i);
        int k = cr_balance_ring_pick(&r, cr_balance_hash(key, (size_t) len), n);

        assert_true(k >= 0);
        out[i] = (int) ids[k];  /* by identity, not position */
    }
    cr_balance_ring_free(&r);
}

/*
 * Removing one of ten servers from the config (a new ring without it)
 * moves only the keys it owned: at least 85% of 10,000 keys stay put, and
 * no key moves between two servers that both stayed.
 */
static void
test_balance_ring_keeps_keys_when_a_server_leaves(void **state)
{
    static const unsigned ten[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    static const unsigned nine[9] = { 1, 2, 3, 4, 6, 7, 8, 9, 10 };
    static int before[NKEYS], after[NKEYS];
    unsigned per[11] = { 0 };
    size_t i, kept = 0;

    (void) state;
    owners(ten, 10, before);
    owners(nine, 9, after);
    for (i = 0; i < NKEYS; i++) {
        per[before[i]]++;
        if (before[i] == after[i]) {
            kept++;
        } else {
            assert_int_equal(before[i], 5);
        }
    }
    print_message("hash ring: %zu of %d keys kept when 1 of 10 servers left (%.1f%%)\n",
                  kept, NKEYS, 100.0 * (double) kept / NKEYS);
    assert_true(kept * 100 >= 85 * NKEYS);
    /* and the ring spreads keys fairly: every server within 0.5x..1.5x */
    for (i = 1; i <= 10; i++) {
        assert_true(per[i] > NKEYS / 20 && per[i] < NKEYS * 3 / 20);
    }
}

/* The same when the server is only marked down (not usable) in place. */
static void
test_balance_ring_keeps_keys_when_a_server_is_down(void **state)
{
    const char *names[10];
    char buf[10][32];
    unsigned w[10];
    struct cr_balance_node n[10];
    struct cr_balance_ring r;
    static int before[NKEYS];
    size_t i, kept = 0;
    char key[32];

    (void) state;
    for (i = 0; i < 10; i++) {
        snprintf(buf[i], sizeof(buf[i]), "server-%zu", i);
        names[i] = buf[i];
        w[i] = 1;
    }
    nodes_init(n, 10, NULL);
    assert_int_equal(cr_balance_ring_build(&r, names, w, 10), CR_OK);
    for (i = 0; i < NKEYS; i++) {
        int len = snprintf(key, sizeof(key), "%zu", i * 7919);

        before[i] = cr_balance_ring_pick(&r, cr_balance_hash(key, (size_t) len), n);
    }
    n[3].usable = 0;
    for (i = 0; i < NKEYS; i++) {
        int len = snprintf(key, sizeof(key), "%zu", i * 7919);
        int k = cr_balance_ring_pick(&r, cr_balance_hash(key, (size_t) len), n);

        assert_int_not_equal(k, 3);
        kept += k == before[i];
    }
    assert_true(kept * 100 >= 85 * NKEYS);
    cr_balance_ring_free(&r);
}

/* Weights give a server a proportional share of the ring. */
static void
test_balance_ring_follows_weights(void **state)
{
    const char *names[2] = { "heavy:1", "light:1" };
    static const unsigned w[2] = { 3, 1 };
    struct cr_balance_node n[2];
    struct cr_balance_ring r;
    unsigned count[2] = { 0, 0 };
    size_t i;

    (void) state;
    nodes_init(n, 2, w);
    assert_int_equal(cr_balance_ring_build(&r, names, w, 2), CR_OK);
    assert_int_equal(r.npoints, 4 * CR_BALANCE_VNODES);
    for (i = 0; i < NKEYS; i++) {
        count[cr_balance_ring_pick(&r, cr_balance_hash(&i, sizeof(i)), n)]++;
    }
    /* 75% expected */
    assert_true(count[0] > NKEYS * 68 / 100 && count[0] < NKEYS * 82 / 100);
    cr_balance_ring_free(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balance_round_robin_respects_weights),
        cmocka_unit_test(test_balance_nothing_usable_gives_minus_one),
        cmocka_unit_test(test_balance_least_conn_uses_load_per_weight),
        cmocka_unit_test(test_balance_p2c_prefers_less_loaded),
        cmocka_unit_test(test_balance_ring_keeps_keys_when_a_server_leaves),
        cmocka_unit_test(test_balance_ring_keeps_keys_when_a_server_is_down),
        cmocka_unit_test(test_balance_ring_follows_weights),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
