/*
 * admin.c - the admin listener: GET /metrics and GET /status.
 *
 * Runs in a process of its own, forked and supervised by the master, never
 * in a worker: it answers from the stats segment, so it keeps answering
 * when every worker is saturated, and a slow scraper never takes a slot of
 * a worker's event loop. HTTP here is libevent's evhttp, which is plenty
 * for two read-only endpoints.
 *
 * A snapshot is taken every second and kept, so /status can report rates
 * (requests per second) over the last second without a second read.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "conf/conf.h"
#include "shm/report.h"
#include "shm/shm.h"
#include "admin.h"
#include "log.h"
#include "worker.h"

struct admin {
    const struct cr_shm_header  *hdr;
    struct event_base           *base;
    void                        *prev;          /* last tick's snapshot */
    void                        *cur;
    uint64_t                     prev_mono_ms;
    int                          have_prev;
};

static uint64_t
clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin *a = arg;

    (void)fd;
    (void)what;
    if (cr_shm_snapshot(a->hdr, a->prev) == CR_OK) {
        a->prev_mono_ms = clock_ms(CLOCK_MONOTONIC);
        a->have_prev = 1;
    }
}

static void
reply(struct evhttp_request *req, int code, const char *type, const char *body, size_t len)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evbuffer_add(out, body, len);
    evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ? "Not Found"
                                 : code == 405 ? "Method Not Allowed"
                                 : "Service Unavailable", out);
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct cr_report_buf b;
    struct cr_report_in in;
    uint64_t mono;
    int rc, metrics;

    if (path == NULL) {
        path = "/";
    }
    metrics = strcmp(path, "/metrics") == 0;
    if (!metrics && strcmp(path, "/status") != 0) {
        reply(req, 404, "text/plain", "not found: try /metrics or /status\n", 35);
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        reply(req, 405, "text/plain", "GET only\n", 9);
        return;
    }
    if (cr_shm_snapshot(a->hdr, a->cur) != CR_OK) {
        reply(req, 503, "text/plain", "stats segment busy, try again\n", 30);
        return;
    }
    mono = clock_ms(CLOCK_MONOTONIC);
    memset(&in, 0, sizeof(in));
    in.cur = a->cur;
    if (a->have_prev && mono > a->prev_mono_ms) {
        in.prev = a->prev;
        in.elapsed = (double)(mono - a->prev_mono_ms) / 1000.0;
    }
    in.now_ms = clock_ms(CLOCK_REALTIME);
    in.now_mono_ms = mono;

    cr_report_buf_init(&b);
    if (metrics) {
        rc = cr_report_prometheus(&b, &in);
    } else {
        rc = cr_report_status_json(&b, &in);
    }
    if (rc != CR_OK) {
        reply(req, 503, "text/plain", "out of memory\n", 14);
    } else {
        reply(req, 200, metrics ? "text/plain; version=0.0.4; charset=utf-8"
                                : "application/json", b.data, b.len);
    }
    cr_report_buf_free(&b);
}

static void
term_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin *a = arg;

    (void)fd;
    (void)what;
    event_base_loopexit(a->base, NULL);
}

/* Our own socket, so the address can be reused at once by a new admin. */
static int
open_socket(const struct cr_conf_addr *addr)
{
    int fd, one = 1;

    fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1
        || bind(fd, (const struct sockaddr *)&addr->ss, addr->len) == -1
        || listen(fd, 128) == -1)
    {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int
cr_admin_run(const struct cr_conf *conf, const struct cr_shm_header *hdr)
{
    struct admin a;
    struct evhttp *http = NULL;
    struct event *tick = NULL, *term = NULL;
    struct timeval one_s = { 1, 0 };
    int fd = -1, rc = CR_EXIT_SETUP;
    char err[256];

    cr_log_set_role("admin");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    memset(&a, 0, sizeof(a));
    a.hdr = hdr;
    a.prev = malloc(hdr->total_size);
    a.cur = malloc(hdr->total_size);
    a.base = event_base_new();
    if (a.prev == NULL || a.cur == NULL || a.base == NULL) {
        cr_log_error("admin: out of memory");
        goto done;
    }
    fd = open_socket(&conf->admin);
    if (fd == -1) {
        cr_log_error("admin %s: %s", conf->admin.text, strerror(errno));
        goto done;
    }
    http = evhttp_new(a.base);
    if (http == NULL || evhttp_accept_socket(http, fd) == -1) {
        cr_log_error("admin %s: cannot serve", conf->admin.text);
        goto done;
    }
    fd = -1;                                /* evhttp owns it now */
    if (cr_worker_drop_privileges(conf, 0, err, sizeof(err)) != CR_OK) {
        cr_log_error("admin: %s", err);
        goto done;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST
                                     | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(http, request_cb, &a);
    evhttp_set_timeout(http, 10);
    tick = event_new(a.base, -1, EV_PERSIST, tick_cb, &a);
    term = evsignal_new(a.base, SIGTERM, term_cb, &a);
    if (tick == NULL || term == NULL || event_add(tick, &one_s) == -1
        || evsignal_add(term, NULL) == -1)
    {
        cr_log_error("admin: cannot set up events");
        goto done;
    }
    tick_cb(-1, 0, &a);
    cr_log_info("admin listening on %s (GET /metrics, GET /status)", conf->admin.text);
    event_base_dispatch(a.base);
    rc = CR_EXIT_OK;

done:
    if (tick != NULL) {
        event_free(tick);
    }
    if (term != NULL) {
        event_free(term);
    }
    if (http != NULL) {
        evhttp_free(http);
    }
    if (fd != -1) {
        close(fd);
    }
    if (a.base != NULL) {
        event_base_free(a.base);
    }
    free(a.prev);
    free(a.cur);
    return rc;
}
