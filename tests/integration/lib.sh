# shellcheck shell=bash
# lib.sh - shell functions shared by the integration tests (tests/integration/NN-*.sh).
#
# Sourced, never run. A test runs in its own directory ($TEST_DIR: made by
# run.sh; when a test is run on its own, made here and removed at the end
# unless KEEP_TEST_DIR=1), starts its backends and corral through these
# functions, and leaves through stop_all, which the EXIT trap calls: every
# process a test starts is recorded in $TEST_DIR/.pids and stopped by pid,
# even when the test fails.
#
# Conventions:
#   - asserts print what was expected and what came, then exit 1;
#   - nothing sleeps a fixed long time: wait_for polls a condition;
#   - only 127.0.0.1 and ports the kernel hands out (free_port).

set -u

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LIB_DIR/../.." && pwd)
: "${CORRAL:=$REPO_ROOT/build/corral}"
case "$CORRAL" in
    /*) ;;
    *) CORRAL="$(pwd)/$CORRAL" ;;
esac
export CORRAL
: "${CORRALCTL:=$(dirname "$CORRAL")/corralctl}"
export CORRALCTL

OWN_TEST_DIR=0
if [ -z "${TEST_DIR:-}" ]; then
    TEST_DIR=$(mktemp -d)
    OWN_TEST_DIR=1
fi
export TEST_DIR
cd "$TEST_DIR" || exit 1
: > "$TEST_DIR/.pids"

# backend.py is imported by some tests: leave no __pycache__ in the tree.
export PYTHONDONTWRITEBYTECODE=1

# Clients talk to 127.0.0.1 directly, whatever the environment says.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY='*' no_proxy='*'

CORRAL_PID=""
CORRAL_LOG=""
CORRAL_PORT=""
NCORRAL=0

# ---------------------------------------------------------------------------
# reporting

log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$*" >&2
}

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# assert_eq EXPECTED GOT WHAT
assert_eq() {
    if [ "$1" != "$2" ]; then
        printf 'FAIL: %s\n  expected: %s\n  got:      %s\n' "$3" "$1" "$2" >&2
        exit 1
    fi
}

# assert_ne UNEXPECTED GOT WHAT
assert_ne() {
    if [ "$1" = "$2" ]; then
        printf 'FAIL: %s\n  expected anything but: %s\n' "$3" "$1" >&2
        exit 1
    fi
}

# assert_contains HAYSTACK NEEDLE WHAT
assert_contains() {
    case "$1" in
        *"$2"*) ;;
        *)
            printf 'FAIL: %s\n  expected to contain: %s\n  got: %s\n' "$3" "$2" "$1" >&2
            exit 1 ;;
    esac
}

# assert_not_contains HAYSTACK NEEDLE WHAT
assert_not_contains() {
    case "$1" in
        *"$2"*)
            printf 'FAIL: %s\n  expected not to contain: %s\n  got: %s\n' "$3" "$2" "$1" >&2
            exit 1 ;;
    esac
}

# assert_match EXTENDED-REGEX STRING WHAT
assert_match() {
    if ! printf '%s\n' "$2" | grep -Eq -- "$1"; then
        printf 'FAIL: %s\n  expected to match: %s\n  got: %s\n' "$3" "$1" "$2" >&2
        exit 1
    fi
}

# assert_lt A B WHAT   (integers: A < B)
assert_lt() {
    if ! [ "$1" -lt "$2" ] 2>/dev/null; then
        printf 'FAIL: %s\n  expected: %s < %s\n' "$3" "$1" "$2" >&2
        exit 1
    fi
}

# need TOOL... : a missing tool is a failure, never a skip.
need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || fail "required tool not found: $t"
    done
}

need python3 curl ss ps sha256sum timeout stat paste seq readlink

# ---------------------------------------------------------------------------
# time

now_ms() {
    date +%s%3N
}

# wait_for SECONDS CMD [ARGS...]: run CMD every 0.1 s until it succeeds.
# Returns 1 if it never did within SECONDS.
wait_for() {
    local limit=$(( $(now_ms) + $1 * 1000 ))
    shift
    while :; do
        "$@" && return 0
        [ "$(now_ms)" -ge "$limit" ] && return 1
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------
# processes

# alive PID: the process exists and is not a zombie.
alive() {
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# is_ours KIND PID: guard against pid reuse before signalling.
# (Every return here carries an explicit status: stop_all runs in the EXIT
# trap, where a bare `return` would give the status the test exited with.)
is_ours() {
    local exe cmd
    case "$1" in
        corral)
            exe=$(readlink "/proc/$2/exe" 2>/dev/null) || return 1
            case "$exe" in "$CORRAL"|"$CORRAL (deleted)") return 0 ;; esac
            return 1 ;;
        backend)
            cmd=$(tr '\0' ' ' < "/proc/$2/cmdline" 2>/dev/null) || return 1
            # backend.py, or a backend script the test wrote into TEST_DIR
            case "$cmd" in *backend.py*|*"$TEST_DIR/"*) return 0 ;; esac
            return 1 ;;
        client)
            # a test's own background client: still a child of this shell
            [ "$(ps -o ppid= -p "$2" 2>/dev/null | tr -d ' ')" = "$$" ] && return 0
            return 1 ;;
    esac
    return 1
}

# record KIND PID: KIND is corral, worker, backend, or client (a test's own
# background client process, e.g. a load generator), so stop_all stops it.
record() {
    echo "$1 $2" >> "$TEST_DIR/.pids"
}

# worker_pids [MASTER]: the master's children, one per line, sorted.
worker_pids() {
    local m=${1:-$CORRAL_PID} p
    [ -n "$m" ] || return 0
    for p in $(ps -o pid= --ppid "$m" 2>/dev/null | sort -n); do
        record worker "$p"
        echo "$p"
    done
}

# listen_pids PORT: one line per LISTEN socket on PORT, listing the pids
# owning it (from ss -ltnp), e.g. "1234" or "1234,1240" if shared.
listen_pids() {
    local line
    ss -Hltnp "sport = :$1" 2>/dev/null | while read -r line; do
        printf '%s\n' "$line" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -un | paste -sd, -
    done
}

# count_listeners PORT
count_listeners() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -c LISTEN
}

# signal_ours SIGNAL: signal every recorded process still alive and ours.
signal_ours() {
    local kind pid n=0
    while read -r kind pid; do
        [ "$kind" = worker ] && kind=corral
        if alive "$pid" && is_ours "$kind" "$pid"; then
            n=$((n + 1))
            if [ "$1" != 0 ]; then
                kill -"$1" "$pid" 2>/dev/null
            fi
        fi
    done < <(sort -u "$TEST_DIR/.pids")
    [ "$n" -gt 0 ]
}

stop_all() {
    local rc=$? kind pid f
    trap - EXIT
    if [ -f "$TEST_DIR/.pids" ]; then
        # note the current workers of every master, so none is left behind
        while read -r kind pid; do
            if [ "$kind" = corral ] && alive "$pid"; then
                worker_pids "$pid" >/dev/null
            fi
        done < <(sort -u "$TEST_DIR/.pids")
        # masters and backends first; workers follow their master
        while read -r kind pid; do
            [ "$kind" = worker ] && continue
            if alive "$pid" && is_ours "$kind" "$pid"; then
                kill -TERM "$pid" 2>/dev/null
            fi
        done < <(sort -u "$TEST_DIR/.pids")
        _none_left() { ! signal_ours 0; }
        if ! wait_for 10 _none_left; then
            echo "stop_all: processes left after SIGTERM, sending SIGKILL" >&2
            signal_ours KILL
            wait_for 5 _none_left
        fi
    fi
    check_logs || rc=1
    if [ "$OWN_TEST_DIR" = 1 ]; then
        if [ "$rc" != 0 ]; then
            for f in "$TEST_DIR"/corral*.log; do
                [ -f "$f" ] || continue
                echo "--- tail of $(basename "$f")" >&2
                tail -n 30 "$f" >&2
            done
        fi
        if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then
            echo "test directory kept: $TEST_DIR" >&2
        else
            cd / && rm -rf "$TEST_DIR"
        fi
    fi
    exit "$rc"
}

# check_logs: a test fails, whatever it checked, if corral's log shows a
# sanitizer report or a worker that exited unexpectedly (a test that kills
# a worker on purpose sets EXPECT_WORKER_EXITS=1).
SANITIZER_RE='(ERROR|WARNING): [A-Za-z]+Sanitizer|runtime error:'
check_logs() {
    local f ok=0
    for f in "$TEST_DIR"/corral*.log; do
        [ -f "$f" ] || continue
        if grep -Eq "$SANITIZER_RE" "$f"; then
            echo "FAIL: sanitizer report in $(basename "$f"):" >&2
            grep -Em1 -A 30 "$SANITIZER_RE" "$f" >&2
            ok=1
        fi
        if [ "${EXPECT_WORKER_EXITS:-0}" != 1 ] && grep -q 'exited unexpectedly' "$f"; then
            echo "FAIL: a worker exited unexpectedly ($(basename "$f")):" >&2
            grep 'exited unexpectedly' "$f" | head -n 5 >&2
            ok=1
        fi
    done
    return "$ok"
}

trap stop_all EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# ---------------------------------------------------------------------------
# ports, backends, corral

# free_port: a port the kernel just handed out on 127.0.0.1 (now closed).
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() {
    python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
s.close()
EOF
}

# start_backend NAME [ARGS...]: start backend.py, print its port once it
# accepts connections. Its requests are logged in backend-NAME.log.
start_backend() {
    local name=$1 port pid
    shift
    for _ in 1 2 3; do
        port=$(free_port)
        python3 "$LIB_DIR/backend.py" --port "$port" --name "$name" "$@" \
            >> "$TEST_DIR/backend-$name.log" 2>&1 </dev/null &
        pid=$!
        record backend "$pid"
        # up when it said so in its own log (not merely when something
        # answers on the port, which could be another process)
        _backend_up() {
            grep -q "^$name listening on 127.0.0.1:$port\$" "$TEST_DIR/backend-$name.log" &&
                port_open "$port"
        }
        if wait_for 10 _backend_up && alive "$pid"; then
            echo "$port"
            return 0
        fi
        kill -TERM "$pid" 2>/dev/null
    done
    fail "backend $name did not start (log: $(tail -n 5 "$TEST_DIR/backend-$name.log"))"
}

# start_script_backend NAME SCRIPT: run a python backend written by the
# test, which prints "NAME listening on 127.0.0.1:PORT" to stderr once it
# listens (on a port the kernel chose); print that port. Its log is
# backend-NAME.log.
start_script_backend() {
    local name=$1 script=$2 log="$TEST_DIR/backend-$1.log" port
    python3 "$script" >> "$log" 2>&1 </dev/null &
    record backend $!
    _script_up() { grep -q "^$1 listening on 127\.0\.0\.1:[0-9]*\$" "$2"; }
    wait_for 10 _script_up "$name" "$log" || fail "backend $name did not start: $(tail -n 5 "$log")"
    port=$(sed -n "s/^$name listening on 127\.0\.0\.1:\([0-9]*\)\$/\1/p" "$log" | head -n 1)
    port_open "$port" || fail "backend $name not accepting on $port"
    echo "$port"
}

# backend_log NAME
backend_log() {
    echo "$TEST_DIR/backend-$1.log"
}

# config_port CONFIG: the port of the first address under "listen".
config_port() {
    python3 - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
i = text.find("listen")
m = re.search(r"127\.0\.0\.1:(\d+)|\[::1\]:(\d+)", text[i:] if i >= 0 else text)
print(m.group(1) or m.group(2) if m else "")
EOF
}

# start_corral CONFIG [PORT]: run "$CORRAL -c CONFIG -l info" in the
# background (this shell's child, so `wait $CORRAL_PID` gives its exit
# status), log in corral.log (corral-2.log for a second instance, ...).
# Waits until PORT accepts connections. Sets CORRAL_PID, CORRAL_LOG and
# CORRAL_PORT (for the tests' use).
start_corral() {
    local conf=$1 port=${2:-}
    [ -n "$port" ] || port=$(config_port "$conf")
    [ -n "$port" ] || fail "start_corral: no listen port found in $conf"
    [ -x "$CORRAL" ] || fail "corral binary not found or not executable: $CORRAL"
    NCORRAL=$((NCORRAL + 1))
    if [ "$NCORRAL" = 1 ]; then
        CORRAL_LOG="$TEST_DIR/corral.log"
        CORRAL_NAME="t$$"
    else
        CORRAL_LOG="$TEST_DIR/corral-$NCORRAL.log"
        CORRAL_NAME="t$$-$NCORRAL"
    fi
    # Each instance owns a stats segment named after it: give every test run
    # its own name, so runs side by side never meet. corralctl reads it too.
    export CORRAL_NAME
    if grep -q '^name:' "$conf"; then
        sed -i -E "s/^name:.*/name: $CORRAL_NAME/" "$conf"
    else
        sed -i "1i name: $CORRAL_NAME" "$conf"
    fi
    "$CORRAL" -c "$conf" -l info >> "$CORRAL_LOG" 2>&1 </dev/null &
    CORRAL_PID=$!
    export CORRAL_PORT=$port
    record corral "$CORRAL_PID"
    local deadline=$(( $(now_ms) + 20000 ))
    while ! port_open "$port"; do
        if ! alive "$CORRAL_PID"; then
            fail "corral exited during startup; log:
