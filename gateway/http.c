/*
 * http.c - HTTP/1.x message framing on top of llhttp; no I/O.
 *
 * llhttp hands out the pieces of a head as they arrive, possibly split over
 * several reads. Each piece is appended to one arena per parser, so a name
 * or value split across reads ends up contiguous, and spans (offsets) stay
 * valid when the arena grows. The arena is bounded by max_head_bytes: a
 * client cannot make a worker hold more than that for its head (431).
 *
 * Strictness comes from llhttp in its default, non-lenient mode: it refuses
 * Content-Length with Transfer-Encoding, duplicate lengths, bare LF, obs-fold
 * and bad chunk sizes (RFC 9112 §6.3, §7.1). On top of it we add the checks
 * llhttp leaves to the application: Host on HTTP/1.1 (RFC 9112 §3.2), the
 * transfer codings we support, and the size limits.
 */
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "http.h"

#define ARENA_MIN   1024

static int on_message_begin(llhttp_t *p);
static int on_url(llhttp_t *p, const char *at, size_t len);
static int on_status(llhttp_t *p, const char *at, size_t len);
static int on_header_field(llhttp_t *p, const char *at, size_t len);
static int on_header_value(llhttp_t *p, const char *at, size_t len);
static int on_header_field_complete(llhttp_t *p);
static int on_header_value_complete(llhttp_t *p);
static int on_headers_complete(llhttp_t *p);
static int on_body(llhttp_t *p, const char *at, size_t len);
static int on_message_complete(llhttp_t *p);
static int on_version_complete(llhttp_t *p);
static int is_tchar(unsigned char ch);
static int on_chunk_header(llhttp_t *p);

/* The same callbacks for every parser: one table, not one per parser. */
static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_version_complete = on_version_complete,
    .on_chunk_header = on_chunk_header,
};

void
cr_http_parser_init(struct cr_http_parser *hp, int is_request,
                    const struct cr_http_limits *limits,
                    cr_http_head_cb *on_head, cr_http_body_cb *body_cb, void *arg)
{
    memset(hp, 0, sizeof(*hp));
    /* llhttp only reads the settings; its API is not const-correct */
    llhttp_init(&hp->p, is_request ? HTTP_REQUEST : HTTP_RESPONSE,
                (llhttp_settings_t *)(uintptr_t)&settings);
    hp->p.data = hp;
    hp->is_request = is_request;
    hp->limits = limits;
    hp->on_head = on_head;
    hp->on_body = body_cb;
    hp->arg = arg;
    hp->scan_bol = 1;
}

void
cr_http_parser_reuse(struct cr_http_parser *hp, int is_request,
                     const struct cr_http_limits *limits,
                     cr_http_head_cb *on_head, cr_http_body_cb *body_cb, void *arg)
{
    char *arena = hp->arena;
    uint32_t arena_cap = hp->arena_cap;
    struct cr_http_field *fields = hp->fields;
    unsigned fields_cap = hp->fields_cap;

    cr_http_parser_init(hp, is_request, limits, on_head, body_cb, arg);
    /* keep buffers of the usual size; a huge head's go */
    if (arena_cap <= ARENA_MIN * 4) {
        hp->arena = arena;
        hp->arena_cap = arena_cap;
    } else {
        free(arena);
    }
    if (fields_cap <= 64) {
        hp->fields = fields;
        hp->fields_cap = fields_cap;
    } else {
        free(fields);
    }
}

void
cr_http_parser_free(struct cr_http_parser *hp)
{
    free(hp->arena);
    free(hp->fields);
    hp->arena = NULL;
    hp->fields = NULL;
    hp->arena_cap = 0;
    hp->fields_cap = 0;
}

static void
reset_head(struct cr_http_parser *hp)
{
    hp->arena_len = 0;
    hp->target.off = hp->target.len = 0;
    hp->reason.off = hp->reason.len = 0;
    hp->nfields = 0;
    hp->in_field = 0;
    hp->in_value = 0;
    hp->method = -1;
    hp->status = 0;
    hp->flags = 0;
    hp->content_length = 0;
    hp->head_bytes = 0;
    hp->body_bytes = 0;
    hp->head_done = 0;
    hp->msg_done = 0;
    hp->have_version = 0;
    hp->fcr = 0;
    hp->fprev = 0;
}

static int
fail(struct cr_http_parser *hp, int status, const char *reason)
{
    hp->err_status = status;
    hp->err_reason = reason;
    llhttp_set_error_reason(&hp->p, reason);
    return HPE_USER;
}

/*
 * Append <len> bytes to the arena, growing it up to the head limit. Returns
 * the offset they start at, or -1 (error already set) when over the limit or
 * out of memory.
 */
