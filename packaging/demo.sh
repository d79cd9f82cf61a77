#!/bin/bash
# make run: a demo backend on 127.0.0.1:9001 and corral on 127.0.0.1:8080
# in the foreground. Ctrl-C stops both.
set -u
cd "$(dirname "$0")/.."
conf=${1:-conf/corral.yaml}

# the backend runs in its own session so Ctrl-C reaches only corral; we
# stop the backend ourselves
setsid python3 tests/integration/backend.py --port 9001 --name demo \
    >/dev/null 2>&1 &
backend=$!
trap 'kill "$backend" 2>/dev/null; wait "$backend" 2>/dev/null' EXIT

for _ in $(seq 50); do
    curl -s -o /dev/null http://127.0.0.1:9001/ && break
    sleep 0.1
done
echo "demo backend on 127.0.0.1:9001 (pid $backend)"
echo "corral on 127.0.0.1:8080: try  curl http://127.0.0.1:8080/"
./build/corral -c "$conf" -l info &
corral=$!
trap 'kill -TERM "$corral" 2>/dev/null' INT TERM
wait "$corral"
rc=$?
# a signal interrupted the first wait; wait for corral's own exit
if kill -0 "$corral" 2>/dev/null; then
    wait "$corral"
    rc=$?
fi
exit "$rc"
