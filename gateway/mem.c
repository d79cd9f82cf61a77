/*
 * mem.c - allocator settings and upkeep; see mem.h.
 */
#include "mem.h"

#ifdef CR_JEMALLOC
#include <stddef.h>

#include <jemalloc/jemalloc.h>

#define CR_STR2(x) #x
#define CR_STR(x) CR_STR2(x)

/*
 * Read by jemalloc at start-up (MALLOC_CONF in the environment still
 * wins). Dirty pages go back after 1 s instead of 10 s; muzzy pages (freed
 * with MADV_FREE, still counted in RSS until the kernel wants them) are
 * skipped, so what is returned leaves RSS at once.
 */
const char *malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0";

void
cr_mem_tick(void)
{
    mallctl("arena." CR_STR(MALLCTL_ARENAS_ALL) ".decay", NULL, NULL, NULL, 0);
}

#else

void
cr_mem_tick(void)
{
}

#endif
