/*
 * stats.c - the worker's writes into its own shm slot.
 *
 * Counting must stay cheap: a counter is a relaxed load, add and store on a
 * cache line only this process writes. The heartbeat is written from a
 * persistent timer, so a loop stuck in a blocking call shows as a stale
 * heartbeat to the master and to corralctl.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "stats.h"

static struct cr_shm_slot           scratch_slot;
static struct cr_shm_route_stats    scratch_route;
static struct cr_shm_server_stats   scratch_server;
static struct cr_shm_header        *stats_hdr;
static struct event                *heartbeat_ev;

struct cr_shm_slot *cr_stats_slot = &scratch_slot;

uint64_t
cr_stats_now_us(void)
{
    struct timespec ts;

#ifdef CR_NO_STATS
    return 0;
#endif
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
cr_stats_since_us(uint64_t start)
{
    uint64_t now = cr_stats_now_us();

    return now > start ? now - start : 0;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
cr_stats_attach(struct cr_shm_header *h, int slot)
{
    if (h == NULL || slot < 0 || (unsigned)slot >= h->nslots) {
        stats_hdr = NULL;
        cr_stats_slot = &scratch_slot;
        return;
    }
    stats_hdr = h;
    cr_stats_slot = cr_shm_slot(h, (unsigned)slot);
}

void
cr_stats_set_state(unsigned state)
{
    __atomic_store_n(&cr_stats_slot->pid, (int32_t)getpid(), __ATOMIC_RELAXED);
    cr_shm_set(&cr_stats_slot->heartbeat_ms, now_ms());
    __atomic_store_n(&cr_stats_slot->state, state, __ATOMIC_RELEASE);
}

static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    cr_shm_set(&cr_stats_slot->heartbeat_ms, now_ms());
}

int
cr_stats_heartbeat_start(struct event_base *base)
{
    struct timeval tv = { 0, 250000 };

    heartbeat_ev = event_new(base, -1, EV_PERSIST, heartbeat_cb, NULL);
    if (heartbeat_ev == NULL || event_add(heartbeat_ev, &tv) == -1) {
        return -1;
    }
    heartbeat_cb(-1, 0, NULL);
    return 0;
}

void
cr_stats_heartbeat_stop(void)
{
    if (heartbeat_ev != NULL) {
        event_free(heartbeat_ev);
        heartbeat_ev = NULL;
    }
}

struct cr_shm_route_stats *
cr_stats_route(int row)
{
    if (stats_hdr == NULL || row < 0 || (unsigned)row >= stats_hdr->routes_cap) {
        return &scratch_route;
    }
    return cr_shm_slot_route(stats_hdr, cr_stats_slot, (unsigned)row);
}

struct cr_shm_server_stats *
cr_stats_server(int row)
{
    if (stats_hdr == NULL || row < 0 || (unsigned)row >= stats_hdr->servers_cap) {
        return &scratch_server;
    }
    return cr_shm_slot_server(stats_hdr, cr_stats_slot, (unsigned)row);
}

struct cr_shm_server *
cr_stats_server_row(int row)
{
    if (stats_hdr == NULL || row < 0 || (unsigned)row >= stats_hdr->servers_cap) {
        return NULL;
    }
    return cr_shm_server_at(stats_hdr, (unsigned)row);
}

/*
 * Every live slot's requests_active for the server, ours included. Slots
 * of exited workers are skipped: their gauges died with them, and the
 * master zeroes them when it retires the slot.
 */
uint64_t
cr_stats_server_active(int row)
{
    uint64_t sum = 0;
    unsigned i;

    if (stats_hdr == NULL || row < 0 || (unsigned)row >= stats_hdr->servers_cap) {
        return 0;
    }
    for (i = 0; i < stats_hdr->nslots; i++) {
        struct cr_shm_slot *s = cr_shm_slot(stats_hdr, i);
        uint32_t state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);

        if (state == CR_SHM_SLOT_FREE || state == CR_SHM_SLOT_EXITED) {
            continue;
        }
        sum += cr_shm_get(&cr_shm_slot_server(stats_hdr, s, (unsigned)row)
                              ->counters[CR_SHM_S_requests_active]);
    }
    return sum;
}

void
cr_stats_response(int status, int ours)
{
    uint64_t *c = cr_stats_slot->counters;

    cr_shm_add(&c[CR_SHM_C_responses_1xx_total + cr_stats_class(status)], 1);
    if (!ours) {
        return;
    }
    switch (status) {
    case 400: CR_STAT_INC(errors_400_total); break;
    case 404: CR_STAT_INC(errors_404_total); break;
    case 408: CR_STAT_INC(errors_408_total); break;
    case 413: CR_STAT_INC(errors_413_total); break;
    case 414: CR_STAT_INC(errors_414_total); break;
    case 431: CR_STAT_INC(errors_431_total); break;
    case 501: CR_STAT_INC(errors_501_total); break;
    case 502: CR_STAT_INC(errors_502_total); break;
    case 503: CR_STAT_INC(errors_503_total); break;
    case 504: CR_STAT_INC(errors_504_total); break;
    default: break;
    }
}
