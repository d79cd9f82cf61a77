/*
 * upstream.c - the "upstreams" map: pools, their servers, balancing, active
 * health checks, passive outlier ejection, retries and queueing.
 *
 * Fills struct cr_conf_upstream (conf/conf.h); owns nothing beyond what it
 * puts in the tree. Like load.c it is driven by key tables, one per
 * mapping, and a setter reports a bad value at its mark and returns.
 *
 *   upstreams:
 *     api:
 *       balance: hash                  # round_robin | least_conn | random | hash
 *       hash: { header: X-User }       # or { cookie: NAME } or client_address
 *       health: { path: /healthz, interval: 2s, timeout: 1s, fails: 3,
 *                 passes: 2, expect_status: 200-399 }
 *       outlier: { failures: 3, base_ejection: 10s, max_ejection: 5m,
 *                  count_5xx: false }
 *       retry_on: [connect_failure, reset, 502, 503, 504]
 *       retry_budget: { percent: 20, min_per_second: 3 }
 *       try_timeout: 5s
 *       queue: { size: 100, timeout: 1s }
 *       servers:
 *         - { address: 127.0.0.1:9001, weight: 2, max_connections: 100 }
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/internal.h"

#define MAX_STATUS_TEXT 16

/* ---------------------------------------------------------------------- */
/* balance: and hash:                                                      */

static const struct {
    const char      *name;
    enum cr_balance  balance;
} balances[] = {
    { "round_robin", CR_BALANCE_ROUND_ROBIN },
    { "least_conn",  CR_BALANCE_LEAST_CONN },
    { "random",      CR_BALANCE_RANDOM },
    { "hash",        CR_BALANCE_HASH },
};

static void
set_balance(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
            const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);
    size_t      i;

    (void) key;
    for (i = 0; s != NULL && i < CR_NELEM(balances); i++) {
        if (strcmp(s, balances[i].name) == 0) {
            *CR_CONF_FIELD(obj, cmd, enum cr_balance) = balances[i].balance;
            return;
        }
    }
    cr_conf_error(ld, val->mark, "\"%s\" must be \"round_robin\", \"least_conn\", \"random\" "
                  "or \"hash\", got %s", cmd->key, cr_conf_node_got(ld, val));
}

/*
 * hash: client_address | { header: NAME } | { cookie: NAME }. Exactly one
 * source; a name must be an HTTP token (RFC 9110 §5.6.2), which is what a
 * header or cookie name can be.
 */
static void
set_hash(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
         const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_hash       *h = CR_CONF_FIELD(obj, cmd, struct cr_conf_hash);
    const struct cr_conf_node *k, *v;
    const char                *s = cr_conf_node_text(val);

    (void) key;
    if (s != NULL && strcmp(s, "client_address") == 0) {
        h->on = CR_HASH_CLIENT_ADDRESS;
        return;
    }
    if (val->type != CR_CONF_NODE_MAP || val->n != 2) {
        cr_conf_error(ld, val->mark, "\"%s\" must be \"client_address\", { header: NAME } or "
                      "{ cookie: NAME }, got %s", cmd->key, cr_conf_node_got(ld, val));
        return;
    }
    k = val->kids[0];
    v = val->kids[1];
    if (cr_conf_node_is(k, "header")) {
        h->on = CR_HASH_HEADER;
    } else if (cr_conf_node_is(k, "cookie")) {
        h->on = CR_HASH_COOKIE;
    } else {
        cr_conf_error(ld, k->mark, "\"%s\" takes \"header\" or \"cookie\", got %s", cmd->key,
                      cr_conf_node_got(ld, k));
        return;
    }
    s = cr_conf_node_text(v);
    if (s == NULL || cr_conf_is_token(s, v->len) == 0) {
        cr_conf_error(ld, v->mark, "\"%s\" %s name must be an HTTP token, got %s", cmd->key,
                      k->s, cr_conf_node_got(ld, v));
        return;
    }
    free(h->name);
    h->name = cr_conf_dup(ld, s, v->len);
}

/* ---------------------------------------------------------------------- */
/* health:                                                                 */

