/*
 * load.c - YAML file to struct cr_conf.
 *
 * Owns the reading of the file, the libyaml parser, a temporary tree of
 * nodes, the collected errors, and the struct cr_conf it fills (handed to
 * the caller on success, freed on failure).
 *
 * Two passes. First, libyaml's event parser builds a small tree: scalars,
 * sequences and mappings, each with the mark (line, column) where it
 * starts. A syntax error stops there, since libyaml cannot go on after one.
 * Second, the tree is walked with tables of {key, setter, offset, min, max}
 * in the manner of twemproxy's conf_commands[]: adding a key is one line in
 * a table, plus a setter if its syntax is new. Setters convert and check one
 * value each, report what is wrong at the value's mark and carry on, so
 * one run reports every mistake in the file. check.c then looks at what
 * only the whole tree can tell (unknown upstreams, duplicate names).
 *
 * Errors are sorted by position before they are handed out, so they read
 * in file order whichever pass found them.
 *
 * YAML features a config has no use for are refused rather than half
 * supported: aliases (they allow exponential expansion), and more than one
 * document per file. Tags are ignored; every scalar is read as text and
 * converted by the setter of its key.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "conf/conf.h"
#include "conf/internal.h"

#define MAX_DEPTH       64                  /* nesting the tree accepts */
#define MAX_FILE_BYTES  (16 * 1024 * 1024)  /* a config is not this big */
#define NO_MAX          UINT64_MAX

/* ---------------------------------------------------------------------- */
/* The node tree                                                           */

enum node_type {
    NODE_SCALAR = 0,
    NODE_SEQ,
    NODE_MAP,
    NODE_BAD                /* an alias: reported, then skipped silently */
};

struct node {
    enum node_type   type;
    struct cr_mark   mark;      /* where the node starts */
    unsigned         plain;     /* scalar written without quotes */
    char            *s;         /* scalar text, NUL-terminated */
    size_t           len;       /* its length; may hold NUL bytes */
    struct node    **kids;      /* SEQ: items; MAP: key, value, key, ... */
    size_t           n;
    size_t           cap;
};

static struct cr_mark
mark_of(yaml_mark_t m)
{
    struct cr_mark cm;

    cm.line = (unsigned) m.line + 1;
    cm.col = (unsigned) m.column + 1;
    return cm;
}

static void
node_free(struct node *n)
{
    size_t i;

    if (n == NULL) {
        return;
    }
    for (i = 0; i < n->n; i++) {
        node_free(n->kids[i]);
    }
    free(n->kids);
    free(n->s);
    free(n);
}

static int
node_add(struct node *parent, struct node *kid)
{
    if (parent->n == parent->cap) {
        size_t        cap = parent->cap == 0 ? 8 : parent->cap * 2;
        struct node **kids = realloc(parent->kids, cap * sizeof(*kids));

        if (kids == NULL) {
            return CR_ERR;
        }
        parent->kids = kids;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return CR_OK;
}

/*
 * Line and column of byte <off> of <buf>. libyaml gives reader errors
 * (bad UTF-8, control characters) as a byte offset, not a mark.
 */
static struct cr_mark
mark_at_offset(const char *buf, size_t len, size_t off)
{
    struct cr_mark m = { 1, 1 };
    size_t         i;

    for (i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            m.line++;
            m.col = 1;
        } else if (((unsigned char) buf[i] & 0xc0) != 0x80) {
            m.col++;        /* count characters, not UTF-8 continuation bytes */
        }
    }
    return m;
}

static void
syntax_error(struct cr_conf_ld *ld, yaml_parser_t *p, const char *buf, size_t len)
{
    const char *problem = p->problem != NULL ? p->problem : "unknown error";

    ld->fatal = 1;
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        cr_conf_oom(ld);
        break;
    case YAML_READER_ERROR:
        cr_conf_error(ld, mark_at_offset(buf, len, p->problem_offset),
                      "YAML syntax error: %s", problem);
        break;
    default:
        if (p->context != NULL) {
            struct cr_mark cm = mark_of(p->context_mark);

            cr_conf_error(ld, mark_of(p->problem_mark),
                          "YAML syntax error: %s (%s started at line %u, column %u)",
                          problem, p->context, cm.line, cm.col);
        } else {
            cr_conf_error(ld, mark_of(p->problem_mark), "YAML syntax error: %s", problem);
        }
        break;
    }
}

struct reader {
    struct cr_conf_ld   *ld;
    yaml_parser_t        parser;
    const char          *buf;
    size_t               len;
};

static int
next_event(struct reader *rd, yaml_event_t *ev)
{
    if (yaml_parser_parse(&rd->parser, ev) == 0) {
        syntax_error(rd->ld, &rd->parser, rd->buf, rd->len);
        return CR_ERR;
    }
    return CR_OK;
}

/*
 * Build the node that starts with event <ev> (which this function deletes),
 * reading events up to its end. Returns NULL, with ld->fatal set, if the
 * YAML is broken or memory runs out.
 */
