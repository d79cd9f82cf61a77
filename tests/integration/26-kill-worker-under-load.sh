#!/usr/bin/env bash
# 26-kill-worker-under-load: twenty clients, each opening a NEW connection
# per request, run while one of the two workers is killed with SIGKILL.
# Asserts:
#   - a replacement worker (a new child of the master) listens, as
#     "ss -ltnp" shows, at most 1.0 s after the kill; measured by polling
#     every 10 ms, with 0.5 s allowed for the polling itself: <= 1500 ms;
#   - the replacement serves: its slot in the stats segment counts
#     requests, and a GET /ping on a new connection answers 200, both
#     within 1500 ms of the kill;
#   - the killed pid is gone, the other worker is untouched, and the two
#     workers own the two LISTEN sockets;
#   - the only failed requests are those that were on the killed worker
#     when it died: all of them started within 1 s of the kill, and at
#     most two per client: the request it had in flight there, and the
#     retry it may have connected in the moment before the kernel closed
#     the dead worker's listening socket (a socket in a reuseport group
#     takes connections until its process is torn down, so one landing in
#     that queue is also "on the killed worker"); every failure is
#     classified and printed;
#   - after the respawn the load goes on without a failure.
. "$(dirname "$0")/lib.sh"
EXPECT_WORKER_EXITS=1      # the kill -9 below is the point of this test

LOADGEN="$LIB_DIR/loadgen.py"
CLIENTS=20
LIMIT_MS=1500              # 1.0 s, plus polling granularity

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
name: t
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 16, connect_timeout: 2s, read_timeout: 10s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT, got $(count_listeners "$PORT")"

# shellcheck disable=SC2046   # one pid per word
set -- $(worker_pids)
[ "$#" = 2 ] || fail "expected 2 workers, got: $*"
victim=$1
other=$2
is_ours corral "$victim" || fail "worker $victim is not corral"

# --- load ------------------------------------------------------------------
# At most 60 s (and 1,000,000 requests); stops when load.stop appears.
python3 "$LOADGEN" load --port "$PORT" --clients "$CLIENTS" --paths /ping,/status/200 \
    --duration 60 --max-requests 1000000 --timeout 10 --stop-file "$TEST_DIR/load.stop" \
    --progress "$TEST_DIR/load.progress" --report "$TEST_DIR/load.json" \
    > load.txt 2>&1 < /dev/null &
load_pid=$!
record client "$load_pid"

load_ok() { sed -n 's/^ok=\([0-9]*\).*/\1/p' "$TEST_DIR/load.progress" 2>/dev/null; }
_load_running() { [ "$(load_ok)" -ge 300 ] 2>/dev/null; }
wait_for 20 _load_running || fail "the load does not get going: $(cat load.txt load.progress 2>/dev/null)"
_both_serve() {
    [ "$(python3 "$LOADGEN" slots "$CORRAL_NAME" | awk '$4 > 0' | wc -l)" -ge 2 ]
}
wait_for 10 _both_serve || fail "both workers should serve the load first: $(python3 "$LOADGEN" slots "$CORRAL_NAME")"
log "load running: $(cat load.progress); workers $victim (victim) and $other"

# --- kill -9 ------------------------------------------------------------------
out=$(python3 "$LOADGEN" respawn-watch --master "$CORRAL_PID" --name "$CORRAL_NAME" \
      --port "$PORT" --victim "$victim" --signal KILL --limit 15)
watch_rc=$?
log "after kill -9 of $victim: $out"
new=$(echo "$out" | sed -n 's/^new=\([0-9]*\).*/\1/p')
[ -n "$new" ] && record worker "$new"
[ "$watch_rc" = 0 ] || fail "the replacement was not seen in full within 15 s of the kill: $out
$(grep -E "$victim|respawn|started" "$CORRAL_LOG" | tail -n 5)"
field() { echo "$out" | sed -n "s/.* $1=\\(-*[0-9]*\\).*/\\1/p"; }
t_kill=$(field t_sig)
listen_ms=$(field listen_ms)
served_ms=$(field served_ms)
e2e_ms=$(field e2e_ms)
[ "$listen_ms" -le "$LIMIT_MS" ] ||
    fail "kill -9 to a new worker listening: $listen_ms ms, expected <= 1000 ms (+$((LIMIT_MS - 1000)) ms polling slack)
