/*
 * test_conf.c - unit tests of conf/: the scalar parsers, a config using
 * every feature, the shipped example, and one fixture per kind of error.
 *
 * Run from the repository root: fixtures are opened by relative path, and
 * that path is what the expected messages name. Each bad fixture
 * tests/fixtures/conf/bad-<kind>.yaml has a bad-<kind>.expect holding the
 * exact lines cr_conf_load() must report, in order.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conf/conf.h"

#define FIXTURES "tests/fixtures/conf/"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static struct cr_conf *
load_ok(const char *path)
{
    struct cr_conf_errs  errs = { NULL, 0 };
    struct cr_conf      *conf;
    size_t               i;

    conf = cr_conf_load(path, &errs);
    for (i = 0; i < errs.n; i++) {
        print_error("unexpected: %s\n", errs.msgs[i]);
    }
    assert_int_equal(errs.n, 0);
    assert_non_null(conf);
    cr_conf_errs_free(&errs);
    return conf;
}

static struct cr_conf *
load_str_ok(const char *yaml)
{
    struct cr_conf_errs  errs = { NULL, 0 };
    struct cr_conf      *conf;
    size_t               i;

    conf = cr_conf_load_buf("inline.yaml", yaml, strlen(yaml), &errs);
    for (i = 0; i < errs.n; i++) {
        print_error("unexpected: %s\n", errs.msgs[i]);
    }
    assert_int_equal(errs.n, 0);
    assert_non_null(conf);
    cr_conf_errs_free(&errs);
    return conf;
}

/* Load <yaml>, expect failure with exactly one message, equal to <want>. */
static void
expect_one_error(const char *yaml, const char *want)
{
    struct cr_conf_errs  errs = { NULL, 0 };
    struct cr_conf      *conf;
    size_t               i;

    conf = cr_conf_load_buf("inline.yaml", yaml, strlen(yaml), &errs);
    assert_null(conf);
    if (errs.n != 1 || strcmp(errs.msgs[0], want) != 0) {
        for (i = 0; i < errs.n; i++) {
            print_error("got: %s\n", errs.msgs[i]);
        }
    }
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msgs[0], want);
    cr_conf_errs_free(&errs);
}

static unsigned
port_of(const struct cr_conf_addr *a)
{
    if (a->ss.ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *) &a->ss)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *) &a->ss)->sin_port);
}

static void
assert_ipv4(const struct cr_conf_addr *a, const char *ip, unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *) &a->ss;
    char                      buf[INET_ADDRSTRLEN];

    assert_int_equal(a->ss.ss_family, AF_INET);
    assert_int_equal(a->len, sizeof(struct sockaddr_in));
    assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
    assert_string_equal(buf, ip);
    assert_int_equal(port_of(a), port);
}

static void
assert_ipv6(const struct cr_conf_addr *a, const char *ip, unsigned port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) &a->ss;
    char                       buf[INET6_ADDRSTRLEN];

    assert_int_equal(a->ss.ss_family, AF_INET6);
    assert_int_equal(a->len, sizeof(struct sockaddr_in6));
    assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
    assert_string_equal(buf, ip);
    assert_int_equal(port_of(a), port);
}

static int
regex_matches(const struct cr_conf_route *r, const char *path)
{
    return regexec(&r->regex, path, 0, NULL, 0) == 0;
}

/* ---------------------------------------------------------------------- */
/* Scalar parsers                                                          */

static void
test_conf_parse_duration_table(void **state)
{
    static const struct {
        const char *in;
        int         rc;
        uint64_t    ms;
    } cases[] = {
        { "0",      CR_OK,  0 },
        { "5",      CR_OK,  5000 },
        { "5s",     CR_OK,  5000 },
        { "250ms",  CR_OK,  250 },
        { "2m",     CR_OK,  120000 },
        { "1h",     CR_OK,  3600000 },
        { "007s",   CR_OK,  7000 },
        { "18446744073709551615ms", CR_OK, UINT64_MAX },
        { "18446744073709551616ms", CR_ERR, 0 },    /* UINT64_MAX + 1 */
        { "18446744073709552s",     CR_ERR, 0 },    /* fits, but not in ms */
        { "5124095576030432h",      CR_ERR, 0 },
        { "99999999999999999999",   CR_ERR, 0 },
        { "",       CR_ERR, 0 },
        { "s",      CR_ERR, 0 },
        { "ms",     CR_ERR, 0 },
        { "-1s",    CR_ERR, 0 },
        { "+1s",    CR_ERR, 0 },
        { " 1s",    CR_ERR, 0 },
        { "1s ",    CR_ERR, 0 },
        { "1 s",    CR_ERR, 0 },
        { "1.5s",   CR_ERR, 0 },
        { "1S",     CR_ERR, 0 },
        { "1d",     CR_ERR, 0 },
        { "1sec",   CR_ERR, 0 },
        { "1m30s",  CR_ERR, 0 },
        { "five",   CR_ERR, 0 },
        { "0x10",   CR_ERR, 0 },
    };
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t ms = 12345;
        int      rc = cr_conf_parse_duration(cases[i].in, &ms);

        if (rc != cases[i].rc) {
            print_error("duration \"%s\"\n", cases[i].in);
        }
        assert_int_equal(rc, cases[i].rc);
        if (rc == CR_OK) {
            assert_true(ms == cases[i].ms);
        } else {
            assert_true(ms == 12345);       /* untouched on error */
        }
    }
    assert_int_equal(cr_conf_parse_duration(NULL, &(uint64_t) { 0 }), CR_ERR);
}

