/*
 * test_http.c - message framing on top of llhttp (gateway/http.c).
 *
 * Pure functions, no event loop: bytes in, events, spans and bodies out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "conf/conf.h"
#include "gateway/http.h"

static const struct cr_http_limits limits = {
    .max_head_bytes = 1024,
    .max_headers = 8,
    .max_uri_bytes = 128,
    .max_body_bytes = 64,
};

struct sink {
    char        buf[256];
    size_t      len;
    int         heads;
    int         head_rc;
};

static int
sink_body(void *arg, const char *at, size_t len)
{
    struct sink *s = arg;

    assert_true(s->len + len <= sizeof(s->buf));
    memcpy(s->buf + s->len, at, len);
    s->len += len;
    return 0;
}

static int
sink_head(void *arg)
{
    struct sink *s = arg;

    s->heads++;
    return s->head_rc;
}

/* Feed all of <in> as a request; return the event and bytes consumed. */
static enum cr_http_event
feed(struct cr_http_parser *hp, const char *in, size_t *used)
{
    enum cr_http_event ev;

    *used = cr_http_parser_execute(hp, in, strlen(in), &ev);
    return ev;
}

static void
test_http_request_head_pauses_before_body(void **state)
{
    struct cr_http_parser hp;
    struct sink s = { .len = 0 };
    const char *in = "POST /up?x=1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                     "X-Empty:\r\nX-B: 2\r\n\r\nhello";
    const struct cr_http_field *f;
    size_t used;

    (void)state;
    cr_http_parser_init(&hp, 1, &limits, NULL, sink_body, &s);
    assert_int_equal(feed(&hp, in, &used), CR_HTTP_EV_HEAD);
    assert_int_equal(used, strlen(in) - 5);
    assert_int_equal(s.len, 0);
    assert_int_equal(hp.method, HTTP_POST);
    assert_memory_equal(cr_http_str(&hp, hp.target), "/up?x=1", 7);
    assert_int_equal(hp.target.len, 7);
    assert_true(hp.flags & CR_HTTP_F_CLEN);
    assert_int_equal(hp.content_length, 5);
    assert_int_equal(hp.nfields, 4);
    /* an empty value must not glue the next name onto this one */
    f = cr_http_find(&hp, "x-empty");
    assert_non_null(f);
    assert_int_equal(f->value.len, 0);
    f = cr_http_find(&hp, "X-B");
    assert_non_null(f);
    assert_memory_equal(cr_http_str(&hp, f->value), "2", 1);

    cr_http_parser_resume(&hp);
    {
        enum cr_http_event ev;
        size_t n = cr_http_parser_execute(&hp, in + used, 5, &ev);

        assert_int_equal(ev, CR_HTTP_EV_DONE);
        assert_int_equal(n, 5);
    }
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.buf, "hello", 5);
    cr_http_parser_free(&hp);
}