static int64_t
arena_add(struct cr_http_parser *hp, const char *at, size_t len)
{
    uint64_t need = (uint64_t)hp->arena_len + len;
    uint32_t off;

    if (len == 0) {
        return hp->arena_len;   /* llhttp's empty spans; the arena may be NULL */
    }
    if (need > hp->limits->max_head_bytes) {
        fail(hp, 431, "request head too large");
        return -1;
    }
    if (need > hp->arena_cap) {
        size_t cap = hp->arena_cap ? hp->arena_cap : ARENA_MIN;
        char *n;

        while (cap < need) {
            cap *= 2;
        }
        n = realloc(hp->arena, cap);
        if (n == NULL) {
            fail(hp, 503, "out of memory");
            return -1;
        }
        hp->arena = n;
        hp->arena_cap = (uint32_t)cap;
    }
    memcpy(hp->arena + hp->arena_len, at, len);
    off = hp->arena_len;
    hp->arena_len += (uint32_t)len;
    return off;
}

static int
on_version_complete(llhttp_t *p)
{
    struct cr_http_parser *hp = p->data;

    hp->have_version = 1;
    return 0;
}

/* A chunk size is known: refuse at once a chunk that would pass the limit. */
static int
on_chunk_header(llhttp_t *p)
{
    struct cr_http_parser *hp = p->data;

    if (hp->is_request && hp->limits->max_body_bytes != 0
        && (p->content_length > hp->limits->max_body_bytes
            || hp->body_bytes + p->content_length > hp->limits->max_body_bytes))
    {
        return fail(hp, 413, "request body too large");
    }
    return 0;
}

/*
 * The index of the first byte at or after <i> that is at most '\r', or <n>:
 * eight bytes at a time while none is (a word has such a byte exactly when
 * (v - 0x0e..0e) & ~v & 0x80..80 is not zero; bytes of 0x80 and over
 * cannot set their own top bit there, and borrows only run upwards from a
 * byte that is below 0x0e).
 */
static size_t
skip_plain(const char *data, size_t i, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, tops = 0x8080808080808080ull;

    while (i + 8 <= n) {
        uint64_t v;

        memcpy(&v, data + i, 8);
        if (((v - ones * 0x0e) & ~v & tops) != 0) {
            break;
        }
        i += 8;
    }
    while (i < n && (unsigned char)data[i] > '\r') {
        i++;
    }
    return i;
}

/*
 * Line checks llhttp 8.1 does not make on a request head: every line ends
 * in CRLF (no bare CR or LF, RFC 9112 §2.2), no line starts with
 * whitespace (obs-fold, §5.2: we reject rather than unfold), and the
 * request line carries a version (no HTTP/0.9). Runs over the head bytes
 * llhttp consumed, keeping its state across reads. Returns NULL or why.
 */
static const char *
scan_head(struct cr_http_parser *hp, const char *data, size_t n)
{
    /* the state in locals: stores through <hp> could alias <data> */
    unsigned char prev = hp->scan_prev, cr = hp->scan_cr, bol = hp->scan_bol;
    unsigned char seen = hp->scan_seen;
    const char *why = NULL;
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];

        if (c > '\r') {                   /* neither CR nor LF: most bytes */
            if (cr) {
                why = "bare CR in the request head";
                break;
            }
            if (bol && seen && c == ' ') {
                why = "line folding (obs-fold) in the request head";
                break;
            }
            bol = 0;
            seen = 1;
            /* up to the next CR, LF or other control byte: nothing to check */
            i = skip_plain(data, i + 1, n) - 1;
            prev = (unsigned char)data[i];
            continue;
        }
        if (cr) {
            cr = 0;
            if (c != '\n') {
                why = "bare CR in the request head";
                break;
            }
        }
        if (c == '\r') {
            cr = 1;
            prev = c;
            continue;
        }
        if (c == '\n') {
            if (prev != '\r') {
                why = "bare LF in the request head";
                break;
            }
            if (seen && !hp->scan_line1) {
                hp->scan_line1 = 1;
                if (!hp->have_version) {
                    why = "request line without an HTTP version";
                    break;
                }
            }
            bol = 1;
            prev = c;
            continue;
        }
        if (bol && seen && c == '\t') {
            why = "line folding (obs-fold) in the request head";
            break;
        }
        bol = 0;
        seen = 1;
        prev = c;
    }
    hp->scan_prev = prev;
    hp->scan_cr = cr;
    hp->scan_bol = bol;
    hp->scan_seen = seen;
    return why;
}

/*
 * llhttp 8.1 takes a CR followed by any byte as the end of a chunk-size or
 * chunk-data line. corral re-frames bodies, so its upstream never sees the
 * ambiguity, but a peer in front of corral could read such a body another
 * way. The bytes of a chunked body that are not data (llhttp's on_body
 * spans say exactly which are) must therefore end their lines in CRLF.
 * Returns 0, or -1 on a bare CR or LF.
 */
static int
check_framing(struct cr_http_parser *hp, const char *from, const char *to)
{
    for (; from < to; from++) {
        unsigned char c = (unsigned char)*from;

        if (hp->fcr) {
            hp->fcr = 0;
            if (c != '\n') {
                return -1;
            }
        } else if (c == '\r') {
            hp->fcr = 1;
        } else if (c == '\n') {
            return -1;
        }
        hp->fprev = c;
    }
    return 0;
}