$(tail -n 20 "$CORRAL_LOG")"
        fi
        if [ "$(now_ms)" -ge "$deadline" ]; then
            fail "corral did not answer on port $port within 20 s; log:
$(tail -n 20 "$CORRAL_LOG")"
        fi
        sleep 0.1
    done
    log "corral started: master $CORRAL_PID, port $port"
}

# wait_listeners PORT N [SECONDS]: poll until N sockets listen on PORT.
wait_listeners() {
    local port=$1 n=$2
    _listeners_are() { [ "$(count_listeners "$1")" = "$2" ]; }
    wait_for "${3:-10}" _listeners_are "$port" "$n"
}

# ---------------------------------------------------------------------------
# clients

CURL=(curl -q -sS --noproxy '*' -m 30)

# http_code URL [CURL ARGS...]: the status code only.
http_code() {
    local url=$1
    shift
    "${CURL[@]}" -o /dev/null -w '%{http_code}' "$@" "$url"
}

# py: python3 reading a script on stdin, with httpc.py (below) importable.
py() {
    PYTHONPATH="$TEST_DIR${PYTHONPATH:+:$PYTHONPATH}" python3 - "$@"
}

# httpc.py: a small raw HTTP/1.x client for the tests that need exact
# control over bytes on the wire (pipelining, malformed requests, timing).
cat > "$TEST_DIR/httpc.py" <<'EOF'
"""Raw HTTP/1.x client for corral's integration tests."""
import os
import socket
import sys
import time

