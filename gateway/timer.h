/*
 * timer.h - timers that share one duration, kept in deadline order.
 *
 * A client connection is always waiting for one of a few timeouts (idle,
 * request head, lingering close), each the same length for every
 * connection of a worker. Appending to the tail of a per-duration list
 * keeps each list sorted by deadline, so starting, stopping and expiring a
 * timer are O(1) and a connection carries 32 bytes instead of a struct
 * event. One libevent timer per list wakes up for its head.
 */
#ifndef CR_TIMER_H
#define CR_TIMER_H

#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/event_struct.h>

struct cr_timer;

typedef void cr_timer_fn(struct cr_timer *t);

struct cr_tlist {
    TAILQ_HEAD(, cr_timer)   timers;
    uint64_t                 dur_ms;
    cr_timer_fn             *fire;
    struct event             ev;
    int                      armed;
};

struct cr_timer {
    TAILQ_ENTRY(cr_timer)    link;
    struct cr_tlist         *list;      /* NULL when stopped */
    uint64_t                 due_ms;
};

/* <fire> is called with the expired timer, already stopped. */
void cr_tlist_init(struct cr_tlist *l, struct event_base *base, uint64_t dur_ms,
                   cr_timer_fn *fire);
void cr_tlist_fini(struct cr_tlist *l);

/* (Re)start <t> on <l>: it fires l->dur_ms from now. A 0 duration stops it. */
void cr_timer_start(struct cr_timer *t, struct cr_tlist *l);
void cr_timer_stop(struct cr_timer *t);

/* Monotonic milliseconds (coarse clock). */
uint64_t cr_now_ms(void);

#endif /* CR_TIMER_H */
