/*
 * layout.h - the shared-memory stats segment: a wire format between corral
 * and corralctl.
 *
 * Types and constants only. The segment is created by the master before its
 * first fork and mapped read-only by corralctl at another address, so it
 * holds no pointers, only offsets from its start. Any change to a size or
 * to the order of fields bumps CR_SHM_MAJOR (readers refuse other majors);
 * fields added at the end of a table bump CR_SHM_MINOR.
 *
 *   +--------------------+ 0
 *   | cr_shm_header      |  magic, version, sizes, offsets, master pid...
 *   +--------------------+ routes_off
 *   | cr_shm_route[cap]  |  route names (written by the master)
 *   +--------------------+ servers_off
 *   | cr_shm_server[cap] |  upstream servers, health (checker), ejection (workers)
 *   +--------------------+ slots_off
 *   | slot 0             |  one per worker process, one writer each:
 *   | slot 1             |    cr_shm_slot, then cr_shm_route_stats[cap],
 *   | ...                |    then cr_shm_server_stats[cap]
 *   | slot nslots-1      |
 *   | retired slot       |  what exited workers counted (written by master)
 *   +--------------------+ total_size
 *
 * Every counter is a uint64_t updated with relaxed atomics by its one writer
 * (a worker for its slot, the master for the retired slot and tables), so
 * readers never see a torn value; they add up the slots. A worker's final
 * counts are added to the retired slot by the master before its slot is
 * reused, so sums never go backwards while the master lives.
 */
#ifndef CR_SHM_LAYOUT_H
#define CR_SHM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define CR_SHM_MAGIC        0x31534d48524f4343ULL   /* "CCORHMS1" */
#define CR_SHM_MAJOR        3
#define CR_SHM_MINOR        0
#define CR_SHM_CACHELINE    64
#define CR_SHM_NAME_MAX     64      /* names, NUL included */
#define CR_SHM_PATH_MAX     256
#define CR_SHM_MAX_SLOTS    1024

/*
 * Latency histograms: bucket i counts values <= 2^i microseconds (1 us to
 * about 67 s); the last bucket counts the rest. Fixed, so readers can
 * subtract two snapshots and compute quantiles over any window.
 */
#define CR_SHM_HIST_BUCKETS 28

struct cr_shm_hist {
    uint64_t    buckets[CR_SHM_HIST_BUCKETS];
    uint64_t    count;
    uint64_t    sum_us;
};

/*
 * Per worker counters: X(field, help). Metric names are corral_<field>;
 * names ending in _total are counters, the others gauges.
 */
#define CR_SHM_WORKER_COUNTERS(X)                                               \
    X(connections_accepted_total,  "client connections accepted")               \
    X(connections_active,          "client connections open now")               \
    X(requests_total,              "requests received (heads parsed)")          \
    X(requests_active,             "requests in progress now")                  \
    X(responses_1xx_total,         "final responses with a 1xx status")         \
    X(responses_2xx_total,         "responses with a 2xx status")               \
    X(responses_3xx_total,         "responses with a 3xx status")               \
    X(responses_4xx_total,         "responses with a 4xx status")               \
    X(responses_5xx_total,         "responses with a 5xx status")               \
    X(errors_400_total,            "400 bad request made by corral")            \
    X(errors_404_total,            "404 no route made by corral")               \
    X(errors_408_total,            "408 request head timeout made by corral")   \
    X(errors_413_total,            "413 body too large made by corral")         \
    X(errors_414_total,            "414 URI too long made by corral")           \
    X(errors_431_total,            "431 headers too large made by corral")      \
    X(errors_499_total,            "requests abandoned by the client")          \
    X(errors_501_total,            "501 unsupported transfer coding/method")    \
    X(errors_502_total,            "502 upstream failure made by corral")       \
    X(errors_503_total,            "503 no server available made by corral")    \
    X(errors_504_total,            "504 upstream timeout made by corral")       \
    X(client_bytes_in_total,       "bytes read from clients")                   \
    X(client_bytes_out_total,      "bytes written to clients")                  \
    X(upstream_bytes_in_total,     "bytes read from upstream servers")          \
    X(upstream_bytes_out_total,    "bytes written to upstream servers")         \
    X(upstream_connects_total,     "upstream connections opened")               \
    X(upstream_reuses_total,       "requests sent on a kept-alive connection")  \
    X(upstream_failures_total,     "upstream connect or protocol failures")     \
    X(upstream_timeouts_total,     "upstream connect or read timeouts")         \
    X(upstream_retries_total,      "requests retried on another connection")    \
    X(parse_errors_total,          "malformed requests or responses")          \
    X(connections_rejected_total,  "connections refused with 503 over max_connections") \
    X(upgrades_total,              "connections switched to a tunnel after a 101") \
    X(tunnels_active,              "tunnels (WebSocket and other upgrades) open now") \
    X(upstream_retries_denied_total, "retries refused by the retry budget")   \
    X(upstream_queued_total,       "requests that waited for a server under max_connections") \
    X(upstream_queue_rejected_total, "503 for a full wait queue or a wait too long")

