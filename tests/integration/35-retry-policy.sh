#!/usr/bin/env bash
# 35-retry-policy: retry_on, try_timeout and the retry budget.
#   - a server that answers 503 to everything, next to a good one:
#     with retry_on 503 (and a budget that lets every retry through, since
#     half the requests fail here) every GET is answered 200 by the good one; with the
#     default retry_on the 503s reach the client; a POST with a body is
#     never sent twice (the 503s it gets reach the client);
#   - a server that takes 3 s, next to a fast one: try_timeout 300ms with
#     504 in retry_on gives 200s from the fast one, each well under 3 s;
#     without 504 in retry_on the slow server's requests get 504 after
#     about try_timeout;
#   - retry budget { percent: 0, min_per_second: 2 } in front of two failing
#     servers: a burst of requests gets at most two retries a second, the
#     rest are refused and counted as upstream_retries_denied_total.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ctl-lib.sh"

good=$(start_backend good)

cat > "$TEST_DIR/fixed.py" <<'EOF'
"""Answers every request the same way: status argv[2] after argv[3] ms."""
import socket, sys, threading, time

NAME, STATUS, DELAY = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) / 1000.0

def serve(c):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            n = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    n = int(v)
            while len(buf) < n:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            buf = buf[n:]
            sys.stderr.write("%s %s\n" % (NAME, head.split(b" ")[1].decode()))
            sys.stderr.flush()
            time.sleep(DELAY)
            body = b"%s %d\n" % (NAME.encode(), STATUS)
            c.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (STATUS, len(body), body))
    except OSError:
        pass
    finally:
        c.close()

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
sys.stderr.write("%s listening on 127.0.0.1:%d\n" % (NAME, ls.getsockname()[1]))
sys.stderr.flush()
while True:
    conn, _ = ls.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
EOF
# start_script_backend runs the script without arguments: wrap each one
for spec in "bad 503 0" "bad2 503 0" "slow 200 3000"; do
    set -- $spec
    printf 'import runpy, sys\nsys.argv = ["fixed.py", "%s", "%s", "%s"]\nrunpy.run_path("%s", run_name="__main__")\n' \
        "$1" "$2" "$3" "$TEST_DIR/fixed.py" > "$TEST_DIR/$1.py"
done
bad=$(start_script_backend bad "$TEST_DIR/bad.py") || exit 1
bad2=$(start_script_backend bad2 "$TEST_DIR/bad2.py") || exit 1
slow=$(start_script_backend slow "$TEST_DIR/slow.py") || exit 1
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
name: t
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  on503:   { retries: 1, retry_on: [connect_failure, reset, 503], keepalive: 0,
             retry_budget: { percent: 100, min_per_second: 1000 },
             servers: [ "127.0.0.1:$bad", "127.0.0.1:$good" ] }
  plain:   { retries: 1, keepalive: 0,
             servers: [ "127.0.0.1:$bad", "127.0.0.1:$good" ] }
  try504:  { retries: 1, retry_on: [connect_failure, reset, 504], try_timeout: 300ms,
             retry_budget: { percent: 100, min_per_second: 1000 },
             read_timeout: 10s, servers: [ "127.0.0.1:$slow", "127.0.0.1:$good" ] }
  try:     { retries: 1, try_timeout: 300ms, read_timeout: 10s,
             servers: [ "127.0.0.1:$slow", "127.0.0.1:$good" ] }
  budget:  { retries: 1, retry_on: [503], retry_budget: { percent: 0, min_per_second: 2 },
             keepalive: 0, servers: [ "127.0.0.1:$bad", "127.0.0.1:$bad2" ] }
routes:
  - { match: { path_prefix: /on503/ }, upstream: on503, strip_prefix: /on503 }
  - { match: { path_prefix: /plain/ }, upstream: plain, strip_prefix: /plain }
  - { match: { path_prefix: /try504/ }, upstream: try504, strip_prefix: /try504 }
  - { match: { path_prefix: /try/ }, upstream: try, strip_prefix: /try }
  - { match: { path_prefix: /budget/ }, upstream: budget, strip_prefix: /budget }
