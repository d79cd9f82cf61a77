/*
 * health.c - active health checks, once per instance.
 *
 * nginx open source has no active checks, and HAProxy's used to run once
 * per process, so N workers sent N checks. corral runs them in one process
 * that the master supervises, and publishes each verdict in the server's
 * shm row; every worker reads the row on every pick, so a verdict applies
 * to the whole instance at once. Rows are found by (upstream, address), so
 * a server's state survives a reload: the new checker carries on from the
 * consecutive counts the old one left.
 *
 * A check is a plain HTTP/1.1 "GET <path>" with "Connection: close", sent
 * on a non-blocking socket: connect, send, read until the status line,
 * close. All checks of the instance share one poll(2) loop; none blocks
 * another, and each has its own deadline (health.timeout). Only the status
 * code is looked at; the body is never read.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "shm/shm.h"
#include "health.h"
#include "worker.h"
#include "log.h"

#define HEAD_MAX    1024        /* a status line longer than this fails */
#define IDLE_WAIT   1000        /* ms between looks when nothing is due */

enum phase {
    PH_IDLE = 0,                /* waiting for the next interval */
    PH_CONNECT,
    PH_SEND,
    PH_RECV
};

struct check {
    const struct cr_conf_upstream *up;
    const struct cr_conf_server   *srv;
    struct cr_shm_server          *row;
    enum phase                     phase;
    int                            fd;
    uint64_t                       due_ms;      /* next start (monotonic) */
    uint64_t                       started_us;
    uint64_t                       deadline_ms;
    char                           req[1400];
    size_t                         req_len;
    size_t                         sent;
    char                           buf[HEAD_MAX];
    size_t                         got;
};

static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static uint64_t
clock_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int
cr_health_wanted(const struct cr_conf *conf)
{
    size_t i;

    for (i = 0; i < conf->nupstreams; i++) {
        if (conf->upstreams[i].health.path != NULL) {
            return 1;
        }
    }
    return 0;
}

void
cr_health_reset(const struct cr_conf *conf, struct cr_shm_header *hdr)
{
    size_t i, j;

    for (i = 0; hdr != NULL && i < conf->nupstreams; i++) {
        const struct cr_conf_upstream *u = &conf->upstreams[i];

        for (j = 0; u->health.path == NULL && j < u->nservers; j++) {
            int r = u->servers[j].stats_row;
            struct cr_shm_server *row;

            if (r < 0 || (unsigned)r >= hdr->servers_cap) {
                continue;
            }
            row = cr_shm_server_at(hdr, (unsigned)r);
            __atomic_store_n(&row->health, CR_SHM_HEALTH_UNKNOWN, __ATOMIC_RELAXED);
            __atomic_store_n(&row->check_passes, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&row->check_fails, 0, __ATOMIC_RELAXED);
        }
    }
}

int
cr_health_parse_status(const char *buf, size_t len)
{
    int code;

    /* "HTTP/1.1 200 OK\r\n": RFC 9112 §4, status-code is exactly 3 digits */
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1')
        || buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9'
        || buf[11] < '0' || buf[11] > '9' || (len > 12 && buf[12] != ' ' && buf[12] != '\r'))
    {
        return -1;
    }
    code = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    return code;
}

int
cr_health_record(struct cr_shm_server *row, int status, const char *error,
                 unsigned lo, unsigned hi, unsigned fails, unsigned passes,
                 unsigned took_us)
{
    uint32_t health = __atomic_load_n(&row->health, __ATOMIC_RELAXED);
    uint32_t want = health;
    int pass = status > 0 && (unsigned)status >= lo && (unsigned)status <= hi;
    struct timespec ts;
    uint64_t now;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    __atomic_store_n(&row->last_status, (uint32_t)(status > 0 ? status : 0), __ATOMIC_RELAXED);
    __atomic_store_n(&row->last_check_us, took_us, __ATOMIC_RELAXED);
    if (pass) {
        __atomic_store_n(&row->check_fails, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&row->check_passes, row->check_passes + 1, __ATOMIC_RELAXED);
        __atomic_store_n(&row->checks_ok, row->checks_ok + 1, __ATOMIC_RELAXED);
        if (health == CR_SHM_HEALTH_UNKNOWN || row->check_passes >= passes) {
            want = CR_SHM_HEALTH_UP;
        }
    } else {
        if (status > 0) {
            snprintf(row->last_error, sizeof(row->last_error), "status %d", status);
        } else {
            snprintf(row->last_error, sizeof(row->last_error), "%s", error);
        }
        __atomic_store_n(&row->check_passes, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&row->check_fails, row->check_fails + 1, __ATOMIC_RELAXED);
        __atomic_store_n(&row->checks_failed, row->checks_failed + 1, __ATOMIC_RELAXED);
        if (row->check_fails >= fails) {
            want = CR_SHM_HEALTH_DOWN;
        }
    }
    /* the time first: a reader that sees the new verdict sees when it came */
    __atomic_store_n(&row->last_check_ms, now, __ATOMIC_RELAXED);
    if (want == health) {
        return 0;
    }
    __atomic_store_n(&row->health_changed_ms, now, __ATOMIC_RELAXED);
    __atomic_store_n(&row->health, want, __ATOMIC_RELEASE);
    return 1;
}

