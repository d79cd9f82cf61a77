/*
 * conn.c - client (downstream) connections.
 *
 * A connection runs one request at a time: the request parser pauses at the
 * end of each head and each message, so pipelined requests wait in the
 * input buffer and are answered in order (RFC 9112 §9.3.2) without a queue
 * of their own. The input buffer is bounded by a read watermark, so a client
 * that pipelines a lot only fills CR_PROXY_READ_MAX bytes and then TCP's
 * window.
 *
 * Closing is always deliberate: cr_conn_close() frees at once, except while
 * cr_conn_pump() is on the stack, where it only marks the conn and the pump
 * frees it on the way out. Everything that may close a conn is therefore
 * either the last thing a callback does, or runs inside a pump.
 *
 * Error answers made here (400, 408, 413, 414, 431, 501) close the
 * connection after a lingering close: write side shut, input read and
 * dropped for a moment, so the client gets our answer instead of a reset
 * caused by the bytes it was still sending.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conf/conf.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "proxy.h"
#include "router.h"
#include "stats.h"
#include "worker.h"

#define LINGER_MS       2000
#define DRAIN_GRACE_MS  3000    /* first request of a conn accepted pre-drain */

#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct cr_conn) <= 320,
               "struct cr_conn outgrew its jemalloc size class (320): idle memory");
#endif

static void io_cb(evutil_socket_t fd, short what, void *arg);
static void request_begin(struct cr_conn *c);
static void write_done(struct cr_conn *c);
static void timer_fire(struct cr_timer *t);
static int  body_cb(void *arg, const char *at, size_t len);

/*
 * Request states of finished requests, kept for the next ones: most
 * requests then allocate nothing for their parser, arena or path.
 */
#define REQ_CACHE   32
static struct cr_req *req_cache[REQ_CACHE];
static unsigned req_ncached;

static void req_destroy(struct cr_req *rq);

static struct cr_conn *
timer_conn(struct cr_timer *t)
{
    return (struct cr_conn *)(void *)((char *)t - offsetof(struct cr_conn, timer));
}

void
cr_conn_worker_init(struct cr_worker *w)
{
    const struct cr_conf_limits *lim = &w->conf->limits;
    struct cr_tlist *t = w->conn_timers;

    cr_tlist_init(&t[CR_CONN_T_IDLE], w->base, lim->idle_timeout_ms, timer_fire);
    cr_tlist_init(&t[CR_CONN_T_HEAD], w->base, lim->header_timeout_ms, timer_fire);
    cr_tlist_init(&t[CR_CONN_T_LINGER], w->base, LINGER_MS, timer_fire);
    cr_tlist_init(&t[CR_CONN_T_GRACE], w->base, DRAIN_GRACE_MS, timer_fire);
}

void
cr_conn_worker_fini(struct cr_worker *w)
{
    int i;

    while (req_ncached > 0) {
        req_destroy(req_cache[--req_ncached]);
    }
    for (i = CR_CONN_T_IDLE; i < CR_CONN_T_COUNT; i++) {
        cr_tlist_fini(&w->conn_timers[i]);
    }
}

static void
arm_timer(struct cr_conn *c, enum cr_conn_timer kind)
{
    c->timer_kind = kind;
    if (kind == CR_CONN_T_NONE || c->w->conn_timers[kind].dur_ms == 0) {
        cr_timer_stop(&c->timer);
        c->timer_kind = CR_CONN_T_NONE;
        return;
    }
    cr_timer_start(&c->timer, &c->w->conn_timers[kind]);
}

/* The state of a new request; the first one on <c> or after an idle time. */
static struct cr_req *
req_new(struct cr_conn *c)
{
    const struct cr_conf_limits *lim = &c->w->conf->limits;
    struct cr_req *rq;

    if (req_ncached > 0) {
        char *npath;
        size_t npath_cap;

        rq = req_cache[--req_ncached];
        npath = rq->npath;
        npath_cap = rq->npath_cap;
        memset((char *)rq + offsetof(struct cr_req, limits), 0,
               sizeof(*rq) - offsetof(struct cr_req, limits));
        rq->npath = npath;
        rq->npath_cap = npath_cap;
        cr_http_parser_reuse(&rq->p, 1, &rq->limits, NULL, body_cb, c);
    } else {
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return NULL;
        }
        cr_http_parser_init(&rq->p, 1, &rq->limits, NULL, body_cb, c);
    }
    rq->limits.max_head_bytes = lim->max_header_bytes;
    rq->limits.max_headers = lim->max_headers;
    rq->limits.max_uri_bytes = lim->max_uri_bytes;
    rq->limits.max_body_bytes = lim->max_body_bytes;
    rq->route_row = -1;
    if (c->peer.sa.sa_family == AF_INET) {
        cr_http_format_ipv4(&c->peer.sin.sin_addr, rq->peer);
    } else if (c->peer.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &c->peer.sin6.sin6_addr, rq->peer, sizeof(rq->peer));
    } else {
        strcpy(rq->peer, "unknown");
    }
    return rq;
}

