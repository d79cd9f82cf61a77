/*
 * listener.c - the worker's own listening sockets.
 *
 * Owns one socket per listen address and the read event on it. Each
 * worker creates, binds and listens on its sockets itself, after fork, with
 * SO_REUSEPORT: the kernel then spreads new connections over the workers
 * (and over two generations during a reload) by hash, and no worker is
 * woken for a connection another one takes.
 *
 * A worker holding max_connections answers each new connection with a 503
 * and closes it (counted in shm) rather than leaving it in the kernel's
 * queue, where with SO_REUSEPORT it would wait on this one busy worker
 * while others might be free.
 *
 * Accepting stops for two reasons, kept apart so that one does not undo the
 * other:
 *   LISTENER_F_PAUSED   cr_listener_pause() (kept for callers that need it)
 *   LISTENER_F_BACKOFF  accept() failed (EMFILE, ENFILE, ENOBUFS...); retry
 *                       in 100 ms rather than spin on a readable socket.
 * The read event is added exactly when neither flag is set.
 *
 * One connection is taken per readable event, as nginx does by default:
 * the socket is level-triggered, so the next loop iteration takes the
 * next one, between the events of the connections already open. Looping
 * until accept() fails with EAGAIN (what an evconnlistener does) costs
 * that failing call on nearly every event: 0.7 of an extra accept4 per
 * connection with 50 clients each opening one per request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "stats.h"
#include "worker.h"

#define LISTENER_F_PAUSED   0x01u       /* connection limit reached */
#define LISTENER_F_BACKOFF  0x02u       /* accept error; retry timer armed */

#define LISTENER_BACKOFF_MS     100
#define LISTENER_LOG_EVERY_MS   1000    /* accept errors: one line per second */
#define LISTENER_LIMIT_LOG_MS   10000   /* max_connections: one line per 10 s */
#define LISTENER_PENDING_MAX    1024    /* cr_listener_accept_pending() bound */

struct cr_listener {
    struct cr_worker             *w;
    const struct cr_conf_listen  *conf;
    struct event                 *ev;       /* EV_READ on the socket, owns it */
    struct event                 *retry;    /* ends LISTENER_F_BACKOFF */
    unsigned                      flags;    /* LISTENER_F_* */
    uint64_t                      last_log_ms;
    unsigned long                 suppressed;   /* errors not logged since */
};

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
update_enabled(struct cr_listener *l)
{
    if (l->flags & (LISTENER_F_PAUSED | LISTENER_F_BACKOFF)) {
        event_del(l->ev);
    } else {
        event_add(l->ev, NULL);
    }
}

/* max_connections reached: say so, once per LISTENER_LIMIT_LOG_MS. */
static void
warn_capacity(void)
{
    static uint64_t last_warn_ms;
    static unsigned suppressed;
    uint64_t now = now_ms();

    if (last_warn_ms == 0 || now - last_warn_ms >= LISTENER_LIMIT_LOG_MS) {
        cr_log_warn("max_connections reached: refusing new connections with 503 "
                    "(%u more since the last warning)", suppressed);
        last_warn_ms = now;
        suppressed = 0;
    } else {
        suppressed++;
    }
}

/*
 * Over max_connections: answer 503 and close, politely. What the client
 * already sent is read first, so our close is a FIN and not a reset that
 * would destroy the answer; the write is best effort, as this socket is
 * fresh and its send buffer empty. Counted in shm.
 */
static void
reject(int fd)
{
    static const char answer[] =
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: 19\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n"
        "\r\n"
        "server at capacity\n";
    char sink[4096];
    int i;

    for (i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++) {
        continue;
    }
    if (send(fd, answer, sizeof(answer) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
        /* nothing more we can do for this one */
    }
    shutdown(fd, SHUT_WR);
    close(fd);
    CR_STAT_INC(connections_rejected_total);
    CR_STAT_INC(responses_5xx_total);
    CR_STAT_INC(errors_503_total);
    warn_capacity();
}

static void accept_failed(struct cr_listener *l, int err);

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct cr_listener *l = arg;
    struct cr_worker *w = l->w;
    unsigned max = w->conf->limits.max_connections;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd;

    (void)what;
    fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
            && errno != ECONNABORTED)
        {
            accept_failed(l, errno);
        }
        return;
    }
    if (max != 0 && w->nconns >= max) {
        reject(fd);
        return;
    }
    cr_conn_accept(w, fd, (struct sockaddr *)&ss, len);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_listener *l = arg;

    (void)fd;
    (void)what;
    l->flags &= ~LISTENER_F_BACKOFF;
    update_enabled(l);
}

/*
 * accept() failed with something other than EAGAIN, EINTR or ECONNABORTED
 * (the next event tries again after those). Typically EMFILE/ENFILE: the
 * connection stays queued and the socket stays readable, so stop for a
 * moment instead of spinning, and keep serving the connections we have.
 */
