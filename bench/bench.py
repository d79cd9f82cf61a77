#!/usr/bin/env python3
"""bench/bench.py - corral, nginx and HAProxy side by side (make bench).

Started by bench/run.sh, which checks the tools and the fd limit; every knob
is an environment variable (see bench/README.md). What it does, per mode
(pinned: proxies on CPU 0, wrk, clients and the backend on CPU 1, with
taskset; unpinned: no taskset):

 1. starts the backend (nginx, 1 worker, `/` small body, `/16k` 16 KiB) and
    the targets, each proxying to it with 2 workers (HAProxy: 2 threads), no
    access log, 64 idle upstream connections kept per worker;
 2. for each scenario, ROUNDS rounds of one wrk run per target, the target
    order rotated each round; around each run it samples the CPU time
    (utime + stime, /proc/PID/stat) of every process of the target, and for
    corral the requests of each worker (corralctl workers --json);
 3. in the first mode only: syscalls per request (perf stat over exactly
    SYSCALL_REQUESTS keep-alive requests from bench/clients.py count) and the
    memory of IDLE idle keep-alive connections (fresh instances; RSS and PSS
    from /proc/PID/smaps_rollup before and after bench/clients.py idle).

Results: bench/results/<timestamp>/summary.md, results.json, raw/ (every wrk
output, perf output and client output) and reqs_per_cpu.png. Exit status 1
when any target gave errors (socket errors or non-2xx responses), after
writing the summary; every process started here is stopped by pid on exit.
"""
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
UPSTREAM_KEEPALIVE = 64         # idle upstream connections kept per worker, every proxy
CAPACITY = 4000                 # client connections each proxy is sized for, but in
                                # the memory test (500 clients + as many upstream fit)
MEMORY_BASE_CAPACITY = 1000     # the memory test's small-sized reference instance
PROXIES = ("corral", "nginx", "haproxy")
PEERS = ("nginx", "haproxy")

SCENARIOS = {
    "ka50": dict(conns=50, path="/", close=False,
                 title="small body, keep-alive, 50 connections"),
    "ka500": dict(conns=500, path="/", close=False,
                  title="small body, keep-alive, 500 connections"),
    "close50": dict(conns=50, path="/", close=True,
                    title="small body, new connection per request (Connection: close), "
                          "50 connections"),
    "16k50": dict(conns=50, path="/16k", close=False,
                  title="16 KiB body, keep-alive, 50 connections"),
}


def env_int(name, default, quick):
    return int(os.environ.get(name) or (quick if os.environ.get("QUICK") else default))


def env_list(name, default, quick=None):
    v = os.environ.get(name) or (quick if quick and os.environ.get("QUICK") else default)
    return v.split()


class Cfg:
    quick = bool(os.environ.get("QUICK"))
    rounds = env_int("ROUNDS", 5, 1)
    duration = env_int("DURATION", 10, 2)
    idle = env_int("IDLE", 10000, 2000)
    syscall_requests = env_int("SYSCALL_REQUESTS", 20000, 5000)
    wrk_threads = env_int("WRK_THREADS", 2, 2)
    modes = env_list("MODES", "pinned unpinned", "pinned")
    scenarios = env_list("SCENARIOS", " ".join(SCENARIOS))
    targets = env_list("TARGETS", "direct corral nginx haproxy")
    corral = os.path.abspath(os.environ.get("CORRAL") or os.path.join(ROOT, "build/corral"))
    corralctl = os.path.abspath(os.environ.get("CORRALCTL")
                                or os.path.join(ROOT, "build/corralctl"))
    # optional: a build with counting compiled out (make EXTRA_CFLAGS=-DCR_NO_STATS),
    # to measure what the shm counters cost in the same run
    corral_nostats = os.environ.get("CORRAL_NOSTATS")


T0 = time.monotonic()