/* The check <c> is over: record <status> (0 = failed with <error>). */
static void
finish(struct check *c, int status, const char *error)
{
    const struct cr_conf_health *h = &c->up->health;
    uint64_t took = clock_us(CLOCK_MONOTONIC) - c->started_us;

    if (c->fd != -1) {
        close(c->fd);
        c->fd = -1;
    }
    c->phase = PH_IDLE;
    if (cr_health_record(c->row, status, error, h->status_lo, h->status_hi, h->fails,
                         h->passes, took > UINT32_MAX ? UINT32_MAX : (unsigned)took))
    {
        if (c->row->health == CR_SHM_HEALTH_UP) {
            cr_log_notice("upstream %s/%s: health check passed (status %d): up",
                          c->up->name, c->srv->addr.text, status);
        } else {
            cr_log_warn("upstream %s/%s: %u health checks failed (%s): down",
                        c->up->name, c->srv->addr.text, c->row->check_fails,
                        c->row->last_error);
        }
    }
}

static void
start(struct check *c, uint64_t now_ms)
{
    const struct cr_conf_addr *a = &c->srv->addr;
    char why[64];

    c->due_ms = now_ms + c->up->health.interval_ms;
    c->deadline_ms = now_ms + c->up->health.timeout_ms;
    c->started_us = clock_us(CLOCK_MONOTONIC);
    c->sent = 0;
    c->got = 0;
    c->fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd == -1) {
        snprintf(why, sizeof(why), "socket: %s", strerror(errno));
        finish(c, 0, why);
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&a->ss, a->len) == -1
        && errno != EINPROGRESS)
    {
        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        finish(c, 0, why);
        return;
    }
    c->phase = PH_CONNECT;
}

/* <c>'s socket is ready for what its phase waits for. */
static void
step(struct check *c, short revents)
{
    char why[64];
    ssize_t n;
    int err = 0;
    socklen_t len = sizeof(err);
    char *eol;

    if (c->phase == PH_CONNECT) {
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
            err = errno;
        }
        if (err != 0) {
            snprintf(why, sizeof(why), "connect: %s", strerror(err));
            finish(c, 0, why);
            return;
        }
        c->phase = PH_SEND;
    }
    if (c->phase == PH_SEND) {
        n = send(c->fd, c->req + c->sent, c->req_len - c->sent, MSG_NOSIGNAL);
        if (n == -1 && errno != EAGAIN && errno != EINTR) {
            snprintf(why, sizeof(why), "send: %s", strerror(errno));
            finish(c, 0, why);
            return;
        }
        c->sent += n > 0 ? (size_t)n : 0;
        if (c->sent == c->req_len) {
            c->phase = PH_RECV;
        }
        return;
    }
    if (c->phase != PH_RECV || !(revents & (POLLIN | POLLHUP | POLLERR))) {
        return;
    }
    n = recv(c->fd, c->buf + c->got, sizeof(c->buf) - c->got, 0);
    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR) {
            snprintf(why, sizeof(why), "recv: %s", strerror(errno));
            finish(c, 0, why);
        }
        return;
    }
    if (n == 0) {
        finish(c, 0, "closed before a status line");
        return;
    }
    c->got += (size_t)n;
    eol = memchr(c->buf, '\n', c->got);
    if (eol != NULL) {
        int status = cr_health_parse_status(c->buf, (size_t)(eol - c->buf) + 1);

        finish(c, status > 0 ? status : 0, "not an HTTP/1.x status line");
    } else if (c->got == sizeof(c->buf)) {
        finish(c, 0, "status line too long");
    }
}

