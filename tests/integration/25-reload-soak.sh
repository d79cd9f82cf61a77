#!/usr/bin/env bash
# 25-reload-soak: a hundred clients, each opening a NEW connection per
# request (a respond route, a proxied route and /version), run while the
# master is sent SIGHUP fifty times in a row. Each reload rewrites the file
# so that /version answers the reload's number, and is waited for before
# the next: the stats segment's generation goes up by one and the master
# has two new worker pids. Asserts:
#   - the master logged "reload mechanism: bpf" (the tests run as root: any
#     other mechanism is a failure, not a skip);
#   - after each reload /version answers the new number within 2 s of the
#     SIGHUP, and no /version request made once the new generation is
#     serving gets the old answer;
#   - zero failed requests over the whole run, every failure classified
#     (refused, reset, EOF before the response, timeout, non-2xx) and
#     printed;
#   - the load really ran across every reload (requests completed between
#     each SIGHUP and the next), and at the end only the last generation's
#     two workers are left, with 50 successful reloads counted.
. "$(dirname "$0")/lib.sh"

LOADGEN="$LIB_DIR/loadgen.py"
RELOADS=50
CLIENTS=100

bport=$(start_backend b1)
PORT=$(free_port)
export PORT
CONF="$TEST_DIR/corral.yaml"

