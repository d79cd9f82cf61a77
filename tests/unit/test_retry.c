/*
 * test_retry.c - gateway/retry.c: which failed tries may be retried, and
 * the retry budget that keeps retries from multiplying load in an outage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf/conf.h"
#include "gateway/retry.h"

static void
test_retry_eligibility_table(void **state)
{
    static const struct {
        unsigned            on;
        enum cr_retry_cause cause;
        int                 status, idem, body, want;
    } t[] = {
        /* connect failures: nothing was sent, even a POST with a body */
        { CR_RETRY_CONNECT, CR_RETRY_CAUSE_CONNECT, 0,   0, 1, 1 },
        { CR_RETRY_RESET,   CR_RETRY_CAUSE_CONNECT, 0,   1, 0, 0 },
        /* resets: idempotent, or no body byte sent */
        { CR_RETRY_RESET,   CR_RETRY_CAUSE_RESET,   0,   1, 1, 1 },
        { CR_RETRY_RESET,   CR_RETRY_CAUSE_RESET,   0,   0, 0, 1 },
        { CR_RETRY_RESET,   CR_RETRY_CAUSE_RESET,   0,   0, 1, 0 },
        { CR_RETRY_CONNECT, CR_RETRY_CAUSE_RESET,   0,   1, 0, 0 },
        /* statuses: only the configured ones */
        { CR_RETRY_503,     CR_RETRY_CAUSE_STATUS,  503, 1, 0, 1 },
        { CR_RETRY_503,     CR_RETRY_CAUSE_STATUS,  502, 1, 0, 0 },
        { CR_RETRY_502 | CR_RETRY_504, CR_RETRY_CAUSE_STATUS, 504, 1, 0, 1 },
        { CR_RETRY_502 | CR_RETRY_503 | CR_RETRY_504, CR_RETRY_CAUSE_STATUS, 500, 1, 0, 0 },
        { CR_RETRY_502,     CR_RETRY_CAUSE_STATUS,  502, 0, 1, 0 },
        { CR_RETRY_502,     CR_RETRY_CAUSE_STATUS,  502, 0, 0, 1 },
        { 0,                CR_RETRY_CAUSE_STATUS,  502, 1, 0, 0 },
    };
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int got = cr_retry_eligible(t[i].on, t[i].cause, t[i].status, t[i].idem, t[i].body);

        if (got != t[i].want) {
            fail_msg("case %zu: got %d, want %d", i, got, t[i].want);
        }
    }
}

/* 20% of 100 requests started: 20 retries, not 21. */
static void
test_retry_budget_caps_retries_to_a_share_of_requests(void **state)
{
    struct cr_retry_budget b;
    unsigned i, ok = 0;

    (void) state;
    cr_retry_budget_init(&b, 20, 0);
    for (i = 0; i < 100; i++) {
        cr_retry_budget_request(&b, 5000);
    }
    for (i = 0; i < 50; i++) {
        ok += (unsigned) cr_retry_budget_take(&b, 5000);
    }
    assert_int_equal(ok, 20);
    assert_int_equal(b.denied, 30);
    /* ending retries gives nothing back: the share is of requests started */
    cr_retry_budget_done(&b);
    assert_false(cr_retry_budget_take(&b, 5100));
    /* five more requests: one more retry */
    for (i = 0; i < 5; i++) {
        cr_retry_budget_request(&b, 5200);
    }
    assert_true(cr_retry_budget_take(&b, 5200));
    assert_false(cr_retry_budget_take(&b, 5200));
}

/* The window holds the previous second too, then forgets it. */
static void
test_retry_budget_window_is_two_seconds(void **state)
{
    struct cr_retry_budget b;
    unsigned i, ok = 0;

    (void) state;
    cr_retry_budget_init(&b, 10, 0);
    for (i = 0; i < 100; i++) {
        cr_retry_budget_request(&b, 1000);
    }
    for (i = 0; i < 20; i++) {
        ok += (unsigned) cr_retry_budget_take(&b, 2999);     /* next second */
    }
    assert_int_equal(ok, 10);
    /* two seconds on: the requests of 1000 are out of the window */
    assert_false(cr_retry_budget_take(&b, 3000 + 1000));
}

/* With few requests the minimum rate still allows some retries per second. */
static void
test_retry_budget_minimum_rate_per_second(void **state)
{
    struct cr_retry_budget b;
    unsigned i, ok = 0;

    (void) state;
    cr_retry_budget_init(&b, 20, 3);
    for (i = 0; i < 10; i++) {
        ok += (unsigned) cr_retry_budget_take(&b, 1000);
    }
    assert_int_equal(ok, 3);
    /* the next second: three more, though none has ended */
    ok = 0;
    for (i = 0; i < 10; i++) {
        ok += (unsigned) cr_retry_budget_take(&b, 2500);
    }
    assert_int_equal(ok, 3);
    /* percent 0, min 0: never */
    cr_retry_budget_init(&b, 0, 0);
    for (i = 0; i < 1000; i++) {
        cr_retry_budget_request(&b, 0);
    }
    assert_false(cr_retry_budget_take(&b, 0));
    cr_retry_budget_done(&b);
    assert_int_equal(b.active, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_eligibility_table),
        cmocka_unit_test(test_retry_budget_caps_retries_to_a_share_of_requests),
        cmocka_unit_test(test_retry_budget_window_is_two_seconds),
        cmocka_unit_test(test_retry_budget_minimum_rate_per_second),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
