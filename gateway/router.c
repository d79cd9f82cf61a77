/*
 * router.c - choose the route of a request.
 *
 * A pure function of the config: routes are tried in file order and the
 * first one whose every given condition matches wins. Nothing is allocated
 * and nothing is copied (sanitizer builds excepted, see ROUTER_REGEX_COPY):
 * the Host value is narrowed in place to its name (port and one trailing
 * dot dropped), paths are compared as bytes, and regular expressions run
 * with REG_STARTEND (a glibc and BSD extension) so the path needs no NUL
 * terminator.
 *
 * Conditions, cheapest first:
 *   methods     a bit set; a route that allows GET also allows HEAD, since
 *               HEAD is GET without the body (RFC 9110 §9.3.2), as nginx's
 *               limit_except does.
 *   host        exact (case-insensitive, ASCII) or "*.suffix", which
 *               matches one or more labels before the suffix but not the
 *               suffix alone. A route with a host never matches a request
 *               without one.
 *   path        exact bytes; path_prefix: leading bytes; path_regex:
 *               POSIX extended, unanchored unless written with ^ or $.
 */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "router.h"

/*
 * The sanitizers' regexec() interceptor checks strlen(string) + 1 bytes
 * whatever the flags, so a path that is not NUL-terminated (the parser's
 * spans are not) looks like an overflow although glibc reads only up to
 * rm_eo. Sanitizer builds therefore match on a terminated copy; normal
 * builds copy nothing.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ROUTER_REGEX_COPY 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ROUTER_REGEX_COPY 1
#endif
#endif

/* regexec() on exactly <len> bytes of <s>. Returns 1 on a match. */
static int
regex_match(const regex_t *re, const char *s, size_t len)
{
    regmatch_t m[1];
    int rc;
#ifdef ROUTER_REGEX_COPY
    char *copy = malloc(len + 1);

    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    s = copy;
#endif

    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)len;
    rc = regexec(re, s, 1, m, REG_STARTEND);
#ifdef ROUTER_REGEX_COPY
    free(copy);
#endif
    return rc == 0;
}

static int
ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* Case-insensitive comparison of <n> bytes; <a> is already lower case. */
static int
lower_eq(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (a[i] != ascii_lower((unsigned char)b[i])) {
            return 0;
        }
    }
    return 1;
}

/*
 * Narrow the Host value <*host>/<*len> to the name: drop ":port" and one
 * trailing dot. "[::1]:8080" gives "[::1]"; a bare IPv6 address (several
 * colons, no brackets) is left alone.
 */
static void
host_name(const char **host, size_t *len)
{
    const char *h = *host, *colon, *end;
    size_t n = *len;

    if (n > 0 && h[0] == '[') {
        end = memchr(h, ']', n);
        if (end != NULL) {
            n = (size_t)(end - h) + 1;
        }
    } else {
        colon = memchr(h, ':', n);
        if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - h) - 1) == NULL) {
            n = (size_t)(colon - h);
        }
    }
    if (n > 0 && h[n - 1] == '.') {
        n--;
    }
    *len = n;
}

/* Does route host <pattern> (lower case) match request host <h>/<n>? */
static int
host_match(const char *pattern, const char *h, size_t n)
{
    size_t plen = strlen(pattern);

    if (pattern[0] == '*' && pattern[1] == '.') {
        /* "*.example.com": at least one byte before ".example.com" */
        plen--;
        return n > plen && lower_eq(pattern + 1, h + n - plen, plen);
    }
    if (plen == n && lower_eq(pattern, h, n)) {
        return 1;
    }
    /* a route written "::1" against a request for "[::1]" */
    if (n > 2 && h[0] == '[' && h[n - 1] == ']') {
        return plen == n - 2 && lower_eq(pattern, h + 1, n - 2);
    }
    return 0;
}

static int
path_match(const struct cr_conf_route *r, const char *path, size_t pathlen)
{
    size_t n;

    if (r->path != NULL) {
        n = strlen(r->path);
        if (n != pathlen || memcmp(r->path, path, n) != 0) {
            return 0;
        }
    }
    if (r->path_prefix != NULL) {
        n = strlen(r->path_prefix);
        if (n > pathlen || memcmp(r->path_prefix, path, n) != 0) {
            return 0;
        }
    }
    if (r->path_regex != NULL && !regex_match(&r->regex, path, pathlen)) {
        return 0;
    }
    return 1;
}

const struct cr_conf_route *
cr_router_match(const struct cr_conf *conf, const char *host, size_t hostlen,
                const char *path, size_t pathlen, unsigned method)
{
    const struct cr_conf_route *r;
    unsigned allowed;
    size_t i;

    if (host == NULL) {
        hostlen = 0;
    } else if (hostlen > 0) {
        host_name(&host, &hostlen);
    }
    if (path == NULL) {
        path = "";
        pathlen = 0;
    }

    for (i = 0; i < conf->nroutes; i++) {
        r = &conf->routes[i];

        if (r->methods != 0) {
            allowed = r->methods;
            if (allowed & CR_METHOD_GET) {
                allowed |= CR_METHOD_HEAD;
            }
            if ((allowed & method) == 0) {
                continue;
            }
        }
        if (r->host != NULL && r->host[0] != '\0') {
            if (hostlen == 0 || !host_match(r->host, host, hostlen)) {
                continue;
            }
        }
        if (!path_match(r, path, pathlen)) {
            continue;
        }
        return r;
    }
    return NULL;
}

/*
 * <prefix> applies only at a segment boundary: "/v1" strips "/v1" and
 * "/v1/x" but not "/v10/x", unless <prefix> itself ends with '/'. The rest
 * always starts with '/' ("/v1" -> "/", "/v1/" on "/v1/x" -> "/x"). The
 * result is NUL-terminated when <outlen> leaves room for it; the returned
 * length never counts the NUL, so a buffer of <pathlen> bytes is always
 * enough.
 */
size_t
cr_router_strip_prefix(const char *prefix, const char *path, size_t pathlen,
                       char *out, size_t outlen)
{
    const char *rest = path;
    size_t plen, restlen = pathlen, n = 0;

    plen = prefix != NULL ? strlen(prefix) : 0;
    if (plen > 0 && plen <= pathlen && memcmp(prefix, path, plen) == 0
        && (plen == pathlen || path[plen] == '/' || prefix[plen - 1] == '/'))
    {
        rest = path + plen;
        restlen = pathlen - plen;
        if (restlen == 0 || rest[0] != '/') {
            n = 1;                          /* the '/' we put back */
        }
    }

    if (n + restlen > outlen) {
        return (size_t)-1;
    }
    if (n == 1) {
        out[0] = '/';
    }
    if (restlen > 0) {
        memmove(out + n, rest, restlen);
    }
    n += restlen;
    if (n < outlen) {
        out[n] = '\0';
    }
    return n;
}
