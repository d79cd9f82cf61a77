# shellcheck shell=bash
# ctl-lib.sh - helpers for the corralctl tests (2x-corralctl-*.sh).
#
# Sourced after lib.sh, never run. Adds:
#   - CORRALCTL: the binary (the Makefile passes it; default build/corralctl);
#   - ctl ARGS...: runs it, leaving CTL_RC, CTL_OUT, CTL_ERR;
#   - json_get FILE PATH: a value of a JSON document by dotted path;
#   - shm_scratch NAME: $SCRATCH becomes /dev/shm/corral.NAME, a file of the
#     test's own, removed when the test ends, whatever happens;
#   - one_error_line WHAT NEEDLE: the last ctl call failed the way corralctl
#     must fail: exit 1, nothing on stdout, one line on stderr naming it;
#   - newconn_requests N PATH [STATUS]: N requests, each on a new connection.

: "${CORRALCTL:=$REPO_ROOT/build/corralctl}"
case "$CORRALCTL" in
    /*) ;;
    *) CORRALCTL="$REPO_ROOT/$CORRALCTL" ;;
esac
export CORRALCTL
[ -x "$CORRALCTL" ] || fail "corralctl binary not found or not executable: $CORRALCTL"

SHM_SCRATCH=()
TMUX_SOCKETS=()

# Runs before stop_all on exit, keeping the test's exit status for it.
ctl_cleanup() {
    local rc=$? f s
    for f in "${SHM_SCRATCH[@]}"; do
        rm -f "$f"
    done
    for s in "${TMUX_SOCKETS[@]}"; do
        tmux -S "$s" kill-server 2>/dev/null
    done
    return "$rc"
}
trap 'ctl_cleanup; stop_all' EXIT

# shm_scratch NAME: register /dev/shm/corral.NAME for removal and set
# SCRATCH to its path. (Not to be called in $(...): the list would be lost.)
shm_scratch() {
    SCRATCH="/dev/shm/corral.$1"
    SHM_SCRATCH+=("$SCRATCH")
}

# ctl ARGS...
ctl() {
    "$CORRALCTL" "$@" > "$TEST_DIR/ctl.out" 2> "$TEST_DIR/ctl.err" < /dev/null
    CTL_RC=$?
    CTL_OUT=$(cat "$TEST_DIR/ctl.out")
    CTL_ERR=$(cat "$TEST_DIR/ctl.err")
}

# ctl_ok ARGS...: ctl, and it must exit 0.
ctl_ok() {
    ctl "$@"
    [ "$CTL_RC" = 0 ] || fail "corralctl $* exited $CTL_RC; stderr: $CTL_ERR"
}

# json_get FILE PATH: "totals.responses.2xx", "workers.0.pid", "workers.#"
# (the length of an array). Prints the value (JSON for objects).
json_get() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    if k == "#":
        d = len(d)
    elif isinstance(d, list):
        d = d[int(k)]
    else:
        d = d[k]
print(json.dumps(d) if isinstance(d, (dict, list, bool)) or d is None else d)
EOF
}

# one_error_line WHAT NEEDLE
one_error_line() {
    local n
    case "$CTL_RC" in
        1) ;;
        *) fail "$1: expected exit status 1, got $CTL_RC (stderr: $CTL_ERR)" ;;
    esac
    assert_eq "" "$CTL_OUT" "$1: nothing on stdout"
    n=$(printf '%s\n' "$CTL_ERR" | grep -c .)
    assert_eq 1 "$n" "$1: exactly one line on stderr (got: $CTL_ERR)"
    assert_contains "$CTL_ERR" "$2" "$1: the message names the problem"
}

# newconn_requests N PATH [STATUS]: N sequential requests to 127.0.0.1:$PORT,
# each on a new connection; every answer must have STATUS (default 200).
newconn_requests() {
    PORT=$PORT py "$1" "$2" "${3:-200}" <<'EOF'
import sys
from httpc import *
n, path, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(n):
    c = Conn()
    c.send(request("GET", path, headers=[("Connection", "close")]))
    r = c.response()
    c.close()
    check(r.status == want, "GET %s #%d" % (path, i), want, r.status)
EOF
}

# server_json PORT PATH: the field PATH (dotted, as json_get) of server
# 127.0.0.1:PORT in a fresh `corralctl upstreams --json`, kept in up.json.
server_json() {
    "$CORRALCTL" upstreams --json --interval 0 > up.json 2>/dev/null || return 1
    python3 - "$1" "$2" <<'EOF'
import json, sys
for s in json.load(open("up.json"))["servers"]:
    if s["address"] == "127.0.0.1:" + sys.argv[1]:
        d = s
        for k in sys.argv[2].split("."):
            d = d[k]
        print(json.dumps(d) if isinstance(d, (dict, list, bool)) or d is None else d)
EOF
}

# kill_backend PORT: SIGTERM the backend listening on PORT, and wait until
# the port is closed.
kill_backend() {
    local pid
    pid=$(listen_pids "$1")
    is_ours backend "$pid" || fail "pid $pid on port $1 is not our backend"
    kill -TERM "$pid"
    _closed() { ! port_open "$1"; }
    wait_for 10 _closed "$1" || fail "backend on port $1 still listening"
}
