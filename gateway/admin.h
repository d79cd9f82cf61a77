/*
 * admin.h - the admin listener process (GET /metrics, GET /status).
 *
 * Owns its event loop, its listening socket on conf->admin and two
 * snapshot buffers of the stats segment. Forked and supervised by the
 * master; it only reads the segment.
 */
#ifndef CR_ADMIN_H
#define CR_ADMIN_H

struct cr_conf;
struct cr_shm_header;

/* Serve until SIGTERM. Returns a CR_EXIT_* code. */
int cr_admin_run(const struct cr_conf *conf, const struct cr_shm_header *hdr);

#endif /* CR_ADMIN_H */
