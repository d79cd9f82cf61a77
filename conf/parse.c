/*
 * parse.c - the scalar syntaxes of the config file: durations, sizes,
 * socket addresses, integers, HTTP tokens and method names.
 *
 * Pure functions over NUL-terminated strings: no YAML, no marks, no
 * messages. The loader (load.c) decides what an error means for the
 * operator. Only cr_conf_parse_addr() allocates (out->text).
 *
 * Every parser accepts exactly the documented form and nothing around it:
 * no sign, no spaces, no hex or octal, no fractions. A config value that
 * "almost" parses is an error rather than a guess.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/internal.h"

#define DISTANCE_MAX_LEN    32      /* longer strings are never "similar" */

/*
 * Read the decimal digits at <*sp> into <out> and advance <*sp> past them.
 * Returns CR_ERR if there is no digit or the value overflows uint64_t.
 */
static int
parse_digits(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t    v = 0;

    if (*s < '0' || *s > '9') {
        return CR_ERR;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned) (*s - '0');

        if (v > (UINT64_MAX - d) / 10) {
            return CR_ERR;
        }
        v = v * 10 + d;
    }
    *sp = s;
    *out = v;
    return CR_OK;
}

int
cr_conf_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;

    if (s == NULL || parse_digits(&s, &v) != CR_OK || *s != '\0') {
        return CR_ERR;
    }
    if (v < min || v > max) {
        return CR_ERR;
    }
    *out = v;
    return CR_OK;
}

/*
 * A number followed by "ms", "s", "m" or "h", or by nothing (seconds).
 * "0" is valid here; whether zero makes sense is the caller's business.
 */
int
cr_conf_parse_duration(const char *s, uint64_t *ms)
{
    uint64_t v;
    uint64_t mult;

    if (s == NULL || parse_digits(&s, &v) != CR_OK) {
        return CR_ERR;
    }
    if (strcmp(s, "") == 0 || strcmp(s, "s") == 0) {
        mult = 1000;
    } else if (strcmp(s, "ms") == 0) {
        mult = 1;
    } else if (strcmp(s, "m") == 0) {
        mult = 60 * 1000;
    } else if (strcmp(s, "h") == 0) {
        mult = 60 * 60 * 1000;
    } else {
        return CR_ERR;
    }
    if (v > UINT64_MAX / mult) {
        return CR_ERR;
    }
    *ms = v * mult;
    return CR_OK;
}

/* A number with an optional k, m or g (either case), powers of 1024. */
int
cr_conf_parse_size(const char *s, uint64_t *bytes)
{
    uint64_t v;
    unsigned shift;

    if (s == NULL || parse_digits(&s, &v) != CR_OK) {
        return CR_ERR;
    }
    switch (*s) {
    case '\0':
        shift = 0;
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        return CR_ERR;
    }
    if (shift != 0 && s[1] != '\0') {
        return CR_ERR;
    }
    if (v > (UINT64_MAX >> shift)) {
        return CR_ERR;
    }
    *bytes = v << shift;
    return CR_OK;
}

/* A port: 1..65535 in plain decimal. */
static int
parse_port(const char *s, in_port_t *port)
{
    uint64_t v;

    if (cr_conf_parse_uint(s, 1, 65535, &v) != CR_OK) {
        return CR_ERR;
    }
    *port = htons((uint16_t) v);
    return CR_OK;
}

/*
 * "A.B.C.D:PORT", "[IPV6]:PORT" or "localhost:PORT" (which means
 * 127.0.0.1, the address every Linux resolves it to). Names are not looked
 * up: a config check must not depend on DNS, and workers must not block on
 * it. IPv6 scope ids ("%eth0") are not supported. On success out->text is a
 * copy of <s> that the caller frees; on error <out> holds nothing to free.
 */
