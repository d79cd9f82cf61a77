/*
 * conf.h - the configuration tree of one corral instance.
 *
 * cr_conf_load() turns a YAML file into an immutable struct cr_conf; every
 * string and array in the tree is owned by the tree and released by
 * cr_conf_free(). Nothing here touches sockets or libevent: the master loads
 * and checks a file, then workers read the tree they inherited by fork().
 *
 * Every value keeps the mark (line, column) it came from, so checks made
 * after parsing (unknown upstream, duplicate names) still point into the
 * file. Errors are collected, never printed: the caller decides where they
 * go (stderr for `corral -t`, the log on reload).
 */
#ifndef CR_CONF_H
#define CR_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <regex.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common.h"

/* Defaults, also documented in conf/corral.yaml. */
#define CR_CONF_DEFAULT_NAME             "default"
#define CR_CONF_DEFAULT_BACKLOG          4096
#define CR_CONF_DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define CR_CONF_DEFAULT_MAX_HEADERS      100
#define CR_CONF_DEFAULT_MAX_URI_BYTES    (8 * 1024)
#define CR_CONF_DEFAULT_MAX_BODY_BYTES   (100ULL * 1024 * 1024)
#define CR_CONF_DEFAULT_MAX_CONNECTIONS  10000
#define CR_CONF_DEFAULT_HEADER_TIMEOUT   10000      /* ms */
#define CR_CONF_DEFAULT_IDLE_TIMEOUT     60000      /* ms */
#define CR_CONF_DEFAULT_SEND_TIMEOUT     60000      /* ms */
#define CR_CONF_DEFAULT_BODY_TIMEOUT     60000      /* ms */
#define CR_CONF_DEFAULT_DRAIN_TIMEOUT    30000      /* ms */
#define CR_CONF_DEFAULT_KEEPALIVE        32
#define CR_CONF_DEFAULT_CONNECT_TIMEOUT  5000       /* ms */
#define CR_CONF_DEFAULT_READ_TIMEOUT     60000      /* ms */
#define CR_CONF_DEFAULT_RETRIES          1
#define CR_CONF_DEFAULT_FAIL_TIMEOUT     10000      /* ms */
#define CR_CONF_DEFAULT_MAX_FAILS        1
#define CR_CONF_DEFAULT_MAX_EJECTION     300000     /* ms */
#define CR_CONF_DEFAULT_HEALTH_INTERVAL  5000       /* ms */
#define CR_CONF_DEFAULT_HEALTH_TIMEOUT   2000       /* ms */
#define CR_CONF_DEFAULT_HEALTH_FAILS     3
#define CR_CONF_DEFAULT_HEALTH_PASSES    2
#define CR_CONF_DEFAULT_RETRY_PERCENT    20
#define CR_CONF_DEFAULT_RETRY_MIN_RATE   3          /* retries per second */
#define CR_CONF_DEFAULT_QUEUE_TIMEOUT    1000       /* ms */
#define CR_CONF_DEFAULT_STATS_MODE       0640
#define CR_CONF_DEFAULT_LOG_BUFFER       (64 * 1024)
#define CR_CONF_DEFAULT_LOG_FLUSH        1000       /* ms */

/* A socket address as written ("127.0.0.1:8080", "[::1]:8080"). */
struct cr_conf_addr {
    char                    *text;      /* as written, for logs */
    struct sockaddr_storage  ss;
    socklen_t                len;
};

struct cr_conf_listen {
    struct cr_conf_addr      addr;
    int                      backlog;   /* listen(2) backlog */
    struct cr_mark           mark;
};

struct cr_conf_limits {
    uint64_t    max_header_bytes;   /* request line + headers; 431 past it */
    unsigned    max_headers;        /* header count; 431 past it */
    uint64_t    max_uri_bytes;      /* request target; 414 past it */
    uint64_t    max_body_bytes;     /* request body; 413 past it; 0 = none */
    unsigned    max_connections;    /* client connections per worker */
    uint64_t    header_timeout_ms;  /* first byte to end of head; 408 */
    uint64_t    idle_timeout_ms;    /* keep-alive wait between requests */
    uint64_t    send_timeout_ms;    /* client not reading our response */
    uint64_t    body_timeout_ms;    /* between two reads of a request body; 408 */
};

struct cr_conf_server {
    struct cr_conf_addr      addr;
    unsigned                 weight;    /* >= 1, default 1 */
    unsigned                 max_connections;   /* requests in flight per
                                                 * worker; 0 = no limit */
    struct cr_mark           mark;
    int                      stats_row; /* shm server table row; set by the
                                         * master, -1 = not counted */
};

enum cr_balance {
    CR_BALANCE_ROUND_ROBIN = 0,         /* smooth weighted round robin */
    CR_BALANCE_LEAST_CONN,              /* fewest in flight, all workers */
    CR_BALANCE_RANDOM,                  /* power of two random choices */
    CR_BALANCE_HASH                     /* consistent hash of a request key */
};

