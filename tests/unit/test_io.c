/*
 * test_io.c - gateway/io.c on a real event loop and socketpairs: reads,
 * writes, and the read timeout (an inactivity timeout that runs only
 * while reading, kept on per-duration timer lists or, past
 * CR_IO_RLISTS_MAX durations, as rev's own libevent timeout).
 *
 * One test uses a TCP connection on 127.0.0.1: that a shut write side
 * sends its FIN in the segment with the last bytes.
 *
 * Time is only ever checked from below (a timeout must not come early,
 * a paused one must not come at all), so a slow machine cannot fail it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "gateway/io.h"

/* The coarse clock behind timer lists may lag by a tick (timer.c). */
#define EARLY_MS    20

struct side {
    struct cr_io    io;
    int             peer;       /* the other end of the socketpair */
    unsigned        seen;       /* CR_IO_R_* bits so far */
    int             timeouts;
    uint64_t        timeout_at; /* ms, when the read timeout came */
    uint64_t        last_in;    /* ms, when data last came in */
};

static struct event_base *base;
static struct cr_io_loop loop;

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
side_cb(evutil_socket_t fd, short what, void *arg)
{
    struct side *s = arg;
    unsigned r = cr_io_handle(&s->io, what);

    (void)fd;
    s->seen |= r;
    if (r & CR_IO_R_DATA) {
        s->last_in = mono_ms();
        evbuffer_drain(cr_io_in(&s->io), cr_io_in_len(&s->io));
    }
    if (r & CR_IO_R_RTIMEOUT) {
        s->timeouts++;
        s->timeout_at = mono_ms();
        cr_io_read(&s->io, 0);      /* as the owners do: act on it once */
    }
}

static void
side_open(struct side *s)
{
    int sv[2];

    memset(s, 0, sizeof(*s));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    cr_io_init(&s->io, &loop, sv[0], side_cb, s);
    s->peer = sv[1];
}

static void
side_close(struct side *s)
{
    cr_io_close(&s->io);
    close(s->peer);
}

