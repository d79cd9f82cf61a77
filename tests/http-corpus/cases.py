"""
cases.py - corral's hostile-input corpus: raw requests, the status corral
must answer, and exactly what the upstream server must receive.

Read by tests/integration/corpus.py (run by 30-http-corpus.sh), which sends
each case's bytes on a fresh client connection to a corral whose config is
in 30-http-corpus.sh: limits max_header_bytes 2k, max_headers 20,
max_uri_bytes 512, max_body_bytes 1k; routes, in order:

    /admin...           respond 403          (route "deny")
    host deny.example   respond 403          (route "denyhost")
    /local              respond 200 "local"
    /hdr/...            upstream, request_headers set X-Set: corral, remove X-Drop
    /strip/...          upstream, strip_prefix /strip
    OPTIONS *           upstream
    /...                upstream             (catch-all)

and a recording upstream that answers every request it can frame with
"200 OK, Content-Length: 2, ok".

Every case lists one or more acceptable outcomes. An outcome is the list of
statuses the client reads on its connection (several for pipelined
requests; none when corral closes without answering) and the list of
requests the upstream receives, each as (exact head, decoded body, chunked
or not). A request body that corral re-chunks is compared decoded: chunk
boundaries depend on corral's reads. Bytes reaching the upstream that do
not form complete requests fail every outcome, with one exception, the
"cut" outcome of a request whose chunked body turns out bad: corral streams
bodies (README), so it may already have sent the head and some chunks when
it finds the error. A cut upstream request is the exact head, then only
complete chunks, never the last chunk, then the connection closed: an
incomplete message the upstream cannot take for a request (RFC 9112 §8).

Cases marked instance="nomerge" go to a second corral, identical but for
merge_slashes: false.

The expectations are written from RFC 9110 / 9112 / 3986 and corral's
forwarding rules (README, "Proxying"), never recorded from corral. Where
the RFCs let a recipient choose (bare CR, a CTL in a field value, lenient
request-line whitespace, ...), each allowed choice is an outcome; where
the README commits corral to one of them (bare LF, obs-fold, duplicate
Content-Length, Content-Length with Transfer-Encoding: 400), only that one
is. Each case says why in "why" when the choice is not obvious.

How corral re-frames a forwarded request (forwarded() below models it):
  - request line "METHOD SP origin-form SP HTTP/1.1", the path normalised
    (percent-decoding of unreserved characters, other escapes upper-cased,
    dot segments removed, "//" merged), the query as received;
  - the client's fields in order, name and value as received (surrounding
    whitespace of the value dropped), less the hop-by-hop fields
    (Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade,
    Proxy-Connection, and every field named in Connection except Host),
    Content-Length, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host,
    Via, the route's removed fields and the fields it sets, and Host for
    absolute-form;
  - Host: <authority> for absolute-form; Host: <upstream address> for an
    HTTP/1.0 request without Host (an HTTP/1.1 request needs one);
  - the route's set fields;
  - X-Forwarded-For (the client's non-empty values, then 127.0.0.1),
    X-Forwarded-Proto: http, X-Forwarded-Host (the Host used, if any),
    Via (the client's values, then "1.1 corral" or "1.0 corral");
  - X-Request-Id: <32 hex digits> when the client's first X-Request-Id is
    missing or empty (the runner writes REQUEST_ID in place of the digits);
  - Transfer-Encoding: chunked for a chunked body, Content-Length: N if the
    client sent a length (also 0), nothing otherwise;
  - for an HTTP/1.1 GET without framing fields whose Connection lists
    "upgrade" and that has an Upgrade field: Upgrade: <its value>,
    Connection: upgrade.
"""

CRLF = b"\r\n"
HOST = (b"Host", b"h.example")

# Replaced by the runner with the upstream server's "127.0.0.1:PORT".
UPSTREAM = b"<upstream>"

# What the runner writes in place of a request id corral generated.
REQUEST_ID = b"<request-id>"

HOP_BY_HOP = {b"connection", b"keep-alive", b"te", b"trailer",
              b"transfer-encoding", b"upgrade", b"proxy-connection"}
REWRITTEN = {b"content-length", b"x-forwarded-for", b"x-forwarded-proto",
             b"x-forwarded-host", b"via"}

# request header rules of the routes that have some: (set, remove)
ROUTE_RULES = {
    "hdr": ([(b"X-Set", b"corral")], [b"x-drop"]),
}

CASES = []


def _b(x):
    return x if isinstance(x, bytes) else x.encode("latin-1")


class Req:
    """A request as the upstream must receive it."""

    def __init__(self, head, body=b"", chunked=False):
        self.head = head
        self.body = body
        self.chunked = chunked

    def __eq__(self, other):
        return (self.head, self.body, self.chunked) == (other.head, other.body, other.chunked)

    def __repr__(self):
        return "Req(%r, %r%s)" % (self.head, self.body, ", chunked" if self.chunked else "")


class Case:
    def __init__(self, cat, name, raw, outcomes, head, why, instance):
        self.cat = cat
        self.name = name
        self.raw = raw
        self.outcomes = outcomes    # [((status, ...), (Req, ...), cut Req or None), ...]
        self.head = head            # responses carry no body (HEAD)
        self.why = why
        self.instance = instance    # "main" or "nomerge"


def _statuses(status):
    if status is None:
        return ()
    if isinstance(status, tuple):
        return status
    return (status,)


def out(status, *fwd):
    """One acceptable outcome: status (int, tuple of ints, or None for a
    close without any response) and the requests the upstream receives."""
    return (_statuses(status), tuple(fwd), None)


def cut(status, req):
    """The outcome where the upstream receives <req>'s head, maybe some
    complete chunks, never the last one, and then a close."""
    return (_statuses(status), (), req)


def add(cat, name, raw, *outcomes, head=False, why="", instance="main"):
    assert outcomes, name
    assert all(c.name != name for c in CASES), "duplicate case name " + name
    CASES.append(Case(cat, name, _b(raw), list(outcomes), head, why, instance))


def raw(method, target, fields=(HOST,), body=b"", version=b"HTTP/1.1"):
    """Client bytes: request line, "Name: value" lines, CRLFs, body."""
    r = _b(method) + b" " + _b(target) + b" " + _b(version) + CRLF
    for n, v in fields:
        r += _b(n) + b": " + _b(v) + CRLF
    return r + CRLF + _b(body)


def chunks(*pieces, last=b"0\r\n\r\n"):
    """A chunked body: one chunk per piece, then <last>."""
    r = b""
    for p in pieces:
        p = _b(p)
        r += b"%x\r\n" % len(p) + p + CRLF
    return r + _b(last)


def forwarded(method, target, fields=(HOST,), body=b"", framing=None, version=b"1.1",
              authority=None, route=None):
    """The request corral must send upstream (see the module docstring).
    <fields> are the client's fields as parsed; <framing> is "chunked",
    "length" or "none" (default: from the client's fields)."""
    fields = [(_b(n), _b(v).strip(b" \t")) for n, v in fields]
    names = [n.lower() for n, _ in fields]
    if framing is None:
        if b"transfer-encoding" in names:
            framing = "chunked"
        elif b"content-length" in names:
            framing = "length"
        else:
            framing = "none"
    sets, removes = ROUTE_RULES.get(route, ([], []))
    dropped = set(removes) | {n.lower() for n, _ in sets}
    named = set()
    for n, v in fields:
        if n.lower() == b"connection":
            for tok in v.split(b","):
                tok = tok.strip(b" \t").lower()
                if tok:
                    named.add(tok)
    named.discard(b"host")

    lines = [_b(method) + b" " + _b(target) + b" HTTP/1.1"]
    for n, v in fields:
        low = n.lower()
        if low in HOP_BY_HOP or low in named or low in REWRITTEN or low in dropped:
            continue
        if authority is not None and low == b"host":
            continue
        lines.append(n + b": " + v)
    hosts = [v for n, v in fields if n.lower() == b"host"]
    if authority is not None:
        lines.append(b"Host: " + _b(authority))
    elif not hosts:
        lines.append(b"Host: " + UPSTREAM)
    for n, v in sets:
        lines.append(n + b": " + v)
    xff = [v for n, v in fields if n.lower() == b"x-forwarded-for" and v]
    lines.append(b"X-Forwarded-For: " + b", ".join(xff + [b"127.0.0.1"]))
    lines.append(b"X-Forwarded-Proto: http")
    xfh = _b(authority) if authority is not None else (hosts[0] if hosts else None)
    if xfh is not None:
        lines.append(b"X-Forwarded-Host: " + xfh)
    via = [v for n, v in fields if n.lower() == b"via" and v]
    lines.append(b"Via: " + b", ".join(via + [_b(version) + b" corral"]))
    if not next((v for n, v in fields if n.lower() == b"x-request-id"), b""):
        lines.append(b"X-Request-Id: " + REQUEST_ID)
    if framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
    elif framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
    # an HTTP/1.1 GET without framing, Upgrade listed in Connection, may become a
    # tunnel: corral asks the upstream for the upgrade itself
    ups = [v for n, v in fields if n.lower() == b"upgrade"]
    if (_b(method) == b"GET" and _b(version) == b"1.1" and ups and b"upgrade" in named
            and framing == "none"):
        lines.append(b"Upgrade: " + ups[0])
        lines.append(b"Connection: upgrade")
    return Req(CRLF.join(lines) + CRLF + CRLF, _b(body), framing == "chunked")


