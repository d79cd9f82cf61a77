#!/usr/bin/env bash
# 21-corralctl: corralctl against a live instance. After exactly N requests
# (each on a new connection, so SO_REUSEPORT spreads them over both
# workers) the totals say N, routes and the upstream server count theirs,
# per-worker counts add up to the totals and both workers served; the
# tables, --json documents, metrics (promtool check metrics), stats,
# describe, --help and usage errors; check -c; reopen; reload (ok, then a
# bad file: "reload failed: file:line:col: ..."); stop, after which the
# segment is gone and status says so.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"
need promtool

bport=$(start_backend b1)
PORT=$(free_port)
export PORT
CONF="$TEST_DIR/corral.yaml"

write_conf() {
    cat > "$CONF" <<EOF
name: ${CORRAL_NAME:-t}
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  app: { connect_timeout: 1s, read_timeout: 5s,
         servers: [ { address: "127.0.0.1:$bport", weight: 3 } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "$1\n" } }
  - { name: back, match: { path_prefix: /b/ }, upstream: app, strip_prefix: /b }
EOF
}
write_conf pong
start_corral "$CONF"
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"
N="$CORRAL_NAME"

# -- before any request -------------------------------------------------------
ctl_ok status --json --interval 0
echo "$CTL_OUT" > s0.json
assert_eq 0 "$(json_get s0.json totals.requests)" "totals.requests before any request"
assert_eq "$N" "$(json_get s0.json instance)" "instance name"
assert_eq "$CORRAL_PID" "$(json_get s0.json master_pid)" "master_pid"
assert_eq 2 "$(json_get s0.json workers.#)" "two workers listed"

# -- exactly 60 requests --------------------------------------------------------
newconn_requests 30 /ping || fail "GET /ping"
newconn_requests 20 /b/status/200 || fail "GET /b/status/200"
newconn_requests 10 /nothing-here 404 || fail "GET /nothing-here"

_counted() {
    "$CORRALCTL" status --json --interval 0 > s1.json 2>/dev/null &&
        [ "$(json_get s1.json totals.requests)" = 60 ] &&
        [ "$(json_get s1.json totals.responses.4xx)" = 10 ] &&
        [ "$(json_get s1.json totals.responses.2xx)" = 50 ]
}
wait_for 10 _counted || fail "totals after 60 requests: $(cat s1.json)"
sleep 0.3
"$CORRALCTL" status --json --interval 0 > s1.json || fail "status --json"
py s1.json <<'EOF' || exit 1
import json, sys
from httpc import check
d = json.load(open(sys.argv[1]))
t = d["totals"]
check(t["requests"] == 60, "totals.requests", 60, t["requests"])
check(t["responses"] == {"1xx": 0, "2xx": 50, "3xx": 0, "4xx": 10, "5xx": 0},
      "totals.responses", None, t["responses"])
check(t["errors"]["404"] == 10, "totals.errors.404 (no route)", 10, t["errors"])
check(set(t["errors"]) >= {"400", "404", "408", "413", "414", "431", "501", "502", "503",
                           "504"}, "totals.errors keys", None, sorted(t["errors"]))
check(t["connections_accepted"] >= 60, "totals.connections_accepted", ">= 60",
      t["connections_accepted"])
for k in ("connections_active", "bytes_in", "bytes_out"):
    check(isinstance(t[k], int), "totals.%s is an integer" % k, None, t.get(k))
check(t["bytes_in"] > 0 and t["bytes_out"] > 0, "totals bytes", "> 0", t)
check(set(t["latency_ms"]) == {"p50", "p90", "p99"}, "totals.latency_ms keys", None,
      t["latency_ms"])
ws = d["workers"]
check(len(ws) == 2, "two workers", 2, len(ws))
need = {"id", "slot", "pid", "generation", "state", "requests", "connections_active",
        "responses", "latency_ms", "bytes_in", "bytes_out", "rps"}
for w in ws:
    check(need <= set(w), "worker keys", sorted(need), sorted(w))
    check(w["state"] == "running", "worker state", "running", w["state"])
    check(w["generation"] == 1 and w["current"] is True, "worker generation", 1, w)
    check(set(w["responses"]) == {"1xx", "2xx", "3xx", "4xx", "5xx"}, "worker responses",
          None, w["responses"])
s = sum(w["requests"] for w in ws) + d["retired"]["requests"]
check(s == 60, "per-worker requests add up to the totals", 60, [w["requests"] for w in ws])
check(all(w["requests"] > 0 for w in ws), "both workers served requests", "> 0 each",
      [w["requests"] for w in ws])
for k in ("2xx", "4xx"):
    check(sum(w["responses"][k] for w in ws) == t["responses"][k], "workers' %s add up" % k,
          t["responses"][k], [w["responses"][k] for w in ws])
check(sum(w["bytes_out"] for w in ws) == t["bytes_out"], "workers' bytes_out add up",
      t["bytes_out"], [w["bytes_out"] for w in ws])
EOF

# worker pids in the JSON are the master's children
assert_eq "$(worker_pids | paste -sd' ')" \
    "$(py s1.json <<'EOF'
