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
#define P_UPGRADE       0x1000u /* the upstream answered 101: tunnel next */
#define P_TUNNEL        0x2000u /* bytes flow both ways, unparsed */
#define P_BUDGET        0x4000u /* a retry counted in the pool's budget */
#define P_RETRY_STATUS  0x8000u /* the answer's status is retried instead */

#define PROXY_COPY_MAX  2048    /* body bytes of a read copied, not moved */

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
    struct cr_waitq_entry        wq;            /* waiting under max_connections */
    const char                  *move_start;    /* body bytes to move, not copy */
    const char                  *move_end;
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

static void waitq_kick(struct cr_upstream_pool *pool);

static void
srv_leave(struct cr_proxy *p)
{
    p->srv->active--;
    if (p->pool->waitq.len != 0) {
        waitq_kick(p->pool);    /* a slot came free */
    }
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

static void up_io(struct cr_upstream_conn *uc, unsigned r, void *arg);
static int  resp_head_cb(void *arg);
static int  resp_body_cb(void *arg, const char *at, size_t len);
static void try_next(struct cr_proxy *p);

/*
 * Exchanges that ended, kept with their head buffer and response parser
 * buffers: most requests then allocate none of these.
 */
#define PROXY_CACHE 32
static struct cr_proxy *proxy_cache[PROXY_CACHE];
static unsigned proxy_ncached;

static void
proxy_destroy(struct cr_proxy *p)
{
    cr_buf_free(&p->head);
    cr_http_parser_free(&p->resp);
    free(p);
}

/* A zeroed exchange, from the cache when there is one. */
static struct cr_proxy *
proxy_new(void)
{
    struct cr_proxy *p;
    struct cr_buf head;
    struct cr_http_parser resp;

    if (proxy_ncached == 0) {
        return calloc(1, sizeof(struct cr_proxy));
    }
    p = proxy_cache[--proxy_ncached];
    head = p->head;
    resp = p->resp;
    memset(p, 0, sizeof(*p));
    p->head.p = head.p;
    p->head.cap = head.cap;
    /* only the parser's buffers survive: cr_http_parser_reuse() keeps them */
    p->resp.arena = resp.arena;
    p->resp.arena_cap = resp.arena_cap;
    p->resp.fields = resp.fields;
    p->resp.fields_cap = resp.fields_cap;
    return p;
}

int
cr_proxy_worker_init(struct cr_worker *w, char *err, size_t errlen)
{
    return cr_upstream_pools_init(w, err, errlen);
}

void
cr_proxy_worker_fini(struct cr_worker *w)
{
    cr_upstream_pools_free(w);
    while (proxy_ncached > 0) {
        proxy_destroy(proxy_cache[--proxy_ncached]);
    }
}

static int
is_client_1_0(const struct cr_proxy *p)
{
    return p->c->rq->p.http_major == 1 && p->c->rq->p.http_minor == 0;
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

/* Our own Via element: "<version of the message> corral". */
static void
add_via_self(struct cr_buf *b, const struct cr_http_parser *hp)
{
    cr_buf_add_u64(b, hp->http_major);
    cr_buf_add(b, ".", 1);
    cr_buf_add_u64(b, hp->http_minor);
    cr_buf_adds(b, " corral\r\n");
}

static void
add_length(struct cr_buf *b, uint64_t n)
{
    cr_buf_adds(b, "Content-Length: ");
    cr_buf_add_u64(b, n);
    cr_buf_adds(b, "\r\n");
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
    const struct cr_req *c = p->c->rq;
    const struct cr_http_parser *hp = &c->p;
    const struct cr_conf_header_rules *rules = &p->route->request_headers;
    int any_rules = cr_http_rules_any(rules);
    struct cr_buf *b = &p->head;
    const char *host = c->host_from_target ? c->host : NULL;
    size_t hostlen = c->hostlen, i;
    const char *mname = llhttp_method_name((llhttp_method_t)hp->method);

    /* origin-form upstream, whatever form the client used (RFC 9112 §3.2.1) */
    cr_buf_adds(b, mname);
    cr_buf_add(b, " ", 1);
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

        switch (f->kind) {
        case CR_HDR_CONTENT_LENGTH:
        case CR_HDR_X_FORWARDED_FOR:
        case CR_HDR_X_FORWARDED_PROTO:
        case CR_HDR_X_FORWARDED_HOST:
        case CR_HDR_VIA:
            continue;           /* written below, by us */
        case CR_HDR_HOST:
            if (host != NULL) {
                continue;       /* the absolute-form authority wins */
            }
            break;
        default:
            break;
        }
        if (cr_http_field_hop(hp, f) || (any_rules && cr_http_rules_drop(rules, name, nlen))) {
            continue;
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

            if (f->kind == CR_HDR_X_FORWARDED_FOR && f->value.len != 0) {
                add_value(b, cr_http_str(hp, f->value), f->value.len);
                cr_buf_adds(b, ", ");
            }
        }
        cr_buf_adds(b, c->peer);
        cr_buf_adds(b, "\r\n");
    }
    if (!cr_http_rules_drop(rules, "x-forwarded-proto", 17)) {
        cr_buf_adds(b, "X-Forwarded-Proto: http\r\n");
    }
    if (!cr_http_rules_drop(rules, "x-forwarded-host", 16)) {
        const struct cr_http_field *f = cr_http_find_kind(hp, CR_HDR_HOST);

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

            if (f->kind == CR_HDR_VIA && f->value.len != 0) {
                add_value(b, cr_http_str(hp, f->value), f->value.len);
                cr_buf_adds(b, ", ");
            }
        }
        add_via_self(b, hp);
    }
    cr_access_req_add_header(&c->alog, b);      /* X-Request-Id we made */
    if (hp->flags & CR_HTTP_F_CHUNKED) {
        p->req_frame = FRAME_CHUNKED;
        cr_buf_adds(b, "Transfer-Encoding: chunked\r\n");
    } else if (hp->flags & CR_HTTP_F_CLEN) {
        p->req_frame = hp->content_length ? FRAME_LENGTH : FRAME_NONE;
        add_length(b, hp->content_length);
    } else {
        p->req_frame = FRAME_NONE;
    }
    if (hp->flags & CR_HTTP_F_UPGRADE) {
        /* hop-by-hop, so dropped above; asked for again, for this hop */
        size_t ulen;
        const char *u = cr_http_value(hp, "upgrade", &ulen);

        cr_buf_adds(b, "Upgrade: ");
        cr_buf_add(b, u, ulen);
        cr_buf_adds(b, "\r\nConnection: upgrade\r\n");
    } else if (p->pool->conf->keepalive == 0) {
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
    if (p->flags & P_TUNNEL) {
        CR_STAT_DEC(tunnels_active);
    }
    if (p->wq.queued) {
        cr_waitq_remove(&p->pool->waitq, &p->wq);
    }
    if (p->flags & P_BUDGET) {
        cr_retry_budget_done(&p->pool->budget);
    }
    p->pool->active--;
    c->proxy = NULL;
    if (proxy_ncached < PROXY_CACHE && p->head.cap <= 8192) {
        proxy_cache[proxy_ncached++] = p;   /* buffers kept for the next */
        return c;
    }
    proxy_destroy(p);
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

    p = proxy_new();
    if (p == NULL) {
        cr_conn_error(c, 503, "out of memory");
        return;
    }
    p->c = c;
    p->route = route;
    p->pool = &c->w->pools[route->upstream];
    p->pool->active++;
    cr_retry_budget_request(&p->pool->budget, cr_now_ms());
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
    uc->cb = up_io;
    uc->arg = p;
}

static void
set_timeouts(struct cr_proxy *p, uint64_t read_ms, uint64_t write_ms)
{
    cr_io_set_timeouts(&p->uc->io, (uint32_t)read_ms, (uint32_t)write_ms);
}

/*
 * How long the request may wait for the first byte of its answer:
 * try_timeout when it is set and shorter than read_timeout.
 */
static uint64_t
answer_timeout(const struct cr_proxy *p)
{
    const struct cr_conf_upstream *cu = p->pool->conf;

    if (cu->try_timeout_ms != 0
        && (cu->read_timeout_ms == 0 || cu->try_timeout_ms < cu->read_timeout_ms))
    {
        return cu->try_timeout_ms;
    }
    return cu->read_timeout_ms;
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
    cr_http_parser_reuse(&p->resp, 0, &p->resp_limits, resp_head_cb, resp_body_cb, p);
    set_timeouts(p, (p->flags & P_REQ_DONE) ? answer_timeout(p) : 0,
                 cu->read_timeout_ms);
    cr_io_write(&p->uc->io, p->head.p, p->head.len);
    cr_io_read(&p->uc->io, 1);
    count_up_out(p, p->head.len);
    p->sent_us = cr_stats_now_us();

    if (p->flags & P_REQ_DONE) {
        return;             /* a retry of a bodyless request */
    }
    cr_conn_body_start(c);
}

/*
 * May a failed try be followed by another? Within "retries", and, if
 * <budgeted>, within the pool's retry budget (so an outage does not
 * multiply the load by the number of tries). A try whose connect failed
 * sent nothing and loaded no server, so its retry adds no load and is not
 * budgeted. Counts the retry. Returns 1 or 0.
 */
static int
retry_allowed(struct cr_proxy *p, int budgeted)
{
    struct cr_upstream_pool *pool = p->pool;

    if (p->tries > pool->conf->retries) {
        return 0;
    }
    if (!budgeted) {
        CR_STAT_INC(upstream_retries_total);
        return 1;
    }
    if (p->flags & P_BUDGET) {
        cr_retry_budget_done(&pool->budget);
        p->flags &= ~P_BUDGET;
    }
    if (!cr_retry_budget_take(&pool->budget, cr_now_ms())) {
        CR_STAT_INC(upstream_retries_denied_total);
        return 0;
    }
    p->flags |= P_BUDGET;
    CR_STAT_INC(upstream_retries_total);
    return 1;
}

/* Could the request be sent again? Only what was never partly streamed. */
static int
replayable(const struct cr_proxy *p)
{
    return p->req_frame == FRAME_NONE
           && cr_http_method_idempotent(p->c->rq->p.method);
}

/* Servers of <pool> at their max_connections in this worker (bits idx % 64). */
static uint64_t
busy_servers(const struct cr_upstream_pool *pool)
{
    uint64_t busy = 0;
    size_t i;

    for (i = 0; i < pool->nservers; i++) {
        const struct cr_upstream_server *s = &pool->servers[i];

        if (s->conf->max_connections != 0 && s->active >= s->conf->max_connections) {
            busy |= 1ULL << (i % 64);
        }
    }
    return busy;
}

/* Has some server of <pool> a free slot? */
static int
has_room(const struct cr_upstream_pool *pool)
{
    size_t i;

    for (i = 0; i < pool->nservers; i++) {
        const struct cr_upstream_server *s = &pool->servers[i];

        if (s->conf->max_connections == 0 || s->active < s->conf->max_connections) {
            return 1;
        }
    }
    return 0;
}

static struct cr_proxy *
waitq_proxy(struct cr_waitq_entry *e)
{
    return (struct cr_proxy *)(void *)((char *)e - offsetof(struct cr_proxy, wq));
}

static void try_next(struct cr_proxy *p);

/* Arm the queue's timer for its oldest deadline (or stop it). */
static void
waitq_arm(struct cr_upstream_pool *pool)
{
    uint64_t due = cr_waitq_next_deadline(&pool->waitq), now = cr_now_ms(), ms;
    struct timeval tv;

    if (pool->waitq_ev == NULL) {
        return;
    }
    if (due == 0) {
        evtimer_del(pool->waitq_ev);
        return;
    }
    ms = due > now ? due - now : 0;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    evtimer_add(pool->waitq_ev, &tv);
}

/*
 * The queue's timer, or a kick after a slot came free: answer 503 to the
 * requests that waited too long, then give free slots to the oldest.
 */
static void
waitq_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_upstream_pool *pool = arg;
    struct cr_waitq_entry *e;
    uint64_t now = cr_now_ms();
    size_t n;

    (void)fd;
    (void)what;
    while ((e = cr_waitq_expired(&pool->waitq, now)) != NULL) {
        CR_STAT_INC(upstream_queue_rejected_total);
        proxy_fail(waitq_proxy(e), 503, "waited too long for a server under max_connections");
    }
    /* each waiting request gets one go; one that finds no slot queues again */
    for (n = pool->waitq.len; n > 0 && has_room(pool); n--) {
        if ((e = cr_waitq_pop(&pool->waitq)) == NULL) {
            break;
        }
        try_next(waitq_proxy(e));
    }
    waitq_arm(pool);
}

