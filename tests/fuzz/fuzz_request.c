/*
 * fuzz_request.c - libFuzzer target: a client's bytes through the real
 * request path (conn.c, proxy.c, upstream.c, http.c, router.c).
 *
 * For each input the harness builds a worker the way worker.c does (an
 * event_base, the conf, cr_proxy_worker_init()), hands one end of a
 * socketpair to cr_conn_accept(), writes the input to the other end in
 * pieces of PIECE bytes, half-closes it, and turns the loop without
 * blocking until nothing moves any more. The upstream is a fake owned by
 * this file: a 127.0.0.1 listening socket that both upstreams of the conf
 * point at, whose accepted connections are read, checked and answered
 * between loop turns. The pool "app" also lists a port that is bound but
 * not listening, so its first request meets a refused connect and a retry.
 * Afterwards every connection is closed and the worker freed, so nothing
 * survives from one input to the next (LeakSanitizer checks that).
 *
 * Invariants; a broken one aborts, so libFuzzer keeps the input:
 *   U1 what corral sends upstream parses (llhttp, strict) as requests, one
 *      at a time: no byte follows a request before it has been answered;
 *   U2 each is HTTP/1.1 in origin form (or OPTIONS *) with a normalised
 *      path, exactly one Host, at most one Content-Length, Transfer-Encoding
 *      only as a lone "chunked" and never with Content-Length, no
 *      hop-by-hop header but "Connection: close" (or Upgrade with
 *      "Connection: upgrade" for a GET without framing), the route's header rules
 *      applied (X-Debug removed, one "X-Env: prod"), one X-Forwarded-For,
 *      X-Forwarded-Proto and Via;
 *   U3 its method, query and decoded body are those of a request the client
 *      sent, in the client's order (checked against an independent llhttp
 *      parse of the input); a retry repeats the last one on another
 *      connection;
 *   C1 what corral writes back parses as responses framed by corral alone
 *      (no hop-by-hop header, never Content-Length with
 *      Transfer-Encoding), at most one final response per request.
 *
 * The fake upstream's answer depends on the forwarded target (answers[]),
 * so plain HTTP inputs reach the response paths as well: "/chunked",
 * "/close", "/eof", "/continue", "/204", "/304", "/hop", "/bad", "/early",
 * "/big", "/reset" (the connection is reset instead of answered), "/drop"
 * (closed after a keep-alive answer) and "/late" (a stray byte one turn
 * after the answer, when the connection idles in corral's pool) anywhere
 * in the target pick one.
 *
 * Nothing sleeps: the loop runs with EVLOOP_NONBLOCK, and loopback delivery
 * happens inside the sending system call, so "IDLE_TURNS turns in a row
 * with nothing moving" means settled. Timers (seconds) never fire.
 *
 * CORRAL_FUZZ_LOG=debug shows corral's own log lines; CORRAL_FUZZ_DUMP=1
 * prints what went upstream and what came back to the client;
 * CORRAL_FUZZ_STUCK=1 also fails an input after which the client connection
 * is still open once everything settled (off by default: on a starved
 * machine "settled" can come early).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conf/conf.h"
#include "gateway/conn.h"
#include "gateway/http.h"
#include "gateway/log.h"
#include "gateway/proxy.h"
#include "gateway/upstream.h"
#include "gateway/worker.h"
#include "llhttp.h"

#define PIECE           1024            /* input written in pieces this big */
#define IDLE_TURNS      8               /* turns without progress: settled */
#define MAX_TURNS       20000           /* per piece; a bound, not a timer */
#define MAX_UP          64              /* upstream connections per input */
#define MAX_REQS        2048            /* client requests tracked */
#define BIG_LEN         (320 * 1024)    /* "/big" body: past the watermark */
#define CLIENT_OUT_MAX  (4u << 20)      /* client output kept for C1 */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The conf: every proxied route applies the same request header rules, so
 * U2 holds whichever route a request took. Limits are small so that 413,
 * 414 and 431 are within reach of short inputs.
 */
static const char conf_fmt[] =
    "name: fuzz\n"
    "workers: 1\n"
    "listen: [127.0.0.1:9]\n"
    "limits:\n"
    "  max_header_bytes: 2k\n"
    "  max_headers: 24\n"
    "  max_uri_bytes: 1k\n"
    "  max_body_bytes: 16k\n"
    "upstreams:\n"
    "  app:\n"
    "    keepalive: 2\n"
    "    retries: 1\n"
    "    servers: [127.0.0.1:%u, 127.0.0.1:%u]\n"
    "  once:\n"
    "    keepalive: 0\n"
    "    balance: least_conn\n"
    "    servers: [127.0.0.1:%u]\n"
    "routes:\n"
    "  - name: ping\n"
    "    match: { path: /ping, methods: [GET] }\n"
    "    respond: { status: 200, body: \"pong\\n\", headers: { Content-Type: text/plain } }\n"
    "  - name: old\n"
    "    match: { path_prefix: /old/ }\n"
    "    redirect: { status: 301, location: \"http://127.0.0.1/new/\" }\n"
    "    response_headers: { set: { X-Moved: yes } }\n"
    "  - name: api\n"
    "    match: { host: \"*.example.com\", path_prefix: /v1/, methods: [GET, POST, PUT] }\n"
    "    upstream: app\n"
    "    strip_prefix: /v1\n"
    "    request_headers: { set: { X-Env: prod }, remove: [X-Debug] }\n"
    "    response_headers: { set: { X-Served-By: corral }, remove: [Server] }\n"
    "  - name: once\n"
    "    match: { path_regex: \"^/once/[0-9]+$\" }\n"
    "    upstream: once\n"
    "    request_headers: { set: { X-Env: prod }, remove: [X-Debug] }\n"
    "  - name: default\n"
    "    match: { path_prefix: / }\n"
    "    upstream: app\n"
    "    request_headers: { set: { X-Env: prod }, remove: [X-Debug, X-Forwarded-Host] }\n";