static void
test_conf_parse_size_table(void **state)
{
    static const struct {
        const char *in;
        int         rc;
        uint64_t    bytes;
    } cases[] = {
        { "0",      CR_OK,  0 },
        { "512",    CR_OK,  512 },
        { "16k",    CR_OK,  16384 },
        { "16K",    CR_OK,  16384 },
        { "10m",    CR_OK,  10485760 },
        { "10M",    CR_OK,  10485760 },
        { "1g",     CR_OK,  1073741824 },
        { "2G",     CR_OK,  2147483648ULL },
        { "17179869183g", CR_OK, 17179869183ULL << 30 },
        { "18446744073709551615", CR_OK, UINT64_MAX },
        { "18446744073709551616", CR_ERR, 0 },
        { "17179869184g", CR_ERR, 0 },      /* 2^34 GiB = 2^64 bytes */
        { "18014398509481984k", CR_ERR, 0 },
        { "",       CR_ERR, 0 },
        { "k",      CR_ERR, 0 },
        { "-1",     CR_ERR, 0 },
        { "+1",     CR_ERR, 0 },
        { "1.5m",   CR_ERR, 0 },
        { "16kb",   CR_ERR, 0 },
        { "16KiB",  CR_ERR, 0 },
        { "16 k",   CR_ERR, 0 },
        { "1t",     CR_ERR, 0 },
        { "lots",   CR_ERR, 0 },
        { "0x100",  CR_ERR, 0 },
    };
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t bytes = 12345;
        int      rc = cr_conf_parse_size(cases[i].in, &bytes);

        if (rc != cases[i].rc) {
            print_error("size \"%s\"\n", cases[i].in);
        }
        assert_int_equal(rc, cases[i].rc);
        if (rc == CR_OK) {
            assert_true(bytes == cases[i].bytes);
        } else {
            assert_true(bytes == 12345);
        }
    }
    assert_int_equal(cr_conf_parse_size(NULL, &(uint64_t) { 0 }), CR_ERR);
}

static void
test_conf_parse_addr_table(void **state)
{
    static const struct {
        const char *in;
        int         family;     /* 0: must fail */
        const char *ip;
        unsigned    port;
    } cases[] = {
        { "127.0.0.1:8080",     AF_INET,  "127.0.0.1", 8080 },
        { "0.0.0.0:80",         AF_INET,  "0.0.0.0", 80 },
        { "localhost:8080",     AF_INET,  "127.0.0.1", 8080 },
        { "10.1.2.3:65535",     AF_INET,  "10.1.2.3", 65535 },
        { "[::1]:8080",         AF_INET6, "::1", 8080 },
        { "[::]:443",           AF_INET6, "::", 443 },
        { "[2001:db8::7]:1",    AF_INET6, "2001:db8::7", 1 },
        { "127.0.0.1:0",        0, NULL, 0 },
        { "127.0.0.1:65536",    0, NULL, 0 },
        { "127.0.0.1:-1",       0, NULL, 0 },
        { "127.0.0.1:+80",      0, NULL, 0 },
        { "127.0.0.1:",         0, NULL, 0 },
        { "127.0.0.1",          0, NULL, 0 },
        { ":8080",              0, NULL, 0 },
        { "::1:8080",           0, NULL, 0 },
        { "[::1]",              0, NULL, 0 },
        { "[::1]8080",          0, NULL, 0 },
        { "[]:80",              0, NULL, 0 },
        { "[127.0.0.1]:80",     0, NULL, 0 },
        { "256.0.0.1:80",       0, NULL, 0 },
        { "127.1:80",           0, NULL, 0 },
        { "example.com:80",     0, NULL, 0 },
        { "localhost",          0, NULL, 0 },
        { "",                   0, NULL, 0 },
    };
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cr_conf_addr a;
        int                 rc = cr_conf_parse_addr(cases[i].in, &a);

        if ((rc == CR_OK) != (cases[i].family != 0)) {
            print_error("addr \"%s\"\n", cases[i].in);
        }
        if (cases[i].family == 0) {
            assert_int_equal(rc, CR_ERR);
            assert_null(a.text);
            continue;
        }
        assert_int_equal(rc, CR_OK);
        assert_string_equal(a.text, cases[i].in);
        if (cases[i].family == AF_INET) {
            assert_ipv4(&a, cases[i].ip, cases[i].port);
        } else {
            assert_ipv6(&a, cases[i].ip, cases[i].port);
        }
        free(a.text);
    }
}

