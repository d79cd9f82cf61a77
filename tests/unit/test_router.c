/*
 * test_router.c - route matching and prefix stripping (gateway/router.c).
 *
 * The routes are built by hand (regexes compiled here), so these tests do
 * not depend on the YAML loader. Every request host and path is handed to
 * the router inside a larger buffer with junk after it: the router must
 * respect the lengths and never rely on a NUL terminator.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conf/conf.h"
#include "gateway/router.h"

/* A route as a test writes it; NULL / 0 fields are "any". */
struct rt {
    const char  *name;
    const char  *host;
    const char  *path;
    const char  *prefix;
    const char  *regex;
    unsigned     methods;
};

/* One request and the route name it should get (NULL: no route). */
struct req {
    const char  *host;          /* NULL: no Host header */
    const char  *path;
    unsigned     method;
    const char  *want;
};

#define GET     CR_METHOD_GET
#define HEAD    CR_METHOD_HEAD
#define POST    CR_METHOD_POST
#define PUT     CR_METHOD_PUT
#define DELETE  CR_METHOD_DELETE
#define OTHER   CR_METHOD_OTHER

static char *
dup_or_null(const char *s)
{
    char *d;

    if (s == NULL) {
        return NULL;
    }
    d = strdup(s);
    assert_non_null(d);
    return d;
}

static struct cr_conf *
conf_new(const struct rt *rts, size_t n)
{
    struct cr_conf *conf;
    struct cr_conf_route *r;
    size_t i;

    conf = calloc(1, sizeof(*conf));
    assert_non_null(conf);
    conf->routes = calloc(n > 0 ? n : 1, sizeof(*conf->routes));
    assert_non_null(conf->routes);
    conf->nroutes = n;
    for (i = 0; i < n; i++) {
        r = &conf->routes[i];
        r->name = dup_or_null(rts[i].name);
        r->host = dup_or_null(rts[i].host);
        r->path = dup_or_null(rts[i].path);
        r->path_prefix = dup_or_null(rts[i].prefix);
        r->path_regex = dup_or_null(rts[i].regex);
        r->methods = rts[i].methods;
        if (r->path_regex != NULL) {
            assert_int_equal(regcomp(&r->regex, r->path_regex, REG_EXTENDED | REG_NOSUB), 0);
        }
    }
    return conf;
}

static void
conf_del(struct cr_conf *conf)
{
    struct cr_conf_route *r;
    size_t i;

    for (i = 0; i < conf->nroutes; i++) {
        r = &conf->routes[i];
        if (r->path_regex != NULL) {
            regfree(&r->regex);
        }
        free(r->name);
        free(r->host);
        free(r->path);
        free(r->path_prefix);
        free(r->path_regex);
    }
    free(conf->routes);
    free(conf);
}

/* <s> followed by bytes that would change the answer if they were read. */
static size_t
with_junk(char *buf, size_t size, const char *s)
{
    size_t n = strlen(s);

    assert_true(n + 16 < size);
    memcpy(buf, s, n);
    memcpy(buf + n, "x.Z:9/[zz]$\0junk", 16);
    return n;
}

static void
check_requests(const struct rt *rts, size_t nrts, const struct req *reqs, size_t nreqs)
{
    const struct cr_conf_route *got;
    struct cr_conf *conf;
    char host[256], path[256];
    size_t i, hostlen, pathlen;
    const char *want, *name;

    conf = conf_new(rts, nrts);
    for (i = 0; i < nreqs; i++) {
        hostlen = reqs[i].host != NULL ? with_junk(host, sizeof(host), reqs[i].host) : 0;
        pathlen = with_junk(path, sizeof(path), reqs[i].path);
        got = cr_router_match(conf, reqs[i].host != NULL ? host : NULL, hostlen,
                              path, pathlen, reqs[i].method);
        want = reqs[i].want;
        name = got != NULL ? got->name : NULL;
        if ((want == NULL) != (name == NULL) || (want != NULL && strcmp(want, name) != 0)) {
            print_error("request %zu: host %s%s%s, path \"%s\", method 0x%x: "
                        "want %s, got %s\n", i,
                        reqs[i].host != NULL ? "\"" : "",
                        reqs[i].host != NULL ? reqs[i].host : "(none)",
                        reqs[i].host != NULL ? "\"" : "",
                        reqs[i].path, reqs[i].method,
                        want != NULL ? want : "no route", name != NULL ? name : "no route");
            conf_del(conf);
            fail();
        }
    }
    conf_del(conf);
}

#define CHECK(rts, reqs) check_requests(rts, CR_NELEM(rts), reqs, CR_NELEM(reqs))

