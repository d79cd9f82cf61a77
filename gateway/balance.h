/*
 * balance.h - server selection algorithms.
 *
 * Pure functions over arrays of struct cr_balance_node: no sockets, no
 * clock, no shared memory, so tests can drive them directly. The caller
 * (upstream.c) fills in which servers are usable and how loaded they are
 * before each pick; these functions only choose. The one allocation here is
 * a hash ring, owned by its struct cr_balance_ring until
 * cr_balance_ring_free().
 */
#ifndef CR_BALANCE_H
#define CR_BALANCE_H

#include <stddef.h>
#include <stdint.h>

/* Ring points per unit of weight, before the ring's size cap applies. */
#define CR_BALANCE_VNODES       160
#define CR_BALANCE_RING_MAX     (64 * 1024)     /* points in one ring */

/* What a balancer sees of one server. */
struct cr_balance_node {
    uint32_t    weight;     /* >= 1 */
    uint32_t    usable;     /* 1 if it may be picked now (caller, each pick) */
    uint64_t    active;     /* requests in flight (caller, each pick) */
    int64_t     current;    /* smooth WRR running weight, kept across picks */
};

/*
 * Smooth weighted round robin (nginx's): every usable node gains its
 * weight, the richest is chosen and pays the total. Over a cycle each node
 * is chosen weight times, interleaved rather than in bursts. Returns the
 * index chosen, or -1 if no node is usable.
 */
int cr_balance_round_robin(struct cr_balance_node *n, size_t count);

/*
 * Fewest requests in flight per unit of weight; ties go to the first
 * usable node from <start> on, so the caller can rotate them. -1 if none.
 */
int cr_balance_least_conn(const struct cr_balance_node *n, size_t count, size_t start);

/*
 * Power of two choices: two distinct usable nodes drawn at random with
 * <rng> (advanced), the less loaded per unit of weight wins. With one
 * usable node, that one. -1 if none.
 */
int cr_balance_p2c(const struct cr_balance_node *n, size_t count, uint64_t *rng);

/* xorshift64*: the next pseudo-random value of <state> (never 0). */
uint64_t cr_balance_rand(uint64_t *state);

/* A 64-bit hash of <len> bytes, well mixed in every bit (FNV-1a + fmix64). */
uint64_t cr_balance_hash(const void *p, size_t len);

struct cr_balance_point {
    uint64_t    hash;
    uint32_t    node;       /* index into the nodes */
    uint32_t    pad;
};

/*
 * A consistent hash ring: each node gets points (virtual nodes) placed by
 * the hash of its name, in proportion to its weight. A key belongs to the
 * first point at or after its hash, clockwise. Since points depend only on
 * the node's own name, adding or removing one node of N moves about 1/N of
 * the keys and leaves the others where they were.
 */
struct cr_balance_ring {
    struct cr_balance_point *points;    /* sorted by hash */
    size_t                   npoints;
    size_t                   nnodes;
};

/*
 * Build <r> for <count> nodes named <names> (stable identities, such as
 * "127.0.0.1:9001") with weights <weights>. Returns CR_OK, or CR_ERR out
 * of memory (<r> is then empty).
 */
int  cr_balance_ring_build(struct cr_balance_ring *r, const char *const *names,
                           const unsigned *weights, size_t count);
void cr_balance_ring_free(struct cr_balance_ring *r);

/*
 * The node owning <key>: the first usable node clockwise from the key's
 * place, so a key whose node is down moves to its neighbour and comes back
 * when the node does. -1 if no node is usable.
 */
int  cr_balance_ring_pick(const struct cr_balance_ring *r, uint64_t key,
                          const struct cr_balance_node *n);

#endif /* CR_BALANCE_H */