static void
waitq_kick(struct cr_upstream_pool *pool)
{
    if (pool->waitq_ev != NULL) {
        event_active(pool->waitq_ev, EV_TIMEOUT, 1);
    }
}

/* Every usable server is at max_connections: queue, or 503 at once. */
static void
wait_for_slot(struct cr_proxy *p)
{
    struct cr_upstream_pool *pool = p->pool;

    if (pool->waitq_ev == NULL) {
        pool->waitq_ev = evtimer_new(pool->w->base, waitq_cb, pool);
    }
    if (pool->waitq_ev == NULL || cr_waitq_push(&pool->waitq, &p->wq, cr_now_ms()) != CR_OK) {
        CR_STAT_INC(upstream_queue_rejected_total);
        proxy_fail(p, 503, "every server at max_connections");
        return;
    }
    CR_STAT_INC(upstream_queued_total);
    waitq_arm(pool);
}

/* Pick a server and get a connection to it; on failure answer 502/503. */
static void
try_next(struct cr_proxy *p)
{
    const struct cr_conf_upstream *cu = p->pool->conf;
    struct cr_upstream_want want = { 0, 0, 0 };
    struct cr_upstream_conn *uc;
    uint64_t busy;

    for (;;) {
        if (!(p->flags & P_NO_REUSE)) {
            if (p->tries > cu->retries) {
                proxy_fail(p, p->last_status, "no more tries");
                return;
            }
            if (p->srv != NULL) {
                srv_leave(p);
            }
            busy = busy_servers(p->pool);
            want.tried = p->tried | busy;
            cr_upstream_want_key(p->pool, &p->c->rq->p, p->c->rq->peer, &want);
            p->srv = cr_upstream_pick(p->pool, &want);
            if (p->srv == NULL && busy != 0) {
                want.tried = p->tried;
                if (cr_upstream_pick(p->pool, &want) != NULL) {
                    wait_for_slot(p);   /* usable servers, all at max_connections */
                    return;
                }
            }
            if (p->srv == NULL) {
                if (p->tries == 0) {
                    proxy_fail(p, 503, "no server available");
                } else {
                    proxy_fail(p, p->last_status, "no other server to try");
                }
                return;
            }
            srv_enter(p);
            cr_access_req_upstream(&p->c->rq->alog, p->srv->conf->addr.text);
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
        uc = cr_upstream_connect(p->srv, (uint32_t)cu->connect_timeout_ms);
        if (uc == NULL) {
            cr_log_warn("upstream %s/%s: connect: %s", cu->name,
                        p->srv->conf->addr.text, strerror(errno));
            CR_STAT_INC(upstream_failures_total);
            SRV_ADD(p, failures_total, 1);
            cr_upstream_server_failed(p->srv, CR_UPSTREAM_FAIL_CONNECT);
            p->last_status = 502;
            if (!(cu->retry_on & CR_RETRY_CONNECT) || !retry_allowed(p, 0)) {
                proxy_fail(p, 502, "connect failed");
                return;
            }
            continue;
        }
        CR_STAT_INC(upstream_connects_total);
        SRV_ADD(p, connects_total, 1);
        attach(p, uc);
        p->flags |= P_CONNECTING;
        return;
    }
}

/*
 * The upstream connection failed before any response byte. Retry if
 * retry_on allows it for what happened and the request can be sent again,
 * else answer <status>. A keep-alive connection the server had closed is
 * retried once on a fresh connection to the same server whatever
 * retry_on says (it is not the server's failure; nginx does the same).
 */
static void
upstream_failed(struct cr_proxy *p, int status, const char *why, int server_fault)
{
    const struct cr_conf_upstream *cu = p->pool->conf;
    int stale = (p->flags & P_REUSED) && !(p->flags & P_FRESH_RETRY)
                && !(p->flags & (P_CONNECTING | P_RESP_BYTES)) && status != 504;
    int eligible;

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
        eligible = (cu->retry_on & CR_RETRY_CONNECT) != 0;     /* nothing was sent */
    } else if (p->flags & P_RESP_BYTES) {
        eligible = 0;
    } else {
        eligible = replayable(p)
                   && (cu->retry_on & (status == 504 ? CR_RETRY_504 : CR_RETRY_RESET));
    }
    if (stale && replayable(p)) {
        /* a keep-alive conn the server had closed: same server, new conn */
        cr_log_info("upstream %s/%s: %s; again on a new connection", cu->name,
                    p->srv->conf->addr.text, why);
        CR_STAT_INC(upstream_retries_total);
        p->flags |= P_NO_REUSE | P_FRESH_RETRY;
        p->flags &= ~(P_HEAD_SENT | P_RESP_BYTES);
        try_next(p);
        return;
    }
    if (server_fault) {
        cr_upstream_server_failed(p->srv, status == 504 ? CR_UPSTREAM_FAIL_TIMEOUT
                                                        : CR_UPSTREAM_FAIL_ERROR);
    }
    if (!eligible || !retry_allowed(p, !(p->flags & P_CONNECTING))) {
        proxy_fail(p, status, why);
        return;
    }
    cr_log_info("upstream %s/%s: %s; retrying", cu->name, p->srv->conf->addr.text, why);
    p->flags &= ~(P_CONNECTING | P_HEAD_SENT | P_RESP_BYTES);
    try_next(p);
}

