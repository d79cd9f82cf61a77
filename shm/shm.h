/*
 * shm.h - create, attach and read the stats segment (shm/layout.h).
 *
 * Owns struct cr_shm, one mapping of one instance's segment: the master
 * creates it read-write before its first fork (workers inherit the mapping),
 * corralctl and the admin listener attach it read-only. Nothing here
 * allocates on the request path: workers only touch their own slot through
 * the inline accessors below.
 */
#ifndef CR_SHM_H
#define CR_SHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"

struct cr_shm {
    struct cr_shm_header    *hdr;
    size_t                   size;
    int                      writable;
    char                     path[CR_SHM_NAME_MAX + 16];   /* "/corral.<name>" */
};

/* Sizes of a segment to create. */
struct cr_shm_sizes {
    unsigned                 workers;       /* per generation */
    unsigned                 nslots;        /* 0: derived from workers */
    unsigned                 routes_cap;
    unsigned                 servers_cap;
};

/*
 * Create (or replace a stale) segment for instance <name> with <mode>.
 * A segment whose master is still alive is not replaced: that is another
 * running instance of the same name. Returns CR_OK or CR_ERR with <err>.
 */
int  cr_shm_create(struct cr_shm *shm, const char *name, const struct cr_shm_sizes *sz,
                   mode_t mode, char *err, size_t errlen);

/*
 * Map instance <name>'s segment read-only and validate it (magic, major
 * version, sizes and offsets within the file). Returns CR_OK or CR_ERR with
 * a one-line reason in <err>.
 */
int  cr_shm_attach(struct cr_shm *shm, const char *name, char *err, size_t errlen);

/* Validate a mapped buffer of <size> bytes as a segment; CR_OK or CR_ERR. */
int  cr_shm_validate(const struct cr_shm_header *h, size_t size, char *err, size_t errlen);

void cr_shm_detach(struct cr_shm *shm);

/* Remove the segment's name (clean exit of the master). */
void cr_shm_unlink(struct cr_shm *shm);

/* Is <pid> alive and running a program called "corral"? */
int  cr_shm_pid_is_corral(pid_t pid);

/* ---- master side ---- */

/* Find a free slot, mark it STARTING for <generation>. -1 if none. */
int  cr_shm_slot_alloc(struct cr_shm_header *h, uint64_t generation, unsigned id);

/*
 * Add slot <i>'s counters to the retired slot and free it, inside the
 * fold_seq seqlock so readers never count it twice or not at all. Gauges
 * (connections_active, requests_active) are dropped: their process is gone.
 */
void cr_shm_slot_retire(struct cr_shm_header *h, int i);

/* The table row for a route / server, found by name or assigned. -1 if full. */
int  cr_shm_route_row(struct cr_shm_header *h, const char *name, const char *upstream);
int  cr_shm_server_row(struct cr_shm_header *h, const char *upstream,
                       const char *address, unsigned weight);

/* Clear the "current" mark of every row (before a new config marks its own). */
void cr_shm_tables_begin(struct cr_shm_header *h);

/* ---- readers ---- */

/*
 * A consistent copy of the segment, for readers: retries while the master
 * is folding a slot. <out> must hold h->total_size bytes. CR_OK or CR_ERR
 * (the master kept folding; try later).
 */
int  cr_shm_snapshot(const struct cr_shm_header *h, void *out);

/* Quantile <q> (0..1) of a histogram in microseconds; 0 when empty. */
double cr_shm_hist_quantile(const struct cr_shm_hist *hist, double q);

/* Upper bound of bucket <i> in microseconds (the last is open: returns 0). */
uint64_t cr_shm_hist_bound(unsigned i);

/* Name of a counter, route counter, server counter; help texts. */
extern const char *const cr_shm_counter_names[CR_SHM_NCOUNTERS];
extern const char *const cr_shm_counter_help[CR_SHM_NCOUNTERS];
extern const char *const cr_shm_route_counter_names[CR_SHM_NROUTE_COUNTERS];
extern const char *const cr_shm_route_counter_help[CR_SHM_NROUTE_COUNTERS];
extern const char *const cr_shm_server_counter_names[CR_SHM_NSERVER_COUNTERS];
extern const char *const cr_shm_server_counter_help[CR_SHM_NSERVER_COUNTERS];

/* ---- accessors ---- */

static inline struct cr_shm_slot *
cr_shm_slot(const struct cr_shm_header *h, unsigned i)
{
    return (struct cr_shm_slot *)((char *)h + h->slots_off + (uint64_t)i * h->slot_size);
}

static inline struct cr_shm_slot *
cr_shm_retired(const struct cr_shm_header *h)
{
    return (struct cr_shm_slot *)((char *)h + h->retired_off);
}

static inline struct cr_shm_route_stats *
cr_shm_slot_route(const struct cr_shm_header *h, struct cr_shm_slot *s, unsigned row)
{
    return (struct cr_shm_route_stats *)((char *)s + h->slot_routes_off) + row;
}

static inline struct cr_shm_server_stats *
cr_shm_slot_server(const struct cr_shm_header *h, struct cr_shm_slot *s, unsigned row)
{
    return (struct cr_shm_server_stats *)((char *)s + h->slot_servers_off) + row;
}

static inline struct cr_shm_route *
cr_shm_route_at(const struct cr_shm_header *h, unsigned row)
{
    return (struct cr_shm_route *)((char *)h + h->routes_off) + row;
}

static inline struct cr_shm_server *
cr_shm_server_at(const struct cr_shm_header *h, unsigned row)
{
    return (struct cr_shm_server *)((char *)h + h->servers_off) + row;
}

#ifdef CR_NO_STATS
/*
 * Benchmark builds (make EXTRA_CFLAGS=-DCR_NO_STATS) that measure what
 * counting costs: every counter write is compiled out.
 */
static inline void
cr_shm_add(uint64_t *p, uint64_t v)
{
    (void)p;
    (void)v;
}

static inline void
cr_shm_sub(uint64_t *p, uint64_t v)
{
    (void)p;
    (void)v;
}
#else
/* One writer per slot: a relaxed load and store is enough and costs no lock. */
static inline void
cr_shm_add(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline void
cr_shm_sub(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) - v, __ATOMIC_RELAXED);
}
#endif

static inline void
cr_shm_set(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline uint64_t
cr_shm_get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Bucket of a duration in microseconds. */
static inline unsigned
cr_shm_hist_bucket(uint64_t us)
{
    unsigned b;

    if (us <= 1) {
        return 0;
    }
    b = 64 - (unsigned)__builtin_clzll(us - 1);     /* ceil(log2(us)) */
    return b < CR_SHM_HIST_BUCKETS ? b : CR_SHM_HIST_BUCKETS - 1;
}

static inline void
cr_shm_hist_add(struct cr_shm_hist *hist, uint64_t us)
{
    cr_shm_add(&hist->buckets[cr_shm_hist_bucket(us)], 1);
    cr_shm_add(&hist->count, 1);
    cr_shm_add(&hist->sum_us, us);
}

#endif /* CR_SHM_H */
