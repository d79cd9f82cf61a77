/*
 * internal.h - what the parts of conf/ share with each other: the node
 * tree (tree.c), the loader's state and key tables (load.c, route.c), the
 * cross-reference checks (check.c) and the scalar parsers (parse.c).
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
struct cr_conf_addr;
struct cr_conf_route;

#define CR_CONF_QUOTE_MAX   72      /* longest user text quoted in a message */
#define CR_CONF_NQUOTE      4       /* quotes usable in one message */
#define CR_CONF_NAME_MAX    64      /* instance, upstream and route names */
#define CR_CONF_NO_MAX      UINT64_MAX  /* cr_conf_cmd.max: no upper bound */

/* ---- the node tree (tree.c) ---- */

enum cr_conf_node_type {
    CR_CONF_NODE_SCALAR = 0,
    CR_CONF_NODE_SEQ,
    CR_CONF_NODE_MAP,
    CR_CONF_NODE_BAD        /* an alias: reported, then skipped silently */
};

/* One YAML node. A mapping holds its keys and values alternately. */
struct cr_conf_node {
    enum cr_conf_node_type   type;
    struct cr_mark           mark;      /* where the node starts */
    unsigned                 plain;     /* scalar written without quotes */
    char                    *s;         /* scalar text, NUL-terminated */
    size_t                   len;       /* its length; may hold NUL bytes */
    struct cr_conf_node    **kids;      /* SEQ: items; MAP: key, value, ... */
    size_t                   n;
    size_t                   cap;
};

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

/* ---- the loader (load.c) ---- */

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

struct cr_conf_cmd;

/*
 * A setter converts <val> (the value of <key>) and stores it at
 * cmd->offset in <obj>, or reports why it cannot. It never fails the walk.
 */
typedef void cr_conf_set_fn(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                            const struct cr_conf_node *key, const struct cr_conf_node *val,
                            void *obj);

/* One key of a mapping; tables of these end with a NULL key. */
struct cr_conf_cmd {
    const char      *key;
    cr_conf_set_fn  *set;
    size_t           offset;    /* of the field in <obj> */
    uint64_t         min;       /* for numbers, durations and sizes */
    uint64_t         max;
};

#define CR_CONF_FIELD(obj, cmd, type) \
    ((type *) (void *) ((char *) (obj) + (cmd)->offset))

/*
 * Walk the mapping <map> with the table <cmds>, calling each key's setter
 * on <obj>. <where> names the mapping in messages ("top level",
 * 'route "api"'). Duplicate and unknown keys are reported and skipped.
 */
void cr_conf_walk(struct cr_conf_ld *ld, const struct cr_conf_node *map,
                  const struct cr_conf_cmd *cmds, void *obj, const char *where);

/* Setters shared by the tables of load.c, route.c and upstream.c. */
cr_conf_set_fn cr_conf_set_name;
cr_conf_set_fn cr_conf_set_int;
cr_conf_set_fn cr_conf_set_uint;        /* unsigned within [min, max] */
cr_conf_set_fn cr_conf_set_duration;    /* uint64_t ms within [min, max] */
cr_conf_set_fn cr_conf_set_bool;        /* int 0 / 1 */
cr_conf_set_fn cr_conf_set_addr;        /* struct cr_conf_addr */

/*
 * Parse the address in <val> into <addr>; <what> names it in the message
 * ('"address"', '"servers" entry').
 */
void cr_conf_parse_addr_node(struct cr_conf_ld *ld, const char *what,
                             const struct cr_conf_node *val, struct cr_conf_addr *addr);

/*
 * The value <val> of key <cmd> is a section: walk it with <cmds> on <obj>
 * (<where> names it in messages). Null is an empty section; anything but
 * a mapping is reported.
 */
void cr_conf_walk_section(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                          const struct cr_conf_node *val, const struct cr_conf_cmd *cmds,
                          void *obj, const char *where);

/* malloc'd copy of <len> bytes of <s> plus a NUL; NULL after cr_conf_oom(). */
char *cr_conf_dup(struct cr_conf_ld *ld, const char *s, size_t len);

/* Zeroed array of <n> (at least one) elements; NULL after cr_conf_oom(). */
void *cr_conf_alloc(struct cr_conf_ld *ld, size_t n, size_t size);

/* ---- the node tree (tree.c) ---- */

/*
 * Parse <buf> into a tree. Returns the root of its one document, or NULL:
 * after a syntax error (reported, ld->fatal set) or for a file that holds
 * no document (not reported). The caller frees it with cr_conf_tree_free().
 */
struct cr_conf_node *cr_conf_tree_read(struct cr_conf_ld *ld, const char *buf, size_t len);
void cr_conf_tree_free(struct cr_conf_node *n);

/* A YAML null: an unquoted empty value, "~" or "null". */
int cr_conf_node_null(const struct cr_conf_node *n);

/* The text of a scalar that is neither null nor holds a NUL byte, else NULL. */
const char *cr_conf_node_text(const struct cr_conf_node *n);

/* What the operator wrote, for "got ..." in messages: the quoted text,
 * "nothing", "a list" or "a mapping". */
const char *cr_conf_node_got(struct cr_conf_ld *ld, const struct cr_conf_node *n);

/* 1 if <key> is the scalar <name>, else 0. */
int cr_conf_node_is(const struct cr_conf_node *key, const char *name);

/* The value of the first key <name> of mapping <map>, or NULL. */
const struct cr_conf_node *cr_conf_node_get(const struct cr_conf_node *map, const char *name);

/* ---- routes (route.c) ---- */

/* The setter of the top-level key "routes". */
cr_conf_set_fn cr_conf_set_routes;

/* Free what <r> points to (not <r> itself). */
void cr_conf_route_free(struct cr_conf_route *r);

/* ---- upstreams (upstream.c) ---- */

/* The setter of the top-level key "upstreams". */
cr_conf_set_fn cr_conf_set_upstreams;

/* ---- checks (check.c) ---- */

/* Cross-reference checks on ld->conf once every value is parsed. */
void cr_conf_check(struct cr_conf_ld *ld);

/* ---- scalar syntaxes (parse.c) ---- */

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
