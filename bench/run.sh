#!/bin/bash
# bench/run.sh - corral side by side with nginx in front of the same backend.
#
# Backend: nginx, 1 worker, keep-alive, `return 200` with a small body.
# Targets: the backend direct (the ceiling), corral (2 workers), nginx as a
# proxy (2 workers, reuseport, upstream keepalive, HTTP/1.1 upstream).
# Load: wrk, keep-alive, small body. Rounds interleave the targets (order
# rotated each round) and the summary reports medians and min-max.
# Pinned: proxies on CPU 0, wrk and the backend on CPU 1.
#
#   bench/run.sh                ROUNDS=3 DURATION=10 CONNS=50
#   QUICK=1 bench/run.sh        one short round per target
set -euo pipefail
cd "$(dirname "$0")/.."

CORRAL=${CORRAL:-build/corral}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
if [ -n "${QUICK:-}" ]; then
    ROUNDS=1
    DURATION=3
fi
for tool in nginx wrk taskset; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required (apt-get install nginx-light wrk)" >&2; exit 1; }
done

out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

BPORT=$(free_port)
NPORT=$(free_port)
CPORT=$(free_port)

mkdir -p "$work/backend" "$work/nginx"
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
        listen 127.0.0.1:$BPORT;
        location / { return 200 "hello from the backend\n"; }
    }
}
EOF
cat > "$work/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$BPORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NPORT reuseport;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
cat > "$work/corral.yaml" <<EOF
name: bench
workers: 2
listen: [ { address: "127.0.0.1:$CPORT" } ]
upstreams:
  app: { keepalive: 64, servers: [ "127.0.0.1:$BPORT" ] }
routes:
  - { match: { path_prefix: / }, upstream: app }
EOF

taskset -c 1 nginx -p "$work/backend" -c "$work/backend/nginx.conf" &
pids+=($!)
taskset -c 0 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
taskset -c 0 "$CORRAL" -c "$work/corral.yaml" -l warn &
pids+=($!)
# optional: a build with counting compiled out (make EXTRA_CFLAGS=-DCR_NO_STATS),
# to measure what the shm counters cost in the same run
if [ -n "${CORRAL_NOSTATS:-}" ]; then
    SPORT=$(free_port)
    sed -e "s/127.0.0.1:$CPORT/127.0.0.1:$SPORT/" -e "s/^name: bench/name: bench-nostats/" \
        "$work/corral.yaml" > "$work/corral-nostats.yaml"
    taskset -c 0 "$CORRAL_NOSTATS" -c "$work/corral-nostats.yaml" -l warn &
    pids+=($!)
fi

for port in "$BPORT" "$NPORT" "$CPORT" ${SPORT:-}; do
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
    curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "bench: port $port not answering" >&2; exit 1; }
done

declare -A PORT=( [direct]=$BPORT [nginx]=$NPORT [corral]=$CPORT )
targets=(direct corral nginx)
if [ -n "${SPORT:-}" ]; then
    PORT[corral_nostats]=$SPORT
    targets+=(corral_nostats)
fi
echo "target round rps p50_ms p99_ms" > "$out/raw.txt"

to_ms() {   # wrk latency "1.23ms" / "456.00us" / "1.02s" -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
        else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 }
        else print v }'
}

for round in $(seq "$ROUNDS"); do
    n=${#targets[@]}
    for i in $(seq 0 $((n - 1))); do
        t=${targets[$(((i + round) % n))]}
        res=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
              "http://127.0.0.1:${PORT[$t]}/" 2>&1)
        rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$res")
        p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$res")")
        p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$res")")
        echo "$t $round $rps $p50 $p99" | tee -a "$out/raw.txt"
    done
done

{
    echo "# corral bench: small body, keep-alive, $CONNS connections, ${DURATION}s x $ROUNDS rounds"
    echo
    echo "| target | req/s median | min-max | p50 ms | p99 ms | vs direct | vs nginx |"
    echo "|---|---|---|---|---|---|---|"
    python3 - "$out/raw.txt" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
by = {}
for t, _, rps, p50, p99 in rows:
    by.setdefault(t, []).append((float(rps), float(p50), float(p99)))
med = {t: statistics.median(r[0] for r in v) for t, v in by.items()}
for t in ("direct", "corral", "nginx", "corral_nostats"):
    if t not in by:
        continue
    v = by[t]
    rps = [r[0] for r in v]
    print("| %s | %.0f | %.0f-%.0f | %.2f | %.2f | %.2f | %.2f |" % (
        t, med[t], min(rps), max(rps), statistics.median(r[1] for r in v),
        statistics.median(r[2] for r in v), med[t] / med["direct"], med[t] / med["nginx"]))
EOF
} > "$out/summary.md"
cat "$out/summary.md"
