/*
 * upstream.c - backend pools of one worker.
 *
 * Selection: each worker keeps its own smooth weighted round robin state,
 * as nginx does without a shared zone; with the kernel spreading clients
 * evenly over workers this gives the configured weights overall. least_conn
 * and random (two choices) read the requests in flight of every worker from
 * the stats segment, so a server busy with another worker's requests looks
 * busy here too. hash walks a consistent hash ring (balance.c).
 *
 * Health is shared: the instance's one health checker writes up/down into
 * each server's shm row, and any worker that sees outlier.failures
 * consecutive failures ejects the server for every worker, by a
 * compare-and-swap on the row's ejected_until_ms. Every pick reads both, so
 * a verdict applies to the next request of every worker. A pool whose
 * servers are all down answers 503 at once instead of making every client
 * wait for a connect timeout.
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
#include "http.h"
#include "log.h"
#include "proxy.h"
#include "stats.h"
#include "upstream.h"
#include "worker.h"

#define IDLE_TIMEOUT_S  60      /* close idle upstream conns after this */

/*
 * "keepalive" idle connections are kept; a burst may leave more idle for
 * SURPLUS_S (at most SURPLUS_FACTOR times as many) before the oldest are
 * closed. Closing them at once, as nginx does, makes a pool busier than
 * its keepalive close connections after each burst and open new ones for
 * the next: at 250 requests in flight per worker and keepalive 64, a
 * quarter of requests paid for a connect and a close.
 */
#define SURPLUS_S       1
#define SURPLUS_FACTOR  8

/* Close the oldest idle connections of <arg> (a pool) down to keepalive. */
static void
trim_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_upstream_pool *pool = arg;
    struct cr_upstream_conn *uc;

    (void)fd;
    (void)what;
    while (pool->nidle > pool->conf->keepalive
           && (uc = TAILQ_LAST(&pool->idle, cr_upstream_conn_list)) != NULL)
    {
        cr_upstream_close(uc);
    }
}

uint64_t
cr_upstream_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The selection state of <pool>: balancer nodes, the shm row of each
 * server (or a private one), the hash ring. CR_OK or CR_ERR (no memory).
 */
static int
select_init(struct cr_upstream_pool *pool)
{
    const struct cr_conf_upstream *cu = pool->conf;
    const char **names;
    unsigned *weights;
    size_t j;
    int rc = CR_OK;

    pool->nodes = calloc(pool->nservers, sizeof(*pool->nodes));
    /* the rows are cache-line aligned types: calloc would not honour that */
    if (pool->nodes == NULL
        || posix_memalign((void **)&pool->local_rows, CR_SHM_CACHELINE,
                          pool->nservers * sizeof(*pool->local_rows)) != 0)
    {
        pool->local_rows = NULL;
        return CR_ERR;
    }
    memset(pool->local_rows, 0, pool->nservers * sizeof(*pool->local_rows));
    pool->rng = ((uint64_t)getpid() << 32) ^ cr_upstream_now() ^ (uintptr_t)pool;
    for (j = 0; j < pool->nservers; j++) {
        struct cr_upstream_server *s = &pool->servers[j];

        s->row = cr_stats_server_row(s->conf->stats_row);
        if (s->row == NULL) {
            s->row = &pool->local_rows[j];
        }
        pool->nodes[j].weight = s->conf->weight;
    }
    if (cu->balance != CR_BALANCE_HASH) {
        return CR_OK;
    }
    names = calloc(pool->nservers, sizeof(*names));
    weights = calloc(pool->nservers, sizeof(*weights));
    if (names == NULL || weights == NULL) {
        rc = CR_ERR;
        goto done;
    }
    for (j = 0; j < pool->nservers; j++) {
        names[j] = pool->servers[j].conf->addr.text;
        weights[j] = pool->servers[j].conf->weight;
    }
    rc = cr_balance_ring_build(&pool->ring, names, weights, pool->nservers);
done:
    free(names);
    free(weights);
    return rc;
}

