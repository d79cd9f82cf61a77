#!/usr/bin/env bash
# 50-access-log: every request gets one access log line from the worker
# that served it. json lines carry time, client, method, path, status,
# bytes, request_time, upstream, upstream_time, request_id and route; an
# X-Request-Id is made when the client sent none and reaches the upstream,
# requests refused before their head was whole (400) get a line too,
# a client's own is kept; quotes and backslashes from a client stay valid
# JSON. corralctl reopen after a rename writes to a new file while the
# renamed one keeps the older lines; a reload switches to "combined" on
# stdout.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"

BPORT=$(start_backend b1)
PORT=$(free_port)
write_conf() {       # write_conf PATH FORMAT BUFFER
    cat > corral.yaml <<EOF
name: ${CORRAL_NAME:-x}
workers: 2
listen: [ "127.0.0.1:$PORT" ]
access_log: { path: $1, format: $2, buffer: $3, flush: 200ms }
upstreams:
  app: { servers: [ "127.0.0.1:$BPORT" ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
  - { name: app, match: { path_prefix: /b/ }, upstream: app, strip_prefix: /b }
EOF
}
write_conf "$TEST_DIR/access.log" json 64k
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 listeners"

# 10 proxied requests (new connection each), 3 local answers, 1 no route
for i in $(seq 1 10); do
    "${CURL[@]}" -o "h$i.json" "http://127.0.0.1:$PORT/b/headers?i=$i" || fail "request $i"
done
"${CURL[@]}" -o h-own.json -H 'X-Request-Id: client-id-7' "http://127.0.0.1:$PORT/b/headers?own" ||
    fail "request with X-Request-Id"
for i in 1 2 3; do
    "${CURL[@]}" -o /dev/null -A 'agent "q" \ back' "http://127.0.0.1:$PORT/ping" || fail "ping"
done
assert_eq 404 "$(http_code "http://127.0.0.1:$PORT/nowhere")" "no route"

# requests refused before their head was whole are logged too (nginx logs its 400s)
send_raw() {         # send_raw BYTES: print the status line's code
    python3 - "$PORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
print(s.recv(4096).split(b"\r\n")[0].split()[1].decode())
PY
}
assert_eq 400 "$(send_raw '\x01\x02 nonsense\r\n\r\n')" "garbage request line"
assert_eq 400 "$(send_raw 'GET /bad-name HTTP/1.1\r\nHost: h\r\nX-Bad : x\r\n\r\n')" \
    "space before a colon"

_lines() { [ -f access.log ] && [ "$(wc -l < access.log)" -ge "$1" ]; }
wait_for 10 _lines 17 || fail "expected 17 access log lines, got: $(cat access.log 2>/dev/null)"
sleep 0.5
assert_eq 17 "$(wc -l < access.log)" "access log lines"

python3 - "$BPORT" <<'EOF' || fail "access log content (see above)"
import json, re, sys
bport = sys.argv[1]
every = [json.loads(l) for l in open("access.log")]
keys = {"time", "client", "method", "path", "protocol", "status", "bytes", "request_time",
        "upstream", "upstream_time", "request_id", "route", "referer", "user_agent"}
for l in every:
    assert keys <= set(l), ("missing keys", keys - set(l), l)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", l["time"]), l
    assert l["client"] == "127.0.0.1", l
    assert isinstance(l["request_time"], float) and 0 <= l["request_time"] < 30, l
refused = [l for l in every if l["method"] is None]
assert len(refused) == 2, refused
for l in refused:
    assert l["status"] == 400 and l["path"] is None and l["protocol"] is None, l
    assert l["route"] is None and l["upstream"] is None and l["bytes"] > 0, l
lines = [l for l in every if l["method"] is not None]
for l in lines:
    assert l["method"] == "GET" and l["protocol"] == "HTTP/1.1", l
proxied = [l for l in lines if l["path"].startswith("/b/headers")]
assert len(proxied) == 11, len(proxied)
ids = set()
for l in proxied:
    assert l["status"] == 200 and l["route"] == "app", l
    assert l["upstream"] == "127.0.0.1:" + bport, l
    assert isinstance(l["upstream_time"], float) and 0 <= l["upstream_time"] <= l["request_time"] + 0.001, l
    if l["path"].endswith("?own"):
        body = json.load(open("h-own.json"))
        assert l["request_id"] == "client-id-7", l
    else:
        i = l["path"].split("i=")[1]
        body = json.load(open("h%s.json" % i))
        assert re.fullmatch(r"[0-9a-f]{32}", l["request_id"]), l
        ids.add(l["request_id"])
    sent = [v for k, v in body["headers"] if k.lower() == "x-request-id"]
    assert sent == [l["request_id"]], ("upstream saw", sent, "log has", l["request_id"])
    # bytes: the whole response (head and body) went to the client
    assert l["bytes"] > len(json.dumps(body)), l
assert len(ids) == 10, ("request ids not unique", ids)
pings = [l for l in lines if l["path"] == "/ping"]
assert len(pings) == 3, pings
for l in pings:
    assert l["status"] == 200 and l["route"] == "ping" and l["upstream"] is None, l
    assert l["upstream_time"] is None, l
    assert l["user_agent"] == 'agent "q" \\ back', l["user_agent"]
miss = [l for l in lines if l["path"] == "/nowhere"]
assert len(miss) == 1 and miss[0]["status"] == 404 and miss[0]["route"] is None, miss
print("access log ok: %d lines" % len(lines))
EOF

# -- reopen after a rename (logrotate's way) ----------------------------------------------
mv access.log access.log.1
"$CORRALCTL" reopen > reopen.out 2>&1 || fail "corralctl reopen: $(cat reopen.out)"
_reopened() { [ -f access.log ] && [ "$(grep -c 'access log .* reopened' "$CORRAL_LOG")" -ge 2 ]; }
wait_for 10 _reopened || fail "workers did not reopen the access log"
for i in 1 2 3 4 5; do
    "${CURL[@]}" -o /dev/null "http://127.0.0.1:$PORT/ping?after=$i" || fail "ping after reopen"
done
wait_for 10 _lines 5 || fail "no lines in the new access.log"
sleep 0.5
assert_eq 5 "$(grep -c '"path":"/ping?after=' access.log)" "new file has the new lines"
assert_eq 0 "$(grep -c 'after=' access.log.1)" "renamed file has no new line"
assert_eq 17 "$(wc -l < access.log.1)" "renamed file kept the old lines"
assert_eq 640 "$(stat -c %a access.log)" "mode of the new file"

# -- reload: combined format on stdout (corral.log), unbuffered ---------------------------
write_conf stdout combined 0
"$CORRALCTL" reload > reload.out 2>&1 || fail "reload: $(cat reload.out)"
"${CURL[@]}" -o /dev/null -e 'http://ref.example/' -A 'ua/1.0' \
    "http://127.0.0.1:$PORT/b/headers?combined=1" || fail "request after reload"
_combined() { grep -q 'combined=1' "$CORRAL_LOG"; }
wait_for 10 _combined || fail "no combined line on stdout"
line=$(grep 'combined=1' "$CORRAL_LOG" | head -n 1)
assert_match '^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} \+0000\] "GET /b/headers\?combined=1 HTTP/1\.1" 200 [0-9]+ "http://ref\.example/" "ua/1\.0" rt=[0-9.]+ ua="127\.0\.0\.1:'"$BPORT"'" ut=[0-9.]+ id="[0-9a-f]{32}" route="app"$' \
    "$line" "combined line"
assert_eq 400 "$(send_raw 'GET /x HTTP/1.1\r\nHost: h\r\nBad Name: 1\r\n\r\n')" "bad name"
_refused() { grep -q '"-" 400 ' "$CORRAL_LOG"; }
wait_for 10 _refused || fail "no combined line for a refused head"
line=$(grep '"-" 400 ' "$CORRAL_LOG" | head -n 1)
assert_match '^127\.0\.0\.1 - - \[[^]]+\] "-" 400 [0-9]+ "-" "-" rt=[0-9.]+ ua="-" ut=- id="[0-9a-f]{32}" route="-"$' \
    "$line" "combined line of a refused head"
log "ok"
