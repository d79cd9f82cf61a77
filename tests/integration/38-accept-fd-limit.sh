#!/usr/bin/env bash
# 38-accept-fd-limit: a worker out of file descriptors (EMFILE on accept)
# pauses accepting instead of spinning, keeps serving what it holds, and
# takes the queued connections once descriptors are free again.
#   - one worker, its RLIMIT_NOFILE lowered to 64 (prlimit) after start;
#   - 90 idle connections: the worker accepts until EMFILE, the rest wait
#     in the kernel's queue;
#   - a connection it holds still gets answers; the log says "accept: Too
#     many open files; pausing 100 ms", at most about once a second, and
#     the worker does not burn a CPU while paused;
#   - once 60 held connections close, the queued ones are answered.
. "$(dirname "$0")/lib.sh"
need prlimit

PORT=$(free_port)
export PORT
cat > corral.yaml <<EOF
name: t
workers: 1
listen: [ { address: "127.0.0.1:$PORT", backlog: 256 } ]
limits: { idle_timeout: 60s }
routes:
  - { match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
EOF
start_corral corral.yaml
w=$(worker_pids | head -n 1)
[ -n "$w" ] || fail "no worker"
prlimit --pid "$w" --nofile=64:64 || fail "prlimit on worker $w"

py "$w" <<'EOF' || exit 1
import os, socket, sys, time
from httpc import *

wpid = int(sys.argv[1])
port = int(os.environ["PORT"])
GET = request("GET", "/ping")

def ticks(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))

conns = []
for i in range(90):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    conns.append(s)

# the worker fills its table up to the limit, then pauses (EMFILE)
deadline = time.time() + 10
while time.time() < deadline and nfds(wpid) < 60:
    time.sleep(0.05)
time.sleep(0.5)
check(60 <= nfds(wpid) <= 66, "the worker took connections up to its limit",
      "about 64 descriptors", nfds(wpid))

# the first connection was accepted: it is served while the worker is full
c = Conn()
c.s.close()
c.s = conns[0]
c.send(GET)
r = c.response()
check(r.status == 200 and r.body == b"pong\n", "a held connection is served at the limit",
      "200 pong", (r.status, r.body))

# paused, not spinning on the readable listening socket
t0 = ticks(wpid)
time.sleep(2.0)
used = ticks(wpid) - t0
hz = os.sysconf("SC_CLK_TCK")
check(used < hz // 2, "the worker is idle while accept fails", "< 0.5 s of CPU in 2 s",
      "%d ticks" % used)

# the last connection is still queued: no answer yet
last = Conn()
last.s.close()
last.s = conns[-1]
last.s.settimeout(0.5)
last.send(GET)
try:
    d = last.s.recv(100)
    fail("a queued connection is not served before fds are free", "no answer", d)
except socket.timeout:
    pass

# free 60 descriptors: the queued connections are taken and answered
for s in conns[1:61]:
    s.close()
last.s.settimeout(15)
r = last.response()
check(r.status == 200, "a queued connection is answered once fds are free", 200, r.status)
for s in conns[61:90]:
    c = Conn()
    c.s.close()
    c.s = s
    c.send(GET)
    check(c.response().status == 200, "every queued connection is answered", 200)
EOF

n=$(grep -c "accept: Too many open files; pausing 100 ms" "$CORRAL_LOG")
[ "$n" -ge 1 ] || fail "no accept error in the log"
[ "$n" -le 8 ] || fail "accept errors logged $n times: not rate-limited"
alive "$w" || fail "the worker died"
check_logs
echo "PASS"