static struct node *
read_node(struct reader *rd, yaml_event_t *ev, unsigned depth)
{
    struct node   *n;
    yaml_event_t   kid;
    yaml_event_type_t end;

    n = calloc(1, sizeof(*n));
    if (n == NULL) {
        yaml_event_delete(ev);
        rd->ld->fatal = 1;
        cr_conf_oom(rd->ld);
        return NULL;
    }
    n->mark = mark_of(ev->start_mark);

    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n->type = NODE_SCALAR;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->len = ev->data.scalar.length;
        n->s = malloc(n->len + 1);
        if (n->s == NULL) {
            yaml_event_delete(ev);
            goto oom;
        }
        memcpy(n->s, ev->data.scalar.value, n->len);
        n->s[n->len] = '\0';
        yaml_event_delete(ev);
        return n;

    case YAML_ALIAS_EVENT:
        n->type = NODE_BAD;
        cr_conf_error(rd->ld, n->mark, "YAML aliases (*%s) are not supported",
                      (const char *) ev->data.alias.anchor);
        yaml_event_delete(ev);
        return n;

    case YAML_SEQUENCE_START_EVENT:
        n->type = NODE_SEQ;
        end = YAML_SEQUENCE_END_EVENT;
        break;

    case YAML_MAPPING_START_EVENT:
        n->type = NODE_MAP;
        end = YAML_MAPPING_END_EVENT;
        break;

    default:
        /* libyaml only starts nodes with the events above */
        cr_conf_error(rd->ld, n->mark, "%s: unexpected YAML event %d", __func__,
                      (int) ev->type);
        yaml_event_delete(ev);
        free(n);
        rd->ld->fatal = 1;
        return NULL;
    }
    yaml_event_delete(ev);

    if (depth >= MAX_DEPTH) {
        cr_conf_error(rd->ld, n->mark, "nesting is deeper than %d levels", MAX_DEPTH);
        free(n);
        rd->ld->fatal = 1;
        return NULL;
    }

    for (;;) {
        struct node *k;

        if (next_event(rd, &kid) != CR_OK) {
            node_free(n);
            return NULL;
        }
        if (kid.type == end) {
            yaml_event_delete(&kid);
            return n;
        }
        k = read_node(rd, &kid, depth + 1);
        if (k == NULL) {
            node_free(n);
            return NULL;
        }
        if (node_add(n, k) != CR_OK) {
            node_free(k);
            goto oom;
        }
    }

oom:
    node_free(n);
    rd->ld->fatal = 1;
    cr_conf_oom(rd->ld);
    return NULL;
}

/*
 * Parse <buf> into a tree. Returns the root node of the one document, or
 * NULL: on a syntax error (reported, ld->fatal set) or for a file holding
 * no document (not reported here).
 */
static struct node *
read_tree(struct cr_conf_ld *ld, const char *buf, size_t len)
{
    struct reader  rd;
    yaml_event_t   ev;
    struct node   *root = NULL;

    memset(&rd, 0, sizeof(rd));
    rd.ld = ld;
    rd.buf = buf;
    rd.len = len;
    if (yaml_parser_initialize(&rd.parser) == 0) {
        ld->fatal = 1;
        cr_conf_oom(ld);
        return NULL;
    }
    yaml_parser_set_input_string(&rd.parser, (const unsigned char *) buf, len);

    /* STREAM-START, then DOCUMENT-START or STREAM-END */
    if (next_event(&rd, &ev) != CR_OK) {
        goto done;
    }
    yaml_event_delete(&ev);
    if (next_event(&rd, &ev) != CR_OK) {
        goto done;
    }
    if (ev.type != YAML_DOCUMENT_START_EVENT) {
        yaml_event_delete(&ev);         /* STREAM-END: nothing in the file */
        goto done;
    }
    yaml_event_delete(&ev);

    if (next_event(&rd, &ev) != CR_OK) {
        goto done;
    }
    root = read_node(&rd, &ev, 0);
    if (root == NULL) {
        goto done;
    }

    /* DOCUMENT-END, then STREAM-END or a second document */
    if (next_event(&rd, &ev) != CR_OK) {
        goto fail;
    }
    yaml_event_delete(&ev);
    if (next_event(&rd, &ev) != CR_OK) {
        goto fail;
    }
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        cr_conf_error(ld, mark_of(ev.start_mark),
                      "a second YAML document; the configuration must be one document");
    }
    yaml_event_delete(&ev);
    goto done;

fail:
    node_free(root);
    root = NULL;
done:
    yaml_parser_delete(&rd.parser);
    return root;
}

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

struct cmd;

/*
 * A setter converts <val> (the value of <key>) and stores it at
 * cmd->offset in <obj>, or reports why it cannot. It never fails the walk.
 */
typedef void cmd_set_fn(struct cr_conf_ld *ld, const struct cmd *cmd,
                        const struct node *key, const struct node *val, void *obj);

struct cmd {
    const char  *key;
    cmd_set_fn  *set;
    size_t       offset;    /* of the field in <obj> */
    uint64_t     min;       /* for numbers, durations and sizes */
    uint64_t     max;
};

#define FIELD(obj, cmd, type)   ((type *) (void *) ((char *) (obj) + (cmd)->offset))

/* A YAML null: an unquoted empty value, "~" or "null". */
static int
is_null(const struct node *n)
{
    if (n->type != NODE_SCALAR || n->plain == 0) {
        return 0;
    }
    return n->len == 0 || strcmp(n->s, "~") == 0 || strcmp(n->s, "null") == 0
           || strcmp(n->s, "Null") == 0 || strcmp(n->s, "NULL") == 0;
}

/* The text of a scalar that is not null and holds no NUL byte, else NULL. */
static const char *
text(const struct node *n)
{
    if (n->type != NODE_SCALAR || is_null(n) || strlen(n->s) != n->len) {
        return NULL;
    }
    return n->s;
}

/* What the operator wrote, for "got ..." in messages. */
static const char *
got(struct cr_conf_ld *ld, const struct node *n)
{
    switch (n->type) {
    case NODE_SEQ:
        return "a list";
    case NODE_MAP:
        return "a mapping";
    case NODE_SCALAR:
        if (is_null(n)) {
            return "nothing";
        }
        return cr_conf_quote(ld, n->s, n->len);
    default:
        return "an alias";
    }
}

static int
key_is(const struct node *key, const char *name)
{
    return key->type == NODE_SCALAR && key->len == strlen(name)
           && memcmp(key->s, name, key->len) == 0;
}

/* The value of the first <name> key of <map>, or NULL. */
static const struct node *
map_get(const struct node *map, const char *name)
{
    size_t i;

    for (i = 0; i + 1 < map->n; i += 2) {
        if (key_is(map->kids[i], name)) {
            return map->kids[i + 1];
        }
    }
    return NULL;
}

