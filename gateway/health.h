/*
 * health.h - active health checks of upstream servers.
 *
 * One process per instance, forked and supervised by the master (like the
 * admin listener), runs every configured check and writes the verdicts
 * into the servers' rows of the stats segment, where every worker reads
 * them on each pick. Owns its sockets and its table of checks; writes only
 * the active-check fields of struct cr_shm_server.
 */
#ifndef CR_HEALTH_H
#define CR_HEALTH_H

#include <stddef.h>

struct cr_conf;
struct cr_shm_header;
struct cr_shm_server;

/* Does any upstream of <conf> have a "health:" section? */
int cr_health_wanted(const struct cr_conf *conf);

/*
 * Forget the active-check verdicts of the servers of <conf>'s upstreams
 * that have no "health:" section (after a reload removed it), so no worker
 * keeps skipping a server on an old verdict.
 */
void cr_health_reset(const struct cr_conf *conf, struct cr_shm_header *hdr);

/* Check until SIGTERM. Returns a CR_EXIT_* code. */
int cr_health_run(const struct cr_conf *conf, struct cr_shm_header *hdr);

/*
 * The status code of an HTTP/1.x status line at the start of <buf> (<len>
 * bytes, which hold at least the line's CRLF), or -1 if it is not one.
 */
int cr_health_parse_status(const char *buf, size_t len);

/*
 * Record one check result in <row>: <status> in [<lo>, <hi>] passes (any
 * other status, or <status> 0 with <error>, fails). The server goes down
 * after <fails> consecutive failures and up after <passes> consecutive
 * passes; a server never checked before goes up on its first pass. Returns
 * 1 if its health changed, else 0.
 */
int cr_health_record(struct cr_shm_server *row, int status, const char *error,
                     unsigned lo, unsigned hi, unsigned fails, unsigned passes,
                     unsigned took_us);

#endif /* CR_HEALTH_H */