enum cr_shm_counter {
#define CR_SHM_X_ENUM(f, h) CR_SHM_C_##f,
    CR_SHM_WORKER_COUNTERS(CR_SHM_X_ENUM)
#undef CR_SHM_X_ENUM
    CR_SHM_NCOUNTERS
};

/* Slot states. */
enum cr_shm_slot_state {
    CR_SHM_SLOT_FREE = 0,
    CR_SHM_SLOT_STARTING,       /* forked, not yet listening */
    CR_SHM_SLOT_RUNNING,
    CR_SHM_SLOT_DRAINING,       /* stopped accepting, finishing requests */
    CR_SHM_SLOT_EXITED          /* gone; counts not yet retired */
};

struct cr_shm_slot {
    int32_t             pid;
    uint32_t            state;          /* enum cr_shm_slot_state */
    uint32_t            id;             /* worker id in its generation */
    uint32_t            pad0;
    uint64_t            generation;
    uint64_t            start_ms;       /* unix ms */
    uint64_t            heartbeat_ms;   /* monotonic ms, every loop tick */
    uint64_t            pad1[3];
    uint64_t            counters[CR_SHM_NCOUNTERS];
    struct cr_shm_hist  request_time;   /* whole request, us */
    struct cr_shm_hist  upstream_ttfb;  /* upstream time to first byte, us */
} __attribute__((aligned(CR_SHM_CACHELINE)));

/* Per route, per worker: X(field, help). */
#define CR_SHM_ROUTE_COUNTERS(X)                                                \
    X(requests_total,              "requests matched to the route")             \
    X(requests_active,             "requests of the route in progress")         \
    X(responses_1xx_total,         "responses with a 1xx status")               \
    X(responses_2xx_total,         "responses with a 2xx status")               \
    X(responses_3xx_total,         "responses with a 3xx status")               \
    X(responses_4xx_total,         "responses with a 4xx status")               \
    X(responses_5xx_total,         "responses with a 5xx status")               \
    X(bytes_in_total,              "request bytes from clients")                \
    X(bytes_out_total,             "response bytes to clients")

enum cr_shm_route_counter {
#define CR_SHM_X_ENUM(f, h) CR_SHM_R_##f,
    CR_SHM_ROUTE_COUNTERS(CR_SHM_X_ENUM)
#undef CR_SHM_X_ENUM
    CR_SHM_NROUTE_COUNTERS
};

struct cr_shm_route_stats {
    uint64_t            counters[CR_SHM_NROUTE_COUNTERS];
    struct cr_shm_hist  request_time;
};

/* Per upstream server, per worker: X(field, help). */
#define CR_SHM_SERVER_COUNTERS(X)                                               \
    X(requests_total,              "requests sent to the server")               \
    X(requests_active,             "requests in progress on the server")        \
    X(responses_1xx_total,         "responses with a 1xx status")               \
    X(responses_2xx_total,         "responses with a 2xx status")               \
    X(responses_3xx_total,         "responses with a 3xx status")               \
    X(responses_4xx_total,         "responses with a 4xx status")               \
    X(responses_5xx_total,         "responses with a 5xx status")               \
    X(bytes_in_total,              "bytes read from the server")                \
    X(bytes_out_total,             "bytes written to the server")               \
    X(connects_total,              "connections opened to the server")          \
    X(failures_total,              "connect or protocol failures")              \
    X(timeouts_total,              "connect or read timeouts")

enum cr_shm_server_counter {
#define CR_SHM_X_ENUM(f, h) CR_SHM_S_##f,
    CR_SHM_SERVER_COUNTERS(CR_SHM_X_ENUM)
#undef CR_SHM_X_ENUM
    CR_SHM_NSERVER_COUNTERS
};

struct cr_shm_server_stats {
    uint64_t            counters[CR_SHM_NSERVER_COUNTERS];
    struct cr_shm_hist  ttfb;           /* time to first byte, us */
};

/* A row of the route table (written by the master). */
struct cr_shm_route {
    char                name[CR_SHM_NAME_MAX];
    char                upstream[CR_SHM_NAME_MAX];  /* "" for respond/redirect */
    uint32_t            used;           /* 1 once assigned */
    uint32_t            current;        /* 1 if in the current config */
    uint64_t            pad;
};

/* Health of an upstream server (written by the health checker). */
enum cr_shm_health {
    CR_SHM_HEALTH_UNKNOWN = 0,          /* no active check, or none done yet */
    CR_SHM_HEALTH_UP,
    CR_SHM_HEALTH_DOWN
};

