/*
 * load.c - YAML file to struct cr_conf: the entry points, the collected
 * errors, the table walker, and the keys outside "routes".
 *
 * Owns the file's bytes while it is parsed, the error list, and the struct
 * cr_conf being filled (handed to the caller on success, freed on
 * failure). tree.c turns the bytes into nodes that keep their marks;
 * route.c handles the "routes" list, upstream.c the "upstreams" map; check.c does what needs the whole
 * tree (unknown upstreams, duplicate names).
 *
 * The tree is walked with tables of {key, setter, offset, min, max} in the
 * manner of twemproxy's conf_commands[]: adding a key is one line in a
 * table, plus a setter if its syntax is new. A setter converts and checks
 * one value, reports what is wrong at the value's mark and returns, and the
 * walk carries on, so one run reports every mistake in the file.
 *
 * Errors are sorted by position before they are handed out, so they read
 * in file order whichever pass found them.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/internal.h"

#define MAX_FILE_BYTES  (16 * 1024 * 1024)  /* a config is not this big */

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */

void
cr_conf_error(struct cr_conf_ld *ld, struct cr_mark mark, const char *fmt, ...)
{
    va_list  ap;
    int      n;
    char    *msg;

    ld->failed = 1;
    if (ld->nerrs == ld->caperrs) {
        size_t              cap = ld->caperrs == 0 ? 16 : ld->caperrs * 2;
        struct cr_conf_err *errs = realloc(ld->errs, cap * sizeof(*errs));

        if (errs == NULL) {
            return;
        }
        ld->errs = errs;
        ld->caperrs = cap;
    }

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    msg = malloc((size_t) n + 1);
    if (msg == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, (size_t) n + 1, fmt, ap);
    va_end(ap);

    ld->errs[ld->nerrs].mark = mark;
    ld->errs[ld->nerrs].seq = ld->nerrs;
    ld->errs[ld->nerrs].msg = msg;
    ld->nerrs++;
}

void
cr_conf_oom(struct cr_conf_ld *ld)
{
    struct cr_mark none = { 0, 0 };

    if (ld->oom == 0) {
        ld->oom = 1;
        cr_conf_error(ld, none, "out of memory");
    }
    ld->failed = 1;
}

const char *
cr_conf_quote(struct cr_conf_ld *ld, const char *s, size_t len)
{
    char   *out = ld->quote[ld->nextq];
    size_t  o = 0;
    size_t  i;

    ld->nextq = (ld->nextq + 1) % CR_CONF_NQUOTE;
    out[o++] = '"';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];

        /* cut long text, but never inside a UTF-8 sequence */
        if (o >= CR_CONF_QUOTE_MAX && ((c & 0xc0) != 0x80 || o >= CR_CONF_QUOTE_MAX + 4)) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char) c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c == '\r') {
            out[o++] = '\\';
            out[o++] = 'r';
        } else if (c == '\t') {
            out[o++] = '\\';
            out[o++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t) snprintf(out + o, 5, "\\x%02x", c);
        } else {
            out[o++] = (char) c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static int
err_cmp(const void *a, const void *b)
{
    const struct cr_conf_err *x = a;
    const struct cr_conf_err *y = b;

    if (x->mark.line != y->mark.line) {
        return x->mark.line < y->mark.line ? -1 : 1;
    }
    if (x->mark.col != y->mark.col) {
        return x->mark.col < y->mark.col ? -1 : 1;
    }
    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }
    return 0;
}

/* Append <msg> (which this function takes) to <errs>; drops it if full. */
static void
errs_push(struct cr_conf_errs *errs, char *msg)
{
    char **msgs;

    if (errs == NULL || msg == NULL) {
        free(msg);
        return;
    }
    msgs = realloc(errs->msgs, (errs->n + 1) * sizeof(*msgs));
    if (msgs == NULL) {
        free(msg);
        return;
    }
    errs->msgs = msgs;
    errs->msgs[errs->n++] = msg;
}

static char *
format_err(const char *file, const struct cr_conf_err *e)
{
    char *line;
    int   n;

    if (e->mark.line == 0) {
        n = asprintf(&line, "%s: %s", file, e->msg);
    } else {
        n = asprintf(&line, "%s:%u:%u: %s", file, e->mark.line, e->mark.col, e->msg);
    }
    return n == -1 ? NULL : line;
}

