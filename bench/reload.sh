#!/bin/bash
# bench/reload.sh - do clients see failures while the proxy reloads?
#
# Backend: nginx, 1 worker, `return 200` with a small body (as bench/run.sh).
# Targets, each with 2 workers (HAProxy: 1 worker process, 2 threads), each
# proxying to the backend, run one after the other, each freshly started:
#   corral            reload: SIGHUP to the master
#   nginx-reuseport   `listen ... reuseport`; reload: SIGHUP to the master
#   nginx-shared      one listening socket shared by the workers; SIGHUP
#   haproxy           -W master-worker, default options; SIGUSR2 to the master
#   haproxy-xfer      same, plus `stats socket ... expose-fd listeners` and
#                     `-x <that socket>` (HAProxy's documented listener hand-over)
#   nginx-reuseport-2-3  a control: nginx reuseport whose worker_processes
#                     alternates 2, 3, 2, ... at each reload, so that every
#                     other reload closes a listening socket (which a plain
#                     nginx reload does not: it keeps its sockets)
# First, bench/reload_client.py selftest provokes each failure kind on purpose
# and checks the client classifies it right.
# Load: bench/reload_client.py load - CONNS concurrent clients, a new TCP
# connection per request, `Connection: close`, 5 s timeout per request; every
# failure is classified (refused, reset, eof, timeout, non-2xx, other).
# Reloads: bench/reload_client.py reload - RELOADS signals to the master,
# INTERVAL seconds apart, the same schedule for every target, while the
# client runs. It also samples the master's children all along: the number
# of distinct worker pids seen shows whether the reloads really happened
# (expected: workers per generation x (reloads + 1)).
# Pinned: the proxy on CPU 0; the client, the reloader and the backend on CPU 1.
#
#   bench/reload.sh               RELOADS=50 INTERVAL=2 CONNS=100
#   QUICK=1 bench/reload.sh       RELOADS=10
#   TARGETS="corral haproxy" bench/reload.sh
# Results: bench/results/<timestamp>/reload.md and <target>.json.
set -euo pipefail
cd "$(dirname "$0")/.."

CORRAL=${CORRAL:-build/corral}
RELOADS=${RELOADS:-50}
INTERVAL=${INTERVAL:-2}         # seconds between two reloads, every target
CONNS=${CONNS:-100}
WARMUP=${WARMUP:-2}             # seconds of load before the first reload
TAIL=${TAIL:-3}                 # seconds of load after the last one
TARGETS=${TARGETS:-corral nginx-reuseport nginx-shared haproxy haproxy-xfer nginx-reuseport-2-3}
if [ -n "${QUICK:-}" ]; then
    RELOADS=10
fi
for tool in nginx haproxy taskset python3 curl; do
    command -v "$tool" >/dev/null || {
        echo "bench: $tool is required (apt-get install nginx-light haproxy curl python3)" >&2
        exit 1
    }
done
for t in $TARGETS; do
    case $t in
        corral|nginx-reuseport|nginx-shared|haproxy|haproxy-xfer|nginx-reuseport-2-3) ;;
        *) echo "bench: unknown target $t" >&2; exit 1 ;;
    esac
done
case " $TARGETS " in
    *" corral "*) [ -x "$CORRAL" ] || { echo "bench: $CORRAL not found (make, or set CORRAL)" >&2; exit 1; } ;;
esac

out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
work=$(mktemp -d)
pids=()

# Is <pid> a live process (not a zombie)?
running() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# Stop <pid> (a master we started): SIGTERM, up to 10 s, then SIGKILL. Any of
# its workers still there afterwards (there should be none) get SIGKILL, by pid,
# and only if they still run one of the programs this script starts.
stop_pid() {
    local p=$1 kids k comm
    kids=$(cat "/proc/$p/task/$p/children" 2>/dev/null || true)
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do
        running "$p" || break
        sleep 0.1
    done
    if running "$p"; then
        echo "bench: pid $p still running 10 s after SIGTERM, SIGKILL" >&2
        kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
    for k in $kids; do
        for _ in $(seq 50); do
            running "$k" || break
            sleep 0.1
        done
        comm=$(cat "/proc/$k/comm" 2>/dev/null || true)
        case $comm in
            nginx|corral|haproxy)
                echo "bench: worker $k ($comm) outlived its master, SIGKILL" >&2
                kill -KILL "$k" 2>/dev/null || true ;;
        esac
    done
}

