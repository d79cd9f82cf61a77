#!/usr/bin/env bash
# 34-websocket: Upgrade requests are tunnelled after a 101.
#   - a WebSocket echo through corral: the handshake reaches the backend with
#     Upgrade and Connection: upgrade, the client gets the backend's 101 with
#     its Sec-WebSocket-Accept, a frame the backend sends in the same packet
#     as its 101, 100 echoed text frames and a 1 MiB binary frame (more than
#     the tunnel buffers, so backpressure is exercised), then the close
#     handshake and EOF;
#   - corralctl counts the upgrade, and no tunnel is left open after;
#   - a tunnel with no traffic is closed after the upstream read_timeout;
#   - a backend that answers an Upgrade request with a 200 gives a plain
#     answer on a connection that carries on as HTTP;
#   - Upgrade without "upgrade" in Connection is a plain request: the
#     backend never sees the Upgrade header.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ctl-lib.sh"

cat > "$TEST_DIR/wsback.py" <<'EOF'
"""WebSocket echo backend (RFC 6455, just enough), one thread a conn."""
import base64, hashlib, socket, struct, sys, threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()

def recv_exact(c, n, buf):
    while len(buf) < n:
        d = c.recv(262144)
        if not d:
            raise EOFError
        buf += d
    return buf[:n], buf[n:]

def frame(op, payload):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | op, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | op, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | op, 127, n)
    return head + payload

def read_head(c, buf):
    """One request head: (path, headers, rest of buf), or None at EOF."""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    path = lines[0].split(" ")[1]
    log("request %s upgrade=%s connection=%s" % (
        path, hdrs.get("upgrade", "-"), hdrs.get("connection", "-")))
    return path, hdrs, buf

def serve(c):
    buf = b""
    try:
        while True:
            r = read_head(c, buf)
            if r is None:
                return
            path, hdrs, buf = r
            if path == "/ws":
                break
            # plain requests, one after another on this connection
            body = b"plain " + path.encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        key = hdrs["sec-websocket-key"].encode()
        acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
        # the 101 and a first frame in one write: corral must pass both
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n"
                  b"X-Backend: ws\r\n\r\n" + frame(1, b"hello"))
        while True:
            h, buf = recv_exact(c, 2, buf)
            op, n = h[0] & 0x0F, h[1] & 0x7F
            if n == 126:
                x, buf = recv_exact(c, 2, buf)
                n = struct.unpack("!H", x)[0]
            elif n == 127:
                x, buf = recv_exact(c, 8, buf)
                n = struct.unpack("!Q", x)[0]
            mask, buf = recv_exact(c, 4, buf)
            data, buf = recv_exact(c, n, buf)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if n < 4096 else \
                (int.from_bytes(data, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")
                 ).to_bytes(n, "big")
            if op == 8:
                c.sendall(frame(8, data))
                log("close")
                return
            c.sendall(frame(op, data))
    except (OSError, EOFError):
        pass
    finally:
        c.close()

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
log("ws listening on 127.0.0.1:%d" % ls.getsockname()[1])
while True:
    conn, _ = ls.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
EOF

wport=$(start_script_backend ws "$TEST_DIR/wsback.py") || exit 1
PORT=$(free_port)
WSLOG=$TEST_DIR/backend-ws.log
export PORT WSLOG

cat > corral.yaml <<EOF
name: t
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  ws: { keepalive: 8, read_timeout: 2s, servers: [ "127.0.0.1:$wport" ] }
routes:
  - { name: default, match: { path_prefix: / }, upstream: ws }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import base64, hashlib, os, socket, struct, time

PORT = int(os.environ["PORT"])
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

def check(ok, what, want, got):
    if not ok:
        raise SystemExit("FAIL: %s: want %r, got %r" % (what, want, got))
    print("ok: " + what)

class WS:
    def __init__(self, path="/ws"):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
        self.key = base64.b64encode(os.urandom(16))
        self.s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: ws.test\r\n"
                       b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                       b"Sec-WebSocket-Key: " + self.key + b"\r\n"
                       b"Sec-WebSocket-Version: 13\r\n\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise SystemExit("FAIL: EOF before the 101")
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")

    def need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(262144)
            if not d:
                raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, op, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | op, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
        masked = (int.from_bytes(payload, "big") ^
                  int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big") if n else b""
        self.s.sendall(head + mask + masked)

    def recv(self):
        h = self.need(2)
        op, n = h[0] & 0x0F, h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.need(8))[0]
        return op, self.need(n)

# 1. the handshake and the frame sent with the 101
w = WS()
status = w.head.split("\r\n")[0]
hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
        for l in w.head.split("\r\n")[1:]}