static void
accept_failed(struct cr_listener *l, int err)
{
    struct timeval tv = { 0, LISTENER_BACKOFF_MS * 1000 };
    uint64_t now = now_ms();

    if (now - l->last_log_ms >= LISTENER_LOG_EVERY_MS || l->last_log_ms == 0) {
        if (l->suppressed > 0) {
            cr_log_warn("listen %s: accept: %s (%lu more since last report); "
                        "pausing %d ms", l->conf->addr.text, strerror(err),
                        l->suppressed, LISTENER_BACKOFF_MS);
        } else {
            cr_log_warn("listen %s: accept: %s; pausing %d ms",
                        l->conf->addr.text, strerror(err), LISTENER_BACKOFF_MS);
        }
        l->last_log_ms = now;
        l->suppressed = 0;
    } else {
        l->suppressed++;
    }

    l->flags |= LISTENER_F_BACKOFF;
    update_enabled(l);
    evtimer_add(l->retry, &tv);
}

static int
set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value));
}

struct cr_listener *
cr_listener_open(struct cr_worker *w, const struct cr_conf_listen *lc,
                 char *err, size_t errlen)
{
    struct cr_listener *l;
    const char *what;
    int fd = -1, family;

    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "listen %s: out of memory", lc->addr.text);
        return NULL;
    }
    l->w = w;
    l->conf = lc;

    family = lc->addr.ss.ss_family;
    what = "socket";
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        goto fail_errno;
    }
    what = "setsockopt(SO_REUSEADDR)";
    if (set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) == -1) {
        goto fail_errno;
    }
    what = "setsockopt(SO_REUSEPORT)";
    if (set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) == -1) {
        goto fail_errno;
    }
    if (family == AF_INET6) {
        /* "[::]:80" means IPv6 only; IPv4 gets its own listen entry */
        what = "setsockopt(IPV6_V6ONLY)";
        if (set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) == -1) {
            goto fail_errno;
        }
    }
    what = "bind";
    if (bind(fd, (const struct sockaddr *)&lc->addr.ss, lc->addr.len) == -1) {
        goto fail_errno;
    }
    what = "listen";
    if (listen(fd, lc->backlog > 0 ? lc->backlog : CR_CONF_DEFAULT_BACKLOG) == -1) {
        goto fail_errno;
    }

    l->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, accept_cb, l);
    if (l->ev == NULL || event_add(l->ev, NULL) == -1) {
        snprintf(err, errlen, "listen %s: cannot watch the socket", lc->addr.text);
        goto fail;
    }

    l->retry = evtimer_new(w->base, retry_cb, l);
    if (l->retry == NULL) {
        snprintf(err, errlen, "listen %s: cannot create a timer", lc->addr.text);
        goto fail;
    }
    cr_log_info("listening on %s (backlog %d)", lc->addr.text,
                lc->backlog > 0 ? lc->backlog : CR_CONF_DEFAULT_BACKLOG);
    return l;

fail_errno:
    snprintf(err, errlen, "listen %s: %s: %s", lc->addr.text, what, strerror(errno));
fail:
    if (l->ev != NULL) {
        event_free(l->ev);
    }
    if (fd != -1) {
        close(fd);
    }
    free(l);
    return NULL;
}

void
cr_listener_pause(struct cr_listener *l)
{
    if ((l->flags & LISTENER_F_PAUSED) == 0) {
        l->flags |= LISTENER_F_PAUSED;
        update_enabled(l);
        cr_log_debug("listen %s: %u connections, pausing accept",
                    l->conf->addr.text, l->w->nconns);
    }
}

void
cr_listener_resume(struct cr_listener *l)
{
    if (l->flags & LISTENER_F_PAUSED) {
        l->flags &= ~LISTENER_F_PAUSED;
        update_enabled(l);
        cr_log_debug("listen %s: %u connections, resuming accept",
                    l->conf->addr.text, l->w->nconns);
    }
}

void
cr_listener_accept_pending(struct cr_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len;
    unsigned n, taken = 0;
    int lfd, fd;

    lfd = (int)event_get_fd(l->ev);
    for (n = 0; n < LISTENER_PENDING_MAX; n++) {
        len = sizeof(ss);
        fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            break;
        }
        cr_conn_accept(l->w, fd, (struct sockaddr *)&ss, len);
        taken++;
    }
    if (taken > 0) {
        cr_log_info("listen %s: took %u queued connections before closing",
                    l->conf->addr.text, taken);
    }
}

int
cr_listener_fd(struct cr_listener *l)
{
    return (int)event_get_fd(l->ev);
}

void
cr_listener_close(struct cr_listener *l)
{
    int fd;

    if (l == NULL) {
        return;
    }
    if (l->retry != NULL) {
        event_free(l->retry);
    }
    fd = (int)event_get_fd(l->ev);
    event_free(l->ev);
    close(fd);
    free(l);
}