static void
test_conf_method_bits(void **state)
{
    (void) state;
    assert_int_equal(cr_conf_method_bit("GET", 3), CR_METHOD_GET);
    assert_int_equal(cr_conf_method_bit("HEAD", 4), CR_METHOD_HEAD);
    assert_int_equal(cr_conf_method_bit("POST", 4), CR_METHOD_POST);
    assert_int_equal(cr_conf_method_bit("PUT", 3), CR_METHOD_PUT);
    assert_int_equal(cr_conf_method_bit("DELETE", 6), CR_METHOD_DELETE);
    assert_int_equal(cr_conf_method_bit("PATCH", 5), CR_METHOD_PATCH);
    assert_int_equal(cr_conf_method_bit("OPTIONS", 7), CR_METHOD_OPTIONS);
    assert_int_equal(cr_conf_method_bit("TRACE", 5), CR_METHOD_TRACE);
    assert_int_equal(cr_conf_method_bit("CONNECT", 7), CR_METHOD_CONNECT);
    /* case-sensitive (RFC 9110 §9.1), and the length is what counts */
    assert_int_equal(cr_conf_method_bit("get", 3), CR_METHOD_OTHER);
    assert_int_equal(cr_conf_method_bit("PROPFIND", 8), CR_METHOD_OTHER);
    assert_int_equal(cr_conf_method_bit("GETX", 3), CR_METHOD_GET);
    assert_int_equal(cr_conf_method_bit("GET", 2), CR_METHOD_OTHER);
    assert_int_equal(cr_conf_method_bit("", 0), CR_METHOD_OTHER);
}

/* ---------------------------------------------------------------------- */
/* Good configs                                                            */