static void
req_destroy(struct cr_req *rq)
{
    cr_http_parser_free(&rq->p);
    free(rq->npath);
    free(rq);
}

static void
req_free(struct cr_conn *c)
{
    struct cr_req *rq = c->rq;

    if (rq == NULL) {
        return;
    }
    c->rq = NULL;
    if (req_ncached < REQ_CACHE && rq->npath_cap <= 4096) {
        req_cache[req_ncached++] = rq;
        return;
    }
    req_destroy(rq);
}

const char *
cr_conn_peer(const struct cr_conn *c)
{
    return c->rq != NULL ? c->rq->peer : "-";
}

void
cr_conn_accept(struct cr_worker *w, int fd, const struct sockaddr *sa,
               socklen_t salen)
{
    struct cr_conn *c;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        cr_log_warn("accept: out of memory, dropping connection");
        close(fd);
        return;
    }
    c->w = w;
    c->id = ++w->next_conn_id;
    if (salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, salen);
    }
    cr_io_init(&c->io, &w->ioloop, fd, io_cb, c);
    cr_io_set_timeouts(&c->io, 0, (uint32_t)w->conf->limits.send_timeout_ms);
    c->io.read_max = CR_PROXY_READ_MAX;
    cr_io_read(&c->io, 1);

    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
    CR_STAT_INC(connections_accepted_total);
    CR_STAT_INC(connections_active);
    c->state = CR_CONN_S_IDLE;
    arm_timer(c, CR_CONN_T_IDLE);
    cr_log_debug("conn %llu: accepted", (unsigned long long)c->id);
}

void
cr_conn_count_response(struct cr_conn *c, int status, int ours)
{
    c->rq->resp_status = status;
    cr_stats_response(status, ours);
}

void
cr_conn_count_out(struct cr_conn *c, size_t n)
{
    CR_STAT_ADD(client_bytes_out_total, n);
    c->rq->alog.bytes += n;
    if (c->rq->route_row >= 0) {
        cr_shm_add(&cr_stats_route(c->rq->route_row)->counters[CR_SHM_R_bytes_out_total], n);
    }
}

/*
 * The current request is over, answered or not: close its books. A request
 * that ends with no response status sent was abandoned (499, as nginx
 * logs it). Safe to call more than once.
 */
static void
request_end(struct cr_conn *c)
{
    struct cr_req *rq = c->rq;
    uint64_t us;

    if (!(c->flags & CR_CONN_F_IN_REQ)) {
        return;
    }
    c->flags &= ~CR_CONN_F_IN_REQ;
    us = cr_stats_since_us(rq->start_us);
    CR_STAT_DEC(requests_active);
    cr_shm_hist_add(&cr_stats_slot->request_time, us);
    if (rq->resp_status == 0) {
        CR_STAT_INC(errors_499_total);
    }
    {
        struct cr_access_entry e = { rq->peer, &rq->p, rq->resp_status != 0 ? rq->resp_status
                                     : 499, us, &rq->alog };

        cr_access_log_request(&e);
    }
    if (rq->route_row >= 0) {
        struct cr_shm_route_stats *rs = cr_stats_route(rq->route_row);

        cr_shm_sub(&rs->counters[CR_SHM_R_requests_active], 1);
        if (rq->resp_status != 0) {
            cr_shm_add(&rs->counters[CR_SHM_R_responses_1xx_total
                                     + cr_stats_class(rq->resp_status)], 1);
        }
        cr_shm_hist_add(&rs->request_time, us);
    }
}

static void
conn_free(struct cr_conn *c)
{
    struct cr_worker *w = c->w;

    if (c->proxy != NULL) {
        cr_proxy_abort(c->proxy, "client connection closed");
    }
    request_end(c);
    CR_STAT_DEC(connections_active);
    TAILQ_REMOVE(&w->conns, c, link);
    w->nconns--;
    cr_timer_stop(&c->timer);
    cr_io_close(&c->io);
    req_free(c);
    free(c);
    cr_worker_conn_closed(w);
}

