/*
 * router.h - choose the route of a request.
 *
 * A pure function of the config: no libevent, no allocation, no I/O, so unit
 * tests call it directly. Routes are tried in file order; the first whose
 * every given condition matches wins.
 */
#ifndef CR_ROUTER_H
#define CR_ROUTER_H

#include <stddef.h>

struct cr_conf;
struct cr_conf_route;

/*
 * Match a request. <host> is the Host header value as received (may carry a
 * ":port" and any case; NULL or empty if absent), <path> the request path
 * without the query string, <method> its CR_METHOD_* bit. Returns the route
 * or NULL (404).
 */
const struct cr_conf_route *cr_router_match(const struct cr_conf *conf,
                                            const char *host, size_t hostlen,
                                            const char *path, size_t pathlen,
                                            unsigned method);

/*
 * Apply <prefix> stripping to <path>: if <path> starts with <prefix>, write
 * the rest into <out> (always starting with '/'), else copy <path>. Returns
 * the length written, or (size_t)-1 if <outlen> is too small.
 */
size_t cr_router_strip_prefix(const char *prefix, const char *path, size_t pathlen,
                              char *out, size_t outlen);

#endif /* CR_ROUTER_H */
