#!/usr/bin/env bash
# 01-config-check: `corral -t -c FILE` prints "FILE: ok" and exits 0 for a
# valid file; for a broken one it prints every error (not just the first)
# as FILE:LINE:COL: message and exits 1; a YAML syntax error and a missing
# file fail too.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
bport=$(free_port)

cat > good.yaml <<EOF
name: t
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$port" } ]
limits: { max_header_bytes: 16k, max_headers: 100, max_uri_bytes: 8k, max_body_bytes: 100m, header_timeout: 10s, idle_timeout: 60s }
upstreams:
  app: { keepalive: 32, connect_timeout: 1s, read_timeout: 2s, retries: 1, max_fails: 1, fail_timeout: 10s, balance: round_robin,
         servers: [ { address: "127.0.0.1:$bport", weight: 1 } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n", headers: { X-Ping: "1" } } }
  - { name: old, match: { path_prefix: /old/ }, redirect: { status: 301, location: "http://example.test/new" } }
  - { name: api, match: { host: api.test, path_prefix: /api/, methods: [GET, POST] }, upstream: app, strip_prefix: /api,
      request_headers: { set: { X-Env: test }, remove: [X-Debug] }, response_headers: { set: { X-Served-By: corral }, remove: [X-Backend] } }
  - { name: rx, match: { path_regex: "^/items/[0-9]+$" }, respond: { status: 200, body: "item\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF

# -- a valid file ------------------------------------------------------------
out=$(timeout 20 "$CORRAL" -t -c good.yaml 2>&1)
rc=$?
assert_eq 0 "$rc" "corral -t on a valid file: exit status (output: $out)"
assert_match '^good\.yaml: ok$' "$out" "corral -t on a valid file: output"
port_open "$port" && fail "corral -t must not start serving (port $port answers)"

# -- several errors in one file: both reported, with line and column ----------
# line 4: a duration that is not one; line 12: a route naming an unknown upstream
cat > bad.yaml <<EOF
name: t
workers: 1
listen: [ { address: "127.0.0.1:$port" } ]
limits: { header_timeout: five }
upstreams:
  app:
    connect_timeout: 1s
    servers: [ { address: "127.0.0.1:$bport" } ]
routes:
  - name: a
    match: { path_prefix: / }
    upstream: nosuch
EOF
out=$(timeout 20 "$CORRAL" -t -c bad.yaml 2>err.txt)
rc=$?
err=$(cat err.txt)
assert_eq 1 "$rc" "corral -t on a file with two errors: exit status (stderr: $err)"
assert_not_contains "$out$err" "bad.yaml: ok" "corral -t on a broken file must not say ok"
l4=$(grep -E '^bad\.yaml:4:[0-9]+: .+' err.txt)
l12=$(grep -E '^bad\.yaml:12:[0-9]+: .+' err.txt)
[ -n "$l4" ] || fail "no error at bad.yaml:4:COL (bad duration \"five\"); stderr was:
$err"
[ -n "$l12" ] || fail "no error at bad.yaml:12:COL (unknown upstream \"nosuch\"); stderr was:
$err"
assert_match 'five|header_timeout|duration' "$l4" "the line-4 error names the bad value"
assert_contains "$l12" "nosuch" "the line-12 error names the unknown upstream"
# every error line has the compiler format
while IFS= read -r line; do
    [ -n "$line" ] || continue
    assert_match '^bad\.yaml:[0-9]+:[0-9]+: ' "$line" "every error line is FILE:LINE:COL: message"
done < err.txt

# -- a YAML syntax error ------------------------------------------------------
cat > syntax.yaml <<EOF
name: t
workers: 1
listen: [ { address: "127.0.0.1:$port" }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200 } }
EOF
timeout 20 "$CORRAL" -t -c syntax.yaml > out.txt 2> err.txt
rc=$?
assert_eq 1 "$rc" "corral -t on a YAML syntax error: exit status (stderr: $(cat err.txt))"
grep -Eq '^syntax\.yaml:[0-9]+:[0-9]+: .+' err.txt ||
    fail "YAML syntax error not reported as syntax.yaml:LINE:COL: message; stderr: $(cat err.txt)"

# -- a file that does not exist ----------------------------------------------
timeout 20 "$CORRAL" -t -c missing.yaml > out.txt 2> err.txt
rc=$?
assert_eq 1 "$rc" "corral -t on a missing file: exit status"
assert_contains "$(cat err.txt)" "missing.yaml" "the error names the missing file"

# -- the absolute path is echoed as given ---------------------------------------
out=$(timeout 20 "$CORRAL" -t -c "$TEST_DIR/good.yaml" 2>&1)
rc=$?
assert_eq 0 "$rc" "corral -t with an absolute path: exit status"
printf '%s\n' "$out" | grep -Fxq "$TEST_DIR/good.yaml: ok" ||
    fail "corral -t with an absolute path: expected a line \"$TEST_DIR/good.yaml: ok\", got: $out"

log "ok"
