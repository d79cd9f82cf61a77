/*
 * http.h - HTTP/1.x message framing on top of llhttp; no I/O.
 *
 * Owns struct cr_http_parser: an llhttp parser plus an arena holding the
 * bytes of the current message head (request line or status line, header
 * names and values), with the limits that protect it. Bodies are not kept:
 * they are handed to the owner's body callback as llhttp decodes them, so
 * the owner can re-frame them (RFC 9112 §6: corral writes its own framing).
 *
 * Also owns the small helpers proxy.c and conn.c use to write heads:
 * struct cr_buf (a growable byte buffer), hop-by-hop tests and reasons.
 * No libevent header is included here, so tests call it without a loop.
 */
#ifndef CR_HTTP_H
#define CR_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "llhttp.h"

struct cr_conf_header_rules;

#define CR_HTTP_MAX_HEADERS_HARD 1024   /* whatever the config says */

/* What stopped cr_http_parser_execute(). */
enum cr_http_event {
    CR_HTTP_EV_NONE = 0,    /* consumed everything; need more bytes */
    CR_HTTP_EV_HEAD,        /* head complete; paused before any body */
    CR_HTTP_EV_DONE,        /* message complete; paused at its end */
    CR_HTTP_EV_ERROR        /* malformed or over a limit: see status */
};

/* Flags of a parsed head. */
#define CR_HTTP_F_CHUNKED       0x0001u /* Transfer-Encoding: chunked */
#define CR_HTTP_F_CLEN          0x0002u /* Content-Length present */
#define CR_HTTP_F_KEEPALIVE     0x0004u /* connection may persist (llhttp) */
#define CR_HTTP_F_EXPECT_100    0x0008u /* Expect: 100-continue */
#define CR_HTTP_F_HOST          0x0010u /* a Host header was present */
#define CR_HTTP_F_NOBODY        0x0020u /* response carries no body */
#define CR_HTTP_F_TE            0x0040u /* some Transfer-Encoding present */
#define CR_HTTP_F_UPGRADE       0x0080u /* a bodyless GET asking for Upgrade
                                         * (listed in Connection) */
#define CR_HTTP_F_CONN_NAMES    0x0100u /* Connection lists a header name
                                         * beyond the fixed hop-by-hop set */

/*
 * The header names corral acts on, told apart once per field when its name
 * ends (cr_http_field.kind), so building a head compares small integers
 * rather than strings. The fixed hop-by-hop set (RFC 9110 §7.6.1) comes
 * last, from CR_HDR_HOP_FIRST on.
 */
enum cr_http_hdr {
    CR_HDR_OTHER = 0,
    CR_HDR_HOST,
    CR_HDR_CONTENT_LENGTH,
    CR_HDR_EXPECT,
    CR_HDR_VIA,
    CR_HDR_X_FORWARDED_FOR,
    CR_HDR_X_FORWARDED_PROTO,
    CR_HDR_X_FORWARDED_HOST,
    CR_HDR_X_REQUEST_ID,
    CR_HDR_CONNECTION,
    CR_HDR_KEEP_ALIVE,
    CR_HDR_TE,
    CR_HDR_TRAILER,
    CR_HDR_TRANSFER_ENCODING,
    CR_HDR_UPGRADE,
    CR_HDR_PROXY_CONNECTION
};
#define CR_HDR_HOP_FIRST CR_HDR_CONNECTION

struct cr_http_span {
    uint32_t    off;        /* into the arena */
    uint32_t    len;
};

struct cr_http_field {
    struct cr_http_span name;
    struct cr_http_span value;
    unsigned            kind;   /* enum cr_http_hdr */
};

struct cr_http_limits {
    uint64_t    max_head_bytes;     /* request/status line + headers */
    unsigned    max_headers;
    uint64_t    max_uri_bytes;      /* 0 = only max_head_bytes applies */
    uint64_t    max_body_bytes;     /* 0 = unlimited */
};

/*
 * Called with each piece of decoded body. Return 0, or -1 to fail the
 * message (the parser then reports CR_HTTP_EV_ERROR with status 500).
 */
typedef int cr_http_body_cb(void *arg, const char *at, size_t len);

/*
 * Called when a head is complete, before any body (requests) or instead of
 * pausing (responses, see cr_http_parser_init). Return 0 to go on, 1 when
 * the message has no body whatever its headers say (a response to HEAD),
 * -1 to fail with status 502.
 */
