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
#include <event2/bufferevent.h>
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

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static int  body_cb(void *arg, const char *at, size_t len);

static void
arm_timer(struct cr_conn *c, enum cr_conn_timer kind, uint64_t ms)
{
    struct timeval tv;

    c->timer_kind = kind;
    if (kind == CR_CONN_T_NONE || ms == 0) {
        evtimer_del(c->timer);
        c->timer_kind = CR_CONN_T_NONE;
        return;
    }
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    evtimer_add(c->timer, &tv);
}

void
cr_conn_accept(struct cr_worker *w, int fd, const struct sockaddr *sa,
               socklen_t salen)
{
    const struct cr_conf_limits *lim = &w->conf->limits;
    struct cr_conn *c;
    struct timeval send_tv;
    int one = 1;

    (void)salen;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        cr_log_warn("accept: out of memory, dropping connection");
        close(fd);
        return;
    }
    c->w = w;
    c->id = ++w->next_conn_id;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
                  c->peer, sizeof(c->peer));
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                  c->peer, sizeof(c->peer));
    } else {
        strcpy(c->peer, "unknown");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(w->base, timer_cb, c);
    if (c->bev == NULL || c->timer == NULL) {
        cr_log_warn("conn %llu: out of memory setting up", (unsigned long long)c->id);
        if (c->bev != NULL) {
            bufferevent_free(c->bev);
        } else {
            close(fd);
        }
        if (c->timer != NULL) {
            event_free(c->timer);
        }
        free(c);
        return;
    }

    c->limits.max_head_bytes = lim->max_header_bytes;
    c->limits.max_headers = lim->max_headers;
    c->limits.max_uri_bytes = lim->max_uri_bytes;
    c->limits.max_body_bytes = lim->max_body_bytes;
    cr_http_parser_init(&c->req, 1, &c->limits, NULL, body_cb, c);

    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, CR_PROXY_READ_MAX);
    bufferevent_setwatermark(c->bev, EV_WRITE, CR_PROXY_LOW_WATER, 0);
    send_tv.tv_sec = (time_t)(lim->send_timeout_ms / 1000);
    send_tv.tv_usec = (suseconds_t)((lim->send_timeout_ms % 1000) * 1000);
    bufferevent_set_timeouts(c->bev, NULL, &send_tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);

    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
    c->route_row = -1;
    CR_STAT_INC(connections_accepted_total);
    CR_STAT_INC(connections_active);
    c->state = CR_CONN_S_IDLE;
    arm_timer(c, CR_CONN_T_IDLE, lim->idle_timeout_ms);
    cr_log_debug("conn %llu: accepted from %s", (unsigned long long)c->id, c->peer);
}

void
cr_conn_count_response(struct cr_conn *c, int status, int ours)
{
    c->resp_status = status;
    cr_stats_response(status, ours);
}

void
cr_conn_count_out(struct cr_conn *c, size_t n)
{
    CR_STAT_ADD(client_bytes_out_total, n);
    c->alog.bytes += n;
    if (c->route_row >= 0) {
        cr_shm_add(&cr_stats_route(c->route_row)->counters[CR_SHM_R_bytes_out_total], n);
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
    uint64_t us;

    if (!(c->flags & CR_CONN_F_IN_REQ)) {
        return;
    }
    c->flags &= ~CR_CONN_F_IN_REQ;
    us = cr_stats_now_us() - c->req_start_us;
    CR_STAT_DEC(requests_active);
    cr_shm_hist_add(&cr_stats_slot->request_time, us);
    if (c->resp_status == 0) {
        CR_STAT_INC(errors_499_total);
    }
    {
        struct cr_access_entry e = { c->peer, &c->req, c->resp_status != 0 ? c->resp_status
                                     : 499, us, &c->alog };

        cr_access_log_request(&e);
    }
    if (c->route_row >= 0) {
        struct cr_shm_route_stats *rs = cr_stats_route(c->route_row);

        cr_shm_sub(&rs->counters[CR_SHM_R_requests_active], 1);
        if (c->resp_status != 0) {
            cr_shm_add(&rs->counters[CR_SHM_R_responses_1xx_total
                                     + cr_stats_class(c->resp_status)], 1);
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
    event_free(c->timer);
    bufferevent_free(c->bev);
    cr_http_parser_free(&c->req);
    free(c->npath);
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
    return evbuffer_get_length(bufferevent_get_output(c->bev)) > CR_PROXY_HIGH_WATER;
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
    arm_timer(c, CR_CONN_T_NONE, 0);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        write_cb(c->bev, c);
    }
}

/*
 * Queue a response made by corral. <extra> holds complete header lines
 * ("Name: value\r\n") or NULL. The body is left out for HEAD.
 */
static void
respond(struct cr_conn *c, int status, const char *extra, const char *body,
        size_t blen, int close, int default_type, int ours)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int head_only = c->req.head_done && c->req.method == HTTP_HEAD;
    size_t before = evbuffer_get_length(out);

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
    } else if (c->req.http_major == 1 && c->req.http_minor == 0) {
        evbuffer_add_printf(out, "Connection: keep-alive\r\n");
    }
    evbuffer_add(out, "\r\n", 2);
    if (!head_only && blen != 0) {
        evbuffer_add(out, body, blen);
    }
    cr_conn_count_response(c, status, ours);
    cr_conn_count_out(c, evbuffer_get_length(out) - before);
}