/* The checks of <conf> whose servers have a row; NULL with *n 0 if none. */
static struct check *
build(const struct cr_conf *conf, struct cr_shm_header *hdr, size_t *n)
{
    struct check *checks;
    size_t i, j, total = 0;

    *n = 0;
    for (i = 0; i < conf->nupstreams; i++) {
        total += conf->upstreams[i].health.path != NULL ? conf->upstreams[i].nservers : 0;
    }
    checks = calloc(total != 0 ? total : 1, sizeof(*checks));
    if (checks == NULL) {
        return NULL;
    }
    for (i = 0; i < conf->nupstreams; i++) {
        const struct cr_conf_upstream *u = &conf->upstreams[i];

        for (j = 0; u->health.path != NULL && j < u->nservers; j++) {
            const struct cr_conf_server *s = &u->servers[j];
            struct check *c = &checks[*n];
            int len;

            if (s->stats_row < 0 || (unsigned)s->stats_row >= hdr->servers_cap) {
                cr_log_warn("upstream %s/%s: no stats row, not checked", u->name, s->addr.text);
                continue;
            }
            c->up = u;
            c->srv = s;
            c->row = cr_shm_server_at(hdr, (unsigned)s->stats_row);
            c->fd = -1;
            len = snprintf(c->req, sizeof(c->req),
                           "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: corral-health\r\n"
                           "Connection: close\r\n\r\n", u->health.path, s->addr.text);
            if (len < 0 || (size_t)len >= sizeof(c->req)) {
                cr_log_warn("upstream %s: health path too long, not checked", u->name);
                continue;
            }
            c->req_len = (size_t)len;
            (*n)++;
        }
    }
    return checks;
}

int
cr_health_run(const struct cr_conf *conf, struct cr_shm_header *hdr)
{
    struct check *checks;
    struct pollfd *pfd;
    struct check **owner;
    struct sigaction sa;
    sigset_t block, during;
    char err[256];
    size_t n, i;

    cr_log_set_role("health");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    /* SIGTERM is let in only inside ppoll(), so it cannot slip in between
     * the test of <stopping> and the wait */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &during);
    sigdelset(&during, SIGTERM);

    /* the segment is mapped: nothing left that needs the master's rights */
    if (cr_worker_drop_privileges(conf, 0, err, sizeof(err)) != CR_OK) {
        cr_log_error("health: %s", err);
        return CR_EXIT_SETUP;
    }
    cr_health_reset(conf, hdr);
    checks = build(conf, hdr, &n);
    pfd = calloc(n != 0 ? n : 1, sizeof(*pfd));
    owner = calloc(n != 0 ? n : 1, sizeof(*owner));
    if (checks == NULL || pfd == NULL || owner == NULL) {
        cr_log_error("health: out of memory");
        free(checks);
        free(pfd);
        free(owner);
        return CR_EXIT_OOM;
    }
    cr_log_info("health checker: %zu servers", n);

    while (!stopping) {
        uint64_t now = clock_us(CLOCK_MONOTONIC) / 1000, next = now + IDLE_WAIT;
        struct timespec wait;
        size_t np = 0;
        int rc;

        for (i = 0; i < n; i++) {
            struct check *c = &checks[i];

            if (c->phase == PH_IDLE && now >= c->due_ms) {
                start(c, now);
            }
            if (c->phase != PH_IDLE && now >= c->deadline_ms) {
                char why[64];

                snprintf(why, sizeof(why), "timed out after %llums",
                         (unsigned long long)c->up->health.timeout_ms);
                finish(c, 0, why);
            }
            if (c->phase == PH_IDLE) {
                next = c->due_ms < next ? c->due_ms : next;
                continue;
            }
            next = c->deadline_ms < next ? c->deadline_ms : next;
            pfd[np].fd = c->fd;
            pfd[np].events = c->phase == PH_RECV ? POLLIN : POLLOUT;
            pfd[np].revents = 0;
            owner[np++] = c;
        }
        next = next > now ? next - now : 0;
        wait.tv_sec = (time_t)(next / 1000);
        wait.tv_nsec = (long)(next % 1000) * 1000000L;
        rc = ppoll(pfd, np, &wait, &during);
        if (rc == -1 && errno != EINTR) {
            cr_log_error("health: poll: %s", strerror(errno));
            break;
        }
        for (i = 0; rc > 0 && i < np; i++) {
            if (pfd[i].revents != 0) {
                step(owner[i], pfd[i].revents);
            }
        }
    }
    for (i = 0; i < n; i++) {
        if (checks[i].fd != -1) {
            close(checks[i].fd);
        }
    }
    free(checks);
    free(pfd);
    free(owner);
    return CR_EXIT_OK;
}
