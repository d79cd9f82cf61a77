/*
 * timer.c - same-duration timer lists; see timer.h.
 */
#include <time.h>

#include "timer.h"

uint64_t
cr_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
arm(struct cr_tlist *l, uint64_t now)
{
    struct cr_timer *t = TAILQ_FIRST(&l->timers);
    uint64_t ms = t->due_ms > now ? t->due_ms - now : 0;
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    evtimer_add(&l->ev, &tv);
    l->armed = 1;
}

static void
expire_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cr_tlist *l = arg;
    struct cr_timer *t;
    uint64_t now = cr_now_ms();

    (void)fd;
    (void)what;
    l->armed = 0;
    /*
     * The coarse clock may lag libevent's by a tick: a deadline within
     * a few ms counts as reached, or we would wake again for nothing.
     */
    while ((t = TAILQ_FIRST(&l->timers)) != NULL && t->due_ms <= now + 5) {
        TAILQ_REMOVE(&l->timers, t, link);
        t->list = NULL;
        l->fire(t);         /* may start or stop other timers of <l> */
    }
    if (!l->armed && !TAILQ_EMPTY(&l->timers)) {
        arm(l, now);
    }
}

void
cr_tlist_init(struct cr_tlist *l, struct event_base *base, uint64_t dur_ms,
              cr_timer_fn *fire)
{
    TAILQ_INIT(&l->timers);
    l->dur_ms = dur_ms;
    l->fire = fire;
    l->armed = 0;
    evtimer_assign(&l->ev, base, expire_cb, l);
}

void
cr_tlist_fini(struct cr_tlist *l)
{
    evtimer_del(&l->ev);
    l->armed = 0;
}

void
cr_timer_stop(struct cr_timer *t)
{
    if (t->list != NULL) {
        TAILQ_REMOVE(&t->list->timers, t, link);
        t->list = NULL;
    }
}

void
cr_timer_start(struct cr_timer *t, struct cr_tlist *l)
{
    uint64_t now;

    cr_timer_stop(t);
    if (l == NULL || l->dur_ms == 0) {
        return;
    }
    now = cr_now_ms();
    t->due_ms = now + l->dur_ms;
    t->list = l;
    TAILQ_INSERT_TAIL(&l->timers, t, link);
    /*
     * An armed list wakes for its head, which is due no later than <t>;
     * an idle list arms for <t>. A list whose head was stopped wakes
     * early once and re-arms then, which is cheaper than re-arming here.
     */
    if (!l->armed) {
        arm(l, now);
    }
}