import json, sys
print(" ".join(str(p) for p in sorted(w["pid"] for w in json.load(open(sys.argv[1]))["workers"])))
EOF
)" "worker pids in status --json"

# -- routes and upstreams ------------------------------------------------------
ctl_ok routes --json --interval 0
echo "$CTL_OUT" > r.json
py r.json <<'EOF' || exit 1
import json, sys
from httpc import check
rs = {r["name"]: r for r in json.load(open(sys.argv[1]))["routes"]}
check(sorted(rs) == ["back", "ping"], "routes listed", ["back", "ping"], sorted(rs))
check(rs["ping"]["requests"] == 30, "route ping requests", 30, rs["ping"])
check(rs["back"]["requests"] == 20, "route back requests", 20, rs["back"])
check(rs["back"]["upstream"] == "app" and rs["ping"]["upstream"] == "", "route upstreams",
      None, rs)
check(rs["ping"]["responses"]["2xx"] == 30, "route ping 2xx", 30, rs["ping"]["responses"])
check(all(r["current"] is True for r in rs.values()), "routes current", True, rs)
EOF
ctl_ok upstreams --json --interval 0
echo "$CTL_OUT" > u.json
py u.json "$bport" <<'EOF' || exit 1
import json, sys
from httpc import check
ss = json.load(open(sys.argv[1]))["servers"]
check(len(ss) == 1, "one upstream server", 1, ss)
s = ss[0]
check(s["upstream"] == "app" and s["address"] == "127.0.0.1:" + sys.argv[2], "server names",
      "app 127.0.0.1:" + sys.argv[2], s)
check(s["weight"] == 3, "server weight", 3, s["weight"])
check(s["health"] in ("up", "unknown"), "server health", "up/unknown", s["health"])
check(s["requests"] == 20, "server requests", 20, s["requests"])
for k in ("failures", "timeouts", "requests_active"):
    check(s[k] == 0, "server " + k, 0, s[k])
EOF

# -- tables ----------------------------------------------------------------------
ctl_ok status
assert_match "^instance $N  master $CORRAL_PID  up [0-9]" "$(echo "$CTL_OUT" | head -n1)" \
    "status summary line"
assert_contains "$CTL_OUT" "requests 60" "status summary totals"
assert_match '^SLOT +ID +PID +GEN +STATE' "$(echo "$CTL_OUT" | grep SLOT)" "workers table header"
for p in $(worker_pids); do
    assert_match "^ +[0-9]+ +[0-9]+ +$p +1 +running " "$(echo "$CTL_OUT" | grep " $p ")" \
        "a row for worker $p"
done
ctl_ok workers --interval 0
assert_eq 3 "$(echo "$CTL_OUT" | grep -c .)" "workers: header and two rows"
ctl_ok routes --interval 0.2
assert_eq 30 "$(echo "$CTL_OUT" | awk '$1 == "ping" { print $4 }')" "routes table: ping requests"
assert_eq 20 "$(echo "$CTL_OUT" | awk '$1 == "back" { print $4 }')" "routes table: back requests"
ctl_ok upstreams --interval 0
assert_match "^app +127\\.0\\.0\\.1:$bport +3 +(up|unknown) +- +[0-9.]+ +20 " \
    "$(echo "$CTL_OUT" | grep "127.0.0.1:$bport")" "upstreams table row"
# -n beats CORRAL_NAME; CORRAL_NAME is used without -n
CORRAL_NAME=nosuch-$$ ctl -n "$N" workers --interval 0
assert_eq 0 "$CTL_RC" "-n NAME overrides CORRAL_NAME"
CORRAL_NAME=nosuch-$$ ctl workers --interval 0
one_error_line "CORRAL_NAME names the instance" "nosuch-$$"

# -- metrics ---------------------------------------------------------------------
ctl_ok metrics
echo "$CTL_OUT" > metrics.txt
promtool check metrics < metrics.txt > promtool.out 2>&1 ||
    fail "promtool check metrics: $(cat promtool.out)"
