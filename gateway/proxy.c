/*
 * proxy.c - glue between a client request and an upstream server.
 *
 * One struct cr_proxy lives from a routed request head to the end of its
 * response. The request head is serialised once (and kept until the first
 * response byte, so a failed connection can be retried on another server),
 * then the body is streamed: the client's parser hands decoded body pieces
 * to cr_proxy_req_body(), which re-frames them for the upstream; the
 * upstream's response parser hands the response body to the client the same
 * way. Framing on each side is always written by corral (RFC 9112 §6), so
 * no peer's framing is ever passed through for the other to interpret.
 *
 * Backpressure: when a receiving side has more than CR_PROXY_HIGH_WATER
 * bytes queued, the sending side stops being read until the write
 * callback (low watermark CR_PROXY_LOW_WATER) says it drained. Together
 * with the read watermark on every socket this bounds a transfer's memory
 * to a few hundred KiB whatever its size.
 *
 * Retries (upstream "retries"): a failed connect is retried on another
 * server for any method, since nothing was sent. A connection that dies
 * before any response byte is retried only for idempotent requests without
 * a body (RFC 9110 §9.2.2); a stale keep-alive connection is retried once
 * more on a fresh connection to the same server without counting as a try.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/conf.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "proxy.h"
#include "router.h"
#include "stats.h"
#include "upstream.h"
#include "worker.h"

#define P_CONNECTING    0x0001u /* connect in progress */
#define P_REUSED        0x0002u /* uc came from the idle pool */
#define P_HEAD_SENT     0x0004u /* request head queued upstream */
#define P_BODY_SENT     0x0008u /* some request body queued upstream */
#define P_REQ_DONE      0x0010u /* whole request queued upstream */
#define P_RESP_BYTES    0x0020u /* upstream sent something */
#define P_RESP_HEAD     0x0040u /* response head queued to the client */
#define P_RESP_DONE     0x0080u /* whole response queued to the client */
#define P_UP_PAUSED     0x0100u /* not reading upstream: client is full */
#define P_NO_REUSE      0x0200u /* next try must open a fresh connection */
#define P_UP_DIRTY      0x0400u /* upstream conn must not be reused */
#define P_FRESH_RETRY   0x0800u /* the stale-connection retry was used */

enum framing {
    FRAME_NONE = 0,     /* no body */
    FRAME_LENGTH,       /* Content-Length */
    FRAME_CHUNKED,      /* chunked, written by us */
    FRAME_CLOSE         /* until the connection closes (HTTP/1.0 client) */
};

struct cr_proxy {
    struct cr_conn              *c;
    const struct cr_conf_route  *route;
    struct cr_upstream_pool     *pool;
    struct cr_upstream_server   *srv;
    struct cr_upstream_conn     *uc;
    struct cr_buf                head;      /* request head, for retries */
    struct cr_http_parser        resp;
    struct cr_http_limits        resp_limits;
    uint64_t                     tried;     /* server bits already tried */
    unsigned                     tries;
    unsigned                     flags;     /* P_* */
    enum framing                 req_frame;
    enum framing                 resp_frame;
    int                          client_keep;
    int                          last_status;   /* for the final error */
    uint64_t                     sent_us;       /* head queued upstream */
};

/* Counters of the server <p> is using now (a scratch row if none). */
static struct cr_shm_server_stats *
srv_stats(const struct cr_proxy *p)
{
    return cr_stats_server(p->srv != NULL ? p->srv->conf->stats_row : -1);
}

