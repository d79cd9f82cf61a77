/*
 * retry.h - when a failed try may be retried, and how many retries may run.
 *
 * Pure logic for the proxy: no sockets, no clock of its own (the caller
 * passes the time). A struct cr_retry_budget belongs to one pool of one
 * worker; the caller owns it and its memory.
 */
#ifndef CR_RETRY_H
#define CR_RETRY_H

#include <stdint.h>

/* What went wrong with one try. */
enum cr_retry_cause {
    CR_RETRY_CAUSE_CONNECT = 0,         /* connect refused, failed or timed out */
    CR_RETRY_CAUSE_RESET,               /* reset or closed before a response */
    CR_RETRY_CAUSE_STATUS               /* a response with status <status> */
};

/*
 * May a try that failed with <cause> (and <status> for CR_RETRY_CAUSE_STATUS)
 * be retried under the upstream's <retry_on> bits (CR_RETRY_* of
 * conf/conf.h)? A connect failure sent nothing, so it always may when
 * configured; otherwise only an idempotent method (<idempotent>) or a
 * request of which no body byte was sent (<body_sent> 0) may go again, since
 * the server may have acted on it. Returns 1 or 0.
 */
int cr_retry_eligible(unsigned retry_on, enum cr_retry_cause cause, int status,
                      int idempotent, int body_sent);

/*
 * Retry budget: over a sliding window of the current and the previous
 * second, retries may be at most <percent> of the requests that started,
 * but <min_per_s> retries may always start in a second. When every request
 * fails (an outage), retries thus add at most <percent> to the load instead
 * of multiplying it by the number of tries; when one server of several dies,
 * the burst of retries it causes is small next to the request rate and all
 * of it goes through. (A cap on retries in flight, as Envoy has, would
 * refuse most of that burst at a modest load and turn a failure the other
 * servers could absorb into errors.)
 */
struct cr_retry_budget {
    unsigned    percent;
    unsigned    min_per_s;
    uint64_t    second;             /* the current second (now_ms / 1000) */
    uint64_t    reqs, prev_reqs;    /* requests started in it, in the one before */
    unsigned    started, prev_started;  /* retries started */
    uint64_t    active;             /* retries in flight (for the record) */
    uint64_t    denied;             /* retries refused, for counters */
};

void cr_retry_budget_init(struct cr_retry_budget *b, unsigned percent, unsigned min_per_s);

/* A request of the pool starts at <now_ms> (any clock). */
void cr_retry_budget_request(struct cr_retry_budget *b, uint64_t now_ms);

/*
 * May a retry start now? On 1 it is counted as started and in flight: the
 * caller calls cr_retry_budget_done() when it ends. On 0 it is counted as
 * denied.
 */
int  cr_retry_budget_take(struct cr_retry_budget *b, uint64_t now_ms);
void cr_retry_budget_done(struct cr_retry_budget *b);

#endif /* CR_RETRY_H */