static char *
dup_text(struct cr_conf_ld *ld, const char *s, size_t len)
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

static void *
alloc_array(struct cr_conf_ld *ld, size_t n, size_t size)
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
 * Walk the mapping <map> with the table <cmds> (ended by a NULL key),
 * calling each key's setter on <obj>. <where> names the mapping in
 * messages ("top level", 'route "api"'). Duplicate and unknown keys are
 * reported and skipped.
 */
static void
walk(struct cr_conf_ld *ld, const struct node *map, const struct cmd *cmds, void *obj,
     const char *where)
{
    size_t i, j;

    for (i = 0; i + 1 < map->n; i += 2) {
        const struct node *key = map->kids[i];
        const struct node *val = map->kids[i + 1];
        const struct cmd  *cmd;
        const struct cmd  *near = NULL;
        int                dup = 0;

        if (key->type == NODE_BAD) {
            continue;
        }
        if (key->type != NODE_SCALAR) {
            cr_conf_error(ld, key->mark, "keys in %s must be strings, got %s", where,
                          got(ld, key));
            continue;
        }
        for (j = 0; j < i; j += 2) {
            const struct node *prev = map->kids[j];

            if (prev->type == NODE_SCALAR && prev->len == key->len
                && memcmp(prev->s, key->s, key->len) == 0)
            {
                cr_conf_error(ld, key->mark, "duplicate key %s in %s (first at line %u, column %u)",
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
            if (key_is(key, cmd->key)) {
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
        if (val->type == NODE_BAD) {
            continue;
        }
        cmd->set(ld, cmd, key, val, obj);
    }
}

/* ---------------------------------------------------------------------- */
/* Setters for scalars                                                     */

/* Instance name, route name: a safe name (see cr_conf_is_name()). */
static void
set_name(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
         const struct node *val, void *obj)
{
    char      **field = FIELD(obj, cmd, char *);
    const char *s = text(val);

    (void) key;
    if (s == NULL || cr_conf_is_name(s, val->len) == 0) {
        cr_conf_error(ld, val->mark,
                      "\"%s\" must be 1 to %d letters, digits, \".\", \"_\" or \"-\", got %s",
                      cmd->key, CR_CONF_NAME_MAX, got(ld, val));
        if (s == NULL) {
            return;
        }
    }
    free(*field);
    *field = dup_text(ld, s, val->len);
}

static int
get_uint(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *val, uint64_t *v)
{
    const char *s = text(val);

    if (s == NULL || cr_conf_parse_uint(s, cmd->min, cmd->max, v) != CR_OK) {
        cr_conf_error(ld, val->mark, "\"%s\" must be an integer from %llu to %llu, got %s",
                      cmd->key, (unsigned long long) cmd->min, (unsigned long long) cmd->max,
                      got(ld, val));
        return CR_ERR;
    }
    return CR_OK;
}

static void
set_uint(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
         const struct node *val, void *obj)
{
    uint64_t v;

    (void) key;
    if (get_uint(ld, cmd, val, &v) == CR_OK) {
        *FIELD(obj, cmd, unsigned) = (unsigned) v;
    }
}

static void
set_int(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
        const struct node *val, void *obj)
{
    uint64_t v;

    (void) key;
    if (get_uint(ld, cmd, val, &v) == CR_OK) {
        *FIELD(obj, cmd, int) = (int) v;
    }
}

static void
set_workers(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
            const struct node *val, void *obj)
{
    const char *s = text(val);
    uint64_t    v;

    (void) key;
    if (s != NULL && strcmp(s, "auto") == 0) {
        *FIELD(obj, cmd, unsigned) = 0;
        return;
    }
    if (s == NULL || cr_conf_parse_uint(s, cmd->min, cmd->max, &v) != CR_OK) {
        cr_conf_error(ld, val->mark,
                      "\"%s\" must be \"auto\" or an integer from %llu to %llu, got %s",
                      cmd->key, (unsigned long long) cmd->min, (unsigned long long) cmd->max,
                      got(ld, val));
        return;
    }
    *FIELD(obj, cmd, unsigned) = (unsigned) v;
}

static void
set_duration(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
             const struct node *val, void *obj)
{
    const char *s = text(val);
    uint64_t    v;

    (void) key;
    if (s == NULL || cr_conf_parse_duration(s, &v) != CR_OK) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a duration like \"5s\", got %s",
                      cmd->key, got(ld, val));
        return;
    }
    if (v < cmd->min || v > cmd->max) {
        if (cmd->min == 1 && cmd->max == NO_MAX) {
            cr_conf_error(ld, val->mark, "\"%s\" must be greater than 0, got %s", cmd->key,
                          got(ld, val));
        } else {
            cr_conf_error(ld, val->mark, "\"%s\" must be from %llums to %llums, got %s",
                          cmd->key, (unsigned long long) cmd->min,
                          (unsigned long long) cmd->max, got(ld, val));
        }
        return;
    }
    *FIELD(obj, cmd, uint64_t) = v;
}

static void
set_size(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
         const struct node *val, void *obj)
{
    const char *s = text(val);
    uint64_t    v;
    char        lo[32], hi[32];

    (void) key;
    if (s == NULL || cr_conf_parse_size(s, &v) != CR_OK) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a size like \"16k\", got %s", cmd->key,
                      got(ld, val));
        return;
    }
    if (v < cmd->min || v > cmd->max) {
        if (cmd->max != NO_MAX) {
            cr_conf_error(ld, val->mark, "\"%s\" must be from %s to %s, got %s", cmd->key,
                          fmt_size(lo, sizeof(lo), cmd->min), fmt_size(hi, sizeof(hi), cmd->max),
                          got(ld, val));
        } else if (cmd->min == 1) {
            cr_conf_error(ld, val->mark, "\"%s\" must be greater than 0, got %s", cmd->key,
                          got(ld, val));
        } else {
            cr_conf_error(ld, val->mark, "\"%s\" must be at least %s, got %s", cmd->key,
                          fmt_size(lo, sizeof(lo), cmd->min), got(ld, val));
        }
        return;
    }
    *FIELD(obj, cmd, uint64_t) = v;
}