static void
test_conf_full_fixture_parses_every_feature(void **state)
{
    struct cr_conf                *c;
    const struct cr_conf_upstream *u;
    const struct cr_conf_route    *r;

    (void) state;
    c = load_ok(FIXTURES "good-full.yaml");

    assert_string_equal(c->path, FIXTURES "good-full.yaml");
    assert_string_equal(c->name, "full-test");
    assert_int_equal(c->workers, 4);
    assert_true(c->drain_timeout_ms == 1500);
    assert_true(c->hash != 0);

    /* listen: map, scalar IPv6, localhost */
    assert_int_equal(c->nlisten, 3);
    assert_ipv4(&c->listen[0].addr, "127.0.0.1", 8080);
    assert_string_equal(c->listen[0].addr.text, "127.0.0.1:8080");
    assert_int_equal(c->listen[0].backlog, 128);
    assert_int_equal(c->listen[0].mark.line, 7);
    assert_int_equal(c->listen[0].mark.col, 5);
    assert_ipv6(&c->listen[1].addr, "::1", 8081);
    assert_int_equal(c->listen[1].backlog, CR_CONF_DEFAULT_BACKLOG);
    assert_ipv4(&c->listen[2].addr, "127.0.0.1", 8082);
    assert_string_equal(c->listen[2].addr.text, "localhost:8082");

    /* limits */
    assert_true(c->limits.max_header_bytes == 32 * 1024);
    assert_int_equal(c->limits.max_headers, 50);
    assert_true(c->limits.max_uri_bytes == 4 * 1024);
    assert_true(c->limits.max_body_bytes == 0);
    assert_int_equal(c->limits.max_connections, 500);
    assert_true(c->limits.header_timeout_ms == 5000);
    assert_true(c->limits.idle_timeout_ms == 120000);
    assert_true(c->limits.send_timeout_ms == 3600000);

    /* upstreams, in file order */
    assert_int_equal(c->nupstreams, 2);
    u = &c->upstreams[0];
    assert_string_equal(u->name, "api");
    assert_int_equal(u->balance, CR_BALANCE_LEAST_CONN);
    assert_int_equal(u->keepalive, 0);
    assert_true(u->connect_timeout_ms == 250);
    assert_true(u->read_timeout_ms == 30000);
    assert_int_equal(u->retries, 2);
    assert_int_equal(u->max_fails, 3);
    assert_true(u->fail_timeout_ms == 20000);
    assert_int_equal(u->nservers, 2);
    assert_ipv4(&u->servers[0].addr, "127.0.0.1", 9001);
    assert_int_equal(u->servers[0].weight, 2);
    assert_int_equal(u->servers[0].mark.line, 30);
    assert_int_equal(u->servers[0].mark.col, 9);
    assert_ipv4(&u->servers[1].addr, "127.0.0.1", 9002);
    assert_int_equal(u->servers[1].weight, 1);

    u = &c->upstreams[1];       /* all defaults */
    assert_string_equal(u->name, "static");
    assert_int_equal(u->balance, CR_BALANCE_ROUND_ROBIN);
    assert_int_equal(u->keepalive, CR_CONF_DEFAULT_KEEPALIVE);
    assert_true(u->connect_timeout_ms == CR_CONF_DEFAULT_CONNECT_TIMEOUT);
    assert_true(u->read_timeout_ms == CR_CONF_DEFAULT_READ_TIMEOUT);
    assert_int_equal(u->retries, CR_CONF_DEFAULT_RETRIES);
    assert_int_equal(u->max_fails, CR_CONF_DEFAULT_MAX_FAILS);
    assert_true(u->fail_timeout_ms == CR_CONF_DEFAULT_FAIL_TIMEOUT);
    assert_int_equal(u->nservers, 1);
    assert_ipv6(&u->servers[0].addr, "::1", 9003);

    assert_int_equal(c->nroutes, 6);

    /* route 1: everything a proxied route can have */
    r = &c->routes[0];
    assert_string_equal(r->name, "api");
    assert_int_equal(r->mark.line, 35);
    assert_int_equal(r->mark.col, 5);
    assert_string_equal(r->host, "api.example.com");
    assert_null(r->path);
    assert_string_equal(r->path_prefix, "/v1/");
    assert_null(r->path_regex);
    assert_int_equal(r->methods, CR_METHOD_GET | CR_METHOD_POST | CR_METHOD_OTHER);
    assert_int_equal(r->action, CR_ROUTE_UPSTREAM);
    assert_string_equal(r->upstream_name, "api");
    assert_int_equal(r->upstream, 0);
    assert_string_equal(r->strip_prefix, "/v1");
    assert_int_equal(r->request_headers.nset, 2);
    assert_string_equal(r->request_headers.set[0].name, "X-Env");
    assert_string_equal(r->request_headers.set[0].value, "prod");
    assert_string_equal(r->request_headers.set[1].name, "X-Empty");
    assert_string_equal(r->request_headers.set[1].value, "");
    assert_int_equal(r->request_headers.nremove, 2);
    assert_string_equal(r->request_headers.remove[0], "X-Debug");
    assert_string_equal(r->request_headers.remove[1], "Cookie");
    assert_int_equal(r->response_headers.nset, 1);
    assert_string_equal(r->response_headers.set[0].name, "X-Served-By");
    assert_string_equal(r->response_headers.set[0].value, "corral");
    assert_int_equal(r->response_headers.nremove, 1);
    assert_string_equal(r->response_headers.remove[0], "Server");

    /* route 2: unnamed, wildcard host, regex */
    r = &c->routes[1];
    assert_string_equal(r->name, "route-2");
    assert_int_equal(r->mark.line, 48);
    assert_int_equal(r->mark.col, 5);
    assert_string_equal(r->host, "*.static.example.com");
    assert_string_equal(r->path_regex, "^/items/[0-9]+$");
    assert_true(regex_matches(r, "/items/42"));
    assert_false(regex_matches(r, "/items/42/x"));
    assert_false(regex_matches(r, "/items/abc"));
    assert_int_equal(r->methods, CR_METHOD_HEAD);
    assert_int_equal(r->action, CR_ROUTE_UPSTREAM);
    assert_int_equal(r->upstream, 1);
    assert_null(r->strip_prefix);
    assert_int_equal(r->request_headers.nset, 0);
    assert_int_equal(r->response_headers.nremove, 0);

    /* route 3: respond with defaults for status */
    r = &c->routes[2];
    assert_string_equal(r->name, "ping");
    assert_string_equal(r->path, "/ping");
    assert_int_equal(r->methods, 0);
    assert_int_equal(r->action, CR_ROUTE_RESPOND);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 5);
    assert_memory_equal(r->body, "pong\n", 5);
    assert_int_equal(r->nrespond_headers, 1);
    assert_string_equal(r->respond_headers[0].name, "Content-Type");
    assert_string_equal(r->respond_headers[0].value, "text/plain");

    /* route 4: respond without a body, no match at all */
    r = &c->routes[3];
    assert_int_equal(r->action, CR_ROUTE_RESPOND);
    assert_int_equal(r->status, 204);
    assert_null(r->body);
    assert_int_equal(r->body_len, 0);
    assert_null(r->host);
    assert_null(r->path_prefix);

    /* routes 5 and 6: redirects, default and explicit status */
    r = &c->routes[4];
    assert_int_equal(r->action, CR_ROUTE_REDIRECT);
    assert_int_equal(r->status, 302);
    assert_string_equal(r->location, "https://example.com/new/");
    r = &c->routes[5];
    assert_int_equal(r->action, CR_ROUTE_REDIRECT);
    assert_int_equal(r->status, 308);
    assert_string_equal(r->location, "/elsewhere");

    /* identity and access log */
    assert_string_equal(c->identity.user, "root");
    assert_string_equal(c->identity.group, "root");
    assert_int_equal(c->identity.uid, 0);
    assert_int_equal(c->identity.gid, 0);
    assert_string_equal(c->access_log.path, "/var/log/corral/access.log");
    assert_int_equal(c->access_log.format, CR_LOG_FORMAT_JSON);
    assert_true(c->access_log.buffer == 0);
    assert_true(c->access_log.flush_ms == 250);

    cr_conf_free(c);
}