/* Does <data> start with a method token and a space (an unknown method)? */
static int
method_token(const char *data, size_t len)
{
    size_t i;

    for (i = 0; i < len && is_tchar((unsigned char)data[i]); i++) {
        continue;
    }
    return i > 0 && i < len && data[i] == ' ';
}

static int
on_message_begin(llhttp_t *p)
{
    struct cr_http_parser *hp = p->data;

    reset_head(hp);
    return 0;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
    struct cr_http_parser *hp = p->data;
    int64_t off;

    if (hp->limits->max_uri_bytes != 0
        && (uint64_t)hp->target.len + len > hp->limits->max_uri_bytes)
    {
        return fail(hp, 414, "request target too long");
    }
    off = arena_add(hp, at, len);
    if (off == -1) {
        if (hp->err_status == 431) {
            hp->err_status = 414;   /* the line itself is what is too long */
        }
        return HPE_USER;
    }
    if (hp->target.len == 0) {
        hp->target.off = (uint32_t)off;
    }
    hp->target.len += (uint32_t)len;
    return 0;
}

static int
on_status(llhttp_t *p, const char *at, size_t len)
{
    struct cr_http_parser *hp = p->data;
    int64_t off = arena_add(hp, at, len);

    if (off == -1) {
        return HPE_USER;
    }
    if (hp->reason.len == 0) {
        hp->reason.off = (uint32_t)off;
    }
    hp->reason.len += (uint32_t)len;
    return 0;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct cr_http_parser *hp = p->data;
    struct cr_http_field *f;
    int64_t off;

    if (!hp->in_field) {
        /* a new field begins */
        if (hp->nfields >= hp->limits->max_headers
            || hp->nfields >= CR_HTTP_MAX_HEADERS_HARD)
        {
            return fail(hp, 431, "too many header fields");
        }
        if (hp->nfields == hp->fields_cap) {
            unsigned cap = hp->fields_cap ? hp->fields_cap * 2 : 16;
            struct cr_http_field *n = realloc(hp->fields, cap * sizeof(*n));

            if (n == NULL) {
                return fail(hp, 503, "out of memory");
            }
            hp->fields = n;
            hp->fields_cap = cap;
        }
        f = &hp->fields[hp->nfields++];
        memset(f, 0, sizeof(*f));
        hp->in_field = 1;
    }
    f = &hp->fields[hp->nfields - 1];
    off = arena_add(hp, at, len);
    if (off == -1) {
        return HPE_USER;
    }
    if (f->name.len == 0) {
        f->name.off = (uint32_t)off;
    }
    f->name.len += (uint32_t)len;
    return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct cr_http_parser *hp = p->data;
    struct cr_http_field *f;
    int64_t off;

    if (hp->nfields == 0) {
        return fail(hp, 400, "header value without a name");
    }
    f = &hp->fields[hp->nfields - 1];
    off = arena_add(hp, at, len);
    if (off == -1) {
        return HPE_USER;
    }
    if (!hp->in_value) {
        f->value.off = (uint32_t)off;
        f->value.len = 0;
        hp->in_value = 1;
    }
    f->value.len += (uint32_t)len;
    return 0;
}

/* tchar of RFC 9110 §5.6.2 */
static const unsigned char tchars[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1
};

static int
is_tchar(unsigned char ch)
{
    return tchars[ch];
}

/* <a> equals lower-case <b>, both <n> bytes, ASCII letters in any case. */
static int
lower_eq(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];

        if (c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        }
        if (c != (unsigned char)b[i]) {
            return 0;
        }
    }
    return 1;
}

enum cr_http_hdr
cr_http_hdr_kind(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return lower_eq(n, "te", 2) ? CR_HDR_TE : CR_HDR_OTHER;
    case 3:
        return lower_eq(n, "via", 3) ? CR_HDR_VIA : CR_HDR_OTHER;
    case 4:
        return lower_eq(n, "host", 4) ? CR_HDR_HOST : CR_HDR_OTHER;
    case 6:
        return lower_eq(n, "expect", 6) ? CR_HDR_EXPECT : CR_HDR_OTHER;
    case 7:
        if (lower_eq(n, "upgrade", 7)) {
            return CR_HDR_UPGRADE;
        }
        return lower_eq(n, "trailer", 7) ? CR_HDR_TRAILER : CR_HDR_OTHER;
    case 10:
        if (lower_eq(n, "connection", 10)) {
            return CR_HDR_CONNECTION;
        }
        return lower_eq(n, "keep-alive", 10) ? CR_HDR_KEEP_ALIVE : CR_HDR_OTHER;
    case 12:
        return lower_eq(n, "x-request-id", 12) ? CR_HDR_X_REQUEST_ID : CR_HDR_OTHER;
    case 14:
        return lower_eq(n, "content-length", 14) ? CR_HDR_CONTENT_LENGTH : CR_HDR_OTHER;
    case 15:
        return lower_eq(n, "x-forwarded-for", 15) ? CR_HDR_X_FORWARDED_FOR : CR_HDR_OTHER;
    case 16:
        if (lower_eq(n, "x-forwarded-host", 16)) {
            return CR_HDR_X_FORWARDED_HOST;
        }
        return lower_eq(n, "proxy-connection", 16) ? CR_HDR_PROXY_CONNECTION : CR_HDR_OTHER;
    case 17:
        if (lower_eq(n, "x-forwarded-proto", 17)) {
            return CR_HDR_X_FORWARDED_PROTO;
        }
        return lower_eq(n, "transfer-encoding", 17) ? CR_HDR_TRANSFER_ENCODING
                                                    : CR_HDR_OTHER;
    default:
        return CR_HDR_OTHER;
    }
}