cat > "$CONF" <<EOF
name: t
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { keepalive: 16, connect_timeout: 2s, read_timeout: 10s, servers: [ { address: "127.0.0.1:$bport" } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: version, match: { path: /version }, respond: { status: 200, body: "version 0\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral "$CONF"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT, got $(count_listeners "$PORT")"

# --- the reload mechanism --------------------------------------------------
mech=$(grep -m1 'reload mechanism:' "$CORRAL_LOG")
[ -n "$mech" ] || fail "the master did not log its reload mechanism at start"
case "$mech" in
    *"reload mechanism: bpf"*) ;;
    *) fail "reload mechanism is not bpf (running as uid $(id -u)); the master logged:
$mech" ;;
esac
seg_mech=$(python3 "$LOADGEN" header "$CORRAL_NAME" | sed -n 's/^mechanism=//p')
assert_eq bpf "$seg_mech" "reload mechanism in the stats segment header"

gen0=$(python3 "$LOADGEN" header "$CORRAL_NAME" | sed -n 's/^generation=//p')
[ -n "$gen0" ] || fail "cannot read the generation from /dev/shm/corral.$CORRAL_NAME"
seen=" $(worker_pids | paste -sd' ') "
log "generation $gen0, workers:$seen mechanism: $seg_mech"

# --- load ------------------------------------------------------------------
# At most 140 s (and 3,000,000 requests); stops when load.stop appears.
python3 "$LOADGEN" load --port "$PORT" --clients "$CLIENTS" \
    --paths /ping,/status/200,/version --duration 140 --max-requests 3000000 \
    --timeout 10 --stop-file "$TEST_DIR/load.stop" --progress "$TEST_DIR/load.progress" \
    --report "$TEST_DIR/load.json" > load.txt 2>&1 < /dev/null &
load_pid=$!
record client "$load_pid"

load_ok() { sed -n 's/^ok=\([0-9]*\).*/\1/p' "$TEST_DIR/load.progress" 2>/dev/null; }
_load_running() { [ "$(load_ok)" -ge 300 ] 2>/dev/null; }
wait_for 20 _load_running || fail "the load does not get going: $(cat load.txt load.progress 2>/dev/null)"
log "load running: $(cat load.progress)"

# --- fifty reloads ----------------------------------------------------------
# One process runs them (loadgen.py reloads), so the times it measures from
# each SIGHUP hold no process start-up: reload i writes the file from the
# template with /version answering "version i", sends SIGHUP, waits for
# generation + 1 in the segment, two new children of the master and
# /version answering "version i" (2 s at most after the SIGHUP), then lets
# the load run 0.3 s on the new generation.
sed -e "s/^name:.*/name: $CORRAL_NAME/" -e 's/"version 0\\n"/"version @N@\\n"/' "$CONF" > conf.template
grep -q 'version @N@' conf.template || fail "cannot make the config template: $(cat conf.template)"
python3 "$LOADGEN" reloads --master "$CORRAL_PID" --name "$CORRAL_NAME" --port "$PORT" \
    --conf "$CONF" --template conf.template --count "$RELOADS" --known "$seen" \
    --workers 2 --pause 0.3 --limit 20 --version-limit 2 --log reloads.txt \
    > reloads.out 2>&1 < /dev/null &
reloads_pid=$!
record client "$reloads_pid"
_reloads_done() { ! alive "$reloads_pid"; }
wait_for 150 _reloads_done || fail "the $RELOADS reloads did not end within 150 s ($(tail -n 1 reloads.out))"
wait "$reloads_pid"
reloads_rc=$?
t_end=$(now_ms)
while read -r line; do log "$line"; done < reloads.out
# workers of every generation, for stop_all should the test fail
for p in $(sed -n 's/.* new=\([0-9,]*\).*/\1/p' reloads.txt | tr ',' ' '); do
    record worker "$p"
done
if [ "$reloads_rc" != 0 ]; then
    fail "$(grep '^FAIL' reloads.out | sed 's/^FAIL: //')
$(grep -E 'reload|generation|exited' "$CORRAL_LOG" | tail -n 8)
load so far: $(cat load.progress)"
fi
assert_eq "$RELOADS" "$(grep -c '^reload ' reloads.txt)" "reloads done"
stale_total=$(sed -n 's/.* stale=\([0-9]*\).*/\1/p' reloads.txt | awk '{ n += $1 } END { print n + 0 }')
max_version_ms=$(sed -n 's/.* version_ms=\([0-9]*\).*/\1/p' reloads.txt | sort -n | tail -n 1)
log "reloads done; slowest: /version answered the new number $max_version_ms ms after the SIGHUP"
new=$(tail -n 1 reloads.txt | sed -n 's/.* new=\([0-9,]*\).*/\1/p' | tr ',' ' ')

# the old generations drain and exit: only the last two workers are left
last_new=$new
_only_last() { [ "$(worker_pids | paste -sd' ')" = "$(echo "$last_new" | tr ' ' '\n' | sort -n | paste -sd' ')" ]; }
wait_for 20 _only_last || fail "old workers still running 20 s after the last reload: children $(worker_pids | paste -sd' '), last generation:$last_new"

sleep 0.3           # load on the last generation alone
touch load.stop
_load_done() { ! alive "$load_pid"; }
wait_for 30 _load_done || fail "the load generator did not stop within 30 s"
wait "$load_pid"
load_rc=$?
result=$(tail -n 1 load.txt)
log "load: $result; $(grep '^kinds' load.txt)"
assert_eq 0 "$load_rc" "load generator exit status ($(tail -n 3 load.txt))"

# --- verdict ----------------------------------------------------------------
if [ "$stale_total" != 0 ]; then
    log "answers of the previous config after the new generation was serving:
$(grep 'stale=[1-9]' reloads.txt)"
fi
assert_match '^ok=[0-9]+ fail=0$' "$result" "requests failed during $RELOADS reloads under load
$(grep -E '^(error|kinds|stuck)' load.txt)"
assert_eq 0 "$stale_total" "/version answers of the previous config after the new generation was serving"
grep -q '^stuck' load.txt && fail "load clients stuck: $(grep '^stuck' load.txt)"

# the load ran across every reload: successes between each SIGHUP and the next
python3 - "$TEST_DIR/load.json" "$TEST_DIR/reloads.txt" "$t_end" <<'EOF' || exit 1
import bisect, json, sys
rep = json.load(open(sys.argv[1]))
ends = sorted(rep["ok_end_ms"])
hups = [int(l.split("t_hup=")[1].split()[0]) for l in open(sys.argv[2])
        if l.startswith("reload ")]
bounds = hups + [int(sys.argv[3])]
counts = []
for a, b in zip(bounds, bounds[1:]):
    counts.append(bisect.bisect_left(ends, b) - bisect.bisect_left(ends, a))
print("requests completed between reloads: min %d, max %d, total ok %d"
      % (min(counts), max(counts), rep["ok"]))
idle = [i + 1 for i, n in enumerate(counts) if n == 0]
if idle:
    print("FAIL: no request completed after the SIGHUP of reload(s) %s before the next one:"
          " the load did not run across every reload" % idle, file=sys.stderr)
    sys.exit(1)
if rep["ok"] < 5000:
    print("FAIL: too little load to mean anything: %d requests" % rep["ok"], file=sys.stderr)
    sys.exit(1)
EOF

hdr=$(python3 "$LOADGEN" header "$CORRAL_NAME")
assert_eq "reloads_ok=$RELOADS" "$(echo "$hdr" | grep '^reloads_ok=')" "successful reloads counted in the segment"
assert_eq "reloads_failed=0" "$(echo "$hdr" | grep '^reloads_failed=')" "failed reloads counted in the segment"
assert_eq "$RELOADS" "$(grep -c 'reload: generation [0-9]* serving' "$CORRAL_LOG")" "reloads logged as serving"
if grep -q 'reload failed' "$CORRAL_LOG"; then
    fail "the log shows a failed reload: $(grep 'reload failed' "$CORRAL_LOG" | head -n 3)"
fi
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets after the reloads, got $(count_listeners "$PORT")"

log "ok"
