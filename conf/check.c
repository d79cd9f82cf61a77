/*
 * check.c - checks that need the whole tree: duplicate names and
 * addresses, routes' actions, and the route-to-upstream references (whose
 * index it fills in).
 *
 * Runs after load.c has converted every value, errors or not, so one run
 * reports both kinds. It only reads what load.c built, plus the marks
 * load.c kept aside in ld->routes; the one thing it writes into the tree
 * is cr_conf_route.upstream.
 *
 * Each check skips values that already failed to parse (NULL names, empty
 * addresses, routes that are not mappings), so one mistake is reported
 * once. The pairwise comparisons are quadratic; configs hold tens of
 * entries, and a few thousand would still check in milliseconds.
 */
#include <string.h>

#include "conf/conf.h"
#include "conf/internal.h"

static const char *const action_keys[CR_CONF_NACTIONS] = {
    "upstream", "respond", "redirect"
};

static int
same_addr(const struct cr_conf_addr *a, const struct cr_conf_addr *b)
{
    return a->len != 0 && a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void
check_listen(struct cr_conf_ld *ld, const struct cr_conf *conf)
{
    size_t i, j;

    for (i = 0; i < conf->nlisten; i++) {
        const struct cr_conf_listen *l = &conf->listen[i];

        for (j = 0; j < i; j++) {
            const struct cr_conf_listen *prev = &conf->listen[j];

            if (same_addr(&l->addr, &prev->addr)) {
                cr_conf_error(ld, l->mark,
                              "duplicate listen address %s (first at line %u, column %u)",
                              cr_conf_quote(ld, l->addr.text, strlen(l->addr.text)),
                              prev->mark.line, prev->mark.col);
                break;
            }
        }
    }
}

static void
check_upstreams(struct cr_conf_ld *ld, const struct cr_conf *conf)
{
    size_t i, j, k;

    for (i = 0; i < conf->nupstreams; i++) {
        const struct cr_conf_upstream *u = &conf->upstreams[i];

        if (u->name == NULL) {
            continue;
        }
        for (j = 0; j < i; j++) {
            const struct cr_conf_upstream *prev = &conf->upstreams[j];

            if (prev->name != NULL && strcmp(prev->name, u->name) == 0) {
                cr_conf_error(ld, u->mark,
                              "duplicate upstream %s (first defined at line %u, column %u)",
                              cr_conf_quote(ld, u->name, strlen(u->name)), prev->mark.line,
                              prev->mark.col);
                break;
            }
        }

        /* the same server twice is a weight written the hard way */
        for (j = 0; j < u->nservers; j++) {
            const struct cr_conf_server *s = &u->servers[j];

            for (k = 0; k < j; k++) {
                if (same_addr(&s->addr, &u->servers[k].addr)) {
                    cr_conf_error(ld, s->mark,
                                  "duplicate server %s in upstream %s (first at line %u, "
                                  "column %u); use \"weight\" instead",
                                  cr_conf_quote(ld, s->addr.text, strlen(s->addr.text)),
                                  cr_conf_quote(ld, u->name, strlen(u->name)),
                                  u->servers[k].mark.line, u->servers[k].mark.col);
                    break;
                }
            }
        }
    }
}

static int
mark_before(struct cr_mark a, struct cr_mark b)
{
    return a.line < b.line || (a.line == b.line && a.col < b.col);
}

/*
 * Exactly one action per route. With several, the error points at the
 * second action key in the file and names the first.
 */
static int
check_action(struct cr_conf_ld *ld, const struct cr_conf_route *r,
             const struct cr_conf_src_route *src)
{
    unsigned order[CR_CONF_NACTIONS];   /* present actions, in file order */
    unsigned n = 0;
    unsigned i, j;

    for (i = 0; i < CR_CONF_NACTIONS; i++) {
        if ((src->actions & (1u << i)) == 0) {
            continue;
        }
        for (j = n; j > 0 && mark_before(src->action_mark[i], src->action_mark[order[j - 1]]);
             j--)
        {
            order[j] = order[j - 1];
        }
        order[j] = i;
        n++;
    }

    if (n == 0) {
        cr_conf_error(ld, r->mark,
                      "route %s has no action: give one of \"upstream\", \"respond\" or "
                      "\"redirect\"", cr_conf_quote(ld, r->name, strlen(r->name)));
        return CR_ERR;
    }
    if (n > 1) {
        cr_conf_error(ld, src->action_mark[order[1]],
                      "route %s has both \"%s\" and \"%s\"; give exactly one action",
                      cr_conf_quote(ld, r->name, strlen(r->name)), action_keys[order[0]],
                      action_keys[order[1]]);
        return CR_ERR;
    }
    return CR_OK;
}

/* Fill r->upstream, or report the unknown name with a suggestion. */
static void
check_upstream_ref(struct cr_conf_ld *ld, const struct cr_conf *conf, struct cr_conf_route *r,
                   const struct cr_conf_src_route *src)
{
    const char *near = NULL;
    size_t      i;

    for (i = 0; i < conf->nupstreams; i++) {
        const char *name = conf->upstreams[i].name;

        if (name == NULL) {
            continue;
        }
        if (strcmp(name, r->upstream_name) == 0) {
            r->upstream = i;
            return;
        }
        if (near == NULL && cr_conf_similar(r->upstream_name, name)) {
            near = name;
        }
    }
    if (near != NULL) {
        cr_conf_error(ld, src->upstream_mark,
                      "route %s uses unknown upstream %s (did you mean %s?)",
                      cr_conf_quote(ld, r->name, strlen(r->name)),
                      cr_conf_quote(ld, r->upstream_name, strlen(r->upstream_name)),
                      cr_conf_quote(ld, near, strlen(near)));
    } else {
        cr_conf_error(ld, src->upstream_mark, "route %s uses unknown upstream %s",
                      cr_conf_quote(ld, r->name, strlen(r->name)),
                      cr_conf_quote(ld, r->upstream_name, strlen(r->upstream_name)));
    }
}

/* Options that only mean something when the request goes upstream. */
static void
check_proxy_options(struct cr_conf_ld *ld, const struct cr_conf_route *r,
                    const struct cr_conf_src_route *src)
{
    const char *match;
    const char *what;

    if (r->action != CR_ROUTE_UPSTREAM) {
        if (src->has_strip) {
            cr_conf_error(ld, src->strip_mark,
                          "\"strip_prefix\" only applies to routes with \"upstream\"");
        }
        if (src->has_reqh) {
            cr_conf_error(ld, src->reqh_mark,
                          "\"request_headers\" only applies to routes with \"upstream\"");
        }
        return;
    }

    /* a prefix that the matched paths cannot start with is never stripped */
    if (r->strip_prefix == NULL) {
        return;
    }
    match = r->path_prefix != NULL ? r->path_prefix : r->path;
    what = r->path_prefix != NULL ? "path_prefix" : "path";
    if (match != NULL && strncmp(match, r->strip_prefix, strlen(r->strip_prefix)) != 0) {
        cr_conf_error(ld, src->strip_mark,
                      "\"strip_prefix\" %s is not a prefix of \"%s\" %s, so it would never "
                      "be stripped",
                      cr_conf_quote(ld, r->strip_prefix, strlen(r->strip_prefix)), what,
                      cr_conf_quote(ld, match, strlen(match)));
    }
}

static void
check_routes(struct cr_conf_ld *ld, struct cr_conf *conf)
{
    size_t i, j;

    for (i = 0; i < conf->nroutes; i++) {
        struct cr_conf_route           *r = &conf->routes[i];
        const struct cr_conf_src_route *src = &ld->routes[i];

        if (r->name == NULL) {
            continue;
        }
        for (j = 0; j < i; j++) {
            const struct cr_conf_route *prev = &conf->routes[j];

            if (prev->name != NULL && strcmp(prev->name, r->name) == 0) {
                cr_conf_error(ld, src->name_mark,
                              "duplicate route name %s (first used at line %u, column %u)",
                              cr_conf_quote(ld, r->name, strlen(r->name)),
                              ld->routes[j].name_mark.line, ld->routes[j].name_mark.col);
                break;
            }
        }

        if (src->skip || check_action(ld, r, src) != CR_OK) {
            continue;
        }
        if (r->action == CR_ROUTE_UPSTREAM && r->upstream_name != NULL) {
            check_upstream_ref(ld, conf, r, src);
        }
        check_proxy_options(ld, r, src);
    }
}

void
cr_conf_check(struct cr_conf_ld *ld)
{
    check_listen(ld, ld->conf);
    check_upstreams(ld, ld->conf);
    check_routes(ld, ld->conf);
}