/* Queue a piece of body on <io>, as a chunk if <chunked>. */
static int
add_body(struct cr_io *io, int chunked, const char *at, size_t at_len)
{
    size_t len = at_len;
    struct evbuffer *out = cr_io_out(io);

    if (out == NULL) {
        return -1;
    }
    cr_io_flush_soon(io);
    if (chunked) {
        char size[24];
        int i = (int)sizeof(size);

        size[--i] = '\n';
        size[--i] = '\r';
        do {
            size[--i] = "0123456789abcdef"[len & 15];
            len >>= 4;
        } while (len != 0);
        if (evbuffer_add(out, size + i, sizeof(size) - (size_t)i) == -1
            || evbuffer_add(out, at, (size_t)(at_len)) == -1 || evbuffer_add(out, "\r\n", 2) == -1)
        {
            return -1;
        }
        return 0;
    }
    return evbuffer_add(out, at, at_len) == -1 ? -1 : 0;
}

int
cr_proxy_req_body(struct cr_proxy *p, const char *at, size_t len)
{
    p->flags |= P_BODY_SENT;
    count_up_out(p, len);
    return add_body(&p->uc->io, p->req_frame == FRAME_CHUNKED, at, len);
}

int
cr_proxy_req_full(const struct cr_proxy *p)
{
    return p->uc != NULL && cr_io_out_len(&p->uc->io) > CR_PROXY_HIGH_WATER;
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
        cr_io_write(&p->uc->io, "0\r\n\r\n", 5);
    }
    if (p->flags & P_RESP_DONE) {
        finish(p);
        return;
    }
    /* now the upstream owes us an answer: its read timeout starts */
    set_timeouts(p, answer_timeout(p), p->pool->conf->read_timeout_ms);
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
    int any_rules = cr_http_rules_any(rules);
    struct cr_io *out = &p->c->io;
    /* made and copied out at once: one buffer for every response */
    static struct cr_buf scratch;
    struct cr_buf *b = &scratch;
    int nobody, head_req = p->c->rq->p.method == HTTP_HEAD;
    size_t i;

    if (hp->status >= 502 && hp->status <= 504 && (p->flags & P_REQ_DONE)
        && (p->pool->conf->retry_on & (hp->status == 502 ? CR_RETRY_502
                                       : hp->status == 503 ? CR_RETRY_503 : CR_RETRY_504))
        && replayable(p) && retry_allowed(p, 1))
    {
        /* retry_on: this answer is dropped, unread; pump_response() retries */
        p->flags |= P_RETRY_STATUS;
        return 1;
    }
    if (hp->status == 101 && (p->c->rq->p.flags & CR_HTTP_F_UPGRADE)
        && cr_http_find_kind(hp, CR_HDR_UPGRADE) != NULL)
    {
        /* switching protocols: the tunnel starts once this head is out */
        p->flags |= P_UPGRADE;
        nobody = 1;
        p->client_keep = 0;
        b->len = 0;
        b->oom = 0;
        cr_buf_adds(b, "HTTP/1.1 101 Switching Protocols\r\n");
        goto fields;
    }
    if (p->c->rq->p.flags & CR_HTTP_F_UPGRADE) {
        p->flags |= P_UP_DIRTY;     /* it was told "Connection: upgrade" */
    }
    if (hp->status >= 100 && hp->status < 200) {
        if (hp->status == 101) {
            return -1;      /* we never asked for an upgrade */
        }
        /* interim: relay to HTTP/1.1 clients (RFC 9110 §15.2), bare */
        if (!is_client_1_0(p) && cr_io_out(out) != NULL) {
            evbuffer_add_printf(cr_io_out(out), "HTTP/1.1 %d %s\r\n\r\n", hp->status,
                                cr_http_reason(hp->status));
            cr_io_flush_soon(out);
        }
        return 1;
    }

    nobody = head_req || hp->status == 204 || hp->status == 304;
    /*
     * An answer that comes before the request body is all sent ends the
     * connection (we stop forwarding the body), so it says so.
     */
    p->client_keep = cr_http_should_keep_alive(&p->c->rq->p)
                     && !(p->c->flags & CR_CONN_F_CLOSE) && !p->c->w->draining
                     && (p->flags & P_REQ_DONE);

    b->len = 0;
    b->oom = 0;
    cr_buf_adds(b, "HTTP/1.1 ");
    cr_buf_add_u64(b, (uint64_t)hp->status);
    cr_buf_add(b, " ", 1);
    if (hp->reason.len != 0) {
        cr_buf_add(b, cr_http_str(hp, hp->reason), hp->reason.len);
    } else {
        cr_buf_adds(b, cr_http_reason(hp->status));
    }
    cr_buf_adds(b, "\r\n");
