/*
 * upstream.c - backend pools of one worker.
 *
 * Selection is per worker: each worker keeps its own smooth weighted round
 * robin state and its own active counts, as nginx does without a shared
 * zone. With the kernel spreading clients evenly over workers this gives
 * the configured weights overall. (Sharing active counts through shm, for a
 * least_conn across workers, comes with the stats segment.)
 *
 * Passive health: max_fails consecutive failures mark a server down for
 * fail_timeout; a pool whose servers are all down answers 503 at once
 * instead of making every client wait for a connect timeout.
 *
 * Idle keep-alive connections are watched while idle: any byte or EOF from
 * the server then means it closed or misbehaves, and the connection is
 * dropped before a request can be sent into it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conf/conf.h"
#include "log.h"
#include "proxy.h"
#include "upstream.h"
#include "worker.h"

#define IDLE_TIMEOUT_S  60      /* close idle upstream conns after this */

uint64_t
cr_upstream_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
cr_upstream_pools_init(struct cr_worker *w, char *err, size_t errlen)
{
    const struct cr_conf *conf = w->conf;
    size_t i, j;

    w->pools = NULL;
    if (conf->nupstreams == 0) {
        return CR_OK;
    }
    w->pools = calloc(conf->nupstreams, sizeof(*w->pools));
    if (w->pools == NULL) {
        snprintf(err, errlen, "out of memory for upstream pools");
        return CR_ERR;
    }
    for (i = 0; i < conf->nupstreams; i++) {
        struct cr_upstream_pool *pool = &w->pools[i];
        const struct cr_conf_upstream *cu = &conf->upstreams[i];

        pool->conf = cu;
        pool->w = w;
        TAILQ_INIT(&pool->idle);
        pool->servers = calloc(cu->nservers, sizeof(*pool->servers));
        if (pool->servers == NULL) {
            snprintf(err, errlen, "out of memory for upstream \"%s\"", cu->name);
            return CR_ERR;
        }
        pool->nservers = cu->nservers;
        for (j = 0; j < cu->nservers; j++) {
            pool->servers[j].conf = &cu->servers[j];
            pool->servers[j].pool = pool;
            pool->servers[j].idx = (unsigned)j;
        }
    }
    return CR_OK;
}

void
cr_upstream_pools_free(struct cr_worker *w)
{
    size_t i;

    if (w->pools == NULL) {
        return;
    }
    for (i = 0; i < w->conf->nupstreams; i++) {
        struct cr_upstream_pool *pool = &w->pools[i];
        struct cr_upstream_conn *uc;

        while ((uc = TAILQ_FIRST(&pool->idle)) != NULL) {
            cr_upstream_close(uc);
        }
        free(pool->servers);
    }
    free(w->pools);
    w->pools = NULL;
}

static int
server_usable(const struct cr_upstream_server *s, uint64_t tried, uint64_t now)
{
    if (tried & (1ULL << (s->idx % 64))) {
        return 0;
    }
    return s->down_until == 0 || now >= s->down_until;
}

/*
 * Smooth weighted round robin: every usable server gains its weight, the
 * richest is chosen and pays the total. Over a cycle each server is picked
 * weight times, interleaved rather than in bursts.
 */
static struct cr_upstream_server *
pick_round_robin(struct cr_upstream_pool *pool, uint64_t tried, uint64_t now)
{
    struct cr_upstream_server *best = NULL;
    int64_t total = 0;
    size_t i;

    for (i = 0; i < pool->nservers; i++) {
        struct cr_upstream_server *s = &pool->servers[i];

        if (!server_usable(s, tried, now)) {
            continue;
        }
        s->current += s->conf->weight;
        total += s->conf->weight;
        if (best == NULL || s->current > best->current) {
            best = s;
        }
    }
    if (best != NULL) {
        best->current -= total;
    }
    return best;
}

/* Fewest requests in flight per unit of weight; ties rotate. */
static struct cr_upstream_server *
pick_least_conn(struct cr_upstream_pool *pool, uint64_t tried, uint64_t now)
{
    struct cr_upstream_server *best = NULL;
    size_t i;

    for (i = 0; i < pool->nservers; i++) {
        struct cr_upstream_server *s;

        s = &pool->servers[(pool->rr_start + i) % pool->nservers];
        if (!server_usable(s, tried, now)) {
            continue;
        }
        if (best == NULL
            || (uint64_t)s->active * best->conf->weight
               < (uint64_t)best->active * s->conf->weight)
        {
            best = s;
        }
    }
    pool->rr_start++;
    return best;
}

