/*
 * stats.h - the worker's writes into its own shm slot.
 *
 * Owns the process-wide pointer to this worker's slot. Before a slot is
 * attached (the master, unit tests, a segment that could not be created)
 * every write lands in a private scratch slot, so callers never test for
 * NULL on the request path. One writer per slot: updates are relaxed loads
 * and stores (shm/shm.h), no locked instructions.
 */
#ifndef CR_STATS_H
#define CR_STATS_H

#include <stdint.h>
#include <sys/types.h>

#include "shm/shm.h"

struct event_base;

extern struct cr_shm_slot *cr_stats_slot;

/* Point this process's writes at slot <slot> of <h> (NULL: scratch). */
void cr_stats_attach(struct cr_shm_header *h, int slot);

/* Set the slot's state (enum cr_shm_slot_state) and pid. */
void cr_stats_set_state(unsigned state);

/* Keep the heartbeat fresh from <base>'s loop (every 250 ms). */
int  cr_stats_heartbeat_start(struct event_base *base);
void cr_stats_heartbeat_stop(void);

/*
 * Monotonic microseconds, for durations: CLOCK_MONOTONIC through the vDSO
 * each time. (Not a time cached per loop iteration: libevent caches its
 * coarse clock, a tick of 1 to 4 ms, and its precise one costs a
 * timerfd_settime per iteration; tests/integration/54-request-timing.sh.)
 */
uint64_t cr_stats_now_us(void);

/* Microseconds since <start>, a cr_stats_now_us() value. */
uint64_t cr_stats_since_us(uint64_t start);

/* Per route / per upstream server rows of this slot (scratch if row < 0). */
struct cr_shm_route_stats  *cr_stats_route(int row);
struct cr_shm_server_stats *cr_stats_server(int row);

/* The shared table row of an upstream server (health, ejection); NULL if
 * this process has no segment or <row> is not in it. */
struct cr_shm_server *cr_stats_server_row(int row);

/* Requests in flight on server <row> summed over every live worker; 0 if
 * there is no segment. Reads nslots counters: fine for a pick, not a loop. */
uint64_t cr_stats_server_active(int row);

/* Count a response <status> in the worker's class counters, and in the
 * error counters when corral made it (<ours>). */
void cr_stats_response(int status, int ours);

/* The class counter index (CR_SHM_R_responses_1xx_total + k) of <status>. */
static inline unsigned
cr_stats_class(int status)
{
    int k = status / 100 - 1;

    return (unsigned)(k < 0 ? 0 : k > 4 ? 4 : k);
}

#define CR_STAT_ADD(field, v) \
    cr_shm_add(&cr_stats_slot->counters[CR_SHM_C_##field], (uint64_t)(v))
#define CR_STAT_INC(field)  CR_STAT_ADD(field, 1)
#define CR_STAT_DEC(field) \
    cr_shm_sub(&cr_stats_slot->counters[CR_SHM_C_##field], 1)

#endif /* CR_STATS_H */