/*
 * llhttp 8.1 lets whitespace between a field name and its colon through;
 * RFC 9112 §5.1 says a server MUST reject that with 400, since peers that
 * trim it and peers that don't would read different headers.
 */
static int
on_header_field_complete(llhttp_t *p)
{
    struct cr_http_parser *hp = p->data;
    struct cr_http_field *f;
    const char *name;
    uint32_t i;

    hp->in_field = 0;
    /* llhttp reports empty names too, and then the arena may be NULL */
    if (hp->nfields == 0 || hp->fields[hp->nfields - 1].name.len == 0) {
        return fail(hp, hp->is_request ? 400 : 502, "empty header name");
    }
    f = &hp->fields[hp->nfields - 1];
    name = cr_http_str(hp, f->name);
    for (i = 0; i < f->name.len; i++) {
        if (!is_tchar((unsigned char)name[i])) {
            return fail(hp, hp->is_request ? 400 : 502, "invalid header name");
        }
    }
    f->kind = cr_http_hdr_kind(name, f->name.len);
    return 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
    struct cr_http_parser *hp = p->data;

    hp->in_value = 0;
    return 0;
}

static int token_listed(const char *v, size_t vlen, const char *name, size_t len);
static int lists_names(const char *v, size_t vlen);

/*
 * A request that may switch protocols (RFC 9110 §7.8): HTTP/1.1, GET, no
 * framing header at all, an Upgrade header, and "upgrade" listed in
 * Connection. Anything
 * else asking for an upgrade is answered as a plain request.
 */
static int
wants_upgrade(const struct cr_http_parser *hp)
{
    unsigned i;

    if (hp->http_minor != 1 || hp->method != HTTP_GET
        || (hp->flags & (CR_HTTP_F_CHUNKED | CR_HTTP_F_TE | CR_HTTP_F_CLEN))
        || cr_http_find_kind(hp, CR_HDR_UPGRADE) == NULL)
    {
        return 0;
    }
    for (i = 0; i < hp->nfields; i++) {
        const struct cr_http_field *f = &hp->fields[i];

        if (f->kind == CR_HDR_CONNECTION
            && token_listed(cr_http_str(hp, f->value), f->value.len, "upgrade", 7))
        {
            return 1;
        }
    }
    return 0;
}

static int
value_is(const struct cr_http_parser *hp, const struct cr_http_field *f,
         const char *want)
{
    const char *v = cr_http_str(hp, f->value);
    size_t len = f->value.len;

    /* llhttp has already dropped leading OWS; trailing OWS is ours to drop */
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
        len--;
    }
    return cr_http_name_eq(v, len, want);
}

/*
 * The head is complete: derive flags and apply the checks llhttp leaves to
 * us. Requests pause here (the owner routes and connects first); responses
 * ask the owner whether a body follows.
 */
