#!/usr/bin/env bash
# 30-http-corpus: the hostile-input corpus of tests/http-corpus/cases.py.
# Each case is raw request bytes sent on a fresh connection, the status(es)
# corral must answer and exactly what the upstream must receive: nothing,
# or the re-framed request(s) (head byte for byte, body decoded when
# chunked). Covers Content-Length with Transfer-Encoding, bad and duplicate
# lengths, transfer codings and their obfuscations, chunk syntax, bare CR
# and LF, obs-fold, field syntax, Host, the request line, absolute-form,
# pipelines behind a bad request, every method, the size limits, the
# forwarded fields, path normalisation and route bypasses. corpus.py runs
# the recording upstream and the cases; any mismatch fails the test. A
# second corral, the same but for merge_slashes: false, takes the cases
# about that setting. One worker each, which must survive all of it.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
PORT2=$(free_port)
BPORT=$(free_port)

# Small limits so that each one is reached with a few bytes; short header
# and body timeouts so that a case corral waits on ends quickly. The routes
# are listed in tests/http-corpus/cases.py, which depends on them.
write_config() {    # FILE PORT MERGE_SLASHES
    cat > "$1" <<EOF
name: "t30-$2"
workers: 1
merge_slashes: $3
listen: [ { address: "127.0.0.1:$2" } ]
limits: { max_header_bytes: 2k, max_headers: 20, max_uri_bytes: 512, max_body_bytes: 1k,
          header_timeout: 2s, body_timeout: 2s, idle_timeout: 30s }
upstreams:
  app: { keepalive: 8, connect_timeout: 1s, read_timeout: 5s, retries: 0, max_fails: 0,
         servers: [ { address: "127.0.0.1:$BPORT" } ] }
routes:
  - { name: deny, match: { path_prefix: /admin }, respond: { status: 403, body: "denied\n" } }
  - { name: denyhost, match: { host: deny.example }, respond: { status: 403, body: "denied\n" } }
  - { name: local, match: { path: /local }, respond: { status: 200, body: "local\n" } }
  - { name: hdr, match: { path_prefix: /hdr/ }, upstream: app,
      request_headers: { set: { X-Set: corral }, remove: [X-Drop] } }
  - { name: strip, match: { path_prefix: /strip/ }, upstream: app, strip_prefix: /strip }
  - { name: star, match: { path_regex: '^[*]\$', methods: [OPTIONS] }, upstream: app }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
}
write_config corral.yaml "$PORT" true
write_config corral-nomerge.yaml "$PORT2" false

start_corral corral.yaml
MASTER1=$CORRAL_PID
start_corral corral-nomerge.yaml
MASTER2=$CORRAL_PID
for p in "$PORT" "$PORT2"; do
    wait_listeners "$p" 1 || fail "expected 1 listening socket on $p, got $(count_listeners "$p")"
done
w1=$(worker_pids "$MASTER1" | paste -sd' ')
w2=$(worker_pids "$MASTER2" | paste -sd' ')
if [ -z "$w1" ] || [ -z "$w2" ]; then
    fail "no worker found under a master ($MASTER1: '$w1', $MASTER2: '$w2')"
fi

python3 "$LIB_DIR/corpus.py" --port "$PORT" --port-nomerge "$PORT2" --backend-port "$BPORT" \
    --cases "$REPO_ROOT/tests/http-corpus/cases.py" || fail "the HTTP corpus has failing cases (above)"

for p in "$PORT" "$PORT2"; do
    code=$(http_code "http://127.0.0.1:$p/local")
    assert_eq 200 "$code" "GET /local on port $p after the corpus"
done
assert_eq "$w1 / $w2" "$(worker_pids "$MASTER1" | paste -sd' ') / $(worker_pids "$MASTER2" | paste -sd' ')" \
    "worker pids unchanged (no worker died)"

log "ok"
