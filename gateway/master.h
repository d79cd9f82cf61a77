/*
 * master.h - the supervising master process.
 *
 * Owns the current config, the table of worker pids and generations, and the
 * process signal mask. It never holds a listening socket of the listen
 * addresses and never touches client traffic.
 */
#ifndef CR_MASTER_H
#define CR_MASTER_H

struct cr_conf;

/*
 * Run the master on <conf> (loaded from <path>; ownership passes to the
 * master) until stopped. Returns the process exit status.
 */
int cr_master_run(const char *path, struct cr_conf *conf);

#endif /* CR_MASTER_H */