void
cr_conn_close(struct cr_conn *c, const char *why)
{
    if (c->flags & CR_CONN_F_DEAD) {
        return;
    }
    cr_log_debug("conn %llu: close: %s", (unsigned long long)c->id, why);
    if (c->flags & CR_CONN_F_IN_PUMP) {
        c->flags |= CR_CONN_F_DEAD;
        return;
    }
    conn_free(c);
}

int
cr_conn_output_full(const struct cr_conn *c)
{
    return cr_io_out_len(&c->io) > CR_PROXY_HIGH_WATER;
}

/*
 * Flush what is queued, then close. With <linger>, shut our write side once
 * flushed and read (and drop) what the client still sends for a moment.
 */
static void
close_after_flush(struct cr_conn *c, int linger)
{
    request_end(c);
    c->state = CR_CONN_S_CLOSING;
    if (linger) {
        c->flags |= CR_CONN_F_LINGER;
    }
    arm_timer(c, CR_CONN_T_NONE);
    if (cr_io_out_len(&c->io) == 0) {
        write_done(c);
        return;
    }
    /*
     * The answer is the last thing this side sends: its FIN goes out with
     * its last bytes, one segment fewer per one-shot connection. The
     * shutdown also comes before close(), so the answer is on its way
     * even if close() then resets for unread input.
     */
    cr_io_shutdown_wr(&c->io);
}

/*
 * Queue a response made by corral. <extra> holds complete header lines
 * ("Name: value\r\n") or NULL. The body is left out for HEAD.
 */
static void
respond(struct cr_conn *c, int status, const char *extra, const char *body,
        size_t blen, int close, int default_type, int ours)
{
    struct evbuffer *out = cr_io_out(&c->io);
    int head_only = c->rq->p.head_done && c->rq->p.method == HTTP_HEAD;
    size_t before;

    if (out == NULL) {
        return;
    }
    before = evbuffer_get_length(out);

    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n",
                        status, cr_http_reason(status), blen);
    if (default_type && blen != 0) {
        evbuffer_add_printf(out, "Content-Type: text/plain\r\n");
    }
    if (extra != NULL) {
        evbuffer_add(out, extra, strlen(extra));
    }
    if (close) {
        evbuffer_add_printf(out, "Connection: close\r\n");
    } else if (c->rq->p.http_major == 1 && c->rq->p.http_minor == 0) {
        evbuffer_add_printf(out, "Connection: keep-alive\r\n");
    }
    evbuffer_add(out, "\r\n", 2);
    if (!head_only && blen != 0) {
        evbuffer_add(out, body, blen);
    }
    cr_conn_count_response(c, status, ours);
    cr_conn_count_out(c, evbuffer_get_length(out) - before);
    cr_io_flush_soon(&c->io);
}

/* Does the client still have request body bytes we have not read? */
static int
body_pending(const struct cr_conn *c)
{
    const struct cr_http_parser *hp = &c->rq->p;

    if (hp->msg_done) {
        return 0;
    }
    if (hp->flags & CR_HTTP_F_CHUNKED) {
        return 1;
    }
    return (hp->flags & CR_HTTP_F_CLEN) && hp->body_bytes < hp->content_length;
}

void
cr_conn_error(struct cr_conn *c, int status, const char *why)
{
    char body[64];
    int keep;

    if (c->state == CR_CONN_S_CLOSING) {
        cr_conn_close(c, why);
        return;
    }
    cr_log_info("conn %llu %s: %d: %s", (unsigned long long)c->id, cr_conn_peer(c),
                status, why);
    if (!(c->flags & CR_CONN_F_IN_REQ) && c->state == CR_CONN_S_HEAD) {
        /*
         * Refused before its head was whole (400, 414, 431, 408...): it is
         * still a request, counted and logged as nginx does, with what
         * could be read of it.
         */
        request_begin(c);
    }
    /*
     * Errors found while routing or proxying leave a well-framed request
     * behind, so the connection can carry on if the client wants; errors
     * of the request itself do not, so we close.
     */
    keep = (status == 404 || status == 502 || status == 503 || status == 504)
           && c->rq->p.head_done && !body_pending(c)
           && cr_http_should_keep_alive(&c->rq->p)
           && !(c->flags & CR_CONN_F_CLOSE) && !c->w->draining;
    snprintf(body, sizeof(body), "%d %s\n", status, cr_http_reason(status));
    respond(c, status, NULL, body, strlen(body), !keep, 1, 1);
    if (!keep) {
        close_after_flush(c, 1);
        return;
    }
    if (c->state == CR_CONN_S_REQ_DONE || c->rq->p.msg_done) {
        cr_conn_response_done(c, 0);
        return;
    }
    /* the message is complete but the parser has not said so yet */
    c->state = CR_CONN_S_BODY;
    cr_http_parser_resume(&c->rq->p);
    cr_conn_pump(c);
}