static void
test_conf_minimal_config_gets_defaults(void **state)
{
    struct cr_conf *c;

    (void) state;
    c = load_str_ok("listen: [127.0.0.1:8080]\n");
    assert_string_equal(c->path, "inline.yaml");
    assert_string_equal(c->name, CR_CONF_DEFAULT_NAME);
    assert_int_equal(c->workers, 0);
    assert_true(c->drain_timeout_ms == CR_CONF_DEFAULT_DRAIN_TIMEOUT);
    assert_int_equal(c->nlisten, 1);
    assert_int_equal(c->listen[0].backlog, CR_CONF_DEFAULT_BACKLOG);
    assert_int_equal(c->listen[0].mark.line, 1);
    assert_int_equal(c->listen[0].mark.col, 10);
    assert_true(c->limits.max_header_bytes == CR_CONF_DEFAULT_MAX_HEADER_BYTES);
    assert_int_equal(c->limits.max_headers, CR_CONF_DEFAULT_MAX_HEADERS);
    assert_true(c->limits.max_uri_bytes == CR_CONF_DEFAULT_MAX_URI_BYTES);
    assert_true(c->limits.max_body_bytes == CR_CONF_DEFAULT_MAX_BODY_BYTES);
    assert_int_equal(c->limits.max_connections, CR_CONF_DEFAULT_MAX_CONNECTIONS);
    assert_true(c->limits.header_timeout_ms == CR_CONF_DEFAULT_HEADER_TIMEOUT);
    assert_true(c->limits.idle_timeout_ms == CR_CONF_DEFAULT_IDLE_TIMEOUT);
    assert_true(c->limits.send_timeout_ms == CR_CONF_DEFAULT_SEND_TIMEOUT);
    assert_int_equal(c->nupstreams, 0);
    assert_int_equal(c->nroutes, 0);
    cr_conf_free(c);
}

static void
test_conf_workers_auto_and_number(void **state)
{
    struct cr_conf *c;

    (void) state;
    c = load_str_ok("workers: auto\nlisten: [127.0.0.1:8080]\n");
    assert_int_equal(c->workers, 0);
    cr_conf_free(c);
    c = load_str_ok("workers: \"256\"\nlisten: [127.0.0.1:8080]\n");
    assert_int_equal(c->workers, 256);
    cr_conf_free(c);
}

/* The default max_uri_bytes (8k) is lowered to a smaller max_header_bytes. */
static void
test_conf_uri_limit_follows_header_limit(void **state)
{
    struct cr_conf *c;

    (void) state;
    c = load_str_ok("listen: [127.0.0.1:8080]\nlimits: { max_header_bytes: 2k }\n");
    assert_true(c->limits.max_header_bytes == 2048);
    assert_true(c->limits.max_uri_bytes == 2048);
    cr_conf_free(c);
}

/* Two configs differing by one byte hash differently; equal ones equally. */
static void
test_conf_hash_follows_bytes(void **state)
{
    struct cr_conf *a, *b, *c;

    (void) state;
    a = load_str_ok("listen: [127.0.0.1:8080]\n");
    b = load_str_ok("listen: [127.0.0.1:8081]\n");
    c = load_str_ok("listen: [127.0.0.1:8080]\n");
    assert_true(a->hash != b->hash);
    assert_true(a->hash == c->hash);
    cr_conf_free(a);
    cr_conf_free(b);
    cr_conf_free(c);
}

