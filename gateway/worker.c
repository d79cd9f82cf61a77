/*
 * worker.c - one worker process.
 *
 * Owns the worker's event_base, its listeners (through listener.c) and its
 * signal events. Everything libevent is created here, after fork: the master
 * never builds an event_base, so nothing is shared by accident.
 *
 * Life of a worker:
 *   setup      role, signal dispositions, libevent fatal callback, base,
 *              SIGTERM/SIGQUIT events, upstream pools, one listener per
 *              conf->listen[]; any failure returns CR_EXIT_SETUP
 *   ready      one byte on <ready_fd>: every listener is listening
 *   serving    event_base_dispatch()
 *   SIGTERM    cr_worker_drain(): stop accepting, let conns finish, close
 *              what is left after drain_timeout_ms, leave the loop
 *   SIGQUIT    close every conn now and leave the loop
 *   SIGUSR1    reopen the access log (the master created the new file)
 *   cleanup    listeners, pools, events, base; return w->exit_code
 *
 * SIGINT and SIGHUP are ignored: Ctrl-C reaches the whole process group and
 * reloads are the master's business. SIGPIPE is ignored so a peer closing
 * early is an EPIPE on one connection, not the end of the worker.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "accesslog.h"
#include "conn.h"
#include "listener.h"
#include "mem.h"
#include "log.h"
#include "proxy.h"
#include "stats.h"
#include "steer.h"
#include "worker.h"

#define WORKER_STEER_GRACE_MS   300     /* drain: keep accepting this long */

static void
fatal_cb(int err)
{
    cr_log_error("libevent fatal error (%d), exiting", err);
    _exit(CR_EXIT_LIBEVENT);
}

static void
ignore_signal(int sig)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void
close_listeners(struct cr_worker *w)
{
    size_t i;

    w->listening = 0;
    for (i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i] != NULL) {
            cr_listener_close(w->listeners[i]);
            w->listeners[i] = NULL;
        }
    }
}

static void
drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_worker *w = arg;

    (void)fd;
    (void)what;
    if (w->nconns > 0) {
        cr_log_notice("drain timeout: closing %u connections", w->nconns);
        cr_conn_close_all(w);
    }
    event_base_loopexit(w->base, NULL);
}

/* Drain: take what the kernel queued for us, then close the listeners. */
static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_worker *w = arg;
    size_t i;

    (void)fd;
    (void)what;
    for (i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i] != NULL) {
            cr_listener_accept_pending(w->listeners[i]);
        }
    }
    close_listeners(w);
    if (w->nconns == 0 && w->draining) {
        event_base_loopexit(w->base, NULL);
    }
}

static void
sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
    struct cr_worker *w = arg;

    (void)sig;
    (void)what;
    cr_worker_drain(w);
}

/* Once a second: hand memory freed by past bursts back (mem.h). */
static void
mem_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    cr_mem_tick();
}

static void
sigquit_cb(evutil_socket_t sig, short what, void *arg)
{
    struct cr_worker *w = arg;

    (void)sig;
    (void)what;
    cr_log_notice("fast stop: closing %u connections", w->nconns);
    w->draining = 1;
    cr_stats_set_state(CR_SHM_SLOT_DRAINING);
    close_listeners(w);
    cr_conn_close_all(w);
    event_base_loopexit(w->base, NULL);
}

/*
 * Become conf's user: and group: (see worker.h). setgroups first, while we
 * may; then the gid, then the uid, each for real, effective and saved ids,
 * so nothing can switch back. A switch that cannot happen (not root) is an
 * error unless we already are that user and group.
 */
int
cr_worker_drop_privileges(const struct cr_conf *conf, int check_only, char *err,
                          size_t errlen)
{
    const struct cr_conf_identity *id = &conf->identity;
    uid_t uid = id->user != NULL ? id->uid : geteuid();
    gid_t gid = id->gid;

    if (id->user == NULL && id->group == NULL) {
        return CR_OK;
    }
    if (getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid) {
        return CR_OK;                       /* already there */
    }
    if (geteuid() != 0) {
        snprintf(err, errlen, "user %s, group %s: running as uid %d, gid %d; only root "
                 "can switch", id->user != NULL ? id->user : "(unchanged)",
                 id->group != NULL ? id->group : "(the user's)", (int)geteuid(),
                 (int)getegid());
        return CR_ERR;
    }
    if (check_only) {
        return CR_OK;
    }
    if ((id->user != NULL ? initgroups(id->user, gid) : setgroups(1, &gid)) == -1) {
        snprintf(err, errlen, "setgroups: %s", strerror(errno));
        return CR_ERR;
    }
    if (setresgid(gid, gid, gid) == -1) {
        snprintf(err, errlen, "setresgid(%d): %s", (int)gid, strerror(errno));
        return CR_ERR;
    }
    if (id->user != NULL && setresuid(uid, uid, uid) == -1) {
        snprintf(err, errlen, "setresuid(%d): %s", (int)uid, strerror(errno));
        return CR_ERR;
    }
    if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
        snprintf(err, errlen, "could switch back to root after dropping privileges");
        return CR_ERR;
    }
    return CR_OK;
}