typedef int cr_http_head_cb(void *arg);

struct cr_http_parser {
    llhttp_t                 p;
    int                      is_request;
    const struct cr_http_limits *limits;
    cr_http_body_cb         *on_body;
    cr_http_head_cb         *on_head;   /* responses only; NULL = pause */
    void                    *arg;

    /* the current message's head */
    char                    *arena;
    uint32_t                 arena_len;
    uint32_t                 arena_cap;
    struct cr_http_span      target;    /* request target */
    struct cr_http_span      reason;    /* response reason phrase */
    struct cr_http_field    *fields;
    unsigned                 nfields;
    unsigned                 fields_cap;
    int                      in_field;  /* inside a header name */
    int                      in_value;  /* inside a header value */
    int                      method;    /* llhttp_method_t */
    int                      status;    /* response status */
    unsigned                 http_major;
    unsigned                 http_minor;
    unsigned                 flags;     /* CR_HTTP_F_* */
    uint64_t                 content_length;
    uint64_t                 head_bytes;  /* bytes of the head seen */
    uint64_t                 body_bytes;  /* decoded body bytes so far */
    int                      head_done;
    int                      msg_done;
    int                      have_version;  /* llhttp parsed "HTTP/x.y" */

    /* raw line checks of a request head, across reads (see scan_head) */
    unsigned char            scan_prev;
    unsigned char            scan_cr;       /* last byte was a CR */
    unsigned char            scan_bol;      /* at the start of a line */
    unsigned char            scan_seen;     /* a byte of the request line */
    unsigned char            scan_line1;    /* the request line has ended */

    /* chunked request bodies: the framing bytes between data (see http.c) */
    const char              *fscan;         /* next framing byte to check */
    unsigned char            fscan_on;
    unsigned char            fcr;           /* last framing byte was a CR */
    unsigned char            fprev;

    /* error (CR_HTTP_EV_ERROR) */
    int                      err_status;  /* 400, 413, 414, 431, 501, 502 */
    const char              *err_reason;  /* static text for logs */
};

/*
 * Set up <hp>. Requests pause at the end of the head (CR_HTTP_EV_HEAD) so the
 * owner can route and connect before reading a body; responses call
 * <on_head> instead and go on. Both pause at the end of each message.
 */
void cr_http_parser_init(struct cr_http_parser *hp, int is_request,
                         const struct cr_http_limits *limits,
                         cr_http_head_cb *on_head, cr_http_body_cb *on_body,
                         void *arg);
void cr_http_parser_free(struct cr_http_parser *hp);

/* cr_http_parser_init() on a used parser, keeping its buffers for reuse. */
void cr_http_parser_reuse(struct cr_http_parser *hp, int is_request,
                          const struct cr_http_limits *limits,
                          cr_http_head_cb *on_head, cr_http_body_cb *body_cb, void *arg);

/*
 * Feed <len> bytes. Returns how many were consumed and sets *<ev>. After
 * CR_HTTP_EV_HEAD, call cr_http_parser_resume() before feeding the body;
 * after CR_HTTP_EV_DONE, cr_http_parser_next() before the next message.
 */
size_t cr_http_parser_execute(struct cr_http_parser *hp, const char *data,
                              size_t len, enum cr_http_event *ev);

/* The peer closed: complete a close-delimited body. CR_HTTP_EV_DONE if that
 * ends the message, CR_HTTP_EV_ERROR if it was cut short. */
enum cr_http_event cr_http_parser_finish(struct cr_http_parser *hp);

void cr_http_parser_resume(struct cr_http_parser *hp);
void cr_http_parser_next(struct cr_http_parser *hp);

/* Pointers into the arena (valid until the next feed or reset). */
static inline const char *
cr_http_str(const struct cr_http_parser *hp, struct cr_http_span s)
{
    return hp->arena + s.off;
}

/* Value of the first header named <name> (case-insensitive), or NULL. */
const struct cr_http_field *cr_http_find(const struct cr_http_parser *hp,
                                         const char *name);

/* The first header of kind <kind> (not CR_HDR_OTHER), or NULL. */
const struct cr_http_field *cr_http_find_kind(const struct cr_http_parser *hp,
                                              enum cr_http_hdr kind);

/* The kind of header name <name> (any case). */
enum cr_http_hdr cr_http_hdr_kind(const char *name, size_t len);