$(grep -E "$victim|respawn|worker [0-9] started" "$CORRAL_LOG" | tail -n 5)"
[ "$served_ms" -le "$LIMIT_MS" ] ||
    fail "kill -9 to the new worker counting a request: $served_ms ms, expected <= $LIMIT_MS ms"
[ "$e2e_ms" -le "$LIMIT_MS" ] ||
    fail "kill -9 to GET /ping answered after the new worker listens: $e2e_ms ms, expected <= $LIMIT_MS ms"

alive "$victim" && fail "the killed worker $victim is still alive"
alive "$other" || fail "the other worker $other died"
assert_ne "$victim" "$new" "the replacement has a new pid"
assert_eq "$(printf '%s\n' "$other" "$new" | sort -n | paste -sd' ')" "$(worker_pids | paste -sd' ')" \
    "the master's children after the respawn"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets after the respawn, got $(count_listeners "$PORT")"
assert_eq "$(worker_pids | paste -sd' ')" "$(listen_pids "$PORT" | sort -n | paste -sd' ')" \
    "LISTEN socket owners after the respawn"
grep -q "pid $victim" "$CORRAL_LOG" || fail "the master logged nothing about worker $victim"

# the load goes on for a while (and must meet no failure from here on)
t_after=$(now_ms)
ok_after=$(load_ok)
_more_load() { [ "$(load_ok)" -ge $((ok_after + 1000)) ] && [ "$(now_ms)" -ge $((t_after + 1000)) ]; }
wait_for 30 _more_load || fail "the load stalls after the respawn: $(cat load.progress)"

touch load.stop
_load_done() { ! alive "$load_pid"; }
wait_for 30 _load_done || fail "the load generator did not stop within 30 s"
wait "$load_pid"
load_rc=$?
result=$(tail -n 1 load.txt)
log "load: $result; $(grep '^kinds' load.txt)"
grep '^error' load.txt >&2
assert_eq 0 "$load_rc" "load generator exit status ($(tail -n 3 load.txt))"
grep -q '^stuck' load.txt && fail "load clients stuck: $(grep '^stuck' load.txt)"

# --- verdict: failures only for what the killed worker had ---------------------
python3 - "$TEST_DIR/load.json" "$t_kill" "$t_after" "$CLIENTS" <<'EOF' || exit 1
import bisect, json, sys
rep = json.load(open(sys.argv[1]))
t_kill, t_after, clients = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fails = rep["failures"]
print("failed requests: %d (%s); ok: %d" % (len(fails), " ".join(
    "%s=%d" % kv for kv in sorted(rep["kinds"].items()) if kv[1]) or "none", rep["ok"]))
bad = []
if len(fails) > 2 * clients:
    bad.append("%d failed requests, more than two for each of the %d clients"
               % (len(fails), clients))
late = [f for f in fails if f["start_ms"] > t_kill + 1000]
if late:
    bad.append("%d failed requests started more than 1 s after the kill, so were never on "
               "the killed worker; first: %r" % (len(late), late[0]))
per_client = {}
for f in fails:
    per_client[f["client"]] = per_client.get(f["client"], 0) + 1
twice = dict((c, n) for c, n in per_client.items() if n > 1)
if twice:
    print("clients with more than one failed request: %r" % twice)
thrice = dict((c, n) for c, n in per_client.items() if n > 2)
if thrice:
    bad.append("clients with more than two failed requests (one in flight, one in the "
               "dying queue): %r" % thrice)
after = [f for f in fails if f["start_ms"] >= t_after]
if after:
    bad.append("%d failures after the respawn; first: %r" % (len(after), after[0]))
ends = sorted(rep["ok_end_ms"])
during = bisect.bisect_left(ends, t_kill + 1500) - bisect.bisect_left(ends, t_kill)
print("requests answered within 1.5 s of the kill: %d" % during)
if during == 0:
    bad.append("no request answered within 1.5 s of the kill: the other worker did not go on")
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

log "ok"