def ok(cat, name, method, target, fields=(HOST,), body=b"", sent=None, fwd_target=None,
       status=200, alt=(), head=False, why="", **kw):
    """A request sent as raw(method, target, fields, sent or body) that
    reaches the upstream re-framed, at <fwd_target> (default: target)."""
    add(cat, name, raw(method, target, fields, body if sent is None else sent),
        out(status, forwarded(method, fwd_target or target, fields, body, **kw)),
        *alt, head=head, why=why)


def bad(cat, name, data, status, *alt, why="", instance="main"):
    """A request refused with <status> (an int, or a tuple of acceptable
    ones); the upstream receives nothing."""
    statuses = status if isinstance(status, tuple) else (status,)
    add(cat, name, data, *[out(s) for s in statuses], *alt, why=why, instance=instance)


def bad_body(cat, name, data, status, req, why=""):
    """A request whose chunked body is refused with <status> (an int or a
    tuple): the upstream receives nothing, or <req> cut (see cut())."""
    statuses = status if isinstance(status, tuple) else (status,)
    add(cat, name, data, *[out(s) for s in statuses], *[cut(s, req) for s in statuses], why=why)


def post(fields_after_host, body_raw):
    return raw("POST", "/c", [HOST] + list(fields_after_host), body_raw)


TE_CHUNKED = (b"Transfer-Encoding", b"chunked")

# ---------------------------------------------------------------------------
# Content-Length together with Transfer-Encoding (RFC 9112 §6.3 item 3;
# README: refused with 400, nothing forwarded)

CAT = "cl+te"
bad(CAT, "clte-cl-first", post([("Content-Length", "5"), TE_CHUNKED], b"0\r\n\r\n"), 400)
bad(CAT, "clte-te-first", post([TE_CHUNKED, ("Content-Length", "5")], b"0\r\n\r\n"), 400)
bad(CAT, "clte-cl-zero", post([("Content-Length", "0"), TE_CHUNKED], b"0\r\n\r\n"), 400)
bad(CAT, "clte-te-capitalised", post([("Content-Length", "5"), ("Transfer-Encoding", "Chunked")],
                                     b"0\r\n\r\n"), 400)
bad(CAT, "clte-lowercase-names", post([("content-length", "5"), ("transfer-encoding", "chunked")],
                                      b"0\r\n\r\n"), 400)