static void
select_free(struct cr_upstream_pool *pool)
{
    cr_balance_ring_free(&pool->ring);
    free(pool->nodes);
    free(pool->local_rows);
    pool->nodes = NULL;
    pool->local_rows = NULL;
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
        cr_retry_budget_init(&pool->budget, cu->retry_budget.percent,
                             cu->retry_budget.min_per_s);
        cr_waitq_init(&pool->waitq, cu->queue.size, cu->queue.timeout_ms);
        pool->trim_ev = evtimer_new(w->base, trim_cb, pool);
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
        if (select_init(pool) != CR_OK) {
            snprintf(err, errlen, "out of memory for upstream \"%s\"", cu->name);
            return CR_ERR;
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
        select_free(pool);
        if (pool->waitq_ev != NULL) {
            event_free(pool->waitq_ev);
        }
        if (pool->trim_ev != NULL) {
            event_free(pool->trim_ev);
        }
        free(pool->servers);
    }
    free(w->pools);
    w->pools = NULL;
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

    if (!reusable || pool->w->draining || pool->conf->keepalive == 0
        || pool->nidle >= (size_t)pool->conf->keepalive * SURPLUS_FACTOR
        || cr_io_in_len(&uc->io) != 0 || cr_io_out_len(&uc->io) != 0)
    {
        cr_upstream_close(uc);
        return;
    }
    if (pool->nidle >= pool->conf->keepalive && pool->trim_ev != NULL
        && !evtimer_pending(pool->trim_ev, NULL))
    {
        struct timeval tv = { SURPLUS_S, 0 };

        evtimer_add(pool->trim_ev, &tv);
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

/* ---------------------------------------------------------------------- */
/* Selection and passive health                                            */

int
cr_upstream_server_ejected(const struct cr_upstream_server *srv, uint64_t now)
{
    return now < __atomic_load_n(&srv->row->ejected_until_ms, __ATOMIC_RELAXED);
}

/*
 * Mark which servers may take this request; fill in their load when the
 * balancer needs it. Returns how many are usable.
 */
static size_t
select_prepare(struct cr_upstream_pool *pool, uint64_t tried, int need_load)
{
    uint64_t now = cr_upstream_now();
    size_t i, n = 0;

    for (i = 0; i < pool->nservers; i++) {
        const struct cr_upstream_server *s = &pool->servers[i];
        struct cr_balance_node *nd = &pool->nodes[i];

        nd->usable = !(tried & (1ULL << (s->idx % 64)))
                     && __atomic_load_n(&s->row->health, __ATOMIC_RELAXED)
                        != CR_SHM_HEALTH_DOWN
                     && !cr_upstream_server_ejected(s, now);
        n += nd->usable;
        if (need_load && nd->usable) {
            /* every worker's requests when there is a segment, else ours */
            nd->active = s->conf->stats_row >= 0 ? cr_stats_server_active(s->conf->stats_row)
                                                 : s->active;
        }
    }
    return n;
}

struct cr_upstream_server *
cr_upstream_pick(struct cr_upstream_pool *pool, const struct cr_upstream_want *want)
{
    enum cr_balance b = pool->conf->balance;
    int i;

    if (select_prepare(pool, want->tried,
                       b == CR_BALANCE_LEAST_CONN || b == CR_BALANCE_RANDOM) == 0)
    {
        return NULL;
    }
    switch (b) {
    case CR_BALANCE_LEAST_CONN:
        i = cr_balance_least_conn(pool->nodes, pool->nservers, pool->rr_start++);
        break;
    case CR_BALANCE_RANDOM:
        i = cr_balance_p2c(pool->nodes, pool->nservers, &pool->rng);
        break;
    case CR_BALANCE_HASH:
        if (want->has_key) {
            i = cr_balance_ring_pick(&pool->ring, want->key, pool->nodes);
            break;
        }
        /* no key in this request: spread it like any other */
        i = cr_balance_round_robin(pool->nodes, pool->nservers);
        break;
    case CR_BALANCE_ROUND_ROBIN:
    default:
        i = cr_balance_round_robin(pool->nodes, pool->nservers);
        break;
    }
    return i < 0 ? NULL : &pool->servers[i];
}

/*
 * The value of cookie <name> in a Cookie header value <v> (<len> bytes):
 * "a=1; b=2" (RFC 6265 §4.2.1). Returns a pointer into <v> and sets <*out>,
 * or NULL.
 */
static const char *
find_cookie(const char *v, size_t len, const char *name, size_t *out)
{
    size_t nlen = strlen(name), i = 0;

    while (i < len) {
        size_t start, eq, end;

        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ';')) {
            i++;
        }
        start = i;
        while (i < len && v[i] != ';') {
            i++;
        }
        end = i;
        for (eq = start; eq < end && v[eq] != '='; eq++) {
        }
        if (eq < end && eq - start == nlen && memcmp(v + start, name, nlen) == 0) {
            *out = end - eq - 1;
            return v + eq + 1;
        }
    }
    return NULL;
}

