#!/usr/bin/env bash
# 20-upstream-protocol: answers from a raw upstream (a python socket server
# written by this test) that corral must not pass on as they are.
#   - a response with a transfer coding corral cannot frame
#     ("Transfer-Encoding: gzip", "Transfer-Encoding: gzip, chunked") gets
#     502 instead, with none of the upstream's bytes; a plain response from
#     the same server passes (so the 502 is about the coding).
#   - an upstream that answers (413) as soon as it has the head of a large
#     POST, before reading the body, and says nothing about the connection:
#     the client's answer carries "Connection: close" and the connection is
#     then closed, since the rest of the body will not be forwarded.
. "$(dirname "$0")/lib.sh"

cat > "$TEST_DIR/rawbackend.py" <<'EOF'
"""Raw upstream: one request per connection, answer chosen by the path."""
import socket
import sys
import threading
import time

ANSWERS = {
    b"/ok": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
    b"/te-gzip": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                 b"Transfer-Encoding: gzip\r\n\r\nGZIP-CODED-BYTES",
    b"/te-gzip-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                         b"10\r\nGZIP-CODED-BYTES\r\n0\r\n\r\n",
    b"/early": b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig\n",
}


def serve(c):
    buf = b""
    try:
        c.settimeout(10)
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return
            buf += d
        target = buf.split(b" ", 2)[1]
        sys.stderr.write("raw %s\n" % target.decode("latin-1"))
        sys.stderr.flush()
        # answer at once, whatever body may follow, and read none of it
        c.sendall(ANSWERS.get(target.split(b"?")[0], ANSWERS[b"/ok"]))
        time.sleep(3 if target.startswith(b"/early") else 0.5)
    except OSError:
        pass
    finally:
        c.close()


ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
sys.stderr.write("raw listening on 127.0.0.1:%d\n" % ls.getsockname()[1])
sys.stderr.flush()
while True:
    conn, _ = ls.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
EOF

rport=$(start_script_backend raw "$TEST_DIR/rawbackend.py") || exit 1
PORT=$(free_port)
RAWLOG=$TEST_DIR/backend-raw.log
export PORT RAWLOG

# The instance name carries the port: no clash with another corral running
# on this machine under a fixed name.
cat > corral.yaml <<EOF
name: "t20-$PORT"
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  raw: { keepalive: 0, connect_timeout: 1s, read_timeout: 5s, retries: 0, max_fails: 1000,
         servers: [ { address: "127.0.0.1:$rport" } ] }
routes:
  - { name: raw, match: { path_prefix: / }, upstream: raw }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import os
import time
from httpc import *

def get(path):
    c = Conn(timeout=10)
    c.send(request("GET", path))
    try:
        r = c.response()
    except (EOFError, OSError) as e:
        fail("GET %s: a response" % path, "a response", repr(e))
    return c, r

# -- control: a plain answer passes --------------------------------------------------------
c, r = get("/ok")
check(r.status == 200 and r.body == b"ok\n", "GET /ok through the raw upstream", b"ok\n", r)
c.close()

# -- transfer codings corral cannot frame ---------------------------------------------------
for path in ("/te-gzip", "/te-gzip-chunked"):
    for i in range(3):
        c, r = get("%s?i=%d" % (path, i))
        check(r.status == 502, "GET %s: upstream answer with Transfer-Encoding gzip" % path, 502, r)
        check(b"GZIP-CODED-BYTES" not in r.head + r.body,
              "GET %s: none of the upstream's bytes reach the client" % path,
              "no GZIP-CODED-BYTES", r.head + r.body)
        check(0 < len(r.body) <= 1024, "GET %s: a short body" % path, "1..1024 bytes", r.body)
        c.close()

# -- an answer before the request body ----------------------------------------------------
for i in range(3):
    c = Conn(timeout=10)
    c.send(b"POST /early?i=%d HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" % i
           + b"a" * 1000)
    t0 = time.time()
    try:
        r = c.response()
    except (EOFError, OSError) as e:
        fail("POST /early (try %d): the upstream's early answer" % i, 413, repr(e))
    check(r.status == 413 and r.body == b"big\n", "POST /early (try %d): status" % i, 413, r)
    check(any("close" in v.lower() for v in r.all("Connection")),
          "POST /early (try %d): an answer before the body is all sent says Connection: close" % i,
          "close", r.head)
    check(c.closed_within(10), "POST /early (try %d): the connection is closed after it" % i)
    c.close()

seen = open(os.environ["RAWLOG"]).read()
check(seen.count("raw /early?") == 3, "every early POST reached the raw upstream",
      3, seen[-2000:])

# and the upstream path still works
c, r = get("/ok?after=1")
check(r.status == 200 and r.body == b"ok\n", "GET /ok afterwards", b"ok\n", r)
c.close()
EOF

log "ok"