/* What balance: hash hashes. */
enum cr_hash_on {
    CR_HASH_CLIENT_ADDRESS = 0,         /* the client's IP address */
    CR_HASH_HEADER,                     /* a request header's value */
    CR_HASH_COOKIE                      /* a request cookie's value */
};

struct cr_conf_hash {
    enum cr_hash_on          on;
    char                    *name;      /* header or cookie name; NULL for
                                         * the client address */
};

/* Active health checks ("health:"); path NULL = none configured. */
struct cr_conf_health {
    char                    *path;      /* GET target, starts with "/" */
    uint64_t                 interval_ms;
    uint64_t                 timeout_ms;    /* connect to status line */
    unsigned                 fails;     /* consecutive failures -> down */
    unsigned                 passes;    /* consecutive passes -> up */
    unsigned                 status_lo; /* expect_status range, inclusive */
    unsigned                 status_hi;
};

/*
 * Passive outlier detection: <max_fails> consecutive failed exchanges
 * eject a server for <fail_timeout_ms>, doubled on each ejection that
 * follows without a recovery in between, up to <max_ejection_ms>.
 * "max_fails" and "fail_timeout" are the older spellings of
 * outlier.failures and outlier.base_ejection.
 */
struct cr_conf_outlier {
    uint64_t                 max_ejection_ms;
    int                      count_5xx; /* a 5xx response is a failure */
};

/* Bits of cr_conf_upstream.retry_on. */
enum {
    CR_RETRY_CONNECT = 1u << 0,         /* connect refused, failed, timed out */
    CR_RETRY_RESET   = 1u << 1,         /* reset or closed before a response */
    CR_RETRY_502     = 1u << 2,
    CR_RETRY_503     = 1u << 3,
    CR_RETRY_504     = 1u << 4
};
#define CR_RETRY_DEFAULT    (CR_RETRY_CONNECT | CR_RETRY_RESET)

/*
 * Retries allowed at any moment: <percent> of the requests in flight, but
 * at least <min_per_s> per second (Envoy's retry budget), so a pool in
 * trouble is not sent a multiple of its normal load.
 */
struct cr_conf_retry_budget {
    unsigned                 percent;   /* 0..100 */
    unsigned                 min_per_s;
};

/* Requests waiting for a server under max_connections. */
struct cr_conf_queue {
    unsigned                 size;      /* 0 = no queue: 503 at once */
    uint64_t                 timeout_ms;    /* then 503 */
};

struct cr_conf_upstream {
    char                    *name;
    enum cr_balance          balance;
    unsigned                 keepalive;         /* idle conns kept per worker */
    uint64_t                 connect_timeout_ms;
    uint64_t                 read_timeout_ms;   /* between upstream reads; 504 */
    unsigned                 retries;           /* extra tries on other servers */
    unsigned                 max_fails;         /* failures before a server is down */
    uint64_t                 fail_timeout_ms;   /* how long it then stays down */
    struct cr_conf_outlier   outlier;
    struct cr_conf_hash      hash;              /* balance: hash */
    struct cr_conf_health    health;
    unsigned                 retry_on;          /* CR_RETRY_* bits */
    struct cr_conf_retry_budget retry_budget;
    uint64_t                 try_timeout_ms;    /* one try; 0 = read_timeout only */
    struct cr_conf_queue     queue;
    struct cr_conf_server   *servers;
    size_t                   nservers;          /* >= 1 */
    struct cr_mark           mark;
};

/* One "name: value" pair; name and value are NUL-terminated. */
struct cr_conf_header {
    char                    *name;
    char                    *value;
};

/* request_headers / response_headers of a route. */
struct cr_conf_header_rules {
    struct cr_conf_header   *set;       /* replace (or add) these */
    size_t                   nset;
    char                   **remove;    /* drop these, case-insensitive */
    size_t                   nremove;
};

enum cr_route_action {
    CR_ROUTE_UPSTREAM = 0,
    CR_ROUTE_RESPOND,
    CR_ROUTE_REDIRECT
};

/* Method bits for cr_conf_route.methods. */
enum {
    CR_METHOD_GET     = 1u << 0,
    CR_METHOD_HEAD    = 1u << 1,
    CR_METHOD_POST    = 1u << 2,
    CR_METHOD_PUT     = 1u << 3,
    CR_METHOD_DELETE  = 1u << 4,
    CR_METHOD_PATCH   = 1u << 5,
    CR_METHOD_OPTIONS = 1u << 6,
    CR_METHOD_TRACE   = 1u << 7,
    CR_METHOD_CONNECT = 1u << 8,
    CR_METHOD_OTHER   = 1u << 9     /* any method not listed above */
};

