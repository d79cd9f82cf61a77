/*
 * shm.c - create, attach and read the stats segment.
 *
 * The segment is a POSIX shm object "/corral.<name>" (so /dev/shm/corral.<name>).
 * The master creates it with O_EXCL; if one exists, it is read: a segment
 * whose master pid is alive and is a corral is another instance and we
 * refuse, anything else (dead pid, garbage, other version) is stale and is
 * replaced. The header's "ready" flag is set last, with release order, so a
 * reader never acts on a half-written header.
 *
 * Readers validate everything before they trust an offset: magic, major
 * version, header size, total size against the file, and that every table
 * lies inside the mapping. A truncated or foreign file gives one line of
 * error, never a read out of bounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf/common.h"
#include "shm.h"

const char *const cr_shm_counter_names[CR_SHM_NCOUNTERS] = {
#define X(f, h) #f,
    CR_SHM_WORKER_COUNTERS(X)
#undef X
};
const char *const cr_shm_counter_help[CR_SHM_NCOUNTERS] = {
#define X(f, h) h,
    CR_SHM_WORKER_COUNTERS(X)
#undef X
};
const char *const cr_shm_route_counter_names[CR_SHM_NROUTE_COUNTERS] = {
#define X(f, h) #f,
    CR_SHM_ROUTE_COUNTERS(X)
#undef X
};
const char *const cr_shm_route_counter_help[CR_SHM_NROUTE_COUNTERS] = {
#define X(f, h) h,
    CR_SHM_ROUTE_COUNTERS(X)
#undef X
};
const char *const cr_shm_server_counter_names[CR_SHM_NSERVER_COUNTERS] = {
#define X(f, h) #f,
    CR_SHM_SERVER_COUNTERS(X)
#undef X
};
const char *const cr_shm_server_counter_help[CR_SHM_NSERVER_COUNTERS] = {
#define X(f, h) h,
    CR_SHM_SERVER_COUNTERS(X)
#undef X
};

static uint64_t
align_up(uint64_t v)
{
    return (v + CR_SHM_CACHELINE - 1) & ~(uint64_t)(CR_SHM_CACHELINE - 1);
}

static uint64_t
unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
cr_shm_pid_is_corral(pid_t pid)
{
    char path[64], comm[64];
    FILE *f;
    size_t n;

    if (pid <= 0 || (kill(pid, 0) == -1 && errno == ESRCH)) {
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    n = fread(comm, 1, sizeof(comm) - 1, f);
    fclose(f);
    comm[n] = '\0';
    comm[strcspn(comm, "\n")] = '\0';
    return strcmp(comm, "corral") == 0;
}

static void
make_path(struct cr_shm *shm, const char *name)
{
    snprintf(shm->path, sizeof(shm->path), "/corral.%s", name);
}

int
cr_shm_validate(const struct cr_shm_header *h, size_t size, char *err, size_t errlen)
{
    uint64_t slots_end;

    if (size < sizeof(*h)) {
        snprintf(err, errlen, "segment is truncated (%zu bytes)", size);
        return CR_ERR;
    }
    if (h->magic != CR_SHM_MAGIC) {
        snprintf(err, errlen, "not a corral stats segment (bad magic)");
        return CR_ERR;
    }
    if (h->major != CR_SHM_MAJOR) {
        snprintf(err, errlen, "segment layout version %u.%u, this corralctl reads %u.x",
                 h->major, h->minor, CR_SHM_MAJOR);
        return CR_ERR;
    }
    if (__atomic_load_n(&h->ready, __ATOMIC_ACQUIRE) != 1) {
        snprintf(err, errlen, "segment is not initialised yet");
        return CR_ERR;
    }
    if (h->header_size != sizeof(*h) || h->total_size != size) {
        snprintf(err, errlen, "segment size %zu does not match its header (%llu)",
                 size, (unsigned long long)h->total_size);
        return CR_ERR;
    }
    if (h->nslots == 0 || h->nslots > CR_SHM_MAX_SLOTS
        || h->slot_size < sizeof(struct cr_shm_slot)
        || h->slot_size % CR_SHM_CACHELINE != 0
        || h->routes_off < sizeof(*h)
        || h->routes_off + (uint64_t)h->routes_cap * sizeof(struct cr_shm_route) > size
        || h->servers_off + (uint64_t)h->servers_cap * sizeof(struct cr_shm_server) > size
        || h->slot_routes_off < sizeof(struct cr_shm_slot)
        || h->slot_routes_off + (uint64_t)h->routes_cap * sizeof(struct cr_shm_route_stats)
           > h->slot_servers_off
        || h->slot_servers_off
           + (uint64_t)h->servers_cap * sizeof(struct cr_shm_server_stats) > h->slot_size)
    {
        snprintf(err, errlen, "segment tables are inconsistent");
        return CR_ERR;
    }
    slots_end = h->slots_off + ((uint64_t)h->nslots + 1) * h->slot_size;
    if (h->retired_off != h->slots_off + (uint64_t)h->nslots * h->slot_size
        || slots_end > size)
    {
        snprintf(err, errlen, "segment slots lie outside the segment");
        return CR_ERR;
    }
    return CR_OK;
}

int
cr_shm_create(struct cr_shm *shm, const char *name, const struct cr_shm_sizes *sz,
              mode_t mode, char *err, size_t errlen)
{
    struct cr_shm_header *h;
    uint64_t slot_size, routes_off, servers_off, slots_off, total;
    uint64_t slot_routes_off, slot_servers_off;
    unsigned nslots;
    mode_t old_mask;
    int fd, tries;

    memset(shm, 0, sizeof(*shm));
    make_path(shm, name);
    nslots = sz->nslots ? sz->nslots : sz->workers * 4 + 4;
    if (nslots > CR_SHM_MAX_SLOTS) {
        nslots = CR_SHM_MAX_SLOTS;
    }

    slot_routes_off = align_up(sizeof(struct cr_shm_slot));
    slot_servers_off = align_up(slot_routes_off
                                + (uint64_t)sz->routes_cap * sizeof(struct cr_shm_route_stats));
    slot_size = align_up(slot_servers_off
                         + (uint64_t)sz->servers_cap * sizeof(struct cr_shm_server_stats));
    routes_off = align_up(sizeof(struct cr_shm_header));
    servers_off = align_up(routes_off + (uint64_t)sz->routes_cap * sizeof(struct cr_shm_route));
    slots_off = align_up(servers_off
                         + (uint64_t)sz->servers_cap * sizeof(struct cr_shm_server));
    total = slots_off + ((uint64_t)nslots + 1) * slot_size;

    for (tries = 0; ; tries++) {
        old_mask = umask(0);
        fd = shm_open(shm->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        umask(old_mask);
        if (fd != -1) {
            break;
        }
        if (errno != EEXIST || tries > 0) {
            snprintf(err, errlen, "shm_open %s: %s", shm->path, strerror(errno));
            return CR_ERR;
        }
        /* one exists: another live instance, or stale? */
        fd = shm_open(shm->path, O_RDONLY | O_CLOEXEC, 0);
        if (fd != -1) {
            struct stat st;
            int live = 0;

            if (fstat(fd, &st) == 0 && (size_t)st.st_size >= sizeof(*h)) {
                void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);

                if (m != MAP_FAILED) {
                    const struct cr_shm_header *old = m;

                    live = old->magic == CR_SHM_MAGIC
                           && old->master_pid != getpid()
                           && cr_shm_pid_is_corral(old->master_pid);
                    if (live) {
                        snprintf(err, errlen, "instance \"%s\" is already running "
                                 "(master pid %d); choose another name", name,
                                 (int)old->master_pid);
                    }
                    munmap(m, (size_t)st.st_size);
                }
            }
            close(fd);
            if (live) {
                return CR_ERR;
            }
        }
        shm_unlink(shm->path);      /* stale: replace it */
    }

    if (fchmod(fd, mode) == -1 || ftruncate(fd, (off_t)total) == -1) {
        snprintf(err, errlen, "sizing %s to %llu bytes: %s", shm->path,
                 (unsigned long long)total, strerror(errno));
        close(fd);
        shm_unlink(shm->path);
        return CR_ERR;
    }
    h = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (h == MAP_FAILED) {
        snprintf(err, errlen, "mmap %s: %s", shm->path, strerror(errno));
        shm_unlink(shm->path);
        return CR_ERR;
    }
    /* ftruncate gave us zeroes: every counter, slot state and table row */
    h->magic = CR_SHM_MAGIC;
    h->major = CR_SHM_MAJOR;
    h->minor = CR_SHM_MINOR;
    h->header_size = sizeof(*h);
    h->total_size = total;
    h->master_pid = getpid();
    h->start_ms = unix_ms();
    h->workers = sz->workers;
    h->nslots = nslots;
    h->slot_size = slot_size;
    h->slots_off = slots_off;
    h->retired_off = slots_off + (uint64_t)nslots * slot_size;
    h->routes_off = routes_off;
    h->routes_cap = sz->routes_cap;
    h->servers_off = servers_off;
    h->servers_cap = sz->servers_cap;
    h->slot_routes_off = slot_routes_off;
    h->slot_servers_off = slot_servers_off;
    snprintf(h->name, sizeof(h->name), "%s", name);
    __atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);

    shm->hdr = h;
    shm->size = total;
    shm->writable = 1;
    return CR_OK;
}

