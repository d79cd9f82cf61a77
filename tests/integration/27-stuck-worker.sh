#!/usr/bin/env bash
# 27-stuck-worker: twenty clients, each opening a NEW connection per
# request, run while one of the two workers is frozen with SIGSTOP (its
# event loop stops turning, so its heartbeat in the stats segment goes
# stale). Asserts, all within 10 s of the SIGSTOP:
#   - the master logs "no heartbeat" for that worker's pid and kills it;
#   - the stopped pid is gone (not a process, not a zombie, not a child);
#   - a new worker pid appears among the master's children, listens (as
#     "ss -ltnp" shows) and serves (its slot counts requests, and a GET
#     /ping on a new connection answers 200);
# and that the other worker is untouched. While the worker is stopped, new
# connections may wait in its accept queue and fail when it is killed, so
# failures then are only printed; but from the moment the replacement
# serves, every request succeeds: no failure among requests started after
# it, over at least two more seconds of load, and a final series of
# requests all answered 200.
. "$(dirname "$0")/lib.sh"
EXPECT_WORKER_EXITS=1      # the master kills the stopped worker: expected

LOADGEN="$LIB_DIR/loadgen.py"
CLIENTS=20
LIMIT_S=10

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
# At most 60 s (and 1,000,000 requests); stops when load.stop appears. A
# request waiting in the stopped worker's queue fails when it is killed
# (reset), well before the 20 s client timeout.
python3 "$LOADGEN" load --port "$PORT" --clients "$CLIENTS" --paths /ping,/status/200 \
    --duration 60 --max-requests 1000000 --timeout 20 --stop-file "$TEST_DIR/load.stop" \
    --progress "$TEST_DIR/load.progress" --report "$TEST_DIR/load.json" \
    > load.txt 2>&1 < /dev/null &
load_pid=$!
record client "$load_pid"

load_ok() { sed -n 's/^ok=\([0-9]*\).*/\1/p' "$TEST_DIR/load.progress" 2>/dev/null; }
_load_running() { [ "$(load_ok)" -ge 300 ] 2>/dev/null; }
wait_for 20 _load_running || fail "the load does not get going: $(cat load.txt load.progress 2>/dev/null)"
log "load running: $(cat load.progress); workers $victim (victim) and $other"

# --- kill -STOP ------------------------------------------------------------------
out=$(python3 "$LOADGEN" respawn-watch --master "$CORRAL_PID" --name "$CORRAL_NAME" \
      --port "$PORT" --victim "$victim" --signal STOP --limit "$LIMIT_S")
watch_rc=$?
log "after kill -STOP of $victim: $out"
new=$(echo "$out" | sed -n 's/^new=\([0-9]*\).*/\1/p')
[ -n "$new" ] && record worker "$new"
t_stop=$(echo "$out" | sed -n 's/.* t_sig=\([0-9]*\).*/\1/p')
# should it still be stopped, let stop_all's SIGTERM reach it
alive "$victim" && is_ours corral "$victim" && kill -CONT "$victim" 2>/dev/null
[ "$watch_rc" = 0 ] || fail "within $LIMIT_S s of the SIGSTOP, not all of: stopped worker gone, new worker listening and serving ($out)
$(grep -E "$victim|heartbeat|respawn|started" "$CORRAL_LOG" | tail -n 6)"

hb=$(grep -m1 "no heartbeat" "$CORRAL_LOG")
[ -n "$hb" ] || fail "the master did not log \"no heartbeat\"; log:
$(tail -n 10 "$CORRAL_LOG")"
assert_contains "$hb" "pid $victim" "the \"no heartbeat\" line names the stopped worker"
assert_eq 1 "$(grep -c 'no heartbeat' "$CORRAL_LOG")" "\"no heartbeat\" lines (only the stopped worker)"
log "master: ${hb#* master }"
grep -q "exited unexpectedly: pid $victim, .*signal 9" "$CORRAL_LOG" ||
    fail "the master did not report worker $victim killed by signal 9: $(grep "pid $victim" "$CORRAL_LOG")"

alive "$victim" && fail "the stopped worker $victim is still there"
alive "$other" || fail "the other worker $other died"
assert_ne "$victim" "$new" "the replacement has a new pid"
assert_eq "$(printf '%s\n' "$other" "$new" | sort -n | paste -sd' ')" "$(worker_pids | paste -sd' ')" \
    "the master's children after the replacement"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets after the replacement, got $(count_listeners "$PORT")"
assert_eq "$(worker_pids | paste -sd' ')" "$(listen_pids "$PORT" | sort -n | paste -sd' ')" \
    "LISTEN socket owners after the replacement"

# --- from now on every request succeeds --------------------------------------
t_rec=$(now_ms)
ok_rec=$(load_ok)
_more_load() { [ "$(load_ok)" -ge $((ok_rec + 1000)) ] && [ "$(now_ms)" -ge $((t_rec + 2000)) ]; }
wait_for 30 _more_load || fail "the load stalls after the replacement: $(cat load.progress)"

touch load.stop
_load_done() { ! alive "$load_pid"; }
wait_for 40 _load_done || fail "the load generator did not stop within 40 s"
wait "$load_pid"
load_rc=$?
log "load: $(tail -n 1 load.txt); $(grep '^kinds' load.txt)"
grep '^error' load.txt >&2
assert_eq 0 "$load_rc" "load generator exit status ($(tail -n 3 load.txt))"
grep -q '^stuck' load.txt && fail "load clients stuck: $(grep '^stuck' load.txt)"

python3 - "$TEST_DIR/load.json" "$t_stop" "$t_rec" <<'EOF' || exit 1
import bisect, json, sys
rep = json.load(open(sys.argv[1]))
t_stop, t_rec = int(sys.argv[2]), int(sys.argv[3])
fails = rep["failures"]
before = [f for f in fails if f["end_ms"] < t_stop]
during = [f for f in fails if f["end_ms"] >= t_stop and f["start_ms"] < t_rec]
after = [f for f in fails if f["start_ms"] >= t_rec]
ends = sorted(rep["ok_end_ms"])
ok_after = len(ends) - bisect.bisect_left(ends, t_rec)
print("failed requests: %d before the SIGSTOP, %d while the worker was stuck, %d after the "
      "replacement served (kinds: %s); ok after it: %d"
      % (len(before), len(during), len(after),
         " ".join("%s=%d" % kv for kv in sorted(rep["kinds"].items()) if kv[1]) or "none",
         ok_after))
bad = []
if before:
    bad.append("%d requests failed before the SIGSTOP was sent; first: %r"
               % (len(before), before[0]))
if after:
    bad.append("%d requests started after the replacement served failed; first: %r"
               % (len(after), after[0]))
if ok_after < 1000:
    bad.append("too little load after the replacement: %d requests" % ok_after)
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

for i in $(seq 1 20); do
    assert_eq 200 "$(http_code "http://127.0.0.1:$PORT/ping")" "GET /ping #$i at the end"
    assert_eq 200 "$(http_code "http://127.0.0.1:$PORT/status/200")" "GET /status/200 #$i at the end"
done

log "ok"
