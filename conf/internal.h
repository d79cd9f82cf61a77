/*
 * internal.h - what the parts of conf/ share with each other: the loader's
 * state (collected errors, the tree being built, marks that struct cr_conf
 * does not keep) and small helpers.
 *
 * Private to conf/: nothing outside conf/ includes this header; the public
 * contract is conf/conf.h. Owns no memory itself; struct cr_conf_ld lives on
 * the stack of cr_conf_load_buf(), which frees what it points to.
 */
#ifndef CR_CONF_INTERNAL_H
#define CR_CONF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "conf/common.h"

struct cr_conf;

#define CR_CONF_QUOTE_MAX   72      /* longest user text quoted in a message */
#define CR_CONF_NQUOTE      4       /* quotes usable in one message */
#define CR_CONF_NAME_MAX    64      /* instance, upstream and route names */

/* The action keys a route has; bits of cr_conf_src_route.actions. */
enum {
    CR_CONF_A_UPSTREAM = 1u << 0,
    CR_CONF_A_RESPOND  = 1u << 1,
    CR_CONF_A_REDIRECT = 1u << 2
};
#define CR_CONF_NACTIONS    3

/*
 * Where the parts of one route came from, kept by load.c for check.c.
 * A key counts as present even when its value was rejected, so one mistake
 * is not reported a second time as "no action".
 */
struct cr_conf_src_route {
    unsigned        skip;           /* not a mapping: already reported */
    struct cr_mark  name_mark;      /* value of "name", else the route's mark */
    unsigned        actions;        /* CR_CONF_A_* keys present */
    struct cr_mark  action_mark[CR_CONF_NACTIONS];  /* those keys, by bit */
    struct cr_mark  upstream_mark;  /* value of "upstream" */
    unsigned        has_strip;      /* "strip_prefix" key present */
    struct cr_mark  strip_mark;     /* that key */
    unsigned        has_reqh;       /* "request_headers" key present */
    struct cr_mark  reqh_mark;      /* that key */
};

/* One collected error; sorted by mark, then seq, before it is handed out. */
struct cr_conf_err {
    struct cr_mark  mark;           /* line 0: the error has no position */
    size_t          seq;            /* order of discovery, for ties */
    char           *msg;
};

/* The state of one cr_conf_load_buf() call. */
struct cr_conf_ld {
    const char                *file;        /* name used in messages */
    struct cr_conf            *conf;        /* the tree being filled */
    struct cr_conf_src_route  *routes;      /* parallel to conf->routes */
    struct cr_conf_err        *errs;
    size_t                     nerrs;
    size_t                     caperrs;
    unsigned                   failed;      /* at least one error seen */
    unsigned                   oom;         /* out of memory reported */
    unsigned                   fatal;       /* the YAML could not be read */
    const char                *label;       /* 'route "api"', for messages */
    char                       quote[CR_CONF_NQUOTE][CR_CONF_QUOTE_MAX + 16];
    unsigned                   nextq;
};

/* Record an error at <mark> (line 0 for none). Never fails the caller. */
void cr_conf_error(struct cr_conf_ld *ld, struct cr_mark mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record "out of memory" once. */
void cr_conf_oom(struct cr_conf_ld *ld);

/*
 * <s> (<len> bytes) in double quotes, with quotes, backslashes and control
 * bytes escaped and long text cut, so a message stays on one line. The
 * result lives in <ld> until CR_CONF_NQUOTE more quotes have been made.
 */
const char *cr_conf_quote(struct cr_conf_ld *ld, const char *s, size_t len);

/* Cross-reference checks on ld->conf once every value is parsed (check.c). */
void cr_conf_check(struct cr_conf_ld *ld);

/* Plain decimal "0".."18446744073709551615" within [min, max]. */
int cr_conf_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* 1 if <s> (<len> bytes) is an HTTP token (RFC 9110 §5.6.2), else 0. */
int cr_conf_is_token(const char *s, size_t len);

/* 1 if <s> is 1..CR_CONF_NAME_MAX of [A-Za-z0-9._-], else 0. */
int cr_conf_is_name(const char *s, size_t len);

/*
 * Edit distance between <a> and <b> counting a swap of neighbours as one
 * edit; used to suggest "did you mean". Returns a large number for long
 * strings instead of computing it.
 */
size_t cr_conf_distance(const char *a, const char *b);

/* 1 if <typed> is close enough to <known> to suggest it, else 0. */
int cr_conf_similar(const char *typed, const char *known);

#endif /* CR_CONF_INTERNAL_H */