static struct cr_conf  *conf;
static int              listen_fd = -1;
static int              dead_fd = -1;   /* bound, never listening */
static char            *big_body;
static int              dump;           /* CORRAL_FUZZ_DUMP */
static int              stuck;          /* CORRAL_FUZZ_STUCK */

/* Show <len> bytes of <what> readably on stderr. */
static void
dump_bytes(const char *what, size_t id, const char *p, size_t len)
{
    size_t i;

    fprintf(stderr, "--- %s %zu (%zu bytes)\n", what, id, len);
    for (i = 0; i < len && i < 4096; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c == '\n') {
            fputs("\\n\n", stderr);
        } else if (c == '\r') {
            fputs("\\r", stderr);
        } else if (c < 0x20 || c > 0x7e) {
            fprintf(stderr, "\\x%02x", c);
        } else {
            fputc(c, stderr);
        }
    }
    fputs(i < len ? "...\n" : "\n", stderr);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_request: invariant broken: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/*
 * cr_buf_add() with a harness-side guard: llhttp hands out empty spans, and
 * an empty append to a buffer that never held anything would compute
 * NULL + 0.
 */
static void
buf_add(struct cr_buf *b, const char *s, size_t len)
{
    if (len != 0) {
        cr_buf_add(b, s, len);
    }
}

/* <a>/<alen> equals <b>, ignoring ASCII case and the outer whitespace of <a>. */
static int
value_eq(const char *a, size_t alen, const char *b)
{
    while (alen > 0 && (a[0] == ' ' || a[0] == '\t')) {
        a++;
        alen--;
    }
    while (alen > 0 && (a[alen - 1] == ' ' || a[alen - 1] == '\t')) {
        alen--;
    }
    return cr_http_name_eq(a, alen, b);
}

/* ---------------------------------------------------------------------- */
/* The oracle: the client's requests as llhttp alone reads them           */

struct creq {
    int         method;
    int         head_done;
    int         complete;
    size_t      body_off;       /* in oracle.bodies */
    size_t      body_len;
    size_t      target_off;     /* in oracle.targets */
    size_t      target_len;
};

static struct {
    llhttp_t            p;
    llhttp_settings_t   s;
    struct creq         reqs[MAX_REQS];
    size_t              n;
    int                 overflow;   /* more than MAX_REQS: U3 off */
    struct cr_buf       bodies;
    struct cr_buf       targets;
    size_t              next;       /* first request a forward may match */
    long                last;       /* last one matched, -1 = none */
    const void         *last_up;    /* the upstream conn it came on */
} oracle;

static int
or_begin(llhttp_t *p)
{
    (void)p;
    if (oracle.n == MAX_REQS) {
        oracle.overflow = 1;
        return HPE_USER;
    }
    memset(&oracle.reqs[oracle.n], 0, sizeof(oracle.reqs[0]));
    oracle.reqs[oracle.n].body_off = oracle.bodies.len;
    oracle.reqs[oracle.n].target_off = oracle.targets.len;
    oracle.n++;
    return 0;
}

static int
or_url(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    buf_add(&oracle.targets, at, len);
    oracle.reqs[oracle.n - 1].target_len += len;
    return 0;
}

static int
or_headers(llhttp_t *p)
{
    struct creq *r = &oracle.reqs[oracle.n - 1];

    r->method = llhttp_get_method(p);
    r->head_done = 1;
    p->upgrade = 0;     /* as http.c does: corral never switches protocols */
    return 0;
}

static int
or_body(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    buf_add(&oracle.bodies, at, len);
    oracle.reqs[oracle.n - 1].body_len += len;
    return 0;
}

static int
or_complete(llhttp_t *p)
{
    (void)p;
    oracle.reqs[oracle.n - 1].complete = 1;
    return 0;
}

static void
oracle_parse(const uint8_t *data, size_t size)
{
    oracle.n = 0;
    oracle.overflow = 0;
    oracle.next = 0;
    oracle.last = -1;
    oracle.last_up = NULL;
    oracle.bodies.len = 0;
    oracle.targets.len = 0;
    llhttp_init(&oracle.p, HTTP_REQUEST, &oracle.s);
    llhttp_execute(&oracle.p, (const char *)data, size);
    if (oracle.bodies.oom || oracle.targets.oom) {
        fail("out of memory in the oracle");
    }
}