fields:
    for (i = 0; i < hp->nfields; i++) {
        const struct cr_http_field *f = &hp->fields[i];
        const char *name = cr_http_str(hp, f->name);
        size_t nlen = f->name.len;

        if (f->kind == CR_HDR_CONTENT_LENGTH || f->kind == CR_HDR_VIA
            || cr_http_field_hop(hp, f)
            || (any_rules && cr_http_rules_drop(rules, name, nlen)))
        {
            continue;
        }
        cr_buf_add(b, name, nlen);
        cr_buf_adds(b, ": ");
        add_value(b, cr_http_str(hp, f->value), f->value.len);
        cr_buf_adds(b, "\r\n");
    }
    cr_http_rules_add(rules, b);
    if (!cr_http_rules_drop(rules, "via", 3)) {
        cr_buf_adds(b, "Via: ");
        for (i = 0; i < hp->nfields; i++) {
            const struct cr_http_field *f = &hp->fields[i];

            if (f->kind == CR_HDR_VIA && f->value.len != 0) {
                add_value(b, cr_http_str(hp, f->value), f->value.len);
                cr_buf_adds(b, ", ");
            }
        }
        add_via_self(b, hp);
    }

    if (p->flags & P_UPGRADE) {
        size_t ulen;
        const char *u = cr_http_value(hp, "upgrade", &ulen);

        p->resp_frame = FRAME_NONE;
        cr_buf_adds(b, "Upgrade: ");
        cr_buf_add(b, u, ulen);
        cr_buf_adds(b, "\r\nConnection: upgrade\r\n\r\n");
        goto done;
    }
    if (nobody) {
        p->resp_frame = FRAME_NONE;
        /* a HEAD or 304 answer may state the length it would have had */
        if ((hp->flags & CR_HTTP_F_CLEN) && hp->status != 204) {
            add_length(b, hp->content_length);
        }
    } else if (hp->flags & CR_HTTP_F_CLEN) {
        p->resp_frame = FRAME_LENGTH;
        add_length(b, hp->content_length);
    } else if (!is_client_1_0(p)) {
        p->resp_frame = FRAME_CHUNKED;
        cr_buf_adds(b, "Transfer-Encoding: chunked\r\n");
    } else {
        p->resp_frame = FRAME_CLOSE;    /* HTTP/1.0: the end is our close */
        p->client_keep = 0;
    }
    if (!p->client_keep) {
        cr_buf_adds(b, "Connection: close\r\n");
    } else if (is_client_1_0(p)) {
        cr_buf_adds(b, "Connection: keep-alive\r\n");
    }
    cr_buf_adds(b, "\r\n");