bad(CAT, "clte-smuggle-get",
    post([("Content-Length", "48"), TE_CHUNKED],
         b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h.example\r\n\r\n"), 400)
bad(CAT, "clte-cl-smaller-than-chunks",
    post([("Content-Length", "4"), TE_CHUNKED],
         b"5c\r\nGPOST /smuggled HTTP/1.1\r\nHost: h.example\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n"),
    400)
bad(CAT, "clte-http10", raw("POST", "/c", [HOST, ("Content-Length", "5"), TE_CHUNKED], b"0\r\n\r\n",
                            version="HTTP/1.0"), 400)
bad(CAT, "clte-get", raw("GET", "/c", [HOST, ("Content-Length", "5"), TE_CHUNKED], b"0\r\n\r\n"), 400)
bad(CAT, "clte-te-tab", post([("Content-Length", "5"), ("Transfer-Encoding", "\tchunked")],
                             b"0\r\n\r\n"), 400)
bad(CAT, "clte-two-te-lines", post([TE_CHUNKED, ("Content-Length", "5"), TE_CHUNKED], b"0\r\n\r\n"),
    400)

# ---------------------------------------------------------------------------
# Content-Length values (RFC 9110 §8.6: 1*DIGIT; RFC 9112 §6.3 item 5:
# an invalid value is unrecoverable, 400)

CAT = "content-length"
bad(CAT, "cl-duplicate-same", post([("Content-Length", "3"), ("Content-Length", "3")], b"abc"), 400,
    why="RFC 9110 §8.6 lets a recipient merge identical values; README commits to 400")
bad(CAT, "cl-list-same", post([("Content-Length", "3, 3")], b"abc"), 400,
    why="as cl-duplicate-same, in one field line")
bad(CAT, "cl-duplicate-differ", post([("Content-Length", "3"), ("Content-Length", "4")], b"abcd"), 400)
bad(CAT, "cl-list-differ", post([("Content-Length", "3, 4")], b"abcd"), 400)
bad(CAT, "cl-second-empty", post([("Content-Length", "3"), ("Content-Length", "")], b"abc"), 400)
bad(CAT, "cl-negative", post([("Content-Length", "-1")], b"a"), 400)
bad(CAT, "cl-plus-sign", post([("Content-Length", "+3")], b"abc"), 400)
bad(CAT, "cl-hex", post([("Content-Length", "0x3")], b"abc"), 400)
bad(CAT, "cl-decimal-point", post([("Content-Length", "3.0")], b"abc"), 400)
bad(CAT, "cl-exponent", post([("Content-Length", "1e1")], b"abcdefghij"), 400)
bad(CAT, "cl-empty", post([("Content-Length", "")], b""), 400)
bad(CAT, "cl-inner-space", post([("Content-Length", "1 0")], b"abcdefghij"), 400)
bad(CAT, "cl-letters", post([("Content-Length", "abc")], b"abc"), 400)
bad(CAT, "cl-nul", post([("Content-Length", b"3\x00")], b"abc"), 400)
bad(CAT, "cl-unicode-digit", post([("Content-Length", b"\xd9\xa3")], b"abc"), 400)
bad(CAT, "cl-overflow-long", post([("Content-Length", "9" * 30)], b"abc"), (400, 413),
    why="RFC 9112 §6.3 (unparsable length) and RFC 9110 §15.5.14 (too large) both fit")
bad(CAT, "cl-overflow-2e64", post([("Content-Length", "18446744073709551616")], b"abc"), (400, 413),
    why="as cl-overflow-long")
bad(CAT, "cl-uint64-max", post([("Content-Length", "18446744073709551615")], b""), 413,
    why="a valid numeral over max_body_bytes")
ok(CAT, "cl-leading-zeros", "POST", "/c", [HOST, ("Content-Length", "007")], b"abcdefg",
   why="leading zeros are digits; the re-framed length is 7")
ok(CAT, "cl-ows", "POST", "/c", [HOST, ("Content-Length", "  3  ")], b"abc",
   why="OWS around a field value is not part of it (RFC 9112 §5)")
ok(CAT, "cl-zero", "POST", "/c", [HOST, ("Content-Length", "0")], b"")
ok(CAT, "cl-on-get", "GET", "/c", [HOST, ("Content-Length", "3")], b"abc")

# ---------------------------------------------------------------------------
# Transfer codings (RFC 9112 §6.1: 501 for a coding not understood; §6.3
# item 4: chunked not final in a request is 400)

CAT = "te-coding"
for coding in ("gzip", "deflate", "compress", "identity", "x-custom"):
    bad(CAT, "te-%s-alone" % coding, post([("Transfer-Encoding", coding)], b"abc"), (400, 501),
        why="§6.1 says 501 for an unknown coding, §6.3 item 4 says 400 when chunked is not "
            "final; both apply")
bad(CAT, "te-gzip-chunked", post([("Transfer-Encoding", "gzip, chunked")], chunks("abc")), 501)
bad(CAT, "te-deflate-chunked", post([("Transfer-Encoding", "deflate, chunked")], chunks("abc")), 501)
bad(CAT, "te-two-lines-gzip-then-chunked",
    post([("Transfer-Encoding", "gzip"), TE_CHUNKED], chunks("abc")), 501)
bad(CAT, "te-chunked-identity", post([("Transfer-Encoding", "chunked, identity")], chunks("abc")), 400)
bad(CAT, "te-chunked-gzip", post([("Transfer-Encoding", "chunked, gzip")], chunks("abc")), 400)
bad(CAT, "te-two-lines-chunked-then-gzip",
    post([TE_CHUNKED, ("Transfer-Encoding", "gzip")], chunks("abc")), 400,
    why="two field lines are one list (RFC 9110 §5.3): chunked, gzip")
bad(CAT, "te-two-lines-chunked-then-identity",
    post([TE_CHUNKED, ("Transfer-Encoding", "identity")], chunks("abc")), 400)
bad(CAT, "te-chunked-twice", post([("Transfer-Encoding", "chunked, chunked")], chunks("abc")),
    (400, 501), why="chunked applied twice (a sender MUST NOT, §6.1); the recipient's answer "
                    "is not specified")
bad(CAT, "te-two-lines-chunked-twice", post([TE_CHUNKED, TE_CHUNKED], chunks("abc")), (400, 501),
    why="as te-chunked-twice")
bad(CAT, "te-empty", post([("Transfer-Encoding", "")], b"abc"), 400,
    why="Transfer-Encoding present, chunked not final (§6.3 item 4)")
bad(CAT, "te-http10", raw("POST", "/c", [HOST, TE_CHUNKED], chunks("abc"), version="HTTP/1.0"), 400,
    why="RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding MUST be treated as having "
        "faulty framing")
ok(CAT, "te-chunked-get-empty", "GET", "/c", [HOST, TE_CHUNKED], b"", sent=b"0\r\n\r\n")

# ---------------------------------------------------------------------------
# Obfuscated Transfer-Encoding (codings are case-insensitive, RFC 9112 §7;
# OWS around a value is not part of it; a list ignores empty elements,
# RFC 9110 §5.6.1)

CAT = "te-obfuscation"
# The gateway's own contract (obfuscated Transfer-Encoding: spaces, tabs,
# ... are refused) allows refusing whitespace games in Transfer-Encoding outright,
# which the RFC does not require; a refusal (400, nothing forwarded) is
# accepted as well as the RFC's reading for those.
OBFUSCATION_REFUSED = (out(400),)
for name, value in [("capitalised", "Chunked"), ("upper", "CHUNKED"), ("mixed", "cHuNkEd"),
                    ("trailing-space", "chunked "), ("leading-tab", "\tchunked"),
                    ("trailing-tab", "chunked\t"), ("padded", "   chunked   ")]:
    ok(CAT, "te-" + name, "POST", "/c", [HOST, ("Transfer-Encoding", value)], b"hello",
       sent=chunks("hello"),
       alt=OBFUSCATION_REFUSED if "tab" in name or "padded" in name else ())
ok(CAT, "te-name-lowercase", "POST", "/c", [HOST, ("transfer-encoding", "chunked")], b"hello",
   sent=chunks("hello"))
ok(CAT, "te-name-uppercase", "POST", "/c", [HOST, ("TRANSFER-ENCODING", "chunked")], b"hello",
   sent=chunks("hello"))
ok(CAT, "te-leading-empty-element", "POST", "/c", [HOST, ("Transfer-Encoding", ", chunked")],
   b"hello", sent=chunks("hello"), alt=(out(400), out(501)),
   why="RFC 9110 §5.6.1: a recipient MUST parse and ignore empty list elements; "
       "refusing list games in Transfer-Encoding (400/501, nothing forwarded) is "
       "the stricter reading the gateway's contract allows")
ok(CAT, "te-trailing-empty-element", "POST", "/c", [HOST, ("Transfer-Encoding", "chunked,")],
   b"hello", sent=chunks("hello"), alt=(out(400),), why="as te-leading-empty-element")
bad(CAT, "te-space-before-colon", b"POST /c HTTP/1.1\r\nHost: h.example\r\n"
    b"Transfer-Encoding : chunked\r\n\r\n" + chunks("hello"), 400)
bad(CAT, "te-tab-before-colon", b"POST /c HTTP/1.1\r\nHost: h.example\r\n"
    b"Transfer-Encoding\t: chunked\r\n\r\n" + chunks("hello"), 400)
bad(CAT, "te-folded-value", b"POST /c HTTP/1.1\r\nHost: h.example\r\n"
    b"Transfer-Encoding:\r\n chunked\r\n\r\n" + chunks("hello"), 400,
    why="obs-fold; README commits to 400")
bad(CAT, "te-line-continues-host", b"POST /c HTTP/1.1\r\nHost: h.example\r\n"
    b" Transfer-Encoding: chunked\r\n\r\n" + chunks("hello"), 400,
    why="an obs-fold of Host; unfolded it is an invalid Host value either way")
bad(CAT, "te-quoted", post([("Transfer-Encoding", '"chunked"')], chunks("hello")), (400, 501))
bad(CAT, "te-prefixed", post([("Transfer-Encoding", "xchunked")], chunks("hello")), (400, 501))
bad(CAT, "te-suffixed", post([("Transfer-Encoding", "chunkedx")], chunks("hello")), (400, 501))
bad(CAT, "te-split-word", post([("Transfer-Encoding", "ch unked")], chunks("hello")), (400, 501))
bad(CAT, "te-parameter", post([("Transfer-Encoding", "chunked;q=1")], chunks("hello")), (400, 501),
    why="chunked defines no parameter: not the coding corral implements")
bad(CAT, "te-vertical-tab", post([("Transfer-Encoding", b"chunked\x0b")], chunks("hello")),
    (400, 501), why="a CTL in a value is invalid (RFC 9110 §5.5); kept, it names no known coding")

# ---------------------------------------------------------------------------
# Chunked bodies (RFC 9112 §7.1)

CAT = "chunked"
TE = [HOST, TE_CHUNKED]


CHUNKED_POST_EARLY = forwarded("POST", "/c", TE)


def chunked_ok(name, sent, body, why="", alt=()):
    ok(CAT, name, "POST", "/c", TE, body, sent=sent, why=why, alt=alt)


CHUNKED_POST = forwarded("POST", "/c", TE)


def chunked_bad(name, sent, status=400, why=""):
    bad_body(CAT, name, post([TE_CHUNKED], sent), status, CHUNKED_POST, why=why)


chunked_ok("chunk-one", b"5\r\nhello\r\n0\r\n\r\n", b"hello")
chunked_ok("chunk-several", b"3\r\nabc\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n", b"abcdef")
chunked_ok("chunk-hex-upper", b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789")
chunked_ok("chunk-hex-lower", b"b\r\n0123456789a\r\n0\r\n\r\n", b"0123456789a")
chunked_ok("chunk-leading-zeros", b"0005\r\nhello\r\n0000\r\n\r\n", b"hello")
chunked_ok("chunk-many-leading-zeros", b"0" * 40 + b"5\r\nhello\r\n0\r\n\r\n", b"hello",
           why="any number of hex digits; the value is what counts")
chunked_ok("chunk-ext", b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello")
chunked_ok("chunk-ext-no-value", b"5;flag\r\nhello\r\n0\r\n\r\n", b"hello")
chunked_ok("chunk-ext-quoted", b'5;n="v; x"\r\nhello\r\n0\r\n\r\n', b"hello")
# llhttp 8.1 refuses these valid extensions; refusing (400, nothing of the
# body forwarded or a cut request) is safe, if not what the RFC wants
EXT_REFUSED = (out(400), cut(400, CHUNKED_POST_EARLY))
chunked_ok("chunk-ext-several", b"5;a=1;b=2\r\nhello\r\n0\r\n\r\n", b"hello",
           alt=EXT_REFUSED, why="valid per RFC 9112 §7.1.1; llhttp 8.1 refuses it")
chunked_ok("chunk-ext-bws", b"5 ;n=v\r\nhello\r\n0\r\n\r\n", b"hello", alt=EXT_REFUSED,
           why="chunk-ext = *( BWS \";\" ... ); BWS MUST be parsed (RFC 9110 §5.6.3); "
               "llhttp 8.1 refuses it")
chunked_ok("chunk-ext-last", b"5\r\nhello\r\n0;x=y\r\n\r\n", b"hello")
chunked_ok("chunk-trailer", b"5\r\nhello\r\n0\r\nX-Trailer: v\r\n\r\n", b"hello",
           why="the trailer section is not forwarded: corral ends its chunks with 0 CRLF CRLF")
chunked_ok("chunk-empty-body", b"0\r\n\r\n", b"")
chunked_ok("chunk-binary", b"4\r\n\x00\r\n\xff\r\n0\r\n\r\n", b"\x00\r\n\xff")
chunked_bad("chunk-size-not-hex", b"zz\r\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-size-negative", b"-5\r\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-size-plus", b"+5\r\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-size-0x", b"0x5\r\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-size-underscore", b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n")
chunked_bad("chunk-size-leading-space", b" 5\r\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-size-trailing-space", b"5 \r\nhello\r\n0\r\n\r\n",
            why="BWS is allowed only before a \";\" (chunk-ext)")
chunked_bad("chunk-size-empty", b"\r\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-size-overflow", b"10000000000000000\r\nhello\r\n0\r\n\r\n", (400, 413),
            why="2^64: unparsable (400) or over max_body_bytes (413)")
chunked_bad("chunk-size-over-limit-at-once", b"ffffffffffffffff\r\nabc", (400, 413),
            why="the chunk size alone exceeds max_body_bytes: nothing to wait for")
chunked_bad("chunk-data-too-long", b"3\r\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-data-too-short", b"5\r\nhi\r\n0\r\n\r\n")
chunked_bad("chunk-data-no-crlf", b"5\r\nhelloX0\r\n\r\n")
chunked_bad("chunk-data-lf-only", b"5\r\nhello\n0\r\n\r\n", why="bare LF; README: 400")
chunked_bad("chunk-size-lf-only", b"5\nhello\r\n0\r\n\r\n", why="bare LF; README: 400")
chunked_bad("chunk-all-lf", b"5\nhello\n0\n\n", why="bare LF; README: 400")
chunked_bad("chunk-size-cr-cr-lf", b"5\r\r\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-ext-ctl", b"5;\x01\r\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-ext-bare-cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            why="bare CR: invalid, or SP, which leaves an invalid chunk-ext")
chunked_bad("chunk-ext-lf-only", b"5;a=b\nhello\r\n0\r\n\r\n")
chunked_bad("chunk-size-cr-then-byte", b"5\rXhello\r\n0\r\n\r\n",
            why="bare CR: invalid, or SP, which leaves \"5 Xhello\" as the size line")
chunked_bad("chunk-ext-cr-then-byte", b"5;a=b\rXhello\r\n0\r\n\r\n", why="as chunk-size-cr-then-byte")
chunked_bad("chunk-data-cr-then-byte", b"5\r\nhello\rX0\r\n\r\n", why="data must end with CRLF")
chunked_bad("chunk-last-cr-then-byte", b"5\r\nhello\r\n0\rX\r\n", why="as chunk-size-cr-then-byte")
chunked_bad("chunk-trailer-no-colon", b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n")
chunked_bad("chunk-trailer-space-before-colon", b"5\r\nhello\r\n0\r\nX-T : v\r\n\r\n")

# ---------------------------------------------------------------------------
# Line endings: bare LF (README: 400) and bare CR (RFC 9112 §2.2: invalid,
# or replaced with SP)

CAT = "line-endings"
bad(CAT, "lf-everywhere", b"GET /n HTTP/1.1\nHost: h.example\n\n", 400,
    why="RFC 9112 §2.2 allows a recipient to accept bare LF; README commits to 400")
bad(CAT, "lf-request-line", b"GET /n HTTP/1.1\nHost: h.example\r\n\r\n", 400)
bad(CAT, "lf-one-field", b"GET /n HTTP/1.1\r\nHost: h.example\nX-A: b\r\n\r\n", 400)
bad(CAT, "lf-end-of-head", b"GET /n HTTP/1.1\r\nHost: h.example\r\n\n", 400)
bad(CAT, "lf-before-request-line", b"\nGET /n HTTP/1.1\r\nHost: h.example\r\n\r\n", 400)
bad(CAT, "lf-in-value", b"GET /n HTTP/1.1\r\nHost: h.example\r\nX-A: a\nb: c\r\n\r\n", 400)
add(CAT, "cr-in-value", b"GET /n HTTP/1.1\r\nHost: h.example\r\nX-A: a\rb\r\n\r\n",
    out(400), out(200, forwarded("GET", "/n", [HOST, ("X-A", "a b")])))
add(CAT, "cr-end-of-value", b"GET /n HTTP/1.1\r\nHost: h.example\r\nX-A: ab\r\r\n\r\n",
    out(400), out(200, forwarded("GET", "/n", [HOST, ("X-A", "ab")])),
    why="as SP it is trailing whitespace")
bad(CAT, "cr-ends-field-line", b"GET /n HTTP/1.1\r\nHost: h.example\rX-A: b\r\n\r\n", 400,
    why="as SP the Host value becomes \"h.example X-A: b\": invalid either way")
bad(CAT, "cr-then-byte-ends-request-line", b"GET /n HTTP/1.1\rXHost: h.example\r\n\r\n", 400,
    why="as SP the version is \"HTTP/1.1 XHost:\": invalid either way")
bad(CAT, "cr-in-name", b"GET /n HTTP/1.1\r\nHost: h.example\r\nX\rA: b\r\n\r\n", 400)
bad(CAT, "cr-in-target", b"GET /a\rb HTTP/1.1\r\nHost: h.example\r\n\r\n", (400, 301),
    why="as SP the request line has four words: invalid (RFC 9112 §3: 400 or 301)")
add(CAT, "cr-before-request-line", b"\rGET /n HTTP/1.1\r\nHost: h.example\r\n\r\n",
    out(400), out(200, forwarded("GET", "/n")),
    why="as SP, leading whitespace a recipient MAY ignore (RFC 9112 §3)")
add(CAT, "crlf-before-request-line", b"\r\n" + raw("GET", "/n"), out(200, forwarded("GET", "/n")),
    why="RFC 9112 §2.2: a server SHOULD ignore at least one empty line first")
add(CAT, "two-crlf-before-request-line", b"\r\n\r\nGET /n HTTP/1.1\r\nHost: h.example\r\n\r\n",
    out(200, forwarded("GET", "/n")), out(400), why="at least one is ignored; more MAY be")
add(CAT, "nul-in-value", b"GET /n HTTP/1.1\r\nHost: h.example\r\nX-A: a\x00b\r\n\r\n",
    out(400), out(200, forwarded("GET", "/n", [HOST, ("X-A", "a b")])),
    why="RFC 9110 §5.5: reject, or replace NUL with SP")

# ---------------------------------------------------------------------------
# obs-fold (RFC 9112 §5.2: 400, or unfold; README commits to 400)

CAT = "obs-fold"
bad(CAT, "fold-space", b"GET /n HTTP/1.1\r\nHost: h.example\r\nX-A: a\r\n b\r\n\r\n", 400)
bad(CAT, "fold-tab", b"GET /n HTTP/1.1\r\nHost: h.example\r\nX-A: a\r\n\tb\r\n\r\n", 400)
bad(CAT, "fold-empty-first", b"GET /n HTTP/1.1\r\nHost: h.example\r\nX-A:\r\n b\r\n\r\n", 400)
bad(CAT, "fold-host", b"GET /n HTTP/1.1\r\nHost: h\r\n .example\r\n\r\n", 400)
bad(CAT, "fold-content-length", b"POST /c HTTP/1.1\r\nHost: h.example\r\nContent-Length:\r\n 3\r\n"
    b"\r\nabc", 400)
bad(CAT, "fold-twice", b"GET /n HTTP/1.1\r\nHost: h.example\r\nX-A: a\r\n b\r\n c\r\n\r\n", 400)
add(CAT, "space-line-after-request-line",
    b"GET /n HTTP/1.1\r\n X-A: b\r\nHost: h.example\r\n\r\n",
    out(400), out(200, forwarded("GET", "/n")),
    why="RFC 9112 §2.2: reject, or consume the whitespace-preceded line unprocessed")
add(CAT, "tab-line-after-request-line",
    b"GET /n HTTP/1.1\r\n\tX-A: b\r\nHost: h.example\r\n\r\n",
    out(400), out(200, forwarded("GET", "/n")), why="as space-line-after-request-line")

# ---------------------------------------------------------------------------
# Field syntax (RFC 9110 §5.1 field-name = token, §5.5 values; RFC 9112
# §5.1 no whitespace before the colon, MUST 400)

CAT = "field-syntax"
for name, line in [("host-space-before-colon", b"Host : h.example"),
                   ("space-before-colon", b"X-A : b"),
                   ("tab-before-colon", b"X-A\t: b"),
                   ("space-in-name", b"X A: b"),
                   ("no-colon", b"X-A b"),
                   ("empty-name", b": b"),
                   ("quote-in-name", b'X-"A": b'),
                   ("paren-in-name", b"X-A(: b"),
                   ("at-in-name", b"X-A@: b"),
                   ("slash-in-name", b"X/A: b"),
                   ("utf8-in-name", b"X-\xc3\xa4: b"),
                   ("ctl-in-name", b"X-A\x01: b"),
                   ("del-in-name", b"X-A\x7f: b"),
                   ("nul-in-name", b"X\x00A: b")]:
    hostline = b"" if name.startswith("host-") else b"Host: h.example\r\n"
    bad(CAT, name, b"GET /n HTTP/1.1\r\n" + hostline + line + b"\r\n\r\n", 400)
ok(CAT, "underscore-in-name", "GET", "/n", [HOST, ("X_A", "b")])
ok(CAT, "all-tchars-in-name", "GET", "/n", [HOST, ("X-!#$%&'*+-.^_`|~09AZaz", "v")])
ok(CAT, "name-case-kept", "GET", "/n", [HOST, ("x-MiXeD-case", "V")])
ok(CAT, "value-tab-inside", "GET", "/n", [HOST, ("X-A", "a\tb")])
ok(CAT, "value-obs-text", "GET", "/n", [HOST, ("X-A", b"caf\xe9 \x80\xff")],
   why="obs-text is a field-vchar (RFC 9110 §5.5)")
ok(CAT, "value-ows-trimmed", "GET", "/n", [HOST, ("X-A", "   b c  \t")])
ok(CAT, "value-empty", "GET", "/n", [HOST, ("X-A", "")])
ok(CAT, "value-colons", "GET", "/n", [HOST, ("X-A", "b:c: d")])
ok(CAT, "value-repeated-field", "GET", "/n", [HOST, ("X-A", "1"), ("x-a", "2"), ("X-A", "3")])
for name, ch in [("soh", b"\x01"), ("del", b"\x7f"), ("vt", b"\x0b"), ("esc", b"\x1b")]:
    add(CAT, "value-ctl-" + name,
        b"GET /n HTTP/1.1\r\nHost: h.example\r\nX-A: a" + ch + b"b\r\n\r\n",
        out(400), out(200, forwarded("GET", "/n", [HOST, ("X-A", b"a" + ch + b"b")])),
        why="RFC 9110 §5.5: invalid, but a recipient MAY retain such characters")

# ---------------------------------------------------------------------------
# Host (RFC 9112 §3.2: 400 for HTTP/1.1 without Host, for more than one
# Host, for an invalid Host value)

CAT = "host"
bad(CAT, "host-missing", b"GET /n HTTP/1.1\r\nX-A: b\r\n\r\n", 400)
bad(CAT, "host-duplicate-same", raw("GET", "/n", [HOST, HOST]), 400)
bad(CAT, "host-duplicate-differ", raw("GET", "/n", [HOST, ("Host", "other.example")]), 400)
bad(CAT, "host-duplicate-case", raw("GET", "/n", [HOST, ("host", "h.example")]), 400)
bad(CAT, "host-duplicate-http10", raw("GET", "/n", [HOST, HOST], version="HTTP/1.0"), 400,
    why="\"any request message that contains more than one Host\"")
bad(CAT, "host-list", raw("GET", "/n", [("Host", "a.example, b.example")]), 400)
bad(CAT, "host-space", raw("GET", "/n", [("Host", "a b.example")]), 400)
bad(CAT, "host-slash", raw("GET", "/n", [("Host", "a.example/b")]), 400)
bad(CAT, "host-userinfo", raw("GET", "/n", [("Host", "user@a.example")]), 400)
bad(CAT, "host-bad-port", raw("GET", "/n", [("Host", "a.example:http")]), 400)
bad(CAT, "host-unbracketed-ipv6", raw("GET", "/n", [("Host", "::1")]), 400)
ok(CAT, "host-port", "GET", "/n", [("Host", "h.example:8080")])
ok(CAT, "host-ipv6", "GET", "/n", [("Host", "[::1]:8080")])
ok(CAT, "host-ipv4", "GET", "/n", [("Host", "192.0.2.1")])
ok(CAT, "host-empty", "GET", "/n", [("Host", "")],
   why="an empty Host is valid when the target has no authority (RFC 9112 §3.2)")
ok(CAT, "host-trailing-ows", "GET", "/n", [("Host", "h.example \t")])
add(CAT, "host-http10-absent", b"GET /n HTTP/1.0\r\n\r\n",
    out(200, forwarded("GET", "/n", [], version=b"1.0")),
    why="HTTP/1.0 needs no Host; upstream, HTTP/1.1 does: corral names its server")
add(CAT, "host-http10-present", raw("GET", "/n", [HOST], version="HTTP/1.0"),
    out(200, forwarded("GET", "/n", [HOST], version=b"1.0")))
bad(CAT, "host-route-case", raw("GET", "/n", [("Host", "DENY.Example")]), 403,
    why="host names are case-insensitive")
bad(CAT, "host-route-port", raw("GET", "/n", [("Host", "deny.example:80")]), 403)
bad(CAT, "host-route-not-xfh", raw("GET", "/n", [("Host", "deny.example"),
                                                  ("X-Forwarded-Host", "h.example")]), 403)

# ---------------------------------------------------------------------------
# Request line (RFC 9112 §3: method SP request-target SP HTTP-version)

CAT = "request-line"
add(CAT, "http09", b"GET /n\r\n", out(400), out(None),
    why="HTTP/0.9 is not spoken: 400, or a close without an answer")
bad(CAT, "http09-version", b"GET /n HTTP/0.9\r\n\r\n", (400, 505), out(None))
bad(CAT, "version-2", raw("GET", "/n", version="HTTP/2.0"), (400, 505),
    why="a major version corral does not implement")
bad(CAT, "version-3", raw("GET", "/n", version="HTTP/3.0"), (400, 505))
add(CAT, "version-1.2", raw("GET", "/n", version="HTTP/1.2"),
    out(400), out(505), out(200, forwarded("GET", "/n")),
    why="RFC 9110 §2.5: a higher minor version SHOULD be processed as 1.1")
bad(CAT, "version-1.10", raw("GET", "/n", version="HTTP/1.10"), 400)
bad(CAT, "version-no-minor", raw("GET", "/n", version="HTTP/1"), 400)
bad(CAT, "version-lowercase", raw("GET", "/n", version="http/1.1"), 400,
    why="HTTP-name is case-sensitive")
bad(CAT, "version-https", raw("GET", "/n", version="HTTPS/1.1"), 400)
bad(CAT, "version-missing", b"GET /n \r\nHost: h.example\r\n\r\n", 400)
for name, line in [("trailing-space", b"GET /n HTTP/1.1 "),
                   ("double-space-before-target", b"GET  /n HTTP/1.1"),
                   ("double-space-before-version", b"GET /n  HTTP/1.1"),
                   ("tabs", b"GET\t/n\tHTTP/1.1"),
                   ("leading-space", b" GET /n HTTP/1.1")]:
    add(CAT, "ws-" + name, line + b"\r\nHost: h.example\r\n\r\n",
        out(400), out(200, forwarded("GET", "/n")),
        why="RFC 9112 §3: single SP required, but a recipient MAY split on whitespace")
bad(CAT, "method-bad-char", raw("G@T", "/n"), 400)
bad(CAT, "method-nul", raw(b"GET\x00", "/n"), 400)
bad(CAT, "method-missing", b"/n HTTP/1.1\r\nHost: h.example\r\n\r\n", 400)
bad(CAT, "target-missing", b"GET HTTP/1.1\r\nHost: h.example\r\n\r\n", 400)
bad(CAT, "method-only", b"GET\r\nHost: h.example\r\n\r\n", 400)
add(CAT, "method-lowercase", raw("get", "/n"), out(501), out(200, forwarded("get", "/n")),
    why="a valid token naming no method corral knows: 501 (RFC 9110 §9.1), or forward it; "
        "not 400, the syntax is fine")
add(CAT, "method-unknown", raw("FOO", "/n"), out(501), out(200, forwarded("FOO", "/n")),
    why="as method-lowercase")
bad(CAT, "method-connect", raw("CONNECT", "h.example:443", [("Host", "h.example:443")]), 501,
    why="README: CONNECT is not supported")
bad(CAT, "h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (400, 501, 505))
bad(CAT, "target-space", raw("GET", "/a b"), (400, 301),
    why="RFC 9112 §3: invalid request-line, 400 or 301")
bad(CAT, "target-fragment", raw("GET", "/a#frag"), (400, 301),
    why="a fragment is not part of the request-target grammar")
bad(CAT, "target-ctl", raw("GET", b"/a\x01b"), (400, 301))
bad(CAT, "target-del", raw("GET", b"/a\x7fb"), (400, 301))
bad(CAT, "target-utf8", raw("GET", b"/caf\xc3\xa9"), (400, 301))
bad(CAT, "target-backslash", raw("GET", b"/a\\b"), (400, 301))
bad(CAT, "target-relative", raw("GET", "a/b"), 400)
bad(CAT, "target-star-get", raw("GET", "*"), 400, why="asterisk-form is for OPTIONS only")
ok(CAT, "target-star-options", "OPTIONS", "*")

# ---------------------------------------------------------------------------
# absolute-form (RFC 9112 §3.2.2: the target's authority replaces Host)

CAT = "absolute-form"
ok(CAT, "abs-basic", "GET", "http://a.example/p?q=1", [HOST, ("X-A", "b")], fwd_target="/p?q=1",
   authority="a.example")
ok(CAT, "abs-no-path", "GET", "http://a.example", fwd_target="/", authority="a.example")
ok(CAT, "abs-query-no-path", "GET", "http://a.example?x=1", fwd_target="/?x=1",
   authority="a.example")
ok(CAT, "abs-port", "GET", "http://a.example:8080/p", fwd_target="/p", authority="a.example:8080")
ok(CAT, "abs-ipv6", "GET", "http://[::1]:8080/p", fwd_target="/p", authority="[::1]:8080")
ok(CAT, "abs-scheme-upper", "GET", "HTTP://A.example/p", fwd_target="/p", authority="A.example",
   why="the scheme is case-insensitive (RFC 3986 §3.1)")
ok(CAT, "abs-https", "GET", "https://a.example/p", fwd_target="/p", authority="a.example")
ok(CAT, "abs-post", "POST", "http://a.example/p", [HOST, ("Content-Length", "3")], b"abc",
   fwd_target="/p", authority="a.example")
add(CAT, "abs-userinfo", raw("GET", "http://user:pw@a.example/p"),
    out(400), out(200, forwarded("GET", "/p", authority="a.example")),
    why="RFC 9110 §4.2.4: userinfo SHOULD be treated as an error; the Host upstream must "
        "never be \"user:pw@a.example\"")
bad(CAT, "abs-empty-authority", raw("GET", "http:///p"), 400)
bad(CAT, "abs-ftp", raw("GET", "ftp://a.example/p"), 400)
bad(CAT, "abs-no-host-field", b"GET http://a.example/p HTTP/1.1\r\n\r\n", 400,
    why="RFC 9112 §3.2: HTTP/1.1 without Host is 400, whatever the target's form")
bad(CAT, "abs-deny-host", raw("GET", "http://deny.example/p"), 403,
    why="the authority, not the Host field, is the host routed on")
bad(CAT, "abs-deny-path", raw("GET", "http://h.example/admin"), 403)
add(CAT, "abs-http10-no-host", b"GET http://a.example/p HTTP/1.0\r\n\r\n",
    out(200, forwarded("GET", "/p", [], version=b"1.0", authority="a.example")))
ok(CAT, "network-path-is-origin-form", "GET", "//a.example/p", fwd_target="/a.example/p",
   why="\"//a.example/p\" is an origin-form path; slashes merged")

# ---------------------------------------------------------------------------
# Pipelines: nothing after a request refused for its framing may be
# forwarded; good neighbours go through in order

CAT = "pipeline"
SECOND = raw("GET", "/second")
bad(CAT, "pipe-dup-cl", post([("Content-Length", "1"), ("Content-Length", "2")], b"ab") + SECOND, 400)
bad(CAT, "pipe-clte-smuggle",
    post([("Content-Length", "50"), TE_CHUNKED],
         b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h.example\r\n\r\n") + SECOND, 400)
bad(CAT, "pipe-tete-smuggle",
    post([TE_CHUNKED, ("Transfer-Encoding", "x")],
         b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h.example\r\n\r\n") + SECOND, 400,
    why="chunked not final (RFC 9112 §6.3 item 4)")
bad_body(CAT, "pipe-bad-chunk", post([TE_CHUNKED], b"zz\r\nhello\r\n0\r\n\r\n") + SECOND, 400,
         forwarded("POST", "/c", [HOST, TE_CHUNKED]))
bad_body(CAT, "pipe-chunk-cr-then-byte",
         post([TE_CHUNKED], b"5\r\nhello\r\n0\rX\r\n") + SECOND, 400,
         forwarded("POST", "/c", [HOST, TE_CHUNKED]),
         why="a smuggling shape: if \"\\rX\" passed for a line end, /second would follow")
bad(CAT, "pipe-missing-host", b"GET /first HTTP/1.1\r\n\r\n" + SECOND, 400)
bad(CAT, "pipe-bad-name", b"GET /first HTTP/1.1\r\nHost: h.example\r\nX A: b\r\n\r\n" + SECOND, 400)
bad(CAT, "pipe-obs-fold", b"GET /first HTTP/1.1\r\nHost: h.example\r\nX-A: a\r\n b\r\n\r\n" + SECOND,
    400)
bad(CAT, "pipe-bare-lf", b"GET /first HTTP/1.1\nHost: h.example\n\n" + SECOND, 400)
bad(CAT, "pipe-414", raw("GET", "/" + "u" * 600) + SECOND, 414)
bad(CAT, "pipe-431", raw("GET", "/first", [HOST, ("X-Big", "b" * 3000)]) + SECOND, 431)
bad(CAT, "pipe-413", post([("Content-Length", "2000")], b"x" * 2000) + SECOND, 413)
bad(CAT, "pipe-te-gzip", post([("Transfer-Encoding", "gzip")], b"abc") + SECOND, (400, 501))
bad(CAT, "pipe-bad-escape", raw("GET", "/a%zz") + SECOND, 400)
bad(CAT, "pipe-bad-cl", post([("Content-Length", "-1")], b"") + SECOND, 400)
add(CAT, "pipe-good-then-bad",
    raw("GET", "/first") + b"GET /second HTTP/1.1\r\nHost: h.example\r\nX A: b\r\n\r\n",
    out((200, 400), forwarded("GET", "/first")))
add(CAT, "pipe-two-good", raw("GET", "/first") + SECOND,
    out((200, 200), forwarded("GET", "/first"), forwarded("GET", "/second")))
add(CAT, "pipe-post-then-get",
    post([("Content-Length", "3")], b"abc") + SECOND,
    out((200, 200), forwarded("POST", "/c", [HOST, ("Content-Length", "3")], b"abc"),
        forwarded("GET", "/second")))
add(CAT, "pipe-chunked-then-get",
    post([TE_CHUNKED], chunks("abc", "de")) + SECOND,
    out((200, 200), forwarded("POST", "/c", [HOST, TE_CHUNKED], b"abcde"),
        forwarded("GET", "/second")))
add(CAT, "pipe-local-then-good", raw("GET", "/admin/x") + SECOND,
    out((403, 200), forwarded("GET", "/second")),
    why="a request answered by a route is well framed: the connection goes on")
add(CAT, "pipe-close-then-get", raw("GET", "/first", [HOST, ("Connection", "close")]) + SECOND,
    out(200, forwarded("GET", "/first", [HOST, ("Connection", "close")])),
    why="nothing after Connection: close is read (RFC 9112 §9.6)")
add(CAT, "pipe-http10-then-get", raw("GET", "/first", [HOST], version="HTTP/1.0") + SECOND,
    out(200, forwarded("GET", "/first", [HOST], version=b"1.0")),
    why="an HTTP/1.0 request without keep-alive ends the connection")
add(CAT, "pipe-bypass-then-good", raw("GET", "/%61dmin") + SECOND,
    out((403, 200), forwarded("GET", "/second")))

# ---------------------------------------------------------------------------
# Valid requests of every method, with and without bodies

CAT = "methods"
ok(CAT, "get", "GET", "/m")
ok(CAT, "head", "HEAD", "/m", head=True)
ok(CAT, "post-length", "POST", "/m", [HOST, ("Content-Length", "5"), ("Content-Type", "text/plain")],
   b"hello")
ok(CAT, "post-empty", "POST", "/m", [HOST, ("Content-Length", "0")])
ok(CAT, "post-no-length", "POST", "/m", why="no Content-Length, no Transfer-Encoding: no body "
                                             "(RFC 9112 §6.3 item 7)")
ok(CAT, "post-chunked", "POST", "/m", [HOST, TE_CHUNKED], b"hello world",
   sent=chunks("hello", " ", "world"))
ok(CAT, "post-expect-continue", "POST", "/m",
   [HOST, ("Expect", "100-continue"), ("Content-Length", "5")], b"hello")
ok(CAT, "put-length", "PUT", "/m", [HOST, ("Content-Length", "3")], b"put")
ok(CAT, "put-chunked", "PUT", "/m", [HOST, TE_CHUNKED], b"put", sent=chunks("put"))
ok(CAT, "delete", "DELETE", "/m")
ok(CAT, "delete-body", "DELETE", "/m", [HOST, ("Content-Length", "3")], b"del")
ok(CAT, "options", "OPTIONS", "/m")
ok(CAT, "patch", "PATCH", "/m", [HOST, ("Content-Length", "7")], b"{\"a\":1}")
ok(CAT, "trace", "TRACE", "/m")
ok(CAT, "propfind", "PROPFIND", "/m", [HOST, ("Depth", "1"), ("Content-Length", "4")], b"<a/>")
ok(CAT, "mkcol", "MKCOL", "/m")
ok(CAT, "copy", "COPY", "/m", [HOST, ("Destination", "/m2")])
ok(CAT, "purge", "PURGE", "/m")
ok(CAT, "get-query", "GET", "/m?a=1&b=%zz&c=/../x",
   why="the query is forwarded as received, never normalised")

# ---------------------------------------------------------------------------
# Limits (this config: max_header_bytes 2k, max_headers 20,
# max_uri_bytes 512, max_body_bytes 1k)

CAT = "limits"
ok(CAT, "uri-at-limit", "GET", "/" + "u" * 511)
bad(CAT, "uri-over-limit", raw("GET", "/" + "u" * 512), 414)
bad(CAT, "uri-far-over", raw("GET", "/?" + "q" * 4000), 414)
ok(CAT, "head-under-limit", "GET", "/n", [HOST] + [("X-Pad-%d" % i, "p" * 100) for i in range(12)])
bad(CAT, "head-one-big-field", raw("GET", "/n", [HOST, ("X-Big", "b" * 3000)]), 431)
bad(CAT, "head-many-fields-bytes", raw("GET", "/n", [HOST] + [("X-Pad-%d" % i, "p" * 200)
                                                              for i in range(15)]), 431)
ok(CAT, "fields-at-limit", "GET", "/n", [HOST] + [("X-F%d" % i, str(i)) for i in range(19)])
bad(CAT, "fields-over-limit", raw("GET", "/n", [HOST] + [("X-F%d" % i, str(i)) for i in range(20)]),
    431)
bad(CAT, "fields-far-over", raw("GET", "/n", [HOST] + [("X-F%d" % i, str(i)) for i in range(60)]),
    431)
ok(CAT, "body-length-at-limit", "POST", "/n", [HOST, ("Content-Length", "1024")], b"b" * 1024)
bad(CAT, "body-length-over-head-only", post([("Content-Length", "1025")], b""), 413,
    why="refused from the head, before any body byte")
bad(CAT, "body-length-over", post([("Content-Length", "1025")], b"b" * 1025), 413)
bad(CAT, "body-length-far-over", post([("Content-Length", "1000000")], b"b" * 100), 413)
ok(CAT, "body-chunked-at-limit", "POST", "/n", [HOST, TE_CHUNKED], b"b" * 1024,
   sent=chunks("b" * 1000, "b" * 24))
bad_body(CAT, "body-chunked-over", post([TE_CHUNKED], chunks("b" * 1000, "b" * 25)), 413,
         forwarded("POST", "/c", [HOST, TE_CHUNKED]))
bad_body(CAT, "body-one-chunk-over", post([TE_CHUNKED], chunks("b" * 1025)), 413,
         forwarded("POST", "/c", [HOST, TE_CHUNKED]))

# ---------------------------------------------------------------------------
# Forwarded fields: hop-by-hop removed, X-Forwarded-* and Via rewritten,
# route rules

CAT = "forwarding"
ok(CAT, "connection-named", "GET", "/n", [HOST, ("Connection", "keep-alive, X-Secret"),
                                         ("X-Secret", "1"), ("X-Keep", "yes")])
ok(CAT, "connection-named-odd-spacing", "GET", "/n",
   [HOST, ("Connection", " x-one ,X-TWO,, "), ("X-One", "a"), ("X-Two", "b"), ("X-Three", "c")])
ok(CAT, "hop-by-hop-all", "GET", "/n",
   [HOST, ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-Sum"),
    ("Upgrade", "example/1"), ("Proxy-Connection", "keep-alive"), ("X-Keep", "yes")])
ok(CAT, "connection-close", "GET", "/n", [HOST, ("Connection", "close")])
ok(CAT, "connection-names-host", "GET", "/n", [HOST, ("Connection", "Host, X-A"), ("X-A", "1")],
   why="Host is never dropped")
ok(CAT, "connection-names-te", "GET", "/n", [HOST, ("Connection", "TE"), ("TE", "trailers")])
ok(CAT, "connection-names-length", "POST", "/n",
   [HOST, ("Connection", "Content-Length"), ("Content-Length", "3")], b"abc",
   why="framing is corral's own either way")
ok(CAT, "websocket-upgrade", "GET", "/n",
   [HOST, ("Upgrade", "websocket"), ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
ok(CAT, "h2c-upgrade", "GET", "/n",
   [HOST, ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
    ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
ok(CAT, "xff-appended", "GET", "/n", [HOST, ("X-Forwarded-For", "192.0.2.1")])
ok(CAT, "xff-two-lines", "GET", "/n", [HOST, ("X-Forwarded-For", "192.0.2.1"),
                                      ("X-Forwarded-For", "192.0.2.2, 192.0.2.3")])
ok(CAT, "xff-empty", "GET", "/n", [HOST, ("X-Forwarded-For", "")],
   why="an empty value adds no list element")
ok(CAT, "xfp-spoofed", "GET", "/n", [HOST, ("X-Forwarded-Proto", "https")])
ok(CAT, "xfh-spoofed", "GET", "/n", [HOST, ("X-Forwarded-Host", "evil.example")])
ok(CAT, "via-appended", "GET", "/n", [HOST, ("Via", "1.0 edge"), ("Via", "1.1 mid")])
ok(CAT, "route-rules", "GET", "/hdr/x",
   [HOST, ("X-Set", "client"), ("X-Drop", "1"), ("x-set", "2"), ("X-Keep", "k")], route="hdr")
ok(CAT, "route-strip-prefix", "GET", "/strip/a?q=1", fwd_target="/a?q=1")
ok(CAT, "route-strip-prefix-root", "GET", "/strip/", fwd_target="/")

# ---------------------------------------------------------------------------
# Path normalisation before routing; the normalised path is forwarded
# (RFC 3986 §6.2.2: percent-encoding normalisation, §5.2.4: dot segments;
# "//" merged)

CAT = "path-normalisation"
for name, target, fwd in [
        ("pct-unreserved-letters", "/%41%62", "/Ab"),
        ("pct-tilde", "/%7euser", "/~user"),
        ("pct-unreserved-marks", "/%2d%2e%5f%7e", "/-._~"),
        ("pct-digits", "/%30%39", "/09"),
        ("pct-slash-kept", "/a%2fb", "/a%2Fb"),
        ("pct-slash-upper-kept", "/a%2Fb", "/a%2Fb"),
        ("pct-space-kept", "/a%20b", "/a%20b"),
        ("pct-colon-upper", "/a%3a", "/a%3A"),
        ("pct-utf8-upper", "/caf%c3%a9", "/caf%C3%A9"),
        ("pct-percent-kept", "/%25", "/%25"),
        ("pct-no-double-decode", "/%252e%252e/x", "/%252e%252e/x"),
        ("pct-dot-in-name", "/a%2e", "/a."),
        ("dot-current", "/a/./b", "/a/b"),
        ("dot-parent", "/a/../b", "/b"),
        ("dot-parent-above-root", "/../a", "/a"),
        ("dot-parent-at-end", "/a/..", "/"),
        ("dot-current-at-end", "/a/.", "/a/"),
        ("dot-current-slash-end", "/a/./", "/a/"),
        ("dot-parents-past-root", "/a/b/../../..", "/"),
        ("dot-only", "/.", "/"),
        ("dotdot-only", "/..", "/"),
        ("dot-three", "/a/...", "/a/..."),
        ("dot-prefixed-names", "/a/.b/..c", "/a/.b/..c"),
        ("dot-encoded-current", "/a/%2e/b", "/a/b"),
        ("dot-encoded-parent", "/a/%2E%2E/b", "/b"),
        ("dot-half-encoded-parent", "/a/.%2e/b", "/b"),
        ("dot-encoded-slash-not-segment", "/a%2f..%2fb", "/a%2F..%2Fb"),
        ("slashes-merged", "//a///b", "/a/b"),
        ("slashes-trailing", "/a//", "/a/"),
        ("query-untouched", "/a/../b?x=/../%zz&y=%2e//", "/b?x=/../%zz&y=%2e//"),
        ("query-empty", "/a?", "/a?"),
        ("strip-after-normalising", "/strip/./x", "/x"),
        ("strip-reached-by-dots", "/y/../strip/x", "/x")]:
    ok(CAT, "norm-" + name, "GET", target, fwd_target=fwd)
add(CAT, "norm-slash-dot-order", raw("GET", "/a//../b"),
    out(200, forwarded("GET", "/a/b")), out(200, forwarded("GET", "/b")),
    why="dot segments then merging gives /a/b, merging first /b; the rules do not order them")
ok(CAT, "norm-absolute-form", "GET", "http://a.example/x/../y", fwd_target="/y",
   authority="a.example")
for name, target in [("bad-escape-letters", "/a%zz"), ("bad-escape-end", "/a%"),
                     ("bad-escape-one-digit", "/a%4"), ("bad-escape-half", "/a%4g"),
                     ("nul-escape", "/%00"), ("nul-escape-inside", "/a%00b")]:
    bad(CAT, "norm-" + name, raw("GET", target), 400)

# ---------------------------------------------------------------------------
# Route bypass: /admin is denied (403) however the path is spelled

CAT = "route-bypass"
for name, target in [("plain", "/admin"), ("below", "/admin/x"), ("pct-a", "/%61dmin"),
                     ("pct-all", "/%61%64%6d%69%6e"), ("pct-upper", "/%61%64%6D%69%6E"),
                     ("parent", "/x/../admin"), ("double-slash", "//admin"),
                     ("triple-slash", "///admin"), ("current", "/./admin"),
                     ("pct-parent", "/%2e%2e/admin"), ("pct-parent-upper", "/%2E%2E/admin"),
                     ("half-pct-parent", "/.%2e/admin"), ("pct-current", "/%2e/admin"),
                     ("deep-parent", "/x/%2e%2e/admin/y"), ("two-parents", "/x/y/../../admin"),
                     ("current-then-parent", "/x/./../admin"), ("round-trip", "/admin/../admin"),
                     ("encoded-slash-after", "/admin%2fx"), ("query", "/admin?x=/ok"),
                     ("double-slash-inside", "//admin//x")]:
    bad(CAT, "bypass-" + name, raw("GET", target), 403)
bad(CAT, "bypass-absolute-form", raw("GET", "http://h.example//admin"), 403)
bad(CAT, "bypass-absolute-pct", raw("GET", "http://h.example/%61dmin"), 403)
add(CAT, "bypass-head", raw("HEAD", "/%61dmin"), out(403), head=True)
ok(CAT, "case-is-significant", "GET", "/Admin",
   why="paths are case-sensitive (RFC 3986 §6.2.2.1): /Admin is not /admin")
ok(CAT, "encoded-slash-before", "GET", "/%2fadmin", fwd_target="/%2Fadmin",
   why="%2F is reserved and stays encoded: the path is one segment \"%2Fadmin\"")
ok(CAT, "encoded-slash-parent", "GET", "/x/..%2fadmin", fwd_target="/x/..%2Fadmin",
   why="\"..%2Fadmin\" is one segment, not a dot segment")

# ---------------------------------------------------------------------------
# merge_slashes: false (second instance): "//" kept, everything else as above

CAT = "no-merge-slashes"
for name, target, fwd in [("slashes-kept", "//a///b", "//a///b"),
                          ("trailing-kept", "/a//", "/a//"),
                          ("dots-still-removed", "/a/./b/../c", "/a/c"),
                          ("empty-segment-parent", "/a//../b", "/a/b"),
                          ("pct-still-decoded", "/%7e%2f", "/~%2F"),
                          ("double-slash-admin-is-another-path", "//admin", "//admin")]:
    add(CAT, "nomerge-" + name, raw("GET", target), out(200, forwarded("GET", fwd)),
        instance="nomerge")
for name, target in [("pct", "/%61dmin"), ("parent", "/x/../admin"), ("current", "/./admin"),
                     ("pct-parent", "/%2e%2e/admin")]:
    bad(CAT, "nomerge-bypass-" + name, raw("GET", target), 403, instance="nomerge")
bad(CAT, "nomerge-bad-escape", raw("GET", "//a%zz"), 400, instance="nomerge")
