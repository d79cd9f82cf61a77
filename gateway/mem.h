/*
 * mem.h - allocator settings and upkeep.
 *
 * With jemalloc (the default build), memory freed by finished requests is
 * kept for reuse for a second, then returned to the kernel. jemalloc only
 * does that work when it is called, and an idle worker calls nothing, so
 * the worker calls cr_mem_tick() once a second: after a burst, the
 * resident size of a worker holding only idle connections comes back down
 * to what those connections use.
 */
#ifndef CR_MEM_H
#define CR_MEM_H

void cr_mem_tick(void);

#endif /* CR_MEM_H */