/* The query of target <t>/<len>, from its '?' (corral forwards it as is). */
static const char *
query_of(const char *t, size_t len, size_t *qlen)
{
    const char *q = len != 0 ? memchr(t, '?', len) : NULL;

    *qlen = q != NULL ? len - (size_t)(q - t) : 0;
    return q;
}

static int
oracle_req_is(size_t k, int method, const struct cr_buf *target, const char *body,
              size_t len)
{
    const struct creq *r = &oracle.reqs[k];
    const char *q1, *q2;
    size_t q1len, q2len;

    q1 = query_of(oracle.targets.p + r->target_off, r->target_len, &q1len);
    q2 = query_of(target->p, target->len, &q2len);
    return r->complete && r->method == method && r->body_len == len
           && (len == 0 || memcmp(oracle.bodies.p + r->body_off, body, len) == 0)
           && q1len == q2len && (q1len == 0 || memcmp(q1, q2, q1len) == 0);
}

/*
 * U3: the complete request <method> <target> with <body> came on upstream
 * connection <up>.
 */
static void
oracle_match(const void *up, int method, const struct cr_buf *target, const char *body,
             size_t len)
{
    size_t k;

    if (oracle.overflow) {
        return;
    }
    /* a retry sends the last request again, on another connection */
    if (oracle.last >= 0 && up != oracle.last_up
        && oracle_req_is((size_t)oracle.last, method, target, body, len))
    {
        oracle.last_up = up;
        return;
    }
    for (k = oracle.next; k < oracle.n; k++) {
        if (oracle_req_is(k, method, target, body, len)) {
            oracle.next = k + 1;
            oracle.last = (long)k;
            oracle.last_up = up;
            return;
        }
    }
    fail("U3: forwarded %s %.*s with a %zu-byte body the client never sent "
         "(client requests %zu, next unmatched %zu)",
         llhttp_method_name((llhttp_method_t)method), (int)target->len,
         target->len ? target->p : "", len, oracle.n, oracle.next);
}

/* ---------------------------------------------------------------------- */
/* The fake upstream                                                       */

enum answer {
    A_PLAIN = 0,
    A_CHUNKED,
    A_CLOSE,
    A_EOF,
    A_CONTINUE,
    A_204,
    A_304,
    A_HOP,
    A_BAD,
    A_EARLY,
    A_BIG,
    A_RESET,
    A_DROP,
    A_LATE
};

static const struct {
    const char     *key;
    enum answer     kind;
} answers[] = {
    { "/chunked",  A_CHUNKED },
    { "/close",    A_CLOSE },
    { "/eof",      A_EOF },
    { "/continue", A_CONTINUE },
    { "/204",      A_204 },
    { "/304",      A_304 },
    { "/hop",      A_HOP },
    { "/bad",      A_BAD },
    { "/early",    A_EARLY },
    { "/big",      A_BIG },
    { "/reset",    A_RESET },
    { "/drop",     A_DROP },
    { "/late",     A_LATE },
};

/* One connection corral opened to the fake upstream. */
struct up {
    int             fd;             /* -1 once closed */
    llhttp_t        p;
    struct cr_buf   target;
    struct cr_buf   name;           /* header being read */
    struct cr_buf   value;
    int             pending;        /* name complete, header not checked yet */
    unsigned        nhost, ncl, nte, nconn, nenv, nxff, nxfp, nxfh, nvia;
    unsigned        nupgrade, conn_upgrade;     /* an upgrade offered */
    struct cr_buf   body;
    int             method;
    enum answer     kind;
    int             answered;       /* this request's answer is queued */
    struct cr_buf   out;            /* answer bytes not yet written */
    size_t          out_off;
    int             shut_after;     /* half-close once out is written */
    int             shut;
    int             reset;          /* reset the connection, do not answer */
    int             late;           /* turns until the stray byte; 0 = none */
};

static struct up       ups[MAX_UP];
static size_t          nups;
static int             big_used;       /* one "/big" per input */
static llhttp_settings_t up_settings;