static void
test_router_host_matches_case_insensitively_without_port_or_trailing_dot(void **state)
{
    static const struct rt rts[] = {
        { .name = "api", .host = "api.example.com" },
    };
    static const struct req reqs[] = {
        { "api.example.com",        "/", GET, "api" },
        { "API.Example.COM",        "/", GET, "api" },
        { "api.example.com:8080",   "/", GET, "api" },
        { "api.example.com.",       "/", GET, "api" },
        { "API.EXAMPLE.COM.:443",   "/", GET, "api" },
        { "api.example.com..",      "/", GET, NULL },   /* one dot only */
        { "api.example.co",         "/", GET, NULL },
        { "xapi.example.com",       "/", GET, NULL },
        { "api.example.com.evil",   "/", GET, NULL },
        { "www.api.example.com",    "/", GET, NULL },
    };

    (void)state;
    CHECK(rts, reqs);
}

static void
test_router_wildcard_host_matches_subdomains_but_not_the_domain_itself(void **state)
{
    static const struct rt rts[] = {
        { .name = "wild", .host = "*.example.com" },
    };
    static const struct req reqs[] = {
        { "a.example.com",          "/", GET, "wild" },
        { "a.b.example.com",        "/", GET, "wild" },
        { "A.B.EXAMPLE.COM:8080",   "/", GET, "wild" },
        { "a.example.com.",         "/", GET, "wild" },
        { "example.com",            "/", GET, NULL },
        { "example.com:80",         "/", GET, NULL },
        { ".example.com",           "/", GET, NULL },
        { "aexample.com",           "/", GET, NULL },
        { "a.example.org",          "/", GET, NULL },
        { "a.example.com.org",      "/", GET, NULL },
    };

    (void)state;
    CHECK(rts, reqs);
}

static void
test_router_ipv6_host_loses_its_port_but_keeps_its_brackets(void **state)
{
    static const struct rt bracketed[] = {
        { .name = "v6", .host = "[::1]" },
    };
    static const struct rt bare[] = {
        { .name = "v6", .host = "::1" },
    };
    static const struct req reqs[] = {
        { "[::1]:8080",             "/", GET, "v6" },
        { "[::1]",                  "/", GET, "v6" },
        { "[::2]:8080",             "/", GET, NULL },
        { "::1",                    "/", GET, NULL },   /* not a valid Host */
    };
    static const struct req bare_reqs[] = {
        { "[::1]:8080",             "/", GET, "v6" },
        { "[::1]",                  "/", GET, "v6" },
        { "[::2]",                  "/", GET, NULL },
    };

    (void)state;
    CHECK(bracketed, reqs);
    CHECK(bare, bare_reqs);
}

static void
test_router_route_with_host_never_matches_a_request_without_one(void **state)
{
    static const struct rt rts[] = {
        { .name = "api", .host = "api.example.com" },
        { .name = "wild", .host = "*.example.com" },
        { .name = "any" },
    };
    static const struct req reqs[] = {
        { NULL,                     "/", GET, "any" },
        { "",                       "/", GET, "any" },
        { ":8080",                  "/", GET, "any" },
        { ".",                      "/", GET, "any" },
        { "api.example.com",        "/", GET, "api" },
        { "x.example.com",          "/", GET, "wild" },
        { "other.org",              "/", GET, "any" },
    };

    (void)state;
    CHECK(rts, reqs);
}

static void
test_router_exact_path_prefix_and_regex_compare_bytes(void **state)
{
    static const struct rt rts[] = {
        { .name = "ping", .path = "/ping" },
        { .name = "static", .prefix = "/static/" },
        { .name = "user", .regex = "^/users/[0-9]+$" },
        { .name = "img", .regex = "\\.(png|jpe?g)$" },
    };
    static const struct req reqs[] = {
        { NULL, "/ping",            GET, "ping" },
        { NULL, "/ping/",           GET, NULL },
        { NULL, "/pingx",           GET, NULL },
        { NULL, "/PING",            GET, NULL },        /* paths are case-sensitive */
        { NULL, "/pin",             GET, NULL },
        { NULL, "/static/",         GET, "static" },
        { NULL, "/static/a/b.css",  GET, "static" },
        { NULL, "/static",          GET, NULL },
        { NULL, "/users/42",        GET, "user" },
        { NULL, "/users/42/x",      GET, NULL },
        { NULL, "/users/",          GET, NULL },
        { NULL, "/a/b/c.png",       GET, "img" },       /* unanchored start */
        { NULL, "/a/b/c.jpeg",      GET, "img" },
        { NULL, "/a/b/c.png.txt",   GET, NULL },
        { NULL, "",                 GET, NULL },
    };

    (void)state;
    CHECK(rts, reqs);
}

