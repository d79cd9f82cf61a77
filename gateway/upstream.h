/*
 * upstream.h - backend pools of one worker.
 *
 * Owns struct cr_upstream_pool (one per configured upstream), its servers'
 * per-worker state (smooth weighted round robin weights, active requests,
 * passive failure marks) and the pool's idle keep-alive connections. While a
 * request uses a connection, proxy.c owns it and its callbacks; it hands it
 * back with cr_upstream_release() or cr_upstream_close().
 */
#ifndef CR_UPSTREAM_H
#define CR_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "io.h"

struct cr_worker;
struct cr_conf_server;
struct cr_conf_upstream;
struct cr_upstream_pool;

struct cr_upstream_server {
    const struct cr_conf_server *conf;
    struct cr_upstream_pool *pool;
    unsigned                 idx;           /* in pool->servers */
    int64_t                  current;       /* smooth WRR running weight */
    unsigned                 active;        /* requests in flight here */
    unsigned                 fails;         /* consecutive failures */
    uint64_t                 down_until;    /* monotonic ms; 0 = up */
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
};

int  cr_upstream_pools_init(struct cr_worker *w, char *err, size_t errlen);
void cr_upstream_pools_free(struct cr_worker *w);

/* Monotonic milliseconds (coarse clock). */
uint64_t cr_upstream_now(void);

/*
 * Choose a server of <pool> that is up and whose bit is not set in <tried>
 * (bit idx % 64). Returns NULL when none is left: every server is down or
 * was already tried for this request.
 */
struct cr_upstream_server *cr_upstream_pick(struct cr_upstream_pool *pool,
                                            uint64_t tried);

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

/* Passive health: a failed or successful exchange with <srv>. */
void cr_upstream_server_failed(struct cr_upstream_server *srv);
void cr_upstream_server_ok(struct cr_upstream_server *srv);

#endif /* CR_UPSTREAM_H */