/* A GET target: "/" then visible ASCII, as it goes on the request line. */
static void
set_health_path(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    char      **field = CR_CONF_FIELD(obj, cmd, char *);
    const char *s = cr_conf_node_text(val);
    size_t      i;
    int         ok = s != NULL && s[0] == '/' && val->len < 1024;

    (void) key;
    for (i = 0; ok && i < val->len; i++) {
        ok = s[i] > 0x20 && s[i] < 0x7f;
    }
    if (!ok) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a path starting with \"/\" without spaces, "
                      "got %s", cmd->key, cr_conf_node_got(ld, val));
        return;
    }
    free(*field);
    *field = cr_conf_dup(ld, s, val->len);
}

/* "200", "200-399" (inclusive), or a number; codes from 100 to 599. */
static void
set_expect_status(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                  const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_health *hc = obj;
    const char            *s = cr_conf_node_text(val);
    const char            *dash;
    char                   lo[MAX_STATUS_TEXT];
    uint64_t               a = 0, b = 0;
    int                    ok = 0;

    (void) key;
    if (s != NULL && val->len < sizeof(lo)) {
        dash = strchr(s, '-');
        if (dash == NULL) {
            ok = cr_conf_parse_uint(s, 100, 599, &a) == CR_OK;
            b = a;
        } else {
            memcpy(lo, s, (size_t) (dash - s));
            lo[dash - s] = '\0';
            ok = cr_conf_parse_uint(lo, 100, 599, &a) == CR_OK
                 && cr_conf_parse_uint(dash + 1, 100, 599, &b) == CR_OK && a <= b;
        }
    }
    if (!ok) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a status like \"200\" or a range like "
                      "\"200-399\" within 100-599, got %s", cmd->key, cr_conf_node_got(ld, val));
        return;
    }
    hc->status_lo = (unsigned) a;
    hc->status_hi = (unsigned) b;
}

