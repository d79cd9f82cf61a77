/*
 * fuzz_http.c - libFuzzer target: the HTTP/1.x framing layer (http.c)
 * alone, requests and responses, whole and in random pieces.
 *
 * Input: one mode byte, then the bytes of the stream.
 *   bit 0      parse responses (else requests)
 *   bit 1      the responses answer HEAD (the head callback says no body)
 *   bits 2..7  seed of the piece sizes for the split run
 *
 * Each input is parsed twice, as conn.c and proxy.c drive the parser
 * (resume after a request head, next after each message, finish at the
 * end of a response stream): once with every byte available, once fed in
 * pieces of 1..64 bytes. Each run writes a transcript of what the parser
 * reported (heads with every field, decoded bodies, ends, errors).
 *
 * Invariants; a broken one aborts:
 *   H1 both transcripts are the same: where TCP splits a stream must not
 *      change what corral reads. Two differences are allowed. When both
 *      runs refuse the same message, the status may differ (llhttp reports
 *      a bad byte before the span it ends, so a long target with a bad byte
 *      far in is 400 whole and 414 split) and so may the number of body
 *      bytes passed on before the refusal. And the raw head-size bound
 *      counts bytes per call, so the split run may stop with 431 where the
 *      whole run goes on;
 *   H2 a head's spans lie inside the arena, within the limits; a request
 *      head has exactly one Host on HTTP/1.1, is not CONNECT, and a
 *      Transfer-Encoding means chunked and no Content-Length;
 *   H3 a complete message with Content-Length has that many body bytes;
 *      a request body stays within max_body_bytes;
 *   H4 cr_http_normalize_path() keeps within its <len> + 1 bytes, returns
 *      a path with no dot segment (and no "//" when merging), and is
 *      idempotent;
 *   H5 each field's kind is the kind of its name, and the hop-by-hop test
 *      by kind (what proxy.c uses) agrees with the test by name.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "gateway/http.h"

#define PIECE_MAX   64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct cr_http_limits limits = {
    .max_head_bytes = 1024,
    .max_headers = 16,
    .max_uri_bytes = 256,
    .max_body_bytes = 4096,
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_http: invariant broken: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

struct run {
    struct cr_http_parser   hp;
    struct cr_buf           tr;         /* transcript */
    size_t                  body_len;   /* of the current message */
    int                     head_only;  /* responses answer HEAD */
    int                     raw_431;    /* stopped by the raw head bound */
    size_t                  mark;       /* transcript after the last head/end */
    int                     errored;    /* the run ended with an error */
    size_t                  err_at;     /* where the error line starts */
};

static void
tr_add(struct run *r, const char *s, size_t len)
{
    if (len != 0) {
        cr_buf_add(&r->tr, s, len);
    }
}

/* cr_http_str(), but "" for an empty head: the arena may still be NULL. */
static const char *
str(const struct cr_http_parser *hp, struct cr_http_span s)
{
    return hp->arena != NULL ? cr_http_str(hp, s) : "";
}

static void
check_span(const struct cr_http_parser *hp, struct cr_http_span s, const char *what)
{
    if ((uint64_t)s.off + s.len > hp->arena_len) {
        fail("H2: %s span %u+%u outside the arena (%u bytes)", what, s.off, s.len,
             hp->arena_len);
    }
}

/* H4 on the path of request target <t>. */
static void
check_normalize(const char *t, size_t tlen)
{
    size_t len, n, n2, i;
    char *out, *again;
    int merge;

    for (len = 0; len < tlen && t[len] != '?'; len++) {
        continue;
    }
    for (merge = 0; merge <= 1; merge++) {
        out = malloc(len + 1);
        if (out == NULL) {
            abort();
        }
        n = cr_http_normalize_path(t, len, out, merge);
        if (n == (size_t)-1) {
            free(out);
            continue;
        }
        if (n == 0 || n > len + 1 || out[0] != '/') {
            fail("H4: normalised %.*s to %zu bytes", (int)len, t, n);
        }
        for (i = 0; i < n; i++) {
            if (out[i] != '/') {
                continue;
            }
            if ((i + 2 == n && out[i + 1] == '.')
                || (i + 2 < n && out[i + 1] == '.' && out[i + 2] == '/')
                || (i + 3 == n && out[i + 1] == '.' && out[i + 2] == '.')
                || (i + 3 < n && out[i + 1] == '.' && out[i + 2] == '.' && out[i + 3] == '/'))
            {
                fail("H4: dot segment left in %.*s (from %.*s)", (int)n, out, (int)len, t);
            }
            if (merge && i + 1 < n && out[i + 1] == '/') {
                fail("H4: \"//\" left in %.*s (from %.*s)", (int)n, out, (int)len, t);
            }
        }
        again = malloc(n + 1);
        if (again == NULL) {
            abort();
        }
        n2 = cr_http_normalize_path(out, n, again, merge);
        if (n2 != n || memcmp(out, again, n) != 0) {
            fail("H4: not idempotent: %.*s -> %.*s -> %.*s", (int)len, t, (int)n, out,
                 n2 == (size_t)-1 ? 5 : (int)n2, n2 == (size_t)-1 ? "error" : again);
        }
        free(again);
        free(out);
    }
}

