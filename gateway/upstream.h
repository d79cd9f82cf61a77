/*
 * upstream.h - backend pools of one worker.
 *
 * Owns struct cr_upstream_pool (one per configured upstream), its servers'
 * per-worker state (balancer state, active requests, hash ring) and the
 * pool's idle keep-alive connections. Health and ejection state is shared
 * by every worker in the server's shm row (shm/layout.h); a server without
 * a row keeps a private one. While a
 * request uses a connection, proxy.c owns it and its callbacks; it hands it
 * back with cr_upstream_release() or cr_upstream_close().
 */
#ifndef CR_UPSTREAM_H
#define CR_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "balance.h"
#include "io.h"
#include "retry.h"
#include "waitq.h"

struct event;
struct cr_http_parser;
struct cr_shm_server;
struct cr_worker;
struct cr_conf_server;
struct cr_conf_upstream;
struct cr_upstream_pool;

struct cr_upstream_server {
    const struct cr_conf_server *conf;
    struct cr_upstream_pool *pool;
    unsigned                 idx;           /* in pool->servers */
    unsigned                 active;        /* requests in flight here, this
                                             * worker (proxy.c counts them) */
    struct cr_shm_server    *row;           /* shared health and ejection;
                                             * never NULL */
};

struct cr_upstream_conn;

/* What the socket of a busy upstream conn did: CR_IO_R_* bits (io.h). */
typedef void cr_upstream_cb(struct cr_upstream_conn *uc, unsigned r, void *arg);

struct cr_upstream_conn {
    TAILQ_ENTRY(cr_upstream_conn) link;     /* in pool->idle while idle */
    struct cr_io             io;
    struct cr_upstream_server *srv;
    cr_upstream_cb          *cb;            /* the user's, while busy */
    void                    *arg;
    uint64_t                 id;
    unsigned                 nreqs;         /* requests carried so far */
    int                      idle;
};

TAILQ_HEAD(cr_upstream_conn_list, cr_upstream_conn);

struct cr_upstream_pool {
    const struct cr_conf_upstream *conf;
    struct cr_worker        *w;
    struct cr_upstream_server *servers;
    size_t                   nservers;
    struct cr_upstream_conn_list idle;
    unsigned                 nidle;
    unsigned                 rr_start;      /* rotates least_conn ties */
    struct cr_balance_node  *nodes;         /* parallel to servers */
    struct cr_balance_ring   ring;          /* balance: hash */
    uint64_t                 rng;           /* balance: random */
    struct cr_shm_server    *local_rows;    /* rows of servers not in shm */
    unsigned                 active;        /* requests in flight (proxy.c) */
    struct cr_retry_budget   budget;        /* retry_budget (proxy.c) */
    struct cr_waitq          waitq;         /* queue: under max_connections */
    struct event            *waitq_ev;      /* its timer; made on first use */
    struct event            *trim_ev;       /* closes idle surplus (upstream.c) */
};

/* Why an exchange with a server failed (cr_upstream_server_failed()). */
enum cr_upstream_fail {
    CR_UPSTREAM_FAIL_CONNECT = 0,           /* refused, unreachable, timed out */
    CR_UPSTREAM_FAIL_TIMEOUT,               /* no response in read_timeout */
    CR_UPSTREAM_FAIL_ERROR,                 /* reset, closed early, bad response */
    CR_UPSTREAM_FAIL_5XX                    /* a 5xx answer (outlier.count_5xx) */
};

/*
 * What the proxy knows about a request when it asks for a server: the
 * servers already tried, and for a pool with "balance: hash" the hash of
 * the request's key (cr_upstream_want_key() fills it in).
 */
struct cr_upstream_want {
    uint64_t                 tried;         /* bit idx % 64 of tried servers */
    uint64_t                 key;           /* cr_balance_hash() of the key */
    int                      has_key;       /* 0: no key, balance round robin */
};

int  cr_upstream_pools_init(struct cr_worker *w, char *err, size_t errlen);
void cr_upstream_pools_free(struct cr_worker *w);

/* Monotonic milliseconds (coarse clock). */
uint64_t cr_upstream_now(void);

/*
 * Set want->key and want->has_key for <pool>'s "hash:" source from the
 * request head <req> (a header or cookie) or the client address <peer> (as
 * text). Leaves <want> alone for other balancers or when the request has
 * no such header or cookie.
 */
void cr_upstream_want_key(const struct cr_upstream_pool *pool,
                          const struct cr_http_parser *req, const char *peer,
                          struct cr_upstream_want *want);

/*
 * Choose a server of <pool> for <want>: one that the health checker has
 * not marked down, that no worker has ejected, and whose bit is not set in
 * want->tried. Returns NULL when none is left, at once: every server is
 * down, ejected or already tried for this request.
 */
struct cr_upstream_server *cr_upstream_pick(struct cr_upstream_pool *pool,
                                            const struct cr_upstream_want *want);

/*
 * An idle keep-alive connection to <srv>, or NULL. The caller owns it and
 * must set uc->cb and uc->arg.
 */
struct cr_upstream_conn *cr_upstream_idle_get(struct cr_upstream_server *srv);

/*
 * Start a new connection to <srv>, with <timeout_ms> to connect. Returns it
 * (connecting: CR_IO_R_CONNECTED or a failure comes to uc->cb, which the
 * caller must set) or NULL on immediate failure, with errno set.
 */
struct cr_upstream_conn *cr_upstream_connect(struct cr_upstream_server *srv,
                                             uint32_t timeout_ms);

/* Back to the idle pool if <reusable> and there is room; else closed. */
void cr_upstream_release(struct cr_upstream_conn *uc, int reusable);
void cr_upstream_close(struct cr_upstream_conn *uc);

/*
 * Passive health (outlier detection), shared by all workers: outlier
 * .failures consecutive failures eject <srv> for base_ejection, doubled for
 * each ejection that follows without the server working for base_ejection
 * in between, up to max_ejection. <kind> CR_UPSTREAM_FAIL_5XX counts only
 * with outlier.count_5xx.
 */
void cr_upstream_server_failed(struct cr_upstream_server *srv, enum cr_upstream_fail kind);

/*
 * A complete exchange with <srv> that got response <status>: ends a run of
 * failures, unless <status> is a 5xx and outlier.count_5xx is set, when it
 * counts as CR_UPSTREAM_FAIL_5XX instead.
 */
void cr_upstream_server_ok(struct cr_upstream_server *srv, int status);

/* Is <srv> ejected now (by any worker)? */
int  cr_upstream_server_ejected(const struct cr_upstream_server *srv, uint64_t now);

#endif /* CR_UPSTREAM_H */
