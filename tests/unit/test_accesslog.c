/*
 * test_accesslog.c - access log lines (accesslog.c): the fields of both
 * formats, escaping of what a client sent, request ids, and the line of a
 * request refused before its head was whole. Lines are written unbuffered
 * to a scratch file and read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <event2/event.h>

#include "conf/conf.h"
#include "gateway/accesslog.h"
#include "gateway/http.h"

static const struct cr_http_limits limits = {
    .max_head_bytes = 4096,
    .max_headers = 32,
    .max_uri_bytes = 1024,
    .max_body_bytes = 0,
};

struct fixture {
    char                path[64];
    struct cr_conf      conf;
    struct event_base  *base;
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int fd;

    assert_non_null(f);
    strcpy(f->path, "/tmp/corral-test-accesslog.XXXXXX");
    fd = mkstemp(f->path);
    assert_true(fd != -1);
    close(fd);
    f->conf.access_log.path = f->path;
    f->base = event_base_new();
    assert_non_null(f->base);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    cr_access_log_close();
    unlink(f->path);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void
open_log(struct fixture *f, enum cr_log_format format)
{
    char err[256];

    f->conf.access_log.format = format;
    f->conf.access_log.buffer = 0;      /* every line written at once */
    assert_int_equal(cr_access_log_open(&f->conf, f->base, err, sizeof(err)), CR_OK);
}

