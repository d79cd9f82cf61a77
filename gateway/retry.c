/*
 * retry.c - retry eligibility and the retry budget (see retry.h).
 *
 * RFC 9110 §9.2.2: a client may repeat an idempotent request after a
 * failure; a non-idempotent one only if it knows the server did not act on
 * it, which here means the connection failed before anything was sent, or
 * no byte of its body was sent (the server cannot have processed a request
 * it has not fully received; it may have seen its head).
 */
#include "conf/conf.h"
#include "retry.h"

int
cr_retry_eligible(unsigned retry_on, enum cr_retry_cause cause, int status,
                  int idempotent, int body_sent)
{
    unsigned bit;

    switch (cause) {
    case CR_RETRY_CAUSE_CONNECT:
        return (retry_on & CR_RETRY_CONNECT) != 0;
    case CR_RETRY_CAUSE_RESET:
        bit = CR_RETRY_RESET;
        break;
    case CR_RETRY_CAUSE_STATUS:
        bit = status == 502 ? CR_RETRY_502 : status == 503 ? CR_RETRY_503
              : status == 504 ? CR_RETRY_504 : 0;
        break;
    default:
        return 0;
    }
    return (retry_on & bit) != 0 && bit != 0 && (idempotent || !body_sent);
}

void
cr_retry_budget_init(struct cr_retry_budget *b, unsigned percent, unsigned min_per_s)
{
    b->percent = percent;
    b->min_per_s = min_per_s;
    b->second = 0;
    b->reqs = b->prev_reqs = 0;
    b->started = b->prev_started = 0;
    b->active = 0;
    b->denied = 0;
}

/* Move the window to the second of <now_ms>. */
static void
roll(struct cr_retry_budget *b, uint64_t now_ms)
{
    uint64_t sec = now_ms / 1000;

    if (sec == b->second) {
        return;
    }
    if (sec == b->second + 1) {
        b->prev_reqs = b->reqs;
        b->prev_started = b->started;
    } else {
        b->prev_reqs = 0;
        b->prev_started = 0;
    }
    b->second = sec;
    b->reqs = 0;
    b->started = 0;
}

void
cr_retry_budget_request(struct cr_retry_budget *b, uint64_t now_ms)
{
    roll(b, now_ms);
    b->reqs++;
}

int
cr_retry_budget_take(struct cr_retry_budget *b, uint64_t now_ms)
{
    uint64_t retries, reqs;

    roll(b, now_ms);
    retries = (uint64_t)b->started + b->prev_started;
    reqs = b->reqs + b->prev_reqs;
    /* retries / requests < percent / 100, without dividing */
    if (b->started < b->min_per_s || retries * 100 < reqs * b->percent) {
        b->active++;
        b->started++;
        return 1;
    }
    b->denied++;
    return 0;
}

void
cr_retry_budget_done(struct cr_retry_budget *b)
{
    if (b->active > 0) {
        b->active--;
    }
}