int
cr_shm_attach(struct cr_shm *shm, const char *name, char *err, size_t errlen)
{
    struct stat st;
    void *m;
    int fd;

    memset(shm, 0, sizeof(*shm));
    make_path(shm, name);
    fd = shm_open(shm->path, O_RDONLY | O_CLOEXEC, 0);
    if (fd == -1) {
        if (errno == ENOENT) {
            snprintf(err, errlen, "no corral instance \"%s\" (no /dev/shm%s): is it running?",
                     name, shm->path);
        } else {
            snprintf(err, errlen, "cannot open /dev/shm%s: %s", shm->path, strerror(errno));
        }
        return CR_ERR;
    }
    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "fstat /dev/shm%s: %s", shm->path, strerror(errno));
        close(fd);
        return CR_ERR;
    }
    if ((size_t)st.st_size < sizeof(struct cr_shm_header)) {
        snprintf(err, errlen, "/dev/shm%s is truncated (%lld bytes)", shm->path,
                 (long long)st.st_size);
        close(fd);
        return CR_ERR;
    }
    m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "mmap /dev/shm%s: %s", shm->path, strerror(errno));
        return CR_ERR;
    }
    if (cr_shm_validate(m, (size_t)st.st_size, err, errlen) != CR_OK) {
        munmap(m, (size_t)st.st_size);
        return CR_ERR;
    }
    shm->hdr = m;
    shm->size = (size_t)st.st_size;
    return CR_OK;
}

