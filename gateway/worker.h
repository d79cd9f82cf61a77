/*
 * worker.h - one worker process.
 *
 * Owns the worker's event_base (created after fork), its listeners and its
 * signal events. Client connections (conn.c) and upstream pools
 * (upstream.c) hang off struct cr_worker but are owned by their modules.
 * cr_worker_run() is the worker's only exit point.
 */
#ifndef CR_WORKER_H
#define CR_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conn.h"
#include "io.h"
#include "timer.h"

struct event_base;
struct cr_conf;
struct cr_listener;
struct cr_conn;
struct cr_upstream_pool;
struct cr_steer;
struct event;

TAILQ_HEAD(cr_conn_list, cr_conn);

struct cr_worker {
    struct event_base       *base;
    const struct cr_conf    *conf;
    unsigned                 id;            /* 0 .. workers-1 */
    unsigned                 generation;    /* bumped by each reload */
    int                      draining;      /* stop accepting, finish, exit */
    struct cr_listener     **listeners;     /* one per conf->listen[] */
    size_t                   nlisteners;
    struct cr_conn_list      conns;         /* every client conn (conn.c) */
    unsigned                 nconns;
    struct cr_upstream_pool *pools;         /* one per conf->upstreams[] */
    uint64_t                 next_conn_id;
    int                      exit_code;     /* CR_EXIT_* */
    const struct cr_steer   *steer;         /* this generation's steering */
    int                      listening;     /* listeners still open */
    struct event            *grace_ev;      /* drain: listeners close then */
    struct cr_io_loop        ioloop;        /* output due this iteration */
    struct cr_tlist          conn_timers[CR_CONN_T_COUNT];  /* conn.c */
};

/*
 * Run worker <id> of <generation> on <conf> until told to stop. Binds its own
 * SO_REUSEPORT listeners, writes one byte to <ready_fd> once listening (then
 * closes it; -1 for none), and returns a CR_EXIT_* code.
 */
int cr_worker_run(const struct cr_conf *conf, unsigned id, unsigned generation,
                  int ready_fd, const struct cr_steer *steer);

/*
 * Switch to conf's user: and group: for good (after binding, which is how a
 * worker started or respawned by a root master still binds ports below
 * 1024). With <check_only>, only say whether the switch is possible.
 * Returns CR_OK (also when no user or group is configured), or CR_ERR with
 * <err> filled.
 */
int cr_worker_drop_privileges(const struct cr_conf *conf, int check_only, char *err,
                              size_t errlen);

/* conn.c calls this after freeing a conn; ends the loop when draining is done. */
void cr_worker_conn_closed(struct cr_worker *w);

/* Begin graceful stop: close listeners, let conns finish, then exit. */
void cr_worker_drain(struct cr_worker *w);

#endif /* CR_WORKER_H */
