#!/bin/bash
# bench/run.sh - corral, nginx and HAProxy side by side in front of the same
# nginx backend (`make bench` runs it after building corral). The harness is
# bench/bench.py; this checks the tools and starts it. bench/README.md says
# what is measured and how.
#
#   bench/run.sh                    full run: pinned and unpinned, 5 rounds x 10 s
#   QUICK=1 bench/run.sh            pinned, 1 round x 3 s, 2,000 idle connections
#   TARGETS="direct corral nginx" SCENARIOS="ka50 ka500" MODES=pinned bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

: "${CORRAL:=build/corral}"
: "${CORRALCTL:=build/corralctl}"
export CORRAL CORRALCTL
missing=""
for tool in nginx haproxy wrk taskset perf gnuplot python3; do
    command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    echo "bench: missing:$missing (make bench installs them: see BENCH_PKGS in the Makefile)" >&2
    exit 1
fi
for bin in "$CORRAL" "$CORRALCTL"; do
    [ -x "$bin" ] || { echo "bench: $bin not found (make, or set CORRAL and CORRALCTL)" >&2; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
    echo "bench: needs 2 CPUs (proxy on CPU 0, load and backend on CPU 1)" >&2
    exit 1
fi
exec python3 bench/bench.py
