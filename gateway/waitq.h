/*
 * waitq.h - per-server connection limits and the bounded FIFO of requests
 * waiting for a slot (upstream max_connections and queue: {size, timeout}).
 *
 * Pure data structures: no sockets, no timers, no clock of its own (the
 * caller passes the time and arms its own timer from
 * cr_waitq_next_deadline()). struct cr_waitq_entry is embedded in the
 * caller's request object; the queue only links it, it never allocates.
 */
#ifndef CR_WAITQ_H
#define CR_WAITQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

/* requests in flight on one server, against its max_connections */
struct cr_connlimit {
    unsigned    max;                /* 0 = no limit */
    unsigned    active;
};

/* 1 if one more request may use the server now, else 0. */
static inline int
cr_connlimit_has_room(const struct cr_connlimit *l)
{
    return l->max == 0 || l->active < l->max;
}

struct cr_waitq_entry {
    TAILQ_ENTRY(cr_waitq_entry) link;
    uint64_t    deadline_ms;        /* 503 then */
    int         queued;             /* linked in a queue */
};

TAILQ_HEAD(cr_waitq_list, cr_waitq_entry);

struct cr_waitq {
    struct cr_waitq_list    list;   /* oldest first */
    size_t                  len;
    size_t                  size;   /* capacity; 0 = no queue */
    uint64_t                timeout_ms;
    uint64_t                rejected;   /* full: answered 503 at once */
    uint64_t                expired;    /* timed out waiting */
};

void cr_waitq_init(struct cr_waitq *q, size_t size, uint64_t timeout_ms);

/*
 * Queue <e> at <now_ms>. Returns CR_OK, or CR_ERR when the queue is full
 * (or has no room at all): the caller answers 503 at once.
 */
int  cr_waitq_push(struct cr_waitq *q, struct cr_waitq_entry *e, uint64_t now_ms);

/* The oldest entry, unlinked (a slot came free for it), or NULL. */
struct cr_waitq_entry *cr_waitq_pop(struct cr_waitq *q);

/* Unlink <e> if it is queued (its client went away). */
void cr_waitq_remove(struct cr_waitq *q, struct cr_waitq_entry *e);

/*
 * The oldest entry whose deadline has passed at <now_ms>, unlinked, or NULL;
 * call until NULL and answer each with 503. Entries expire in FIFO order
 * since they all wait the same timeout.
 */
struct cr_waitq_entry *cr_waitq_expired(struct cr_waitq *q, uint64_t now_ms);

/* Deadline of the oldest entry, or 0 if the queue is empty. */
uint64_t cr_waitq_next_deadline(const struct cr_waitq *q);

#endif /* CR_WAITQ_H */
