#!/usr/bin/env bash
# 36-max-connections-queue: a server's max_connections and the pool's wait
# queue (one worker, so the per-worker limit is the whole limit).
#   - max_connections 2, queue { size: 2, timeout: 5s }, 6 requests of 1 s
#     at once: 2 are served at once, 2 wait and are served after them, 2
#     get 503 at once (the queue is full); the backend never has more than
#     2 of them at a time;
#   - queue { size: 2, timeout: 300ms }, 4 requests of 1.5 s at once: the 2
#     waiting ones get 503 after about 300 ms;
#   - corralctl counts upstream_queued_total and
#     upstream_queue_rejected_total.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ctl-lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
name: t
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
upstreams:
  q:     { queue: { size: 2, timeout: 5s }, read_timeout: 20s,
           servers: [ { address: "127.0.0.1:$bport", max_connections: 2 } ] }
  short: { queue: { size: 2, timeout: 300ms }, read_timeout: 20s,
           servers: [ { address: "127.0.0.1:$bport", max_connections: 2 } ] }
routes:
  - { match: { path_prefix: /q/ }, upstream: q, strip_prefix: /q }
  - { match: { path_prefix: /short/ }, upstream: short, strip_prefix: /short }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import threading, time
from httpc import *

def burst(path, n):
    out = [None] * n
    def one(i):
        c = Conn(timeout=30)
        t0 = time.time()
        c.send(request("GET", path + "&i=%d" % i))
        r = c.response()
        out[i] = (r.status, round(time.time() - t0, 2))
        c.close()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
        time.sleep(0.05)        # in order: the first ones take the slots
    for t in ts:
        t.join()
    return out

got = burst("/q/slow?ms=1000", 6)
ok = sorted(t for s, t in got if s == 200)
refused = [t for s, t in got if s == 503]
check(len(ok) == 4 and len(refused) == 2, "2 served, 2 queued then served, 2 refused",
      "4 x 200, 2 x 503", got)
check(all(t < 0.8 for t in refused), "a full queue answers 503 at once", "< 0.8 s", refused)
check(ok[1] < 1.8 and ok[2] > 1.7, "the queued requests ran after the first two",
      "two near 1 s, two near 2 s", ok)

got = burst("/short/slow?ms=1500", 4)
ok = [t for s, t in got if s == 200]
late = [t for s, t in got if s == 503]
check(len(ok) == 2 and len(late) == 2, "2 served, 2 timed out in the queue",
      "2 x 200, 2 x 503", got)
check(all(0.2 < t < 1.3 for t in late), "503 after about the queue timeout (300 ms)",
      "0.2-1.3 s", late)
EOF

ctl_ok status --json --interval 0
printf '%s' "$CTL_OUT" > st.json
assert_eq "$(json_get st.json totals.counters.upstream_queued_total)" 4 "upstream_queued_total"
assert_eq "$(json_get st.json totals.counters.upstream_queue_rejected_total)" 4 \
    "upstream_queue_rejected_total"
check_logs
echo "PASS"