struct cr_conf_route {
    char                    *name;          /* "route-N" (1-based) if unnamed */

    /* match: every field given must match; NULL / 0 means "any" */
    char                    *host;          /* exact, or "*.suffix"; lower case */
    char                    *path;          /* exact path (no query) */
    char                    *path_prefix;
    char                    *path_regex;    /* POSIX extended, as written */
    regex_t                  regex;         /* compiled if path_regex != NULL */
    unsigned                 methods;       /* CR_METHOD_* bits; 0 = any */

    /* action */
    enum cr_route_action     action;
    char                    *upstream_name; /* CR_ROUTE_UPSTREAM */
    size_t                   upstream;      /* index into cr_conf.upstreams */
    int                      status;        /* RESPOND: 200 default; REDIRECT: 302 */
    char                    *body;          /* RESPOND: may be NULL */
    size_t                   body_len;
    struct cr_conf_header   *respond_headers;   /* RESPOND: extra headers */
    size_t                   nrespond_headers;
    char                    *location;      /* REDIRECT */

    /* options */
    char                    *strip_prefix;  /* removed from the path upstream */
    struct cr_conf_header_rules request_headers;
    struct cr_conf_header_rules response_headers;

    struct cr_mark           mark;
    int                      stats_row;     /* shm route table row; set by the
                                             * master, -1 = not counted */
};

enum cr_log_format {
    CR_LOG_FORMAT_COMBINED = 0,         /* Apache/nginx "combined" + extras */
    CR_LOG_FORMAT_JSON                  /* one JSON object per line */
};

/* access_log: one line per request, written by each worker. */
struct cr_conf_access_log {
    char                    *path;      /* file, or "stdout"; NULL = off */
    enum cr_log_format       format;
    uint64_t                 buffer;    /* bytes held before a write; 0 = none */
    uint64_t                 flush_ms;  /* longest a line waits in the buffer */
};

/* user: / group: the identity workers and the admin process run as. */
struct cr_conf_identity {
    char                    *user;      /* NULL: keep the master's */
    char                    *group;     /* NULL: the user's primary group */
    uid_t                    uid;       /* valid if user != NULL */
    gid_t                    gid;       /* valid if user != NULL or group != NULL */
};

struct cr_conf {
    char                    *path;          /* file it was loaded from */
    char                    *name;          /* instance name */
    unsigned                 workers;       /* 0 = auto (online CPUs) */
    uint64_t                 drain_timeout_ms;  /* graceful stop / reload */
    struct cr_conf_listen   *listen;
    size_t                   nlisten;       /* >= 1 */
    struct cr_conf_limits    limits;
    struct cr_conf_upstream *upstreams;
    size_t                   nupstreams;
    struct cr_conf_route    *routes;
    size_t                   nroutes;
    uint64_t                 hash;          /* FNV-1a of the file's bytes */
    unsigned                 stats_mode;    /* shm segment permissions (0640) */
    int                      merge_slashes; /* "//" -> "/" in paths (true) */
    struct cr_conf_addr      admin;         /* admin listener; text NULL = off */
    struct cr_conf_identity  identity;      /* user: / group: */
    struct cr_conf_access_log access_log;
};

/* Every error of one load, each "file:line:col: message". */
struct cr_conf_errs {
    char                   **msgs;
    size_t                   n;
};

/*
 * Load and check <path>. Returns the tree, or NULL with every problem found
 * appended to <errs> (which the caller frees with cr_conf_errs_free()). A
 * file that cannot be opened yields one error "path: strerror".
 */
struct cr_conf *cr_conf_load(const char *path, struct cr_conf_errs *errs);

/* Same, from a buffer; <name> stands for the file name in messages. */
struct cr_conf *cr_conf_load_buf(const char *name, const char *buf, size_t len,
                                 struct cr_conf_errs *errs);

void cr_conf_free(struct cr_conf *conf);
void cr_conf_errs_free(struct cr_conf_errs *errs);

/*
 * "250ms", "1s", "2m", "1h" (and a bare number of seconds) to milliseconds.
 * Returns CR_OK or CR_ERR (garbage, negative, overflow).
 */
int cr_conf_parse_duration(const char *s, uint64_t *ms);

/* "512", "16k", "10m", "1g" (powers of 1024, case-insensitive) to bytes. */
int cr_conf_parse_size(const char *s, uint64_t *bytes);

/* "127.0.0.1:8080", "[::1]:8080", "localhost:80" (numeric hosts only
 * besides "localhost") into <out>. Returns CR_OK or CR_ERR. */
int cr_conf_parse_addr(const char *s, struct cr_conf_addr *out);

/* The CR_METHOD_* bit of a method name ("GET"), CR_METHOD_OTHER if unknown. */
unsigned cr_conf_method_bit(const char *name, size_t len);

#endif /* CR_CONF_H */