/* Answer a route's respond: or redirect: action. */
static void
respond_local(struct cr_conn *c, const struct cr_conf_route *r)
{
    struct cr_buf extra = { 0 };
    char body[64];
    int close;
    size_t i;

    close = !cr_http_should_keep_alive(&c->rq->p) || body_pending(c)
            || (c->flags & CR_CONN_F_CLOSE) || c->w->draining;
    if (r->action == CR_ROUTE_REDIRECT) {
        cr_buf_addf(&extra, "Location: %s\r\n", r->location);
        cr_http_rules_add(&r->response_headers, &extra);
        snprintf(body, sizeof(body), "%d %s\n", r->status, cr_http_reason(r->status));
        respond(c, r->status, extra.oom ? NULL : extra.p, body, strlen(body), close, 1, 0);
    } else {
        int typed = 0;

        for (i = 0; i < r->nrespond_headers; i++) {
            cr_buf_addf(&extra, "%s: %s\r\n", r->respond_headers[i].name,
                        r->respond_headers[i].value);
            if (strcasecmp(r->respond_headers[i].name, "content-type") == 0) {
                typed = 1;
            }
        }
        cr_http_rules_add(&r->response_headers, &extra);
        respond(c, r->status, extra.len && !extra.oom ? extra.p : NULL,
                r->body, r->body ? r->body_len : 0, close, !typed, 0);
    }
    cr_buf_free(&extra);
    if (close) {
        close_after_flush(c, body_pending(c));
        return;
    }
    /* a bodyless request: let the parser reach its end, then go on */
    c->state = CR_CONN_S_BODY;
    c->flags |= CR_CONN_F_PUMP_AGAIN;
    cr_http_parser_resume(&c->rq->p);
}

/*
 * Split the request target (RFC 9112 §3.2) into the host, path and query
 * corral routes and forwards on: origin-form "/p?q"; absolute-form
 * "http://authority/p?q" (or https), whose authority then overrides Host;
 * asterisk-form "*" for OPTIONS. Anything else (another scheme, a bare
 * word) is refused, so a route on a path cannot be sidestepped by a target
 * the router would read one way and a backend another. Returns CR_OK or
 * CR_ERR (400).
 */