static int
on_headers_complete(llhttp_t *p)
{
    struct cr_http_parser *hp = p->data;
    unsigned i, nhost = 0;

    hp->head_done = 1;
    hp->method = llhttp_get_method(p);
    hp->status = llhttp_get_status_code(p);
    hp->http_major = llhttp_get_http_major(p);
    hp->http_minor = llhttp_get_http_minor(p);
    if (p->flags & F_CHUNKED) {
        hp->flags |= CR_HTTP_F_CHUNKED;
    }
    if (p->flags & F_CONTENT_LENGTH) {
        hp->flags |= CR_HTTP_F_CLEN;
        hp->content_length = p->content_length;
    }
    if (llhttp_should_keep_alive(p)) {
        hp->flags |= CR_HTTP_F_KEEPALIVE;
    }

    for (i = 0; i < hp->nfields; i++) {
        const struct cr_http_field *f = &hp->fields[i];

        if (f->kind == CR_HDR_HOST) {
            nhost++;
        } else if (f->kind == CR_HDR_CONNECTION) {
            if (lists_names(cr_http_str(hp, f->value), f->value.len)) {
                hp->flags |= CR_HTTP_F_CONN_NAMES;
            }
        } else if (f->kind == CR_HDR_EXPECT) {
            if (value_is(hp, f, "100-continue")) {
                hp->flags |= CR_HTTP_F_EXPECT_100;
            }
        } else if (f->kind == CR_HDR_TRANSFER_ENCODING) {
            hp->flags |= CR_HTTP_F_TE;
            if (hp->is_request && f->value.len == 0) {
                return fail(hp, 400, "empty Transfer-Encoding");
            }
            /*
             * RFC 9112 §6.1: chunked must be the final coding; a server
             * that does not understand a coding answers 501. We decode no
             * other coding, so anything but a lone "chunked" is refused
             * rather than forwarded with a framing we cannot vouch for.
             */
            if (!value_is(hp, f, "chunked")) {
                if (hp->is_request) {
                    return fail(hp, 501, "unsupported transfer coding");
                }
                /* we would have to pass the coding on unannounced */
                return fail(hp, 502, "unsupported transfer coding in response");
            }
        }
    }

    /*
     * A Transfer-Encoding that llhttp did not read as chunked ("chunked"
     * plus a tab, say) is refused here, before the head is routed: llhttp
     * itself would only fail it after this callback, when the head could
     * already have been forwarded.
     */
    if ((hp->flags & CR_HTTP_F_TE) && !(hp->flags & CR_HTTP_F_CHUNKED)) {
        return fail(hp, hp->is_request ? 400 : 502, "Transfer-Encoding not read as chunked");
    }

    if (hp->is_request) {
        /*
         * llhttp must not stop at the end of an Upgrade request waiting
         * for another protocol's bytes: the request ends like any other,
         * and if the upstream answers 101 the connection becomes a tunnel
         * (proxy.c); bytes after the head wait in the input until then.
         */
        p->upgrade = 0;
        if (hp->http_major != 1 || hp->http_minor > 1) {
            return fail(hp, 505, "HTTP version not supported");
        }
        if (wants_upgrade(hp)) {
            hp->flags |= CR_HTTP_F_UPGRADE;
        }
        /*
         * RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means its
         * framing is faulty, whatever else it says.
         */
        if ((hp->flags & CR_HTTP_F_TE) && hp->http_minor == 0) {
            return fail(hp, 400, "Transfer-Encoding in an HTTP/1.0 request");
        }
        if (nhost > 1) {
            return fail(hp, 400, "duplicate Host header");
        }
        if (nhost == 1) {
            const struct cr_http_field *hf = cr_http_find_kind(hp, CR_HDR_HOST);
            const char *v = cr_http_str(hp, hf->value);
            size_t vlen = hf->value.len;

            while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) {
                vlen--;
            }
            if (!cr_http_valid_authority(v, vlen)) {
                return fail(hp, 400, "invalid Host header");   /* RFC 9112 §3.2 */
            }
        }
        if (nhost == 1) {
            hp->flags |= CR_HTTP_F_HOST;
        } else if (hp->http_major == 1 && hp->http_minor >= 1) {
            return fail(hp, 400, "missing Host header");   /* RFC 9112 §3.2 */
        }
        if (hp->method == HTTP_CONNECT) {
            return fail(hp, 501, "CONNECT is not supported");
        }
        if ((hp->flags & CR_HTTP_F_CLEN) && hp->limits->max_body_bytes != 0
            && hp->content_length > hp->limits->max_body_bytes)
        {
            return fail(hp, 413, "request body too large");
        }
        return HPE_PAUSED;
    }

    /* RFC 9110 §6.4.1: 1xx, 204 and 304 responses never carry content */
    if ((hp->status >= 100 && hp->status < 200) || hp->status == 204
        || hp->status == 304)
    {
        hp->flags |= CR_HTTP_F_NOBODY;
    }
    if (hp->on_head != NULL) {
        int rc = hp->on_head(hp->arg);

        if (rc == -1) {
            if (hp->err_status == 0) {
                return fail(hp, 502, "response refused");
            }
            return HPE_USER;
        }
        if (rc == 1) {
            hp->flags |= CR_HTTP_F_NOBODY;
        }
    }
    return (hp->flags & CR_HTTP_F_NOBODY) ? 1 : 0;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
    struct cr_http_parser *hp = p->data;

    if (len == 0) {
        /* llhttp flushes an empty span when fed zero bytes; a zero-length
         * piece would read as the last chunk to a chunked re-framer */
        return 0;
    }
    if (hp->fscan_on) {
        if (check_framing(hp, hp->fscan, at) == -1) {
            return fail(hp, 400, "bare CR or LF in chunk framing");
        }
        hp->fscan = at + len;
    }
    hp->body_bytes += len;
    if (hp->is_request && hp->limits->max_body_bytes != 0
        && hp->body_bytes > hp->limits->max_body_bytes)
    {
        return fail(hp, 413, "request body too large");
    }
    if (hp->on_body != NULL && hp->on_body(hp->arg, at, len) == -1) {
        if (hp->err_status == 0) {
            return fail(hp, 500, "body sink failed");
        }
        return HPE_USER;
    }
    return 0;
}