want_acc = base64.b64encode(hashlib.sha1(w.key + GUID).digest()).decode()
check(status.startswith("HTTP/1.1 101"), "101 from the backend", "HTTP/1.1 101", status)
check(hdrs.get("sec-websocket-accept") == want_acc, "Sec-WebSocket-Accept passed on",
      want_acc, hdrs.get("sec-websocket-accept"))
check(hdrs.get("upgrade", "").lower() == "websocket", "Upgrade: websocket", "websocket",
      hdrs.get("upgrade"))
check("upgrade" in hdrs.get("connection", "").lower(), "Connection: upgrade", "upgrade",
      hdrs.get("connection"))
check(hdrs.get("x-backend") == "ws", "end-to-end headers of the 101 kept", "ws",
      hdrs.get("x-backend"))
check("content-length" not in hdrs and "transfer-encoding" not in hdrs,
      "no framing headers on a 101", "none", hdrs)
op, data = w.recv()
check((op, data) == (1, b"hello"), "the frame sent with the 101", (1, b"hello"), (op, data))

# 2. echoes, small then one bigger than every buffer on the way
for i in range(100):
    msg = b"msg-%d" % i
    w.send(1, msg)
    op, data = w.recv()
    if (op, data) != (1, msg):
        check(False, "echo %d" % i, (1, msg), (op, data))
print("ok: 100 text frames echoed in order")
big = os.urandom(1 << 20)
w.send(2, big)
op, data = w.recv()
check(op == 2 and data == big, "a 1 MiB binary frame echoed intact", len(big), len(data))

# 3. the close handshake, then EOF from corral
w.send(8, struct.pack("!H", 1000))
op, data = w.recv()
check(op == 8, "close frame echoed", 8, op)
w.s.settimeout(10)
try:
    rest = w.s.recv(100)
except socket.timeout:
    rest = b"timeout"
check(rest == b"", "EOF after the backend closed", b"", rest)
w.s.close()

# 4. a silent tunnel is closed after read_timeout (2 s)
w = WS()
check(w.head.startswith("HTTP/1.1 101"), "second tunnel", "101", w.head[:20])
op, data = w.recv()
t0 = time.time()
w.s.settimeout(15)
try:
    rest = w.s.recv(100)
except socket.timeout:
    rest = b"timeout"
took = time.time() - t0
check(rest == b"" and 1.5 < took < 12, "an idle tunnel closed after read_timeout",
      "EOF after about 2 s", (rest, round(took, 1)))
w.s.close()

# 5. the backend answers 200 to an Upgrade request: a plain answer, and the
# connection carries on as HTTP
w = WS("/plain")
check(w.head.startswith("HTTP/1.1 200"), "a 200 to an Upgrade request", "200", w.head[:20])
body = w.need(len(b"plain /plain"))
check(body == b"plain /plain", "its body", b"plain /plain", body)
w.s.sendall(b"GET /after HTTP/1.1\r\nHost: ws.test\r\n\r\n")
while b"plain /after" not in w.buf:
    d = w.s.recv(65536)
    if not d:
        break
    w.buf += d
check(b"plain /after" in w.buf, "the next request on that connection", b"plain /after", w.buf)
w.s.close()

# 6. Upgrade without Connection: upgrade is a plain request
s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
s.sendall(b"GET /noconn HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
          b"Connection: close\r\n\r\n")
d = b""
while True:
    x = s.recv(65536)
    if not x:
        break
    d += x
check(d.startswith(b"HTTP/1.1 200") and d.endswith(b"plain /noconn"),
      "Upgrade without Connection: upgrade answered plainly", b"200 plain /noconn", d[-40:])
s.close()
log = open(os.environ["WSLOG"]).read()
check("request /ws upgrade=websocket connection=upgrade" in log,
      "the backend saw Upgrade: websocket and Connection: upgrade", "logged", log[-300:])
check("request /noconn upgrade=- " in log, "no Upgrade header for a plain request",
      "upgrade=-", [l for l in log.splitlines() if "/noconn" in l])
EOF

# the shared counters: three 101s (the echo, the idle one, none for /plain),
# and no tunnel left open
_tunnels_gone() {
    ctl_ok status --json --interval 0
    printf '%s' "$CTL_OUT" > "$TEST_DIR/st.json"
    [ "$(json_get "$TEST_DIR/st.json" totals.counters.tunnels_active)" = 0 ]
}
wait_for 10 _tunnels_gone || fail "tunnels_active did not go back to 0"
assert_eq "$(json_get "$TEST_DIR/st.json" totals.counters.upgrades_total)" 2 "upgrades_total"
log "corralctl: upgrades_total 2, tunnels_active 0"
check_logs
echo "PASS"