/* Hand the collected errors, in file order, to <errs>; free them in <ld>. */
static void
flush_errors(struct cr_conf_ld *ld, struct cr_conf_errs *errs)
{
    size_t i;

    if (ld->nerrs > 1) {
        qsort(ld->errs, ld->nerrs, sizeof(*ld->errs), err_cmp);
    }
    for (i = 0; i < ld->nerrs; i++) {
        errs_push(errs, format_err(ld->file, &ld->errs[i]));
        free(ld->errs[i].msg);
    }
    if (ld->failed && ld->nerrs == 0) {
        /* not even one message could be stored */
        errs_push(errs, strdup("out of memory"));
    }
    free(ld->errs);
    ld->errs = NULL;
    ld->nerrs = 0;
}

void
cr_conf_errs_free(struct cr_conf_errs *errs)
{
    size_t i;

    if (errs == NULL) {
        return;
    }
    for (i = 0; i < errs->n; i++) {
        free(errs->msgs[i]);
    }
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}

/* ---------------------------------------------------------------------- */
/* Helpers for setters                                                     */

char *
cr_conf_dup(struct cr_conf_ld *ld, const char *s, size_t len)
{
    char *p = malloc(len + 1);

    if (p == NULL) {
        cr_conf_oom(ld);
        return NULL;
    }
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *
cr_conf_alloc(struct cr_conf_ld *ld, size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size);

    if (p == NULL) {
        cr_conf_oom(ld);
    }
    return p;
}

/* "16k" rather than "16384" when the value allows. */
static const char *
fmt_size(char *buf, size_t len, uint64_t v)
{
    if (v != 0 && v % (1024ULL * 1024 * 1024) == 0) {
        snprintf(buf, len, "%llug", (unsigned long long) (v >> 30));
    } else if (v != 0 && v % (1024ULL * 1024) == 0) {
        snprintf(buf, len, "%llum", (unsigned long long) (v >> 20));
    } else if (v != 0 && v % 1024 == 0) {
        snprintf(buf, len, "%lluk", (unsigned long long) (v >> 10));
    } else {
        snprintf(buf, len, "%llu", (unsigned long long) v);
    }
    return buf;
}

/*
 * Duplicate keys are looked for here because libyaml does not: YAML says
 * keys are unique, and a silently ignored second "listen" would be worse.
 * The key table is small, so a linear search is enough.
 */
void
cr_conf_walk(struct cr_conf_ld *ld, const struct cr_conf_node *map,
             const struct cr_conf_cmd *cmds, void *obj, const char *where)
{
    size_t i, j;

    for (i = 0; i + 1 < map->n; i += 2) {
        const struct cr_conf_node *key = map->kids[i];
        const struct cr_conf_node *val = map->kids[i + 1];
        const struct cr_conf_cmd  *cmd;
        const struct cr_conf_cmd  *near = NULL;
        int                        dup = 0;

        if (key->type == CR_CONF_NODE_BAD) {
            continue;
        }
        if (key->type != CR_CONF_NODE_SCALAR) {
            cr_conf_error(ld, key->mark, "keys in %s must be strings, got %s", where,
                          cr_conf_node_got(ld, key));
            continue;
        }
        for (j = 0; j < i; j += 2) {
            const struct cr_conf_node *prev = map->kids[j];

            if (prev->type == CR_CONF_NODE_SCALAR && prev->len == key->len
                && memcmp(prev->s, key->s, key->len) == 0)
            {
                cr_conf_error(ld, key->mark,
                              "duplicate key %s in %s (first at line %u, column %u)",
                              cr_conf_quote(ld, key->s, key->len), where, prev->mark.line,
                              prev->mark.col);
                dup = 1;
                break;
            }
        }
        if (dup) {
            continue;
        }

        for (cmd = cmds; cmd->key != NULL; cmd++) {
            if (cr_conf_node_is(key, cmd->key)) {
                break;
            }
            if (near == NULL && strlen(key->s) == key->len && cr_conf_similar(key->s, cmd->key)) {
                near = cmd;
            }
        }
        if (cmd->key == NULL) {
            if (near != NULL) {
                cr_conf_error(ld, key->mark, "unknown key %s in %s (did you mean \"%s\"?)",
                              cr_conf_quote(ld, key->s, key->len), where, near->key);
            } else {
                cr_conf_error(ld, key->mark, "unknown key %s in %s",
                              cr_conf_quote(ld, key->s, key->len), where);
            }
            continue;
        }
        if (val->type == CR_CONF_NODE_BAD) {
            continue;
        }
        cmd->set(ld, cmd, key, val, obj);
    }
}