EOF
start_corral corral.yaml
counter() {
    ctl_ok status --json --interval 0
    printf '%s' "$CTL_OUT" > "$TEST_DIR/st.json"
    json_get "$TEST_DIR/st.json" "totals.counters.$1"
}
retries0=$(counter upstream_retries_total)
denied0=$(counter upstream_retries_denied_total)

py <<'EOF' || exit 1
import os, time
from httpc import *

def run(method, path, body=b""):
    c = Conn(timeout=20)
    t0 = time.time()
    hdrs = [("Content-Type", "text/plain")] if body else []
    c.send(request(method, path, headers=hdrs, body=body))
    r = c.response()
    c.close()
    return r.status, r.body, time.time() - t0

got = [run("GET", "/on503/x%d" % i) for i in range(20)]
check(all(s == 200 for s, b, t in got), "retry_on 503: every GET answered 200",
      "20 x 200", [s for s, b, t in got])

got = [run("GET", "/plain/x%d" % i) for i in range(20)]
codes = [s for s, b, t in got]
check(codes.count(503) >= 5 and codes.count(200) >= 5,
      "default retry_on: the failing server's 503s reach the client", "both 200 and 503", codes)

got = [run("POST", "/on503/p%d" % i, b"payload") for i in range(10)]
codes = [s for s, b, t in got]
check(codes.count(503) >= 2, "a POST with a body is never sent twice", "some 503", codes)

got = [run("GET", "/try504/t%d" % i) for i in range(6)]
check(all(s == 200 for s, b, t in got) and max(t for s, b, t in got) < 2.5,
      "try_timeout + 504 in retry_on: 200s well under the slow server's 3 s",
      "6 x 200 under 2.5 s", [(s, round(t, 2)) for s, b, t in got])

got = [run("GET", "/try/t%d" % i) for i in range(6)]
slow = [(s, t) for s, b, t in got if s == 504]
check(len(slow) >= 2 and all(0.2 < t < 2.5 for s, t in slow),
      "try_timeout without 504 in retry_on: 504 after about 300 ms",
      ">= 2 x 504 in 0.2-2.5 s", [(s, round(t, 2)) for s, b, t in got])
EOF

# the budget: 12 requests in a burst against two failing servers
py > "$TEST_DIR/burst" <<'EOF' || exit 1
import time
from httpc import *
codes = []
t0 = time.monotonic()
for i in range(12):
    c = Conn(timeout=20)
    c.send(request("GET", "/budget/b%d" % i))
    codes.append(c.response().status)
    c.close()
check(all(s == 503 for s in codes), "the budget pool answers 503", "12 x 503", codes)
print("burst_ms %d" % ((time.monotonic() - t0) * 1000))
EOF
burst_ms=$(sed -n 's/^burst_ms //p' "$TEST_DIR/burst")
retries1=$(counter upstream_retries_total)
denied1=$(counter upstream_retries_denied_total)
budget_retries=$(( retries1 - retries0 ))
denied=$(( denied1 - denied0 ))
log "retries in all: $budget_retries; refused by the budget: $denied"
[ "$denied" -ge 1 ] || fail "the retry budget refused none of 12 failing requests"
# each budget request reached one server; the ones the budget let through
# reached the other server too (retries: 1). The requests are the only
# lines of the two logs that start with "NAME /b" (not "NAME listening").
b2=$(grep -c '^bad2 /b' "$(backend_log bad2)" || true)
bb=$(grep -c '^bad /b' "$(backend_log bad)" || true)
tries=$(( b2 + bb ))
allowed=$(( 12 - denied ))
log "budget pool: $tries tries for 12 requests in $burst_ms ms"
[ "$tries" -eq $(( 12 + allowed )) ] \
    || fail "budget pool: $tries tries, but 12 requests and $allowed retries let through"
# min_per_second: 2 lets 2 retries through in each second the burst touched
# (a burst of d ms touches at most d/1000 + 2 of them)
windows=$(( burst_ms / 1000 + 2 ))
[ "$allowed" -le $(( 2 * windows )) ] \
    || fail "budget pool: $allowed retries in a $burst_ms ms burst (at most $((2 * windows)))"
check_logs
echo "PASS"
