/*
 * test_waitq.c - gateway/waitq.c: the bounded FIFO of requests waiting for
 * a server under max_connections, and the connection limit itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf/common.h"
#include "gateway/waitq.h"

static void
test_waitq_is_fifo_and_bounded(void **state)
{
    struct cr_waitq q;
    struct cr_waitq_entry e[4];

    (void) state;
    cr_waitq_init(&q, 3, 1000);
    assert_int_equal(cr_waitq_push(&q, &e[0], 10), CR_OK);
    assert_int_equal(cr_waitq_push(&q, &e[1], 20), CR_OK);
    assert_int_equal(cr_waitq_push(&q, &e[2], 30), CR_OK);
    assert_int_equal(cr_waitq_push(&q, &e[3], 40), CR_ERR);     /* full: 503 */
    assert_int_equal(q.rejected, 1);
    assert_int_equal(q.len, 3);
    assert_ptr_equal(cr_waitq_pop(&q), &e[0]);
    assert_false(e[0].queued);
    assert_int_equal(cr_waitq_push(&q, &e[3], 50), CR_OK);     /* room again */
    assert_ptr_equal(cr_waitq_pop(&q), &e[1]);
    assert_ptr_equal(cr_waitq_pop(&q), &e[2]);
    assert_ptr_equal(cr_waitq_pop(&q), &e[3]);
    assert_null(cr_waitq_pop(&q));
    assert_int_equal(q.len, 0);
}

static void
test_waitq_expires_in_order_and_removes(void **state)
{
    struct cr_waitq q;
    struct cr_waitq_entry e[3];

    (void) state;
    cr_waitq_init(&q, 8, 100);
    cr_waitq_push(&q, &e[0], 0);
    cr_waitq_push(&q, &e[1], 50);
    cr_waitq_push(&q, &e[2], 60);
    assert_int_equal(cr_waitq_next_deadline(&q), 100);
    assert_null(cr_waitq_expired(&q, 99));
    assert_ptr_equal(cr_waitq_expired(&q, 155), &e[0]);
    assert_ptr_equal(cr_waitq_expired(&q, 155), &e[1]);
    assert_null(cr_waitq_expired(&q, 155));
    assert_int_equal(q.expired, 2);
    /* a client that left is unlinked; removing twice is harmless */
    cr_waitq_remove(&q, &e[2]);
    cr_waitq_remove(&q, &e[2]);
    assert_int_equal(q.len, 0);
    assert_int_equal(cr_waitq_next_deadline(&q), 0);
}

static void
test_waitq_size_zero_rejects_everything(void **state)
{
    struct cr_waitq q;
    struct cr_waitq_entry e;
    struct cr_connlimit none = { 0, 1000000 }, two = { 2, 1 };

    (void) state;
    cr_waitq_init(&q, 0, 100);
    assert_int_equal(cr_waitq_push(&q, &e, 0), CR_ERR);
    assert_true(cr_connlimit_has_room(&none));
    assert_true(cr_connlimit_has_room(&two));
    two.active = 2;
    assert_false(cr_connlimit_has_room(&two));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waitq_is_fifo_and_bounded),
        cmocka_unit_test(test_waitq_expires_in_order_and_removes),
        cmocka_unit_test(test_waitq_size_zero_rejects_everything),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