cleanup() {
    local p
    for p in "${pids[@]}"; do
        running "$p" && stop_pid "$p"
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait (at most 10 s) until http://127.0.0.1:<port>/ answers 2xx.
wait_http() {
    for _ in $(seq 100); do
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
        sleep 0.1
    done
    return 1
}

# the client must see each failure kind for what it is, or zeros mean nothing
python3 bench/reload_client.py selftest > "$out/selftest.json" || {
    echo "bench: reload_client.py selftest failed, see $out/selftest.json" >&2
    exit 1
}

BPORT=$(free_port)
mkdir -p "$work/backend"
cat > "$work/backend/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/backend/nginx.pid;
error_log $work/backend/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$BPORT backlog=4096;
        location / { return 200 "hello from the backend\n"; }
    }
}
EOF
taskset -c 1 nginx -p "$work/backend" -c "$work/backend/nginx.conf" &
pids+=($!)
wait_http "$BPORT" || { echo "bench: backend on port $BPORT not answering" >&2; exit 1; }

# nginx.conf for target <t> listening on <listen> with <n> workers
nginx_conf() {
    cat <<EOF
worker_processes $3;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log notice;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$BPORT; keepalive 64; }
    server {
        listen $2;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

# Write target <t>'s config for <port>; set SIG (reload signal), PER_GEN
# (worker processes per generation; "2,3": they alternate) and SWAP (the
# reloader's options to change the config before each reload, if it does).
configure() {
    local t=$1 port=$2 listen
    SWAP=()
    case $t in
    corral)
        SIG=HUP; PER_GEN=2
        cat > "$work/corral.yaml" <<EOF
name: reload-bench
workers: 2
listen: [ { address: "127.0.0.1:$port" } ]
upstreams:
  app: { keepalive: 64, servers: [ "127.0.0.1:$BPORT" ] }
routes:
  - { match: { path_prefix: / }, upstream: app }
EOF
        ;;
    nginx-reuseport|nginx-shared)
        SIG=HUP; PER_GEN=2
        listen="127.0.0.1:$port"
        [ "$t" = nginx-reuseport ] && listen="$listen reuseport"
        mkdir -p "$work/$t"
        nginx_conf "$t" "$listen" 2 > "$work/$t/nginx.conf"
        ;;
    nginx-reuseport-2-3)
        SIG=HUP; PER_GEN=2,3
        mkdir -p "$work/$t"
        nginx_conf "$t" "127.0.0.1:$port reuseport" 2 > "$work/$t/nginx.conf.2"
        nginx_conf "$t" "127.0.0.1:$port reuseport" 3 > "$work/$t/nginx.conf.3"
        cp "$work/$t/nginx.conf.2" "$work/$t/nginx.conf"
        SWAP=(--config-path "$work/$t/nginx.conf" --configs "$work/$t/nginx.conf.2"
              "$work/$t/nginx.conf.3")
        ;;
    haproxy|haproxy-xfer)
        SIG=USR2; PER_GEN=1
        mkdir -p "$work/$t"
        {
            echo "global"
            echo "    nbthread 2"
            echo "    maxconn 4096"
            if [ "$t" = haproxy-xfer ]; then
                echo "    stats socket $work/$t/admin.sock mode 600 level admin expose-fd listeners"
            fi
            cat <<EOF
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:$port
    default_backend app
backend app
    server s1 127.0.0.1:$BPORT
EOF
        } > "$work/$t/haproxy.cfg"
        ;;
    esac
}