/* Does the client still have request body bytes we have not read? */
static int
body_pending(const struct cr_conn *c)
{
    const struct cr_http_parser *hp = &c->req;

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
    cr_log_info("conn %llu %s: %d: %s", (unsigned long long)c->id, c->peer,
                status, why);
    /*
     * Errors found while routing or proxying leave a well-framed request
     * behind, so the connection can carry on if the client wants; errors
     * of the request itself do not, so we close.
     */
    keep = (status == 404 || status == 502 || status == 503 || status == 504)
           && c->req.head_done && !body_pending(c)
           && cr_http_should_keep_alive(&c->req)
           && !(c->flags & CR_CONN_F_CLOSE) && !c->w->draining;
    snprintf(body, sizeof(body), "%d %s\n", status, cr_http_reason(status));
    respond(c, status, NULL, body, strlen(body), !keep, 1, 1);
    if (!keep) {
        close_after_flush(c, 1);
        return;
    }
    if (c->state == CR_CONN_S_REQ_DONE || c->req.msg_done) {
        cr_conn_response_done(c, 0);
        return;
    }
    /* the message is complete but the parser has not said so yet */
    c->state = CR_CONN_S_BODY;
    cr_http_parser_resume(&c->req);
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

    close = !cr_http_should_keep_alive(&c->req) || body_pending(c)
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
    cr_http_parser_resume(&c->req);
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
    const struct cr_http_parser *hp = &c->req;
    const char *t = cr_http_str(hp, hp->target);
    size_t tlen = hp->target.len, i, skip = 0;
    const struct cr_http_field *f;

    c->host = NULL;
    c->hostlen = 0;
    c->host_from_target = 0;
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
        c->host = a;
        c->hostlen = alen;
        c->host_from_target = 1;
        t = a + alen;
        tlen -= skip + alen;
    } else if (tlen == 1 && t[0] == '*' && hp->method == HTTP_OPTIONS) {
        c->path = t;
        c->pathlen = 1;
        c->query = t + 1;
        c->querylen = 0;
        goto host;
    } else if (tlen == 0 || t[0] != '/') {
        return CR_ERR;
    }
    for (i = 0; i < tlen && t[i] != '?'; i++) {
        continue;
    }
    c->query = t + i;
    c->querylen = tlen - i;
    if (i == 0) {
        c->path = "/";      /* "http://host" or "http://host?q" */
        c->pathlen = 1;
    } else {
        /*
         * Route on, and forward, the normalised path, so that a rule for
         * /admin sees /%61dmin and /x/../admin as what they are, and the
         * backend sees the path that was routed.
         */
        if (c->npath_cap < i + 1) {
            char *n = realloc(c->npath, i + 1);

            if (n == NULL) {
                return CR_ERR;
            }
            c->npath = n;
            c->npath_cap = i + 1;
        }
        c->pathlen = cr_http_normalize_path(t, i, c->npath, c->w->conf->merge_slashes);
        if (c->pathlen == (size_t)-1) {
            return CR_ERR;
        }
        c->path = c->npath;
    }

host:
    if (c->host == NULL && (f = cr_http_find(hp, "host")) != NULL) {
        c->host = cr_http_str(hp, f->value);
        c->hostlen = f->value.len;
        while (c->hostlen > 0 && (c->host[c->hostlen - 1] == ' '
                                  || c->host[c->hostlen - 1] == '\t'))
        {
            c->hostlen--;
        }
    }
    return CR_OK;
}