/* ---------------------------------------------------------------------- */
/* Setters for scalars                                                     */

/* Instance name, route name: a safe name (see cr_conf_is_name()). */
void
cr_conf_set_name(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                 const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    char      **field = CR_CONF_FIELD(obj, cmd, char *);
    const char *s = cr_conf_node_text(val);

    (void) key;
    if (s == NULL || cr_conf_is_name(s, val->len) == 0) {
        cr_conf_error(ld, val->mark,
                      "\"%s\" must be 1 to %d letters, digits, \".\", \"_\" or \"-\", got %s",
                      cmd->key, CR_CONF_NAME_MAX, cr_conf_node_got(ld, val));
        if (s == NULL) {
            return;
        }
    }
    free(*field);
    *field = cr_conf_dup(ld, s, val->len);
}

static int
get_uint(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd, const struct cr_conf_node *val,
         uint64_t *v)
{
    const char *s = cr_conf_node_text(val);

    if (s == NULL || cr_conf_parse_uint(s, cmd->min, cmd->max, v) != CR_OK) {
        cr_conf_error(ld, val->mark, "\"%s\" must be an integer from %llu to %llu, got %s",
                      cmd->key, (unsigned long long) cmd->min, (unsigned long long) cmd->max,
                      cr_conf_node_got(ld, val));
        return CR_ERR;
    }
    return CR_OK;
}

void
cr_conf_set_uint(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
         const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    uint64_t v;

    (void) key;
    if (get_uint(ld, cmd, val, &v) == CR_OK) {
        *CR_CONF_FIELD(obj, cmd, unsigned) = (unsigned) v;
    }
}

void
cr_conf_set_int(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    uint64_t v;

    (void) key;
    if (get_uint(ld, cmd, val, &v) == CR_OK) {
        *CR_CONF_FIELD(obj, cmd, int) = (int) v;
    }
}

static void
set_workers(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
            const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);
    uint64_t    v;

    (void) key;
    if (s != NULL && strcmp(s, "auto") == 0) {
        *CR_CONF_FIELD(obj, cmd, unsigned) = 0;
        return;
    }
    if (s == NULL || cr_conf_parse_uint(s, cmd->min, cmd->max, &v) != CR_OK) {
        cr_conf_error(ld, val->mark,
                      "\"%s\" must be \"auto\" or an integer from %llu to %llu, got %s",
                      cmd->key, (unsigned long long) cmd->min, (unsigned long long) cmd->max,
                      cr_conf_node_got(ld, val));
        return;
    }
    *CR_CONF_FIELD(obj, cmd, unsigned) = (unsigned) v;
}

void
cr_conf_set_duration(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
             const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);
    uint64_t    v;

    (void) key;
    if (s == NULL || cr_conf_parse_duration(s, &v) != CR_OK) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a duration like \"5s\", got %s",
                      cmd->key, cr_conf_node_got(ld, val));
        return;
    }
    if (v < cmd->min || v > cmd->max) {
        if (cmd->min == 1 && cmd->max == CR_CONF_NO_MAX) {
            cr_conf_error(ld, val->mark, "\"%s\" must be greater than 0, got %s", cmd->key,
                          cr_conf_node_got(ld, val));
        } else {
            cr_conf_error(ld, val->mark, "\"%s\" must be from %llums to %llums, got %s",
                          cmd->key, (unsigned long long) cmd->min,
                          (unsigned long long) cmd->max, cr_conf_node_got(ld, val));
        }
        return;
    }
    *CR_CONF_FIELD(obj, cmd, uint64_t) = v;
}

