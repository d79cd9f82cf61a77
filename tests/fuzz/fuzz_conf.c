/*
 * fuzz_conf.c - libFuzzer target: the config loader (conf/) on any bytes.
 *
 * cr_conf_load_buf() must come back with either a tree or at least one
 * error, never both and never neither, and every error must be a compiler
 * style line "fuzz.yaml:LINE:COL: message" with 1-based numbers that point
 * into the input. A tree that loads is then used the way a worker uses it:
 * every route is matched against a few requests (regular expressions
 * included) and every strip_prefix applied, so a tree that passed the
 * checks but breaks the router shows up here. Everything is freed;
 * LeakSanitizer checks. CORRAL_FUZZ_DUMP=1 prints the errors.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "gateway/router.h"

#define NAME    "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_conf: invariant broken: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/*
 * An upper bound of the lines libyaml can count in <data>: it breaks lines
 * on LF, CR, CR LF, NEL (C2 85), LS and PS (E2 80 A8/A9). A mark may sit
 * just past the last line break.
 */
static unsigned long
max_line(const uint8_t *data, size_t size)
{
    unsigned long n = 1;
    size_t i;

    for (i = 0; i < size; i++) {
        if (data[i] == '\n' || data[i] == '\r') {
            n++;
        } else if (data[i] == 0xc2 && i + 1 < size && data[i + 1] == 0x85) {
            n++;
        } else if (data[i] == 0xe2 && i + 2 < size && data[i + 1] == 0x80
                   && (data[i + 2] == 0xa8 || data[i + 2] == 0xa9))
        {
            n++;
        }
    }
    return n + 1;
}

/* "fuzz.yaml:LINE:COL: message" */
static void
check_error(const char *msg, unsigned long lines, size_t size)
{
    const char *p = msg;
    char *end;
    unsigned long line, col;

    if (strncmp(p, NAME ":", sizeof(NAME)) != 0) {
        fail("error does not start with the file name: %s", msg);
    }
    p += sizeof(NAME);
    if (*p < '0' || *p > '9') {
        fail("error has no line number: %s", msg);
    }
    line = strtoul(p, &end, 10);
    if (*end != ':' || end[1] < '0' || end[1] > '9') {
        fail("error has no column: %s", msg);
    }
    col = strtoul(end + 1, &end, 10);
    if (end[0] != ':' || end[1] != ' ' || end[2] == '\0') {
        fail("error has no message after line:col: %s", msg);
    }
    if (line < 1 || line > lines) {
        fail("error line %lu outside 1..%lu: %s", line, lines, msg);
    }
    if (col < 1 || col > size + 1) {
        fail("error column %lu outside 1..%zu: %s", col, size + 1, msg);
    }
}

/* Use a tree the way a worker would. */
static void
exercise(const struct cr_conf *conf)
{
    static const char *const hosts[] = { NULL, "a.example.com", "EXAMPLE.com:80", "x." };
    static const char *const paths[] = { "/", "/api/v1/x", "/old-docs/a", "/orders/12", "*" };
    char out[64];
    size_t i, j;

    for (i = 0; i < CR_NELEM(hosts); i++) {
        for (j = 0; j < CR_NELEM(paths); j++) {
            const struct cr_conf_route *r;

            r = cr_router_match(conf, hosts[i], hosts[i] ? strlen(hosts[i]) : 0,
                                paths[j], strlen(paths[j]),
                                j % 2 ? CR_METHOD_GET : CR_METHOD_OTHER);
            if (r != NULL && r->action == CR_ROUTE_UPSTREAM
                && r->upstream >= conf->nupstreams)
            {
                fail("route %s points at upstream %zu of %zu", r->name, r->upstream,
                     conf->nupstreams);
            }
        }
    }
    for (i = 0; i < conf->nroutes; i++) {
        const struct cr_conf_route *r = &conf->routes[i];

        if (r->strip_prefix != NULL) {
            size_t n = cr_router_strip_prefix(r->strip_prefix, "/api/v1/x", 9, out, sizeof(out));

            if (n != (size_t)-1 && (n > sizeof(out) || n == 0 || out[0] != '/')) {
                fail("strip_prefix %s gave %zu bytes", r->strip_prefix, n);
            }
        }
    }
    for (i = 0; i < conf->nupstreams; i++) {
        if (conf->upstreams[i].nservers == 0) {
            fail("upstream %s loaded without servers", conf->upstreams[i].name);
        }
    }
    if (conf->nlisten == 0) {
        fail("a tree without a listen address");
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cr_conf_errs errs = { 0 };
    struct cr_conf *conf;
    unsigned long lines = max_line(data, size);
    size_t i;

    conf = cr_conf_load_buf(NAME, (const char *)data, size, &errs);
    if (conf != NULL && errs.n != 0) {
        fail("a tree and %zu errors", errs.n);
    }
    if (conf == NULL && errs.n == 0) {
        fail("neither a tree nor an error");
    }
    for (i = 0; i < errs.n; i++) {
        if (getenv("CORRAL_FUZZ_DUMP") != NULL) {
            fprintf(stderr, "%s\n", errs.msgs[i]);
        }
        check_error(errs.msgs[i], lines, size);
    }
    if (conf != NULL) {
        exercise(conf);
    }
    cr_conf_free(conf);
    cr_conf_errs_free(&errs);
    return 0;
}