/* The shipped example loads, and its catch-all "/" goes to demo:9001. */
static void
test_conf_example_config_routes_slash_to_demo(void **state)
{
    struct cr_conf                *c;
    const struct cr_conf_route    *r = NULL;
    const struct cr_conf_upstream *u;
    size_t                         i;

    (void) state;
    c = load_ok("conf/corral.yaml");
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->nlisten, 1);
    assert_ipv4(&c->listen[0].addr, "127.0.0.1", 8080);

    for (i = 0; i < c->nroutes; i++) {
        if (c->routes[i].path_prefix != NULL && strcmp(c->routes[i].path_prefix, "/") == 0
            && c->routes[i].host == NULL)
        {
            r = &c->routes[i];
            break;
        }
    }
    assert_non_null(r);
    assert_int_equal(r->action, CR_ROUTE_UPSTREAM);
    assert_int_equal(r->methods, 0);
    assert_null(r->path_regex);
    assert_null(r->strip_prefix);
    assert_string_equal(r->upstream_name, "demo");
    assert_true(r->upstream < c->nupstreams);
    u = &c->upstreams[r->upstream];
    assert_string_equal(u->name, "demo");
    assert_int_equal(u->nservers, 1);
    assert_ipv4(&u->servers[0].addr, "127.0.0.1", 9001);

    /* a catch-all shadows what follows it: it must be the last route */
    assert_true(r == &c->routes[c->nroutes - 1]);
    cr_conf_free(c);
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */

static void
test_conf_missing_file_reports_strerror(void **state)
{
    struct cr_conf_errs errs = { NULL, 0 };

    (void) state;
    assert_null(cr_conf_load(FIXTURES "does-not-exist.yaml", &errs));
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msgs[0],
                        FIXTURES "does-not-exist.yaml: No such file or directory");
    cr_conf_errs_free(&errs);
    assert_int_equal(errs.n, 0);
    assert_null(errs.msgs);
}

/* Errors are appended to what <errs> holds, and <errs> may be NULL. */
static void
test_conf_errors_append_and_may_be_discarded(void **state)
{
    struct cr_conf_errs errs = { NULL, 0 };
    const char         *bad = "listen: []\n";

    (void) state;
    assert_null(cr_conf_load_buf("a.yaml", bad, strlen(bad), &errs));
    assert_null(cr_conf_load_buf("b.yaml", bad, strlen(bad), &errs));
    assert_int_equal(errs.n, 2);
    assert_string_equal(errs.msgs[0], "a.yaml:1:9: \"listen\" must not be empty");
    assert_string_equal(errs.msgs[1], "b.yaml:1:9: \"listen\" must not be empty");
    cr_conf_errs_free(&errs);

    assert_null(cr_conf_load_buf("c.yaml", bad, strlen(bad), NULL));
}

/* 100 bytes of name come back as the first 71, then "...". */
static void
long_name_is_cut(void)
{
    struct cr_conf_errs  errs = { NULL, 0 };
    char                 yaml[256];
    char                 want[512];
    char                 as[101];

    memset(as, 'a', 100);
    as[100] = '\0';
    snprintf(yaml, sizeof(yaml), "listen: [127.0.0.1:8080]\nname: %s\n", as);
    as[71] = '\0';
    snprintf(want, sizeof(want), "inline.yaml:2:7: \"name\" must be 1 to 64 letters, digits, "
             "\".\", \"_\" or \"-\", got \"%s...\"", as);
    assert_null(cr_conf_load_buf("inline.yaml", yaml, strlen(yaml), &errs));
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msgs[0], want);
    cr_conf_errs_free(&errs);
}

/* User text in messages is escaped, so one error stays one line. */
static void
test_conf_messages_escape_user_text(void **state)
{
    (void) state;
    expect_one_error("listen: [127.0.0.1:8080]\n\"a\\nb\\\"c\": 1\n",
                     "inline.yaml:2:1: unknown key \"a\\nb\\\"c\" in top level");
    expect_one_error("listen: [127.0.0.1:8080]\nworkers: \"1\\u0000\"\n",
                     "inline.yaml:2:10: \"workers\" must be \"auto\" or an integer from 1 to "
                     "256, got \"1\\x00\"");
    long_name_is_cut();
}

/* A YAML null is "nothing", not the text "null". */
static void
test_conf_null_values_are_reported_as_nothing(void **state)
{
    (void) state;
    expect_one_error("listen: [127.0.0.1:8080]\ndrain_timeout:\n",
                     "inline.yaml:2:15: \"drain_timeout\" must be a duration like \"5s\", "
                     "got nothing");
    expect_one_error("listen: [127.0.0.1:8080]\ndrain_timeout: ~\n",
                     "inline.yaml:2:16: \"drain_timeout\" must be a duration like \"5s\", "
                     "got nothing");
}