/*
 * Parse the address in <val> into <addr>; <what> names it in the message
 * ('"address"', '"servers" entry'). A host name that is not "localhost"
 * gets a hint, since names are not resolved.
 */
static void
parse_addr(struct cr_conf_ld *ld, const char *what, const struct node *val,
           struct cr_conf_addr *addr)
{
    const char *s = text(val);
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
                  what, got(ld, val),
                  named ? " (host names other than localhost are not looked up)" : "");
}

static void
set_addr(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
         const struct node *val, void *obj)
{
    char what[64];

    (void) key;
    snprintf(what, sizeof(what), "\"%s\"", cmd->key);
    parse_addr(ld, what, val, FIELD(obj, cmd, struct cr_conf_addr));
}

static void
set_balance(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
            const struct node *val, void *obj)
{
    const char *s = text(val);

    (void) key;
    if (s != NULL && strcmp(s, "round_robin") == 0) {
        *FIELD(obj, cmd, enum cr_balance) = CR_BALANCE_ROUND_ROBIN;
    } else if (s != NULL && strcmp(s, "least_conn") == 0) {
        *FIELD(obj, cmd, enum cr_balance) = CR_BALANCE_LEAST_CONN;
    } else {
        cr_conf_error(ld, val->mark, "\"%s\" must be \"round_robin\" or \"least_conn\", got %s",
                      cmd->key, got(ld, val));
    }
}

/* ---------------------------------------------------------------------- */
/* Listen, limits, upstreams                                               */