static void
set_size(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
         const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);
    uint64_t    v;
    char        lo[32], hi[32];

    (void) key;
    if (s == NULL || cr_conf_parse_size(s, &v) != CR_OK) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a size like \"16k\", got %s", cmd->key,
                      cr_conf_node_got(ld, val));
        return;
    }
    if (v < cmd->min || v > cmd->max) {
        if (cmd->max != CR_CONF_NO_MAX) {
            cr_conf_error(ld, val->mark, "\"%s\" must be from %s to %s, got %s", cmd->key,
                          fmt_size(lo, sizeof(lo), cmd->min), fmt_size(hi, sizeof(hi), cmd->max),
                          cr_conf_node_got(ld, val));
        } else if (cmd->min == 1) {
            cr_conf_error(ld, val->mark, "\"%s\" must be greater than 0, got %s", cmd->key,
                          cr_conf_node_got(ld, val));
        } else {
            cr_conf_error(ld, val->mark, "\"%s\" must be at least %s, got %s", cmd->key,
                          fmt_size(lo, sizeof(lo), cmd->min), cr_conf_node_got(ld, val));
        }
        return;
    }
    *CR_CONF_FIELD(obj, cmd, uint64_t) = v;
}

/*
 * Parse the address in <val> into <addr>; <what> names it in the message
 * ('"address"', '"servers" entry'). A host name that is not "localhost"
 * gets a hint, since names are not resolved.
 */
void
cr_conf_parse_addr_node(struct cr_conf_ld *ld, const char *what, const struct cr_conf_node *val,
           struct cr_conf_addr *addr)
{
    const char *s = cr_conf_node_text(val);
    const char *colon;
    const char *p;
    int         named = 0;

    if (s != NULL && cr_conf_parse_addr(s, addr) == CR_OK) {
        return;
    }
    if (s != NULL && s[0] != '[' && strncmp(s, "localhost:", 10) != 0) {
        colon = strrchr(s, ':');
        for (p = s; colon != NULL && p < colon; p++) {
            if (isalpha((unsigned char) *p)) {
                named = 1;
            }
        }
    }
    cr_conf_error(ld, val->mark,
                  "%s must be an address like \"127.0.0.1:8080\" or \"[::1]:8080\", got %s%s",
                  what, cr_conf_node_got(ld, val),
                  named ? " (host names other than localhost are not looked up)" : "");
}

void
cr_conf_set_addr(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
         const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    char what[64];

    (void) key;
    snprintf(what, sizeof(what), "\"%s\"", cmd->key);
    cr_conf_parse_addr_node(ld, what, val, CR_CONF_FIELD(obj, cmd, struct cr_conf_addr));
}

/* ---------------------------------------------------------------------- */
/* Listen, limits, upstreams                                               */

