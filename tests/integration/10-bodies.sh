#!/usr/bin/env bash
# 10-bodies: bodies are streamed intact both ways: a 1 MiB random POST
# (Content-Length) and the same file uploaded chunked come back identical;
# a 10 MiB Content-Length download and a chunked download match the
# backend's pattern; a 20 MiB PUT reaches the backend whole; with
# "Expect: 100-continue" the client gets "100 Continue" and the upload
# arrives intact.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT
URL="http://127.0.0.1:$PORT"

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
limits: { max_body_bytes: 100m }
upstreams:
  app: { keepalive: 8, connect_timeout: 1s, read_timeout: 10s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

sha() {
    sha256sum "$1" | cut -d' ' -f1
}

# pattern_sha N: sha256 of the first N bytes of backend.py's pattern
pattern_sha() {
    PYTHONPATH="$LIB_DIR" python3 -c 'import sys, hashlib, backend
n = int(sys.argv[1]); h = hashlib.sha256(); off = 0
while off < n:
    k = min(1 << 20, n - off); h.update(backend.pattern_bytes(off, k)); off += k
print(h.hexdigest())' "$1"
}

python3 -c 'import os, sys; sys.stdout.buffer.write(os.urandom(1 << 20))' > rand1m.bin
python3 -c 'import os, sys; sys.stdout.buffer.write(os.urandom(5 << 20))' > rand5m.bin
python3 -c 'import os, sys; sys.stdout.buffer.write(os.urandom(20 << 20))' > rand20m.bin

# -- 1 MiB POST, Content-Length ------------------------------------------------------
"${CURL[@]}" -H 'Expect:' --data-binary @rand1m.bin -o got1.bin "$URL/echo" ||
    fail "POST 1 MiB to /echo: curl failed"
assert_eq "$(sha rand1m.bin)" "$(sha got1.bin)" "POST 1 MiB /echo: sha256 of the answer"

# -- the same, chunked ------------------------------------------------------------------
"${CURL[@]}" -H 'Expect:' -H 'Transfer-Encoding: chunked' --data-binary @rand1m.bin \
    -o got2.bin "$URL/echo" || fail "chunked POST 1 MiB to /echo: curl failed"
assert_eq "$(sha rand1m.bin)" "$(sha got2.bin)" "chunked POST 1 MiB /echo: sha256 of the answer"

# -- downloads --------------------------------------------------------------------------
"${CURL[@]}" -D head3.txt -o got3.bin "$URL/bytes?n=10485760" || fail "GET 10 MiB: curl failed"
assert_eq 10485760 "$(stat -c %s got3.bin)" "GET /bytes?n=10485760: size"
assert_eq "$(pattern_sha 10485760)" "$(sha got3.bin)" "GET /bytes?n=10485760: sha256"
"${CURL[@]}" -o got4.bin "$URL/chunked?n=3000001&size=10007" || fail "chunked GET: curl failed"
assert_eq "$(pattern_sha 3000001)" "$(sha got4.bin)" "GET /chunked?n=3000001: sha256"

# -- 20 MiB PUT to /sink -----------------------------------------------------------------------
out=$("${CURL[@]}" -H 'Expect:' -T rand20m.bin "$URL/sink") || fail "PUT 20 MiB: curl failed"
assert_contains "$out" "\"bytes\": $((20 << 20))" "PUT 20 MiB /sink: bytes"
assert_contains "$out" "\"sha256\": \"$(sha rand20m.bin)\"" "PUT 20 MiB /sink: sha256"

# -- Expect: 100-continue ----------------------------------------------------------------------
"${CURL[@]}" -v -H 'Expect: 100-continue' --expect100-timeout 30 --data-binary @rand5m.bin \
    -o got5.bin "$URL/echo" 2> verbose5.txt || fail "POST with Expect: 100-continue: curl failed"
grep -q '^< HTTP/1.1 100' verbose5.txt ||
    fail "POST with Expect: 100-continue: no \"HTTP/1.1 100 Continue\" reached the client; curl said:
$(grep '^[<>]' verbose5.txt | head -n 20)"
grep -q '^< HTTP/1.1 200' verbose5.txt || fail "POST with Expect: 100-continue: no 200"
assert_eq "$(sha rand5m.bin)" "$(sha got5.bin)" "POST 5 MiB with Expect: 100-continue: sha256"

# curl decides on its own to send Expect for a large body; that works too
"${CURL[@]}" --data-binary @rand5m.bin -o got6.bin "$URL/echo" || fail "POST 5 MiB: curl failed"
assert_eq "$(sha rand5m.bin)" "$(sha got6.bin)" "POST 5 MiB (curl's own Expect): sha256"

# -- Expect: 100-continue on a raw connection, chunked -------------------------------------------
py <<'EOF' || exit 1
import hashlib, json
from httpc import *
c = Conn(timeout=30)
c.send(b"POST /sink HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
r = c.response(keep_1xx=True)
check(r.status == 100, "raw chunked POST with Expect: first answer", 100, r)
h = hashlib.sha256()
for i in range(64):
    piece = bytes([i]) * (8192 + i)
    h.update(piece)
    c.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
c.send(b"0\r\n\r\n")
r = c.response()
check(r.status == 200, "raw chunked POST with Expect: final answer", 200, r)
doc = json.loads(r.body)
check(doc["sha256"] == h.hexdigest(), "raw chunked POST with Expect: body intact",
      h.hexdigest(), doc)
c.close()
EOF

log "ok"