static void
test_router_regex_sees_only_the_given_length(void **state)
{
    static const struct rt rts[] = {
        { .name = "a", .regex = "^/a$" },
    };
    struct cr_conf *conf = conf_new(rts, CR_NELEM(rts));
    const char buf[] = "/abc";

    (void)state;
    assert_non_null(cr_router_match(conf, NULL, 0, buf, 2, GET));
    assert_null(cr_router_match(conf, NULL, 0, buf, 3, GET));
    assert_null(cr_router_match(conf, NULL, 0, buf, 4, GET));
    conf_del(conf);
}

static void
test_router_regex_needs_no_nul_terminator(void **state)
{
    static const struct rt rts[] = {
        { .name = "a", .regex = "^/a/[a-z]+$" },
    };
    struct cr_conf *conf = conf_new(rts, CR_NELEM(rts));
    char *path;

    (void)state;
    /* exactly the path's bytes on the heap: a read past them is an overflow */
    path = malloc(6);
    assert_non_null(path);
    memcpy(path, "/a/bcd", 6);
    assert_non_null(cr_router_match(conf, NULL, 0, path, 6, GET));
    memcpy(path, "/a/bc1", 6);
    assert_null(cr_router_match(conf, NULL, 0, path, 6, GET));
    free(path);
    conf_del(conf);
}

static void
test_router_first_matching_route_wins_in_file_order(void **state)
{
    static const struct rt rts[] = {
        { .name = "api", .prefix = "/api/" },
        { .name = "admin", .path = "/api/admin" },      /* shadowed by "api" */
        { .name = "host-api", .host = "a.example.com", .prefix = "/api/" },
        { .name = "host", .host = "a.example.com" },
        { .name = "rest", .prefix = "/" },
        { .name = "never", .prefix = "/" },
    };
    static const struct req reqs[] = {
        { NULL,             "/api/admin",   GET, "api" },
        { "a.example.com",  "/api/x",       GET, "api" },
        { "a.example.com",  "/other",       GET, "host" },
        { "b.example.com",  "/other",       GET, "rest" },
        { NULL,             "/",            GET, "rest" },
    };

    (void)state;
    CHECK(rts, reqs);
}

static void
test_router_every_given_condition_must_match(void **state)
{
    static const struct rt rts[] = {
        { .name = "all", .host = "api.example.com", .prefix = "/v1/",
          .regex = "/items/[0-9]+$", .methods = PUT | DELETE },
        { .name = "fallback" },
    };
    static const struct req reqs[] = {
        { "api.example.com", "/v1/items/7",   PUT,    "all" },
        { "api.example.com", "/v1/items/7",   DELETE, "all" },
        { "api.example.com", "/v1/items/7",   GET,    "fallback" },
        { "api.example.com", "/v2/items/7",   PUT,    "fallback" },
        { "api.example.com", "/v1/items/x",   PUT,    "fallback" },
        { "www.example.com", "/v1/items/7",   PUT,    "fallback" },
        { NULL,              "/v1/items/7",   PUT,    "fallback" },
    };

    (void)state;
    CHECK(rts, reqs);
}

static void
test_router_methods_allow_head_wherever_get_is_allowed(void **state)
{
    static const struct rt rts[] = {
        { .name = "get", .path = "/get", .methods = GET },
        { .name = "post", .path = "/post", .methods = POST },
        { .name = "head", .path = "/head", .methods = HEAD },
        { .name = "any", .path = "/any" },
    };
    static const struct req reqs[] = {
        { NULL, "/get",     GET,    "get" },
        { NULL, "/get",     HEAD,   "get" },
        { NULL, "/get",     POST,   NULL },
        { NULL, "/post",    POST,   "post" },
        { NULL, "/post",    HEAD,   NULL },
        { NULL, "/post",    GET,    NULL },
        { NULL, "/head",    HEAD,   "head" },
        { NULL, "/head",    GET,    NULL },             /* HEAD does not imply GET */
        { NULL, "/any",     GET,    "any" },
        { NULL, "/any",     DELETE, "any" },
        { NULL, "/any",     OTHER,  "any" },
    };

    (void)state;
    CHECK(rts, reqs);
}

static void
test_router_no_routes_means_no_match(void **state)
{
    struct cr_conf conf;

    (void)state;
    memset(&conf, 0, sizeof(conf));
    assert_null(cr_router_match(&conf, "a", 1, "/", 1, GET));
    assert_null(cr_router_match(&conf, NULL, 0, NULL, 0, GET));
}

struct strip {
    const char  *prefix;
    const char  *path;
    const char  *want;
};