void
cr_shm_detach(struct cr_shm *shm)
{
    if (shm->hdr != NULL) {
        munmap(shm->hdr, shm->size);
        shm->hdr = NULL;
    }
}

void
cr_shm_unlink(struct cr_shm *shm)
{
    shm_unlink(shm->path);
}

int
cr_shm_slot_alloc(struct cr_shm_header *h, uint64_t generation, unsigned id)
{
    unsigned i;

    for (i = 0; i < h->nslots; i++) {
        struct cr_shm_slot *s = cr_shm_slot(h, i);

        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == CR_SHM_SLOT_FREE) {
            s->pid = 0;
            s->id = id;
            s->generation = generation;
            s->start_ms = unix_ms();
            s->heartbeat_ms = 0;
            __atomic_store_n(&s->state, CR_SHM_SLOT_STARTING, __ATOMIC_RELEASE);
            return (int)i;
        }
    }
    return -1;
}

static void
fold_hist(struct cr_shm_hist *to, struct cr_shm_hist *from)
{
    unsigned b;

    for (b = 0; b < CR_SHM_HIST_BUCKETS; b++) {
        cr_shm_add(&to->buckets[b], cr_shm_get(&from->buckets[b]));
    }
    cr_shm_add(&to->count, cr_shm_get(&from->count));
    cr_shm_add(&to->sum_us, cr_shm_get(&from->sum_us));
}

void
cr_shm_slot_retire(struct cr_shm_header *h, int i)
{
    struct cr_shm_slot *s = cr_shm_slot(h, (unsigned)i);
    struct cr_shm_slot *r = cr_shm_retired(h);
    unsigned c, row;
    size_t clear;

    __atomic_add_fetch(&h->fold_seq, 1, __ATOMIC_ACQ_REL);     /* odd: folding */
    for (c = 0; c < CR_SHM_NCOUNTERS; c++) {
        if (c == CR_SHM_C_connections_active || c == CR_SHM_C_requests_active) {
            continue;
        }
        cr_shm_add(&r->counters[c], cr_shm_get(&s->counters[c]));
    }
    fold_hist(&r->request_time, &s->request_time);
    fold_hist(&r->upstream_ttfb, &s->upstream_ttfb);
    for (row = 0; row < h->routes_cap; row++) {
        struct cr_shm_route_stats *from = cr_shm_slot_route(h, s, row);
        struct cr_shm_route_stats *to = cr_shm_slot_route(h, r, row);

        for (c = 0; c < CR_SHM_NROUTE_COUNTERS; c++) {
            if (c != CR_SHM_R_requests_active) {
                cr_shm_add(&to->counters[c], cr_shm_get(&from->counters[c]));
            }
        }
        fold_hist(&to->request_time, &from->request_time);
    }
    for (row = 0; row < h->servers_cap; row++) {
        struct cr_shm_server_stats *from = cr_shm_slot_server(h, s, row);
        struct cr_shm_server_stats *to = cr_shm_slot_server(h, r, row);

        for (c = 0; c < CR_SHM_NSERVER_COUNTERS; c++) {
            if (c != CR_SHM_S_requests_active) {
                cr_shm_add(&to->counters[c], cr_shm_get(&from->counters[c]));
            }
        }
        fold_hist(&to->ttfb, &from->ttfb);
    }
    /* the slot's process is gone: nobody else writes it now */
    clear = h->slot_size - offsetof(struct cr_shm_slot, counters);
    memset((char *)s + offsetof(struct cr_shm_slot, counters), 0, clear);
    s->pid = 0;
    s->generation = 0;
    s->heartbeat_ms = 0;
    __atomic_add_fetch(&h->fold_seq, 1, __ATOMIC_ACQ_REL);     /* even: done */
    __atomic_store_n(&s->state, CR_SHM_SLOT_FREE, __ATOMIC_RELEASE);
}

