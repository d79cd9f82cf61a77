/*
 * waitq.c - the bounded FIFO of requests waiting for a server slot.
 *
 * Bounded, because an unbounded queue in front of a saturated pool only
 * turns overload into latency and memory; with a timeout, because a client
 * waiting longer than that is better served by a quick 503 it can retry
 * elsewhere. FIFO, so no request waits behind ones that came later; the
 * same timeout for all keeps deadlines in queue order, so expiry only ever
 * looks at the head.
 */
#include "conf/common.h"
#include "waitq.h"

void
cr_waitq_init(struct cr_waitq *q, size_t size, uint64_t timeout_ms)
{
    TAILQ_INIT(&q->list);
    q->len = 0;
    q->size = size;
    q->timeout_ms = timeout_ms;
    q->rejected = 0;
    q->expired = 0;
}

int
cr_waitq_push(struct cr_waitq *q, struct cr_waitq_entry *e, uint64_t now_ms)
{
    if (q->len >= q->size) {
        q->rejected++;
        return CR_ERR;
    }
    e->deadline_ms = now_ms + q->timeout_ms;
    e->queued = 1;
    TAILQ_INSERT_TAIL(&q->list, e, link);
    q->len++;
    return CR_OK;
}

void
cr_waitq_remove(struct cr_waitq *q, struct cr_waitq_entry *e)
{
    if (!e->queued) {
        return;
    }
    TAILQ_REMOVE(&q->list, e, link);
    e->queued = 0;
    q->len--;
}

struct cr_waitq_entry *
cr_waitq_pop(struct cr_waitq *q)
{
    struct cr_waitq_entry *e = TAILQ_FIRST(&q->list);

    if (e != NULL) {
        cr_waitq_remove(q, e);
    }
    return e;
}

struct cr_waitq_entry *
cr_waitq_expired(struct cr_waitq *q, uint64_t now_ms)
{
    struct cr_waitq_entry *e = TAILQ_FIRST(&q->list);

    if (e == NULL || now_ms < e->deadline_ms) {
        return NULL;
    }
    cr_waitq_remove(q, e);
    q->expired++;
    return e;
}

uint64_t
cr_waitq_next_deadline(const struct cr_waitq *q)
{
    const struct cr_waitq_entry *e = TAILQ_FIRST(&q->list);

    return e != NULL ? e->deadline_ms : 0;
}