/* Does llhttp think the connection may persist after this message? */
int cr_http_should_keep_alive(const struct cr_http_parser *hp);

/* ---- writing heads ---- */

struct cr_buf {
    char       *p;
    size_t      len;
    size_t      cap;
    int         oom;        /* an append failed; contents are incomplete */
};

void cr_buf_add_slow(struct cr_buf *b, const char *s, size_t len);

/* Append; the common case (room left) inline, as heads are built from many pieces. */
static inline void
cr_buf_add(struct cr_buf *b, const char *s, size_t len)
{
    if (b->cap != 0 && b->len + len <= b->cap) {
        memcpy(b->p + b->len, s, len);
        b->len += len;
        return;
    }
    cr_buf_add_slow(b, s, len);
}
/*
 * Dotted quad of <a> into <out> (at least 16 bytes). Made once per
 * request for X-Forwarded-For, so not with inet_ntop(), which costs a
 * sprintf() per call.
 */
struct in_addr;
void cr_http_format_ipv4(const struct in_addr *a, char *out);

/* Decimal and hexadecimal numbers, without printf's cost. */
void cr_buf_add_u64(struct cr_buf *b, uint64_t v);
void cr_buf_add_hex(struct cr_buf *b, uint64_t v);

/* A C string; inline, so a literal's length is a constant. */
static inline void
cr_buf_adds(struct cr_buf *b, const char *s)
{
    cr_buf_add(b, s, strlen(s));
}
void cr_buf_addf(struct cr_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cr_buf_free(struct cr_buf *b);

/*
 * Case-insensitive comparison of a counted string with a C string. Inline
 * so that the length of a literal <b> is known at compile time and most
 * names are told apart by length alone.
 */
static inline int
cr_http_name_eq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/*
 * Is header <name> hop-by-hop for this message (RFC 9110 §7.6.1)? That is:
 * one of the fixed set (Connection, Keep-Alive, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-Connection), or a name listed in one of
 * the message's Connection headers.
 */
int cr_http_is_hop_by_hop(const struct cr_http_parser *hp, const char *name,
                          size_t len);

/* The same for one of the message's own fields, from its kind. */
int cr_http_field_listed(const struct cr_http_parser *hp, const struct cr_http_field *f);

static inline int
cr_http_field_hop(const struct cr_http_parser *hp, const struct cr_http_field *f)
{
    if (f->kind >= CR_HDR_HOP_FIRST) {
        return 1;
    }
    return (hp->flags & CR_HTTP_F_CONN_NAMES) && cr_http_field_listed(hp, f);
}

/*
 * The value of the first header <name> with trailing whitespace dropped,
 * or NULL.
 */
const char *cr_http_value(const struct cr_http_parser *hp, const char *name,
                          size_t *len);

/* Do the header rules remove or replace header <name>? */
int cr_http_rules_drop(const struct cr_conf_header_rules *rules,
                       const char *name, size_t len);

/* Do the rules remove or replace any header at all? */
int cr_http_rules_any(const struct cr_conf_header_rules *rules);

/* Append the rules' "set" headers to <b>. */
void cr_http_rules_add(const struct cr_conf_header_rules *rules, struct cr_buf *b);

/*
 * Normalise request path <in> (<len> bytes, starting with '/') into <out>,
 * which must hold <len> + 1 bytes. Percent-encoded unreserved characters
 * (RFC 3986 §2.3) are decoded and other escapes upper-cased (§6.2.2.1-2),
 * dot segments removed (§5.2.4), and with <merge_slashes> runs of '/'
 * collapsed. Returns the length written, or (size_t)-1 for a malformed
 * escape or an encoded NUL.
 */
size_t cr_http_normalize_path(const char *in, size_t len, char *out, int merge_slashes);

/*
 * Is <s> (<len> bytes) a valid Host / authority (RFC 9110 §7.2, RFC 3986
 * §3.2.2)? A name of unreserved characters, an IPv4 address or a bracketed
 * IPv6 address, with an optional ":port". Empty is valid (RFC 9112 §3.2).
 * No userinfo, no list, no spaces.
 */
int cr_http_valid_authority(const char *s, size_t len);

/* Reason phrase of <status> ("Not Found"), "Unknown" if none. */
const char *cr_http_reason(int status);

/* Is <method> (llhttp_method_t) idempotent (RFC 9110 §9.2.2)? */
int cr_http_method_idempotent(int method);

#endif /* CR_HTTP_H */