static void
test_conf_deep_nesting_is_refused(void **state)
{
    char   buf[1024];
    size_t i, n = 0;

    (void) state;
    n += (size_t) snprintf(buf + n, sizeof(buf) - n, "listen: ");
    for (i = 0; i < 100; i++) {
        buf[n++] = '[';
    }
    for (i = 0; i < 100; i++) {
        buf[n++] = ']';
    }
    buf[n++] = '\n';
    buf[n] = '\0';
    expect_one_error(buf, "inline.yaml:1:72: nesting is deeper than 64 levels");
}

/*
 * One case per bad fixture: load it and compare every message with the
 * lines of its .expect file, in order.
 */
static void
test_conf_bad_fixture(void **state)
{
    const char          *kind = *state;
    char                 yaml[256], expect[256], line[1024];
    char                *want[64];
    int                  same;
    struct cr_conf_errs  errs = { NULL, 0 };
    struct cr_conf      *conf;
    FILE                *f;
    size_t               n = 0;
    size_t               i;

    snprintf(yaml, sizeof(yaml), FIXTURES "bad-%s.yaml", kind);
    snprintf(expect, sizeof(expect), FIXTURES "bad-%s.expect", kind);

    conf = cr_conf_load(yaml, &errs);
    assert_null(conf);

    f = fopen(expect, "r");
    assert_non_null(f);
    while (n < CR_NELEM(want) && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        want[n] = strdup(line);
        assert_non_null(want[n]);
        n++;
    }
    fclose(f);

    same = errs.n == n;
    for (i = 0; same && i < n; i++) {
        same = strcmp(errs.msgs[i], want[i]) == 0;
    }
    if (same == 0) {
        for (i = 0; i < n; i++) {
            print_error("want: %s\n", want[i]);
        }
        for (i = 0; i < errs.n; i++) {
            print_error("got:  %s\n", errs.msgs[i]);
        }
    }
    for (i = 0; i < n; i++) {
        free(want[i]);
    }
    cr_conf_errs_free(&errs);
    assert_true(same);
}

/*
 * Every bad fixture, by kind. test_conf_every_fixture_is_listed keeps this
 * list and the directory in step.
 */
static const char *const bad_kinds[] = {
    "syntax", "syntax-quote", "utf8", "empty", "top-level", "two-docs", "alias",
    "unknown-key", "dup-key", "type", "duration", "size", "limits", "address",
    "integer", "names", "unknown-upstream", "dup-upstream", "dup-route", "regex",
    "match", "headers", "no-action", "two-actions", "proxy-options", "no-servers",
    "no-listen", "empty-listen", "redirect-location", "status", "multi", "user",
    "access-log", "health", "balance", "retry",
};

static void
test_conf_every_fixture_is_listed(void **state)
{
    DIR           *dir;
    struct dirent *de;
    size_t         i, found = 0;

    (void) state;
    dir = opendir(FIXTURES);
    assert_non_null(dir);
    while ((de = readdir(dir)) != NULL) {
        size_t len = strlen(de->d_name);
        int    listed = 0;

        if (strncmp(de->d_name, "bad-", 4) != 0 || len < 9
            || strcmp(de->d_name + len - 5, ".yaml") != 0)
        {
            continue;
        }
        for (i = 0; i < CR_NELEM(bad_kinds); i++) {
            if (strlen(bad_kinds[i]) == len - 9
                && strncmp(de->d_name + 4, bad_kinds[i], len - 9) == 0)
            {
                listed = 1;
            }
        }
        if (listed == 0) {
            print_error("%s is not in bad_kinds[]\n", de->d_name);
        }
        assert_true(listed);
        found++;
    }
    closedir(dir);
    assert_int_equal(found, CR_NELEM(bad_kinds));
}