#define SRV_ADD(p, field, v) \
    cr_shm_add(&srv_stats(p)->counters[CR_SHM_S_##field], (uint64_t)(v))

/* <p> starts or stops using server p->srv. */
static void
srv_enter(struct cr_proxy *p)
{
    p->srv->active++;
    SRV_ADD(p, requests_total, 1);
    SRV_ADD(p, requests_active, 1);
}

static void
srv_leave(struct cr_proxy *p)
{
    p->srv->active--;
    cr_shm_sub(&srv_stats(p)->counters[CR_SHM_S_requests_active], 1);
    p->srv = NULL;
}

/* Bytes queued to the upstream. */
static void
count_up_out(struct cr_proxy *p, size_t n)
{
    CR_STAT_ADD(upstream_bytes_out_total, n);
    SRV_ADD(p, bytes_out_total, n);
}

static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_write_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);
static int  resp_head_cb(void *arg);
static int  resp_body_cb(void *arg, const char *at, size_t len);
static void try_next(struct cr_proxy *p);

int
cr_proxy_worker_init(struct cr_worker *w, char *err, size_t errlen)
{
    return cr_upstream_pools_init(w, err, errlen);
}

void
cr_proxy_worker_fini(struct cr_worker *w)
{
    cr_upstream_pools_free(w);
}

static int
is_client_1_0(const struct cr_proxy *p)
{
    return p->c->req.http_major == 1 && p->c->req.http_minor == 0;
}

/* Append a header value with trailing whitespace trimmed. */
static void
add_value(struct cr_buf *b, const char *v, size_t len)
{
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
        len--;
    }
    cr_buf_add(b, v, len);
}

/*
 * Serialise the request head for the upstream into p->head: origin-form
 * target (with strip_prefix applied), the client's end-to-end headers less
 * those the route removes or sets, the route's own, X-Forwarded-*, Via and
 * our framing. Returns CR_OK, or CR_ERR when out of memory.
 */