done:
    if (b->oom) {
        cr_buf_free(b);
        return -1;
    }
    if (b->cap > 64 * 1024) {
        /* a huge head is rare: do not keep its buffer for ever */
        cr_io_write(out, b->p, b->len);
        cr_buf_free(b);
        goto queued;
    }
    cr_io_write(out, b->p, b->len);
queued:
    cr_conn_count_response(p->c, hp->status, 0);
    cr_conn_count_out(p->c, b->len);
    SRV_ADD(p, responses_1xx_total + cr_stats_class(hp->status), 1);
    p->flags |= P_RESP_HEAD;
    return nobody ? 1 : 0;
}

/*
 * A piece of response body. With Content-Length framing on both sides the
 * bytes go out as they came, so they are only noted here: pump_response()
 * then moves them from the upstream's buffer to the client's with
 * evbuffer_remove_buffer(), which hands over whole chains instead of
 * copying them (a 16 KiB body is read and written, never memcpy'd).
 */
static int
resp_body_cb(void *arg, const char *at, size_t len)
{
    struct cr_proxy *p = arg;

    cr_conn_count_out(p->c, len);
    if (p->resp_frame == FRAME_LENGTH && p->move_start != NULL) {
        if (p->move_end == p->move_start || p->move_end == at) {
            if (p->move_end == p->move_start) {
                p->move_start = at;
            }
            p->move_end = at + len;
            return 0;
        }
        /* not contiguous (never seen): copy what was noted, then this */
        if (add_body(&p->c->io, 0, p->move_start, (size_t)(p->move_end - p->move_start)) == -1) {
            return -1;
        }
        p->move_start = p->move_end = NULL;
    }
    return add_body(&p->c->io, p->resp_frame == FRAME_CHUNKED, at, len);
}

