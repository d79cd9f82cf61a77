/*
 * listener.h - the worker's own listening sockets.
 *
 * Owns one socket per listen address, created, bound and listened on by the
 * worker itself after fork with SO_REUSEPORT, and the read event on it.
 * Accepted fds are handed to cr_conn_accept().
 */
#ifndef CR_LISTENER_H
#define CR_LISTENER_H

#include <stddef.h>

struct cr_worker;
struct cr_conf_listen;
struct cr_listener;

/* Open, bind and listen on <l> for <w>; on failure fill <err> and return NULL. */
struct cr_listener *cr_listener_open(struct cr_worker *w,
                                     const struct cr_conf_listen *l,
                                     char *err, size_t errlen);

/* Stop accepting while <w> has too many connections; resume later. */
void cr_listener_pause(struct cr_listener *l);
void cr_listener_resume(struct cr_listener *l);

/*
 * Before closing on a graceful stop: accept what the kernel has already
 * queued on <l> and hand it to cr_conn_accept(), so those clients are served
 * instead of reset when the socket closes. Bounded; never blocks.
 */
void cr_listener_accept_pending(struct cr_listener *l);

/* The listening socket (for reuseport steering). */
int cr_listener_fd(struct cr_listener *l);

/* Close the socket and free <l>. */
void cr_listener_close(struct cr_listener *l);

#endif /* CR_LISTENER_H */