static int
parse_target(struct cr_conn *c)
{
    struct cr_req *rq = c->rq;
    const struct cr_http_parser *hp = &rq->p;
    const char *t = cr_http_str(hp, hp->target);
    size_t tlen = hp->target.len, i, skip = 0;
    const struct cr_http_field *f;

    rq->host = NULL;
    rq->hostlen = 0;
    rq->host_from_target = 0;
    /*
     * Only characters a URI may hold (RFC 3986): no controls, spaces,
     * non-ASCII bytes, fragments ("#" is never sent) or backslashes, which
     * servers behind us might each read their own way.
     */
    for (i = 0; i < tlen; i++) {
        unsigned char ch = (unsigned char)t[i];

        if (ch <= 0x20 || ch >= 0x7f || ch == '#' || ch == '\\' || ch == '"'
            || ch == '<' || ch == '>')
        {
            return CR_ERR;
        }
    }
    if (tlen >= 7 && strncasecmp(t, "http://", 7) == 0) {
        skip = 7;
    } else if (tlen >= 8 && strncasecmp(t, "https://", 8) == 0) {
        skip = 8;
    }
    if (skip != 0) {
        const char *a = t + skip;
        size_t alen = 0;

        while (skip + alen < tlen && a[alen] != '/' && a[alen] != '?') {
            alen++;
        }
        if (alen == 0 || !cr_http_valid_authority(a, alen)) {
            return CR_ERR;          /* empty, userinfo ("user@"), junk */
        }
        rq->host = a;
        rq->hostlen = alen;
        rq->host_from_target = 1;
        t = a + alen;
        tlen -= skip + alen;
    } else if (tlen == 1 && t[0] == '*' && hp->method == HTTP_OPTIONS) {
        rq->path = t;
        rq->pathlen = 1;
        rq->query = t + 1;
        rq->querylen = 0;
        goto host;
    } else if (tlen == 0 || t[0] != '/') {
        return CR_ERR;
    }
    for (i = 0; i < tlen && t[i] != '?'; i++) {
        continue;
    }
    rq->query = t + i;
    rq->querylen = tlen - i;
    if (i == 0) {
        rq->path = "/";      /* "http://host" or "http://host?q" */
        rq->pathlen = 1;
    } else {
        /*
         * Route on, and forward, the normalised path, so that a rule for
         * /admin sees /%61dmin and /x/../admin as what they are, and the
         * backend sees the path that was routed.
         */
        if (rq->npath_cap < i + 1) {
            char *n = realloc(rq->npath, i + 1);

            if (n == NULL) {
                return CR_ERR;
            }
            rq->npath = n;
            rq->npath_cap = i + 1;
        }
        rq->pathlen = cr_http_normalize_path(t, i, rq->npath, c->w->conf->merge_slashes);
        if (rq->pathlen == (size_t)-1) {
            return CR_ERR;
        }
        rq->path = rq->npath;
    }

host:
    if (rq->host == NULL && (f = cr_http_find_kind(hp, CR_HDR_HOST)) != NULL) {
        rq->host = cr_http_str(hp, f->value);
        rq->hostlen = f->value.len;
        while (rq->hostlen > 0 && (rq->host[rq->hostlen - 1] == ' '
                                  || rq->host[rq->hostlen - 1] == '\t'))
        {
            rq->hostlen--;
        }
    }
    return CR_OK;
}

/* Open the books of a request: counted, timed and logged from here on. */
static void
request_begin(struct cr_conn *c)
{
    struct cr_req *rq = c->rq;

    c->nreqs++;
    c->flags |= CR_CONN_F_IN_REQ;
    rq->start_us = cr_stats_now_us();
    rq->resp_status = 0;
    rq->route_row = -1;
    cr_access_req_begin(&rq->alog, &rq->p);
    CR_STAT_INC(requests_total);
    CR_STAT_INC(requests_active);
}

/* A request head is complete: route it. */
static void
on_head(struct cr_conn *c)
{
    const struct cr_conf_route *r;
    const char *mname;

    struct cr_req *rq = c->rq;

    arm_timer(c, CR_CONN_T_NONE);
    request_begin(c);
    if (c->w->draining) {
        c->flags |= CR_CONN_F_CLOSE;
    }
    if (parse_target(c) != CR_OK) {
        cr_conn_error(c, 400, "unsupported request target");
        return;
    }
    mname = llhttp_method_name((llhttp_method_t)c->rq->p.method);
    r = cr_router_match(c->w->conf, rq->host, rq->hostlen, rq->path, rq->pathlen,
                        cr_conf_method_bit(mname, strlen(mname)));
    if (r == NULL) {
        cr_conn_error(c, 404, "no route");
        return;
    }
    rq->route_row = r->stats_row;
    rq->alog.route = r->name;
    if (rq->route_row >= 0) {
        struct cr_shm_route_stats *rs = cr_stats_route(rq->route_row);

        cr_shm_add(&rs->counters[CR_SHM_R_requests_total], 1);
        cr_shm_add(&rs->counters[CR_SHM_R_requests_active], 1);
        cr_shm_add(&rs->counters[CR_SHM_R_bytes_in_total], c->rq->p.head_bytes);
    }
    cr_log_debug("conn %llu: %s %.*s -> route %s", (unsigned long long)c->id,
                 mname, (int)c->rq->p.target.len, cr_http_str(&c->rq->p, c->rq->p.target),
                 r->name);
    if (r->action != CR_ROUTE_UPSTREAM) {
        respond_local(c, r);
        return;
    }
    c->state = CR_CONN_S_UPSTREAM;
    cr_proxy_start(c, r);
}

static void
set_read_timeout(struct cr_conn *c, uint64_t ms)
{
    cr_io_set_timeouts(&c->io, (uint32_t)ms, (uint32_t)c->w->conf->limits.send_timeout_ms);
}

