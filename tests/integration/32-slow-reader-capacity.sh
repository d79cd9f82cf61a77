#!/usr/bin/env bash
# 32-slow-reader-capacity: a client that stops reading a large response is
# cut off after send_timeout without corral buffering the response; a
# worker at max_connections answers new connections 503 and closes them,
# counted in shm, and serves again once connections go away.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
name: t
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
limits: { send_timeout: 2s, max_connections: 6, idle_timeout: 60s }
upstreams:
  app: { read_timeout: 30s, servers: [ "127.0.0.1:$bport" ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
WORKER=$(worker_pids "$CORRAL_PID" | head -1)
[ -n "$WORKER" ] || fail "no worker pid"
export WORKER

py <<'EOF' || exit 1
import os, socket, time
from httpc import *

PORT = int(os.environ["PORT"])
WORKER = int(os.environ["WORKER"])

def rss_kb():
    for line in open("/proc/%d/status" % WORKER):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    fail("no VmRSS for the worker")

# -- slow reader ----------------------------------------------------------
import subprocess

def established(cport):
    """Is corral's side of the connection from client port <cport> still open?"""
    out = subprocess.run(["ss", "-tnH", "state", "established",
                          "( sport = :%d and dport = :%d )" % (PORT, cport)],
                         capture_output=True, text=True).stdout
    return out.strip() != ""

before = rss_kb()
s = socket.create_connection(("127.0.0.1", PORT))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
cport = s.getsockname()[1]
s.sendall(b"GET /bytes?n=268435456 HTTP/1.1\r\nHost: t\r\n\r\n")
s.recv(1024)                            # the head arrives; from now on we never read
check(established(cport), "the slow reader's connection is open at first")
peak = before
t0 = time.monotonic()
closed_after = None
while time.monotonic() - t0 < 30:
    peak = max(peak, rss_kb())
    # another client is served meanwhile
    c = Conn(PORT, timeout=5)
    c.send(request("GET", "/ping", headers=[("Connection", "close")]))
    r = c.response()
    c.close()
    check(r.status == 200, "a normal client while another one does not read", 200, r)
    if not established(cport):
        closed_after = time.monotonic() - t0
        break
    time.sleep(0.2)
s.close()
print("slow reader cut off after %s s; worker RSS %d kB -> peak %d kB"
      % ("%.1f" % closed_after if closed_after else "-", before, peak))
check(closed_after is not None, "send_timeout cut the slow reader off", "closed", "still open")
check(peak - before < 32 * 1024, "the 256 MiB response was not buffered (RSS growth)",
      "< 32768 kB", peak - before)

# -- max_connections ----------------------------------------------------------
held = []
for i in range(6):
    h = socket.create_connection(("127.0.0.1", PORT))
    held.append(h)
time.sleep(0.3)                         # the worker has accepted all six
c = Conn(PORT, timeout=5)
r = c.response()
check(r.status == 503, "a connection over max_connections", 503, r)
check(c.closed_within(5), "the refused connection is closed")
c.close()
for h in held:
    h.close()
# once connections go away, new ones are served again
ok = False
for i in range(50):
    c = Conn(PORT, timeout=5)
    c.send(request("GET", "/ping", headers=[("Connection", "close")]))
    r = c.response()
    c.close()
    if r.status == 200:
        ok = True
        break
    time.sleep(0.1)
check(ok, "served again below max_connections", 200, r)
EOF

# the refusal is counted in shm
rejected=$("$CORRALCTL" -n "$CORRAL_NAME" status --json --interval 0 | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["totals"]["counters"]["connections_rejected_total"])')
log "connections_rejected_total: $rejected"
[ "$rejected" -ge 1 ] || fail "connections_rejected_total should count the 503, got $rejected"

log "ok"