static int
on_message_complete(llhttp_t *p)
{
    struct cr_http_parser *hp = p->data;

    /*
     * An interim response (1xx but 101) is not the end of the exchange: the
     * final response follows on the same connection (RFC 9110 §15.2).
     */
    if (!hp->is_request && hp->status >= 100 && hp->status < 200
        && hp->status != 101)
    {
        return 0;
    }
    hp->msg_done = 1;
    return HPE_PAUSED;
}

size_t
cr_http_parser_execute(struct cr_http_parser *hp, const char *data, size_t len,
                       enum cr_http_event *ev)
{
    llhttp_errno_t err;
    size_t used;
    int head_was_done = hp->head_done;

    hp->fscan_on = hp->is_request && head_was_done && !hp->msg_done
                   && (hp->flags & CR_HTTP_F_CHUNKED);
    hp->fscan = data;
    err = llhttp_execute(&hp->p, data, len);
    switch (err) {
    case HPE_OK:
        used = len;
        *ev = CR_HTTP_EV_NONE;
        break;
    case HPE_PAUSED:
    case HPE_PAUSED_UPGRADE:
        used = (size_t)(llhttp_get_error_pos(&hp->p) - data);
        if (hp->msg_done) {
            *ev = CR_HTTP_EV_DONE;
        } else if (hp->head_done) {
            *ev = CR_HTTP_EV_HEAD;
        } else {
            /* a pause with no head cannot come from our callbacks */
            *ev = CR_HTTP_EV_ERROR;
            fail(hp, hp->is_request ? 400 : 502, "unexpected parser pause");
        }
        break;
    default:
        used = 0;
        hp->fscan_on = 0;
        *ev = CR_HTTP_EV_ERROR;
        if (hp->err_status == 0) {
            hp->err_status = hp->is_request ? 400 : 502;
            hp->err_reason = llhttp_errno_name(err);
            /* a well-formed token we do not know: RFC 9110 §9.1 says 501 */
            if (hp->is_request && err == HPE_INVALID_METHOD && !head_was_done
                && method_token(data, len))
            {
                hp->err_status = 501;
                hp->err_reason = "unknown method";
            }
        }
        return used;
    }

    if (hp->fscan_on) {
        hp->fscan_on = 0;
        if (check_framing(hp, hp->fscan, data + used) == -1) {
            fail(hp, 400, "bare CR or LF in chunk framing");
            *ev = CR_HTTP_EV_ERROR;
            return used;
        }
    }

    if (hp->is_request && !head_was_done && used > 0) {
        const char *why = scan_head(hp, data, used);

        if (why != NULL) {
            fail(hp, 400, why);
            *ev = CR_HTTP_EV_ERROR;
            return used;
        }
    }

    if (!head_was_done) {
        hp->head_bytes += used;
        /* separators are not in the arena; bound the raw bytes as well */
        if (!hp->head_done && hp->head_bytes > hp->limits->max_head_bytes + 4096) {
            fail(hp, 431, "request head too large");
            *ev = CR_HTTP_EV_ERROR;
        }
    }
    return used;
}

enum cr_http_event
cr_http_parser_finish(struct cr_http_parser *hp)
{
    llhttp_errno_t err = llhttp_finish(&hp->p);

    if (hp->msg_done) {
        return CR_HTTP_EV_DONE;
    }
    if (err == HPE_OK) {
        return CR_HTTP_EV_NONE;
    }
    if (hp->err_status == 0) {
        hp->err_status = hp->is_request ? 400 : 502;
        hp->err_reason = "message cut short";
    }
    return CR_HTTP_EV_ERROR;
}

void
cr_http_parser_resume(struct cr_http_parser *hp)
{
    if (llhttp_get_errno(&hp->p) == HPE_PAUSED_UPGRADE) {
        llhttp_resume_after_upgrade(&hp->p);
    } else if (llhttp_get_errno(&hp->p) == HPE_PAUSED) {
        llhttp_resume(&hp->p);
    }
}

void
cr_http_parser_next(struct cr_http_parser *hp)
{
    cr_http_parser_resume(hp);
    reset_head(hp);
    /*
     * The raw line checks restart here, between messages, and not in
     * on_message_begin: that runs inside llhttp_execute(), before
     * scan_head() looks at the same bytes, so a CR and LF split over two
     * reads would look like a bare LF.
     */
    hp->scan_prev = 0;
    hp->scan_cr = 0;
    hp->scan_bol = 1;
    hp->scan_seen = 0;
    hp->scan_line1 = 0;
}

const char *
cr_http_value(const struct cr_http_parser *hp, const char *name, size_t *len)
{
    const struct cr_http_field *f = cr_http_find(hp, name);
    const char *v;
    size_t n;

    if (f == NULL) {
        return NULL;
    }
    v = cr_http_str(hp, f->value);
    n = f->value.len;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    *len = n;
    return v;
}