/*
 * A row of the upstream server table. Names and weight are written by the
 * master; the active check fields by the one health checker process of the
 * instance; the passive (outlier) fields by any worker, with atomic
 * read-modify-write operations since several workers share them. Rows are
 * found by (upstream, address), so all of this survives a reload.
 */
struct cr_shm_server {
    char                upstream[CR_SHM_NAME_MAX];
    char                address[CR_SHM_NAME_MAX];
    uint32_t            used;
    uint32_t            current;
    uint32_t            weight;
    uint32_t            health;         /* enum cr_shm_health */
    uint64_t            last_check_ms;  /* unix ms, 0 = never */
    uint64_t            checks_ok;
    uint64_t            checks_failed;
    char                last_error[64]; /* of the last failed check */

    /* active checks, continued (checker) */
    uint32_t            check_passes;   /* consecutive passed checks */
    uint32_t            check_fails;    /* consecutive failed checks */
    uint32_t            last_status;    /* HTTP status of the last check, 0 = none */
    uint32_t            last_check_us;  /* how long the last check took */
    uint64_t            health_changed_ms;  /* unix ms of the last up/down change */

    /* passive outlier detection (any worker, atomic RMW) */
    uint64_t            fails;          /* consecutive failed exchanges */
    uint64_t            ejected_until_ms;   /* monotonic ms; in the past = not ejected */
    uint64_t            ejections_total;
    uint64_t            eject_streak;   /* ejections without a recovery between */
    uint64_t            last_ejection_ms;   /* unix ms, 0 = never */
    uint64_t            last_ejection_for_ms;   /* how long it lasts */
    uint64_t            pad1[2];
} __attribute__((aligned(CR_SHM_CACHELINE)));

struct cr_shm_header {
    uint64_t            magic;          /* CR_SHM_MAGIC */
    uint16_t            major;          /* CR_SHM_MAJOR */
    uint16_t            minor;          /* CR_SHM_MINOR */
    uint32_t            header_size;    /* sizeof(struct cr_shm_header) */
    uint64_t            total_size;     /* bytes of the whole segment */
    uint32_t            ready;          /* 1 once the master filled it */
    int32_t             master_pid;
    uint64_t            start_ms;       /* master start, unix ms */
    uint64_t            generation;     /* current worker generation */
    uint64_t            config_hash;    /* of the file now serving */
    uint64_t            reloads_ok;
    uint64_t            reloads_failed;
    uint64_t            fold_seq;       /* odd while the master retires a
                                         * slot; readers retry (seqlock) */
    uint64_t            updated_ms;     /* master's last tick, monotonic ms */
    uint32_t            workers;        /* configured per generation */
    uint32_t            nslots;         /* worker slots (retired not counted) */
    uint64_t            slot_size;      /* bytes per slot, tables included */
    uint64_t            slots_off;
    uint64_t            retired_off;
    uint64_t            routes_off;
    uint32_t            routes_cap;
    uint32_t            pad0;
    uint64_t            servers_off;
    uint32_t            servers_cap;
    uint32_t            pad1;
    uint64_t            slot_routes_off;    /* within a slot */
    uint64_t            slot_servers_off;   /* within a slot */
    char                name[CR_SHM_NAME_MAX];
    char                config_path[CR_SHM_PATH_MAX];
    char                last_reload_error[512];  /* first error of a failed reload */
    char                reload_mechanism[16];   /* "bpf", "migrate" or "drain" */
} __attribute__((aligned(CR_SHM_CACHELINE)));

_Static_assert(sizeof(struct cr_shm_hist) == (CR_SHM_HIST_BUCKETS + 2) * 8,
               "histogram layout");
_Static_assert(offsetof(struct cr_shm_header, magic) == 0, "magic first");
_Static_assert(offsetof(struct cr_shm_header, major) == 8, "version at 8");
_Static_assert(offsetof(struct cr_shm_header, total_size) == 16, "size at 16");
_Static_assert(sizeof(struct cr_shm_header) % CR_SHM_CACHELINE == 0, "header aligned");
_Static_assert(sizeof(struct cr_shm_slot) % CR_SHM_CACHELINE == 0, "slot aligned");
_Static_assert(offsetof(struct cr_shm_slot, counters) == 64, "counters at 64");
_Static_assert(sizeof(struct cr_shm_route) == 144, "route row");
_Static_assert(sizeof(struct cr_shm_server) == 320, "server row");
_Static_assert(offsetof(struct cr_shm_server, fails) % CR_SHM_CACHELINE == 0,
               "workers' fields start a cache line of their own");

#endif /* CR_SHM_LAYOUT_H */