void
cr_shm_tables_begin(struct cr_shm_header *h)
{
    unsigned i;

    for (i = 0; i < h->routes_cap; i++) {
        cr_shm_route_at(h, i)->current = 0;
    }
    for (i = 0; i < h->servers_cap; i++) {
        cr_shm_server_at(h, i)->current = 0;
    }
}

int
cr_shm_route_row(struct cr_shm_header *h, const char *name, const char *upstream)
{
    unsigned i;

    for (i = 0; i < h->routes_cap; i++) {
        struct cr_shm_route *r = cr_shm_route_at(h, i);

        if (r->used && strcmp(r->name, name) == 0) {
            snprintf(r->upstream, sizeof(r->upstream), "%s", upstream ? upstream : "");
            r->current = 1;
            return (int)i;
        }
    }
    for (i = 0; i < h->routes_cap; i++) {
        struct cr_shm_route *r = cr_shm_route_at(h, i);

        if (!r->used) {
            snprintf(r->name, sizeof(r->name), "%s", name);
            snprintf(r->upstream, sizeof(r->upstream), "%s", upstream ? upstream : "");
            r->current = 1;
            __atomic_store_n(&r->used, 1, __ATOMIC_RELEASE);
            return (int)i;
        }
    }
    return -1;
}

int
cr_shm_server_row(struct cr_shm_header *h, const char *upstream, const char *address,
                  unsigned weight)
{
    unsigned i;

    for (i = 0; i < h->servers_cap; i++) {
        struct cr_shm_server *s = cr_shm_server_at(h, i);

        if (s->used && strcmp(s->upstream, upstream) == 0
            && strcmp(s->address, address) == 0)
        {
            s->weight = weight;
            s->current = 1;
            return (int)i;
        }
    }
    for (i = 0; i < h->servers_cap; i++) {
        struct cr_shm_server *s = cr_shm_server_at(h, i);

        if (!s->used) {
            snprintf(s->upstream, sizeof(s->upstream), "%s", upstream);
            snprintf(s->address, sizeof(s->address), "%s", address);
            s->weight = weight;
            s->current = 1;
            s->health = CR_SHM_HEALTH_UNKNOWN;
            __atomic_store_n(&s->used, 1, __ATOMIC_RELEASE);
            return (int)i;
        }
    }
    return -1;
}

int
cr_shm_snapshot(const struct cr_shm_header *h, void *out)
{
    int tries;

    for (tries = 0; tries < 1000; tries++) {
        uint64_t s1 = __atomic_load_n(&h->fold_seq, __ATOMIC_ACQUIRE);
        uint64_t s2;

        if (s1 & 1) {
            usleep(100);
            continue;
        }
        /* word-wise relaxed loads: no torn counters */
        {
            const uint64_t *src = (const uint64_t *)(const void *)h;
            uint64_t *dst = out;
            size_t n = h->total_size / 8, i;

            for (i = 0; i < n; i++) {
                dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
            }
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&h->fold_seq, __ATOMIC_RELAXED);
        if (s1 == s2) {
            return CR_OK;
        }
    }
    return CR_ERR;
}

uint64_t
cr_shm_hist_bound(unsigned i)
{
    if (i >= CR_SHM_HIST_BUCKETS - 1) {
        return 0;
    }
    return 1ULL << i;
}

double
cr_shm_hist_quantile(const struct cr_shm_hist *hist, double q)
{
    uint64_t total = 0, rank, seen = 0;
    unsigned i;

    for (i = 0; i < CR_SHM_HIST_BUCKETS; i++) {
        total += hist->buckets[i];
    }
    if (total == 0) {
        return 0;
    }
    rank = (uint64_t)(q * (double)total);
    if (rank >= total) {
        rank = total - 1;
    }
    for (i = 0; i < CR_SHM_HIST_BUCKETS; i++) {
        if (seen + hist->buckets[i] > rank) {
            /* interpolate inside the bucket (lo, hi] */
            double lo = i == 0 ? 0 : (double)(1ULL << (i - 1));
            double hi = i == CR_SHM_HIST_BUCKETS - 1 ? lo * 2 : (double)(1ULL << i);
            double frac = (double)(rank - seen + 1) / (double)hist->buckets[i];

            return lo + (hi - lo) * frac;
        }
        seen += hist->buckets[i];
    }
    return 0;
}