/* A head is complete: H2, then write it to the transcript. */
static void
record_head(struct run *r)
{
    const struct cr_http_parser *hp = &r->hp;
    unsigned i, nhost = 0;
    char line[96];
    int n;

    if (hp->arena_len > limits.max_head_bytes || hp->nfields > limits.max_headers) {
        fail("H2: head of %u bytes, %u fields past the limits", hp->arena_len, hp->nfields);
    }
    check_span(hp, hp->target, "target");
    check_span(hp, hp->reason, "reason");
    for (i = 0; i < hp->nfields; i++) {
        const struct cr_http_field *f = &hp->fields[i];

        check_span(hp, f->name, "field name");
        check_span(hp, f->value, "field value");
        if (cr_http_name_eq(str(hp, f->name), f->name.len, "host")) {
            nhost++;
        }
        if (f->kind != (unsigned)cr_http_hdr_kind(str(hp, f->name), f->name.len)) {
            fail("H5: field %u has kind %u, its name says %d", i, f->kind,
                 (int)cr_http_hdr_kind(str(hp, f->name), f->name.len));
        }
        if (cr_http_field_hop(hp, f)
            != cr_http_is_hop_by_hop(hp, str(hp, f->name), f->name.len))
        {
            fail("H5: field %u: hop-by-hop by kind and by name differ", i);
        }
    }
    if ((hp->flags & CR_HTTP_F_TE) && !(hp->flags & CR_HTTP_F_CHUNKED)) {
        fail("H2: Transfer-Encoding accepted without chunked");
    }
    if ((hp->flags & CR_HTTP_F_CHUNKED) && (hp->flags & CR_HTTP_F_CLEN)) {
        fail("H2: chunked and Content-Length accepted together");
    }
    if (hp->is_request) {
        if (nhost > 1 || (nhost == 0 && hp->http_major == 1 && hp->http_minor >= 1)) {
            fail("H2: HTTP/%u.%u request with %u Host fields", hp->http_major,
                 hp->http_minor, nhost);
        }
        if ((nhost == 1) != ((hp->flags & CR_HTTP_F_HOST) != 0)) {
            fail("H2: Host flag does not match the fields");
        }
        if (hp->method == HTTP_CONNECT) {
            fail("H2: CONNECT request accepted");
        }
        if (hp->target.len > limits.max_uri_bytes) {
            fail("H2: target of %u bytes", hp->target.len);
        }
        if (hp->target.len != 0 && str(hp, hp->target)[0] == '/') {
            check_normalize(str(hp, hp->target), hp->target.len);
        }
    }
    n = snprintf(line, sizeof(line), "H %d %d %u.%u %x %llu\n", hp->method, hp->status,
                 hp->http_major, hp->http_minor, hp->flags,
                 (unsigned long long)hp->content_length);
    tr_add(r, line, (size_t)n);
    tr_add(r, str(hp, hp->target), hp->target.len);
    tr_add(r, "|", 1);
    tr_add(r, str(hp, hp->reason), hp->reason.len);
    for (i = 0; i < hp->nfields; i++) {
        const struct cr_http_field *f = &hp->fields[i];

        tr_add(r, "\n", 1);
        tr_add(r, str(hp, f->name), f->name.len);
        tr_add(r, ":", 1);
        tr_add(r, str(hp, f->value), f->value.len);
    }
    tr_add(r, "\n", 1);
    r->body_len = 0;
    r->mark = r->tr.len;
}

static int
head_cb(void *arg)
{
    struct run *r = arg;

    record_head(r);
    return r->head_only;
}

static int
body_cb(void *arg, const char *at, size_t len)
{
    struct run *r = arg;

    if (len == 0) {
        fail("H3: empty body piece");
    }
    r->body_len += len;
    tr_add(r, at, len);
    return 0;
}

static void
record_done(struct run *r)
{
    const struct cr_http_parser *hp = &r->hp;
    char line[64];
    int n;

    if ((hp->flags & CR_HTTP_F_CLEN) && !(hp->flags & CR_HTTP_F_NOBODY)
        && !(hp->flags & CR_HTTP_F_CHUNKED) && r->body_len != hp->content_length)
    {
        fail("H3: Content-Length %llu, %zu body bytes",
             (unsigned long long)hp->content_length, r->body_len);
    }
    if (hp->is_request && r->body_len > limits.max_body_bytes) {
        fail("H3: %zu body bytes past max_body_bytes", r->body_len);
    }
    n = snprintf(line, sizeof(line), "\nD %zu\n", r->body_len);
    tr_add(r, line, (size_t)n);
    r->mark = r->tr.len;
}

static void
record_error(struct run *r, size_t off)
{
    char line[64];
    int n;

    r->errored = 1;
    r->err_at = r->tr.len;
    n = snprintf(line, sizeof(line), "\nE %d\n", r->hp.err_status);
    tr_add(r, line, (size_t)n);
    (void)off;
}

