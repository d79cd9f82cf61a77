/*
 * route.c - the "routes" list: match conditions, the action (upstream,
 * respond or redirect) and header rules of each route.
 *
 * Owns the setters and key tables below "routes", and the freeing of a
 * struct cr_conf_route. Values are checked one by one here; what needs the
 * whole tree (the upstream a route names, duplicate names, one action per
 * route) is left to check.c, using the marks kept in ld->routes.
 *
 * Header rules refuse the headers that frame a message or manage the
 * connection: corral writes those itself, and a rule that changed them
 * would let the two sides of the proxy disagree on where a message ends.
 */
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "conf/internal.h"

/* The marks load.c keeps aside for route <r>, for check.c. */
static struct cr_conf_src_route *
src_of(struct cr_conf_ld *ld, const struct cr_conf_route *r)
{
    return &ld->routes[r - ld->conf->routes];
}

static void
set_route_name(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
               const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_route *r = obj;

    cr_conf_set_name(ld, cmd, key, val, obj);
    if (r->name != NULL) {
        src_of(ld, r)->name_mark = val->mark;
    }
}

/*
 * "api.example.com" or "*.example.com": labels of letters, digits, "-" and
 * "_", stored lower-cased since host names compare case-insensitively
 * (RFC 9110 §4.2.3). A port is not part of it.
 */
static void
set_host(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
         const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);
    char       *host;
    size_t      i, start, label = 0;
    int         ok = 1;

    (void) key;
    if (s == NULL || val->len == 0 || val->len > 253) {
        ok = 0;
    }
    start = (s != NULL && strncmp(s, "*.", 2) == 0) ? 2 : 0;
    for (i = start; ok && i < val->len; i++) {
        unsigned char c = (unsigned char) s[i];

        if (c == '.') {
            ok = label != 0;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            label++;
        } else {
            ok = 0;
        }
    }
    if (ok == 0 || label == 0) {
        cr_conf_error(ld, val->mark,
                      "\"%s\" must be a host name like \"api.example.com\" or \"*.example.com\", "
                      "got %s", cmd->key, cr_conf_node_got(ld, val));
        return;
    }
    host = cr_conf_dup(ld, s, val->len);
    if (host == NULL) {
        return;
    }
    for (i = 0; host[i] != '\0'; i++) {
        host[i] = (char) tolower((unsigned char) host[i]);
    }
    free(*CR_CONF_FIELD(obj, cmd, char *));
    *CR_CONF_FIELD(obj, cmd, char *) = host;
}

/* A path to compare with the request's: "/..." without spaces, query or
 * fragment, since the router compares it with the path alone. */
static void
set_path(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
         const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);
    size_t      i;

    (void) key;
    if (s == NULL || s[0] != '/') {
        cr_conf_error(ld, val->mark, "\"%s\" must start with \"/\", got %s", cmd->key,
                      cr_conf_node_got(ld, val));
        return;
    }
    for (i = 0; i < val->len; i++) {
        unsigned char c = (unsigned char) s[i];

        if (c <= 0x20 || c == 0x7f || c == '?' || c == '#') {
            cr_conf_error(ld, val->mark,
                          "\"%s\" must not contain spaces, control characters, \"?\" or \"#\", "
                          "got %s", cmd->key, cr_conf_node_got(ld, val));
            return;
        }
    }
    free(*CR_CONF_FIELD(obj, cmd, char *));
    *CR_CONF_FIELD(obj, cmd, char *) = cr_conf_dup(ld, s, val->len);
}

static void
set_strip_prefix(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                 const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_src_route *src = src_of(ld, obj);

    src->has_strip = 1;
    src->strip_mark = key->mark;
    set_path(ld, cmd, key, val, obj);
}

static void
set_regex(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
          const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_route *r = obj;
    const char           *s = cr_conf_node_text(val);
    char                  why[256];
    int                   rc;

    (void) key;
    if (s == NULL || *s == '\0') {
        cr_conf_error(ld, val->mark, "\"%s\" must be a regular expression, got %s", cmd->key,
                      cr_conf_node_got(ld, val));
        return;
    }
    rc = regcomp(&r->regex, s, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        regerror(rc, &r->regex, why, sizeof(why));
        cr_conf_error(ld, val->mark, "\"%s\" is not a valid regular expression: %s", cmd->key,
                      why);
        return;
    }
    /* path_regex != NULL is what tells cr_conf_free() to regfree() */
    r->path_regex = cr_conf_dup(ld, s, val->len);
    if (r->path_regex == NULL) {
        regfree(&r->regex);
    }
}