static int
build_request_head(struct cr_proxy *p)
{
    const struct cr_conn *c = p->c;
    const struct cr_http_parser *hp = &c->req;
    const struct cr_conf_header_rules *rules = &p->route->request_headers;
    struct cr_buf *b = &p->head;
    const char *host = c->host_from_target ? c->host : NULL;
    size_t hostlen = c->hostlen, i;
    const char *mname = llhttp_method_name((llhttp_method_t)hp->method);

    /* origin-form upstream, whatever form the client used (RFC 9112 §3.2.1) */
    cr_buf_addf(b, "%s ", mname);
    if (p->route->strip_prefix != NULL && c->path[0] == '/') {
        char stripped[4096], *big = NULL, *out = stripped;
        size_t cap = sizeof(stripped), n;

        if (c->pathlen + 2 > cap) {
            cap = c->pathlen + 2;
            big = malloc(cap);
            if (big == NULL) {
                return CR_ERR;
            }
            out = big;
        }
        n = cr_router_strip_prefix(p->route->strip_prefix, c->path, c->pathlen, out, cap);
        if (n == (size_t)-1) {
            free(big);
            return CR_ERR;
        }
        cr_buf_add(b, out, n);
        free(big);
    } else {
        cr_buf_add(b, c->path, c->pathlen);
    }
    cr_buf_add(b, c->query, c->querylen);       /* the query, as received */
    cr_buf_adds(b, " HTTP/1.1\r\n");

    for (i = 0; i < hp->nfields; i++) {
        const struct cr_http_field *f = &hp->fields[i];
        const char *name = cr_http_str(hp, f->name);
        size_t nlen = f->name.len;

        if (cr_http_is_hop_by_hop(hp, name, nlen)
            || cr_http_name_eq(name, nlen, "content-length")
            || cr_http_name_eq(name, nlen, "x-forwarded-for")
            || cr_http_name_eq(name, nlen, "x-forwarded-proto")
            || cr_http_name_eq(name, nlen, "x-forwarded-host")
            || cr_http_name_eq(name, nlen, "via")
            || cr_http_rules_drop(rules, name, nlen))
        {
            continue;
        }
        if (host != NULL && cr_http_name_eq(name, nlen, "host")) {
            continue;       /* the absolute-form authority wins */
        }
        cr_buf_add(b, name, nlen);
        cr_buf_adds(b, ": ");
        add_value(b, cr_http_str(hp, f->value), f->value.len);
        cr_buf_adds(b, "\r\n");
    }
    if (host != NULL) {
        cr_buf_adds(b, "Host: ");
        cr_buf_add(b, host, hostlen);
        cr_buf_adds(b, "\r\n");
    } else if (!(hp->flags & CR_HTTP_F_HOST)) {
        /* HTTP/1.0 without Host: name the server we talk to */
        cr_buf_addf(b, "Host: %s\r\n", p->srv != NULL ? p->srv->conf->addr.text
                                                       : p->pool->conf->servers[0].addr.text);
    }
    cr_http_rules_add(rules, b);

    if (!cr_http_rules_drop(rules, "x-forwarded-for", 15)) {
        cr_buf_adds(b, "X-Forwarded-For: ");
        for (i = 0; i < hp->nfields; i++) {
            const struct cr_http_field *f = &hp->fields[i];

            if (cr_http_name_eq(cr_http_str(hp, f->name), f->name.len,
                                "x-forwarded-for") && f->value.len != 0)
            {
                add_value(b, cr_http_str(hp, f->value), f->value.len);
                cr_buf_adds(b, ", ");
            }
        }
        cr_buf_addf(b, "%s\r\n", p->c->peer);
    }
    if (!cr_http_rules_drop(rules, "x-forwarded-proto", 17)) {
        cr_buf_adds(b, "X-Forwarded-Proto: http\r\n");
    }
    if (!cr_http_rules_drop(rules, "x-forwarded-host", 16)) {
        const struct cr_http_field *f = cr_http_find(hp, "host");

        if (host != NULL) {
            cr_buf_adds(b, "X-Forwarded-Host: ");
            cr_buf_add(b, host, hostlen);
            cr_buf_adds(b, "\r\n");
        } else if (f != NULL) {
            cr_buf_adds(b, "X-Forwarded-Host: ");
            add_value(b, cr_http_str(hp, f->value), f->value.len);
            cr_buf_adds(b, "\r\n");
        }
    }
    if (!cr_http_rules_drop(rules, "via", 3)) {
        cr_buf_adds(b, "Via: ");
        for (i = 0; i < hp->nfields; i++) {
            const struct cr_http_field *f = &hp->fields[i];

            if (cr_http_name_eq(cr_http_str(hp, f->name), f->name.len, "via")
                && f->value.len != 0)
            {
                add_value(b, cr_http_str(hp, f->value), f->value.len);
                cr_buf_adds(b, ", ");
            }
        }
        cr_buf_addf(b, "%u.%u corral\r\n", hp->http_major, hp->http_minor);
    }
    if (hp->flags & CR_HTTP_F_CHUNKED) {
        p->req_frame = FRAME_CHUNKED;
        cr_buf_adds(b, "Transfer-Encoding: chunked\r\n");
    } else if (hp->flags & CR_HTTP_F_CLEN) {
        p->req_frame = hp->content_length ? FRAME_LENGTH : FRAME_NONE;
        cr_buf_addf(b, "Content-Length: %llu\r\n",
                    (unsigned long long)hp->content_length);
    } else {
        p->req_frame = FRAME_NONE;
    }
    if (p->pool->conf->keepalive == 0) {
        cr_buf_adds(b, "Connection: close\r\n");
    }
    cr_buf_adds(b, "\r\n");
    return b->oom ? CR_ERR : CR_OK;
}

/* Detach and free <p>; the upstream conn goes back to the pool or closes. */
static struct cr_conn *
proxy_free(struct cr_proxy *p, int reusable)
{
    struct cr_conn *c = p->c;

    if (p->uc != NULL) {
        if (reusable) {
            cr_upstream_release(p->uc, 1);
        } else {
            cr_upstream_close(p->uc);
        }
        p->uc = NULL;
    }
    if (p->srv != NULL) {
        srv_leave(p);
    }
    cr_buf_free(&p->head);
    cr_http_parser_free(&p->resp);
    c->proxy = NULL;
    free(p);
    return c;
}