/*
 * Move what one side sent to the other, unparsed. Returns 0, or -1 when
 * the receiving side is full (the caller stops reading the sender).
 */
static int
tunnel_move(struct cr_io *from, struct cr_io *to)
{
    size_t n = cr_io_in_len(from);
    struct evbuffer *out;

    if (n != 0) {
        if ((out = cr_io_out(to)) == NULL || evbuffer_add_buffer(out, from->in) == -1) {
            return -1;
        }
        cr_io_flush_soon(to);
        cr_io_consumed(from);
    }
    return cr_io_out_len(to) > CR_PROXY_HIGH_WATER ? -1 : 0;
}

/* Upstream bytes to the client, as far as it takes them. */
static void
tunnel_down(struct cr_proxy *p)
{
    size_t n = cr_io_in_len(&p->uc->io);

    CR_STAT_ADD(upstream_bytes_in_total, n);
    SRV_ADD(p, bytes_in_total, n);
    cr_conn_count_out(p->c, n);
    if (tunnel_move(&p->uc->io, &p->c->io) == -1) {
        p->flags |= P_UP_PAUSED;
        cr_io_read(&p->uc->io, 0);
    }
}

int
cr_proxy_tunnel_up(struct cr_proxy *p)
{
    size_t n = cr_io_in_len(&p->c->io);

    count_up_out(p, n);
    CR_STAT_ADD(client_bytes_in_total, n);
    return tunnel_move(&p->c->io, &p->uc->io);
}