/* One entry of "methods"; returns its CR_METHOD_* bit or 0 after an error. */
static unsigned
method_bit(struct cr_conf_ld *ld, const struct cr_conf_node *item)
{
    const char *s = cr_conf_node_text(item);
    unsigned    bit;
    char        upper[16];
    size_t      i;

    if (s == NULL || cr_conf_is_token(s, item->len) == 0) {
        cr_conf_error(ld, item->mark, "\"methods\" entry must be an HTTP method like \"GET\", "
                      "got %s", cr_conf_node_got(ld, item));
        return 0;
    }
    bit = cr_conf_method_bit(s, item->len);
    if (bit == CR_METHOD_OTHER && item->len < sizeof(upper)) {
        /* "get" is a legal method, but surely not the one meant */
        for (i = 0; i <= item->len; i++) {
            upper[i] = (char) toupper((unsigned char) s[i]);
        }
        if (cr_conf_method_bit(upper, item->len) != CR_METHOD_OTHER) {
            cr_conf_error(ld, item->mark, "methods are case-sensitive: write \"%s\", not %s",
                          upper, cr_conf_node_got(ld, item));
            return 0;
        }
    }
    return bit;
}

static void
set_methods(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
            const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    unsigned *bits = CR_CONF_FIELD(obj, cmd, unsigned);
    size_t    i;

    (void) key;
    if (val->type == CR_CONF_NODE_SCALAR) {
        *bits |= method_bit(ld, val);
        return;
    }
    if (val->type != CR_CONF_NODE_SEQ) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list of methods like [GET, POST]",
                      cmd->key);
        return;
    }
    if (val->n == 0) {
        cr_conf_error(ld, val->mark, "\"%s\" must not be empty", cmd->key);
        return;
    }
    for (i = 0; i < val->n; i++) {
        if (val->kids[i]->type != CR_CONF_NODE_BAD) {
            *bits |= method_bit(ld, val->kids[i]);
        }
    }
}