/* End the exchange with an error made by corral (or a cut connection). */
static void
proxy_fail(struct cr_proxy *p, int status, const char *why)
{
    int started = (p->flags & P_RESP_HEAD) != 0;
    struct cr_conn *c;

    if (p->srv != NULL) {
        cr_log_warn("conn %llu upstream %s/%s: %s", (unsigned long long)p->c->id,
                    p->pool->conf->name, p->srv->conf->addr.text, why);
    } else {
        cr_log_warn("conn %llu upstream %s: %s", (unsigned long long)p->c->id,
                    p->pool->conf->name, why);
    }
    c = proxy_free(p, 0);
    if (started) {
        cr_conn_close(c, why);      /* the client cannot be told otherwise */
        return;
    }
    cr_conn_error(c, status, why);
}

void
cr_proxy_abort(struct cr_proxy *p, const char *why)
{
    cr_log_debug("conn %llu: proxy aborted: %s", (unsigned long long)p->c->id, why);
    proxy_free(p, 0);
}

int
cr_proxy_resp_started(const struct cr_proxy *p)
{
    return (p->flags & P_RESP_HEAD) != 0;
}

void
cr_proxy_start(struct cr_conn *c, const struct cr_conf_route *route)
{
    struct cr_proxy *p;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        cr_conn_error(c, 503, "out of memory");
        return;
    }
    p->c = c;
    p->route = route;
    p->pool = &c->w->pools[route->upstream];
    p->last_status = 502;
    c->proxy = p;
    p->resp_limits.max_head_bytes = 64 * 1024;
    p->resp_limits.max_headers = CR_HTTP_MAX_HEADERS_HARD;
    if (build_request_head(p) != CR_OK) {
        proxy_fail(p, 503, "out of memory");
        return;
    }
    try_next(p);
}

static void
attach(struct cr_proxy *p, struct cr_upstream_conn *uc)
{
    p->uc = uc;
    bufferevent_setcb(uc->bev, up_read_cb, up_write_cb, up_event_cb, p);
    bufferevent_setwatermark(uc->bev, EV_READ, 0, CR_PROXY_READ_MAX);
    bufferevent_setwatermark(uc->bev, EV_WRITE, CR_PROXY_LOW_WATER, 0);
}

static void
set_timeouts(struct cr_proxy *p, uint64_t read_ms, uint64_t write_ms)
{
    struct timeval r, w;

    r.tv_sec = (time_t)(read_ms / 1000);
    r.tv_usec = (suseconds_t)((read_ms % 1000) * 1000);
    w.tv_sec = (time_t)(write_ms / 1000);
    w.tv_usec = (suseconds_t)((write_ms % 1000) * 1000);
    bufferevent_set_timeouts(p->uc->bev, read_ms ? &r : NULL, write_ms ? &w : NULL);
}

/*
 * The upstream connection is usable: queue the head and let the client's
 * body flow. Ends with cr_conn_pump(), which may free <p>.
 */
static void
send_head(struct cr_proxy *p)
{
    const struct cr_conf_upstream *cu = p->pool->conf;
    struct cr_conn *c = p->c;

    p->flags &= ~(P_CONNECTING | P_RESP_BYTES);
    p->flags |= P_HEAD_SENT;
    p->uc->nreqs++;
    cr_http_parser_free(&p->resp);
    cr_http_parser_init(&p->resp, 0, &p->resp_limits, resp_head_cb, resp_body_cb, p);
    set_timeouts(p, (p->flags & P_REQ_DONE) ? cu->read_timeout_ms : 0,
                 cu->read_timeout_ms);
    bufferevent_write(p->uc->bev, p->head.p, p->head.len);
    bufferevent_enable(p->uc->bev, EV_READ | EV_WRITE);
    count_up_out(p, p->head.len);
    p->sent_us = cr_stats_now_us();

    if (p->flags & P_REQ_DONE) {
        return;             /* a retry of a bodyless request */
    }
    cr_conn_body_start(c);
}

