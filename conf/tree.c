/*
 * tree.c - YAML text to a tree of nodes that remember where they start.
 *
 * Owns the libyaml parser and the nodes it builds (freed with
 * cr_conf_tree_free()). Knows YAML, nothing of corral's keys: load.c and
 * route.c give the nodes their meaning.
 *
 * libyaml's event parser (not its document API) feeds a small recursive
 * builder, so each node keeps the mark of its first event. A syntax error
 * ends the parse: libyaml cannot resume after one, so it is the only error
 * the file gets. Aliases are refused, since "billion laughs" documents
 * expand exponentially through them and a config has no need for them;
 * anchors and tags are ignored. Nesting is capped so that a hostile file
 * cannot exhaust the stack.
 */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "conf/conf.h"
#include "conf/internal.h"

#define MAX_DEPTH       64          /* nesting the tree accepts */

static struct cr_mark
mark_of(yaml_mark_t m)
{
    struct cr_mark cm;

    cm.line = (unsigned) m.line + 1;
    cm.col = (unsigned) m.column + 1;
    return cm;
}

void
cr_conf_tree_free(struct cr_conf_node *n)
{
    size_t i;

    if (n == NULL) {
        return;
    }
    for (i = 0; i < n->n; i++) {
        cr_conf_tree_free(n->kids[i]);
    }
    free(n->kids);
    free(n->s);
    free(n);
}

static int
node_add(struct cr_conf_node *parent, struct cr_conf_node *kid)
{
    if (parent->n == parent->cap) {
        size_t                cap = parent->cap == 0 ? 8 : parent->cap * 2;
        struct cr_conf_node **kids = realloc(parent->kids, cap * sizeof(*kids));

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
static struct cr_conf_node *
read_node(struct reader *rd, yaml_event_t *ev, unsigned depth)
{
    struct cr_conf_node *n;
    yaml_event_t         kid;
    yaml_event_type_t    end;

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
        n->type = CR_CONF_NODE_SCALAR;
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
        n->type = CR_CONF_NODE_BAD;
        cr_conf_error(rd->ld, n->mark, "YAML aliases (*%s) are not supported",
                      (const char *) ev->data.alias.anchor);
        yaml_event_delete(ev);
        return n;

    case YAML_SEQUENCE_START_EVENT:
        n->type = CR_CONF_NODE_SEQ;
        end = YAML_SEQUENCE_END_EVENT;
        break;

    case YAML_MAPPING_START_EVENT:
        n->type = CR_CONF_NODE_MAP;
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
        struct cr_conf_node *k;

        if (next_event(rd, &kid) != CR_OK) {
            cr_conf_tree_free(n);
            return NULL;
        }
        if (kid.type == end) {
            yaml_event_delete(&kid);
            return n;
        }
        k = read_node(rd, &kid, depth + 1);
        if (k == NULL) {
            cr_conf_tree_free(n);
            return NULL;
        }
        if (node_add(n, k) != CR_OK) {
            cr_conf_tree_free(k);
            goto oom;
        }
    }

oom:
    cr_conf_tree_free(n);
    rd->ld->fatal = 1;
    cr_conf_oom(rd->ld);
    return NULL;
}

/*
 * Parse <buf> into a tree. Returns the root node of the one document, or
 * NULL: on a syntax error (reported, ld->fatal set) or for a file holding
 * no document (not reported here).
 */
struct cr_conf_node *
cr_conf_tree_read(struct cr_conf_ld *ld, const char *buf, size_t len)
{
    struct reader        rd;
    yaml_event_t         ev;
    struct cr_conf_node *root = NULL;

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
    cr_conf_tree_free(root);
    root = NULL;
done:
    yaml_parser_delete(&rd.parser);
    return root;
}

/* A YAML null: an unquoted empty value, "~" or "null". */
int
cr_conf_node_null(const struct cr_conf_node *n)
{
    if (n->type != CR_CONF_NODE_SCALAR || n->plain == 0) {
        return 0;
    }
    return n->len == 0 || strcmp(n->s, "~") == 0 || strcmp(n->s, "null") == 0
           || strcmp(n->s, "Null") == 0 || strcmp(n->s, "NULL") == 0;
}

/* The text of a scalar that is not null and holds no NUL byte, else NULL. */
const char *
cr_conf_node_text(const struct cr_conf_node *n)
{
    if (n->type != CR_CONF_NODE_SCALAR || cr_conf_node_null(n) || strlen(n->s) != n->len) {
        return NULL;
    }
    return n->s;
}

/* What the operator wrote, for "got ..." in messages. */
const char *
cr_conf_node_got(struct cr_conf_ld *ld, const struct cr_conf_node *n)
{
    switch (n->type) {
    case CR_CONF_NODE_SEQ:
        return "a list";
    case CR_CONF_NODE_MAP:
        return "a mapping";
    case CR_CONF_NODE_SCALAR:
        if (cr_conf_node_null(n)) {
            return "nothing";
        }
        return cr_conf_quote(ld, n->s, n->len);
    default:
        return "an alias";
    }
}

int
cr_conf_node_is(const struct cr_conf_node *key, const char *name)
{
    return key->type == CR_CONF_NODE_SCALAR && key->len == strlen(name)
           && memcmp(key->s, name, key->len) == 0;
}

/* The value of the first <name> key of <map>, or NULL. */
const struct cr_conf_node *
cr_conf_node_get(const struct cr_conf_node *map, const char *name)
{
    size_t i;

    for (i = 0; i + 1 < map->n; i += 2) {
        if (cr_conf_node_is(map->kids[i], name)) {
            return map->kids[i + 1];
        }
    }
    return NULL;
}
