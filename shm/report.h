/*
 * report.h - what a snapshot of the stats segment says: sums, rates and
 * quantiles, and their rendering as JSON and as Prometheus text.
 *
 * Shared by corralctl and the gateway's admin listener. Owns struct
 * cr_report_buf, a growable byte buffer, and nothing else: every function
 * here is a pure function of its inputs (a snapshot taken with
 * cr_shm_snapshot(), optionally an older snapshot of the same segment and the
 * seconds between them, and the time "now"). Nothing reads a clock, touches
 * a file descriptor or the live mapping; output goes only into the caller's
 * buffer. Snapshots must have passed cr_shm_validate().
 *
 * Rates and latency quantiles cover the window between <prev> and <cur>
 * when <prev> is given; without it, rates are lifetime averages (counts
 * divided by uptime) and quantiles cover the whole lifetime.
 *
 * Totals are the sum of every worker slot and the retired slot (the counts
 * of exited workers), so they never go backwards. Gauges (names not ending
 * in _total: connections_active, requests_active) are summed over live
 * worker slots only (starting, running, draining).
 *
 * ---- JSON documents (keys are stable; new keys may be added) ----
 *
 * Every document is one object. Counts are integers; rates, times and
 * latencies are numbers; latencies are milliseconds. An object
 * "responses" has the keys "1xx".."5xx"; "errors" has one key per error
 * counter of the worker X-macro (errors_NNN_total gives "NNN"): "400",
 * "404", "408", "413", "414", "431", "499", "501", "502", "503", "504".
 * "latency_ms" and "ttfb_ms" are {"p50": n, "p90": n, "p99": n}.
 * "counters" maps every X-macro field name (shm/layout.h) to its value.
 *
 * status (cr_report_status_json):
 *   instance          string   instance name
 *   master_pid        int
 *   start_time        number   master start, unix seconds
 *   uptime_seconds    number
 *   generation        int      generation now serving
 *   config_path       string
 *   config_hash       string   16 hex digits
 *   reloads_ok        int
 *   reloads_failed    int
 *   last_reload_error string   "" if none
 *   reload_mechanism   string  "bpf", "migrate" or "drain" (how reloads
 *                              avoid resetting connections)
 *   workers_configured int     workers per generation
 *   workers_live      int      worker processes alive now
 *   window_seconds    number   rate window; 0 = lifetime averages
 *   rps               number   requests per second over the window
 *   totals            object   requests, requests_active,
 *                              connections_accepted, connections_active,
 *                              responses{}, errors{}, bytes_in, bytes_out
 *                              (client side), upstream_bytes_in,
 *                              upstream_bytes_out, latency_ms{},
 *                              upstream_ttfb_ms{}, rps, counters{}
 *   retired           object   what exited workers counted: requests,
 *                              connections_accepted, counters{} (gauges 0);
 *                              totals = the sum of workers[] and retired
 *   workers           array    as in "workers" below
 *
 * workers (cr_report_workers_json): instance, generation, window_seconds,
 *   workers[]: one object per slot in use, by slot number:
 *     id, slot, pid, generation (ints), current (bool: generation now
 *     serving), state ("starting", "running", "draining", "exited"),
 *     start_time, uptime_seconds, heartbeat_age_ms (number, or null if
 *     unknown), requests, requests_active, connections_accepted,
 *     connections_active, responses{}, errors{}, bytes_in, bytes_out,
 *     rps, latency_ms{}, upstream_ttfb_ms{}, counters{}
 *
 * routes (cr_report_routes_json): instance, window_seconds,
 *   routes[]: name, upstream ("" for respond/redirect routes), current
 *     (bool: in the config now serving), requests, requests_active,
 *     responses{}, bytes_in, bytes_out, rps, latency_ms{}, counters{}
 *
 * upstreams (cr_report_upstreams_json): instance, window_seconds,
 *   servers[]: upstream, address, weight, health ("up", "down",
 *     "unknown": no active check or none done yet), current, requests,
 *     requests_active, responses{}, bytes_in, bytes_out, connects,
 *     failures, timeouts, checks_ok, checks_failed, last_check_time (unix
 *     s, 0 = never), last_error, rps, ttfb_ms{}, counters{},
 *     check{}: passes, fails (consecutive), last_status (0 = none),
 *       duration_ms (of the last check), changed_time (unix s of the last
 *       up/down change, 0 = never),
 *     ejection{}: ejected (bool), remaining_ms, consecutive_failures,
 *       total (ejections so far), streak (ejections in a row, which
 *       doubles the next one), last_time (unix s, 0 = never),
 *       last_duration_ms (how long the last ejection lasts)
 *
 * ---- Prometheus text exposition (cr_report_prometheus), version 0.0.4 ----
 *
 * Every series carries instance="NAME".
 *   corral_info{generation}                          gauge 1
 *   corral_start_time_seconds                        gauge
 *   corral_workers_configured                        gauge
 *   corral_reloads_total{result="ok"|"failed"}       counter
 *   corral_<field>{worker="<id>",slot="<n>"}         every worker X-macro
 *       field; counters also with worker="retired",slot="retired";
 *       gauges only for live workers
 *   corral_worker_start_time_seconds{worker,slot}    gauge, live workers
 *   corral_request_duration_seconds{worker,slot}     histogram (+retired)
 *   corral_upstream_ttfb_seconds{worker,slot}        histogram (+retired)
 *   corral_route_<field>{route}                      summed over slots
 *   corral_route_request_duration_seconds{route}     histogram
 *   corral_upstream_server_<field>{upstream,server}  summed over slots
 *   corral_upstream_server_ttfb_seconds{upstream,server}  histogram
 *   corral_upstream_server_up{upstream,server}       1 up or unknown, 0 down
 *   corral_upstream_server_weight{upstream,server}   gauge
 *   corral_upstream_server_health_checks_total{upstream,server,result}
 *   corral_upstream_server_ejected{upstream,server}  1 while ejected by
 *       passive outlier detection, else 0
 *   corral_upstream_server_ejections_total{upstream,server}  counter
 * Histogram bounds are the segment's buckets: le = 2^i microseconds in
 * seconds (0.000001 .. 67.108864) and +Inf.
 */