static const struct cr_conf_cmd health_cmds[] = {
    { "path",          set_health_path,      offsetof(struct cr_conf_health, path), 0, 0 },
    { "interval",      cr_conf_set_duration, offsetof(struct cr_conf_health, interval_ms),
      10, 3600 * 1000 },
    { "timeout",       cr_conf_set_duration, offsetof(struct cr_conf_health, timeout_ms),
      1, 3600 * 1000 },
    { "fails",         cr_conf_set_uint,     offsetof(struct cr_conf_health, fails), 1, 1000 },
    { "passes",        cr_conf_set_uint,     offsetof(struct cr_conf_health, passes), 1, 1000 },
    { "expect_status", set_expect_status,    0, 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_health(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
           const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_health *hc = CR_CONF_FIELD(obj, cmd, struct cr_conf_health);
    char                   where[CR_CONF_QUOTE_MAX + 48];

    (void) key;
    snprintf(where, sizeof(where), "\"health\" of %s", ld->label);
    cr_conf_walk_section(ld, cmd, val, health_cmds, hc, where);
    if (val->type == CR_CONF_NODE_MAP && cr_conf_node_get(val, "path") == NULL) {
        cr_conf_error(ld, val->mark, "%s has no \"path\"", where);
    }
}

/* ---------------------------------------------------------------------- */
/* outlier:, retry_on:, retry_budget:, queue:                              */

static const struct cr_conf_cmd outlier_cmds[] = {
    { "failures",      cr_conf_set_uint,     offsetof(struct cr_conf_upstream, max_fails),
      0, 1000 },
    { "base_ejection", cr_conf_set_duration, offsetof(struct cr_conf_upstream, fail_timeout_ms),
      1, CR_CONF_NO_MAX },
    { "max_ejection",  cr_conf_set_duration,
      offsetof(struct cr_conf_upstream, outlier.max_ejection_ms), 1, CR_CONF_NO_MAX },
    { "count_5xx",     cr_conf_set_bool,
      offsetof(struct cr_conf_upstream, outlier.count_5xx), 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_outlier(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
            const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    char where[CR_CONF_QUOTE_MAX + 48];

    (void) key;
    snprintf(where, sizeof(where), "\"outlier\" of %s", ld->label);
    cr_conf_walk_section(ld, cmd, val, outlier_cmds, obj, where);
}

static const struct {
    const char  *name;
    unsigned     bit;
} retry_conds[] = {
    { "connect_failure", CR_RETRY_CONNECT },
    { "reset",           CR_RETRY_RESET },
    { "502",             CR_RETRY_502 },
    { "503",             CR_RETRY_503 },
    { "504",             CR_RETRY_504 },
};

/* A list of conditions; an empty list turns retries off for every cause. */
static void
set_retry_on(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
             const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    unsigned *bits = CR_CONF_FIELD(obj, cmd, unsigned);
    size_t    i, j;

    (void) key;
    if (val->type != CR_CONF_NODE_SEQ) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list", cmd->key);
        return;
    }
    *bits = 0;
    for (i = 0; i < val->n; i++) {
        const struct cr_conf_node *item = val->kids[i];
        const char                *s = cr_conf_node_text(item);

        for (j = 0; s != NULL && j < CR_NELEM(retry_conds); j++) {
            if (strcmp(s, retry_conds[j].name) == 0) {
                break;
            }
        }
        if (s == NULL || j == CR_NELEM(retry_conds)) {
            if (item->type != CR_CONF_NODE_BAD) {
                cr_conf_error(ld, item->mark, "\"%s\" entries must be \"connect_failure\", "
                              "\"reset\", 502, 503 or 504, got %s", cmd->key,
                              cr_conf_node_got(ld, item));
            }
            continue;
        }
        *bits |= retry_conds[j].bit;
    }
}

static const struct cr_conf_cmd retry_budget_cmds[] = {
    { "percent",        cr_conf_set_uint, offsetof(struct cr_conf_retry_budget, percent),
      0, 100 },
    { "min_per_second", cr_conf_set_uint, offsetof(struct cr_conf_retry_budget, min_per_s),
      0, 1000000 },
    { NULL, NULL, 0, 0, 0 }
};

static const struct cr_conf_cmd queue_cmds[] = {
    { "size",    cr_conf_set_uint,     offsetof(struct cr_conf_queue, size), 0, 1000000 },
    { "timeout", cr_conf_set_duration, offsetof(struct cr_conf_queue, timeout_ms),
      1, CR_CONF_NO_MAX },
    { NULL, NULL, 0, 0, 0 }
};

/* retry_budget: and queue: are plain sections of the upstream. */
static void
set_upstream_section(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                     const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const struct cr_conf_cmd *cmds = strcmp(cmd->key, "queue") == 0 ? queue_cmds
                                                                    : retry_budget_cmds;
    char                      where[CR_CONF_QUOTE_MAX + 48];

    (void) key;
    snprintf(where, sizeof(where), "\"%s\" of %s", cmd->key, ld->label);
    cr_conf_walk_section(ld, cmd, val, cmds, (char *) obj + cmd->offset, where);
}

/* ---------------------------------------------------------------------- */
/* servers:                                                                */

static const struct cr_conf_cmd server_cmds[] = {
    { "address",         cr_conf_set_addr, offsetof(struct cr_conf_server, addr), 0, 0 },
    { "weight",          cr_conf_set_uint, offsetof(struct cr_conf_server, weight), 1, 1000 },
    { "max_connections", cr_conf_set_uint, offsetof(struct cr_conf_server, max_connections),
      0, 1000000 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_servers(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
            const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_upstream *u = obj;
    char                     where[128];
    size_t                   i;

    (void) key;
    if (val->type != CR_CONF_NODE_SEQ) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list", cmd->key);
        return;
    }
    if (val->n == 0) {
        cr_conf_error(ld, val->mark, "%s has no servers", ld->label);
        return;
    }
    u->servers = cr_conf_alloc(ld, val->n, sizeof(*u->servers));
    if (u->servers == NULL) {
        return;
    }
    snprintf(where, sizeof(where), "a \"servers\" entry of %s", ld->label);
    for (i = 0; i < val->n; i++) {
        const struct cr_conf_node *item = val->kids[i];
        struct cr_conf_server     *s = &u->servers[u->nservers++];

        s->weight = 1;
        s->mark = item->mark;
        if (item->type == CR_CONF_NODE_SCALAR) {
            cr_conf_parse_addr_node(ld, "\"servers\" entry", item, &s->addr);
        } else if (item->type == CR_CONF_NODE_MAP) {
            cr_conf_walk(ld, item, server_cmds, s, where);
            if (cr_conf_node_get(item, "address") == NULL) {
                cr_conf_error(ld, item->mark, "\"servers\" entry has no \"address\"");
            }
        } else if (item->type != CR_CONF_NODE_BAD) {
            cr_conf_error(ld, item->mark, "\"servers\" entry must be an address or a mapping");
        }
    }
}


/* ---------------------------------------------------------------------- */
/* The upstream                                                            */

static const struct cr_conf_cmd upstream_cmds[] = {
    { "balance",         set_balance,  offsetof(struct cr_conf_upstream, balance), 0, 0 },
    { "hash",            set_hash,     offsetof(struct cr_conf_upstream, hash), 0, 0 },
    { "keepalive",       cr_conf_set_uint, offsetof(struct cr_conf_upstream, keepalive),
      0, 10000 },
    { "connect_timeout", cr_conf_set_duration,
      offsetof(struct cr_conf_upstream, connect_timeout_ms), 1, CR_CONF_NO_MAX },
    { "read_timeout",    cr_conf_set_duration,
      offsetof(struct cr_conf_upstream, read_timeout_ms), 1, CR_CONF_NO_MAX },
    { "try_timeout",     cr_conf_set_duration,
      offsetof(struct cr_conf_upstream, try_timeout_ms), 1, CR_CONF_NO_MAX },
    { "retries",         cr_conf_set_uint, offsetof(struct cr_conf_upstream, retries), 0, 100 },
    { "retry_on",        set_retry_on, offsetof(struct cr_conf_upstream, retry_on), 0, 0 },
    { "retry_budget",    set_upstream_section,
      offsetof(struct cr_conf_upstream, retry_budget), 0, 0 },
    { "max_fails",       cr_conf_set_uint, offsetof(struct cr_conf_upstream, max_fails),
      0, 1000 },
    { "fail_timeout",    cr_conf_set_duration,
      offsetof(struct cr_conf_upstream, fail_timeout_ms), 1, CR_CONF_NO_MAX },
    { "outlier",         set_outlier,  0, 0, 0 },
    { "health",          set_health,   offsetof(struct cr_conf_upstream, health), 0, 0 },
    { "queue",           set_upstream_section, offsetof(struct cr_conf_upstream, queue), 0, 0 },
    { "servers",         set_servers,  0, 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
upstream_defaults(struct cr_conf_upstream *u)
{
    u->balance = CR_BALANCE_ROUND_ROBIN;
    u->keepalive = CR_CONF_DEFAULT_KEEPALIVE;
    u->connect_timeout_ms = CR_CONF_DEFAULT_CONNECT_TIMEOUT;
    u->read_timeout_ms = CR_CONF_DEFAULT_READ_TIMEOUT;
    u->retries = CR_CONF_DEFAULT_RETRIES;
    u->max_fails = CR_CONF_DEFAULT_MAX_FAILS;
    u->fail_timeout_ms = CR_CONF_DEFAULT_FAIL_TIMEOUT;
    u->outlier.max_ejection_ms = CR_CONF_DEFAULT_MAX_EJECTION;
    u->health.interval_ms = CR_CONF_DEFAULT_HEALTH_INTERVAL;
    u->health.timeout_ms = CR_CONF_DEFAULT_HEALTH_TIMEOUT;
    u->health.fails = CR_CONF_DEFAULT_HEALTH_FAILS;
    u->health.passes = CR_CONF_DEFAULT_HEALTH_PASSES;
    u->health.status_lo = 200;
    u->health.status_hi = 399;
    u->retry_on = CR_RETRY_DEFAULT;
    u->retry_budget.percent = CR_CONF_DEFAULT_RETRY_PERCENT;
    u->retry_budget.min_per_s = CR_CONF_DEFAULT_RETRY_MIN_RATE;
    u->queue.timeout_ms = CR_CONF_DEFAULT_QUEUE_TIMEOUT;
}

/* The value of <key> in mapping <map>, or of its section <sect>, or NULL. */
static const struct cr_conf_node *
node_in(const struct cr_conf_node *map, const char *sect, const char *key)
{
    const struct cr_conf_node *s = sect != NULL ? cr_conf_node_get(map, sect) : map;

    if (s == NULL || s->type != CR_CONF_NODE_MAP) {
        return NULL;
    }
    return cr_conf_node_get(s, key);
}

/*
 * Checks between keys of one upstream <u> (whose mapping is <body>), once
 * each value is parsed: each error points at the key that has to change.
 */
static void
check_upstream(struct cr_conf_ld *ld, const struct cr_conf_upstream *u,
               const struct cr_conf_node *body)
{
    const struct cr_conf_node *n;

    if (u->health.path != NULL && u->health.timeout_ms > u->health.interval_ms) {
        n = node_in(body, "health", "timeout");
        cr_conf_error(ld, n != NULL ? n->mark : u->mark, "%s: health \"timeout\" (%llums) must "
                      "not be longer than \"interval\" (%llums)", ld->label,
                      (unsigned long long) u->health.timeout_ms,
                      (unsigned long long) u->health.interval_ms);
    }
    if (u->outlier.max_ejection_ms < u->fail_timeout_ms) {
        n = node_in(body, "outlier", "max_ejection");
        cr_conf_error(ld, n != NULL ? n->mark : u->mark, "%s: outlier \"max_ejection\" (%llums) "
                      "must not be shorter than the base ejection time (%llums)", ld->label,
                      (unsigned long long) u->outlier.max_ejection_ms,
                      (unsigned long long) u->fail_timeout_ms);
    }
    if (u->hash.name == NULL && u->hash.on != CR_HASH_CLIENT_ADDRESS) {
        return;     /* a bad hash: already reported */
    }
    n = cr_conf_node_get(body, "hash");
    if (n != NULL && u->balance != CR_BALANCE_HASH) {
        cr_conf_error(ld, n->mark, "%s: \"hash\" is only used with \"balance: hash\"",
                      ld->label);
    }
}

/*
 * "upstreams" maps names to pools. Every key becomes a pool, even a
 * duplicate or a badly named one, so routes that use it are not reported
 * as using an unknown upstream; check.c reports duplicates.
 */
void
cr_conf_set_upstreams(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                      const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf *conf = obj;
    size_t          i;

    (void) key;
    if (cr_conf_node_null(val)) {
        return;     /* an empty section: every entry commented out */
    }
    if (val->type != CR_CONF_NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping", cmd->key);
        return;
    }
    conf->upstreams = cr_conf_alloc(ld, val->n / 2, sizeof(*conf->upstreams));
    if (conf->upstreams == NULL) {
        return;
    }
    for (i = 0; i + 1 < val->n; i += 2) {
        const struct cr_conf_node *name = val->kids[i];
        const struct cr_conf_node *body = val->kids[i + 1];
        struct cr_conf_upstream   *u;
        char                       label[CR_CONF_QUOTE_MAX + 32];

        if (name->type == CR_CONF_NODE_BAD) {
            continue;
        }
        if (cr_conf_node_text(name) == NULL) {
            cr_conf_error(ld, name->mark, "upstream names must be strings, got %s",
                          cr_conf_node_got(ld, name));
            continue;
        }
        u = &conf->upstreams[conf->nupstreams++];
        upstream_defaults(u);
        u->mark = name->mark;
        u->name = cr_conf_dup(ld, name->s, name->len);
        snprintf(label, sizeof(label), "upstream %s", cr_conf_quote(ld, name->s, name->len));
        if (cr_conf_is_name(name->s, name->len) == 0) {
            cr_conf_error(ld, name->mark,
                          "upstream name %s must be 1 to %d letters, digits, \".\", \"_\" "
                          "or \"-\"",
                          cr_conf_quote(ld, name->s, name->len), CR_CONF_NAME_MAX);
        }
        if (body->type == CR_CONF_NODE_BAD) {
            continue;
        }
        if (body->type != CR_CONF_NODE_MAP) {
            cr_conf_error(ld, body->mark, "%s must be a mapping", label);
            continue;
        }
        ld->label = label;
        cr_conf_walk(ld, body, upstream_cmds, u, label);
        if (cr_conf_node_get(body, "servers") == NULL) {
            cr_conf_error(ld, name->mark, "%s has no servers", label);
        }
        check_upstream(ld, u, body);
        ld->label = NULL;
    }
}