int
cr_conf_parse_addr(const char *s, struct cr_conf_addr *out)
{
    char        host[INET6_ADDRSTRLEN];
    const char *port;
    size_t      hlen;
    in_port_t   nport;

    memset(out, 0, sizeof(*out));
    if (s == NULL) {
        return CR_ERR;
    }

    if (s[0] == '[') {
        const char          *end = strchr(s, ']');
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &out->ss;

        if (end == NULL || end[1] != ':') {
            return CR_ERR;
        }
        hlen = (size_t) (end - s - 1);
        port = end + 2;
        if (hlen == 0 || hlen >= sizeof(host)) {
            return CR_ERR;
        }
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        if (parse_port(port, &nport) != CR_OK
            || inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        {
            return CR_ERR;
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = nport;
        out->len = sizeof(*sin6);
    } else {
        const char         *colon = strrchr(s, ':');
        struct sockaddr_in *sin = (struct sockaddr_in *) &out->ss;

        if (colon == NULL) {
            return CR_ERR;
        }
        hlen = (size_t) (colon - s);
        port = colon + 1;
        if (hlen == 0 || hlen >= sizeof(host)) {
            return CR_ERR;
        }
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        if (strcmp(host, "localhost") == 0) {
            strcpy(host, "127.0.0.1");
        }
        /* an unbracketed IPv6 address has colons left in <host> */
        if (parse_port(port, &nport) != CR_OK
            || inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        {
            return CR_ERR;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = nport;
        out->len = sizeof(*sin);
    }

    out->text = strdup(s);
    if (out->text == NULL) {
        memset(out, 0, sizeof(*out));
        return CR_ERR;
    }
    return CR_OK;
}

/*
 * Method names are case-sensitive (RFC 9110 §9.1): "get" is a valid token
 * but not GET, so it maps to CR_METHOD_OTHER like any extension method.
 */
unsigned
cr_conf_method_bit(const char *name, size_t len)
{
    static const struct {
        const char *name;
        unsigned    bit;
    } methods[] = {
        { "GET",     CR_METHOD_GET },
        { "HEAD",    CR_METHOD_HEAD },
        { "POST",    CR_METHOD_POST },
        { "PUT",     CR_METHOD_PUT },
        { "DELETE",  CR_METHOD_DELETE },
        { "PATCH",   CR_METHOD_PATCH },
        { "OPTIONS", CR_METHOD_OPTIONS },
        { "TRACE",   CR_METHOD_TRACE },
        { "CONNECT", CR_METHOD_CONNECT },
    };
    size_t i;

    for (i = 0; i < CR_NELEM(methods); i++) {
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, name, len) == 0) {
            return methods[i].bit;
        }
    }
    return CR_METHOD_OTHER;
}

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA   (RFC 9110 §5.6.2) */
int
cr_conf_is_token(const char *s, size_t len)
{
    size_t i;

    if (len == 0) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            continue;
        }
        if (c == '\0' || strchr("!#$%&'*+-.^_`|~", c) == NULL) {
            return 0;
        }
    }
    return 1;
}

/*
 * Names end up in logs, in metrics labels and (the instance name) in the
 * name of the shared-memory object, so they are kept to a safe alphabet.
 */
int
cr_conf_is_name(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > CR_CONF_NAME_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || c == '.' || c == '_' || c == '-')
        {
            continue;
        }
        return 0;
    }
    return 1;
}

static size_t
min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;

    return m < c ? m : c;
}

/* Optimal string alignment distance, on a (len+1)^2 table on the stack. */
size_t
cr_conf_distance(const char *a, const char *b)
{
    size_t d[DISTANCE_MAX_LEN + 1][DISTANCE_MAX_LEN + 1];
    size_t la = strlen(a);
    size_t lb = strlen(b);
    size_t i, j;

    if (la > DISTANCE_MAX_LEN || lb > DISTANCE_MAX_LEN) {
        return SIZE_MAX;
    }
    for (i = 0; i <= la; i++) {
        d[i][0] = i;
    }
    for (j = 0; j <= lb; j++) {
        d[0][j] = j;
    }
    for (i = 1; i <= la; i++) {
        for (j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;

            d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]
                && d[i - 2][j - 2] + 1 < d[i][j])
            {
                d[i][j] = d[i - 2][j - 2] + 1;
            }
        }
    }
    return d[la][lb];
}

/* One edit away, or two for words long enough that two edits still leave
 * most of them intact. */
int
cr_conf_similar(const char *typed, const char *known)
{
    size_t d = cr_conf_distance(typed, known);

    return d == 1 || (d == 2 && strlen(typed) >= 6);
}