/* Run the loop for about <ms> (a one-shot timer breaks it). */
static void
run_for(uint32_t ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/* Run the loop until <s> had its read timeout; fail after 10 s. */
static void
wait_timeout(struct side *s)
{
    int i;

    for (i = 0; i < 200 && s->timeouts == 0; i++) {
        run_for(50);
    }
    assert_int_equal(s->timeouts, 1);
}

static int
setup(void **state)
{
    (void)state;
    base = event_base_new();
    assert_non_null(base);
    cr_io_loop_init(&loop, base);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    cr_io_loop_fini(&loop);
    event_base_free(base);
    return 0;
}

static void
test_io_reads_and_writes(void **state)
{
    struct side s;
    char buf[16];

    (void)state;
    side_open(&s);
    assert_int_equal(cr_io_write(&s.io, "hello", 5), 0);
    cr_io_read(&s.io, 1);
    assert_int_equal(write(s.peer, "ping", 4), 4);
    run_for(50);
    assert_true(s.seen & CR_IO_R_DATA);
    assert_true(s.seen & CR_IO_R_DRAINED);
    assert_int_equal(cr_io_out_len(&s.io), 0);
    assert_int_equal(read(s.peer, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);

    close(s.peer);
    s.peer = -1;
    run_for(50);
    assert_true(s.seen & CR_IO_R_EOF);
    cr_io_close(&s.io);
}

static void
test_io_read_timeout_fires_not_early(void **state)
{
    struct side s;
    uint64_t t0;

    (void)state;
    side_open(&s);
    cr_io_set_timeouts(&s.io, 100, 0);
    t0 = mono_ms();
    cr_io_read(&s.io, 1);
    wait_timeout(&s);
    assert_true(s.timeout_at - t0 + EARLY_MS >= 100);
    side_close(&s);
}

/* Input restarts the timeout: it comes a whole timeout after the last byte. */
static void
test_io_read_timeout_restarts_on_input(void **state)
{
    struct side s;
    int i;

    (void)state;
    side_open(&s);
    cr_io_set_timeouts(&s.io, 150, 0);
    cr_io_read(&s.io, 1);
    for (i = 0; i < 6; i++) {
        assert_int_equal(write(s.peer, "x", 1), 1);
        run_for(50);
        if (s.timeouts != 0) {
            break;      /* a slow machine: the gap grew past the timeout */
        }
    }
    wait_timeout(&s);
    assert_true(s.last_in != 0);
    assert_true(s.timeout_at - s.last_in + EARLY_MS >= 150);
    side_close(&s);
}

/* Paused reading runs no read timeout; resuming starts a whole one. */
static void
test_io_read_timeout_only_while_reading(void **state)
{
    struct side s;
    uint64_t t0;

    (void)state;
    side_open(&s);
    cr_io_set_timeouts(&s.io, 60, 0);
    cr_io_read(&s.io, 1);
    cr_io_read(&s.io, 0);
    run_for(200);
    assert_int_equal(s.timeouts, 0);

    t0 = mono_ms();
    cr_io_read(&s.io, 1);
    wait_timeout(&s);
    assert_true(s.timeout_at - t0 + EARLY_MS >= 60);

    /* a 0 timeout is none */
    s.timeouts = 0;
    cr_io_set_timeouts(&s.io, 0, 0);
    cr_io_read(&s.io, 1);
    run_for(200);
    assert_int_equal(s.timeouts, 0);
    side_close(&s);
}

/* A new duration while waiting replaces the old one, from now. */
static void
test_io_read_timeout_changes(void **state)
{
    struct side s;
    uint64_t t0;

    (void)state;
    side_open(&s);
    cr_io_set_timeouts(&s.io, 60, 0);
    cr_io_read(&s.io, 1);
    t0 = mono_ms();
    cr_io_set_timeouts(&s.io, 250, 0);
    wait_timeout(&s);
    assert_true(s.timeout_at - t0 + EARLY_MS >= 250);
    side_close(&s);
}

/*
 * More durations than timer lists: the ones past CR_IO_RLISTS_MAX use
 * rev's own timeout, and all of them fire, none early; closing a socket
 * with a running timeout of either kind stops it.
 */
static void
test_io_read_timeout_many_durations(void **state)
{
    enum { N = CR_IO_RLISTS_MAX + 4 };
    static struct side s[N];
    struct side quiet[2];
    uint64_t t0;
    int i;

    (void)state;
    t0 = mono_ms();
    for (i = 0; i < N; i++) {
        side_open(&s[i]);
        cr_io_set_timeouts(&s[i].io, (uint32_t)(50 + i), 0);
        cr_io_read(&s[i].io, 1);
    }
    assert_int_equal(loop.nrlists, CR_IO_RLISTS_MAX);
    side_open(&quiet[0]);
    side_open(&quiet[1]);
    cr_io_set_timeouts(&quiet[0].io, 50, 0);            /* on a list */
    cr_io_set_timeouts(&quiet[1].io, 50 + N, 0);        /* rev's own */
    cr_io_read(&quiet[0].io, 1);
    cr_io_read(&quiet[1].io, 1);
    side_close(&quiet[0]);
    side_close(&quiet[1]);
    for (i = 0; i < N; i++) {
        wait_timeout(&s[i]);
    }
    run_for(100);       /* no second timeout, none from the closed ones */
    for (i = 0; i < N; i++) {
        assert_int_equal(s[i].timeouts, 1);
        assert_true(s[i].timeout_at - t0 + EARLY_MS >= (uint64_t)(50 + i));
        side_close(&s[i]);
    }
    assert_int_equal(quiet[0].timeouts, 0);
    assert_int_equal(quiet[1].timeouts, 0);
}

/* A connected TCP pair on 127.0.0.1: *a non-blocking, *b blocking. */
static void
tcp_pair(int *a, int *b)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);
    int l = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(l >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
    *a = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*a >= 0);
    assert_int_equal(connect(*a, (struct sockaddr *)&sin, sizeof(sin)), 0);
    *b = accept(l, NULL, NULL);
    assert_true(*b >= 0);
    close(l);
    assert_int_equal(fcntl(*a, F_SETFL, fcntl(*a, F_GETFL) | O_NONBLOCK), 0);
}

static uint32_t
segs_out(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    memset(&ti, 0, sizeof(ti));
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    return ti.tcpi_segs_out;
}

/*
 * An answer followed by a shut write side leaves as one segment carrying
 * data and FIN (MSG_MORE until the shutdown), not data and then a lone FIN;
 * the peer reads all of it, then EOF.
 */
static void
test_io_shutdown_fin_with_last_bytes(void **state)
{
    struct side s;
    char buf[64];
    uint32_t before;
    int a, b;

    (void)state;
    memset(&s, 0, sizeof(s));
    tcp_pair(&a, &b);
    cr_io_init(&s.io, &loop, a, side_cb, &s);
    s.peer = b;
    before = segs_out(a);

    assert_int_equal(cr_io_write(&s.io, "the last words", 14), 0);
    cr_io_shutdown_wr(&s.io);
    assert_int_equal(cr_io_write(&s.io, ", and more", 10), 0);
    run_for(50);
    assert_true(s.seen & CR_IO_R_DRAINED);
    assert_int_equal(cr_io_out_len(&s.io), 0);
    assert_int_equal(segs_out(a) - before, 1);

    assert_int_equal(read(b, buf, sizeof(buf)), 24);
    assert_memory_equal(buf, "the last words, and more", 24);
    assert_int_equal(read(b, buf, sizeof(buf)), 0);
    side_close(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_io_reads_and_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_shutdown_fin_with_last_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_read_timeout_fires_not_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_read_timeout_restarts_on_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_read_timeout_only_while_reading, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_io_read_timeout_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_read_timeout_many_durations, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
