/*
 * common.h - definitions every layer of corral shares: return codes,
 * worker exit codes and the source position of a config value.
 *
 * Owns nothing; types and constants only.
 */
#ifndef CR_COMMON_H
#define CR_COMMON_H

enum {
    CR_OK    =  0,
    CR_ERR   = -1,
    CR_AGAIN = -2
};

/*
 * Exit codes of a worker process. cr_worker_run() returns one of these and
 * the master logs it before deciding whether to respawn.
 */
enum {
    CR_EXIT_OK       = 0,   /* drained and stopped on request */
    CR_EXIT_SETUP    = 2,   /* could not bind/listen or build the loop */
    CR_EXIT_LIBEVENT = 3,   /* libevent reported an internal fatal error */
    CR_EXIT_OOM      = 4    /* allocation failed outside a request */
};

/* A position in a config file, 1-based as compilers print them. */
struct cr_mark {
    unsigned line;
    unsigned col;
};

#define CR_NELEM(a) (sizeof(a) / sizeof((a)[0]))

#endif /* CR_COMMON_H */
