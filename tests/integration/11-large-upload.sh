#!/usr/bin/env bash
# 11-large-upload: large bodies are streamed, not buffered. A 1 GiB upload
# sent chunked (curl -T -) and one sent with Content-Length (raw socket)
# reach /sink whole (1073741824 bytes, right sha256); a 256 MiB download
# read slowly by the client arrives intact. Through all of it the peak RSS
# (VmHWM) of every corral worker grows by less than 32 MiB, so corral
# applies backpressure both ways instead of queueing.
. "$(dirname "$0")/lib.sh"

# Under AddressSanitizer, freed memory waiting in ASan's quarantine is not
# corral's: keep the quarantine small. Other builds ignore this variable.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT
GIB=1073741824
ZERO_GIB_SHA=49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
limits: { max_body_bytes: 2g }
upstreams:
  app: { keepalive: 8, connect_timeout: 1s, read_timeout: 60s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 listening sockets on $PORT, got $(count_listeners "$PORT")"

# warm up both workers' ordinary buffers with a few small requests
for i in 1 2 3 4 5 6 7 8; do
    "${CURL[@]}" -o /dev/null --data-binary "warm-up $i" "http://127.0.0.1:$PORT/echo"
done

hwm_kb() {
    sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"
}

workers=$(worker_pids)
declare -A before
for w in $workers; do
    before[$w]=$(hwm_kb "$w")
    log "worker $w VmHWM before: ${before[$w]} kB"
done

# -- chunked: curl -T - reads the data from a pipe ---------------------------------------
t0=$(now_ms)
out=$(python3 -c 'import sys
b = bytes(1 << 20)
w = sys.stdout.buffer.write
for _ in range(1024):
    w(b)' | "${CURL[@]}" -m 170 -T - "http://127.0.0.1:$PORT/sink")
rc=$?
log "chunked 1 GiB upload: $(( $(now_ms) - t0 )) ms"
assert_eq 0 "$rc" "chunked 1 GiB upload: curl exit status (answer: $out)"
assert_contains "$out" "\"bytes\": $GIB" "chunked 1 GiB upload: bytes received by the backend"
assert_contains "$out" "\"sha256\": \"$ZERO_GIB_SHA\"" "chunked 1 GiB upload: sha256"

# -- Content-Length: raw socket ------------------------------------------------------------
t0=$(now_ms)
py <<'EOF' || exit 1
import json
from httpc import *
GIB = 1 << 30
c = Conn(timeout=120)
c.send(b"POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % GIB)
block = bytes(1 << 20)
for _ in range(GIB // len(block)):
    c.s.sendall(block)
r = c.response()
check(r.status == 200, "Content-Length 1 GiB upload: status", 200, r)
doc = json.loads(r.body)
check(doc["bytes"] == GIB, "Content-Length 1 GiB upload: bytes received by the backend", GIB, doc)
c.close()
EOF
log "Content-Length 1 GiB upload: $(( $(now_ms) - t0 )) ms"

# -- a download read slowly: the backend is faster than the client ------------------------
t0=$(now_ms)
PYTHONPATH="$LIB_DIR" py <<'EOF' || exit 1
import hashlib, time
import backend
from httpc import *
N = 256 << 20
c = Conn(timeout=60)
c.send(request("GET", "/bytes?n=%d" % N))
# read the head by hand, then the body at about 50 MB/s
while b"\r\n\r\n" not in c.buf:
    c._fill()
head, _, c.buf = c.buf.partition(b"\r\n\r\n")
check(head.startswith(b"HTTP/1.1 200"), "slow 256 MiB download: status", "HTTP/1.1 200", head[:40])
h = hashlib.sha256()
got = len(c.buf)
h.update(c.buf)
c.buf = b""
while got < N:
    d = c.s.recv(min(262144, N - got))
    if not d:
        break
    h.update(d)
    got += len(d)
    time.sleep(0.005)
check(got == N, "slow 256 MiB download: bytes received", N, got)
want = hashlib.sha256()
off = 0
while off < N:
    k = min(1 << 20, N - off)
    want.update(backend.pattern_bytes(off, k))
    off += k
check(h.hexdigest() == want.hexdigest(), "slow 256 MiB download: sha256", want.hexdigest(),
      h.hexdigest())
c.close()
EOF
log "slow 256 MiB download: $(( $(now_ms) - t0 )) ms"

# -- memory --------------------------------------------------------------------------------
after_workers=$(worker_pids)
assert_eq "$(paste -sd' ' <<< "$workers")" "$(paste -sd' ' <<< "$after_workers")" \
    "worker pids unchanged by the transfers"
max=0
for w in $workers; do
    a=$(hwm_kb "$w")
    d=$(( a - ${before[$w]} ))
    log "worker $w VmHWM after: $a kB (grew $d kB)"
    [ "$d" -gt "$max" ] && max=$d
done
assert_lt "$max" 32768 "peak RSS growth of a worker during the transfers, in kB (limit 32 MiB)"

log "ok"