static const struct cmd listen_cmds[] = {
    { "address", set_addr, offsetof(struct cr_conf_listen, addr), 0, 0 },
    { "backlog", set_int,  offsetof(struct cr_conf_listen, backlog), 1, 65535 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_listen(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
           const struct node *val, void *obj)
{
    struct cr_conf *conf = obj;
    size_t          i;

    (void) key;
    if (val->type != NODE_SEQ) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list", cmd->key);
        return;
    }
    if (val->n == 0) {
        cr_conf_error(ld, val->mark, "\"%s\" must not be empty", cmd->key);
        return;
    }
    conf->listen = alloc_array(ld, val->n, sizeof(*conf->listen));
    if (conf->listen == NULL) {
        return;
    }
    for (i = 0; i < val->n; i++) {
        const struct node     *item = val->kids[i];
        struct cr_conf_listen *l = &conf->listen[conf->nlisten++];

        l->backlog = CR_CONF_DEFAULT_BACKLOG;
        l->mark = item->mark;
        if (item->type == NODE_SCALAR) {
            parse_addr(ld, "\"listen\" entry", item, &l->addr);
        } else if (item->type == NODE_MAP) {
            walk(ld, item, listen_cmds, l, "a \"listen\" entry");
            if (map_get(item, "address") == NULL) {
                cr_conf_error(ld, item->mark, "\"listen\" entry has no \"address\"");
            }
        } else if (item->type != NODE_BAD) {
            cr_conf_error(ld, item->mark, "\"listen\" entry must be an address or a mapping");
        }
    }
}

static const struct cmd limits_cmds[] = {
    { "max_header_bytes", set_size,     offsetof(struct cr_conf_limits, max_header_bytes),
      1024, 1024 * 1024 },
    { "max_headers",      set_uint,     offsetof(struct cr_conf_limits, max_headers),
      1, 10000 },
    { "max_uri_bytes",    set_size,     offsetof(struct cr_conf_limits, max_uri_bytes),
      1, 1024 * 1024 },
    { "max_body_bytes",   set_size,     offsetof(struct cr_conf_limits, max_body_bytes),
      0, NO_MAX },
    { "max_connections",  set_uint,     offsetof(struct cr_conf_limits, max_connections),
      1, 1000000 },
    { "header_timeout",   set_duration, offsetof(struct cr_conf_limits, header_timeout_ms),
      1, NO_MAX },
    { "idle_timeout",     set_duration, offsetof(struct cr_conf_limits, idle_timeout_ms),
      1, NO_MAX },
    { "send_timeout",     set_duration, offsetof(struct cr_conf_limits, send_timeout_ms),
      1, NO_MAX },
    { NULL, NULL, 0, 0, 0 }
};

/*
 * The request line counts against max_header_bytes, so a larger
 * max_uri_bytes could never be reached: an explicit one is an error, the
 * default is lowered to fit.
 */
static void
set_limits(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
           const struct node *val, void *obj)
{
    struct cr_conf_limits *lim = FIELD(obj, cmd, struct cr_conf_limits);
    const struct node     *uri;
    char                   a[32], b[32];

    (void) key;
    if (val->type != NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping", cmd->key);
        return;
    }
    walk(ld, val, limits_cmds, lim, "\"limits\"");

    if (lim->max_uri_bytes > lim->max_header_bytes) {
        uri = map_get(val, "max_uri_bytes");
        if (uri == NULL) {
            lim->max_uri_bytes = lim->max_header_bytes;
        } else {
            cr_conf_error(ld, uri->mark,
                          "\"max_uri_bytes\" (%s) must not be larger than \"max_header_bytes\" (%s)",
                          fmt_size(a, sizeof(a), lim->max_uri_bytes),
                          fmt_size(b, sizeof(b), lim->max_header_bytes));
        }
    }
}

static const struct cmd server_cmds[] = {
    { "address", set_addr, offsetof(struct cr_conf_server, addr), 0, 0 },
    { "weight",  set_uint, offsetof(struct cr_conf_server, weight), 1, 1000 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_servers(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
            const struct node *val, void *obj)
{
    struct cr_conf_upstream *u = obj;
    char                     where[128];
    size_t                   i;

    (void) key;
    if (val->type != NODE_SEQ) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list", cmd->key);
        return;
    }
    if (val->n == 0) {
        cr_conf_error(ld, val->mark, "%s has no servers", ld->label);
        return;
    }
    u->servers = alloc_array(ld, val->n, sizeof(*u->servers));
    if (u->servers == NULL) {
        return;
    }
    snprintf(where, sizeof(where), "a \"servers\" entry of %s", ld->label);
    for (i = 0; i < val->n; i++) {
        const struct node     *item = val->kids[i];
        struct cr_conf_server *s = &u->servers[u->nservers++];

        s->weight = 1;
        s->mark = item->mark;
        if (item->type == NODE_SCALAR) {
            parse_addr(ld, "\"servers\" entry", item, &s->addr);
        } else if (item->type == NODE_MAP) {
            walk(ld, item, server_cmds, s, where);
            if (map_get(item, "address") == NULL) {
                cr_conf_error(ld, item->mark, "\"servers\" entry has no \"address\"");
            }
        } else if (item->type != NODE_BAD) {
            cr_conf_error(ld, item->mark, "\"servers\" entry must be an address or a mapping");
        }
    }
}

static const struct cmd upstream_cmds[] = {
    { "balance",         set_balance,  offsetof(struct cr_conf_upstream, balance), 0, 0 },
    { "keepalive",       set_uint,     offsetof(struct cr_conf_upstream, keepalive), 0, 10000 },
    { "connect_timeout", set_duration, offsetof(struct cr_conf_upstream, connect_timeout_ms),
      1, NO_MAX },
    { "read_timeout",    set_duration, offsetof(struct cr_conf_upstream, read_timeout_ms),
      1, NO_MAX },
    { "retries",         set_uint,     offsetof(struct cr_conf_upstream, retries), 0, 100 },
    { "max_fails",       set_uint,     offsetof(struct cr_conf_upstream, max_fails), 0, 1000 },
    { "fail_timeout",    set_duration, offsetof(struct cr_conf_upstream, fail_timeout_ms),
      1, NO_MAX },
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
}

/*
 * "upstreams" maps names to pools. Every key becomes a pool, even a
 * duplicate or a badly named one, so routes that use it are not reported
 * as using an unknown upstream; check.c reports duplicates.
 */
static void
set_upstreams(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
              const struct node *val, void *obj)
{
    struct cr_conf *conf = obj;
    size_t          i;

    (void) key;
    if (val->type != NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping", cmd->key);
        return;
    }
    conf->upstreams = alloc_array(ld, val->n / 2, sizeof(*conf->upstreams));
    if (conf->upstreams == NULL) {
        return;
    }
    for (i = 0; i + 1 < val->n; i += 2) {
        const struct node       *name = val->kids[i];
        const struct node       *body = val->kids[i + 1];
        struct cr_conf_upstream *u;
        char                     label[CR_CONF_QUOTE_MAX + 32];

        if (name->type == NODE_BAD) {
            continue;
        }
        if (text(name) == NULL) {
            cr_conf_error(ld, name->mark, "upstream names must be strings, got %s",
                          got(ld, name));
            continue;
        }
        u = &conf->upstreams[conf->nupstreams++];
        upstream_defaults(u);
        u->mark = name->mark;
        u->name = dup_text(ld, name->s, name->len);
        snprintf(label, sizeof(label), "upstream %s", cr_conf_quote(ld, name->s, name->len));
        if (cr_conf_is_name(name->s, name->len) == 0) {
            cr_conf_error(ld, name->mark,
                          "upstream name %s must be 1 to %d letters, digits, \".\", \"_\" or \"-\"",
                          cr_conf_quote(ld, name->s, name->len), CR_CONF_NAME_MAX);
        }
        if (body->type == NODE_BAD) {
            continue;
        }
        if (body->type != NODE_MAP) {
            cr_conf_error(ld, body->mark, "%s must be a mapping", label);
            continue;
        }
        ld->label = label;
        walk(ld, body, upstream_cmds, u, label);
        if (map_get(body, "servers") == NULL) {
            cr_conf_error(ld, name->mark, "%s has no servers", label);
        }
        ld->label = NULL;
    }
}

/* ---------------------------------------------------------------------- */
/* Routes                                                                  */

static struct cr_conf_src_route *
src_of(struct cr_conf_ld *ld, const struct cr_conf_route *r)
{
    return &ld->routes[r - ld->conf->routes];
}

static void
set_route_name(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
               const struct node *val, void *obj)
{
    struct cr_conf_route *r = obj;

    set_name(ld, cmd, key, val, obj);
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
set_host(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
         const struct node *val, void *obj)
{
    const char *s = text(val);
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
                      "got %s", cmd->key, got(ld, val));
        return;
    }
    host = dup_text(ld, s, val->len);
    if (host == NULL) {
        return;
    }
    for (i = 0; host[i] != '\0'; i++) {
        host[i] = (char) tolower((unsigned char) host[i]);
    }
    free(*FIELD(obj, cmd, char *));
    *FIELD(obj, cmd, char *) = host;
}

/* A path to compare with the request's: "/..." without spaces, query or
 * fragment, since the router compares it with the path alone. */
static void
set_path(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
         const struct node *val, void *obj)
{
    const char *s = text(val);
    size_t      i;

    (void) key;
    if (s == NULL || s[0] != '/') {
        cr_conf_error(ld, val->mark, "\"%s\" must start with \"/\", got %s", cmd->key,
                      got(ld, val));
        return;
    }
    for (i = 0; i < val->len; i++) {
        unsigned char c = (unsigned char) s[i];

        if (c <= 0x20 || c == 0x7f || c == '?' || c == '#') {
            cr_conf_error(ld, val->mark,
                          "\"%s\" must not contain spaces, control characters, \"?\" or \"#\", "
                          "got %s", cmd->key, got(ld, val));
            return;
        }
    }
    free(*FIELD(obj, cmd, char *));
    *FIELD(obj, cmd, char *) = dup_text(ld, s, val->len);
}

static void
set_strip_prefix(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
                 const struct node *val, void *obj)
{
    struct cr_conf_src_route *src = src_of(ld, obj);

    src->has_strip = 1;
    src->strip_mark = key->mark;
    set_path(ld, cmd, key, val, obj);
}

static void
set_regex(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
          const struct node *val, void *obj)
{
    struct cr_conf_route *r = obj;
    const char           *s = text(val);
    char                  why[256];
    int                   rc;

    (void) key;
    if (s == NULL || *s == '\0') {
        cr_conf_error(ld, val->mark, "\"%s\" must be a regular expression, got %s", cmd->key,
                      got(ld, val));
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
    r->path_regex = dup_text(ld, s, val->len);
    if (r->path_regex == NULL) {
        regfree(&r->regex);
    }
}

/* One entry of "methods"; returns its CR_METHOD_* bit or 0 after an error. */
static unsigned
method_bit(struct cr_conf_ld *ld, const struct node *item)
{
    const char *s = text(item);
    unsigned    bit;
    char        upper[16];
    size_t      i;

    if (s == NULL || cr_conf_is_token(s, item->len) == 0) {
        cr_conf_error(ld, item->mark, "\"methods\" entry must be an HTTP method like \"GET\", "
                      "got %s", got(ld, item));
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
                          upper, got(ld, item));
            return 0;
        }
    }
    return bit;
}