void
cr_upstream_want_key(const struct cr_upstream_pool *pool, const struct cr_http_parser *req,
                     const char *peer, struct cr_upstream_want *want)
{
    const struct cr_conf_hash *h = &pool->conf->hash;
    const struct cr_http_field *f;
    const char *v;
    size_t len;

    if (pool->conf->balance != CR_BALANCE_HASH) {
        return;
    }
    if (h->on == CR_HASH_CLIENT_ADDRESS) {
        v = peer;
        len = strlen(peer);
    } else {
        f = cr_http_find(req, h->on == CR_HASH_HEADER ? h->name : "Cookie");
        if (f == NULL) {
            return;
        }
        v = cr_http_str(req, f->value);
        len = f->value.len;
        if (h->on == CR_HASH_COOKIE && (v = find_cookie(v, len, h->name, &len)) == NULL) {
            return;
        }
    }
    want->key = cr_balance_hash(v, len);
    want->has_key = 1;
}

static uint64_t
unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* How long the next ejection lasts: base << streak, at most max. */
static uint64_t
ejection_ms(const struct cr_conf_upstream *cu, uint64_t streak)
{
    uint64_t d = cu->fail_timeout_ms;

    while (streak-- > 0 && d < cu->outlier.max_ejection_ms) {
        d *= 2;
    }
    return d < cu->outlier.max_ejection_ms ? d : cu->outlier.max_ejection_ms;
}

void
cr_upstream_server_failed(struct cr_upstream_server *srv, enum cr_upstream_fail kind)
{
    const struct cr_conf_upstream *cu = srv->pool->conf;
    struct cr_shm_server *row = srv->row;
    uint64_t now, until, streak, d;

    if (cu->max_fails == 0 || (kind == CR_UPSTREAM_FAIL_5XX && !cu->outlier.count_5xx)) {
        return;
    }
    if (__atomic_add_fetch(&row->fails, 1, __ATOMIC_RELAXED) < cu->max_fails) {
        return;
    }
    now = cr_upstream_now();
    until = __atomic_load_n(&row->ejected_until_ms, __ATOMIC_ACQUIRE);
    if (now < until) {
        return;                 /* another worker ejected it already */
    }
    streak = __atomic_load_n(&row->eject_streak, __ATOMIC_RELAXED);
    if (until == 0 || now >= until + cu->fail_timeout_ms) {
        streak = 0;             /* it worked for a while since: start over */
    }
    d = ejection_ms(cu, streak);
    /* one worker wins the ejection; the others see it on their next pick */
    if (!__atomic_compare_exchange_n(&row->ejected_until_ms, &until, now + d, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
    {
        return;
    }
    __atomic_store_n(&row->eject_streak, streak + 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&row->ejections_total, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&row->last_ejection_ms, unix_ms(), __ATOMIC_RELAXED);
    __atomic_store_n(&row->last_ejection_for_ms, d, __ATOMIC_RELAXED);
    __atomic_store_n(&row->fails, 0, __ATOMIC_RELAXED);
    cr_log_warn("upstream %s/%s: ejected for %llums after %u consecutive failures "
                "(ejection %llu in a row)", cu->name, srv->conf->addr.text,
                (unsigned long long)d, cu->max_fails, (unsigned long long)streak + 1);
}

void
cr_upstream_server_ok(struct cr_upstream_server *srv, int status)
{
    if (status >= 500 && status <= 599 && srv->pool->conf->outlier.count_5xx) {
        cr_upstream_server_failed(srv, CR_UPSTREAM_FAIL_5XX);
        return;
    }
    /* read first: most exchanges succeed, and a store would bounce the line */
    if (__atomic_load_n(&srv->row->fails, __ATOMIC_RELAXED) != 0) {
        __atomic_store_n(&srv->row->fails, 0, __ATOMIC_RELAXED);
    }
}
