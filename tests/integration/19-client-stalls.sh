#!/usr/bin/env bash
# 19-client-stalls: clients that half-close, stop reading, or stop sending.
#   - a whole request then shutdown(SHUT_WR) still gets its answer: POST
#     /echo with a 5-byte body, 20 of 20, over a pool that connects afresh
#     for every request and over a keep-alive pool; two pipelined GETs then
#     SHUT_WR get both answers; corral closes once it has answered.
#   - a client pipelining requests that corral answers itself (respond:)
#     without reading the answers does not make the worker buffer without
#     bound: its VmRSS grows by less than 48 MiB while the client pushes
#     for 5 s; once the client reads, every request sent gets its answer,
#     in order.
#   - a request body that stops coming (Content-Length: 10, 3 bytes sent;
#     a chunked body cut short) gets 408 after body_timeout (1s), with
#     Connection: close and a close; requests afterwards work.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

# One worker, so the worker serving the test's connection is known.
# The instance name carries the port: no clash with another corral running
# on this machine under a fixed name.
cat > corral.yaml <<EOF
name: "t19-$PORT"
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
limits: { body_timeout: 1s, send_timeout: 30s, idle_timeout: 30s }
upstreams:
  fresh:  { keepalive: 0, connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
  pooled: { keepalive: 8, connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: local, match: { path: /local }, respond: { status: 200, body: "local\n" } }
  - { name: fresh, match: { path_prefix: /fresh/ }, upstream: fresh, strip_prefix: /fresh }
  - { name: pooled, match: { path_prefix: / }, upstream: pooled }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 1 || fail "expected 1 listening socket on $PORT, got $(count_listeners "$PORT")"
WORKER=$(worker_pids | head -n 1)
[ -n "$WORKER" ] || fail "no worker found under master $CORRAL_PID"
export WORKER

py <<'EOF' || exit 1
import os
import socket
import threading
import time
from httpc import *

# -- half-close after a whole request ----------------------------------------------------
for prefix in ("/fresh", ""):
    ok = 0
    bad = []
    for i in range(20):
        body = b"hel%02d" % i
        c = Conn(timeout=10)
        c.send(request("POST", prefix + "/echo", body=body))
        c.s.shutdown(socket.SHUT_WR)
        try:
            r = c.response()
            closed = c.closed_within(10)
        except (EOFError, OSError) as e:
            bad.append(repr(e))
            c.close()
            continue
        if r.status == 200 and r.body == body and closed:
            ok += 1
        else:
            bad.append((r, closed))
        c.close()
    check(ok == 20, "POST %s/echo then SHUT_WR: answered, then closed" % prefix,
          "20 of 20", "%d of 20, first failure %r" % (ok, bad[:1]))

c = Conn(timeout=10)
c.send(request("GET", "/fresh/status/200") + request("GET", "/headers?second=1"))
c.s.shutdown(socket.SHUT_WR)
try:
    r1 = c.response()
    r2 = c.response()
except (EOFError, OSError) as e:
    fail("two pipelined GETs then SHUT_WR: both answered", "two responses", repr(e))
check(r1.status == 200 and r1.body == b"status 200\n", "pipelined GET 1 then SHUT_WR", 200, r1)
check(r2.status == 200 and b"second=1" in r2.body, "pipelined GET 2 then SHUT_WR", 200, r2)
check(c.closed_within(10), "closed after answering a half-closed connection")
c.close()

# -- pipelined local answers, client not reading -------------------------------------------
def rss_kib():
    with open("/proc/%s/status" % os.environ["WORKER"]) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail("VmRSS of the worker", "a number", None)

LIMIT_KIB = 48 * 1024
REQ = request("GET", "/local")
CHUNK = REQ * 3000
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(10)
s.connect(("127.0.0.1", int(os.environ["PORT"])))
s.setblocking(False)
rss0 = peak = rss_kib()
sent = 0
t0 = time.time()
next_sample = t0
while time.time() - t0 < 5:
    off = sent % len(CHUNK)
    try:
        sent += s.send(CHUNK[off:])
    except BlockingIOError:
        time.sleep(0.01)
    except OSError as e:
        fail("pipelining without reading: the connection stays open", "open",
             "%r after %d bytes" % (e, sent))
    if time.time() >= next_sample:
        next_sample = time.time() + 0.1
        peak = max(peak, rss_kib())
        check(peak - rss0 < LIMIT_KIB,
              "worker VmRSS while a client pipelines %d bytes of requests without reading" % sent,
              "growth < %d KiB" % LIMIT_KIB, "%d KiB -> %d KiB after %.1f s"
              % (rss0, peak, time.time() - t0))
peak = max(peak, rss_kib())
check(peak - rss0 < LIMIT_KIB, "worker VmRSS after 5 s of pipelining without reading",
      "growth < %d KiB" % LIMIT_KIB, "%d KiB -> %d KiB" % (rss0, peak))

# now read: finish the request cut in the middle, ask to close, count the answers
tail = REQ[sent % len(REQ):] if sent % len(REQ) else b""
last = request("GET", "/local", headers=[("Connection", "close")])
n = (sent + len(tail)) // len(REQ) + 1
s.setblocking(True)
s.settimeout(30)
err = []
def finish():
    try:
        s.sendall(tail + last)
    except OSError as e:
        err.append(e)
th = threading.Thread(target=finish, daemon=True)
th.start()
data = bytearray()
try:
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        data += d
except (socket.timeout, ConnectionResetError) as e:
    fail("reading the answers to %d pipelined requests" % n, "all, then EOF",
         "%r after %d bytes" % (e, len(data)))
th.join(10)
s.close()
check(not err, "sending the last requests", "no error", err)
got = data.count(b"HTTP/1.1 200 ")
bodies = data.count(b"\r\n\r\nlocal\n")
check(got == n and bodies == n, "every pipelined request answered once the client reads",
      "%d answers" % n, "%d status lines, %d bodies (%d bytes)" % (got, bodies, len(data)))
check(data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nlocal\n"),
      "the answers are whole", "HTTP/1.1 200 ... local", (data[:40], data[-40:]))

# -- request body stalls ------------------------------------------------------------------
def stalled(data, what):
    c = Conn(timeout=20)
    t0 = time.time()
    c.send(data)
    try:
        r = c.response()
    except (EOFError, OSError) as e:
        fail(what + ": 408 within 20 s", 408, "%r after %.1f s" % (e, time.time() - t0))
    dt = time.time() - t0
    check(r.status == 408 and r.version == "HTTP/1.1", what + ": status", 408, r)
    check(0.8 <= dt <= 10, what + ": 408 after about body_timeout (1s)", "0.8..10 s",
          "%.2f s" % dt)
    check(0 < len(r.body) <= 1024, what + ": a short body", "1..1024 bytes", r.body)
    check(any("close" in v.lower() for v in r.all("Connection")), what + ": Connection: close",
          "close", r.all("Connection"))
    check(c.closed_within(10), what + ": connection closed after the 408")
    c.close()

stalled(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        "Content-Length: 10 with 3 bytes sent")
stalled(b"POST /fresh/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        "Content-Length: 10 with 3 bytes sent, fresh upstream connection")
stalled(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "chunked body cut short")

for prefix in ("/fresh", ""):
    c = Conn()
    c.send(request("POST", prefix + "/echo", body=b"0123456789"))
    r = c.response()
    check(r.status == 200 and r.body == b"0123456789",
          "POST %s/echo after the stalled bodies" % prefix, b"0123456789", r)
    c.close()
EOF

code=$(http_code "http://127.0.0.1:$PORT/local")
assert_eq 200 "$code" "GET /local afterwards"
assert_eq "$WORKER" "$(worker_pids | paste -sd' ')" "worker pid unchanged"

log "ok"