/* Is one of <a>/<alen> and <b>/<blen> a prefix of the other? */
static int
prefix_either(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;

    return n == 0 || memcmp(a, b, n) == 0;
}

/* H1, with the allowed differences. */
static int
same_reading(const struct run *w, const struct run *s)
{
    const char *wp = w->tr.p, *sp = s->tr.p;

    if (w->tr.len == s->tr.len && (w->tr.len == 0 || memcmp(wp, sp, w->tr.len) == 0)) {
        return 1;
    }
    if (w->errored && s->errored) {
        /* both refused the same message, after the same heads and bodies */
        return w->mark == s->mark && (w->mark == 0 || memcmp(wp, sp, w->mark) == 0)
               && prefix_either(wp + w->mark, w->err_at - w->mark,
                                sp + s->mark, s->err_at - s->mark);
    }
    if (s->errored && s->raw_431) {
        /* the split run stopped early; up to there it must agree */
        return s->err_at <= w->tr.len && (s->err_at == 0 || memcmp(wp, sp, s->err_at) == 0);
    }
    return 0;
}

/* The next piece size of the split run: 1..PIECE_MAX, from <*seed>. */
static size_t
next_piece(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return 1 + (*seed >> 16) % PIECE_MAX;
}

/*
 * Parse <d>/<n> the way the gateway does. With <split>, bytes become
 * available a piece at a time; otherwise all at once.
 */
static void
run(struct run *r, const char *d, size_t n, int is_req, int split, uint32_t seed)
{
    size_t off = 0, avail = split ? 0 : n;
    enum cr_http_event ev;
    int kick = 0;   /* after a request head: feed even zero bytes (conn.c) */

    cr_http_parser_init(&r->hp, is_req, &limits, is_req ? NULL : head_cb, body_cb, r);
    for (;;) {
        size_t used, before = avail - off;

        if (off == avail && !kick) {
            if (avail == n) {
                break;
            }
            avail += next_piece(&seed);
            if (avail > n) {
                avail = n;
            }
            before = avail - off;
        }
        kick = 0;
        used = cr_http_parser_execute(&r->hp, off < n ? d + off : "", avail - off, &ev);
        if (used > before) {
            fail("H2: %zu of %zu bytes consumed", used, before);
        }
        off += used;
        if (ev == CR_HTTP_EV_NONE) {
            if (used != before) {
                fail("H2: no event, %zu of %zu bytes consumed", used, before);
            }
            continue;
        }
        if (ev == CR_HTTP_EV_HEAD) {
            if (!is_req || !r->hp.head_done) {
                fail("H2: head event out of place");
            }
            record_head(r);
            cr_http_parser_resume(&r->hp);
            kick = 1;
            continue;
        }
        if (ev == CR_HTTP_EV_DONE) {
            record_done(r);
            cr_http_parser_next(&r->hp);
            continue;
        }
        if (r->hp.err_status == 0) {
            fail("H2: error without a status");
        }
        /* the raw bound: bytes of an unfinished head, counted per call */
        r->raw_431 = r->hp.err_status == 431 && !r->hp.head_done
                     && r->hp.arena_len <= limits.max_head_bytes
                     && r->hp.head_bytes > limits.max_head_bytes + 4096;
        record_error(r, off);
        cr_http_parser_free(&r->hp);
        return;
    }
    if (!is_req) {
        /* the peer closed: a close-delimited body ends here */
        ev = cr_http_parser_finish(&r->hp);
        if (ev == CR_HTTP_EV_DONE) {
            record_done(r);
        } else if (ev == CR_HTTP_EV_ERROR) {
            record_error(r, off);
        }
    }
    cr_http_parser_free(&r->hp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run whole, split;
    unsigned mode;
    const char *d;
    size_t n;

    if (size < 1) {
        return 0;
    }
    mode = data[0];
    d = (const char *)data + 1;
    n = size - 1;

    whole.tr.len = 0;
    split.tr.len = 0;
    whole.raw_431 = split.raw_431 = 0;
    whole.mark = split.mark = 0;
    whole.err_at = split.err_at = 0;
    whole.errored = split.errored = 0;
    whole.head_only = split.head_only = (mode & 2) != 0;
    run(&whole, d, n, !(mode & 1), 0, 0);
    run(&split, d, n, !(mode & 1), 1, mode >> 2);
    if (whole.tr.oom || split.tr.oom) {
        fail("out of memory writing transcripts");
    }
    if (same_reading(&whole, &split)) {
        return 0;
    }
    fprintf(stderr, "--- whole (%zu bytes)\n%.*s\n--- split (%zu bytes)\n%.*s\n",
            whole.tr.len, (int)whole.tr.len, whole.tr.p ? whole.tr.p : "",
            split.tr.len, (int)split.tr.len, split.tr.p ? split.tr.p : "");
    fail("H1: the split run read the stream differently");
}