const struct cr_http_field *
cr_http_find_kind(const struct cr_http_parser *hp, enum cr_http_hdr kind)
{
    unsigned i;

    for (i = 0; i < hp->nfields; i++) {
        if (hp->fields[i].kind == (unsigned)kind) {
            return &hp->fields[i];
        }
    }
    return NULL;
}

const struct cr_http_field *
cr_http_find(const struct cr_http_parser *hp, const char *name)
{
    unsigned i;

    for (i = 0; i < hp->nfields; i++) {
        const struct cr_http_field *f = &hp->fields[i];

        if (cr_http_name_eq(cr_http_str(hp, f->name), f->name.len, name)) {
            return f;
        }
    }
    return NULL;
}

int
cr_http_should_keep_alive(const struct cr_http_parser *hp)
{
    return (hp->flags & CR_HTTP_F_KEEPALIVE) != 0;
}

/* ---- writing heads ---- */

static int
buf_reserve(struct cr_buf *b, size_t more)
{
    size_t cap;
    char *n;

    if (b->oom) {
        return CR_ERR;
    }
    if (b->len + more <= b->cap) {
        return CR_OK;
    }
    cap = b->cap ? b->cap : 1024;      /* most heads fit at once */
    while (cap < b->len + more) {
        cap *= 2;
    }
    n = realloc(b->p, cap);
    if (n == NULL) {
        b->oom = 1;
        return CR_ERR;
    }
    b->p = n;
    b->cap = cap;
    return CR_OK;
}

void
cr_buf_add_slow(struct cr_buf *b, const char *s, size_t len)
{
    if (buf_reserve(b, len) == CR_OK) {
        memcpy(b->p + b->len, s, len);
        b->len += len;
    }
}

/* Write <v> in <base> (10 or 16) backwards from the end of <tmp>. */
static size_t
fmt_u64(char tmp[24], uint64_t v, unsigned base)
{
    static const char digits[] = "0123456789abcdef";
    size_t i = 24;

    do {
        tmp[--i] = digits[v % base];
        v /= base;
    } while (v != 0);
    return i;
}