/* Pick a server and get a connection to it; on failure answer 502/503. */
static void
try_next(struct cr_proxy *p)
{
    const struct cr_conf_upstream *cu = p->pool->conf;
    struct cr_upstream_want want = { 0, 0, 0 };
    struct cr_upstream_conn *uc;

    for (;;) {
        if (!(p->flags & P_NO_REUSE)) {
            if (p->tries > cu->retries) {
                proxy_fail(p, p->last_status, "no more tries");
                return;
            }
            if (p->srv != NULL) {
                srv_leave(p);
            }
            if (p->tries > 0) {
                CR_STAT_INC(upstream_retries_total);
            }
            want.tried = p->tried;
            cr_upstream_want_key(p->pool, &p->c->req, p->c->peer, &want);
            p->srv = cr_upstream_pick(p->pool, &want);
            if (p->srv == NULL) {
                if (p->tries == 0) {
                    proxy_fail(p, 503, "no server available");
                } else {
                    proxy_fail(p, p->last_status, "no other server to try");
                }
                return;
            }
            srv_enter(p);
            p->tried |= 1ULL << (p->srv->idx % 64);
            p->tries++;
            uc = cr_upstream_idle_get(p->srv);
            if (uc != NULL) {
                CR_STAT_INC(upstream_reuses_total);
                p->flags |= P_REUSED;
                attach(p, uc);
                send_head(p);
                return;
            }
        }
        p->flags &= ~(P_REUSED | P_NO_REUSE);
        uc = cr_upstream_connect(p->srv);
        if (uc == NULL) {
            cr_log_warn("upstream %s/%s: connect: %s", cu->name,
                        p->srv->conf->addr.text, strerror(errno));
            CR_STAT_INC(upstream_failures_total);
            SRV_ADD(p, failures_total, 1);
            cr_upstream_server_failed(p->srv, CR_UPSTREAM_FAIL_CONNECT);
            p->last_status = 502;
            continue;
        }
        CR_STAT_INC(upstream_connects_total);
        SRV_ADD(p, connects_total, 1);
        attach(p, uc);
        p->flags |= P_CONNECTING;
        set_timeouts(p, 0, cu->connect_timeout_ms);
        bufferevent_enable(uc->bev, EV_READ | EV_WRITE);
        return;
    }
}

/*
 * The upstream connection failed before any response byte. Retry if that
 * is safe, else answer <status>.
 */
static void
upstream_failed(struct cr_proxy *p, int status, const char *why, int server_fault)
{
    const struct cr_http_parser *hp = &p->c->req;
    int reused = (p->flags & P_REUSED) != 0;
    int bodyless = p->req_frame == FRAME_NONE;
    int safe;

    cr_upstream_close(p->uc);
    p->uc = NULL;
    p->last_status = status;
    if (status == 504) {
        CR_STAT_INC(upstream_timeouts_total);
        SRV_ADD(p, timeouts_total, 1);
    } else {
        CR_STAT_INC(upstream_failures_total);
        SRV_ADD(p, failures_total, 1);
    }

    if (p->flags & P_CONNECTING) {
        safe = 1;           /* nothing was sent */
    } else {
        safe = bodyless && cr_http_method_idempotent(hp->method)
               && !(p->flags & P_RESP_BYTES);
    }
    if (!safe) {
        if (server_fault) {
            cr_upstream_server_failed(p->srv, status == 504 ? CR_UPSTREAM_FAIL_TIMEOUT
                                                            : CR_UPSTREAM_FAIL_ERROR);
        }
        proxy_fail(p, status, why);
        return;
    }
    cr_log_info("upstream %s/%s: %s; retrying", p->pool->conf->name,
                p->srv->conf->addr.text, why);
    if (reused && !(p->flags & P_FRESH_RETRY)) {
        /* a keep-alive conn the server had closed: same server, new conn */
        CR_STAT_INC(upstream_retries_total);
        p->flags |= P_NO_REUSE | P_FRESH_RETRY;
    } else if (server_fault) {
        cr_upstream_server_failed(p->srv, status == 504 ? CR_UPSTREAM_FAIL_TIMEOUT
                                                        : CR_UPSTREAM_FAIL_ERROR);
    }
    p->flags &= ~(P_CONNECTING | P_HEAD_SENT | P_RESP_BYTES);
    try_next(p);
}