static void
set_methods(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
            const struct node *val, void *obj)
{
    unsigned *bits = FIELD(obj, cmd, unsigned);
    size_t    i;

    (void) key;
    if (val->type == NODE_SCALAR) {
        *bits |= method_bit(ld, val);
        return;
    }
    if (val->type != NODE_SEQ) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list of methods like [GET, POST]",
                      cmd->key);
        return;
    }
    if (val->n == 0) {
        cr_conf_error(ld, val->mark, "\"%s\" must not be empty", cmd->key);
        return;
    }
    for (i = 0; i < val->n; i++) {
        if (val->kids[i]->type != NODE_BAD) {
            *bits |= method_bit(ld, val->kids[i]);
        }
    }
}

static const struct cmd match_cmds[] = {
    { "host",        set_host,    offsetof(struct cr_conf_route, host), 0, 0 },
    { "path",        set_path,    offsetof(struct cr_conf_route, path), 0, 0 },
    { "path_prefix", set_path,    offsetof(struct cr_conf_route, path_prefix), 0, 0 },
    { "path_regex",  set_regex,   0, 0, 0 },
    { "methods",     set_methods, offsetof(struct cr_conf_route, methods), 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_match(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
          const struct node *val, void *obj)
{
    char where[CR_CONF_QUOTE_MAX + 64];

    (void) key;
    if (val->type != NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping", cmd->key);
        return;
    }
    snprintf(where, sizeof(where), "\"%s\" of %s", cmd->key, ld->label);
    walk(ld, val, match_cmds, obj, where);
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
header_map(struct cr_conf_ld *ld, const char *field, const struct node *val,
           struct cr_conf_header **out, size_t *nout)
{
    size_t i, j;

    if (val->type != NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping of header names to values",
                      field);
        return;
    }
    *out = alloc_array(ld, val->n / 2, sizeof(**out));
    if (*out == NULL) {
        return;
    }
    for (i = 0; i + 1 < val->n; i += 2) {
        const struct node     *k = val->kids[i];
        const struct node     *v = val->kids[i + 1];
        const char            *name = text(k);
        const char            *value;
        struct cr_conf_header *h;
        int                    dup = 0;

        if (k->type == NODE_BAD || v->type == NODE_BAD) {
            continue;
        }
        if (name == NULL || cr_conf_is_token(name, k->len) == 0) {
            cr_conf_error(ld, k->mark, "%s is not a valid header name", got(ld, k));
            continue;
        }
        for (j = 0; j < i; j += 2) {
            const struct node *prev = val->kids[j];

            if (prev->type == NODE_SCALAR && strcasecmp(prev->s, name) == 0) {
                cr_conf_error(ld, k->mark, "duplicate header %s (first at line %u, column %u)",
                              got(ld, k), prev->mark.line, prev->mark.col);
                dup = 1;
                break;
            }
        }
        if (dup) {
            continue;
        }
        if (is_managed_header(name)) {
            cr_conf_error(ld, k->mark, "header %s is managed by corral and cannot be set",
                          got(ld, k));
            continue;
        }
        if (v->type != NODE_SCALAR) {
            cr_conf_error(ld, v->mark, "value of header %s must be a string, got %s",
                          got(ld, k), got(ld, v));
            continue;
        }
        value = is_null(v) ? "" : v->s;
        if (is_field_value(value, is_null(v) ? 0 : v->len) == 0) {
            cr_conf_error(ld, v->mark,
                          "value of header %s must not contain CR, LF, NUL or other control "
                          "characters", got(ld, k));
            continue;
        }
        h = &(*out)[(*nout)++];
        h->name = dup_text(ld, name, k->len);
        h->value = dup_text(ld, value, strlen(value));
    }
}

static void
set_header_set(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
               const struct node *val, void *obj)
{
    struct cr_conf_header_rules *rules = obj;

    (void) key;
    header_map(ld, cmd->key, val, &rules->set, &rules->nset);
}

static void
set_header_remove(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
                  const struct node *val, void *obj)
{
    struct cr_conf_header_rules *rules = obj;
    const struct node           *one[1];
    const struct node *const    *items;
    size_t                       n, i;

    (void) key;
    if (val->type == NODE_SCALAR) {
        one[0] = val;
        items = one;
        n = 1;
    } else if (val->type == NODE_SEQ) {
        items = (const struct node *const *) val->kids;
        n = val->n;
    } else {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list of header names", cmd->key);
        return;
    }
    rules->remove = alloc_array(ld, n, sizeof(*rules->remove));
    if (rules->remove == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        const struct node *item = items[i];
        const char        *name = text(item);

        if (item->type == NODE_BAD) {
            continue;
        }
        if (name == NULL || cr_conf_is_token(name, item->len) == 0) {
            cr_conf_error(ld, item->mark, "%s is not a valid header name", got(ld, item));
            continue;
        }
        if (is_managed_header(name)) {
            cr_conf_error(ld, item->mark, "header %s is managed by corral and cannot be removed",
                          got(ld, item));
            continue;
        }
        rules->remove[rules->nremove++] = dup_text(ld, name, item->len);
    }
}

static const struct cmd rules_cmds[] = {
    { "set",    set_header_set,    0, 0, 0 },
    { "remove", set_header_remove, 0, 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_rules(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
          const struct node *val, void *obj)
{
    char where[CR_CONF_QUOTE_MAX + 64];

    if (strcmp(cmd->key, "request_headers") == 0) {
        src_of(ld, obj)->has_reqh = 1;
        src_of(ld, obj)->reqh_mark = key->mark;
    }
    if (val->type != NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping with \"set\" and/or \"remove\"",
                      cmd->key);
        return;
    }
    snprintf(where, sizeof(where), "\"%s\" of %s", cmd->key, ld->label);
    walk(ld, val, rules_cmds, FIELD(obj, cmd, struct cr_conf_header_rules), where);
}

/* Note an action key of a route, valid or not, for check.c. */
static void
add_action(struct cr_conf_ld *ld, struct cr_conf_route *r, unsigned bit,
           enum cr_route_action action, const struct node *key)
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
set_upstream_ref(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
                 const struct node *val, void *obj)
{
    struct cr_conf_route *r = obj;
    const char           *s = text(val);

    add_action(ld, r, CR_CONF_A_UPSTREAM, CR_ROUTE_UPSTREAM, key);
    if (s == NULL || *s == '\0') {
        cr_conf_error(ld, val->mark, "\"%s\" must be the name of an upstream, got %s",
                      cmd->key, got(ld, val));
        return;
    }
    src_of(ld, r)->upstream_mark = val->mark;
    r->upstream_name = dup_text(ld, s, val->len);
}

static void
set_body(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
         const struct node *val, void *obj)
{
    struct cr_conf_route *r = obj;

    (void) key;
    if (val->type != NODE_SCALAR) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a string, got %s", cmd->key, got(ld, val));
        return;
    }
    if (is_null(val)) {
        return;
    }
    /* kept byte for byte: a body may hold anything, NUL included */
    r->body = dup_text(ld, val->s, val->len);
    r->body_len = r->body != NULL ? val->len : 0;
}

static void
set_respond_headers(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
                    const struct node *val, void *obj)
{
    struct cr_conf_route *r = obj;

    (void) key;
    header_map(ld, cmd->key, val, &r->respond_headers, &r->nrespond_headers);
}

static const struct cmd respond_cmds[] = {
    { "status",  set_int,             offsetof(struct cr_conf_route, status), 100, 599 },
    { "body",    set_body,            0, 0, 0 },
    { "headers", set_respond_headers, 0, 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_respond(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
            const struct node *val, void *obj)
{
    struct cr_conf_route *r = obj;
    char                  where[CR_CONF_QUOTE_MAX + 64];

    add_action(ld, r, CR_CONF_A_RESPOND, CR_ROUTE_RESPOND, key);
    r->status = 200;
    if (val->type != NODE_MAP) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a mapping like {status: 200, body: \"ok\"}",
                      cmd->key);
        return;
    }
    snprintf(where, sizeof(where), "\"%s\" of %s", cmd->key, ld->label);
    walk(ld, val, respond_cmds, r, where);
}

/* RFC 9110 §15.4: the redirections that carry a Location. */
static void
set_redirect_status(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
                    const struct node *val, void *obj)
{
    const char *s = text(val);
    uint64_t    v = 0;

    (void) key;
    if (s == NULL || cr_conf_parse_uint(s, 301, 308, &v) != CR_OK
        || v == 304 || v == 305 || v == 306)
    {
        cr_conf_error(ld, val->mark,
                      "\"%s\" of a redirect must be 301, 302, 303, 307 or 308, got %s",
                      cmd->key, got(ld, val));
        return;
    }
    *FIELD(obj, cmd, int) = (int) v;
}

static void
set_location(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
             const struct node *val, void *obj)
{
    const char *s = text(val);
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
                      cmd->key, got(ld, val));
        return;
    }
    *FIELD(obj, cmd, char *) = dup_text(ld, s, val->len);
}

static const struct cmd redirect_cmds[] = {
    { "status",   set_redirect_status, offsetof(struct cr_conf_route, status), 0, 0 },
    { "location", set_location,        offsetof(struct cr_conf_route, location), 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
set_redirect(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
             const struct node *val, void *obj)
{
    struct cr_conf_route *r = obj;
    char                  where[CR_CONF_QUOTE_MAX + 64];

    add_action(ld, r, CR_CONF_A_REDIRECT, CR_ROUTE_REDIRECT, key);
    r->status = 302;
    if (val->type != NODE_MAP) {
        cr_conf_error(ld, val->mark,
                      "\"%s\" must be a mapping like {status: 301, location: \"https://...\"}",
                      cmd->key);
        return;
    }
    snprintf(where, sizeof(where), "\"%s\" of %s", cmd->key, ld->label);
    walk(ld, val, redirect_cmds, r, where);
    if (map_get(val, "location") == NULL) {
        cr_conf_error(ld, val->mark, "\"%s\" of %s has no \"location\"", cmd->key, ld->label);
    }
}

static const struct cmd route_cmds[] = {
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

static void
set_routes(struct cr_conf_ld *ld, const struct cmd *cmd, const struct node *key,
           const struct node *val, void *obj)
{
    struct cr_conf *conf = obj;
    size_t          i;

    (void) key;
    if (val->type != NODE_SEQ) {
        cr_conf_error(ld, val->mark, "\"%s\" must be a list", cmd->key);
        return;
    }
    conf->routes = alloc_array(ld, val->n, sizeof(*conf->routes));
    ld->routes = alloc_array(ld, val->n, sizeof(*ld->routes));
    if (conf->routes == NULL || ld->routes == NULL) {
        return;
    }
    for (i = 0; i < val->n; i++) {
        const struct node        *item = val->kids[i];
        const struct node        *name;
        struct cr_conf_route     *r = &conf->routes[conf->nroutes++];
        struct cr_conf_src_route *src = &ld->routes[i];
        char                      label[CR_CONF_QUOTE_MAX + 32];

        r->mark = item->mark;
        src->name_mark = item->mark;

        /* the name, if any, labels messages about the keys before it too */
        name = item->type == NODE_MAP ? map_get(item, "name") : NULL;
        if (name != NULL && text(name) != NULL && name->len != 0) {
            snprintf(label, sizeof(label), "route %s", cr_conf_quote(ld, name->s, name->len));
        } else {
            snprintf(label, sizeof(label), "route \"route-%zu\"", i + 1);
        }

        if (item->type != NODE_MAP) {
            src->skip = 1;
            if (item->type != NODE_BAD) {
                cr_conf_error(ld, item->mark, "\"routes\" entry must be a mapping");
            }
        } else {
            ld->label = label;
            walk(ld, item, route_cmds, r, label);
            ld->label = NULL;
        }
        if (r->name == NULL && asprintf(&r->name, "route-%zu", i + 1) == -1) {
            r->name = NULL;
            cr_conf_oom(ld);
        }
    }
}

/* ---------------------------------------------------------------------- */
/* The top level                                                           */

static const struct cmd top_cmds[] = {
    { "name",          set_name,      offsetof(struct cr_conf, name), 0, 0 },
    { "workers",       set_workers,   offsetof(struct cr_conf, workers), 1, 256 },
    { "drain_timeout", set_duration,  offsetof(struct cr_conf, drain_timeout_ms), 1, NO_MAX },
    { "listen",        set_listen,    0, 0, 0 },
    { "limits",        set_limits,    offsetof(struct cr_conf, limits), 0, 0 },
    { "upstreams",     set_upstreams, 0, 0, 0 },
    { "routes",        set_routes,    0, 0, 0 },
    { NULL, NULL, 0, 0, 0 }
};

static void
conf_defaults(struct cr_conf *conf)
{
    conf->workers = 0;
    conf->drain_timeout_ms = CR_CONF_DEFAULT_DRAIN_TIMEOUT;
    conf->limits.max_header_bytes = CR_CONF_DEFAULT_MAX_HEADER_BYTES;
    conf->limits.max_headers = CR_CONF_DEFAULT_MAX_HEADERS;
    conf->limits.max_uri_bytes = CR_CONF_DEFAULT_MAX_URI_BYTES;
    conf->limits.max_body_bytes = CR_CONF_DEFAULT_MAX_BODY_BYTES;
    conf->limits.max_connections = CR_CONF_DEFAULT_MAX_CONNECTIONS;
    conf->limits.header_timeout_ms = CR_CONF_DEFAULT_HEADER_TIMEOUT;
    conf->limits.idle_timeout_ms = CR_CONF_DEFAULT_IDLE_TIMEOUT;
    conf->limits.send_timeout_ms = CR_CONF_DEFAULT_SEND_TIMEOUT;
}

static void
walk_top(struct cr_conf_ld *ld, const struct node *root)
{
    struct cr_mark start = { 1, 1 };

    if (root == NULL || is_null(root)) {
        cr_conf_error(ld, start, "the file holds no configuration; "
                      "at least \"listen\" is required");
        return;
    }
    if (root->type != NODE_MAP) {
        if (root->type != NODE_BAD) {
            cr_conf_error(ld, root->mark,
                          "the top level must be a mapping with keys like \"listen\" and "
                          "\"routes\", got %s", got(ld, root));
        }
        return;
    }
    walk(ld, root, top_cmds, ld->conf, "top level");
    if (map_get(root, "listen") == NULL) {
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
    struct cr_conf_ld  ld;
    struct node       *root;

    memset(&ld, 0, sizeof(ld));
    ld.file = name;
    ld.conf = calloc(1, sizeof(*ld.conf));
    if (ld.conf == NULL) {
        cr_conf_oom(&ld);
        flush_errors(&ld, errs);
        return NULL;
    }
    conf_defaults(ld.conf);
    ld.conf->path = dup_text(&ld, name, strlen(name));
    ld.conf->name = dup_text(&ld, CR_CONF_DEFAULT_NAME, strlen(CR_CONF_DEFAULT_NAME));
    ld.conf->hash = fnv1a(buf, len);

    root = read_tree(&ld, buf, len);
    if (ld.fatal == 0) {
        walk_top(&ld, root);
        cr_conf_check(&ld);
    }
    node_free(root);
    free(ld.routes);

    if (ld.failed) {
        cr_conf_free(ld.conf);
        flush_errors(&ld, errs);
        return NULL;
    }
    free(ld.errs);
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

static void
free_route(struct cr_conf_route *r)
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

void
cr_conf_free(struct cr_conf *conf)
{
    size_t i, j;

    if (conf == NULL) {
        return;
    }
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
    }
    free(conf->upstreams);
    for (i = 0; i < conf->nroutes; i++) {
        free_route(&conf->routes[i]);
    }
    free(conf->routes);
    free(conf->path);
    free(conf->name);
    free(conf);
}