/* SIGUSR1 from the master: it has prepared fresh log files. */
static void
sigusr1_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    cr_access_log_reopen();
}

/* Tell the master we listen; it waits for exactly one byte or EOF. */
static void
signal_ready(int fd)
{
    ssize_t n;

    do {
        n = write(fd, "r", 1);
    } while (n == -1 && errno == EINTR);
    if (n == -1) {
        cr_log_warn("ready pipe: write: %s", strerror(errno));
    }
    close(fd);
}

int
cr_worker_run(const struct cr_conf *conf, unsigned id, unsigned generation,
              int ready_fd, const struct cr_steer *steer)
{
    struct cr_worker w;
    struct event *ev_term = NULL, *ev_quit = NULL, *ev_usr1 = NULL, *ev_mem = NULL;
    char err[256];
    int proxy_ready = 0;
    size_t i;

    memset(&w, 0, sizeof(w));
    TAILQ_INIT(&w.conns);
    w.conf = conf;
    w.id = id;
    w.generation = generation;
    w.exit_code = CR_EXIT_OK;

    cr_log_set_role("worker %u", id);
    ignore_signal(SIGPIPE);
    ignore_signal(SIGINT);
    ignore_signal(SIGHUP);
    event_set_fatal_callback(fatal_cb);

    w.base = event_base_new();
    if (w.base == NULL) {
        cr_log_error("cannot create the event loop");
        w.exit_code = CR_EXIT_SETUP;
        goto fail;
    }
    if (cr_stats_heartbeat_start(w.base) == -1) {
        cr_log_warn("cannot start the stats heartbeat");
    }
    cr_io_loop_init(&w.ioloop, w.base);
    cr_conn_worker_init(&w);
    ev_mem = event_new(w.base, -1, EV_PERSIST, mem_cb, NULL);
    if (ev_mem != NULL) {
        struct timeval sec = { 1, 0 };

        event_add(ev_mem, &sec);
    }

    ev_term = evsignal_new(w.base, SIGTERM, sigterm_cb, &w);
    ev_quit = evsignal_new(w.base, SIGQUIT, sigquit_cb, &w);
    ev_usr1 = evsignal_new(w.base, SIGUSR1, sigusr1_cb, &w);
    if (ev_term == NULL || ev_quit == NULL || ev_usr1 == NULL
        || evsignal_add(ev_term, NULL) == -1 || evsignal_add(ev_quit, NULL) == -1
        || evsignal_add(ev_usr1, NULL) == -1)
    {
        cr_log_error("cannot watch SIGTERM/SIGQUIT/SIGUSR1");
        w.exit_code = CR_EXIT_SETUP;
        goto fail;
    }

    err[0] = '\0';
    if (cr_access_log_open(conf, w.base, err, sizeof(err)) != CR_OK) {
        cr_log_error("%s", err);
        w.exit_code = CR_EXIT_SETUP;
        goto fail;
    }

    err[0] = '\0';
    if (cr_proxy_worker_init(&w, err, sizeof(err)) != CR_OK) {
        cr_log_error("upstreams: %s", err[0] != '\0' ? err : "setup failed");
        w.exit_code = CR_EXIT_SETUP;
        goto fail;
    }
    proxy_ready = 1;

    w.listeners = calloc(conf->nlisten > 0 ? conf->nlisten : 1, sizeof(*w.listeners));
    if (w.listeners == NULL) {
        cr_log_error("out of memory");
        w.exit_code = CR_EXIT_OOM;
        goto fail;
    }
    w.nlisteners = conf->nlisten;
    for (i = 0; i < conf->nlisten; i++) {
        err[0] = '\0';
        w.listeners[i] = cr_listener_open(&w, &conf->listen[i], err, sizeof(err));
        if (w.listeners[i] == NULL) {
            cr_log_error("%s", err);
            w.exit_code = CR_EXIT_SETUP;
            goto fail;
        }
        if (steer != NULL
            && cr_steer_join(steer, i, id, cr_listener_fd(w.listeners[i]), err,
                             sizeof(err)) != CR_OK)
        {
            /* serving unsteered beats not serving; a reload may reset some */
            cr_log_warn("listen %s: %s", conf->listen[i].addr.text, err);
        }
    }
    w.listening = 1;
    w.steer = steer;

    /* bound (ports below 1024 too) and logs open: now give up root */
    err[0] = '\0';
    if (cr_worker_drop_privileges(conf, 0, err, sizeof(err)) != CR_OK) {
        cr_log_error("%s", err);
        w.exit_code = CR_EXIT_SETUP;
        goto fail;
    }

    if (ready_fd != -1) {
        signal_ready(ready_fd);
        ready_fd = -1;
    }
    cr_stats_set_state(CR_SHM_SLOT_RUNNING);
    cr_log_info("generation %u ready", generation);

    if (event_base_dispatch(w.base) == -1) {
        cr_log_error("event loop failed");
        w.exit_code = CR_EXIT_LIBEVENT;
    }

fail:
    /* from here on no conn may resume a listener */
    w.draining = 1;
    if (ready_fd != -1) {
        close(ready_fd);                    /* EOF: not ready */
    }
    if (w.listeners != NULL) {
        close_listeners(&w);
        free(w.listeners);
        w.listeners = NULL;
        w.nlisteners = 0;
    }
    if (w.nconns > 0) {
        cr_conn_close_all(&w);
    }
    if (proxy_ready) {
        cr_proxy_worker_fini(&w);
    }
    cr_access_log_close();              /* after the conns: their lines too */
    if (ev_usr1 != NULL) {
        event_free(ev_usr1);
    }
    if (ev_term != NULL) {
        event_free(ev_term);
    }
    if (ev_quit != NULL) {
        event_free(ev_quit);
    }
    if (ev_mem != NULL) {
        event_free(ev_mem);
    }
    if (w.base != NULL) {
        cr_conn_worker_fini(&w);
        cr_io_loop_fini(&w.ioloop);
        cr_stats_heartbeat_stop();
        if (w.grace_ev != NULL) {
            event_free(w.grace_ev);
        }
        event_base_free(w.base);
    }
    cr_log_info("exiting with code %d", w.exit_code);
    return w.exit_code;
}