static void
test_router_strip_prefix_only_at_a_segment_boundary(void **state)
{
    static const struct strip cases[] = {
        { "/v1",        "/v1",              "/" },
        { "/v1",        "/v1/",             "/" },
        { "/v1",        "/v1/x",            "/x" },
        { "/v1",        "/v1/x/y",          "/x/y" },
        { "/v1",        "/v10/x",           "/v10/x" },     /* not a segment */
        { "/v1",        "/v1x",             "/v1x" },
        { "/v1",        "/v2/x",            "/v2/x" },
        { "/v1",        "/v",               "/v" },
        { "/v1/",       "/v1/x",            "/x" },
        { "/v1/",       "/v1/",             "/" },
        { "/v1/",       "/v1",              "/v1" },        /* shorter than prefix */
        { "/v1/",       "/v10/x",           "/v10/x" },
        { "/api/v1",    "/api/v1/users/7",  "/users/7" },
        { "/img-",      "/img-a.png",       "/img-a.png" }, /* no '/' at the cut */
        { "/",          "/a",               "/a" },
        { "/",          "/",                "/" },
        { "",           "/a",               "/a" },
        { NULL,         "/a",               "/a" },
    };
    char path[64], out[64];
    size_t i, n, pathlen;

    (void)state;
    for (i = 0; i < CR_NELEM(cases); i++) {
        pathlen = with_junk(path, sizeof(path), cases[i].path);
        memset(out, '#', sizeof(out));
        n = cr_router_strip_prefix(cases[i].prefix, path, pathlen, out, sizeof(out));
        if (n == (size_t)-1 || n != strlen(cases[i].want)
            || memcmp(out, cases[i].want, n) != 0 || out[n] != '\0')
        {
            print_error("case %zu: strip \"%s\" from \"%s\": want \"%s\", got \"%.*s\"\n",
                        i, cases[i].prefix != NULL ? cases[i].prefix : "(null)",
                        cases[i].path, cases[i].want,
                        n == (size_t)-1 ? 5 : (int)n, n == (size_t)-1 ? "error" : out);
            fail();
        }
    }
}

static void
test_router_strip_prefix_fails_only_when_the_result_does_not_fit(void **state)
{
    char out[8];

    (void)state;
    /* "/v1/x" -> "/x": 2 bytes, room for the NUL or not */
    assert_int_equal(cr_router_strip_prefix("/v1", "/v1/x", 5, out, 2), 2);
    assert_memory_equal(out, "/x", 2);
    assert_int_equal(cr_router_strip_prefix("/v1", "/v1/x", 5, out, 1), (size_t)-1);
    /* "/v1" -> "/" */
    assert_int_equal(cr_router_strip_prefix("/v1", "/v1", 3, out, 1), 1);
    assert_int_equal(out[0], '/');
    assert_int_equal(cr_router_strip_prefix("/v1", "/v1", 3, out, 0), (size_t)-1);
    /* no match: a copy, which needs <pathlen> bytes */
    assert_int_equal(cr_router_strip_prefix("/v1", "/abcdefg", 8, out, 8), 8);
    assert_memory_equal(out, "/abcdefg", 8);
    assert_int_equal(cr_router_strip_prefix("/v1", "/abcdefg", 8, out, 7), (size_t)-1);
    /* "/v1/" on "/v1/x" puts the '/' back: still never longer than the path */
    assert_int_equal(cr_router_strip_prefix("/v1/", "/v1/x", 5, out, 5), 2);
    assert_string_equal(out, "/x");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_host_matches_case_insensitively_without_port_or_trailing_dot),
        cmocka_unit_test(test_router_wildcard_host_matches_subdomains_but_not_the_domain_itself),
        cmocka_unit_test(test_router_ipv6_host_loses_its_port_but_keeps_its_brackets),
        cmocka_unit_test(test_router_route_with_host_never_matches_a_request_without_one),
        cmocka_unit_test(test_router_exact_path_prefix_and_regex_compare_bytes),
        cmocka_unit_test(test_router_regex_sees_only_the_given_length),
        cmocka_unit_test(test_router_regex_needs_no_nul_terminator),
        cmocka_unit_test(test_router_first_matching_route_wins_in_file_order),
        cmocka_unit_test(test_router_every_given_condition_must_match),
        cmocka_unit_test(test_router_methods_allow_head_wherever_get_is_allowed),
        cmocka_unit_test(test_router_no_routes_means_no_match),
        cmocka_unit_test(test_router_strip_prefix_only_at_a_segment_boundary),
        cmocka_unit_test(test_router_strip_prefix_fails_only_when_the_result_does_not_fit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
