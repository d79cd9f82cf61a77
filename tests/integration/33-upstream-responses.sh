#!/usr/bin/env bash
# 33-upstream-responses: malformed or over-long upstream answers never reach
# a client as something else. A raw keep-alive upstream (written by this
# test) answers by path:
#   - a body after a HEAD or 204 answer, and bytes after a complete answer
#     (a smuggled second response): the client gets the proper answer, and
#     the next request never sees those bytes (the upstream connection is
#     discarded, a new one is opened);
#   - Content-Length with Transfer-Encoding, a broken status line, a bad
#     header name, two different Content-Lengths: 502;
#   - an answer cut short: the client's connection is cut, never completed.
. "$(dirname "$0")/lib.sh"

cat > "$TEST_DIR/rawka.py" <<'EOF'
"""Raw keep-alive upstream: answers each request head by its path."""
import socket, sys, threading

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSMUGGLED\n"
ANSWERS = {
    b"/ok": OK,
    b"/head-body": b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSMUGGLED\n",
    b"/nocontent-body": b"HTTP/1.1 204 No Content\r\n\r\n" + SMUGGLED,
    b"/extra": OK + SMUGGLED,
    b"/cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nok\n\r\n0\r\n\r\n",
    b"/bad-status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 3\r\n\r\nok\n",
    b"/bad-header": b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 3\r\n\r\nok\n",
    b"/two-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nok\n",
}
lock = threading.Lock()
nconns = 0

def serve(c, n):
    buf = b""
    try:
        c.settimeout(10)
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            target = head.split(b" ", 2)[1].split(b"?")[0]
            sys.stderr.write("conn %d %s\n" % (n, target.decode("latin-1")))
            sys.stderr.flush()
            if target == b"/cut":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-some")
                return
            c.sendall(ANSWERS.get(target, OK))
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
    with lock:
        nconns += 1
        n = nconns
    threading.Thread(target=serve, args=(conn, n), daemon=True).start()
EOF

rport=$(start_script_backend raw "$TEST_DIR/rawka.py") || exit 1
PORT=$(free_port)
RAWLOG=$TEST_DIR/backend-raw.log
export PORT RAWLOG

cat > corral.yaml <<EOF
name: t
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  raw: { keepalive: 8, read_timeout: 5s, retries: 0, max_fails: 1000,
         servers: [ "127.0.0.1:$rport" ] }
routes:
  - { name: default, match: { path_prefix: / }, upstream: raw }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import os, time
from httpc import *

PORT = int(os.environ["PORT"])

def upstream_conn_of(path):
    """The raw upstream's connection number that carried the last <path>."""
    n = None
    for line in open(os.environ["RAWLOG"]):
        f = line.split()
        if len(f) == 3 and f[0] == "conn" and f[2] == path:
            n = int(f[1])
    return n

def get(c, path, method="GET"):
    c.send(request(method, path))
    return c.response(head_request=(method == "HEAD"))

# warm a pooled upstream connection
c = Conn(PORT)
r = get(c, "/ok")
check(r.status == 200 and r.body == b"ok\n", "plain answer", b"ok\n", r)

# a body after a HEAD answer, then a body after a 204: proper answers, and
# the next request on the same client connection is clean
for path, method, status in (("/head-body", "HEAD", 200), ("/nocontent-body", "GET", 204)):
    r = get(c, path, method)
    check(r.status == status and r.body == b"", "%s %s: no body" % (method, path), status, r)
    r = get(c, "/ok")
    check(r.status == 200 and r.body == b"ok\n",
          "the request after %s %s sees none of its extra bytes" % (method, path), b"ok\n", r)
    check(upstream_conn_of("/ok") != upstream_conn_of(path),
          "the upstream connection that sent extra bytes was not reused after %s" % path,
          "another connection", upstream_conn_of("/ok"))
c.close()

# bytes after a complete answer (a smuggled response) never reach the next client
for i in range(5):
    a = Conn(PORT)
    r = get(a, "/extra")
    check(r.status == 200 and r.body == b"ok\n", "/extra: the proper answer", b"ok\n", r)
    a.close()
    b = Conn(PORT)
    r = get(b, "/ok")
    check(r.status == 200 and r.body == b"ok\n" and b"SMUGGLED" not in r.body,
          "the next client after /extra", b"ok\n", r)
    b.close()
    check(upstream_conn_of("/ok") != upstream_conn_of("/extra"),
          "the connection with bytes after its answer was discarded",
          "another connection", upstream_conn_of("/ok"))

# malformed answers: 502, nothing of the upstream's bytes
for path in ("/cl-te", "/bad-status", "/bad-header", "/two-cl"):
    c = Conn(PORT)
    r = get(c, path)
    check(r.status == 502, "%s gives 502" % path, 502, r)
    check(b"ok" not in r.body, "%s: none of the upstream's body" % path, "no 'ok'", r.body)
    c.close()

# an answer cut short: the client connection is cut, the answer never completes
c = Conn(PORT)
c.send(request("GET", "/cut"))
try:
    r = c.response()
    fail("a cut-short answer must not complete", "connection cut", r)
except (EOFError, ConnectionResetError):
    pass
c.close()

# and all is well afterwards
c = Conn(PORT)
r = get(c, "/ok")
check(r.status == 200 and r.body == b"ok\n", "a plain answer at the end", b"ok\n", r)
c.close()
EOF

log "ok"
