/*
 * balance.c - server selection algorithms (see balance.h).
 *
 * All of them take the usable flags and the load from the caller, which
 * reads them from shared memory: the health checker's verdict, the
 * workers' ejections and every worker's requests in flight. Nothing here
 * knows where those numbers come from.
 *
 * The hash ring is built once per pool per worker (at start and after a
 * reload) and is read-only afterwards. It is a sorted array searched with
 * a binary search: a few hundred points per server keep the spread of keys
 * within a few percent of the weights, and lookups cost about
 * log2(points) comparisons.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/common.h"
#include "balance.h"

int
cr_balance_round_robin(struct cr_balance_node *n, size_t count)
{
    int64_t total = 0;
    int     best = -1;
    size_t  i;

    for (i = 0; i < count; i++) {
        if (!n[i].usable) {
            continue;
        }
        n[i].current += n[i].weight;
        total += n[i].weight;
        if (best == -1 || n[i].current > n[best].current) {
            best = (int) i;
        }
    }
    if (best != -1) {
        n[best].current -= total;
    }
    return best;
}

/* Is <a> less loaded than <b> per unit of weight? (a.active/a.w < b.active/b.w) */
static int
lighter(const struct cr_balance_node *a, const struct cr_balance_node *b)
{
    return (unsigned __int128) a->active * b->weight < (unsigned __int128) b->active * a->weight;
}

int
cr_balance_least_conn(const struct cr_balance_node *n, size_t count, size_t start)
{
    int    best = -1;
    size_t i, k;

    for (i = 0; i < count; i++) {
        k = (start + i) % count;
        if (n[k].usable && (best == -1 || lighter(&n[k], &n[best]))) {
            best = (int) k;
        }
    }
    return best;
}

/* Index of the <nth> (0-based) usable node. */
static int
nth_usable(const struct cr_balance_node *n, size_t count, size_t nth)
{
    size_t i;

    for (i = 0; i < count; i++) {
        if (n[i].usable && nth-- == 0) {
            return (int) i;
        }
    }
    return -1;
}

int
cr_balance_p2c(const struct cr_balance_node *n, size_t count, uint64_t *rng)
{
    size_t usable = 0, a, b, i;
    int    x, y;

    for (i = 0; i < count; i++) {
        usable += n[i].usable != 0;
    }
    if (usable == 0) {
        return -1;
    }
    if (usable == 1) {
        return nth_usable(n, count, 0);
    }
    /* two distinct draws: the second skips over the first */
    a = (size_t) (cr_balance_rand(rng) % usable);
    b = (size_t) (cr_balance_rand(rng) % (usable - 1));
    if (b >= a) {
        b++;
    }
    x = nth_usable(n, count, a);
    y = nth_usable(n, count, b);
    return lighter(&n[y], &n[x]) ? y : x;
}

uint64_t
cr_balance_rand(uint64_t *state)
{
    uint64_t x = *state != 0 ? *state : 0x9e3779b97f4a7c15ULL;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

uint64_t
cr_balance_hash(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t             h = 14695981039346656037ULL;
    size_t               i;

    for (i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    /*
     * FNV-1a alone leaves the high bits of short, similar keys ("srv#1",
     * "srv#2") close together, which would cluster ring points; MurmurHash3's
     * finaliser spreads every input bit over the whole word.
     */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static int
point_cmp(const void *a, const void *b)
{
    const struct cr_balance_point *x = a;
    const struct cr_balance_point *y = b;

    if (x->hash != y->hash) {
        return x->hash < y->hash ? -1 : 1;
    }
    return x->node < y->node ? -1 : x->node > y->node;
}

int
cr_balance_ring_build(struct cr_balance_ring *r, const char *const *names,
                      const unsigned *weights, size_t count)
{
    uint64_t total = 0, per_weight = CR_BALANCE_VNODES;
    size_t   i, k, np = 0;
    char     buf[256];

    memset(r, 0, sizeof(*r));
    for (i = 0; i < count; i++) {
        total += weights[i];
    }
    if (total * per_weight > CR_BALANCE_RING_MAX) {
        per_weight = CR_BALANCE_RING_MAX / (total != 0 ? total : 1);
        per_weight = per_weight != 0 ? per_weight : 1;
    }
    r->points = calloc(total * per_weight + 1, sizeof(*r->points));
    if (r->points == NULL) {
        return CR_ERR;
    }
    for (i = 0; i < count; i++) {
        for (k = 0; k < weights[i] * per_weight; k++) {
            int len = snprintf(buf, sizeof(buf), "%s#%zu", names[i], k);

            r->points[np].hash = cr_balance_hash(buf, (size_t) len < sizeof(buf)
                                                      ? (size_t) len : sizeof(buf) - 1);
            r->points[np].node = (uint32_t) i;
            np++;
        }
    }
    qsort(r->points, np, sizeof(*r->points), point_cmp);
    r->npoints = np;
    r->nnodes = count;
    return CR_OK;
}

void
cr_balance_ring_free(struct cr_balance_ring *r)
{
    free(r->points);
    memset(r, 0, sizeof(*r));
}

int
cr_balance_ring_pick(const struct cr_balance_ring *r, uint64_t key,
                     const struct cr_balance_node *n)
{
    size_t lo = 0, hi = r->npoints, i;

    if (r->npoints == 0) {
        return -1;
    }
    while (lo < hi) {           /* first point with hash >= key */
        size_t mid = lo + (hi - lo) / 2;

        if (r->points[mid].hash < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (i = 0; i < r->npoints; i++) {
        const struct cr_balance_point *pt = &r->points[(lo + i) % r->npoints];

        if (n[pt->node].usable) {
            return (int) pt->node;
        }
    }
    return -1;
}