static void
test_http_pipelined_requests_stop_at_each_end(void **state)
{
    struct cr_http_parser hp;
    const char *in = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t first = strlen("GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    enum cr_http_event ev;
    size_t used, n;

    (void)state;
    cr_http_parser_init(&hp, 1, &limits, NULL, NULL, NULL);
    assert_int_equal(feed(&hp, in, &used), CR_HTTP_EV_HEAD);
    assert_int_equal(used, first);
    cr_http_parser_resume(&hp);
    n = cr_http_parser_execute(&hp, in + used, strlen(in) - used, &ev);
    assert_int_equal(ev, CR_HTTP_EV_DONE);
    assert_int_equal(n, 0);             /* no body: done right away */
    cr_http_parser_next(&hp);
    n = cr_http_parser_execute(&hp, in + used, strlen(in) - used, &ev);
    assert_int_equal(ev, CR_HTTP_EV_HEAD);
    assert_int_equal(n, strlen(in) - first);
    assert_memory_equal(cr_http_str(&hp, hp.target), "/b", 2);
    cr_http_parser_free(&hp);
}

static void
test_http_head_split_across_reads_is_reassembled(void **state)
{
    struct cr_http_parser hp;
    const char *in = "GET /split/path HTTP/1.1\r\nHost: example.test\r\nX-Long: abcdef\r\n\r\n";
    const struct cr_http_field *f;
    enum cr_http_event ev = CR_HTTP_EV_NONE;
    size_t i;

    (void)state;
    cr_http_parser_init(&hp, 1, &limits, NULL, NULL, NULL);
    for (i = 0; i < strlen(in); i++) {
        size_t n = cr_http_parser_execute(&hp, in + i, 1, &ev);

        assert_int_equal(n, 1);
        if (ev != CR_HTTP_EV_NONE) {
            break;
        }
    }
    assert_int_equal(ev, CR_HTTP_EV_HEAD);
    assert_int_equal(i, strlen(in) - 1);
    assert_int_equal(hp.target.len, strlen("/split/path"));
    f = cr_http_find(&hp, "x-long");
    assert_non_null(f);
    assert_int_equal(f->value.len, 6);
    assert_memory_equal(cr_http_str(&hp, f->value), "abcdef", 6);
    f = cr_http_find(&hp, "host");
    assert_memory_equal(cr_http_str(&hp, f->value), "example.test", 12);
    cr_http_parser_free(&hp);
}

static void
test_http_chunked_body_is_decoded(void **state)
{
    struct cr_http_parser hp;
    struct sink s = { .len = 0 };
    const char *in = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer-X: 1\r\n\r\n";
    enum cr_http_event ev;
    size_t used, n;

    (void)state;
    cr_http_parser_init(&hp, 1, &limits, NULL, sink_body, &s);
    assert_int_equal(feed(&hp, in, &used), CR_HTTP_EV_HEAD);
    assert_true(hp.flags & CR_HTTP_F_CHUNKED);
    cr_http_parser_resume(&hp);
    n = cr_http_parser_execute(&hp, in + used, strlen(in) - used, &ev);
    assert_int_equal(ev, CR_HTTP_EV_DONE);
    assert_int_equal(used + n, strlen(in));
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.buf, "abcde", 5);
    cr_http_parser_free(&hp);
}

struct bad_case {
    const char *name;
    const char *in;
    int         status;
};