static const struct cr_conf_cmd match_cmds[] = {
    { "host",        set_host,    offsetof(struct cr_conf_route, host), 0, 0 },
    { "path",        set_path,    offsetof(struct cr_conf_route, path), 0, 0 },
    { "path_prefix", set_path,    offsetof(struct cr_conf_route, path_prefix), 0, 0 },
    { "path_regex",  set_regex,   0, 0, 0 },
    { "methods",     set_methods, offsetof(struct cr_conf_route, methods), 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_match(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
          const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    char where[CR_CONF_QUOTE_MAX + 64];

    (void) key;
    if (val->type != CR_CONF_NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping", cmd->key);
        return;
    }
    snprintf(where, sizeof(where), "\"%s\" of %s", cmd->key, ld->label);
    cr_conf_walk(ld, val, match_cmds, obj, where);
}

/*
 * Headers that frame the message or manage the connection are corral's to
 * write (RFC 9110 §7.6.1, RFC 9112 §6); letting a rule set or remove them
 * would desynchronise the two sides of the proxy.
 */
static int
is_managed_header(const char *name)
{
    static const char *const managed[] = {
        "content-length", "transfer-encoding", "connection", "keep-alive",
        "proxy-connection", "te", "upgrade"
    };
    size_t i;

    for (i = 0; i < CR_NELEM(managed); i++) {
        if (strcasecmp(name, managed[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A field value: no control characters but HTAB (RFC 9110 §5.5). */
static int
is_field_value(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* A mapping of header names to values into <*out> / <*nout>. */
static void
header_map(struct cr_conf_ld *ld, const char *field, const struct cr_conf_node *val,
           struct cr_conf_header **out, size_t *nout)
{
    size_t i, j;

    if (val->type != CR_CONF_NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping of header names to values",
                      field);
        return;
    }
    *out = cr_conf_alloc(ld, val->n / 2, sizeof(**out));
    if (*out == NULL) {
        return;
    }
    for (i = 0; i + 1 < val->n; i += 2) {
        const struct cr_conf_node *k = val->kids[i];
        const struct cr_conf_node *v = val->kids[i + 1];
        const char                *name = cr_conf_node_text(k);
        const char                *value;
        struct cr_conf_header     *h;
        int                        dup = 0;

        if (k->type == CR_CONF_NODE_BAD || v->type == CR_CONF_NODE_BAD) {
            continue;
        }
        if (name == NULL || cr_conf_is_token(name, k->len) == 0) {
            cr_conf_error(ld, k->mark, "%s is not a valid header name", cr_conf_node_got(ld, k));
            continue;
        }
        for (j = 0; j < i; j += 2) {
            const struct cr_conf_node *prev = val->kids[j];

            if (prev->type == CR_CONF_NODE_SCALAR && strcasecmp(prev->s, name) == 0) {
                cr_conf_error(ld, k->mark, "duplicate header %s (first at line %u, column %u)",
                              cr_conf_node_got(ld, k), prev->mark.line, prev->mark.col);
                dup = 1;
                break;
            }
        }
        if (dup) {
            continue;
        }
        if (is_managed_header(name)) {
            cr_conf_error(ld, k->mark, "header %s is managed by corral and cannot be set",
                          cr_conf_node_got(ld, k));
            continue;
        }
        if (v->type != CR_CONF_NODE_SCALAR) {
            cr_conf_error(ld, v->mark, "value of header %s must be a string, got %s",
                          cr_conf_node_got(ld, k), cr_conf_node_got(ld, v));
            continue;
        }
        value = cr_conf_node_null(v) ? "" : v->s;
        if (is_field_value(value, cr_conf_node_null(v) ? 0 : v->len) == 0) {
            cr_conf_error(ld, v->mark,
                          "value of header %s must not contain CR, LF, NUL or other control "
                          "characters", cr_conf_node_got(ld, k));
            continue;
        }
        h = &(*out)[(*nout)++];
        h->name = cr_conf_dup(ld, name, k->len);
        h->value = cr_conf_dup(ld, value, strlen(value));
    }
}

static void
set_header_set(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
               const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_header_rules *rules = obj;

    (void) key;
    header_map(ld, cmd->key, val, &rules->set, &rules->nset);
}

static void
set_header_remove(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                  const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_header_rules      *rules = obj;
    const struct cr_conf_node        *one[1];
    const struct cr_conf_node *const *items;
    size_t                            n, i;

    (void) key;
    if (val->type == CR_CONF_NODE_SCALAR) {
        one[0] = val;
        items = one;
        n = 1;
    } else if (val->type == CR_CONF_NODE_SEQ) {
        items = (const struct cr_conf_node *const *) val->kids;
        n = val->n;
    } else {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list of header names", cmd->key);
        return;
    }
    rules->remove = cr_conf_alloc(ld, n, sizeof(*rules->remove));
    if (rules->remove == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        const struct cr_conf_node *item = items[i];
        const char                *name = cr_conf_node_text(item);

        if (item->type == CR_CONF_NODE_BAD) {
            continue;
        }
        if (name == NULL || cr_conf_is_token(name, item->len) == 0) {
            cr_conf_error(ld, item->mark, "%s is not a valid header name",
                          cr_conf_node_got(ld, item));
            continue;
        }
        if (is_managed_header(name)) {
            cr_conf_error(ld, item->mark, "header %s is managed by corral and cannot be removed",
                          cr_conf_node_got(ld, item));
            continue;
        }
        rules->remove[rules->nremove++] = cr_conf_dup(ld, name, item->len);
    }
}

static const struct cr_conf_cmd rules_cmds[] = {
    { "set",    set_header_set,    0, 0, 0 },
    { "remove", set_header_remove, 0, 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_rules(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
          const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    char where[CR_CONF_QUOTE_MAX + 64];

    if (strcmp(cmd->key, "request_headers") == 0) {
        src_of(ld, obj)->has_reqh = 1;
        src_of(ld, obj)->reqh_mark = key->mark;
    }
    if (val->type != CR_CONF_NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping with \"set\" and/or \"remove\"",
                      cmd->key);
        return;
    }
    snprintf(where, sizeof(where), "\"%s\" of %s", cmd->key, ld->label);
    cr_conf_walk(ld, val, rules_cmds, CR_CONF_FIELD(obj, cmd, struct cr_conf_header_rules), where);
}

/* Note an action key of a route, valid or not, for check.c. */
static void
add_action(struct cr_conf_ld *ld, struct cr_conf_route *r, unsigned bit,
           enum cr_route_action action, const struct cr_conf_node *key)
{
    struct cr_conf_src_route *src = src_of(ld, r);
    unsigned                  i;

    for (i = 0; (1u << i) != bit; i++) {
        continue;
    }
    src->actions |= bit;
    src->action_mark[i] = key->mark;
    r->action = action;
}

static void
set_upstream_ref(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                 const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_route *r = obj;
    const char           *s = cr_conf_node_text(val);

    add_action(ld, r, CR_CONF_A_UPSTREAM, CR_ROUTE_UPSTREAM, key);
    if (s == NULL || *s == '\0') {
        cr_conf_error(ld, val->mark, "\"%s\" must be the name of an upstream, got %s",
                      cmd->key, cr_conf_node_got(ld, val));
        return;
    }
    src_of(ld, r)->upstream_mark = val->mark;
    r->upstream_name = cr_conf_dup(ld, s, val->len);
}

static void
set_body(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
         const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_route *r = obj;

    (void) key;
    if (val->type != CR_CONF_NODE_SCALAR) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a string, got %s", cmd->key,
                      cr_conf_node_got(ld, val));
        return;
    }
    if (cr_conf_node_null(val)) {
        return;
    }
    /* kept byte for byte: a body may hold anything, NUL included */
    r->body = cr_conf_dup(ld, val->s, val->len);
    r->body_len = r->body != NULL ? val->len : 0;
}

static void
set_respond_headers(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                    const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_route *r = obj;

    (void) key;
    header_map(ld, cmd->key, val, &r->respond_headers, &r->nrespond_headers);
}

static const struct cr_conf_cmd respond_cmds[] = {
    { "status",  cr_conf_set_int,     offsetof(struct cr_conf_route, status), 100, 599 },
    { "body",    set_body,            0, 0, 0 },
    { "headers", set_respond_headers, 0, 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_respond(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
            const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_route *r = obj;
    char                  where[CR_CONF_QUOTE_MAX + 64];

    add_action(ld, r, CR_CONF_A_RESPOND, CR_ROUTE_RESPOND, key);
    r->status = 200;
    if (val->type != CR_CONF_NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping like {status: 200, body: \"ok\"}",
                      cmd->key);
        return;
    }
    snprintf(where, sizeof(where), "\"%s\" of %s", cmd->key, ld->label);
    cr_conf_walk(ld, val, respond_cmds, r, where);
}

/* RFC 9110 §15.4: the redirections that carry a Location. */
static void
set_redirect_status(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                    const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);
    uint64_t    v = 0;

    (void) key;
    if (s == NULL || cr_conf_parse_uint(s, 301, 308, &v) != CR_OK
        || v == 304 || v == 305 || v == 306)
    {
        cr_conf_error(ld, val->mark,
                      "\"%s\" of a redirect must be 301, 302, 303, 307 or 308, got %s",
                      cmd->key, cr_conf_node_got(ld, val));
        return;
    }
    *CR_CONF_FIELD(obj, cmd, int) = (int) v;
}

static void
set_location(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
             const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);
    size_t      i;

    (void) key;
    for (i = 0; s != NULL && i < val->len; i++) {
        if ((unsigned char) s[i] <= 0x20 || s[i] == 0x7f) {
            s = NULL;
        }
    }
    if (s == NULL || *s == '\0') {
        cr_conf_error(ld, val->mark,
                      "\"%s\" must be a URL like \"https://example.com/\" without spaces, got %s",
                      cmd->key, cr_conf_node_got(ld, val));
        return;
    }
    *CR_CONF_FIELD(obj, cmd, char *) = cr_conf_dup(ld, s, val->len);
}

static const struct cr_conf_cmd redirect_cmds[] = {
    { "status",   set_redirect_status, offsetof(struct cr_conf_route, status), 0, 0 },
    { "location", set_location,        offsetof(struct cr_conf_route, location), 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_redirect(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
             const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_route *r = obj;
    char                  where[CR_CONF_QUOTE_MAX + 64];

    add_action(ld, r, CR_CONF_A_REDIRECT, CR_ROUTE_REDIRECT, key);
    r->status = 302;
    if (val->type != CR_CONF_NODE_MAP) {
        cr_conf_error(ld, val->mark,
                      "\"%s\" must be a mapping like {status: 301, location: \"https://...\"}",
                      cmd->key);
        return;
    }
    snprintf(where, sizeof(where), "\"%s\" of %s", cmd->key, ld->label);
    cr_conf_walk(ld, val, redirect_cmds, r, where);
    if (cr_conf_node_get(val, "location") == NULL) {
        cr_conf_error(ld, val->mark, "\"%s\" of %s has no \"location\"", cmd->key, ld->label);
    }
}

static const struct cr_conf_cmd route_cmds[] = {
    { "name",             set_route_name,   offsetof(struct cr_conf_route, name), 0, 0 },
    { "match",            set_match,        0, 0, 0 },
    { "upstream",         set_upstream_ref, 0, 0, 0 },
    { "respond",          set_respond,      0, 0, 0 },
    { "redirect",         set_redirect,     0, 0, 0 },
    { "strip_prefix",     set_strip_prefix, offsetof(struct cr_conf_route, strip_prefix), 0, 0 },
    { "request_headers",  set_rules,        offsetof(struct cr_conf_route, request_headers),
      0, 0 },
    { "response_headers", set_rules,        offsetof(struct cr_conf_route, response_headers),
      0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

/*
 * Every entry gets its slot, even one that is not a mapping, so that the
 * default name "route-N" is the entry's position in the file. Messages
 * about a route's keys name the route by its "name" even when that key
 * comes later in the mapping.
 */
void
cr_conf_set_routes(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                   const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf *conf = obj;
    size_t          i;

    (void) key;
    if (cr_conf_node_null(val)) {
        return;     /* an empty section: every entry commented out */
    }
    if (val->type != CR_CONF_NODE_SEQ) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list", cmd->key);
        return;
    }
    conf->routes = cr_conf_alloc(ld, val->n, sizeof(*conf->routes));
    ld->routes = cr_conf_alloc(ld, val->n, sizeof(*ld->routes));
    if (conf->routes == NULL || ld->routes == NULL) {
        return;
    }
    for (i = 0; i < val->n; i++) {
        const struct cr_conf_node *item = val->kids[i];
        const struct cr_conf_node *name;
        struct cr_conf_route      *r = &conf->routes[conf->nroutes++];
        struct cr_conf_src_route  *src = &ld->routes[i];
        char                       label[CR_CONF_QUOTE_MAX + 32];

        r->mark = item->mark;
        src->name_mark = item->mark;

        /* the name, if any, labels messages about the keys before it too */
        name = item->type == CR_CONF_NODE_MAP ? cr_conf_node_get(item, "name") : NULL;
        if (name != NULL && cr_conf_node_text(name) != NULL && name->len != 0) {
            snprintf(label, sizeof(label), "route %s", cr_conf_quote(ld, name->s, name->len));
        } else {
            snprintf(label, sizeof(label), "route \"route-%zu\"", i + 1);
        }

        if (item->type != CR_CONF_NODE_MAP) {
            src->skip = 1;
            if (item->type != CR_CONF_NODE_BAD) {
                cr_conf_error(ld, item->mark, "\"routes\" entry must be a mapping");
            }
        } else {
            ld->label = label;
            cr_conf_walk(ld, item, route_cmds, r, label);
            ld->label = NULL;
        }
        if (r->name == NULL && asprintf(&r->name, "route-%zu", i + 1) == -1) {
            r->name = NULL;
            cr_conf_oom(ld);
        }
    }
}

static void
free_headers(struct cr_conf_header *h, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

static void
free_rules(struct cr_conf_header_rules *rules)
{
    size_t i;

    free_headers(rules->set, rules->nset);
    for (i = 0; i < rules->nremove; i++) {
        free(rules->remove[i]);
    }
    free(rules->remove);
}

void
cr_conf_route_free(struct cr_conf_route *r)
{
    free(r->name);
    free(r->host);
    free(r->path);
    free(r->path_prefix);
    if (r->path_regex != NULL) {
        regfree(&r->regex);
        free(r->path_regex);
    }
    free(r->upstream_name);
    free(r->body);
    free_headers(r->respond_headers, r->nrespond_headers);
    free(r->location);
    free(r->strip_prefix);
    free_rules(&r->request_headers);
    free_rules(&r->response_headers);
}
