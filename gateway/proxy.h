/*
 * proxy.h - glue between a client request and an upstream server.
 *
 * Owns the per-request upstream exchange: picking a server, the upstream
 * connection while a request uses it, streaming bodies both ways with
 * watermark backpressure, retries, and the error responses 502/503/504.
 * Idle upstream connections belong to the pools (upstream.c).
 */
#ifndef CR_PROXY_H
#define CR_PROXY_H

#include <stddef.h>

struct cr_worker;
struct cr_conn;
struct cr_proxy;
struct cr_conf_route;

/* Watermarks of every buffer between a client and an upstream. */
#define CR_PROXY_HIGH_WATER     (256 * 1024)
#define CR_PROXY_LOW_WATER      (64 * 1024)
#define CR_PROXY_READ_MAX       (64 * 1024)     /* bytes read ahead per socket */

/* Build the worker's upstream pools from its conf. CR_OK or CR_ERR + <err>. */
int  cr_proxy_worker_init(struct cr_worker *w, char *err, size_t errlen);

/* Close every idle upstream connection and free the pools. */
void cr_proxy_worker_fini(struct cr_worker *w);

/*
 * Proxy the request whose head <c> has just parsed (its parser is paused
 * after the head) to <route>'s upstream. From here the proxy drives: it
 * resumes the client once an upstream connection is ready, and ends with
 * cr_conn_response_done() or cr_conn_error(). May close <c> before it
 * returns; the caller must not touch <c> afterwards.
 */
void cr_proxy_start(struct cr_conn *c, const struct cr_conf_route *route);

/* A piece of the decoded request body: queue it upstream, re-framed. */
int  cr_proxy_req_body(struct cr_proxy *p, const char *at, size_t len);

/* The request message is complete. May finish the exchange (and so call
 * back into conn.c); the caller must not touch <p> afterwards. */
void cr_proxy_req_done(struct cr_proxy *p);

/* Is the upstream's output over the high watermark (stop reading body)? */
int  cr_proxy_req_full(const struct cr_proxy *p);

/* The client's output drained below the low watermark. */
void cr_proxy_client_drained(struct cr_proxy *p);

/* Has any byte of the response gone to the client? */
int  cr_proxy_resp_started(const struct cr_proxy *p);

/* The client went away or failed: drop the upstream side and free <p>. */
void cr_proxy_abort(struct cr_proxy *p, const char *why);

/*
 * A tunnel (after a 101): send what the client sent to the upstream.
 * Returns -1 when the upstream is full: stop reading the client until
 * cr_conn_pump() is called again.
 */
int cr_proxy_tunnel_up(struct cr_proxy *p);

/* A tunnel's client closed its side: pass the half-close on. */
void cr_proxy_tunnel_client_eof(struct cr_proxy *p);

#endif /* CR_PROXY_H */