static const struct bad_case bad_requests[] = {
    { "duplicate content-length",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400 },
    { "content-length with transfer-encoding",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
    { "missing host on 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400 },
    { "duplicate host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
    { "garbage", "\x01\x02\x03 nonsense\r\n\r\n", 400 },
    { "bare LF", "GET / HTTP/1.1\nHost: h\n\n", 400 },
    { "space before colon", "GET / HTTP/1.1\r\nHost: h\r\nX-Bad : x\r\n\r\n", 400 },
    { "space inside a name", "GET / HTTP/1.1\r\nHost: h\r\nX Bad: x\r\n\r\n", 400 },
    { "signed length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400 },
    { "gzip transfer coding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501 },
    { "chunked not final",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400 },
    { "connect", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501 },
    { "body over limit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n", 413 },
    { "obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", 400 },
    { "obs-fold with a tab", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n", 400 },
    { "bare CR inside a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r2\r\n\r\n", 400 },
    { "bare CR ending a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\rX-B: 2\r\n\r\n", 400 },
    { "bare LF ending the request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400 },
    { "bare LF ending the head", "GET / HTTP/1.1\r\nHost: h\r\n\n", 400 },
    { "HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505 },
    { "transfer-encoding in HTTP/1.0",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
    { "empty transfer-encoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400 },
    { "host with a space", "GET / HTTP/1.1\r\nHost: a b.example\r\n\r\n", 400 },
    { "host list", "GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n", 400 },
    { "host with userinfo", "GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n", 400 },
    { "host with a path", "GET / HTTP/1.1\r\nHost: a.example/b\r\n\r\n", 400 },
    { "chunk over the limit at once",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc", 413 },
    { "too many headers",
      "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\n",
      431 },
    { "uri too long",
      "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", 414 },
};

static void
test_http_rejects_malformed_requests(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < CR_NELEM(bad_requests); i++) {
        struct cr_http_parser hp;
        size_t used;
        enum cr_http_event ev;

        cr_http_parser_init(&hp, 1, &limits, NULL, NULL, NULL);
        ev = feed(&hp, bad_requests[i].in, &used);
        if (ev == CR_HTTP_EV_HEAD) {
            /* errors in the body show once it is parsed */
            cr_http_parser_resume(&hp);
            cr_http_parser_execute(&hp, bad_requests[i].in + used,
                                   strlen(bad_requests[i].in) - used, &ev);
        }
        if (ev != CR_HTTP_EV_ERROR || hp.err_status != bad_requests[i].status) {
            fail_msg("%s: event %d status %d, want error %d", bad_requests[i].name,
                     ev, hp.err_status, bad_requests[i].status);
        }
        cr_http_parser_free(&hp);
    }
}

static void
test_http_header_bytes_over_limit_is_431(void **state)
{
    struct cr_http_parser hp;
    char in[2048];
    size_t used;

    (void)state;
    memset(in, 0, sizeof(in));
    strcpy(in, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    memset(in + strlen(in), 'v', 1100);
    strcat(in, "\r\n\r\n");
    cr_http_parser_init(&hp, 1, &limits, NULL, NULL, NULL);
    assert_int_equal(feed(&hp, in, &used), CR_HTTP_EV_ERROR);
    assert_int_equal(hp.err_status, 431);
    cr_http_parser_free(&hp);
}

static void
test_http_chunked_body_over_limit_is_413(void **state)
{
    struct cr_http_parser hp;
    struct sink s = { .len = 0 };
    const char *in = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "41\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n0\r\n\r\n";
    enum cr_http_event ev;
    size_t used;

    (void)state;
    cr_http_parser_init(&hp, 1, &limits, NULL, sink_body, &s);
    assert_int_equal(feed(&hp, in, &used), CR_HTTP_EV_HEAD);
    cr_http_parser_resume(&hp);
    cr_http_parser_execute(&hp, in + used, strlen(in) - used, &ev);
    assert_int_equal(ev, CR_HTTP_EV_ERROR);
    assert_int_equal(hp.err_status, 413);
    cr_http_parser_free(&hp);
}

static void
test_http_response_interim_then_final(void **state)
{
    struct cr_http_parser hp;
    struct sink s = { .len = 0 };
    const char *in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                     "HTTP/1.1 200 OK\r\n";
    enum cr_http_event ev;
    size_t n;

    (void)state;
    cr_http_parser_init(&hp, 0, &limits, sink_head, sink_body, &s);
    n = cr_http_parser_execute(&hp, in, strlen(in), &ev);
    assert_int_equal(ev, CR_HTTP_EV_DONE);
    assert_int_equal(s.heads, 2);       /* the 100 and the 200 */
    assert_int_equal(hp.status, 200);
    assert_int_equal(s.len, 2);
    /* stops exactly at the end of the final response */
    assert_int_equal(n, strlen(in) - strlen("HTTP/1.1 200 OK\r\n"));
    cr_http_parser_free(&hp);
}

static void
test_http_response_to_head_has_no_body(void **state)
{
    struct cr_http_parser hp;
    struct sink s = { .len = 0, .head_rc = 1 };
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    enum cr_http_event ev;
    size_t n;

    (void)state;
    cr_http_parser_init(&hp, 0, &limits, sink_head, sink_body, &s);
    n = cr_http_parser_execute(&hp, in, strlen(in), &ev);
    assert_int_equal(ev, CR_HTTP_EV_DONE);
    assert_int_equal(n, strlen(in));
    assert_int_equal(s.len, 0);
    cr_http_parser_free(&hp);
}

static void
test_http_close_delimited_response_ends_at_eof(void **state)
{
    struct cr_http_parser hp;
    struct sink s = { .len = 0 };
    const char *in = "HTTP/1.1 200 OK\r\n\r\nuntil close";
    enum cr_http_event ev;

    (void)state;
    cr_http_parser_init(&hp, 0, &limits, sink_head, sink_body, &s);
    cr_http_parser_execute(&hp, in, strlen(in), &ev);
    assert_int_equal(ev, CR_HTTP_EV_NONE);
    assert_int_equal(cr_http_parser_finish(&hp), CR_HTTP_EV_DONE);
    assert_int_equal(s.len, strlen("until close"));
    cr_http_parser_free(&hp);
}

static void
test_http_truncated_response_is_an_error(void **state)
{
    struct cr_http_parser hp;
    struct sink s = { .len = 0 };
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    enum cr_http_event ev;

    (void)state;
    cr_http_parser_init(&hp, 0, &limits, sink_head, sink_body, &s);
    cr_http_parser_execute(&hp, in, strlen(in), &ev);
    assert_int_equal(ev, CR_HTTP_EV_NONE);
    assert_int_equal(cr_http_parser_finish(&hp), CR_HTTP_EV_ERROR);
    assert_int_equal(hp.err_status, 502);
    cr_http_parser_free(&hp);
}

static void
test_http_hop_by_hop_includes_connection_tokens(void **state)
{
    struct cr_http_parser hp;
    const char *in = "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret ,x-other\r\n\r\n";
    size_t used;

    (void)state;
    cr_http_parser_init(&hp, 1, &limits, NULL, NULL, NULL);
    assert_int_equal(feed(&hp, in, &used), CR_HTTP_EV_HEAD);
    assert_true(cr_http_is_hop_by_hop(&hp, "X-Secret", 8));
    assert_true(cr_http_is_hop_by_hop(&hp, "X-Other", 7));
    assert_true(cr_http_is_hop_by_hop(&hp, "TE", 2));
    assert_true(cr_http_is_hop_by_hop(&hp, "proxy-connection", 16));
    assert_false(cr_http_is_hop_by_hop(&hp, "X-Secretive", 11));
    assert_false(cr_http_is_hop_by_hop(&hp, "Host", 4));
    cr_http_parser_free(&hp);
}

static void
test_http_header_rules_drop_removed_and_replaced(void **state)
{
    struct cr_conf_header set[] = { { "X-Env", "prod" } };
    char *remove[] = { "X-Debug" };
    struct cr_conf_header_rules rules = { set, 1, remove, 1 };
    struct cr_buf b = { 0 };

    (void)state;
    assert_true(cr_http_rules_drop(&rules, "x-debug", 7));
    assert_true(cr_http_rules_drop(&rules, "X-ENV", 5));
    assert_false(cr_http_rules_drop(&rules, "X-Keep", 6));
    cr_http_rules_add(&rules, &b);
    assert_int_equal(b.len, strlen("X-Env: prod\r\n"));
    assert_memory_equal(b.p, "X-Env: prod\r\n", b.len);
    cr_buf_free(&b);
}

static void
test_http_keep_alive_follows_version_and_connection(void **state)
{
    static const struct {
        const char *in;
        int keep;
    } cases[] = {
        { "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1 },
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 0 },
        { "GET / HTTP/1.0\r\n\r\n", 0 },
        { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1 },
    };
    size_t i;

    (void)state;
    for (i = 0; i < CR_NELEM(cases); i++) {
        struct cr_http_parser hp;
        size_t used;

        cr_http_parser_init(&hp, 1, &limits, NULL, NULL, NULL);
        assert_int_equal(feed(&hp, cases[i].in, &used), CR_HTTP_EV_HEAD);
        assert_int_equal(cr_http_should_keep_alive(&hp), cases[i].keep);
        cr_http_parser_free(&hp);
    }
}

static void
test_http_upgrade_request_is_served_as_plain_http(void **state)
{
    struct cr_http_parser hp;
    const char *in = "GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
                     "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t first = strlen(in) - strlen("GET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    enum cr_http_event ev;
    size_t used, n;

    (void)state;
    cr_http_parser_init(&hp, 1, &limits, NULL, NULL, NULL);
    assert_int_equal(feed(&hp, in, &used), CR_HTTP_EV_HEAD);
    assert_int_equal(used, first);
    cr_http_parser_resume(&hp);
    n = cr_http_parser_execute(&hp, in + used, 0, &ev);
    assert_int_equal(ev, CR_HTTP_EV_DONE);
    assert_int_equal(n, 0);
    cr_http_parser_next(&hp);
    /* the pipelined request after it parses as HTTP, not as another protocol */
    n = cr_http_parser_execute(&hp, in + used, strlen(in) - used, &ev);
    assert_int_equal(ev, CR_HTTP_EV_HEAD);
    assert_int_equal(hp.method, HTTP_GET);
    assert_memory_equal(cr_http_str(&hp, hp.target), "/b", 2);
    cr_http_parser_free(&hp);
}

static void
test_http_header_kinds(void **state)
{
    static const struct {
        const char *name;
        enum cr_http_hdr kind;
    } cases[] = {
        { "Host", CR_HDR_HOST }, { "HOST", CR_HDR_HOST }, { "hosts", CR_HDR_OTHER },
        { "Content-Length", CR_HDR_CONTENT_LENGTH }, { "content-lengtH", CR_HDR_CONTENT_LENGTH },
        { "Content-Lengths", CR_HDR_OTHER }, { "Expect", CR_HDR_EXPECT }, { "VIA", CR_HDR_VIA },
        { "X-Forwarded-For", CR_HDR_X_FORWARDED_FOR },
        { "x-forwarded-proto", CR_HDR_X_FORWARDED_PROTO },
        { "X-Forwarded-Host", CR_HDR_X_FORWARDED_HOST },
        { "X-Forwarded-Hos", CR_HDR_OTHER }, { "X-Request-ID", CR_HDR_X_REQUEST_ID },
        { "Connection", CR_HDR_CONNECTION }, { "Connectio", CR_HDR_OTHER },
        { "Keep-Alive", CR_HDR_KEEP_ALIVE }, { "te", CR_HDR_TE }, { "TF", CR_HDR_OTHER },
        { "Trailer", CR_HDR_TRAILER }, { "Transfer-Encoding", CR_HDR_TRANSFER_ENCODING },
        { "Upgrade", CR_HDR_UPGRADE }, { "Proxy-Connection", CR_HDR_PROXY_CONNECTION },
        { "User-Agent", CR_HDR_OTHER }, { "Accept", CR_HDR_OTHER }, { "", CR_HDR_OTHER },
        /* only ASCII letters fold: '-' is not '\r' | 0x20 */
        { "Keep\ralive", CR_HDR_OTHER },
    };
    size_t i;

    (void)state;
    for (i = 0; i < CR_NELEM(cases); i++) {
        if (cr_http_hdr_kind(cases[i].name, strlen(cases[i].name)) != cases[i].kind) {
            fail_msg("%s: kind %d, want %d", cases[i].name,
                     (int)cr_http_hdr_kind(cases[i].name, strlen(cases[i].name)),
                     (int)cases[i].kind);
        }
    }
}

/* The per-field test by kind agrees with the test by name, field by field. */
static void
test_http_field_hop_agrees_with_name_test(void **state)
{
    static const struct {
        const char *head;
        int names;      /* CR_HTTP_F_CONN_NAMES expected */
    } cases[] = {
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\nX-A: 1\r\n"
          "Keep-Alive: 5\r\nTE: trailers\r\n\r\n", 0 },
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: x\r\n"
          "Proxy-Connection: close\r\nX-B: 2\r\n\r\n", 0 },
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nConnection: x-a , X-C\r\n"
          "X-A: 1\r\nX-B: 2\r\nx-c: 3\r\nVia: v\r\n\r\n", 1 },
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: host, via\r\nVia: v\r\n\r\n", 1 },
    };
    size_t i;
    unsigned j;

    (void)state;
    for (i = 0; i < CR_NELEM(cases); i++) {
        struct cr_http_parser hp;
        size_t used;

        cr_http_parser_init(&hp, 1, &limits, NULL, NULL, NULL);
        assert_int_equal(feed(&hp, cases[i].head, &used), CR_HTTP_EV_HEAD);
        assert_int_equal((hp.flags & CR_HTTP_F_CONN_NAMES) != 0, cases[i].names);
        for (j = 0; j < hp.nfields; j++) {
            const struct cr_http_field *f = &hp.fields[j];
            int by_name = cr_http_is_hop_by_hop(&hp, cr_http_str(&hp, f->name), f->name.len);

            if (cr_http_field_hop(&hp, f) != by_name) {
                fail_msg("case %zu, field %.*s: by kind %d, by name %d", i, (int)f->name.len,
                         cr_http_str(&hp, f->name), cr_http_field_hop(&hp, f), by_name);
            }
        }
        cr_http_parser_free(&hp);
    }
}

static void
test_http_connection_cannot_make_host_hop_by_hop(void **state)
{
    struct cr_http_parser hp;
    const char *in = "GET / HTTP/1.1\r\nHost: h\r\nConnection: Host, X-A\r\n\r\n";
    size_t used;

    (void)state;
    cr_http_parser_init(&hp, 1, &limits, NULL, NULL, NULL);
    assert_int_equal(feed(&hp, in, &used), CR_HTTP_EV_HEAD);
    assert_false(cr_http_is_hop_by_hop(&hp, "Host", 4));
    assert_true(cr_http_is_hop_by_hop(&hp, "X-A", 3));
    cr_http_parser_free(&hp);
}

static void
test_http_response_with_other_transfer_coding_is_refused(void **state)
{
    struct cr_http_parser hp;
    struct sink s = { .len = 0 };
    const char *in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nGZ";
    enum cr_http_event ev;

    (void)state;
    cr_http_parser_init(&hp, 0, &limits, sink_head, sink_body, &s);
    cr_http_parser_execute(&hp, in, strlen(in), &ev);
    assert_int_equal(ev, CR_HTTP_EV_ERROR);
    assert_int_equal(hp.err_status, 502);
    assert_int_equal(s.len, 0);
    cr_http_parser_free(&hp);
}

static void
test_http_normalize_path_table(void **state)
{
    static const struct {
        const char *in;
        int         merge;
        const char *out;        /* NULL: refused */
    } cases[] = {
        { "/", 1, "/" },
        { "/a/b", 1, "/a/b" },
        { "/%61dmin", 1, "/admin" },
        { "/%2e%2e/admin", 1, "/admin" },
        { "/x/../admin", 1, "/admin" },
        { "/./admin", 1, "/admin" },
        { "//admin", 1, "/admin" },
        { "//admin", 0, "//admin" },
        { "/a///b//", 1, "/a/b/" },
        { "/a/./b/../c", 1, "/a/c" },
        { "/../a", 1, "/a" },
        { "/..", 1, "/" },
        { "/a/..", 1, "/" },
        { "/a/.", 1, "/a/" },
        { "/a/../", 1, "/" },
        { "/a/b/../../../c", 1, "/c" },
        { "/a%2fb", 1, "/a%2Fb" },          /* reserved: kept, hex upper-cased */
        { "/a%2Fb/..", 1, "/" },            /* %2F is not a separator */
        { "/%7euser", 1, "/~user" },
        { "/caf%C3%A9", 1, "/caf%C3%A9" },
        { "/a%20b", 1, "/a%20b" },
        { "/...", 1, "/..." },
        { "/a/.../b", 1, "/a/.../b" },
        { "/%", 1, NULL },
        { "/%4", 1, NULL },
        { "/%zz", 1, NULL },
        { "/a%00b", 1, NULL },
    };
    size_t i;

    (void)state;
    for (i = 0; i < CR_NELEM(cases); i++) {
        char out[64];
        size_t n = cr_http_normalize_path(cases[i].in, strlen(cases[i].in), out,
                                          cases[i].merge);

        if (cases[i].out == NULL) {
            if (n != (size_t)-1) {
                fail_msg("%s: want refused, got %.*s", cases[i].in, (int)n, out);
            }
            continue;
        }
        if (n == (size_t)-1 || n != strlen(cases[i].out)
            || memcmp(out, cases[i].out, n) != 0)
        {
            fail_msg("%s (merge %d): want %s, got %.*s", cases[i].in, cases[i].merge,
                     cases[i].out, n == (size_t)-1 ? 7 : (int)n,
                     n == (size_t)-1 ? "refused" : out);
        }
    }
}

/* The printf-free formatters agree with printf and inet_ntop. */
static void
test_http_number_and_address_formatting(void **state)
{
    static const uint64_t nums[] = { 0, 1, 9, 10, 15, 16, 255, 4096, 1000000007ULL,
                                     UINT64_MAX };
    static const char *const addrs[] = { "0.0.0.0", "127.0.0.1", "10.20.100.255",
                                         "255.255.255.255", "1.10.100.199" };
    char want[64], got[16];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        struct cr_buf b = { 0 };

        cr_buf_add_u64(&b, nums[i]);
        cr_buf_add(&b, "/", 1);
        cr_buf_add_hex(&b, nums[i]);
        snprintf(want, sizeof(want), "%llu/%llx", (unsigned long long)nums[i],
                 (unsigned long long)nums[i]);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.p, want, b.len);
        cr_buf_free(&b);
    }
    for (i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        struct in_addr a;

        assert_int_equal(inet_pton(AF_INET, addrs[i], &a), 1);
        memset(got, 'x', sizeof(got));
        cr_http_format_ipv4(&a, got);
        assert_string_equal(got, addrs[i]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_request_head_pauses_before_body),
        cmocka_unit_test(test_http_pipelined_requests_stop_at_each_end),
        cmocka_unit_test(test_http_head_split_across_reads_is_reassembled),
        cmocka_unit_test(test_http_chunked_body_is_decoded),
        cmocka_unit_test(test_http_rejects_malformed_requests),
        cmocka_unit_test(test_http_header_bytes_over_limit_is_431),
        cmocka_unit_test(test_http_chunked_body_over_limit_is_413),
        cmocka_unit_test(test_http_response_interim_then_final),
        cmocka_unit_test(test_http_response_to_head_has_no_body),
        cmocka_unit_test(test_http_close_delimited_response_ends_at_eof),
        cmocka_unit_test(test_http_truncated_response_is_an_error),
        cmocka_unit_test(test_http_hop_by_hop_includes_connection_tokens),
        cmocka_unit_test(test_http_header_rules_drop_removed_and_replaced),
        cmocka_unit_test(test_http_keep_alive_follows_version_and_connection),
        cmocka_unit_test(test_http_upgrade_request_is_served_as_plain_http),
        cmocka_unit_test(test_http_connection_cannot_make_host_hop_by_hop),
        cmocka_unit_test(test_http_header_kinds),
        cmocka_unit_test(test_http_field_hop_agrees_with_name_test),
        cmocka_unit_test(test_http_response_with_other_transfer_coding_is_refused),
        cmocka_unit_test(test_http_normalize_path_table),
        cmocka_unit_test(test_http_number_and_address_formatting),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
