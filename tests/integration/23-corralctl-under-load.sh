#!/usr/bin/env bash
# 23-corralctl-under-load: reading while workers write at full load. Many
# back-to-back reads never see a total go backwards or a torn (absurd)
# value, and each document adds up (workers + retired = totals). Then
# kill -9 of a worker under load: 20 reads spread over the respawn never
# see a total decrease, the dead worker's counts show up in the retired
# series, and the new worker gets a row. Rates over a window are non-zero
# under load.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"
EXPECT_WORKER_EXITS=1      # the kill -9 below is the point of this test

bport=$(start_backend b1)
PORT=$(free_port)
export PORT
cat > corral.yaml <<EOF
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { connect_timeout: 1s, read_timeout: 5s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: back, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"

# load: 4 threads, a new connection per request, until load.stop appears
PORT=$PORT py "$TEST_DIR/load.stop" > load.log 2>&1 <<'EOF' &
import os, sys, threading
from httpc import *
stop = sys.argv[1]
def run(path):
    while not os.path.exists(stop):
        try:
            c = Conn(timeout=5)
            c.send(request("GET", path, headers=[("Connection", "close")]))
            c.response()
            c.close()
        except Exception:
            pass            # a request on the killed worker may fail
ts = [threading.Thread(target=run, args=(p,)) for p in ("/ping", "/ping", "/ping", "/x")]
for t in ts:
    t.start()
for t in ts:
    t.join()
EOF
load_pid=$!
record client "$load_pid"

_busy() {
    "$CORRALCTL" stats 2>/dev/null | awk '$1 == "requests_total" { exit !($2 > 500) }'
}
wait_for 20 _busy || fail "no load reached corral: $("$CORRALCTL" stats 2>&1 | head -n 3)"

# reads.py N SLEEP: N reads of status --json, routes --json and metrics,
# checked one against the next.
cat > reads.py <<'EOF'
import json, re, subprocess, sys, time
from httpc import check, fail
ctl = __import__("os").environ["CORRALCTL"]
n, pause = int(sys.argv[1]), float(sys.argv[2])
LIMIT = 10 ** 12                # a torn 64-bit value would be far past this
def run(*args):
    p = subprocess.run([ctl] + list(args), capture_output=True, text=True)
    check(p.returncode == 0, "corralctl %s" % " ".join(args), 0, (p.returncode, p.stderr))
    return p.stdout
def flat(prefix, d, out):
    for k, v in d.items():
        if isinstance(v, dict):
            flat(prefix + k + ".", v, out)
        elif isinstance(v, int) and not isinstance(v, bool):
            out[prefix + k] = v
    return out
prev = None
pids = set()
for i in range(n):
    s = json.loads(run("status", "--json", "--interval", "0"))
    r = json.loads(run("routes", "--json", "--interval", "0"))
    m = run("metrics")
    cur = flat("totals.", {k: v for k, v in s["totals"].items() if k != "counters"}, {})
    for k, v in s["totals"]["counters"].items():
        if k.endswith("_total"):
            cur["counters." + k] = v
    cur.update(flat("retired.", s["retired"]["counters"], {}))
    for rt in r["routes"]:
        cur["route.%s.requests" % rt["name"]] = rt["requests"]
        cur["route.%s.2xx" % rt["name"]] = rt["responses"]["2xx"]
    reqs = [float(v) for v in re.findall(r"^corral_requests_total\{[^}]*\} (\S+)$", m, re.M)]
    cur["metrics.requests_total"] = int(sum(reqs))
    for k, v in cur.items():
        check(0 <= v < LIMIT, "read %d: %s is a sane value" % (i, k), "< 1e12", v)
    # one document adds up: workers + retired = totals
    ws = s["workers"]
    for k in ("requests", "connections_accepted"):
        got = sum(w[k] for w in ws) + s["retired"][k]
        check(got == s["totals"][k], "read %d: workers + retired %s = totals" % (i, k),
              s["totals"][k], got)
    if prev is not None:
        for k, v in prev.items():
            if k.startswith("totals.connections_active") or k.startswith("totals.requests_active"):
                continue
            if cur.get(k, 0) < v:
                fail("read %d: %s went backwards" % (i, k), v, cur.get(k))
    prev = cur
    pids |= {w["pid"] for w in ws}
    time.sleep(pause)
print(" ".join(str(p) for p in sorted(pids)))
EOF

# -- many reads back to back at full load ---------------------------------------------
py 40 0 < reads.py > reads1.out || fail "reads at full load"

# -- kill -9 of a worker under load: 20 reads during the respawn ------------------------
# shellcheck disable=SC2046
set -- $(worker_pids)
[ "$#" = 2 ] || fail "expected 2 workers, got: $*"
victim=$1
"$CORRALCTL" status --json --interval 0 > before.json || fail "status before the kill"
log "killing worker $victim under load"
kill -KILL "$victim"
py 20 0.1 < reads.py > reads2.out || fail "reads during the respawn"

_replaced() { [ "$(worker_pids | grep -vcx "$victim")" = 2 ]; }
wait_for 10 _replaced || fail "no replacement worker; workers: $(worker_pids | paste -sd' ')"
new=$(worker_pids | grep -vx "$2")

# the victim's counts moved to the retired slot; the newcomer has a row
_in_table() {
    "$CORRALCTL" status --json --interval 0 > after.json 2>/dev/null &&
        py after.json "$new" "$victim" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
pids = [w["pid"] for w in d["workers"]]
sys.exit(0 if int(sys.argv[2]) in pids and int(sys.argv[3]) not in pids else 1)
EOF
}
wait_for 10 _in_table || fail "status after the respawn: $(cat after.json)"
victim_reqs=$(py before.json "$victim" <<'EOF'
import json, sys
print([w["requests"] for w in json.load(open(sys.argv[1]))["workers"]
       if w["pid"] == int(sys.argv[2])][0])
EOF
)
retired=$(json_get after.json retired.requests)
[ "$retired" -ge "$victim_reqs" ] ||
    fail "retired requests $retired < the victim's $victim_reqs before the kill"
"$CORRALCTL" metrics > metrics.txt || fail "metrics after the respawn"
r=$(grep '^corral_requests_total{.*worker="retired"' metrics.txt | awk '{ print $2 }')
[ "${r:-0}" -ge "$victim_reqs" ] || fail "retired series in metrics: $r < $victim_reqs"

# -- rates over a window under load --------------------------------------------------------
"$CORRALCTL" status --json --interval 0.5 > rate.json || fail "status --interval 0.5"
py rate.json <<'EOF' || exit 1
import json, sys
from httpc import check
d = json.load(open(sys.argv[1]))
check(abs(d["window_seconds"] - 0.5) < 0.3, "window_seconds", 0.5, d["window_seconds"])
check(d["rps"] > 10, "rps under load", "> 10", d["rps"])
check(any(w["rps"] > 0 for w in d["workers"]), "a worker's rps under load", "> 0", d["workers"])
EOF

touch load.stop
wait "$load_pid"
log "ok"