py metrics.txt "$N" <<'EOF' || exit 1
import re, sys
from httpc import check
text, name = open(sys.argv[1]).read(), sys.argv[2]
def samples(metric):
    out = {}
    for m in re.finditer(r"^%s\{([^}]*)\} (\S+)$" % re.escape(metric), text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out
req = samples("corral_requests_total")
check(sum(req.values()) == 60, "sum of corral_requests_total", 60, req)
check(any('worker="retired"' in k for k in req), "retired series", "present", req)
check(all(k.startswith('instance="%s",worker="' % name) and ',slot="' in k for k in req),
      "worker labels", None, req)
act = samples("corral_connections_active")
check(not any("retired" in k for k in act), "gauges only for live workers", None, act)
r = samples("corral_route_requests_total")
check(r.get('instance="%s",route="ping"' % name) == 30, "route ping in metrics", 30, r)
up = samples("corral_upstream_server_up")
check(list(up.values()) == [1.0], "corral_upstream_server_up", [1.0], up)
check(samples("corral_info") and list(samples("corral_info").values()) == [1.0], "corral_info",
      1, samples("corral_info"))
inf = {k: v for k, v in samples("corral_request_duration_seconds_bucket").items()
       if 'le="+Inf"' in k}
check(sum(inf.values()) == 60, "histogram +Inf buckets add up to the requests", 60, inf)
check("# TYPE corral_requests_total counter" in text and
      "# TYPE corral_connections_active gauge" in text and
      "# TYPE corral_request_duration_seconds histogram" in text and
      "# TYPE corral_upstream_ttfb_seconds histogram" in text, "TYPE lines", None, "")
EOF

# -- stats, describe ---------------------------------------------------------------
ctl_ok stats
assert_match '^requests_total +60$' "$(echo "$CTL_OUT" | grep '^requests_total ')" "stats"
ctl_ok stats --describe
nx=$(grep -c '^ *X([a-z0-9_]*, *"' "$REPO_ROOT/shm/layout.h")
assert_eq "$nx" "$(echo "$CTL_OUT" | grep -cE '^  [a-z0-9_]+ +(counter|gauge) +[a-z0-9]')" \
    "describe lists every counter of the X-macros"
assert_match '^  requests_total +counter +requests received' \
    "$(echo "$CTL_OUT" | grep '^  requests_total ' | head -n1)" "describe line"
ctl_ok describe
assert_contains "$CTL_OUT" "connections_active" "describe"

# -- help and usage errors -----------------------------------------------------------
ctl_ok --help
assert_contains "$CTL_OUT" "usage: corralctl" "corralctl --help"
for c in status workers routes upstreams top metrics stats describe reload stop reopen check; do
    ctl_ok "$c" --help
    assert_match "^usage: corralctl .*$c" "$(echo "$CTL_OUT" | head -n1)" "$c --help"
done
for args in "" "bogus" "status --bogus" "status --count 3" "status --interval x" \
            "top --interval 0" "check" "reload --timeout -1" "metrics extra"; do
    # shellcheck disable=SC2086   # words on purpose
    ctl $args
    assert_eq 2 "$CTL_RC" "usage error for \"corralctl $args\" (stderr: $CTL_ERR)"
done

# -- check -c ----------------------------------------------------------------------------
ctl_ok check -c "$CONF"
assert_eq "$CONF: ok" "$CTL_OUT" "check -c good file"
cat > bad.yaml <<'EOF'
workers: many
listen: [ { address: "127.0.0.1:1" } ]
routes:
  - { match: { path: /x }, upstream: nowhere }
EOF
ctl check -c bad.yaml
assert_eq 1 "$CTL_RC" "check -c bad file exits 1"
assert_match '^bad\.yaml:1:10: ' "$(echo "$CTL_ERR" | head -n1)" "first error with file:line:col"
assert_match 'bad\.yaml:4:[0-9]+: .*nowhere' "$CTL_ERR" "every error is reported"

# -- reopen ------------------------------------------------------------------------------
ctl_ok reopen
assert_contains "$CTL_OUT" "$CORRAL_PID" "reopen names the master"
alive "$CORRAL_PID" || fail "the master died on SIGUSR1"

# -- reload: ok, then a bad file ---------------------------------------------------------
write_conf "pong, reloaded"
ctl_ok reload
assert_eq "reload: generation 2 serving" "$CTL_OUT" "reload output"
assert_eq "pong, reloaded" "$("${CURL[@]}" "http://127.0.0.1:$PORT/ping")" "new config serves"
ctl_ok status --json --interval 0
echo "$CTL_OUT" > s2.json
assert_eq 2 "$(json_get s2.json generation)" "generation after reload"
assert_eq 1 "$(json_get s2.json reloads_ok)" "reloads_ok"
req=$(json_get s2.json totals.requests)
[ "$req" -ge 61 ] || fail "totals.requests went from 60 to $req across a reload"

cat > "$CONF" <<EOF
name: $N
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
routes:
  - { name: ping, match: { path: /ping }, upstream: nowhere }
EOF
ctl reload --timeout 10
assert_eq 1 "$CTL_RC" "reload of a bad file exits 1 (stderr: $CTL_ERR)"
assert_match "^reload failed: .*corral\\.yaml:5:[0-9]+: .*nowhere" "$CTL_ERR" \
    "reload failed names file:line:col"
assert_eq "pong, reloaded" "$("${CURL[@]}" "http://127.0.0.1:$PORT/ping")" \
    "the old config keeps serving"
write_conf "pong, reloaded"

# -- stop --------------------------------------------------------------------------------
ctl_ok stop
assert_eq "stop: master pid $CORRAL_PID exited" "$CTL_OUT" "stop output"
_master_gone() { ! alive "$CORRAL_PID"; }
wait_for 5 _master_gone || fail "master $CORRAL_PID still alive after corralctl stop"
[ ! -e "/dev/shm/corral.$N" ] || fail "/dev/shm/corral.$N left behind by a clean stop"
ctl status
one_error_line "status after stop" "no corral instance \"$N\""

log "ok"