def log(msg):
    print("bench: %4.0fs %s" % (time.monotonic() - T0, msg), flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------
# processes: everything started here is a child, stopped by pid

def children(pid):
    """Direct children of pid, from every thread's children list."""
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def family(pid):
    """pid and all its descendants: every process of a proxy."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Procs:
    """The processes this run started; stop() and stop_all() by pid only."""

    def __init__(self):
        self.running = []

    def start(self, argv, cpu=None, **kw):
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv   # taskset execs: same pid
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, **kw)
        self.running.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=10):
        kids = family(p.pid)[1:]
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                log("pid %d still running %d s after signal %d, SIGKILL" % (p.pid, grace, sig))
                p.kill()
                p.wait()
        # workers end with their master; one that does not is killed, by pid,
        # and only if it still runs one of the programs started here
        for k in kids:
            end = time.monotonic() + 5
            while alive(k) and time.monotonic() < end:
                time.sleep(0.05)
            if alive(k) and comm(k) in ("nginx", "corral", "haproxy"):
                log("pid %d (%s) outlived its parent, SIGKILL" % (k, comm(k)))
                os.kill(k, signal.SIGKILL)
        if p in self.running:
            self.running.remove(p)

    def stop_all(self):
        for p in reversed(list(self.running)):
            self.stop(p)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(port, path="/"):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def run(argv, timeout, cpu=None, check=True):
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + argv
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode:
        raise BenchError("%s exited %d: %s" % (argv[0] if cpu is None else argv[3],
                                               r.returncode, (r.stderr or r.stdout)[-2000:]))
    return r


# ---------------------------------------------------------------------------
# configurations

def backend_conf(d, port, nofile):
    os.makedirs(os.path.join(d, "www"), exist_ok=True)
    with open(os.path.join(d, "www", "16k"), "wb") as f:
        f.write((b"0123456789abcdef" * 1024))
    return """worker_processes 1;
worker_rlimit_nofile %(nofile)d;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        root %(d)s/www;
        location = / { return 200 "hello from the backend\\n"; }
        location = /16k { default_type application/octet-stream; }
    }
}
""" % dict(d=d, port=port, nofile=nofile)


def nginx_worker_connections(capacity):
    """Just above the need: one worker's share of the clients (reuseport
    spreads them; 15% for the imbalance) plus its upstream connections."""
    return math.ceil(capacity / 2 * 1.15) + UPSTREAM_KEEPALIVE


def nginx_conf(d, port, bport, worker_connections, nofile):
    return """worker_processes 2;