# Start target <t> on CPU 0; set MASTER.
start() {
    local t=$1
    case $t in
    corral)
        taskset -c 0 "$CORRAL" -c "$work/corral.yaml" -l notice 2> "$out/$t.log" & ;;
    nginx-*)
        taskset -c 0 nginx -p "$work/$t" -c "$work/$t/nginx.conf" 2> "$out/$t.log" & ;;
    haproxy)
        taskset -c 0 haproxy -W -f "$work/$t/haproxy.cfg" 2> "$out/$t.log" & ;;
    haproxy-xfer)
        taskset -c 0 haproxy -W -f "$work/$t/haproxy.cfg" -x "$work/$t/admin.sock" \
            2> "$out/$t.log" & ;;
    esac
    MASTER=$!
    pids+=("$MASTER")
}

DURATION=$(python3 -c "print($WARMUP + $RELOADS * $INTERVAL + $TAIL)")
RTAIL=$(python3 -c "print(max(0.5, $TAIL - 1))")
echo "bench: $RELOADS reloads every ${INTERVAL}s, $CONNS clients, ${DURATION}s per target; results in $out"

for t in $TARGETS; do
    port=$(free_port)
    configure "$t" "$port"
    start "$t"
    if ! wait_http "$port"; then
        echo "bench: $t on port $port not answering; its log:" >&2
        cat "$out/$t.log" >&2
        exit 1
    fi
    sleep 1
    echo "bench: $t (master pid $MASTER, port $port, reload by SIG$SIG)"
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    taskset -c 1 python3 bench/reload_client.py load --port "$port" -c "$CONNS" \
        -d "$DURATION" --timeout 5 --label "$t" > "$work/$t.load.json" &
    lpid=$!
    pids+=("$lpid")
    taskset -c 1 python3 bench/reload_client.py reload --pid "$MASTER" --signal "$SIG" \
        --port "$port" --count "$RELOADS" --interval "$INTERVAL" --delay "$WARMUP" \
        --tail "$RTAIL" ${SWAP[@]+"${SWAP[@]}"} \
        > "$work/$t.reload.json" &
    rpid=$!
    pids+=("$rpid")
    rc=0
    wait "$rpid" || rc=$?
    [ "$rc" = 0 ] || { echo "bench: reloader for $t failed ($rc)" >&2; exit 1; }
    wait "$lpid" || rc=$?
    [ "$rc" = 0 ] || { echo "bench: client for $t failed ($rc)" >&2; exit 1; }
    load_after=$(cut -d' ' -f1 /proc/loadavg)
    serving=0
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/" && serving=1
    stop_pid "$MASTER"
    [ ! -f "$work/$t/error.log" ] || cp "$work/$t/error.log" "$out/$t.error.log"
    python3 - "$t" "$PER_GEN" "$SIG" "$serving" "$load_before $load_after" \
        "$work/$t.load.json" "$work/$t.reload.json" > "$out/$t.json" <<'EOF'
import json, sys
t, per_gen, sig, serving, loadavg, lf, rf = sys.argv[1:]
print(json.dumps({"target": t, "workers_per_generation": [int(x) for x in per_gen.split(",")],
                  "signal": sig,
                  "serving_after": serving == "1",
                  "loadavg_1min_before_after": [float(x) for x in loadavg.split()],
                  "load": json.load(open(lf)),
                  "reload": json.load(open(rf))}, indent=1))
EOF
    python3 - "$out/$t.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); l, r = d["load"], d["reload"]
print("bench:   %d requests, %d ok, %d failed; %d reloads sent, %d worker pids seen" % (
    l["requests"], l["ok"], l["failed"], r["reloads_sent"], r["distinct_worker_pids"]))
EOF
done