static const struct cr_conf_cmd listen_cmds[] = {
    { "address", cr_conf_set_addr, offsetof(struct cr_conf_listen, addr), 0, 0 },
    { "backlog", cr_conf_set_int,  offsetof(struct cr_conf_listen, backlog), 1, 65535 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_listen(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
           const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf *conf = obj;
    size_t          i;

    (void) key;
    if (val->type != CR_CONF_NODE_SEQ) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list", cmd->key);
        return;
    }
    if (val->n == 0) {
        cr_conf_error(ld, val->mark, "\"%s\" must not be empty", cmd->key);
        return;
    }
    conf->listen = cr_conf_alloc(ld, val->n, sizeof(*conf->listen));
    if (conf->listen == NULL) {
        return;
    }
    for (i = 0; i < val->n; i++) {
        const struct cr_conf_node *item = val->kids[i];
        struct cr_conf_listen     *l = &conf->listen[conf->nlisten++];

        l->backlog = CR_CONF_DEFAULT_BACKLOG;
        l->mark = item->mark;
        if (item->type == CR_CONF_NODE_SCALAR) {
            cr_conf_parse_addr_node(ld, "\"listen\" entry", item, &l->addr);
        } else if (item->type == CR_CONF_NODE_MAP) {
            cr_conf_walk(ld, item, listen_cmds, l, "a \"listen\" entry");
            if (cr_conf_node_get(item, "address") == NULL) {
                cr_conf_error(ld, item->mark, "\"listen\" entry has no \"address\"");
            }
        } else if (item->type != CR_CONF_NODE_BAD) {
            cr_conf_error(ld, item->mark, "\"listen\" entry must be an address or a mapping");
        }
    }
}

static const struct cr_conf_cmd limits_cmds[] = {
    { "max_header_bytes", set_size,             offsetof(struct cr_conf_limits, max_header_bytes),
      1024, 1024 * 1024 },
    { "max_headers",      cr_conf_set_uint,     offsetof(struct cr_conf_limits, max_headers),
      1, 10000 },
    { "max_uri_bytes",    set_size,             offsetof(struct cr_conf_limits, max_uri_bytes),
      1, 1024 * 1024 },
    { "max_body_bytes",   set_size,             offsetof(struct cr_conf_limits, max_body_bytes),
      0, CR_CONF_NO_MAX },
    { "max_connections",  cr_conf_set_uint,     offsetof(struct cr_conf_limits, max_connections),
      1, 1000000 },
    { "header_timeout",   cr_conf_set_duration,
      offsetof(struct cr_conf_limits, header_timeout_ms), 1, CR_CONF_NO_MAX },
    { "idle_timeout",     cr_conf_set_duration,
      offsetof(struct cr_conf_limits, idle_timeout_ms), 1, CR_CONF_NO_MAX },
    { "send_timeout",     cr_conf_set_duration,
      offsetof(struct cr_conf_limits, send_timeout_ms), 1, CR_CONF_NO_MAX },
    { "body_timeout",     cr_conf_set_duration,
      offsetof(struct cr_conf_limits, body_timeout_ms), 1, CR_CONF_NO_MAX },
    { NULL, NULL, 0, 0, 0 }
};

/*
 * The request line counts against max_header_bytes, so a larger
 * max_uri_bytes could never be reached: an explicit one is an error, the
 * default is lowered to fit.
 */
static void
set_limits(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
           const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_limits     *lim = CR_CONF_FIELD(obj, cmd, struct cr_conf_limits);
    const struct cr_conf_node *uri;
    char                       a[32], b[32];

    (void) key;
    if (cr_conf_node_null(val)) {
        return;     /* an empty section: every entry commented out */
    }
    if (val->type != CR_CONF_NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping", cmd->key);
        return;
    }
    cr_conf_walk(ld, val, limits_cmds, lim, "\"limits\"");

    if (lim->max_uri_bytes > lim->max_header_bytes) {
        uri = cr_conf_node_get(val, "max_uri_bytes");
        if (uri == NULL) {
            lim->max_uri_bytes = lim->max_header_bytes;
        } else {
            cr_conf_error(ld, uri->mark,
                          "\"max_uri_bytes\" (%s) must not be larger than "
                          "\"max_header_bytes\" (%s)",
                          fmt_size(a, sizeof(a), lim->max_uri_bytes),
                          fmt_size(b, sizeof(b), lim->max_header_bytes));
        }
    }
}

/* ---------------------------------------------------------------------- */
/* stats: and admin:                                                        */

/* An octal permission like "0640" or "640" for the stats segment. */
static void
set_mode(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
         const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);
    unsigned    v = 0;
    size_t      i, n;

    (void) key;
    n = s != NULL ? strlen(s) : 0;
    for (i = 0; i < n && s[i] >= '0' && s[i] <= '7'; i++) {
        v = v * 8 + (unsigned) (s[i] - '0');
    }
    if (n < 3 || n > 4 || i != n || (v & 0600) != 0600 || (v & 07000) != 0) {
        cr_conf_error(ld, val->mark, "\"%s\" must be an octal permission like \"0640\" "
                      "that lets the owner read and write, got %s", cmd->key,
                      cr_conf_node_got(ld, val));
        return;
    }
    *CR_CONF_FIELD(obj, cmd, unsigned) = v;
}

/* true / false (YAML 1.2 core schema spellings). */
void
cr_conf_set_bool(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
         const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);

    (void) key;
    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0
                      || strcmp(s, "TRUE") == 0))
    {
        *CR_CONF_FIELD(obj, cmd, int) = 1;
    } else if (s != NULL && (strcmp(s, "false") == 0 || strcmp(s, "False") == 0
                             || strcmp(s, "FALSE") == 0))
    {
        *CR_CONF_FIELD(obj, cmd, int) = 0;
    } else {
        cr_conf_error(ld, val->mark, "\"%s\" must be true or false, got %s", cmd->key,
                      cr_conf_node_got(ld, val));
    }
}

