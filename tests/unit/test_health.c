/*
 * test_health.c - the pure parts of gateway/health.c: reading a status
 * line, and the up/down state machine that a check result drives in a
 * server's shm row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conf/common.h"
#include "gateway/health.h"
#include "shm/layout.h"

static void
test_health_parses_status_lines(void **state)
{
    static const struct {
        const char *line;
        int         want;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\n",            200 },
        { "HTTP/1.0 503 Busy\r\n",          503 },
        { "HTTP/1.1 204\r\n",               204 },
        { "HTTP/1.1 599 x\r\n",             599 },
        { "HTTP/2 200 OK\r\n",              -1 },
        { "HTTP/1.1 20 OK\r\n",             -1 },
        { "HTTP/1.1 2000 OK\r\n",           -1 },
        { "HTTP/1.1 600 OK\r\n",            -1 },
        { "HTTP/1.1 099 OK\r\n",            -1 },
        { "http/1.1 200 OK\r\n",            -1 },
        { "SSH-2.0-OpenSSH_9.2\r\n",        -1 },
        { "HTTP/1.1 2x0 OK\r\n",            -1 },
        { "\r\n",                           -1 },
    };
    size_t i;

    (void) state;
    for (i = 0; i < CR_NELEM(cases); i++) {
        int got = cr_health_parse_status(cases[i].line, strlen(cases[i].line));

        if (got != cases[i].want) {
            fail_msg("\"%s\": got %d, want %d", cases[i].line, got, cases[i].want);
        }
    }
}

/* rise after <passes>, fall after <fails>; counts and texts recorded */
static void
test_health_fails_and_passes_move_the_verdict(void **state)
{
    struct cr_shm_server *row;
    int i;

    (void) state;
    row = aligned_alloc(64, sizeof(*row));
    assert_non_null(row);
    memset(row, 0, sizeof(*row));

    /* never checked: the first pass is enough */
    assert_int_equal(cr_health_record(row, 200, NULL, 200, 399, 3, 2, 10), 1);
    assert_int_equal(row->health, CR_SHM_HEALTH_UP);
    assert_true(row->last_check_ms > 0);
    assert_int_equal(row->checks_ok, 1);

    /* two failures of three: still up */
    assert_int_equal(cr_health_record(row, 0, "connect: Connection refused", 200, 399, 3, 2,
                                      10), 0);
    assert_int_equal(cr_health_record(row, 500, NULL, 200, 399, 3, 2, 10), 0);
    assert_int_equal(row->health, CR_SHM_HEALTH_UP);
    assert_int_equal(row->check_fails, 2);
    assert_string_equal(row->last_error, "status 500");
    assert_int_equal(row->last_status, 500);
    /* the third: down */
    assert_int_equal(cr_health_record(row, 0, "timed out after 100ms", 200, 399, 3, 2, 10), 1);
    assert_int_equal(row->health, CR_SHM_HEALTH_DOWN);
    assert_string_equal(row->last_error, "timed out after 100ms");
    assert_int_equal(row->checks_failed, 3);
    assert_true(row->health_changed_ms > 0);

    /* a pass, a failure (resets), then two passes: up again */
    assert_int_equal(cr_health_record(row, 200, NULL, 200, 399, 3, 2, 10), 0);
    assert_int_equal(cr_health_record(row, 404, NULL, 200, 399, 3, 2, 10), 0);
    assert_int_equal(row->check_passes, 0);
    assert_int_equal(cr_health_record(row, 302, NULL, 200, 399, 3, 2, 10), 0);
    assert_int_equal(row->health, CR_SHM_HEALTH_DOWN);
    assert_int_equal(cr_health_record(row, 399, NULL, 200, 399, 3, 2, 10), 1);
    assert_int_equal(row->health, CR_SHM_HEALTH_UP);
    assert_int_equal(row->check_passes, 2);
    assert_int_equal(row->check_fails, 0);

    /* expect_status is a range: 204 alone rejects 200 */
    for (i = 0; i < 3; i++) {
        cr_health_record(row, 200, NULL, 204, 204, 3, 2, 10);
    }
    assert_int_equal(row->health, CR_SHM_HEALTH_DOWN);
    free(row);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_parses_status_lines),
        cmocka_unit_test(test_health_fails_and_passes_move_the_verdict),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