python3 - "$out" "$RELOADS" "$INTERVAL" "$CONNS" "$DURATION" $TARGETS > "$out/reload.md" <<'EOF'
import bisect, json, os, sys
out, reloads, interval, conns, duration = sys.argv[1:6]
targets = sys.argv[6:]
print("# reload bench: %s reloads every %s s, %s clients (new connection per request, "
      "Connection: close), %s s per target" % (reloads, interval, conns, duration))
print()
print("| target | reloads sent | reloads done in time | worker pids seen / expected "
      "| listen sockets seen | requests | ok | refused | reset | eof | timeout | non-2xx "
      "| other | failure rate | p99 ms | max ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
notes = []
for t in targets:
    d = json.load(open(os.path.join(out, t + ".json")))
    l, r = d["load"], d["reload"]
    per_gen = d["workers_per_generation"]
    expected = sum(per_gen[i % len(per_gen)] for i in range(r["reloads_sent"] + 1))
    seen = r["distinct_worker_pids"]
    lats = r["new_worker_after_s"]
    done = sum(1 for x in lats if x is not None)
    ok_reload = (r["reloads_sent"] == r["reloads_requested"] and done == r["reloads_sent"]
                 and seen >= expected and r["master_alive"] and d["serving_after"])
    mark = "%d / %d" % (seen, expected) + ("" if ok_reload else " **CHECK**")
    rate = l["failure_rate"] or 0.0
    lat = l["latency_ms"]
    print("| %s | %d | %d | %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %.4f%% | %s | %s |"
          % (t, r["reloads_sent"], done, mark, r["distinct_listen_sockets"], l["requests"],
             l["ok"], l["refused"], l["reset"], l["eof"], l["timeout"], l["non2xx"], l["other"],
             100 * rate, lat["p99"], lat["max"]))
    # failures that started within 1 s after a reload signal
    ep = r["reload_epochs"]
    near = 0
    for f in l["failure_epochs"]:
        i = bisect.bisect_right(ep, f)
        near += i > 0 and f - ep[i - 1] < 1.0
    n = []
    if l["failed"]:
        n.append("%d of %d recorded failures started < 1 s after a reload signal; by phase: %s"
                 % (near, len(l["failure_epochs"]), ", ".join(
                     "%s %d" % kv for kv in sorted(l["failures_by_phase"].items()))))
    if l["reset_after_response"]:
        n.append("%d resets after a complete response (counted ok)" % l["reset_after_response"])
    if not ok_reload:
        n.append("reload check failed: sent %d of %d, %d done in time, pids %d of %d, master "
                 "alive %s, serving after %s, error %s"
                 % (r["reloads_sent"], r["reloads_requested"], done, seen, expected,
                    r["master_alive"], d["serving_after"], r["error"]))
    got = sorted(x for x in lats if x is not None)
    if got:
        n.append("new workers seen %.3f s (median) / %.3f s (max) after the signal"
                 % (got[len(got) // 2], got[-1]))
    n.append("%.0f req/s; at most %d children of the master at once; deepest accept queue "
             "seen %s; machine load average %s before, %s after"
             % (l["req_per_s"], r["max_live_children"], r["max_accept_queue"],
                *d["loadavg_1min_before_after"]))
    if t == "corral":
        try:
            for line in open(os.path.join(out, "corral.log")):
                if "reload mechanism" in line:
                    n.append("corral log: " + line[line.index("reload mechanism"):].strip())
                    break
        except OSError:
            pass
    notes.append("- %s: %s" % (t, "; ".join(n)))
print()
print("Reloads done in time: reloads after which a new worker pid appeared before the next "
      "reload was sent.")
print("Expected worker pids: workers per generation (2; HAProxy 1 process with 2 threads) "
      "x (reloads + 1). **CHECK** marks a target whose reloads could not be confirmed. "
      "Listen sockets seen: distinct listening sockets (inodes) on the target's port over "
      "the run; a reload that hands its sockets over keeps the count flat, one that binds "
      "new sockets (and closes the old) adds to it.")
print()
print("\n".join(notes))
EOF
echo
cat "$out/reload.md"