void
cr_http_format_ipv4(const struct in_addr *a, char *out)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;
    int i;

    for (i = 0; i < 4; i++) {
        unsigned v = b[i];

        if (v >= 100) {
            *out++ = (char)('0' + v / 100);
        }
        if (v >= 10) {
            *out++ = (char)('0' + v / 10 % 10);
        }
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

void
cr_buf_add_u64(struct cr_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = fmt_u64(tmp, v, 10);

    cr_buf_add(b, tmp + i, 24 - i);
}

void
cr_buf_add_hex(struct cr_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = fmt_u64(tmp, v, 16);

    cr_buf_add(b, tmp + i, 24 - i);
}

void
cr_buf_addf(struct cr_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1) != CR_OK) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
cr_buf_free(struct cr_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/*
 * The next comma-separated token of <v> from *<i> on, without its
 * whitespace: sets *<start> and *<len> and returns 1, or 0 at the end.
 */
static int
next_token(const char *v, size_t vlen, size_t *i, size_t *start, size_t *len)
{
    while (*i < vlen) {
        size_t end;

        while (*i < vlen && (v[*i] == ' ' || v[*i] == '\t' || v[*i] == ',')) {
            (*i)++;
        }
        *start = *i;
        while (*i < vlen && v[*i] != ',') {
            (*i)++;
        }
        end = *i;
        while (end > *start && (v[end - 1] == ' ' || v[end - 1] == '\t')) {
            end--;
        }
        if (end > *start) {
            *len = end - *start;
            return 1;
        }
    }
    return 0;
}

/* Is <name> one of the comma-separated tokens of <v>? */
static int
token_listed(const char *v, size_t vlen, const char *name, size_t len)
{
    size_t i = 0, start, n;

    while (next_token(v, vlen, &i, &start, &n)) {
        if (n == len && strncasecmp(v + start, name, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * Does Connection value <v> list a token that names a header outside the
 * fixed hop-by-hop set ("close" names none)? Only then must each header be
 * looked up in it.
 */
static int
lists_names(const char *v, size_t vlen)
{
    size_t i = 0, start, n;

    while (next_token(v, vlen, &i, &start, &n)) {
        if (!(n == 5 && lower_eq(v + start, "close", 5))
            && cr_http_hdr_kind(v + start, n) < CR_HDR_HOP_FIRST)
        {
            return 1;
        }
    }
    return 0;
}

/* Is <name> listed in one of the message's Connection headers? */
static int
connection_lists(const struct cr_http_parser *hp, const char *name, size_t len)
{
    unsigned i;

    for (i = 0; i < hp->nfields; i++) {
        const struct cr_http_field *f = &hp->fields[i];

        if (f->kind == CR_HDR_CONNECTION
            && token_listed(cr_http_str(hp, f->value), f->value.len, name, len))
        {
            return 1;
        }
    }
    return 0;
}

int
cr_http_field_listed(const struct cr_http_parser *hp, const struct cr_http_field *f)
{
    /*
     * A client must not make us drop the header we route on: Host stays
     * end-to-end whatever Connection lists (framing headers are rewritten
     * by us anyway).
     */
    if (f->kind == CR_HDR_HOST) {
        return 0;
    }
    return connection_lists(hp, cr_http_str(hp, f->name), f->name.len);
}

int
cr_http_is_hop_by_hop(const struct cr_http_parser *hp, const char *name, size_t len)
{
    enum cr_http_hdr kind = cr_http_hdr_kind(name, len);

    if (kind >= CR_HDR_HOP_FIRST) {
        return 1;
    }
    if (kind == CR_HDR_HOST) {
        return 0;
    }
    return connection_lists(hp, name, len);
}

int
cr_http_rules_any(const struct cr_conf_header_rules *rules)
{
    return rules->nremove != 0 || rules->nset != 0;
}

int
cr_http_rules_drop(const struct cr_conf_header_rules *rules, const char *name,
                   size_t len)
{
    size_t i;

    for (i = 0; i < rules->nremove; i++) {
        if (cr_http_name_eq(name, len, rules->remove[i])) {
            return 1;
        }
    }
    for (i = 0; i < rules->nset; i++) {
        if (cr_http_name_eq(name, len, rules->set[i].name)) {
            return 1;
        }
    }
    return 0;
}

void
cr_http_rules_add(const struct cr_conf_header_rules *rules, struct cr_buf *b)
{
    size_t i;

    for (i = 0; i < rules->nset; i++) {
        cr_buf_addf(b, "%s: %s\r\n", rules->set[i].name, rules->set[i].value);
    }
}

static int
hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

static int
is_unreserved(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
           || ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

size_t
cr_http_normalize_path(const char *in, size_t len, char *out, int merge_slashes)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, n = 0, w = 0;
    char *dec = out;

    /* 1. escapes, in place into <out> (never longer than <in>) */
    for (i = 0; i < len; i++) {
        int hi, lo, v;

        if (in[i] != '%') {
            dec[n++] = in[i];
            continue;
        }
        if (i + 2 >= len) {
            return (size_t)-1;      /* "%" or "%4" at the end */
        }
        hi = hex_value(in[i + 1]);
        lo = hex_value(in[i + 2]);
        if (hi < 0 || lo < 0) {
            return (size_t)-1;
        }
        v = hi * 16 + lo;
        if (v == 0) {
            return (size_t)-1;      /* an encoded NUL has no business in a path */
        }
        if (is_unreserved((unsigned char)v)) {
            dec[n++] = (char)v;
        } else {
            dec[n++] = '%';
            dec[n++] = hex[hi];
            dec[n++] = hex[lo];
        }
        i += 2;
    }

    /*
     * 2. segments, left to right, writing over what was read: each output
     * segment is no longer than the input it came from, so <w> never
     * passes the read position.
     */
    i = 0;
    while (i < n) {
        size_t j = i + 1, seglen;
        int last;

        if (dec[i] != '/') {
            /* a path always starts with '/'; keep anything else as is */
            j = i;
        }
        while (j < n && dec[j] != '/') {
            j++;
        }
        seglen = j - (dec[i] == '/' ? i + 1 : i);
        last = j >= n;
        if (seglen == 1 && dec[j - 1] == '.') {
            if (last && (w == 0 || out[w - 1] != '/')) {
                out[w++] = '/';
            }
        } else if (seglen == 2 && dec[j - 1] == '.' && dec[j - 2] == '.') {
            while (w > 0 && out[w - 1] != '/') {
                w--;
            }
            if (w > 0) {
                w--;                /* and the '/' before the segment */
            }
            if (last) {
                out[w++] = '/';
            }
        } else if (seglen == 0 && merge_slashes && !last) {
            /* an empty segment from "//": merged away */
        } else {
            memmove(out + w + 1, dec + j - seglen, seglen);
            out[w] = '/';
            w += seglen + 1;
        }
        i = j;
    }
    if (w == 0) {
        out[w++] = '/';
    }
    return w;
}

static int
valid_port(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > 5) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

int
cr_http_valid_authority(const char *s, size_t len)
{
    size_t i;

    if (len == 0) {
        return 1;
    }
    if (s[0] == '[') {
        for (i = 1; i < len && s[i] != ']'; i++) {
            if (hex_value(s[i]) < 0 && s[i] != ':' && s[i] != '.') {
                return 0;
            }
        }
        if (i >= len || i == 1) {
            return 0;
        }
        i++;                                /* past ']' */
        return i == len || (s[i] == ':' && valid_port(s + i + 1, len - i - 1));
    }
    for (i = 0; i < len && s[i] != ':'; i++) {
        if (!is_unreserved((unsigned char)s[i])) {
            return 0;
        }
    }
    if (i == 0) {
        return 0;
    }
    return i == len || valid_port(s + i + 1, len - i - 1);
}

const char *
cr_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

int
cr_http_method_idempotent(int method)
{
    switch (method) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
        return 1;
    default:
        return 0;
    }
}