void
cr_conn_body_start(struct cr_conn *c)
{
    if (c->state == CR_CONN_S_UPSTREAM) {
        c->state = CR_CONN_S_BODY;
        cr_http_parser_resume(&c->rq->p);
        /*
         * A client that stops sending its body must not hold this conn
         * and an upstream conn forever. A read timeout runs only while
         * reading (io.c), so a slow upstream that pauses our reading for
         * backpressure does not trigger it. A request without a body
         * (no Content-Length, not chunked) needs none.
         */
        if (!c->rq->p.msg_done && ((c->rq->p.flags & CR_HTTP_F_CHUNKED)
                                   || c->rq->p.content_length > 0))
        {
            set_read_timeout(c, c->w->conf->limits.body_timeout_ms);
        }
    }
    cr_conn_pump(c);
}

/* The request message is complete. */
static void
on_request_done(struct cr_conn *c)
{
    set_read_timeout(c, 0);
    c->state = CR_CONN_S_REQ_DONE;
    if (c->proxy != NULL) {
        cr_proxy_req_done(c->proxy);
        return;
    }
    /* a local answer already went out; carry on with the next request */
    cr_conn_response_done(c, 0);
}

static int
body_cb(void *arg, const char *at, size_t len)
{
    struct cr_conn *c = arg;

    if (c->proxy == NULL) {
        return 0;           /* answered locally: drop the body */
    }
    return cr_proxy_req_body(c->proxy, at, len);
}

/* One step of the pump: feed one chunk (possibly empty) to the parser. */
static int
pump_step(struct cr_conn *c)
{
    struct evbuffer *in = c->io.in;
    struct evbuffer_iovec vec;
    enum cr_http_event ev;
    size_t n;

    if (in == NULL || evbuffer_peek(in, -1, NULL, &vec, 1) < 1) {
        vec.iov_base = NULL;
        vec.iov_len = 0;
    }
    n = cr_http_parser_execute(&c->rq->p, vec.iov_base ? vec.iov_base : "", vec.iov_len, &ev);
    if (n != 0) {
        evbuffer_drain(in, n);
        CR_STAT_ADD(client_bytes_in_total, n);
        if (c->rq->route_row >= 0 && c->state == CR_CONN_S_BODY) {
            cr_shm_add(&cr_stats_route(c->rq->route_row)->counters[CR_SHM_R_bytes_in_total], n);
        }
    }
    switch (ev) {
    case CR_HTTP_EV_NONE:
        return vec.iov_len != 0;
    case CR_HTTP_EV_HEAD:
        on_head(c);
        return 1;
    case CR_HTTP_EV_DONE:
        on_request_done(c);
        return 1;
    case CR_HTTP_EV_ERROR:
    default:
        CR_STAT_INC(parse_errors_total);
        if (c->proxy != NULL) {
            int started = cr_proxy_resp_started(c->proxy);

            cr_proxy_abort(c->proxy, c->rq->p.err_reason);
            if (started) {
                cr_conn_close(c, "bad request body after response began");
                return 0;
            }
        }
        cr_conn_error(c, c->rq->p.err_status, c->rq->p.err_reason ? c->rq->p.err_reason : "bad request");
        return 0;
    }
}