void
cr_proxy_tunnel_client_eof(struct cr_proxy *p)
{
    /* the client is done sending: so is the upstream's peer, once flushed */
    cr_io_shutdown_wr(&p->uc->io);
}

/* The 101 is queued to the client: from here on bytes flow unparsed. */
static void
tunnel_start(struct cr_proxy *p)
{
    const struct cr_conf_upstream *cu = p->pool->conf;

    p->flags |= P_TUNNEL | P_UP_DIRTY;
    CR_STAT_INC(upgrades_total);
    CR_STAT_INC(tunnels_active);
    cr_upstream_server_ok(p->srv, 101);
    /* as nginx does: the tunnel is idle when the upstream is silent */
    set_timeouts(p, cu->read_timeout_ms, cu->read_timeout_ms);
    cr_io_read(&p->uc->io, 1);
    tunnel_down(p);
    cr_conn_tunnel_start(p->c);     /* last: it may free <p> */
}

/* The tunnel is over: close the upstream side, flush and close the client. */
static void
tunnel_end(struct cr_proxy *p, const char *why)
{
    struct cr_conn *c;

    cr_log_debug("conn %llu: tunnel closed: %s", (unsigned long long)p->c->id, why);
    c = proxy_free(p, 0);
    cr_conn_tunnel_end(c);
}