void
cr_worker_conn_closed(struct cr_worker *w)
{
    unsigned max;
    size_t i;

    if (w->draining) {
        if (w->nconns == 0 && !w->listening) {
            event_base_loopexit(w->base, NULL);
        }
        return;
    }
    max = w->conf->limits.max_connections;
    if (max == 0 || w->nconns < max) {
        for (i = 0; i < w->nlisteners; i++) {
            if (w->listeners[i] != NULL) {
                cr_listener_resume(w->listeners[i]);
            }
        }
    }
}

/*
 * Graceful stop. The kernel's accept queues are emptied into conns first,
 * then the sockets close: the other generation (or nobody, on shutdown)
 * gets the new connections from here on. Conns finish the response in
 * progress; after drain_timeout_ms the rest are closed. Safe to call twice.
 */
void
cr_worker_drain(struct cr_worker *w)
{
    struct timeval tv;
    uint64_t ms = w->conf->drain_timeout_ms;

    if (w->draining) {
        return;
    }
    w->draining = 1;
    cr_stats_set_state(CR_SHM_SLOT_DRAINING);
    if (w->steer != NULL && w->steer->mode == CR_STEER_BPF && w->listening) {
        /*
         * New handshakes already go to the next generation; the ones that
         * were mid-flight when its program was attached still complete
         * into our queue. Keep accepting a moment, then close.
         */
        struct timeval grace = { 0, WORKER_STEER_GRACE_MS * 1000 };

        w->grace_ev = evtimer_new(w->base, grace_cb, w);
        if (w->grace_ev == NULL || evtimer_add(w->grace_ev, &grace) == -1) {
            grace_cb(-1, 0, w);
        }
    } else {
        grace_cb(-1, 0, w);
    }
    cr_log_notice("draining %u connections (timeout %llu ms, %s)", w->nconns,
                  (unsigned long long)ms,
                  w->steer != NULL ? cr_steer_mode_name(w->steer->mode) : "drain");

    cr_conn_drain_all(w);
    if (w->nconns == 0 && !w->listening) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    if (event_base_once(w->base, -1, EV_TIMEOUT, drain_timeout_cb, w, &tv) == -1) {
        cr_log_error("%s: cannot arm the drain timer, closing now", __func__);
        cr_conn_close_all(w);
        event_base_loopexit(w->base, NULL);
    }
}