static const struct cr_conf_cmd stats_cmds[] = {
    { "mode", set_mode, offsetof(struct cr_conf, stats_mode), 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_admin_address(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                  const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    (void) cmd;
    (void) key;
    cr_conf_parse_addr_node(ld, "\"admin\" address", val, (struct cr_conf_addr *) obj);
}

static const struct cr_conf_cmd admin_cmds[] = {
    { "address", set_admin_address, 0, 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

void
cr_conf_walk_section(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
                     const struct cr_conf_node *val, const struct cr_conf_cmd *cmds, void *obj,
                     const char *where)
{
    if (cr_conf_node_null(val)) {
        return;
    }
    if (val->type != CR_CONF_NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping", cmd->key);
        return;
    }
    cr_conf_walk(ld, val, cmds, obj, where);
}

static void
set_stats(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
          const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    (void) key;
    cr_conf_walk_section(ld, cmd, val, stats_cmds, obj, cmd->key);
}

static void
set_admin(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
          const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf *conf = obj;

    (void) key;
    cr_conf_walk_section(ld, cmd, val, admin_cmds, &conf->admin, cmd->key);
    if (val->type == CR_CONF_NODE_MAP && cr_conf_node_get(val, "address") == NULL) {
        cr_conf_error(ld, val->mark, "\"admin\" has no \"address\"");
    }
}

/* ---------------------------------------------------------------------- */
/* user:, group: and access_log:                                           */

/*
 * user: and group: are looked up when the file is loaded, so `corral -t`
 * already says that a name does not exist on this host, with its position.
 * A reload looks them up again (the account database may have changed).
 */
static void
set_account(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
            const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf_identity *id = CR_CONF_FIELD(obj, cmd, struct cr_conf_identity);
    int           is_group = strcmp(cmd->key, "group") == 0;
    const char   *s = cr_conf_node_text(val);
    struct passwd pw, *pwres = NULL;
    struct group  gr, *grres = NULL;
    char          buf[8192];

    (void) key;
    if (s == NULL || val->len == 0) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a %s name, got %s", cmd->key, cmd->key,
                      cr_conf_node_got(ld, val));
        return;
    }
    if (is_group ? getgrnam_r(s, &gr, buf, sizeof(buf), &grres) != 0 || grres == NULL
                 : getpwnam_r(s, &pw, buf, sizeof(buf), &pwres) != 0 || pwres == NULL)
    {
        cr_conf_error(ld, val->mark, "\"%s\" %s is not a %s on this system", cmd->key,
                      cr_conf_quote(ld, s, val->len), cmd->key);
        return;
    }
    if (is_group) {
        free(id->group);
        id->group = cr_conf_dup(ld, s, val->len);
        id->gid = gr.gr_gid;
        return;
    }
    free(id->user);
    id->user = cr_conf_dup(ld, s, val->len);
    id->uid = pw.pw_uid;
    if (id->group == NULL) {
        id->gid = pw.pw_gid;            /* group: overrides, in any order */
    }
}

/* "stdout", or an absolute file name: a relative one would depend on cwd. */
static void
set_log_path(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
             const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    char      **field = CR_CONF_FIELD(obj, cmd, char *);
    const char *s = cr_conf_node_text(val);

    (void) key;
    if (s == NULL || (strcmp(s, "stdout") != 0 && s[0] != '/') || strlen(s) != val->len) {
        cr_conf_error(ld, val->mark, "\"%s\" must be \"stdout\" or an absolute file name, "
                      "got %s", cmd->key, cr_conf_node_got(ld, val));
        return;
    }
    free(*field);
    *field = cr_conf_dup(ld, s, val->len);
}

static void
set_log_format(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
               const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    const char *s = cr_conf_node_text(val);

    (void) key;
    if (s != NULL && strcmp(s, "combined") == 0) {
        *CR_CONF_FIELD(obj, cmd, enum cr_log_format) = CR_LOG_FORMAT_COMBINED;
    } else if (s != NULL && strcmp(s, "json") == 0) {
        *CR_CONF_FIELD(obj, cmd, enum cr_log_format) = CR_LOG_FORMAT_JSON;
    } else {
        cr_conf_error(ld, val->mark, "\"%s\" must be combined or json, got %s", cmd->key,
                      cr_conf_node_got(ld, val));
    }
}

static const struct cr_conf_cmd access_log_cmds[] = {
    { "path",   set_log_path,   offsetof(struct cr_conf_access_log, path), 0, 0 },
    { "format", set_log_format, offsetof(struct cr_conf_access_log, format), 0, 0 },
    { "buffer", set_size,       offsetof(struct cr_conf_access_log, buffer), 0, 16 << 20 },
    { "flush",  cr_conf_set_duration, offsetof(struct cr_conf_access_log, flush_ms), 1, 3600000 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_access_log(struct cr_conf_ld *ld, const struct cr_conf_cmd *cmd,
               const struct cr_conf_node *key, const struct cr_conf_node *val, void *obj)
{
    struct cr_conf *conf = obj;

    (void) key;
    cr_conf_walk_section(ld, cmd, val, access_log_cmds, &conf->access_log, cmd->key);
    if (val->type == CR_CONF_NODE_MAP && cr_conf_node_get(val, "path") == NULL) {
        cr_conf_error(ld, val->mark, "\"access_log\" has no \"path\" (a file or stdout)");
    }
}

/* ---------------------------------------------------------------------- */
/* The top level                                                           */

static const struct cr_conf_cmd top_cmds[] = {
    { "name",          cr_conf_set_name,      offsetof(struct cr_conf, name), 0, 0 },
    { "workers",       set_workers,           offsetof(struct cr_conf, workers), 1, 256 },
    { "drain_timeout", cr_conf_set_duration,  offsetof(struct cr_conf, drain_timeout_ms),
      1, CR_CONF_NO_MAX },
    { "listen",        set_listen,            0, 0, 0 },
    { "limits",        set_limits,            offsetof(struct cr_conf, limits), 0, 0 },
    { "upstreams",     cr_conf_set_upstreams, 0, 0, 0 },
    { "routes",        cr_conf_set_routes,    0, 0, 0 },
    { "stats",         set_stats,             0, 0, 0 },
    { "merge_slashes", cr_conf_set_bool,      offsetof(struct cr_conf, merge_slashes), 0, 0 },
    { "admin",         set_admin,             0, 0, 0 },
    { "user",          set_account,           offsetof(struct cr_conf, identity), 0, 0 },
    { "group",         set_account,           offsetof(struct cr_conf, identity), 0, 0 },
    { "access_log",    set_access_log,        0, 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
conf_defaults(struct cr_conf *conf)
{
    conf->workers = 0;
    conf->stats_mode = CR_CONF_DEFAULT_STATS_MODE;
    conf->merge_slashes = 1;
    conf->access_log.buffer = CR_CONF_DEFAULT_LOG_BUFFER;
    conf->access_log.flush_ms = CR_CONF_DEFAULT_LOG_FLUSH;
    conf->drain_timeout_ms = CR_CONF_DEFAULT_DRAIN_TIMEOUT;
    conf->limits.max_header_bytes = CR_CONF_DEFAULT_MAX_HEADER_BYTES;
    conf->limits.max_headers = CR_CONF_DEFAULT_MAX_HEADERS;
    conf->limits.max_uri_bytes = CR_CONF_DEFAULT_MAX_URI_BYTES;
    conf->limits.max_body_bytes = CR_CONF_DEFAULT_MAX_BODY_BYTES;
    conf->limits.max_connections = CR_CONF_DEFAULT_MAX_CONNECTIONS;
    conf->limits.header_timeout_ms = CR_CONF_DEFAULT_HEADER_TIMEOUT;
    conf->limits.idle_timeout_ms = CR_CONF_DEFAULT_IDLE_TIMEOUT;
    conf->limits.send_timeout_ms = CR_CONF_DEFAULT_SEND_TIMEOUT;
    conf->limits.body_timeout_ms = CR_CONF_DEFAULT_BODY_TIMEOUT;
}

static void
walk_top(struct cr_conf_ld *ld, const struct cr_conf_node *root)
{
    struct cr_mark start = { 1, 1 };

    if (root == NULL || cr_conf_node_null(root)) {
        cr_conf_error(ld, start, "the file holds no configuration; "
                      "at least \"listen\" is required");
        return;
    }
    if (root->type != CR_CONF_NODE_MAP) {
        if (root->type != CR_CONF_NODE_BAD) {
            cr_conf_error(ld, root->mark,
                          "the top level must be a mapping with keys like \"listen\" and "
                          "\"routes\", got %s", cr_conf_node_got(ld, root));
        }
        return;
    }
    cr_conf_walk(ld, root, top_cmds, ld->conf, "top level");
    if (cr_conf_node_get(root, "listen") == NULL) {
        cr_conf_error(ld, root->mark, "missing \"listen\": at least one address to listen on "
                      "is required");
    }
}

/* FNV-1a, 64 bits: cheap, and enough to tell two configs apart. */
static uint64_t
fnv1a(const char *buf, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    size_t   i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) buf[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct cr_conf *
cr_conf_load_buf(const char *name, const char *buf, size_t len, struct cr_conf_errs *errs)
{
    struct cr_conf_ld    ld;
    struct cr_conf_node *root;

    memset(&ld, 0, sizeof(ld));
    ld.file = name;
    ld.conf = calloc(1, sizeof(*ld.conf));
    if (ld.conf == NULL) {
        cr_conf_oom(&ld);
        flush_errors(&ld, errs);
        return NULL;
    }
    conf_defaults(ld.conf);
    ld.conf->path = cr_conf_dup(&ld, name, strlen(name));
    ld.conf->name = cr_conf_dup(&ld, CR_CONF_DEFAULT_NAME, strlen(CR_CONF_DEFAULT_NAME));
    ld.conf->hash = fnv1a(buf, len);

    root = cr_conf_tree_read(&ld, buf, len);
    if (ld.fatal == 0) {
        walk_top(&ld, root);
        cr_conf_check(&ld);
    }
    cr_conf_tree_free(root);
    free(ld.routes);

    if (ld.failed) {
        cr_conf_free(ld.conf);
        flush_errors(&ld, errs);
        return NULL;
    }
    free(ld.errs);
    {
        /* stats rows are the master's to assign; none until it does */
        size_t i, j;

        for (i = 0; i < ld.conf->nroutes; i++) {
            ld.conf->routes[i].stats_row = -1;
        }
        for (i = 0; i < ld.conf->nupstreams; i++) {
            for (j = 0; j < ld.conf->upstreams[i].nservers; j++) {
                ld.conf->upstreams[i].servers[j].stats_row = -1;
            }
        }
    }
    return ld.conf;
}

/* Read all of <path> into a malloc'd buffer. Returns CR_ERR with errno set. */
static int
read_file(const char *path, char **out, size_t *outlen)
{
    struct stat st;
    char       *buf = NULL;
    size_t      len = 0;
    size_t      cap = 0;
    ssize_t     n;
    int         fd;
    int         saved;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return CR_ERR;
    }
    if (fstat(fd, &st) == -1) {
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        goto fail;
    }
    for (;;) {
        if (len == cap) {
            char *p;

            if (cap >= MAX_FILE_BYTES) {
                errno = EFBIG;
                goto fail;
            }
            cap = cap == 0 ? 16384 : cap * 2;
            p = realloc(buf, cap);
            if (p == NULL) {
                goto fail;
            }
            buf = p;
        }
        n = read(fd, buf + len, cap - len);
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            goto fail;
        }
        if (n == 0) {
            break;
        }
        len += (size_t) n;
    }
    close(fd);
    *out = buf;
    *outlen = len;
    return CR_OK;

fail:
    saved = errno;
    free(buf);
    close(fd);
    errno = saved;
    return CR_ERR;
}

struct cr_conf *
cr_conf_load(const char *path, struct cr_conf_errs *errs)
{
    struct cr_conf *conf;
    char           *buf;
    size_t          len;
    char           *msg;

    if (read_file(path, &buf, &len) != CR_OK) {
        if (asprintf(&msg, "%s: %s", path, strerror(errno)) == -1) {
            msg = NULL;
        }
        errs_push(errs, msg);
        return NULL;
    }
    conf = cr_conf_load_buf(path, buf, len, errs);
    free(buf);
    return conf;
}

/* ---------------------------------------------------------------------- */
/* Freeing                                                                 */

void
cr_conf_free(struct cr_conf *conf)
{
    size_t i, j;

    if (conf == NULL) {
        return;
    }
    free(conf->admin.text);
    free(conf->identity.user);
    free(conf->identity.group);
    free(conf->access_log.path);
    for (i = 0; i < conf->nlisten; i++) {
        free(conf->listen[i].addr.text);
    }
    free(conf->listen);
    for (i = 0; i < conf->nupstreams; i++) {
        struct cr_conf_upstream *u = &conf->upstreams[i];

        for (j = 0; j < u->nservers; j++) {
            free(u->servers[j].addr.text);
        }
        free(u->servers);
        free(u->name);
        free(u->hash.name);
        free(u->health.path);
    }
    free(conf->upstreams);
    for (i = 0; i < conf->nroutes; i++) {
        cr_conf_route_free(&conf->routes[i]);
    }
    free(conf->routes);
    free(conf->path);
    free(conf->name);
    free(conf);
}