int
cr_proxy_req_body(struct cr_proxy *p, const char *at, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(p->uc->bev);

    p->flags |= P_BODY_SENT;
    count_up_out(p, len);
    if (p->req_frame == FRAME_CHUNKED) {
        if (evbuffer_add_printf(out, "%zx\r\n", len) == -1
            || evbuffer_add(out, at, len) == -1 || evbuffer_add(out, "\r\n", 2) == -1)
        {
            return -1;
        }
        return 0;
    }
    return evbuffer_add(out, at, len) == -1 ? -1 : 0;
}

int
cr_proxy_req_full(const struct cr_proxy *p)
{
    return p->uc != NULL
           && evbuffer_get_length(bufferevent_get_output(p->uc->bev))
              > CR_PROXY_HIGH_WATER;
}

/* Both directions are complete: hand everything back. */
static void
finish(struct cr_proxy *p)
{
    int reusable, close;
    struct cr_conn *c;

    reusable = !(p->flags & P_UP_DIRTY) && cr_http_should_keep_alive(&p->resp)
               && (p->flags & P_REQ_DONE);
    close = !p->client_keep || p->resp_frame == FRAME_CLOSE;
    cr_upstream_server_ok(p->srv, p->resp.status);
    c = proxy_free(p, reusable);
    cr_conn_response_done(c, close);
}

void
cr_proxy_req_done(struct cr_proxy *p)
{
    p->flags |= P_REQ_DONE;
    if (p->req_frame == FRAME_CHUNKED) {
        evbuffer_add(bufferevent_get_output(p->uc->bev), "0\r\n\r\n", 5);
    }
    if (p->flags & P_RESP_DONE) {
        finish(p);
        return;
    }
    /* now the upstream owes us an answer: its read timeout starts */
    set_timeouts(p, p->pool->conf->read_timeout_ms, p->pool->conf->read_timeout_ms);
}

/*
 * The response head is complete (resp parser callback): write the client's
 * head. Returns 1 when no body follows, 0 otherwise, -1 to refuse.
 */
