/*
 * accesslog.h - one line per request, buffered per worker.
 *
 * Owns the worker's access log: its fd, its buffer and its flush timer
 * (all process-wide, one set per worker, created after fork). The conn
 * module keeps a struct cr_access_req per request and hands a filled
 * struct cr_access_entry to cr_access_log_request() when the request ends;
 * nothing here reads a connection. The master only calls
 * cr_access_log_prepare(), which creates the file with the owner workers
 * need.
 */
#ifndef CR_ACCESSLOG_H
#define CR_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cr_conf;
struct cr_buf;
struct cr_http_parser;

#define CR_ACCESS_ID_MAX    64      /* request id bytes kept (and logged) */

/* What the conn module records about its current request. */
struct cr_access_req {
    char         id[CR_ACCESS_ID_MAX + 1];  /* X-Request-Id, NUL-terminated */
    int          id_generated;  /* the client sent none: we add ours upstream */
    const char  *route;         /* route name (conf-owned), NULL = none */
    const char  *upstream;      /* last server tried (conf-owned), NULL = none */
    uint64_t     upstream_start_us; /* first try began (cr_stats_now_us) */
    uint64_t     upstream_end_us;   /* response from it ended; 0 = not yet */
    uint64_t     bytes;         /* bytes queued to the client */
};

/* The fields of one line. */
struct cr_access_entry {
    const char                  *client;    /* peer address */
    const struct cr_http_parser *hp;        /* method, target, version, headers */
    int                          status;    /* 499: no response was sent */
    uint64_t                     total_us;  /* head parsed to request end */
    const struct cr_access_req  *req;
};

/*
 * Master side: make sure <conf>'s log file exists and belongs to the
 * configured user and group (mode 0640), so unprivileged workers can open
 * it, also after a rotation. Returns CR_OK, or CR_ERR with <err> filled.
 */
int  cr_access_log_prepare(const struct cr_conf *conf, char *err, size_t errlen);

/*
 * Worker side: open <conf>'s log (nothing to do if it has none) and flush
 * it from <base> every flush interval. Returns CR_OK, or CR_ERR with <err>
 * filled. cr_access_log_reopen() flushes and opens the path again (SIGUSR1);
 * cr_access_log_close() flushes and closes.
 */
int  cr_access_log_open(const struct cr_conf *conf, struct event_base *base,
                        char *err, size_t errlen);
void cr_access_log_reopen(void);
void cr_access_log_close(void);

/* Write the line for one finished request (buffered). */
void cr_access_log_request(const struct cr_access_entry *e);

/*
 * A request head was parsed: reset <r> and take the client's X-Request-Id
 * from <hp>, or make a new one (unique per worker, 32 hex digits).
 */
void cr_access_req_begin(struct cr_access_req *r, const struct cr_http_parser *hp);

/* The request goes to upstream server <addr> (called on every try). */
void cr_access_req_upstream(struct cr_access_req *r, const char *addr);

/* The upstream's response is complete. */
void cr_access_req_upstream_done(struct cr_access_req *r);

/* Append "X-Request-Id: ...\r\n" to an upstream head if we made the id. */
void cr_access_req_add_header(const struct cr_access_req *r, struct cr_buf *b);

#endif /* CR_ACCESSLOG_H */