static void
up_answer(struct up *u)
{
    int head = u->method == HTTP_HEAD;
    enum answer kind = u->kind;
    struct cr_buf *b = &u->out;

    if (u->answered) {
        return;
    }
    u->answered = 1;
    if (kind == A_BIG && big_used) {
        kind = A_PLAIN;
    }
    switch (kind) {
    case A_CHUNKED:
        cr_buf_adds(b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        if (!head) {
            cr_buf_adds(b, "3;x=y\r\nok\n\r\n0\r\nX-Trailer: t\r\n\r\n");
        }
        break;
    case A_CLOSE:
        cr_buf_adds(b, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n");
        if (!head) {
            cr_buf_adds(b, "ok\n");
        }
        break;
    case A_EOF:
        cr_buf_adds(b, head ? "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n"
                            : "HTTP/1.0 200 OK\r\n\r\nok\n");
        u->shut_after = 1;
        break;
    case A_CONTINUE:
        cr_buf_adds(b, "HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
        if (!head) {
            cr_buf_adds(b, "ok\n");
        }
        break;
    case A_204:
        cr_buf_adds(b, "HTTP/1.1 204 No Content\r\n\r\n");
        break;
    case A_304:
        cr_buf_adds(b, "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n");
        break;
    case A_HOP:
        cr_buf_adds(b, "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
                       "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
                       "Trailer: X-T\r\nVia: 1.1 other\r\nServer: fake\r\n"
                       "Content-Length: 3\r\n\r\n");
        if (!head) {
            cr_buf_adds(b, "ok\n");
        }
        break;
    case A_BAD:
        cr_buf_adds(b, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nok\n");
        break;
    case A_BIG:
        big_used = 1;
        cr_buf_addf(b, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_LEN);
        if (!head) {
            buf_add(b, big_body, BIG_LEN);
        }
        break;
    case A_DROP:
    case A_LATE:
        u->shut_after = kind == A_DROP;
        u->late = kind == A_LATE ? 2 : 0;
        /* FALLTHROUGH */
    case A_EARLY:
    case A_PLAIN:
    default:
        cr_buf_adds(b, "HTTP/1.1 200 OK\r\nServer: fake\r\nContent-Length: 3\r\n\r\n");
        if (!head) {
            cr_buf_adds(b, "ok\n");
        }
        break;
    }
    if (b->oom) {
        fail("out of memory queueing an answer");
    }
}

static int
up_begin(llhttp_t *p)
{
    struct up *u = p->data;

    u->target.len = 0;
    u->name.len = 0;
    u->value.len = 0;
    u->pending = 0;
    u->nhost = u->ncl = u->nte = u->nconn = u->nenv = 0;
    u->nupgrade = u->conn_upgrade = 0;
    u->nxff = u->nxfp = u->nxfh = u->nvia = 0;
    u->body.len = 0;
    u->method = -1;
    u->kind = A_PLAIN;
    u->answered = 0;
    return 0;
}

static int
up_url(llhttp_t *p, const char *at, size_t len)
{
    struct up *u = p->data;

    buf_add(&u->target, at, len);
    return 0;
}

/* U2 for one forwarded header. */
static void
up_check_header(struct up *u)
{
    const char *n = u->name.p, *v = u->value.p;
    size_t nl = u->name.len, vl = u->value.len;
    static const char *const banned[] = {
        "keep-alive", "te", "trailer", "proxy-connection", "x-debug"
    };
    size_t i;

    for (i = 0; i < CR_NELEM(banned); i++) {
        if (cr_http_name_eq(n, nl, banned[i])) {
            fail("U2: header %s forwarded upstream", banned[i]);
        }
    }
    if (cr_http_name_eq(n, nl, "upgrade")) {
        u->nupgrade++;      /* only with Connection: upgrade (checked at the end) */
    } else if (cr_http_name_eq(n, nl, "host")) {
        u->nhost++;
    } else if (cr_http_name_eq(n, nl, "content-length")) {
        u->ncl++;
    } else if (cr_http_name_eq(n, nl, "transfer-encoding")) {
        u->nte++;
        if (!value_eq(v, vl, "chunked")) {
            fail("U2: Transfer-Encoding: %.*s forwarded upstream", (int)vl, v);
        }
    } else if (cr_http_name_eq(n, nl, "connection")) {
        u->nconn++;
        if (value_eq(v, vl, "upgrade")) {
            u->conn_upgrade = 1;
        } else if (!value_eq(v, vl, "close")) {
            fail("U2: Connection: %.*s forwarded upstream", (int)vl, v);
        }
    } else if (cr_http_name_eq(n, nl, "x-env")) {
        u->nenv++;
        if (!value_eq(v, vl, "prod")) {
            fail("U2: X-Env: %.*s forwarded, the rule sets prod", (int)vl, v);
        }
    } else if (cr_http_name_eq(n, nl, "x-forwarded-for")) {
        u->nxff++;
    } else if (cr_http_name_eq(n, nl, "x-forwarded-proto")) {
        u->nxfp++;
        if (!value_eq(v, vl, "http")) {
            fail("U2: X-Forwarded-Proto: %.*s", (int)vl, v);
        }
    } else if (cr_http_name_eq(n, nl, "x-forwarded-host")) {
        u->nxfh++;
    } else if (cr_http_name_eq(n, nl, "via")) {
        u->nvia++;
    }
}

static void
up_flush_header(struct up *u)
{
    if (u->pending) {
        up_check_header(u);
    }
    u->pending = 0;
    u->name.len = 0;
    u->value.len = 0;
}

static int
up_field(llhttp_t *p, const char *at, size_t len)
{
    struct up *u = p->data;

    if (u->pending) {
        up_flush_header(u);
    }
    buf_add(&u->name, at, len);
    return 0;
}

static int
up_field_done(llhttp_t *p)
{
    struct up *u = p->data;

    u->pending = 1;
    return 0;
}

static int
up_value(llhttp_t *p, const char *at, size_t len)
{
    struct up *u = p->data;

    buf_add(&u->value, at, len);
    return 0;
}

static int
is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* U2: the forwarded path is the normalised one (conn.c, http.c). */
static void
up_check_path(const char *t, size_t len)
{
    size_t i, seg = 0;

    for (i = 0; i < len && t[i] != '?'; i++) {
        continue;
    }
    len = i;
    for (i = 0; i <= len; i++) {
        if (i == len || t[i] == '/') {
            size_t sl = i - seg;

            if (i > 0 && ((sl == 1 && t[seg] == '.')
                          || (sl == 2 && t[seg] == '.' && t[seg + 1] == '.')))
            {
                fail("U2: dot segment in the forwarded path %.*s", (int)len, t);
            }
            seg = i + 1;
            continue;
        }
        if (t[i] == '%') {
            int hi, lo, v;

            if (i + 2 >= len) {
                fail("U2: cut escape in the forwarded path %.*s", (int)len, t);
            }
            if (!is_hex(t[i + 1]) || !is_hex(t[i + 2])) {
                fail("U2: bad escape in the forwarded path %.*s", (int)len, t);
            }
            hi = t[i + 1] <= '9' ? t[i + 1] - '0' : (t[i + 1] | 0x20) - 'a' + 10;
            lo = t[i + 2] <= '9' ? t[i + 2] - '0' : (t[i + 2] | 0x20) - 'a' + 10;
            v = hi * 16 + lo;
            if ((v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') || (v >= '0' && v <= '9')
                || v == '-' || v == '.' || v == '_' || v == '~')
            {
                fail("U2: escaped unreserved character in the forwarded path %.*s",
                     (int)len, t);
            }
            i += 2;
        }
    }
}

static int
up_headers(llhttp_t *p)
{
    struct up *u = p->data;
    const char *t = u->target.p;
    size_t tl = u->target.len, i;

    up_flush_header(u);
    u->method = llhttp_get_method(p);
    if (llhttp_get_http_major(p) != 1 || llhttp_get_http_minor(p) != 1) {
        fail("U2: HTTP/%d.%d forwarded upstream", llhttp_get_http_major(p),
             llhttp_get_http_minor(p));
    }
    if (u->method == HTTP_CONNECT) {
        fail("U2: CONNECT forwarded upstream");
    }
    if (tl == 1 && t[0] == '*') {
        if (u->method != HTTP_OPTIONS) {
            fail("U2: asterisk-form target with %s",
                 llhttp_method_name((llhttp_method_t)u->method));
        }
    } else if (tl == 0 || t[0] != '/') {
        fail("U2: target not in origin form: %.*s", (int)tl, tl ? t : "");
    } else {
        up_check_path(t, tl);
    }
    if (u->nhost != 1) {
        fail("U2: %u Host headers forwarded", u->nhost);
    }
    /* an upgrade is offered only for a bodyless GET, with Connection: upgrade */
    if (u->nupgrade > 1 || u->nupgrade != u->conn_upgrade
        || (u->nupgrade && (u->method != HTTP_GET || u->nte || u->ncl)))
    {
        fail("U2: Upgrade %u, Connection: upgrade %u, %s, Content-Length %u, "
             "Transfer-Encoding %u", u->nupgrade, u->conn_upgrade,
             llhttp_method_name((llhttp_method_t)u->method), u->ncl, u->nte);
    }
    if (u->ncl > 1 || u->nte > 1 || (u->ncl && u->nte)) {
        fail("U2: framing forwarded: %u Content-Length, %u Transfer-Encoding", u->ncl, u->nte);
    }
    if (u->nenv != 1 || u->nxff != 1 || u->nxfp != 1 || u->nvia != 1 || u->nxfh > 1
        || u->nconn > 1)
    {
        fail("U2: header counts: X-Env %u, X-Forwarded-For %u, -Proto %u, -Host %u, Via %u, "
             "Connection %u", u->nenv, u->nxff, u->nxfp, u->nxfh, u->nvia, u->nconn);
    }
    for (i = 0; i < CR_NELEM(answers); i++) {
        if (memmem(t, tl, answers[i].key, strlen(answers[i].key)) != NULL) {
            u->kind = answers[i].kind;
            break;
        }
    }
    if (u->kind == A_EARLY) {
        up_answer(u);
    }
    if (u->kind == A_RESET) {
        u->reset = 1;
        u->answered = 1;
        return HPE_PAUSED;  /* up_io() resets; nothing else is read */
    }
    return 0;
}

static int
up_body(llhttp_t *p, const char *at, size_t len)
{
    struct up *u = p->data;

    buf_add(&u->body, at, len);
    return 0;
}

static int
up_complete(llhttp_t *p)
{
    struct up *u = p->data;

    if (u->target.oom || u->body.oom || u->name.oom || u->value.oom) {
        fail("out of memory reading a forwarded request");
    }
    oracle_match(u, u->method, &u->target, u->body.p, u->body.len);
    up_answer(u);
    return HPE_PAUSED;      /* so that up_feed() sees what follows */
}

/* U1: feed what corral sent on <u>. */
static void
up_feed(struct up *u, const char *data, size_t len)
{
    llhttp_errno_t err = llhttp_execute(&u->p, data, len);

    if (err == HPE_OK) {
        return;
    }
    if (err == HPE_PAUSED && u->reset) {
        return;
    }
    if (err == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&u->p);

        if (pos != data + len) {
            fail("U1: %zu bytes follow a forwarded request before its answer",
                 (size_t)(data + len - pos));
        }
        llhttp_resume(&u->p);
        return;
    }
    fail("U1: forwarded bytes do not parse: %s (%s)", llhttp_errno_name(err),
         llhttp_get_error_reason(&u->p));
}

/* Close with a reset: no TIME_WAIT left behind on either side. */
static void
rst_close(int fd)
{
    struct linger lg = { 1, 0 };

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void
up_free(struct up *u)
{
    if (u->fd != -1) {
        rst_close(u->fd);
        u->fd = -1;
    }
    cr_buf_free(&u->target);
    cr_buf_free(&u->name);
    cr_buf_free(&u->value);
    cr_buf_free(&u->body);
    cr_buf_free(&u->out);
}

/* Accept what corral connected; returns how many. */
static int
up_accept(void)
{
    int n = 0, fd;

    while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
        struct up *u;

        n++;
        if (nups == MAX_UP) {
            rst_close(fd);
            continue;
        }
        u = &ups[nups++];
        memset(u, 0, sizeof(*u));
        u->fd = fd;
        llhttp_init(&u->p, HTTP_REQUEST, &up_settings);
        u->p.data = u;
        up_begin(&u->p);
    }
    return n;
}

/* Read, check and answer on every upstream connection; returns progress. */
static int
up_io(void)
{
    char buf[16384];
    int moved = 0;
    size_t i;

    for (i = 0; i < nups; i++) {
        struct up *u = &ups[i];
        ssize_t n = -1;

        while (u->fd != -1 && (n = read(u->fd, buf, sizeof(buf))) != 0) {
            if (n == -1) {
                if (errno != EAGAIN && errno != EINTR) {
                    rst_close(u->fd);   /* reset by corral */
                    u->fd = -1;
                    moved = 1;
                }
                break;
            }
            moved = 1;
            if (dump) {
                dump_bytes("upstream conn", i, buf, (size_t)n);
            }
            up_feed(u, buf, (size_t)n);
            if (u->reset) {
                rst_close(u->fd);
                u->fd = -1;
            }
        }
        if (u->fd != -1 && n == 0) {
            /* corral closed; an unfinished request is its right (aborts) */
            rst_close(u->fd);
            u->fd = -1;
            moved = 1;
        }
        while (u->fd != -1 && u->out_off < u->out.len) {
            n = write(u->fd, u->out.p + u->out_off, u->out.len - u->out_off);
            if (n <= 0) {
                break;
            }
            u->out_off += (size_t)n;
            moved = 1;
        }
        if (u->fd != -1 && u->out_off == u->out.len && u->out.len != 0) {
            u->out.len = 0;
            u->out_off = 0;
            if (u->shut_after && !u->shut) {
                shutdown(u->fd, SHUT_WR);
                u->shut = 1;
            }
        } else if (u->fd != -1 && u->out.len == 0 && u->late != 0 && --u->late == 0) {
            if (write(u->fd, "X", 1) == 1) {
                moved = 1;
            }
        }
    }
    return moved;
}

/* ---------------------------------------------------------------------- */
/* C1: what corral wrote to the client                                    */

static struct {
    struct cr_buf       out;        /* every byte corral wrote, up to the cap */
    int                 truncated;
    int                 eof;
    llhttp_t            p;
    llhttp_settings_t   s;
    struct cr_buf       name;
    struct cr_buf       value;
    int                 pending;
    unsigned            ncl, nte, nclose;
    uint64_t            cl;
    const char         *status_at;  /* where this response's status text is */
    size_t              nfinal;     /* final (non-1xx) responses */
} cl;

static void
cl_check_header(void)
{
    const char *n = cl.name.p, *v = cl.value.p;
    size_t nl = cl.name.len, vl = cl.value.len;
    static const char *const banned[] = {
        "keep-alive", "te", "trailer", "upgrade", "proxy-connection", "x-hop"
    };
    size_t i;

    for (i = 0; i < CR_NELEM(banned); i++) {
        if (cr_http_name_eq(n, nl, banned[i])) {
            fail("C1: header %s sent to the client", banned[i]);
        }
    }
    if (cr_http_name_eq(n, nl, "content-length")) {
        cl.ncl++;
    } else if (cr_http_name_eq(n, nl, "transfer-encoding")) {
        cl.nte++;
        if (!value_eq(v, vl, "chunked")) {
            fail("C1: Transfer-Encoding: %.*s sent to the client", (int)vl, v);
        }
    } else if (cr_http_name_eq(n, nl, "connection")) {
        if (value_eq(v, vl, "close")) {
            cl.nclose++;
        } else if (!value_eq(v, vl, "keep-alive")) {
            fail("C1: Connection: %.*s sent to the client", (int)vl, v);
        }
    }
}

static void
cl_flush_header(void)
{
    if (cl.pending) {
        cl_check_header();
    }
    cl.pending = 0;
    cl.name.len = 0;
    cl.value.len = 0;
}

static int
cl_begin(llhttp_t *p)
{
    (void)p;
    cl.name.len = 0;
    cl.value.len = 0;
    cl.pending = 0;
    cl.ncl = cl.nte = cl.nclose = 0;
    cl.status_at = NULL;
    return 0;
}

static int
cl_status(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    (void)len;
    if (cl.status_at == NULL) {
        cl.status_at = at;
    }
    return 0;
}

static int
cl_field(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    if (cl.pending) {
        cl_flush_header();
    }
    buf_add(&cl.name, at, len);
    return 0;
}

static int
cl_field_done(llhttp_t *p)
{
    (void)p;
    cl.pending = 1;
    return 0;
}

static int
cl_value(llhttp_t *p, const char *at, size_t len)
{
    (void)p;
    buf_add(&cl.value, at, len);
    return 0;
}

/*
 * A response head. Bodies of answers to HEAD are not sent, so the parser
 * must be told; the k-th final response answers the client's k-th request.
 * One exception: corral's own error for a request whose head it refused
 * before the end (414, 431, bad header) carries its body whatever the
 * method, and is the last thing on the connection.
 */
static int
cl_headers(llhttp_t *p)
{
    int status = llhttp_get_status_code(p);
    int head;

    cl_flush_header();
    if (cl.ncl > 1 || cl.nte > 1 || (cl.ncl && cl.nte)) {
        fail("C1: framing sent to the client: %u Content-Length, %u Transfer-Encoding",
             cl.ncl, cl.nte);
    }
    if (status < 200) {
        if (status == 101) {
            fail("C1: 101 sent to the client");
        }
        return 1;
    }
    head = cl.nfinal < oracle.n && oracle.reqs[cl.nfinal].head_done
           && oracle.reqs[cl.nfinal].method == HTTP_HEAD;
    cl.nfinal++;
    if (status == 204 || status == 304) {
        return 1;           /* RFC 9110 §6.4.1, whatever the headers say */
    }
    if (!head) {
        return 0;
    }
    if (cl.nclose && cl.ncl && p->content_length != 0 && cl.status_at != NULL) {
        const char *end = cl.out.p + cl.out.len;
        const char *h = memmem(cl.status_at, (size_t)(end - cl.status_at), "\r\n\r\n", 4);

        if (h != NULL && (uint64_t)(end - (h + 4)) == p->content_length) {
            return 0;
        }
    }
    return 1;
}

static void
client_check(void)
{
    llhttp_errno_t err;

    if (dump) {
        dump_bytes("to client", 0, cl.out.p, cl.out.len);
    }
    if (cl.truncated || cl.out.len == 0) {
        return;
    }
    llhttp_init(&cl.p, HTTP_RESPONSE, &cl.s);
    cl.nfinal = 0;
    err = llhttp_execute(&cl.p, cl.out.p, cl.out.len);
    if (err != HPE_OK) {
        fail("C1: corral's output to the client does not parse at byte %zu: %s (%s)",
             (size_t)(llhttp_get_error_pos(&cl.p) - cl.out.p), llhttp_errno_name(err),
             llhttp_get_error_reason(&cl.p));
    }
    if (!oracle.overflow && cl.nfinal > oracle.n + 1) {
        fail("C1: %zu final responses to %zu requests", cl.nfinal, oracle.n);
    }
}

/* Read what corral wrote to the client; returns progress. */
static int
client_read(int fd)
{
    char buf[65536];
    int moved = 0;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        moved = 1;
        if (cl.out.len + (size_t)n > CLIENT_OUT_MAX) {
            cl.truncated = 1;
        }
        if (!cl.truncated) {
            buf_add(&cl.out, buf, (size_t)n);
        }
    }
    if (n == 0 && !cl.eof) {
        cl.eof = 1;
        moved = 1;
    }
    if (cl.out.oom) {
        fail("out of memory keeping the client's output");
    }
    return moved;
}

/* ---------------------------------------------------------------------- */
/* Driving the worker                                                      */

/* A digest of corral's side, so that internal progress counts as progress. */
static uint64_t
worker_digest(const struct cr_worker *w)
{
    const struct cr_conn *c;
    uint64_t h = 1469598103934665603ULL;
    size_t i;

#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ULL)
    MIX(w->nconns);
    TAILQ_FOREACH(c, &w->conns, link) {
        MIX(c->state);
        MIX(c->flags);
        MIX(c->nreqs);
        MIX(c->proxy != NULL);
        MIX(cr_io_in_len(&c->io));
        MIX(cr_io_out_len(&c->io));
    }
    for (i = 0; i < w->conf->nupstreams; i++) {
        MIX(w->pools[i].nidle);
    }
#undef MIX
    return h;
}

/* Turn the loop until nothing moves. */
static void
settle(struct cr_worker *w, int client_fd)
{
    uint64_t before, after;
    int idle = 0, turns;

    for (turns = 0; turns < MAX_TURNS && idle < IDLE_TURNS; turns++) {
        int moved;

        before = worker_digest(w);
        event_base_loop(w->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        moved = up_accept();
        moved |= up_io();
        moved |= client_read(client_fd);
        after = worker_digest(w);
        if (moved || before != after) {
            idle = 0;
        } else {
            idle++;
        }
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_in sin;
    socklen_t slen = sizeof(sin);
    struct cr_conf_errs errs = { 0 };
    char text[sizeof(conf_fmt) + 32];
    unsigned live;
    const char *lv = getenv("CORRAL_FUZZ_LOG");
    size_t i;

    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    dump = getenv("CORRAL_FUZZ_DUMP") != NULL;
    stuck = getenv("CORRAL_FUZZ_STUCK") != NULL;
    cr_log_set_level(lv != NULL && cr_log_level_parse(lv) >= 0
                     ? (enum cr_log_level)cr_log_level_parse(lv) : CR_LOG_ERROR);

    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen_fd == -1 || bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)) == -1
        || listen(listen_fd, 128) == -1
        || getsockname(listen_fd, (struct sockaddr *)&sin, &slen) == -1)
    {
        perror("fuzz_request: fake upstream on 127.0.0.1");
        exit(1);
    }
    live = ntohs(sin.sin_port);
    dead_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sin.sin_port = 0;
    slen = sizeof(sin);
    if (dead_fd == -1 || bind(dead_fd, (struct sockaddr *)&sin, sizeof(sin)) == -1
        || getsockname(dead_fd, (struct sockaddr *)&sin, &slen) == -1)
    {
        perror("fuzz_request: dead upstream on 127.0.0.1");
        exit(1);
    }
    snprintf(text, sizeof(text), conf_fmt, ntohs(sin.sin_port), live, live);
    conf = cr_conf_load_buf("fuzz_request.yaml", text, strlen(text), &errs);
    if (conf == NULL) {
        for (i = 0; i < errs.n; i++) {
            fprintf(stderr, "%s\n", errs.msgs[i]);
        }
        cr_conf_errs_free(&errs);
        exit(1);
    }

    big_body = malloc(BIG_LEN);
    if (big_body == NULL) {
        exit(1);
    }
    memset(big_body, 'x', BIG_LEN);

    llhttp_settings_init(&oracle.s);
    oracle.s.on_message_begin = or_begin;
    oracle.s.on_url = or_url;
    oracle.s.on_headers_complete = or_headers;
    oracle.s.on_body = or_body;
    oracle.s.on_message_complete = or_complete;

    llhttp_settings_init(&up_settings);
    up_settings.on_message_begin = up_begin;
    up_settings.on_url = up_url;
    up_settings.on_header_field = up_field;
    up_settings.on_header_field_complete = up_field_done;
    up_settings.on_header_value = up_value;
    up_settings.on_headers_complete = up_headers;
    up_settings.on_body = up_body;
    up_settings.on_message_complete = up_complete;

    llhttp_settings_init(&cl.s);
    cl.s.on_message_begin = cl_begin;
    cl.s.on_status = cl_status;
    cl.s.on_header_field = cl_field;
    cl.s.on_header_field_complete = cl_field_done;
    cl.s.on_header_value = cl_value;
    cl.s.on_headers_complete = cl_headers;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cr_worker w;
    struct sockaddr_in peer;
    char err[256];
    int sv[2], fd;
    size_t off = 0, i;

    oracle_parse(data, size);
    nups = 0;
    big_used = 0;
    cl.out.len = 0;
    cl.truncated = 0;
    cl.eof = 0;

    memset(&w, 0, sizeof(w));
    TAILQ_INIT(&w.conns);
    w.conf = conf;
    w.base = event_base_new();
    if (w.base == NULL || cr_proxy_worker_init(&w, err, sizeof(err)) != CR_OK) {
        fprintf(stderr, "fuzz_request: worker setup failed\n");
        abort();
    }
    cr_io_loop_init(&w.ioloop, w.base);
    cr_conn_worker_init(&w);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1) {
        perror("fuzz_request: socketpair");
        abort();
    }
    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    peer.sin_port = htons(40000);
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_conn_accept(&w, sv[0], (struct sockaddr *)&peer, sizeof(peer));
    fd = sv[1];

    /* the input, a piece at a time, each given the time to be digested */
    while (off < size) {
        size_t want = size - off < PIECE ? size - off : PIECE;
        ssize_t n = write(fd, data + off, want);

        if (n <= 0) {
            break;      /* settled and not reading: closed, or holding back */
        }
        off += (size_t)n;
        settle(&w, fd);
    }
    shutdown(fd, SHUT_WR);
    settle(&w, fd);
    client_check();
    if (stuck && w.nconns != 0) {
        const struct cr_conn *c = TAILQ_FIRST(&w.conns);

        fail("conn still open after the client's EOF: state %d flags 0x%x proxy %d "
             "in %zu out %zu", (int)c->state, c->flags, c->proxy != NULL,
             cr_io_in_len(&c->io), cr_io_out_len(&c->io));
    }

    /* the upstream side first, with resets, then corral's side */
    while ((i = (size_t)up_accept()) != 0) {
        continue;
    }
    for (i = 0; i < nups; i++) {
        up_free(&ups[i]);
    }
    cr_conn_close_all(&w);
    cr_proxy_worker_fini(&w);
    cr_conn_worker_fini(&w);
    cr_io_loop_fini(&w.ioloop);
    event_base_free(w.base);
    close(fd);
    return 0;
}