/* The response message is complete. May free <p>. */
static void
resp_done(struct cr_proxy *p)
{
    if (p->flags & P_UPGRADE) {
        tunnel_start(p);
        return;
    }
    if (p->resp_frame == FRAME_CHUNKED) {
        cr_io_write(&p->c->io, "0\r\n\r\n", 5);
    }
    p->flags |= P_RESP_DONE;
    cr_access_req_upstream_done(&p->c->rq->alog);
    if (cr_io_in_len(&p->uc->io) != 0) {
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

/* The answer's status is one retry_on names: try the next server. */
static void
retry_status(struct cr_proxy *p)
{
    int status = p->resp.status;

    p->flags &= ~(P_RETRY_STATUS | P_HEAD_SENT | P_RESP_BYTES);
    SRV_ADD(p, responses_1xx_total + cr_stats_class(status), 1);
    cr_upstream_server_ok(p->srv, status);      /* a 5xx may count (outlier) */
    cr_upstream_close(p->uc);                   /* its body was not read */
    p->uc = NULL;
    p->last_status = status;
    cr_log_info("upstream %s/%s: answered %d; retrying", p->pool->conf->name,
                p->srv->conf->addr.text, status);
    try_next(p);
}

/* Parse what the upstream sent, as far as the client can take it. */
static void
pump_response(struct cr_proxy *p)
{
    struct cr_upstream_conn *uc = p->uc;
    struct evbuffer_iovec vec;
    enum cr_http_event ev;
    size_t n;

    if (p->flags & P_TUNNEL) {
        tunnel_down(p);
        return;
    }
    while (cr_io_in_len(&uc->io) != 0) {
        if (cr_conn_output_full(p->c)) {
            p->flags |= P_UP_PAUSED;
            cr_io_read(&uc->io, 0);
            return;
        }
        if (!(p->flags & P_RESP_BYTES)) {
            uint64_t us = cr_stats_since_us(p->sent_us);

            p->flags |= P_RESP_BYTES;
            if (p->pool->conf->try_timeout_ms != 0) {
                /* the try answered: from here on, read_timeout */
                set_timeouts(p, p->pool->conf->read_timeout_ms, p->pool->conf->read_timeout_ms);
            }
            cr_shm_hist_add(&cr_stats_slot->upstream_ttfb, us);
            cr_shm_hist_add(&srv_stats(p)->ttfb, us);
        }
        if (evbuffer_peek(uc->io.in, -1, NULL, &vec, 1) < 1) {
            break;
        }
        p->move_start = p->move_end = vec.iov_base;   /* resp_body_cb may note */
        n = cr_http_parser_execute(&p->resp, vec.iov_base, vec.iov_len, &ev);
        if (p->move_start != NULL && p->move_end != p->move_start
            && p->move_end == (const char *)vec.iov_base + n && ev != CR_HTTP_EV_ERROR)
        {
            size_t body = (size_t)(p->move_end - p->move_start);
            struct evbuffer *out = cr_io_out(&p->c->io);
            int ok;

            /*
             * A small body is copied behind the head, so the response
             * leaves in one piece (send, not writev) and the read's chain
             * is freed here; a bigger one moves by whole chains.
             */
            if (body <= PROXY_COPY_MAX) {
                ok = out != NULL && evbuffer_add(out, p->move_start, body) == 0;
                evbuffer_drain(uc->io.in, n);
            } else {
                evbuffer_drain(uc->io.in, n - body);
                ok = out != NULL
                     && evbuffer_remove_buffer(uc->io.in, out, body) == (int)body;
            }
            if (!ok) {
                p->move_start = p->move_end = NULL;
                proxy_fail(p, 502, "out of memory");
                return;
            }
            cr_io_flush_soon(&p->c->io);
        } else if (p->move_start != NULL && p->move_end != p->move_start) {
            /* noted bytes that do not end the consumed span (never seen) */
            if (ev != CR_HTTP_EV_ERROR
                && add_body(&p->c->io, 0, p->move_start,
                            (size_t)(p->move_end - p->move_start)) == -1)
            {
                p->move_start = p->move_end = NULL;
                proxy_fail(p, 502, "out of memory");
                return;
            }
            evbuffer_drain(uc->io.in, n);
        } else {
            evbuffer_drain(uc->io.in, n);
        }
        p->move_start = p->move_end = NULL;
        CR_STAT_ADD(upstream_bytes_in_total, n);
        if (p->flags & P_RETRY_STATUS) {
            retry_status(p);
            return;
        }
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
    cr_io_consumed(&uc->io);
}

/* The upstream took our output down to its low watermark. */
static void
up_drained(struct cr_proxy *p)
{
    struct cr_conn *c = p->c;

    if (c->flags & CR_CONN_F_READ_PAUSED) {
        c->flags &= ~CR_CONN_F_READ_PAUSED;
        cr_conn_pump(c);
    }
}

void
cr_proxy_client_drained(struct cr_proxy *p)
{
    if (p->flags & P_UP_PAUSED) {
        p->flags &= ~P_UP_PAUSED;
        cr_io_read(&p->uc->io, 1);
        pump_response(p);
    }
}

/* The upstream closed its side. */
static void
up_eof(struct cr_proxy *p)
{
    if (p->flags & P_TUNNEL) {
        tunnel_end(p, "upstream closed");
        return;
    }
    /* a response delimited by the close ends here (RFC 9112 §6.3 item 8) */
    if (p->flags & P_RESP_BYTES) {
        p->flags |= P_UP_DIRTY;
        if (cr_http_parser_finish(&p->resp) == CR_HTTP_EV_DONE) {
            resp_done(p);
            return;
        }
        proxy_fail(p, 502, "upstream closed mid-response");
        return;
    }
    upstream_failed(p, 502, "upstream closed before responding", 0);
}

static void
up_io(struct cr_upstream_conn *uc, unsigned r, void *arg)
{
    struct cr_proxy *p = arg;

    if (p->flags & P_CONNECTING) {
        if (r & CR_IO_R_CONNECTED) {
            send_head(p);
        } else if (r & CR_IO_R_WTIMEOUT) {
            upstream_failed(p, 504, "connect timeout", 1);
        } else if (r & CR_IO_R_ERROR) {
            char why[128];

            snprintf(why, sizeof(why), "connect: %s", strerror(uc->io.err));
            upstream_failed(p, 502, why, 1);
        }
        return;
    }
    if ((p->flags & P_TUNNEL) && (r & (CR_IO_R_RTIMEOUT | CR_IO_R_WTIMEOUT
                                       | CR_IO_R_ERROR)))
    {
        tunnel_end(p, (r & CR_IO_R_ERROR) ? "upstream error" : "idle timeout");
        return;
    }
    if ((r & (CR_IO_R_RTIMEOUT | CR_IO_R_WTIMEOUT)) && !(p->flags & P_RESP_BYTES)) {
        /*
         * No answer within read_timeout (or try_timeout): retried only if
         * retry_on has 504. A slow answer is the endpoint's, not proof the
         * server is gone: it does not count toward the outlier failures.
         */
        upstream_failed(p, 504, p->pool->conf->try_timeout_ms ? "try timeout" : "read timeout", 0);
        return;
    }
    if (r & (CR_IO_R_RTIMEOUT | CR_IO_R_WTIMEOUT)) {
        CR_STAT_INC(upstream_timeouts_total);
        SRV_ADD(p, timeouts_total, 1);
        proxy_fail(p, 504, (p->flags & P_RESP_HEAD) ? "read timeout mid-response"
                                                    : "read timeout");
        return;
    }
    if (r & CR_IO_R_ERROR) {
        if (p->flags & P_RESP_BYTES) {
            proxy_fail(p, 502, "upstream connection error mid-response");
            return;
        }
        upstream_failed(p, 502, "upstream connection error", 0);
        return;
    }
    if (r & CR_IO_R_DRAINED) {
        up_drained(p);
        return;
    }
    if (r & CR_IO_R_DATA) {
        pump_response(p);
        return;
    }
    if (r & CR_IO_R_EOF) {
        up_eof(p);
    }
}
