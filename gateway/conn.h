/*
 * conn.h - client (downstream) connections.
 *
 * Owns struct cr_conn, its socket, its request state and timers. The
 * listener hands an accepted fd to cr_conn_accept(); only the conn module
 * frees a conn. The upstream side of a request lives in proxy.c.
 */
#ifndef CR_CONN_H
#define CR_CONN_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "accesslog.h"
#include "http.h"
#include "io.h"
#include "timer.h"

struct cr_worker;
struct cr_proxy;

/* Where a client connection is in its request/response cycle. */
enum cr_conn_state {
    CR_CONN_S_IDLE = 0,     /* waiting for the first byte of a request */
    CR_CONN_S_HEAD,         /* reading a request head (header timeout runs) */
    CR_CONN_S_UPSTREAM,     /* head parsed; proxy is getting an upstream */
    CR_CONN_S_BODY,         /* streaming the request body upstream */
    CR_CONN_S_REQ_DONE,     /* request read; waiting for the response end */
    CR_CONN_S_TUNNEL,       /* after a 101: bytes relayed both ways */
    CR_CONN_S_CLOSING       /* last bytes flushing, then close */
};

#define CR_CONN_F_CLOSE         0x0001u /* close once this response is out */
#define CR_CONN_F_READ_PAUSED   0x0002u /* upstream full: not reading body */
#define CR_CONN_F_LINGER        0x0004u /* write side shut; draining input */
#define CR_CONN_F_DEAD          0x0008u /* closed inside pump; free on exit */
#define CR_CONN_F_IN_PUMP       0x0010u /* cr_conn_pump() is on the stack */
#define CR_CONN_F_PUMP_AGAIN    0x0020u /* pump requested while in pump */
#define CR_CONN_F_PEER_EOF      0x0040u /* client half-closed */
#define CR_CONN_F_IN_REQ        0x0100u /* a request head was counted */
#define CR_CONN_F_NODELAY       0x0200u /* TCP_NODELAY is set */
#define CR_CONN_F_EOF_PASSED    0x0400u /* tunnel: half-close passed on */
#define CR_CONN_F_OUT_PAUSED    0x0080u /* our output is full: not reading
                                         * the next request yet */

enum cr_conn_timer {
    CR_CONN_T_NONE = 0,
    CR_CONN_T_IDLE,         /* idle_timeout: close quietly */
    CR_CONN_T_HEAD,         /* header_timeout: 408 */
    CR_CONN_T_LINGER,       /* lingering close gave up */
    CR_CONN_T_GRACE,        /* drain: a first request that never came */
    CR_CONN_T_COUNT
};

/*
 * The state of the request being read or answered. Made when its first
 * byte arrives and freed when the connection goes idle with nothing
 * buffered, so that an idle keep-alive connection is only struct cr_conn.
 */
struct cr_req {
    struct cr_http_parser    p;         /* the client's request */
    struct cr_http_limits    limits;

    /* as routed (spans into p's arena) */
    const char              *host;      /* NULL if none */
    size_t                   hostlen;
    int                      host_from_target;  /* absolute-form authority */
    const char              *path;      /* normalised "/..." or "*" */
    size_t                   pathlen;
    char                    *npath;     /* buffer of the normalised path */
    size_t                   npath_cap;
    const char              *query;     /* "?..." or "" */
    size_t                   querylen;
    char                     peer[INET6_ADDRSTRLEN];    /* client address */

    /* accounting (stats.c) */
    uint64_t                 start_us;
    int                      resp_status;   /* final status sent, 0 = none */
    int                      route_row;     /* shm route row, -1 = none */
    struct cr_access_req     alog;          /* access log fields, request id */
};

/*
 * What an idle keep-alive connection costs, with its socket's struct
 * event in io: 320 bytes on LP64, one jemalloc size class (conn.c checks
 * it). Hence the narrow fields.
 */
struct cr_conn {
    TAILQ_ENTRY(cr_conn)     link;      /* in w->conns */
    struct cr_worker        *w;
    struct cr_io             io;
    struct cr_timer          timer;     /* on one of w's conn timer lists */
    uint8_t                  timer_kind;    /* enum cr_conn_timer */
    uint8_t                  state;     /* enum cr_conn_state */
    uint16_t                 flags;     /* CR_CONN_F_* */
    unsigned                 nreqs;     /* requests seen on this conn */
    uint64_t                 id;
    struct cr_req           *rq;        /* NULL while idle */
    struct cr_proxy         *proxy;     /* upstream exchange in progress */
    union {
        struct sockaddr      sa;
        struct sockaddr_in   sin;
        struct sockaddr_in6  sin6;
    }                        peer;
};

/* Set up and tear down <w>'s connection timers (after w->base exists). */
void cr_conn_worker_init(struct cr_worker *w);
void cr_conn_worker_fini(struct cr_worker *w);

/* The client's address as text ("-" between requests). */
const char *cr_conn_peer(const struct cr_conn *c);

/* A response head with <status> was queued to the client: count it. */
void cr_conn_count_response(struct cr_conn *c, int status, int ours);

/* Bytes queued to the client for the current request. */
void cr_conn_count_out(struct cr_conn *c, size_t n);

/*
 * Take ownership of accepted socket <fd> from <sa>: make it a connection of
 * <w>. On failure the fd is closed and the failure counted; never aborts.
 */
void cr_conn_accept(struct cr_worker *w, int fd, const struct sockaddr *sa,
                    socklen_t salen);

/*
 * Graceful stop: close idle connections now; the others close after the
 * response in progress (with "Connection: close").
 */
void cr_conn_drain_all(struct cr_worker *w);

/* Fast stop: close every connection now. */
void cr_conn_close_all(struct cr_worker *w);

/*
 * Parse what the client has sent, as far as the state allows: heads are
 * routed, body bytes go to the proxy. Safe to call from any callback; a
 * call made while pumping is folded into the running one. May close <c>.
 */
void cr_conn_pump(struct cr_conn *c);

/*
 * The proxy is done with the request (it freed itself and cleared
 * c->proxy): go on with the next request or close, as flags say.
 * <close> asks for the connection to be closed after the response.
 */
void cr_conn_response_done(struct cr_conn *c, int close);

/*
 * Answer the current request with an error <status> made by corral, unless
 * a response head already went out, in which case the connection is cut.
 * Any proxy exchange must already be gone.
 */
void cr_conn_error(struct cr_conn *c, int status, const char *why);

/* Close now (deferred to the end of the pump if one is running). */
void cr_conn_close(struct cr_conn *c, const char *why);

/*
 * The proxy has an upstream ready: let the request body flow (body timeout
 * armed). May close <c>.
 */
void cr_conn_body_start(struct cr_conn *c);

/*
 * The proxy queued a 101: the request is over and the connection is now a
 * tunnel; input goes to cr_proxy_tunnel_up(). May free the proxy.
 */
void cr_conn_tunnel_start(struct cr_conn *c);

/* The tunnel's upstream side is gone: flush what is queued and close. */
void cr_conn_tunnel_end(struct cr_conn *c);

/* Is the client's output over the high watermark (stop feeding it)? */
int cr_conn_output_full(const struct cr_conn *c);

#endif /* CR_CONN_H */