struct cr_upstream_server *
cr_upstream_pick(struct cr_upstream_pool *pool, uint64_t tried)
{
    uint64_t now = cr_upstream_now();

    if (pool->conf->balance == CR_BALANCE_LEAST_CONN) {
        return pick_least_conn(pool, tried, now);
    }
    return pick_round_robin(pool, tried, now);
}

struct cr_upstream_conn *
cr_upstream_idle_get(struct cr_upstream_server *srv)
{
    struct cr_upstream_pool *pool = srv->pool;
    struct cr_upstream_conn *uc;

    TAILQ_FOREACH(uc, &pool->idle, link) {
        if (uc->srv == srv) {
            TAILQ_REMOVE(&pool->idle, uc, link);
            pool->nidle--;
            uc->idle = 0;
            return uc;      /* the user sets its own timeouts at once */
        }
    }
    return NULL;
}

/*
 * Every event of an upstream socket. Anything from an idle server (bytes,
 * EOF, error, timeout) ends the conn; a busy one reports to its user.
 */
static void
uc_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_upstream_conn *uc = arg;
    unsigned r = cr_io_handle(&uc->io, what);

    (void)fd;
    if (!uc->idle) {
        if (r != 0) {
            uc->cb(uc, r, uc->arg);
        }
        return;
    }
    if (r & (CR_IO_R_DATA | CR_IO_R_EOF | CR_IO_R_ERROR | CR_IO_R_RTIMEOUT
             | CR_IO_R_WTIMEOUT))
    {
        cr_log_debug("upstream conn %llu %s: closed while idle",
                     (unsigned long long)uc->id, uc->srv->conf->addr.text);
        cr_upstream_close(uc);
    }
}

struct cr_upstream_conn *
cr_upstream_connect(struct cr_upstream_server *srv, uint32_t timeout_ms)
{
    const struct cr_conf_addr *a = &srv->conf->addr;
    struct cr_worker *w = srv->pool->w;
    struct cr_upstream_conn *uc;
    int fd, one = 1, saved;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return NULL;
    }
    /* heads and small bodies go out at once; we batch writes ourselves */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    uc = calloc(1, sizeof(*uc));
    if (uc == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    cr_io_init(&uc->io, &w->ioloop, fd, uc_io_cb, uc);
    uc->io.read_max = CR_PROXY_READ_MAX;
    cr_io_set_timeouts(&uc->io, 0, timeout_ms);
    uc->srv = srv;
    uc->id = ++w->next_conn_id;
    if (cr_io_connect(&uc->io, (const struct sockaddr *)&a->ss, (socklen_t)a->len) == -1) {
        saved = errno;
        cr_io_close(&uc->io);
        free(uc);
        errno = saved ? saved : ECONNREFUSED;
        return NULL;
    }
    return uc;
}

void
cr_upstream_close(struct cr_upstream_conn *uc)
{
    if (uc->idle) {
        TAILQ_REMOVE(&uc->srv->pool->idle, uc, link);
        uc->srv->pool->nidle--;
    }
    cr_io_close(&uc->io);
    free(uc);
}

void
cr_upstream_release(struct cr_upstream_conn *uc, int reusable)
{
    struct cr_upstream_pool *pool = uc->srv->pool;

    if (!reusable || pool->w->draining || pool->nidle >= pool->conf->keepalive
        || cr_io_in_len(&uc->io) != 0 || cr_io_out_len(&uc->io) != 0)
    {
        cr_upstream_close(uc);
        return;
    }
    uc->cb = NULL;
    uc->arg = NULL;
    cr_io_trim(&uc->io);
    cr_io_set_timeouts(&uc->io, IDLE_TIMEOUT_S * 1000, 0);
    cr_io_read(&uc->io, 1);
    uc->idle = 1;
    /* most recently used first: warm conns are reused, cold ones time out */
    TAILQ_INSERT_HEAD(&pool->idle, uc, link);
    pool->nidle++;
}

void
cr_upstream_server_failed(struct cr_upstream_server *srv)
{
    const struct cr_conf_upstream *cu = srv->pool->conf;

    srv->fails++;
    if (cu->max_fails != 0 && srv->fails >= cu->max_fails) {
        srv->down_until = cr_upstream_now() + cu->fail_timeout_ms;
        srv->fails = 0;
        cr_log_warn("upstream %s/%s: marked down for %llums",
                    cu->name, srv->conf->addr.text,
                    (unsigned long long)cu->fail_timeout_ms);
    }
}

void
cr_upstream_server_ok(struct cr_upstream_server *srv)
{
    srv->fails = 0;
    srv->down_until = 0;
}