#ifndef CR_REPORT_H
#define CR_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/*
 * A growable, always NUL-terminated buffer. Zero-initialised or
 * cr_report_buf_init()ed; data is malloc'd and owned by the buffer until
 * cr_report_buf_free(). After a failed allocation, <failed> stays set, the
 * contents stop growing, and the renderers return CR_ERR.
 */
struct cr_report_buf {
    char                        *data;
    size_t                       len;       /* bytes, NUL excluded */
    size_t                       cap;
    int                          failed;    /* an allocation failed */
};

void cr_report_buf_init(struct cr_report_buf *b);
void cr_report_buf_free(struct cr_report_buf *b);
void cr_report_buf_reset(struct cr_report_buf *b);     /* len = 0, memory kept */
int  cr_report_buf_add(struct cr_report_buf *b, const void *p, size_t n);
int  cr_report_buf_printf(struct cr_report_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The input of every function below. */
struct cr_report_in {
    const struct cr_shm_header  *cur;           /* snapshot */
    const struct cr_shm_header  *prev;          /* older snapshot, or NULL */
    double                       elapsed;       /* seconds from prev to cur */
    uint64_t                     now_ms;        /* unix ms when cur was taken */
    uint64_t                     now_mono_ms;   /* CLOCK_MONOTONIC ms, 0 = unknown */
};

/* Latency quantiles in milliseconds. */
struct cr_report_lat {
    double                       p50;
    double                       p90;
    double                       p99;
};

struct cr_report_worker {
    unsigned                     slot;
    const struct cr_shm_slot    *s;             /* inside cur */
    int                          live;          /* a process owns the slot */
    int                          current;       /* of the generation serving */
    uint64_t                     c[CR_SHM_NCOUNTERS];
    double                       uptime_s;
    double                       heartbeat_age_ms;  /* < 0: unknown */
    double                       rps;
    struct cr_report_lat         latency;
    struct cr_report_lat         ttfb;
};

struct cr_report_totals {
    uint64_t                     c[CR_SHM_NCOUNTERS];
    unsigned                     live;          /* live worker processes */
    double                       uptime_s;      /* of the master */
    double                       window_s;      /* 0: lifetime */
    double                       rps;
    struct cr_report_lat         latency;
    struct cr_report_lat         ttfb;
};

struct cr_report_route {
    unsigned                     row;
    const struct cr_shm_route   *r;             /* inside cur */
    uint64_t                     c[CR_SHM_NROUTE_COUNTERS];
    double                       rps;
    struct cr_report_lat         latency;
};

struct cr_report_server {
    unsigned                     row;
    const struct cr_shm_server  *sv;            /* inside cur */
    uint64_t                     c[CR_SHM_NSERVER_COUNTERS];
    double                       rps;
    struct cr_report_lat         ttfb;
    uint64_t                     ejected_for_ms;    /* left of an ejection, 0 = none
                                                     * (or now_mono_ms unknown) */
};

/* Slot <slot> of <in->cur>; CR_ERR if the slot is free. */
int  cr_report_worker(const struct cr_report_in *in, unsigned slot,
                      struct cr_report_worker *out);
void cr_report_totals(const struct cr_report_in *in, struct cr_report_totals *out);
/* Row <row> of the route / server table; CR_ERR if the row is unused. */
int  cr_report_route(const struct cr_report_in *in, unsigned row,
                     struct cr_report_route *out);
int  cr_report_server(const struct cr_report_in *in, unsigned row,
                      struct cr_report_server *out);

const char *cr_report_state_name(uint32_t state);      /* "running", ... */
const char *cr_report_health_name(uint32_t health);    /* "up", "down", "unknown" */

/*
 * Append one document (see the top of this file) to <b>, ending with a
 * newline. CR_OK, or CR_ERR if the buffer could not grow.
 */
int  cr_report_status_json(struct cr_report_buf *b, const struct cr_report_in *in);
int  cr_report_workers_json(struct cr_report_buf *b, const struct cr_report_in *in);
int  cr_report_routes_json(struct cr_report_buf *b, const struct cr_report_in *in);
int  cr_report_upstreams_json(struct cr_report_buf *b, const struct cr_report_in *in);
int  cr_report_prometheus(struct cr_report_buf *b, const struct cr_report_in *in);

/* The Content-Type of cr_report_prometheus()'s output. */
#define CR_REPORT_PROMETHEUS_TYPE   "text/plain; version=0.0.4; charset=utf-8"

#endif /* CR_REPORT_H */