PORT = int(os.environ.get("PORT", "0") or 0)


def fail(what, expected=None, got=None):
    sys.stderr.write("FAIL: %s\n" % what)
    if expected is not None or got is not None:
        sys.stderr.write("  expected: %r\n  got:      %r\n" % (expected, got))
    sys.exit(1)


def check(cond, what, expected=None, got=None):
    if not cond:
        fail(what, expected, got)


class Resp:
    def __init__(self, version, status, reason, headers, body, head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)] in order
        self.body = body
        self.head = head                # raw bytes of the head

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<%s %d %r %d body bytes>" % (self.version, self.status,
                                            self.headers, len(self.body))


class Conn:
    def __init__(self, port=None, timeout=15):
        self.s = socket.create_connection(("127.0.0.1", port or PORT),
                                          timeout=timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(262144)
        if not d:
            self.eof = True
            raise EOFError("connection closed by peer")
        self.buf += d

    def line(self):
        while b"\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def to_close(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out, self.buf = self.buf, b""
        return out

    def response(self, head_request=False, keep_1xx=False):
        """Read one response; framing as RFC 9112 section 6.3 says."""
        while True:
            raw = b""
            first = self.line()
            raw += first
            parts = first.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                fail("bad status line", "HTTP/1.x NNN ...", first)
            version, status = parts[0], int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = []
            while True:
                ln = self.line()
                raw += ln
                if ln in (b"\r\n", b"\n"):
                    break
                k, _, v = ln.decode("latin-1").partition(":")
                headers.append((k, v.strip()))
            r = Resp(version, status, reason, headers, b"", raw)
            if 100 <= status < 200 and status != 101:
                if keep_1xx:
                    return r
                continue
            break
        if head_request or status in (204, 304) or 100 <= status < 200:
            return r
        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        if te is not None and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self.line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.line() not in (b"\r\n", b"\n"):
                        pass
                    break
                body += self.exact(size)
                self.exact(2)
            r.body = body
        elif cl is not None:
            r.body = self.exact(int(cl))
        else:
            r.body = self.to_close()
        return r

    def closed_within(self, seconds):
        """True if the peer closes within <seconds> (data before it ignored)."""
        end = time.time() + seconds
        try:
            while time.time() < end:
                self.s.settimeout(max(0.05, end - time.time()))
                try:
                    self._fill()
                except socket.timeout:
                    return False
        except EOFError:
            return True
        except ConnectionResetError:
            return True
        return False

    def close(self):
        self.s.close()


def request(method, path, host="localhost", headers=(), body=None, version="HTTP/1.1"):
    """Bytes of a request; Content-Length added when a body is given."""
    lines = ["%s %s %s" % (method, path, version), "Host: %s" % host]
    lines += ["%s: %s" % kv for kv in headers]
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                    for k, _ in headers):
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data
EOF