/* Every upstream resilience key, and the defaults of an upstream without them. */
static void
test_conf_upstream_resilience_keys(void **state)
{
    static const char yaml[] =
        "listen: [127.0.0.1:8080]\n"
        "upstreams:\n"
        "  api:\n"
        "    balance: hash\n"
        "    hash: { cookie: sid }\n"
        "    health: { path: /healthz?full=1, interval: 2s, timeout: 500ms, fails: 4,\n"
        "              passes: 3, expect_status: 204 }\n"
        "    outlier: { failures: 5, base_ejection: 2s, max_ejection: 1m, count_5xx: true }\n"
        "    retry_on: [503, connect_failure]\n"
        "    retry_budget: { percent: 50, min_per_second: 7 }\n"
        "    try_timeout: 3s\n"
        "    queue: { size: 64, timeout: 250ms }\n"
        "    servers:\n"
        "      - { address: 127.0.0.1:9001, max_connections: 12 }\n"
        "  plain:\n"
        "    balance: random\n"
        "    servers: [127.0.0.1:9002]\n"
        "  byaddr:\n"
        "    balance: hash\n"
        "    hash: client_address\n"
        "    retry_on: []\n"
        "    servers: [127.0.0.1:9003]\n";
    struct cr_conf          *c = load_str_ok(yaml);
    struct cr_conf_upstream *u = &c->upstreams[0];

    (void) state;
    assert_int_equal(u->balance, CR_BALANCE_HASH);
    assert_int_equal(u->hash.on, CR_HASH_COOKIE);
    assert_string_equal(u->hash.name, "sid");
    assert_string_equal(u->health.path, "/healthz?full=1");
    assert_int_equal(u->health.interval_ms, 2000);
    assert_int_equal(u->health.timeout_ms, 500);
    assert_int_equal(u->health.fails, 4);
    assert_int_equal(u->health.passes, 3);
    assert_int_equal(u->health.status_lo, 204);
    assert_int_equal(u->health.status_hi, 204);
    assert_int_equal(u->max_fails, 5);
    assert_int_equal(u->fail_timeout_ms, 2000);
    assert_int_equal(u->outlier.max_ejection_ms, 60000);
    assert_int_equal(u->outlier.count_5xx, 1);
    assert_int_equal(u->retry_on, CR_RETRY_503 | CR_RETRY_CONNECT);
    assert_int_equal(u->retry_budget.percent, 50);
    assert_int_equal(u->retry_budget.min_per_s, 7);
    assert_int_equal(u->try_timeout_ms, 3000);
    assert_int_equal(u->queue.size, 64);
    assert_int_equal(u->queue.timeout_ms, 250);
    assert_int_equal(u->servers[0].max_connections, 12);

    u = &c->upstreams[1];
    assert_int_equal(u->balance, CR_BALANCE_RANDOM);
    assert_null(u->health.path);
    assert_int_equal(u->health.status_lo, 200);
    assert_int_equal(u->health.status_hi, 399);
    assert_int_equal(u->retry_on, CR_RETRY_CONNECT | CR_RETRY_RESET);
    assert_int_equal(u->outlier.max_ejection_ms, 300000);
    assert_int_equal(u->outlier.count_5xx, 0);
    assert_int_equal(u->queue.size, 0);
    assert_int_equal(u->servers[0].max_connections, 0);

    u = &c->upstreams[2];
    assert_int_equal(u->hash.on, CR_HASH_CLIENT_ADDRESS);
    assert_null(u->hash.name);
    assert_int_equal(u->retry_on, 0);
    cr_conf_free(c);
}

static const struct CMUnitTest unit_tests[] = {
    cmocka_unit_test(test_conf_parse_duration_table),
    cmocka_unit_test(test_conf_upstream_resilience_keys),
    cmocka_unit_test(test_conf_parse_size_table),
    cmocka_unit_test(test_conf_parse_addr_table),
    cmocka_unit_test(test_conf_method_bits),
    cmocka_unit_test(test_conf_full_fixture_parses_every_feature),
    cmocka_unit_test(test_conf_minimal_config_gets_defaults),
    cmocka_unit_test(test_conf_workers_auto_and_number),
    cmocka_unit_test(test_conf_uri_limit_follows_header_limit),
    cmocka_unit_test(test_conf_hash_follows_bytes),
    cmocka_unit_test(test_conf_example_config_routes_slash_to_demo),
    cmocka_unit_test(test_conf_missing_file_reports_strerror),
    cmocka_unit_test(test_conf_errors_append_and_may_be_discarded),
    cmocka_unit_test(test_conf_messages_escape_user_text),
    cmocka_unit_test(test_conf_null_values_are_reported_as_nothing),
    cmocka_unit_test(test_conf_deep_nesting_is_refused),
    cmocka_unit_test(test_conf_every_fixture_is_listed),
};

int
main(void)
{
    struct CMUnitTest tests[CR_NELEM(unit_tests) + CR_NELEM(bad_kinds)];
    char              names[CR_NELEM(bad_kinds)][64];
    size_t            i;

    for (i = 0; i < CR_NELEM(unit_tests); i++) {
        tests[i] = unit_tests[i];
    }
    for (i = 0; i < CR_NELEM(bad_kinds); i++) {
        struct CMUnitTest *t = &tests[CR_NELEM(unit_tests) + i];

        snprintf(names[i], sizeof(names[i]), "test_conf_bad_fixture(%s)", bad_kinds[i]);
        t->name = names[i];
        t->test_func = test_conf_bad_fixture;
        t->setup_func = NULL;
        t->teardown_func = NULL;
        t->initial_state = (void *) bad_kinds[i];
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