/* A request head is complete: route it. */
static void
on_head(struct cr_conn *c)
{
    const struct cr_conf_route *r;
    const char *mname;

    arm_timer(c, CR_CONN_T_NONE, 0);
    c->nreqs++;
    c->flags |= CR_CONN_F_IN_REQ;
    c->req_start_us = cr_stats_now_us();
    c->resp_status = 0;
    c->route_row = -1;
    cr_access_req_begin(&c->alog, &c->req);
    CR_STAT_INC(requests_total);
    CR_STAT_INC(requests_active);
    if (c->w->draining) {
        c->flags |= CR_CONN_F_CLOSE;
    }
    if (parse_target(c) != CR_OK) {
        cr_conn_error(c, 400, "unsupported request target");
        return;
    }
    mname = llhttp_method_name((llhttp_method_t)c->req.method);
    r = cr_router_match(c->w->conf, c->host, c->hostlen, c->path, c->pathlen,
                        cr_conf_method_bit(mname, strlen(mname)));
    if (r == NULL) {
        cr_conn_error(c, 404, "no route");
        return;
    }
    c->route_row = r->stats_row;
    c->alog.route = r->name;
    if (c->route_row >= 0) {
        struct cr_shm_route_stats *rs = cr_stats_route(c->route_row);

        cr_shm_add(&rs->counters[CR_SHM_R_requests_total], 1);
        cr_shm_add(&rs->counters[CR_SHM_R_requests_active], 1);
        cr_shm_add(&rs->counters[CR_SHM_R_bytes_in_total], c->req.head_bytes);
    }
    cr_log_debug("conn %llu: %s %.*s -> route %s", (unsigned long long)c->id,
                 mname, (int)c->req.target.len, cr_http_str(&c->req, c->req.target),
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
    const struct cr_conf_limits *lim = &c->w->conf->limits;
    struct timeval r, w;

    r.tv_sec = (time_t)(ms / 1000);
    r.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    w.tv_sec = (time_t)(lim->send_timeout_ms / 1000);
    w.tv_usec = (suseconds_t)((lim->send_timeout_ms % 1000) * 1000);
    bufferevent_set_timeouts(c->bev, ms ? &r : NULL, &w);
}

void
cr_conn_body_start(struct cr_conn *c)
{
    if (c->state == CR_CONN_S_UPSTREAM) {
        c->state = CR_CONN_S_BODY;
        cr_http_parser_resume(&c->req);
        /*
         * A client that stops sending its body must not hold this conn
         * and an upstream conn forever. libevent suspends the read timeout
         * while reading is disabled for backpressure, so a slow upstream
         * does not trigger it.
         */
        if (!c->req.msg_done) {
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
pump_step(struct cr_conn *c, struct evbuffer *in)
{
    struct evbuffer_iovec vec;
    enum cr_http_event ev;
    size_t n;
    int have;

    have = evbuffer_peek(in, -1, NULL, &vec, 1);
    if (have < 1) {
        vec.iov_base = NULL;
        vec.iov_len = 0;
    }
    n = cr_http_parser_execute(&c->req, vec.iov_base ? vec.iov_base : "", vec.iov_len, &ev);
    if (n != 0) {
        evbuffer_drain(in, n);
        CR_STAT_ADD(client_bytes_in_total, n);
        if (c->route_row >= 0 && c->state == CR_CONN_S_BODY) {
            cr_shm_add(&cr_stats_route(c->route_row)->counters[CR_SHM_R_bytes_in_total], n);
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

            cr_proxy_abort(c->proxy, c->req.err_reason);
            if (started) {
                cr_conn_close(c, "bad request body after response began");
                return 0;
            }
        }
        cr_conn_error(c, c->req.err_status, c->req.err_reason ? c->req.err_reason : "bad request");
        return 0;
    }
}

void
cr_conn_pump(struct cr_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

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
            if (c->flags & CR_CONN_F_LINGER) {
                evbuffer_drain(in, evbuffer_get_length(in));
            }
            break;
        }
        if (c->state == CR_CONN_S_IDLE) {
            if (evbuffer_get_length(in) == 0) {
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
            c->state = CR_CONN_S_HEAD;
            arm_timer(c, CR_CONN_T_HEAD, c->w->conf->limits.header_timeout_ms);
        }
        if (c->state != CR_CONN_S_HEAD && c->state != CR_CONN_S_BODY) {
            break;
        }
        if (c->state == CR_CONN_S_BODY && c->proxy != NULL
            && cr_proxy_req_full(c->proxy))
        {
            /* backpressure: the upstream's write callback resumes us */
            c->flags |= CR_CONN_F_READ_PAUSED;
            bufferevent_disable(c->bev, EV_READ);
            break;
        }
        if (!pump_step(c, in) && !(c->flags & CR_CONN_F_PUMP_AGAIN)) {
            break;
        }
    }
    c->flags &= ~CR_CONN_F_IN_PUMP;
    if (c->flags & CR_CONN_F_DEAD) {
        conn_free(c);
        return;
    }
    if ((c->flags & CR_CONN_F_READ_PAUSED) && c->state != CR_CONN_S_BODY) {
        c->flags &= ~CR_CONN_F_READ_PAUSED;
    }
    if (c->flags & CR_CONN_F_PEER_EOF) {
        /*
         * The client has sent all it ever will. What is buffered still
         * counts (a request then a half-close wants its answer); once it
         * is used up, a request left incomplete can never finish.
         */
        if (evbuffer_get_length(in) == 0 && !(c->flags & CR_CONN_F_OUT_PAUSED)) {
            if (c->state == CR_CONN_S_IDLE) {
                close_after_flush(c, 0);
                return;
            }
            if (c->state == CR_CONN_S_HEAD
                || (c->state == CR_CONN_S_BODY && !c->req.msg_done))
            {
                cr_conn_close(c, "client closed mid-request");
                return;
            }
        }
        return;
    }
    if (!(c->flags & (CR_CONN_F_READ_PAUSED | CR_CONN_F_OUT_PAUSED))) {
        bufferevent_enable(c->bev, EV_READ);
    } else {
        bufferevent_disable(c->bev, EV_READ);
    }
}

void
cr_conn_response_done(struct cr_conn *c, int close)
{
    request_end(c);
    if (close || (c->flags & CR_CONN_F_CLOSE) || c->w->draining
        || !cr_http_should_keep_alive(&c->req)
        || c->state != CR_CONN_S_REQ_DONE)
    {
        /* a request still being read when its answer ended: cut it short */
        close_after_flush(c, c->state != CR_CONN_S_REQ_DONE);
        return;
    }
    cr_http_parser_next(&c->req);
    c->state = CR_CONN_S_IDLE;
    arm_timer(c, CR_CONN_T_IDLE, c->w->conf->limits.idle_timeout_ms);
    cr_conn_pump(c);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    cr_conn_pump(arg);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    struct cr_conn *c = arg;

    if (c->state == CR_CONN_S_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
            return;
        }
        if (!(c->flags & CR_CONN_F_LINGER) || (c->flags & CR_CONN_F_PEER_EOF)) {
            cr_conn_close(c, "response sent");
            return;
        }
        /* lingering close: FIN now, drop whatever still comes, then close */
        if (c->timer_kind != CR_CONN_T_LINGER) {
            shutdown(bufferevent_getfd(bev), SHUT_WR);
            arm_timer(c, CR_CONN_T_LINGER, LINGER_MS);
            bufferevent_enable(bev, EV_READ);
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

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct cr_conn *c = arg;

    (void)bev;
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
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
    if (what & BEV_EVENT_TIMEOUT) {
        cr_conn_close(c, "send timeout");
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        cr_conn_close(c, "socket error");
        return;
    }
    if (what & BEV_EVENT_EOF) {
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
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_conn *c = arg;
    enum cr_conn_timer kind = c->timer_kind;

    (void)fd;
    (void)what;
    c->timer_kind = CR_CONN_T_NONE;
    switch (kind) {
    case CR_CONN_T_IDLE:
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
            || evbuffer_get_length(bufferevent_get_input(c->bev)) != 0)
        {
            continue;       /* closes after its response */
        }
        if (c->nreqs == 0) {
            /*
             * Accepted, but its first request is still on the wire: closing
             * now would fail a client that did nothing wrong. It gets a
             * moment to send it, and its answer says Connection: close.
             */
            arm_timer(c, CR_CONN_T_IDLE, DRAIN_GRACE_MS);
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