static int
resp_head_cb(void *arg)
{
    struct cr_proxy *p = arg;
    const struct cr_http_parser *hp = &p->resp;
    const struct cr_conf_header_rules *rules = &p->route->response_headers;
    struct evbuffer *out = bufferevent_get_output(p->c->bev);
    struct cr_buf b = { 0 };
    int nobody, head_req = p->c->req.method == HTTP_HEAD;
    size_t i;

    if (hp->status >= 100 && hp->status < 200) {
        if (hp->status == 101) {
            return -1;      /* we never asked for an upgrade */
        }
        /* interim: relay to HTTP/1.1 clients (RFC 9110 §15.2), bare */
        if (!is_client_1_0(p)) {
            evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n\r\n", hp->status,
                                cr_http_reason(hp->status));
        }
        return 1;
    }

    nobody = head_req || hp->status == 204 || hp->status == 304;
    /*
     * An answer that comes before the request body is all sent ends the
     * connection (we stop forwarding the body), so it says so.
     */
    p->client_keep = cr_http_should_keep_alive(&p->c->req)
                     && !(p->c->flags & CR_CONN_F_CLOSE) && !p->c->w->draining
                     && (p->flags & P_REQ_DONE);

    cr_buf_addf(&b, "HTTP/1.1 %d ", hp->status);
    if (hp->reason.len != 0) {
        cr_buf_add(&b, cr_http_str(hp, hp->reason), hp->reason.len);
    } else {
        cr_buf_adds(&b, cr_http_reason(hp->status));
    }
    cr_buf_adds(&b, "\r\n");
    for (i = 0; i < hp->nfields; i++) {
        const struct cr_http_field *f = &hp->fields[i];
        const char *name = cr_http_str(hp, f->name);
        size_t nlen = f->name.len;

        if (cr_http_is_hop_by_hop(hp, name, nlen)
            || cr_http_name_eq(name, nlen, "content-length")
            || cr_http_name_eq(name, nlen, "via")
            || cr_http_rules_drop(rules, name, nlen))
        {
            continue;
        }
        cr_buf_add(&b, name, nlen);
        cr_buf_adds(&b, ": ");
        add_value(&b, cr_http_str(hp, f->value), f->value.len);
        cr_buf_adds(&b, "\r\n");
    }
    cr_http_rules_add(rules, &b);
    if (!cr_http_rules_drop(rules, "via", 3)) {
        cr_buf_adds(&b, "Via: ");
        for (i = 0; i < hp->nfields; i++) {
            const struct cr_http_field *f = &hp->fields[i];

            if (cr_http_name_eq(cr_http_str(hp, f->name), f->name.len, "via")
                && f->value.len != 0)
            {
                add_value(&b, cr_http_str(hp, f->value), f->value.len);
                cr_buf_adds(&b, ", ");
            }
        }
        cr_buf_addf(&b, "%u.%u corral\r\n", hp->http_major, hp->http_minor);
    }

    if (nobody) {
        p->resp_frame = FRAME_NONE;
        /* a HEAD or 304 answer may state the length it would have had */
        if ((hp->flags & CR_HTTP_F_CLEN) && hp->status != 204) {
            cr_buf_addf(&b, "Content-Length: %llu\r\n",
                        (unsigned long long)hp->content_length);
        }
    } else if (hp->flags & CR_HTTP_F_CLEN) {
        p->resp_frame = FRAME_LENGTH;
        cr_buf_addf(&b, "Content-Length: %llu\r\n",
                    (unsigned long long)hp->content_length);
    } else if (!is_client_1_0(p)) {
        p->resp_frame = FRAME_CHUNKED;
        cr_buf_adds(&b, "Transfer-Encoding: chunked\r\n");
    } else {
        p->resp_frame = FRAME_CLOSE;    /* HTTP/1.0: the end is our close */
        p->client_keep = 0;
    }
    if (!p->client_keep) {
        cr_buf_adds(&b, "Connection: close\r\n");
    } else if (is_client_1_0(p)) {
        cr_buf_adds(&b, "Connection: keep-alive\r\n");
    }
    cr_buf_adds(&b, "\r\n");
    if (b.oom) {
        cr_buf_free(&b);
        return -1;
    }
    evbuffer_add(out, b.p, b.len);
    cr_conn_count_response(p->c, hp->status, 0);
    cr_conn_count_out(p->c, b.len);
    SRV_ADD(p, responses_1xx_total + cr_stats_class(hp->status), 1);
    cr_buf_free(&b);
    p->flags |= P_RESP_HEAD;
    return nobody ? 1 : 0;
}

static int
resp_body_cb(void *arg, const char *at, size_t len)
{
    struct cr_proxy *p = arg;
    struct evbuffer *out = bufferevent_get_output(p->c->bev);

    cr_conn_count_out(p->c, len);
    if (p->resp_frame == FRAME_CHUNKED) {
        if (evbuffer_add_printf(out, "%zx\r\n", len) == -1
            || evbuffer_add(out, at, len) == -1 || evbuffer_add(out, "\r\n", 2) == -1)
        {
            return -1;
        }
        return 0;
    }
    return evbuffer_add(out, at, len) == -1 ? -1 : 0;
}

/* The response message is complete. May free <p>. */
static void
resp_done(struct cr_proxy *p)
{
    if (p->resp_frame == FRAME_CHUNKED) {
        evbuffer_add(bufferevent_get_output(p->c->bev), "0\r\n\r\n", 5);
    }
    p->flags |= P_RESP_DONE;
    if (evbuffer_get_length(bufferevent_get_input(p->uc->bev)) != 0) {
        p->flags |= P_UP_DIRTY;     /* bytes after the response: never reuse */
    }
    if (!(p->flags & P_REQ_DONE)) {
        /*
         * The upstream answered before the request body was all sent. We
         * stop here: the upstream conn cannot be reused and the client
         * connection is closed once the answer is out.
         */
        p->flags |= P_UP_DIRTY;
        p->c->flags |= CR_CONN_F_CLOSE;
    }
    finish(p);
}