worker_rlimit_nofile %(nofile)d;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections %(wc)d; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream app { server 127.0.0.1:%(bport)d; keepalive %(ka)d; }
    server {
        listen 127.0.0.1:%(port)d reuseport backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
""" % dict(d=d, port=port, bport=bport, wc=worker_connections, nofile=nofile,
           ka=UPSTREAM_KEEPALIVE)


def haproxy_conf(port, bport, maxconn):
    # no `log` line: HAProxy logs nothing, as the others have no access log.
    # `no strict-limits`: HAProxy sets aside 2 descriptors per connection and
    # refuses to start if the fd limit is below that; the idle clients need
    # one each (plus a few upstream), which the limit covers.
    return """global
    nbthread 2
    maxconn %(maxconn)d
    no strict-limits
defaults
    mode http
    maxconn %(maxconn)d
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    http-reuse always
frontend fe
    bind 127.0.0.1:%(port)d
    default_backend app
backend app
    server s1 127.0.0.1:%(bport)d
""" % dict(port=port, bport=bport, maxconn=maxconn)


def corral_conf(name, port, bport, max_connections):
    # stats stay on (they are always on unless compiled out); corral has no
    # access log
    return """name: %(name)s
workers: 2
listen: [ { address: "127.0.0.1:%(port)d", backlog: 4096 } ]
limits: { max_connections: %(maxc)d, idle_timeout: 300s }
upstreams:
  app: { keepalive: %(ka)d, servers: [ "127.0.0.1:%(bport)d" ] }
routes:
  - { match: { path_prefix: / }, upstream: app }
""" % dict(name=name, port=port, bport=bport, maxc=max_connections, ka=UPSTREAM_KEEPALIVE)


class Target:
    """One running server: the backend, or a proxy in front of it."""

    def __init__(self, name, port, proc, corral_name=None):
        self.name, self.port, self.proc = name, port, proc
        self.corral_name = corral_name

    def pids(self):
        if self.proc.poll() is not None:
            raise BenchError("%s (pid %d) exited with %s" % (self.name, self.proc.pid,
                                                             self.proc.returncode))
        return family(self.proc.pid)


class Lab:
    """Starts targets in a scratch directory; logs go to the results."""

    def __init__(self, procs, work, out, nofile):
        self.procs, self.work, self.out, self.nofile = procs, work, out, nofile
        self.n = 0

    def start(self, kind, tag, cpu, bport=None, capacity=CAPACITY, binary=None):
        """Start a <kind> target; capacity is the client connections it must
        hold (sizes nginx's worker_connections, HAProxy's maxconn and
        corral's max_connections)."""
        self.n += 1
        d = os.path.join(self.work, "%s-%d" % (kind, self.n))
        os.makedirs(d)
        port = free_port()
        logf = open(os.path.join(self.out, "raw", "%s-%s.log" % (tag, kind)), "w")
        corral_name = None
        if kind == "backend":
            conf = backend_conf(d, port, self.nofile)
            argv, kids = ["nginx", "-p", d, "-c", "nginx.conf"], 1
        elif kind == "nginx":
            wc = nginx_worker_connections(capacity)
            conf = nginx_conf(d, port, bport, wc, self.nofile)
            argv, kids = ["nginx", "-p", d, "-c", "nginx.conf"], 2
        elif kind == "haproxy":
            conf = haproxy_conf(port, bport, capacity + 200)
            argv, kids = ["haproxy", "-W", "-f", os.path.join(d, "haproxy.cfg")], 1
        else:   # corral, or corral-nostats with its own binary
            corral_name = "bench%d-%d" % (os.getpid(), self.n)
            conf = corral_conf(corral_name, port, bport, capacity)
            argv = [binary or Cfg.corral, "-c", os.path.join(d, "corral.yaml"), "-l", "warn"]
            kids = 2
        fname = {"backend": "nginx.conf", "nginx": "nginx.conf",
                 "haproxy": "haproxy.cfg"}.get(kind, "corral.yaml")
        with open(os.path.join(d, fname), "w") as f:
            f.write(conf)
        p = self.procs.start(argv, cpu=cpu, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()                # the child has its own descriptor
        t = Target(kind, port, p, corral_name)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if p.poll() is not None:
                break
            if http_ok(port) and len(family(p.pid)) == 1 + kids:
                log("started %s (pid %d, port %d)" % (kind if not binary else binary, p.pid, port))
                return t
            time.sleep(0.1)
        raise BenchError("%s on port %d did not come up with %d workers; see raw/%s-%s.log"
                         % (kind, port, kids, tag, kind))


# ---------------------------------------------------------------------------
# measurements

def cpu_ticks(pids):
    """{pid: (utime, stime)} in clock ticks."""
    total = {}
    for p in pids:
        with open("/proc/%d/stat" % p) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        total[p] = (int(rest[11]), int(rest[12]))
    return total


def cpu_seconds(before, after):
    """(user, system) CPU seconds spent between two cpu_ticks readings."""
    missing = set(before) - set(after)
    if missing:
        raise BenchError("processes %s went away during the run" % sorted(missing))
    u = sum(after[p][0] - before.get(p, (0, 0))[0] for p in after)
    s = sum(after[p][1] - before.get(p, (0, 0))[1] for p in after)
    return u / CLK_TCK, s / CLK_TCK


def memory(pids):
    """Summed Rss and Pss (bytes) of pids, from smaps_rollup."""
    rss = pss = 0
    for p in pids:
        with open("/proc/%d/smaps_rollup" % p) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Rss":
                    rss += int(v.split()[0]) * 1024
                elif k == "Pss":
                    pss += int(v.split()[0]) * 1024
    return rss, pss


def established(port):
    """Established TCP connections whose local port is port (server side)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port:
                n += 1
    return n


def corral_workers(t):
    """{pid: requests} of corral's workers, from its shm segment."""
    r = run([Cfg.corralctl, "-n", t.corral_name, "workers", "--json", "--interval", "0"], 10)
    return {w["pid"]: w["requests"] for w in json.loads(r.stdout)["workers"]}


def to_ms(v):
    for suffix, scale in (("us", 1e-3), ("ms", 1.0), ("m", 60e3), ("s", 1e3)):
        if v.endswith(suffix):
            return float(v[:-len(suffix)]) * scale
    return float(v)


def parse_wrk(text):
    def grab(pattern, conv=float, default=None):
        m = re.search(pattern, text, re.M)
        if not m:
            if default is None:
                raise BenchError("unexpected wrk output:\n" + text)
            return default
        return conv(m.group(1)) if m.lastindex == 1 else [conv(x) for x in m.groups()]
    errs = grab(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                int, [0, 0, 0, 0])
    return dict(requests=grab(r"^\s*(\d+) requests in", int),
                rps=grab(r"^Requests/sec:\s+([\d.]+)"),
                p50_ms=grab(r"^\s+50%\s+(\S+)", to_ms),
                p99_ms=grab(r"^\s+99%\s+(\S+)", to_ms),
                errors=dict(zip(("connect", "read", "write", "timeout"), errs),
                            non2xx=grab(r"Non-2xx or 3xx responses: (\d+)", int, 0)))


def wrk_run(t, sc, cpu, rawname):
    s = SCENARIOS[sc]
    argv = ["wrk", "-t%d" % Cfg.wrk_threads, "-c%d" % s["conns"], "-d%ds" % Cfg.duration,
            "--latency", "--timeout", "5s"]
    if s["close"]:
        argv += ["-H", "Connection: close"]
    argv.append("http://127.0.0.1:%d%s" % (t.port, s["path"]))
    pids = t.pids()
    workers0 = corral_workers(t) if t.corral_name else None
    c0 = cpu_ticks(pids)
    r = run(argv, Cfg.duration + 60, cpu=cpu)
    c1 = cpu_ticks(t.pids())
    res = parse_wrk(r.stdout)
    with open(rawname, "w") as f:
        f.write(" ".join(argv) + "\n" + r.stdout + r.stderr)
    res["user_s"], res["sys_s"] = cpu_seconds(c0, c1)
    res["cpu_s"] = res["user_s"] + res["sys_s"]
    res["req_per_cpu_s"] = res["requests"] / res["cpu_s"] if res["cpu_s"] else None
    if workers0 is not None:
        w1 = corral_workers(t)
        res["worker_requests"] = sorted(w1[p] - workers0.get(p, 0) for p in w1)
    return res


TRACEFS = "/sys/kernel/tracing/events/syscalls"
SYSCALLS = ("read readv recvfrom recvmsg recvmmsg write writev sendto sendmsg sendmmsg "
            "sendfile64 splice epoll_wait epoll_pwait epoll_pwait2 epoll_ctl poll ppoll "
            "accept accept4 connect socket close shutdown setsockopt getsockopt "
            "getsockname getpeername ioctl fcntl clock_gettime gettimeofday futex "
            "mmap munmap madvise mprotect brk getpid gettid timerfd_settime "
            "eventfd2 rt_sigprocmask openat newfstatat").split()


def perf_syscalls(pids, seconds=None, argv=None, cpu=None, raw=None):
    """Syscalls entered by pids (threads included) while argv runs (or for
    seconds): ({name: count}, total, argv's stdout)."""
    # every syscall is counted by raw_syscalls:sys_enter; only the usual
    # suspects of a proxy are counted one by one, since attaching (and
    # detaching) every syscalls:sys_enter_* tracepoint takes perf ~30 s
    events = ["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + n for n in SYSCALLS
                                           if os.path.isdir(TRACEFS + "/sys_enter_" + n)]
    perf = ["perf", "stat", "-x", ",", "-e", ",".join(events), "-p", ",".join(map(str, pids))]
    if argv is None:
        r = run(perf + ["--", "sleep", str(seconds)], seconds + 30)
        text, out = r.stderr, ""
    else:
        p = subprocess.Popen(perf, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)         # perf attaches to every thread first
            if p.poll() is not None:
                raise BenchError("perf stat failed: " + p.stderr.read()[-2000:])
            out = run(argv, 300, cpu=cpu).stdout
        finally:
            p.send_signal(signal.SIGINT)
            try:
                text = p.communicate(timeout=30)[1]
            except subprocess.TimeoutExpired:
                p.kill()
                raise BenchError("perf stat did not stop")
    if raw:
        with open(raw, "w") as f:
            f.write(text)
    counts, total = {}, None
    for line in text.splitlines():
        f = line.split(",")
        if len(f) < 3:
            continue
        if f[0] == "<not counted>":     # no thread ran while perf watched
            f[0] = "0"
        if not f[0].isdigit():
            continue
        if f[2] == "raw_syscalls:sys_enter":
            total = int(f[0])
        elif f[2].startswith("syscalls:sys_enter_") and int(f[0]):
            counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0])
    if total is None:
        raise BenchError("perf stat gave no syscall count (is perf allowed here?):\n" + text)
    return counts, total, out


# ---------------------------------------------------------------------------
# phases

def proxy_targets():
    names = [t for t in Cfg.targets if t in PROXIES]
    if Cfg.corral_nostats:
        names.append("corral-nostats")
    return names


def start_proxy(lab, name, tag, cpu, bport, capacity):
    if name == "corral-nostats":
        t = lab.start("corral", tag + "-nostats", cpu, bport, capacity, Cfg.corral_nostats)
        t.name = name
        return t
    return lab.start(name, tag, cpu, bport, capacity)


def throughput(lab, mode, results):
    cpu_proxy, cpu_load = (0, 1) if mode == "pinned" else (None, None)
    backend = lab.start("backend", mode, cpu_load)
    if not http_ok(backend.port, "/16k"):
        raise BenchError("backend does not serve /16k")
    targets = {}
    if "direct" in Cfg.targets:
        targets["direct"] = backend
    for name in proxy_targets():
        targets[name] = start_proxy(lab, name, mode, cpu_proxy, backend.port, CAPACITY)
    names = list(targets)
    for sc in Cfg.scenarios:
        for rnd in range(Cfg.rounds):
            for i in range(len(names)):
                name = names[(i + rnd) % len(names)]
                raw = os.path.join(lab.out, "raw", "%s-%s-%s-r%d.txt" % (mode, sc, name, rnd + 1))
                res = wrk_run(targets[name], sc, cpu_load, raw)
                res.update(mode=mode, scenario=sc, target=name, round=rnd + 1)
                results["runs"].append(res)
                nerr = sum(res["errors"].values())
                log("%-8s %-7s r%d %-14s %9.0f req/s p50 %6.2f ms p99 %7.2f ms "
                    "%8.0f req/CPU-s%s" % (mode, sc, rnd + 1, name, res["rps"], res["p50_ms"],
                                           res["p99_ms"], res["req_per_cpu_s"] or 0,
                                           "  ERRORS %s" % res["errors"] if nerr else ""))
    for name in proxy_targets():
        lab.procs.stop(targets[name].proc)
    lab.procs.stop(backend.proc)


def syscalls(lab, results):
    backend = lab.start("backend", "syscalls", 1)
    for name in proxy_targets():
        t = start_proxy(lab, name, "syscalls", 0, backend.port, CAPACITY)
        n = Cfg.syscall_requests
        client = ["python3", os.path.join(HERE, "clients.py"), "count", "--port", str(t.port),
                  "-n", str(n), "-c", "50"]
        run(client[:5] + ["-n", "1000", "-c", "50"], 120, cpu=1)      # warm up the pools
        idle, idle_total, _ = perf_syscalls(t.pids(), seconds=1)
        counts, total, out = perf_syscalls(
            t.pids(), argv=client, cpu=1,
            raw=os.path.join(lab.out, "raw", "syscalls-%s.perf.txt" % name))
        c = json.loads(out)
        # the syscalls made for at least 1 in 100 requests, the rest as "other"
        top = [kv for kv in sorted(counts.items(), key=lambda kv: -kv[1])[:8]
               if kv[1] >= n / 100]
        other = total - sum(v for _, v in top)
        if other >= n / 100:
            top.append(("other", other))
        results["syscalls"][name] = dict(
            requests=n, total=total, per_request=total / n, idle_per_s=idle_total,
            client=c, top=[(k, v / n) for k, v in top])
        log("syscalls %-14s %.2f per request (%s); idle %.1f/s" % (
            name, total / n, ", ".join("%s %.2f" % (k, v / n) for k, v in top[:5]),
            idle_total))
        lab.procs.stop(t.proc)
    lab.procs.stop(backend.proc)


def warm_memory(t):
    """(RSS, PSS) of target t after 2,000 requests."""
    run(["python3", os.path.join(HERE, "clients.py"), "count", "--port", str(t.port),
         "-n", "2000", "-c", "20"], 120, cpu=1)
    time.sleep(0.5)
    return memory(t.pids())


def idle_memory(lab, results):
    backend = lab.start("backend", "memory", 1)
    n = Cfg.idle
    for name in proxy_targets():
        # the reference: the same proxy sized for few connections, warmed up;
        # what the sized instance holds above it, before any client (nginx's
        # preallocated connection slots), is part of the cost per connection
        t = start_proxy(lab, name, "memory-base", 0, backend.port, MEMORY_BASE_CAPACITY)
        base = warm_memory(t)
        lab.procs.stop(t.proc)
        t = start_proxy(lab, name, "memory", 0, backend.port, n)
        before = warm_memory(t)
        est0 = established(t.port)
        rawf = open(os.path.join(lab.out, "raw", "memory-%s.client.txt" % name), "w")
        c = lab.procs.start(["python3", os.path.join(HERE, "clients.py"), "idle",
                             "--port", str(t.port), "-n", str(n), "--timeout", "120",
                             "--hold", "120"], cpu=1, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
        try:
            line = c.stdout.readline()      # the client's own --timeout bounds this
            rawf.write(line)
            ready = json.loads(line or "{}")
            if ready.get("answered") != n:
                raise BenchError("idle client against %s: %s" % (name, line.strip()))
            time.sleep(1)
            after = memory(t.pids())
            held = established(t.port) - est0
            c.stdin.close()
            line = c.stdout.readline()
            rawf.write(line)
            done = json.loads(line or "{}")
        finally:
            lab.procs.stop(c)
            rawf.close()
        if done.get("still_open") != n or held < n:
            raise BenchError("%s: %s of %d idle connections still open after measuring "
                             "(%d established at the proxy)" % (name, done.get("still_open"),
                                                                n, held))
        results["memory"][name] = dict(
            connections=n, processes=len(t.pids()), rss_base=base[0], pss_base=base[1],
            rss_before=before[0], rss_after=after[0], pss_before=before[1], pss_after=after[1],
            rss_per_conn=(after[0] - base[0]) / n, pss_per_conn=(after[1] - base[1]) / n,
            rss_growth_per_conn=(after[0] - before[0]) / n,
            pss_growth_per_conn=(after[1] - before[1]) / n, setup_s=ready["seconds"])
        log("memory   %-14s %d idle connections: RSS %+.0f B/conn, PSS %+.0f B/conn "
            "(growth alone: RSS %+.0f, PSS %+.0f)" % (
                name, n, (after[0] - base[0]) / n, (after[1] - base[1]) / n,
                (after[0] - before[0]) / n, (after[1] - before[1]) / n))
        lab.procs.stop(t.proc)
    lab.procs.stop(backend.proc)


# ---------------------------------------------------------------------------
# report

def med(xs):
    return statistics.median(xs) if xs else None


def aggregate(runs):
    """{(mode, scenario, target): medians and ranges over rounds}"""
    groups = {}
    for r in runs:
        groups.setdefault((r["mode"], r["scenario"], r["target"]), []).append(r)
    agg = {}
    for k, rs in groups.items():
        rps = [r["rps"] for r in rs]
        rpc = [r["req_per_cpu_s"] for r in rs if r["req_per_cpu_s"]]
        # CPU microseconds per request, user and system apart
        usr_us = [1e6 * r["user_s"] / r["requests"] for r in rs if r.get("requests")]
        sys_us = [1e6 * r["sys_s"] / r["requests"] for r in rs if r.get("requests")]
        bal = [max(r["worker_requests"]) / max(1, min(r["worker_requests"]))
               for r in rs if r.get("worker_requests")]
        agg[k] = dict(rps=med(rps), rps_min=min(rps), rps_max=max(rps),
                      p50=med([r["p50_ms"] for r in rs]), p99=med([r["p99_ms"] for r in rs]),
                      rpc=med(rpc), rpc_min=min(rpc) if rpc else None,
                      rpc_max=max(rpc) if rpc else None,
                      usr_us=med(usr_us), sys_us=med(sys_us),
                      errors=sum(sum(r["errors"].values()) for r in rs),
                      balance=med(bal), balance_max=max(bal) if bal else None,
                      rounds=len(rs))
    return agg


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def best_peer(agg, mode, sc, key, lower=False):
    vals = [(agg[(mode, sc, p)][key], p) for p in PEERS
            if (mode, sc, p) in agg and agg[(mode, sc, p)][key] is not None]
    if not vals:
        return None, None
    return (min if lower else max)(vals)


def summary(results, agg):
    L = []
    e = results["env"]
    L.append("# corral bench %s" % results["timestamp"])
    L.append("")
    L.append("corral %s; %s; %s; %s; wrk %s; kernel %s, %d CPUs; load average %s before, "
             "%s after; %.0f s wall clock." % (
                 e["corral"], e["nginx"], e["haproxy"], e["perf"], e["wrk"], e["kernel"],
                 e["cpus"], e["load_before"], e["load_after"], results["wall_s"]))
    L.append("")
    L.append("Each proxy: 2 workers (HAProxy: 2 threads), no access log, %d idle upstream "
             "connections per worker, in front of one nginx backend (1 worker). wrk: %d "
             "threads, %d s per run, %d round(s), target order rotated each round; medians "
             "over rounds, [min-max]. *req/CPU-s*: requests over the CPU time (user + system) "
             "of all the proxy's processes during the run (for direct: the backend's own). "
             "Pinned: proxy on CPU 0, wrk and backend on CPU 1." % (
                 UPSTREAM_KEEPALIVE, Cfg.wrk_threads, Cfg.duration, Cfg.rounds))
    for mode in Cfg.modes:
        for sc in Cfg.scenarios:
            if not any(k[:2] == (mode, sc) for k in agg):
                continue
            L.append("")
            L.append("## %s: %s" % (mode, SCENARIOS[sc]["title"]))
            L.append("")
            L.append("| target | req/s | p50 ms | p99 ms | vs direct | req/CPU-s "
                     "| CPU us/req user + sys | errors |")
            L.append("|---|---|---|---|---|---|---|---|")
            direct = agg.get((mode, sc, "direct"))
            for t in ["direct"] + proxy_targets():
                a = agg.get((mode, sc, t))
                if not a:
                    continue
                L.append("| %s | %s [%s-%s] | %.2f | %.2f | %s | %s [%s-%s] | %s + %s | %s |" % (
                    t if t != "direct" else "direct (backend)", fmt(a["rps"]),
                    fmt(a["rps_min"]), fmt(a["rps_max"]), a["p50"], a["p99"],
                    fmt(a["rps"] / direct["rps"] if direct else None, "%.2f"),
                    fmt(a["rpc"]), fmt(a["rpc_min"]), fmt(a["rpc_max"]),
                    fmt(a["usr_us"], "%.1f"), fmt(a["sys_us"], "%.1f"),
                    a["errors"] if a["errors"] else "0"))
            c = agg.get((mode, sc, "corral"))
            bv, bp = best_peer(agg, mode, sc, "rpc")
            if c and bv:
                L.append("")
                L.append("corral req/CPU-s / better peer (%s): **%.2f**" % (bp, c["rpc"] / bv))
    L.append("")
    L.append("## corral's targets")
    L.append("")
    L.append("| check | mode | scenario | corral | better peer | ratio | met |")
    L.append("|---|---|---|---|---|---|---|")
    for mode in Cfg.modes:
        for sc in Cfg.scenarios:
            c = agg.get((mode, sc, "corral"))
            bv, bp = best_peer(agg, mode, sc, "rpc")
            if c and bv:
                r = c["rpc"] / bv
                L.append("| req/CPU-s >= 1.2x | %s | %s | %.0f | %.0f (%s) | %.2f | %s |" % (
                    mode, sc, c["rpc"], bv, bp, r, "yes" if r >= 1.2 else "**no**"))
            if sc == "ka500":
                pv, pp = best_peer(agg, mode, sc, "p99", lower=True)
                if c and pv:
                    L.append("| p99 ms <= peer's | %s | %s | %.2f | %.2f (%s) | %.2f | %s |" % (
                        mode, sc, c["p99"], pv, pp, c["p99"] / pv,
                        "yes" if c["p99"] <= pv else "**no**"))
    m = results["memory"]
    if "corral" in m and "nginx" in m:
        for k in ("pss", "rss"):
            cv, nv = m["corral"][k + "_per_conn"], m["nginx"][k + "_per_conn"]
            r = cv / nv if nv > 0 else float("nan")
            L.append("| %s bytes per idle connection <= 0.7x nginx | pinned | idle | %.0f "
                     "| %.0f (nginx) | %.2f | %s |" % (k.upper(), cv, nv, r,
                                                      "yes" if r <= 0.7 else "**no**"))
    if results["syscalls"]:
        L.append("")
        L.append("## Syscalls per proxied request (pinned)")
        L.append("")
        L.append("Exactly %d keep-alive requests (small body) over 50 connections from "
                 "bench/clients.py count; `perf stat -e raw_syscalls:sys_enter` (every syscall) "
                 "and `syscalls:sys_enter_NAME` for about 45 common ones (the rest is *other*), "
                 "attached to every thread of every process of the proxy, from 1.5 s before "
                 "the client starts until it ends. *idle/s*: the "
                 "same proxy's syscalls per second with no load, measured just before "
                 "(included in the totals, not subtracted). The client is slower than wrk, "
                 "so the proxy batches less than under wrk: compare the proxies with each "
                 "other, not with the wrk runs." % Cfg.syscall_requests)
        L.append("")
        L.append("| proxy | syscalls/request | idle/s | top syscalls per request |")
        L.append("|---|---|---|---|")
        for name, s in results["syscalls"].items():
            L.append("| %s | %.2f | %.1f | %s |" % (
                name, s["per_request"], s["idle_per_s"],
                ", ".join("%s %.2f" % (k, v) for k, v in s["top"])))
    if m:
        L.append("")
        L.append("## Memory of idle keep-alive connections (pinned)")
        L.append("")
        L.append("%d client connections, each sends one request, reads the whole response "
                 "and stays open (checked still open afterwards). RSS and PSS are summed over "
                 "all the proxy's processes (smaps_rollup). *base*: a fresh instance sized "
                 "for %d connections, warmed with 2,000 requests; *before*: a fresh instance "
                 "sized for %d, warmed the same way; *after*: the same 1 s after the last "
                 "idle connection was answered. *B/conn* = (after - base) / %d, so memory a "
                 "proxy sets aside for its configured connections counts; *growth* = "
                 "(after - before) / %d leaves it out. Sizing: nginx `worker_connections` = "
                 "ceil(connections / 2 x 1.15) + %d per worker (each worker's share of the "
                 "clients, 15%% for reuseport's imbalance, plus its upstream keep-alive "
                 "connections): %d for the base, %d here, just above the need; HAProxy "
                 "maxconn connections + 200 (it counts client connections only); corral max_connections = connections per "
                 "worker." % (
                     Cfg.idle, MEMORY_BASE_CAPACITY, Cfg.idle, Cfg.idle, Cfg.idle,
                     UPSTREAM_KEEPALIVE, nginx_worker_connections(MEMORY_BASE_CAPACITY),
                     nginx_worker_connections(Cfg.idle)))
        L.append("")
        L.append("| proxy | processes | base RSS / PSS | before RSS / PSS | after RSS / PSS "
                 "| RSS B/conn | PSS B/conn | growth RSS / PSS B/conn |")
        L.append("|---|---|---|---|---|---|---|---|")
        mib = 2.0 ** 20
        for name, v in m.items():
            L.append("| %s | %d | %.1f / %.1f MiB | %.1f / %.1f MiB | %.1f / %.1f MiB "
                     "| %.0f | %.0f | %.0f / %.0f |" % (
                         name, v["processes"], v["rss_base"] / mib, v["pss_base"] / mib,
                         v["rss_before"] / mib, v["pss_before"] / mib, v["rss_after"] / mib,
                         v["pss_after"] / mib, v["rss_per_conn"], v["pss_per_conn"],
                         v["rss_growth_per_conn"], v["pss_growth_per_conn"]))
    bal = [(k, a) for k, a in agg.items() if k[2] == "corral" and a["balance"]]
    if bal:
        L.append("")
        L.append("## corral worker balance")
        L.append("")
        L.append("Requests per worker during each run (`corralctl workers --json`, before and "
                 "after), as max/min: median over rounds [worst].")
        L.append("")
        L.append("| mode | scenario | max/min |")
        L.append("|---|---|---|")
        for (mode, sc, _), a in sorted(bal):
            L.append("| %s | %s | %.2f [%.2f] |" % (mode, sc, a["balance"], a["balance_max"]))
    bad = sorted({(k, a["errors"]) for k, a in agg.items() if a["errors"]})
    L.append("")
    if results.get("failure"):
        L.append("## FAILED, the run stopped early")
        L.append("")
        L.append("    " + results["failure"].replace("\n", "\n    "))
        L.append("")
    if bad:
        L.append("## ERRORS")
        L.append("")
        for k, n in bad:
            L.append("- %s %s %s: %d errors (socket errors + non-2xx, see raw/)" % (*k, n))
    else:
        L.append("No target gave an error (socket errors or non-2xx) in any run.")
    L.append("")
    L.append("Raw outputs: raw/ (wrk, perf, clients, logs); all figures: results.json; "
             "chart: reqs_per_cpu.png.")
    return "\n".join(L) + "\n"


def chart(out, agg):
    names = proxy_targets()
    rows = []
    for mode in Cfg.modes:
        for sc in Cfg.scenarios:
            vals = [agg.get((mode, sc, t), {}).get("rpc") for t in names]
            if any(v is not None for v in vals):
                rows.append("%s/%s %s" % (mode, sc, " ".join(
                    "%.0f" % v if v is not None else "0" for v in vals)))
    if not rows or not shutil.which("gnuplot"):
        return
    with open(os.path.join(out, "reqs_per_cpu.dat"), "w") as f:
        f.write("# scenario %s\n%s\n" % (" ".join(names), "\n".join(rows)))
    plots = ", ".join("'reqs_per_cpu.dat' using %d%s title '%s'" % (
        i + 2, ":xtic(1)" if i == 0 else "", n) for i, n in enumerate(names))
    script = """set terminal pngcairo size 1100,550 font ",10"
set output 'reqs_per_cpu.png'
set title 'Requests per proxy CPU-second (median over rounds; higher is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right
set grid ytics
set yrange [0:*]
set xtics rotate by -25 noenhanced
set ylabel 'requests / CPU-second'
plot %s
""" % plots
    with open(os.path.join(out, "reqs_per_cpu.gp"), "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", "reqs_per_cpu.gp"], cwd=out, check=True, timeout=60)


def tool_version(argv, pattern=r"(.+)"):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        m = re.search(pattern, r.stdout + r.stderr)
        return m.group(1).strip() if m else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def environment():
    rev = tool_version(["git", "-C", ROOT, "describe", "--always", "--dirty"])
    return dict(corral=rev, nginx=tool_version(["nginx", "-v"], r"nginx version: (\S+)"),
                haproxy=tool_version(["haproxy", "-v"], r"(HAProxy version \S+)"),
                perf=tool_version(["perf", "--version"]),
                wrk=tool_version(["wrk", "-v"], r"wrk (\S+)"),
                kernel=os.uname().release, cpus=os.cpu_count(),
                load_before=open("/proc/loadavg").read().split()[0])


def main():
    for sc in Cfg.scenarios:
        if sc not in SCENARIOS:
            sys.exit("bench: unknown scenario %s (known: %s)" % (sc, " ".join(SCENARIOS)))
    for t in Cfg.targets:
        if t != "direct" and t not in PROXIES:
            sys.exit("bench: unknown target %s" % t)
    for m in Cfg.modes:
        if m not in ("pinned", "unpinned"):
            sys.exit("bench: unknown mode %s" % m)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    nofile = min(hard, 1 << 20)
    if nofile < Cfg.idle + 2000:
        sys.exit("bench: IDLE=%d needs a file descriptor limit above %d; it is %d"
                 % (Cfg.idle, Cfg.idle + 2000, nofile))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = os.path.join(ROOT, "bench", "results", stamp)
    os.makedirs(os.path.join(out, "raw"))
    work = tempfile.mkdtemp(prefix="corral-bench.")
    os.chmod(work, 0o755)       # nginx workers (user nobody) read the backend's files
    procs = Procs()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    results = dict(timestamp=stamp, env=environment(), runs=[], syscalls={}, memory={},
                   config=dict(rounds=Cfg.rounds, duration=Cfg.duration, idle=Cfg.idle,
                               syscall_requests=Cfg.syscall_requests, modes=Cfg.modes,
                               scenarios=Cfg.scenarios, targets=Cfg.targets, quick=Cfg.quick))
    log("results in %s" % os.path.relpath(out, ROOT))
    lab = Lab(procs, work, out, nofile)
    failure = None
    try:
        for mode in Cfg.modes:
            throughput(lab, mode, results)
        if proxy_targets():
            syscalls(lab, results)
            idle_memory(lab, results)
    except BenchError as e:
        failure = str(e)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    results["wall_s"] = time.monotonic() - t0
    results["env"]["load_after"] = open("/proc/loadavg").read().split()[0]
    agg = aggregate(results["runs"])
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    results["failure"] = failure
    text = summary(results, agg)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    chart(out, agg)
    print(text)
    log("%.0f s; %s" % (results["wall_s"], os.path.relpath(os.path.join(out, "summary.md"),
                                                         ROOT)))
    if failure:
        log("FAILED: " + failure)
        return 1
    if any(a["errors"] for a in agg.values()):
        log("FAILED: some target gave errors, see the ERRORS section")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