void
cr_conn_pump(struct cr_conn *c)
{
    if (c->flags & CR_CONN_F_IN_PUMP) {
        c->flags |= CR_CONN_F_PUMP_AGAIN;
        return;
    }
    c->flags |= CR_CONN_F_IN_PUMP;
    for (;;) {
        c->flags &= ~CR_CONN_F_PUMP_AGAIN;
        if (c->flags & CR_CONN_F_DEAD) {
            break;
        }
        if (c->state == CR_CONN_S_CLOSING) {
            if ((c->flags & CR_CONN_F_LINGER) && c->io.in != NULL) {
                evbuffer_drain(c->io.in, evbuffer_get_length(c->io.in));
            }
            break;
        }
        if (c->state == CR_CONN_S_IDLE) {
            if (cr_io_in_len(&c->io) == 0) {
                /* idle: keep only struct cr_conn (io.h, "lazily made") */
                req_free(c);
                cr_io_trim(&c->io);
                break;
            }
            if (cr_conn_output_full(c)) {
                /*
                 * A client pipelining requests we answer ourselves while
                 * not reading the answers: stop here until it drains, or
                 * our output would grow without bound.
                 */
                c->flags |= CR_CONN_F_OUT_PAUSED;
                break;
            }
            if (c->rq == NULL && (c->rq = req_new(c)) == NULL) {
                c->flags |= CR_CONN_F_DEAD;
                cr_log_warn("conn %llu: out of memory", (unsigned long long)c->id);
                break;
            }
            c->state = CR_CONN_S_HEAD;
            arm_timer(c, CR_CONN_T_HEAD);
        }
        if (c->state == CR_CONN_S_TUNNEL) {
            if (c->proxy != NULL && cr_proxy_tunnel_up(c->proxy) == -1) {
                c->flags |= CR_CONN_F_READ_PAUSED;  /* the upstream's drain resumes */
            }
            break;
        }
        if (c->state != CR_CONN_S_HEAD && c->state != CR_CONN_S_BODY) {
            break;
        }
        if (c->state == CR_CONN_S_BODY && c->proxy != NULL
            && cr_proxy_req_full(c->proxy))
        {
            /* backpressure: the upstream's drain resumes us */
            c->flags |= CR_CONN_F_READ_PAUSED;
            break;
        }
        if (!pump_step(c) && !(c->flags & CR_CONN_F_PUMP_AGAIN)) {
            break;
        }
    }
    c->flags &= ~CR_CONN_F_IN_PUMP;
    if (c->flags & CR_CONN_F_DEAD) {
        conn_free(c);
        return;
    }
    if ((c->flags & CR_CONN_F_READ_PAUSED) && c->state != CR_CONN_S_BODY
        && c->state != CR_CONN_S_TUNNEL)
    {
        c->flags &= ~CR_CONN_F_READ_PAUSED;
    }
    cr_io_consumed(&c->io);
    if (c->flags & CR_CONN_F_PEER_EOF) {
        /*
         * The client has sent all it ever will. What is buffered still
         * counts (a request then a half-close wants its answer); once it
         * is used up, a request left incomplete can never finish.
         */
        if (cr_io_in_len(&c->io) == 0 && !(c->flags & CR_CONN_F_OUT_PAUSED)) {
            if (c->state == CR_CONN_S_TUNNEL) {
                if (c->proxy != NULL && !(c->flags & CR_CONN_F_EOF_PASSED)) {
                    c->flags |= CR_CONN_F_EOF_PASSED;
                    cr_proxy_tunnel_client_eof(c->proxy);
                }
                return;         /* until the upstream closes too */
            }
            if (c->state == CR_CONN_S_IDLE) {
                close_after_flush(c, 0);
                return;
            }
            if (c->state == CR_CONN_S_HEAD
                || (c->state == CR_CONN_S_BODY && !c->rq->p.msg_done))
            {
                cr_conn_close(c, "client closed mid-request");
                return;
            }
        }
        return;
    }
    cr_io_read(&c->io, !(c->flags & (CR_CONN_F_READ_PAUSED | CR_CONN_F_OUT_PAUSED)));
}