/* The file's whole text (NUL-terminated, to be freed). */
static char *
slurp(const struct fixture *f)
{
    FILE *fp = fopen(f->path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    assert_non_null(fp);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* Close the log (flushing it) and return what it holds. */
static char *
written(const struct fixture *f)
{
    cr_access_log_close();
    return slurp(f);
}

/* Parse <in> as far as it goes into <hp> (a request). */
static void
parse(struct cr_http_parser *hp, const char *in)
{
    enum cr_http_event ev;

    cr_http_parser_init(hp, 1, &limits, NULL, NULL, NULL);
    cr_http_parser_execute(hp, in, strlen(in), &ev);
}

static void
log_one(const struct cr_http_parser *hp, struct cr_access_req *r, int status, uint64_t us)
{
    struct cr_access_entry e = { "192.0.2.7", hp, status, us, r };

    cr_access_log_request(&e);
}

static void
test_accesslog_json_fields_and_escaping(void **state)
{
    struct fixture *f = *state;
    struct cr_http_parser hp;
    struct cr_access_req r;
    char *text, *want;

    open_log(f, CR_LOG_FORMAT_JSON);
    parse(&hp, "POST /a?b=\"c\" HTTP/1.1\r\nHost: h\r\nUser-Agent: ua \"q\" \\ \xe9\r\n"
               "Referer: http://r/\r\nX-Request-Id: id-1\r\n\r\n");
    assert_true(hp.head_done);
    cr_access_req_begin(&r, &hp);
    assert_string_equal(r.id, "id-1");
    assert_false(r.id_generated);
    r.route = "app";
    r.bytes = 1234;
    log_one(&hp, &r, 201, 2600);
    text = written(f);
    /* the time first; then every field in order */
    assert_memory_equal(text, "{\"time\":\"", 9);
    want = strstr(text, "\",\"client\":");
    assert_non_null(want);
    assert_string_equal(want,
        "\",\"client\":\"192.0.2.7\",\"method\":\"POST\",\"path\":\"/a?b=\\u0022c\\u0022\","
        "\"protocol\":\"HTTP/1.1\",\"status\":201,\"bytes\":1234,\"request_time\":0.003,"
        "\"upstream\":null,\"upstream_time\":null,\"request_id\":\"id-1\",\"route\":\"app\","
        "\"referer\":\"http://r/\",\"user_agent\":\"ua \\u0022q\\u0022 \\u005c \\u00e9\"}\n");
    free(text);
    cr_http_parser_free(&hp);
}

static void
test_accesslog_combined_with_upstream(void **state)
{
    struct fixture *f = *state;
    struct cr_http_parser hp;
    struct cr_access_req r;
    static const char want[] = "] \"GET /x HTTP/1.0\" 502 0 \"-\" \"a\\x22b\" rt=0.001 "
                               "ua=\"127.0.0.1:9\" ut=0.002 id=\"";
    char *text, *tail;

    open_log(f, CR_LOG_FORMAT_COMBINED);
    parse(&hp, "GET /x HTTP/1.0\r\nUser-Agent: a\"b\r\n\r\n");
    assert_true(hp.head_done);
    cr_access_req_begin(&r, &hp);
    assert_true(r.id_generated);
    cr_access_req_upstream(&r, "127.0.0.1:9");
    cr_access_req_upstream_done(&r);
    assert_true(r.upstream_start_us != 0 && r.upstream_end_us >= r.upstream_start_us);
    r.upstream_start_us = 1000;         /* a known upstream time: 2 ms */
    r.upstream_end_us = 3000;
    r.route = "up";
    log_one(&hp, &r, 502, 1000);
    text = written(f);
    assert_memory_equal(text, "192.0.2.7 - - [", 15);
    tail = strstr(text, "] ");
    assert_non_null(tail);
    /* the generated id is 32 hex digits; cut it out to compare the rest */
    assert_memory_equal(tail, want, sizeof(want) - 1);
    assert_int_equal(strspn(tail + sizeof(want) - 1, "0123456789abcdef"), 32);
    assert_string_equal(tail + sizeof(want) - 1 + 32, "\" route=\"up\"\n");
    free(text);
    cr_http_parser_free(&hp);
}

/* A head refused half-way: no method, path or protocol, and no abort. */
static void
test_accesslog_refused_head_has_no_request_line(void **state)
{
    struct fixture *f = *state;
    struct cr_http_parser hp;
    struct cr_access_req r;
    static const char refused[] = "\"method\":null,\"path\":null,\"protocol\":null,"
                                  "\"status\":400,\"bytes\":50,";
    char *text, *json;

    open_log(f, CR_LOG_FORMAT_JSON);
    parse(&hp, "GET /half HTTP/1.1\r\nHost: h\r\nBad Name: 1\r\n\r\n");
    assert_false(hp.head_done);
    assert_int_equal(hp.err_status, 400);
    cr_access_req_begin(&r, &hp);
    r.bytes = 50;
    log_one(&hp, &r, 400, 0);
    text = written(f);
    json = strstr(text, "\"method\"");
    assert_non_null(json);
    assert_memory_equal(json, refused, sizeof(refused) - 1);
    free(text);
    cr_http_parser_free(&hp);

    /* combined: "-" for the request line; garbage never parsed at all */
    open_log(f, CR_LOG_FORMAT_COMBINED);
    parse(&hp, "\x01\x02 nonsense\r\n\r\n");
    assert_false(hp.head_done);
    cr_access_req_begin(&r, &hp);
    log_one(&hp, &r, 400, 0);
    text = written(f);
    assert_non_null(strstr(text, "] \"-\" 400 0 \"-\" \"-\" rt=0.000 ua=\"-\" ut=- id=\""));
    free(text);
    cr_http_parser_free(&hp);
}

/* Generated ids differ; a client's id is kept, cut to CR_ACCESS_ID_MAX. */
static void
test_accesslog_request_ids(void **state)
{
    struct fixture *f = *state;
    struct cr_http_parser hp;
    struct cr_access_req a, b;
    char in[256];

    open_log(f, CR_LOG_FORMAT_JSON);
    parse(&hp, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_access_req_begin(&a, &hp);
    cr_access_req_begin(&b, &hp);
    assert_int_equal(strlen(a.id), 32);
    assert_string_not_equal(a.id, b.id);
    cr_http_parser_free(&hp);

    snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: %0100d\r\n\r\n", 7);
    parse(&hp, in);
    cr_access_req_begin(&a, &hp);
    assert_false(a.id_generated);
    assert_int_equal(strlen(a.id), CR_ACCESS_ID_MAX);
    assert_memory_equal(a.id, "0000", 4);
    cr_http_parser_free(&hp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accesslog_json_fields_and_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accesslog_combined_with_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accesslog_refused_head_has_no_request_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_accesslog_request_ids, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