/* Parse what the upstream sent, as far as the client can take it. */
static void
pump_response(struct cr_proxy *p)
{
    struct evbuffer *in = bufferevent_get_input(p->uc->bev);
    struct evbuffer_iovec vec;
    enum cr_http_event ev;
    size_t n;

    while (evbuffer_get_length(in) != 0) {
        if (cr_conn_output_full(p->c)) {
            p->flags |= P_UP_PAUSED;
            bufferevent_disable(p->uc->bev, EV_READ);
            return;
        }
        if (!(p->flags & P_RESP_BYTES)) {
            uint64_t us = cr_stats_now_us() - p->sent_us;

            p->flags |= P_RESP_BYTES;
            cr_shm_hist_add(&cr_stats_slot->upstream_ttfb, us);
            cr_shm_hist_add(&srv_stats(p)->ttfb, us);
        }
        if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1) {
            break;
        }
        n = cr_http_parser_execute(&p->resp, vec.iov_base, vec.iov_len, &ev);
        evbuffer_drain(in, n);
        CR_STAT_ADD(upstream_bytes_in_total, n);
        SRV_ADD(p, bytes_in_total, n);
        if (ev == CR_HTTP_EV_DONE) {
            resp_done(p);
            return;
        }
        if (ev == CR_HTTP_EV_ERROR) {
            CR_STAT_INC(parse_errors_total);
            CR_STAT_INC(upstream_failures_total);
            SRV_ADD(p, failures_total, 1);
            if (p->flags & P_RESP_HEAD) {
                proxy_fail(p, 502, "malformed response body");
            } else {
                proxy_fail(p, 502, p->resp.err_reason ? p->resp.err_reason
                                                      : "malformed response");
            }
            return;
        }
    }
}

static void
up_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    pump_response(arg);
}

static void
up_write_cb(struct bufferevent *bev, void *arg)
{
    struct cr_proxy *p = arg;
    struct cr_conn *c = p->c;

    (void)bev;
    if (c->flags & CR_CONN_F_READ_PAUSED) {
        c->flags &= ~CR_CONN_F_READ_PAUSED;
        bufferevent_enable(c->bev, EV_READ);
        cr_conn_pump(c);
    }
}

void
cr_proxy_client_drained(struct cr_proxy *p)
{
    if (p->flags & P_UP_PAUSED) {
        p->flags &= ~P_UP_PAUSED;
        bufferevent_enable(p->uc->bev, EV_READ);
        pump_response(p);
    }
}

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct cr_proxy *p = arg;
    enum cr_http_event ev;

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        send_head(p);
        return;
    }
    if (p->flags & P_CONNECTING) {
        if (what & BEV_EVENT_TIMEOUT) {
            upstream_failed(p, 504, "connect timeout", 1);
        } else {
            char why[128];

            snprintf(why, sizeof(why), "connect: %s",
                     evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
            upstream_failed(p, 502, why, 1);
        }
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        /*
         * A slow answer is the endpoint's, not proof the server is gone:
         * it does not count toward max_fails (connect failures do), and it
         * is not retried, which would only double the load on a slow path.
         */
        CR_STAT_INC(upstream_timeouts_total);
        SRV_ADD(p, timeouts_total, 1);
        proxy_fail(p, 504, (p->flags & P_RESP_HEAD) ? "read timeout mid-response"
                                                    : "read timeout");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        /* a response delimited by the close ends here (RFC 9112 §6.3 item 8) */
        if (p->flags & P_RESP_BYTES) {
            p->flags |= P_UP_DIRTY;
            ev = cr_http_parser_finish(&p->resp);
            if (ev == CR_HTTP_EV_DONE) {
                resp_done(p);
                return;
            }
            proxy_fail(p, 502, "upstream closed mid-response");
            return;
        }
        upstream_failed(p, 502, "upstream closed before responding", 0);
        return;
    }
    if (p->flags & P_RESP_BYTES) {
        proxy_fail(p, 502, "upstream connection error mid-response");
        return;
    }
    upstream_failed(p, 502, "upstream connection error", 0);
}