void
cr_conn_response_done(struct cr_conn *c, int close)
{
    request_end(c);
    if (close || (c->flags & CR_CONN_F_CLOSE) || c->w->draining
        || !cr_http_should_keep_alive(&c->rq->p)
        || c->state != CR_CONN_S_REQ_DONE)
    {
        /* a request still being read when its answer ended: cut it short */
        close_after_flush(c, c->state != CR_CONN_S_REQ_DONE);
        return;
    }
    if (!(c->flags & CR_CONN_F_NODELAY)) {
        /*
         * Kept alive: from now on small answers must not wait for the
         * ACK of the previous one (Nagle). Set here rather than at accept,
         * as nginx does, which saves a syscall per one-shot connection.
         */
        int one = 1;

        setsockopt(cr_io_fd(&c->io), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->flags |= CR_CONN_F_NODELAY;
    }
    cr_http_parser_next(&c->rq->p);
    c->state = CR_CONN_S_IDLE;
    arm_timer(c, CR_CONN_T_IDLE);
    cr_conn_pump(c);
}

void
cr_conn_tunnel_start(struct cr_conn *c)
{
    request_end(c);
    c->state = CR_CONN_S_TUNNEL;
    arm_timer(c, CR_CONN_T_NONE);
    set_read_timeout(c, 0);
    cr_conn_pump(c);        /* bytes the client sent after its request */
}

void
cr_conn_tunnel_end(struct cr_conn *c)
{
    close_after_flush(c, 0);
}

/* Output went down to the low watermark (or was empty to begin with). */
static void
write_done(struct cr_conn *c)
{
    if (c->state == CR_CONN_S_CLOSING) {
        if (cr_io_out_len(&c->io) != 0) {
            return;
        }
        if (!(c->flags & CR_CONN_F_LINGER) || (c->flags & CR_CONN_F_PEER_EOF)) {
            cr_conn_close(c, "response sent");
            return;
        }
        /* lingering close: FIN now, drop whatever still comes, then close */
        if (c->timer_kind != CR_CONN_T_LINGER) {
            cr_io_shutdown_wr(&c->io);      /* no-op if the write did it */
            arm_timer(c, CR_CONN_T_LINGER);
            cr_io_set_timeouts(&c->io, 0, 0);
            cr_io_read(&c->io, 1);
        }
        return;
    }
    if (c->flags & CR_CONN_F_OUT_PAUSED) {
        c->flags &= ~CR_CONN_F_OUT_PAUSED;
        cr_conn_pump(c);
        return;
    }
    if (c->proxy != NULL) {
        cr_proxy_client_drained(c->proxy);
    }
}

/* The client has sent all it will (EOF). */
static void
peer_eof(struct cr_conn *c)
{
    c->flags |= CR_CONN_F_PEER_EOF;
    if (c->state == CR_CONN_S_CLOSING) {
        if ((c->flags & CR_CONN_F_LINGER) && c->timer_kind == CR_CONN_T_LINGER) {
            cr_conn_close(c, "lingering close done");
        }
        return;
    }
    /* what is buffered still gets its answer; the pump decides */
    cr_conn_pump(c);
}

static void
io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_conn *c = arg;
    unsigned r;

    (void)fd;
    r = cr_io_handle(&c->io, what);
    if (r & CR_IO_R_RTIMEOUT) {
        /* body_timeout: the client stopped sending its request body */
        set_read_timeout(c, 0);
        if (c->proxy != NULL) {
            int started = cr_proxy_resp_started(c->proxy);

            cr_proxy_abort(c->proxy, "request body timeout");
            if (started) {
                cr_conn_close(c, "request body timeout");
                return;
            }
        }
        cr_conn_error(c, 408, "request body timeout");
        return;
    }
    if (r & CR_IO_R_WTIMEOUT) {
        cr_conn_close(c, "send timeout");
        return;
    }
    if (r & CR_IO_R_ERROR) {
        cr_conn_close(c, "socket error");
        return;
    }
    if (r & CR_IO_R_DRAINED) {
        /* writes and reads never come in one call: nothing else to do */
        write_done(c);
        return;
    }
    if (r & CR_IO_R_DATA) {
        cr_conn_pump(c);
        return;
    }
    if (r & CR_IO_R_EOF) {
        peer_eof(c);
    }
}

static void
timer_fire(struct cr_timer *t)
{
    struct cr_conn *c = timer_conn(t);
    enum cr_conn_timer kind = c->timer_kind;

    c->timer_kind = CR_CONN_T_NONE;
    switch (kind) {
    case CR_CONN_T_IDLE:
    case CR_CONN_T_GRACE:
        cr_conn_close(c, "idle timeout");
        break;
    case CR_CONN_T_HEAD:
        cr_conn_error(c, 408, "request head timeout");
        break;
    case CR_CONN_T_LINGER:
    default:
        cr_conn_close(c, "lingering close timeout");
        break;
    }
}

void
cr_conn_drain_all(struct cr_worker *w)
{
    struct cr_conn *c, *next;

    for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        c->flags |= CR_CONN_F_CLOSE;
        if (c->state != CR_CONN_S_IDLE
            || cr_io_in_len(&c->io) != 0)
        {
            continue;       /* closes after its response */
        }
        if (c->nreqs == 0) {
            /*
             * Accepted, but its first request is still on the wire: closing
             * now would fail a client that did nothing wrong. It gets a
             * moment to send it, and its answer says Connection: close.
             */
            arm_timer(c, CR_CONN_T_GRACE);
            continue;
        }
        cr_conn_close(c, "draining idle keep-alive connection");
    }
}

void
cr_conn_close_all(struct cr_worker *w)
{
    struct cr_conn *c;

    while ((c = TAILQ_FIRST(&w->conns)) != NULL) {
        c->flags &= ~CR_CONN_F_IN_PUMP;
        cr_conn_close(c, "stopping");
    }
}
