/*
 * steer.h - steer new connections to the newest generation of workers.
 *
 * Owns, per worker generation, one reuseport socket array (a BPF map) and
 * one SK_REUSEPORT program per listen address. The master creates them
 * before it forks the generation; each worker puts its own listening socket
 * into the map at its id and attaches the program to the reuseport group.
 * From then on the kernel hands every new handshake to a socket of this
 * generation, so an older generation can drain its accept queue and close
 * without a connection landing in a queue that is about to be discarded.
 */
#ifndef CR_STEER_H
#define CR_STEER_H

#include <stddef.h>

/* How a reload avoids losing connections, best first. */
enum cr_steer_mode {
    CR_STEER_BPF = 0,       /* SK_REUSEPORT program + socket array */
    CR_STEER_MIGRATE,       /* net.ipv4.tcp_migrate_req = 1: the kernel moves
                             * a closing listener's queue to another */
    CR_STEER_DRAIN          /* old workers accept what is queued, then close:
                             * handshakes racing the close can be reset */
};

struct cr_steer {
    enum cr_steer_mode   mode;
    size_t               n;         /* listen addresses */
    unsigned             nworkers;
    int                 *map_fd;    /* per listen address; -1 if none */
    int                 *prog_fd;
};

/*
 * Prepare steering for a generation of <nworkers> workers on <nlisten>
 * addresses. Falls back to the next mode when BPF is refused (no
 * privilege, no kernel support) and says why in <why>. Never fails: the
 * last mode needs nothing.
 */
void cr_steer_create(struct cr_steer *s, size_t nlisten, unsigned nworkers,
                     char *why, size_t whylen);

/* Release the generation's maps and programs (the kernel keeps what is
 * still attached). */
void cr_steer_free(struct cr_steer *s);

/*
 * Worker side: register listening socket <fd> of listen address <i> as
 * worker <id>, and make the generation's program the group's. CR_OK, or
 * CR_ERR with <err> (the worker then serves unsteered).
 */
int  cr_steer_join(const struct cr_steer *s, size_t i, unsigned id, int fd,
                   char *err, size_t errlen);

const char *cr_steer_mode_name(enum cr_steer_mode mode);

#endif /* CR_STEER_H */
