#!/usr/bin/env python3
"""
loadgen.py - load generator and stats-segment reader for corral's
integration tests (25-28). Standard library only.

  loadgen.py load --port P [options]
      N client threads, each sending GET requests in a loop, every request
      on a NEW TCP connection ("Connection: close"), the response read in
      full (status line, headers, Content-Length or chunked body, or body
      to EOF). Each failure is classified:

        refused   connect() refused
        reset     connection reset (or EPIPE) at connect, send or receive
        eof       connection closed before the whole response arrived
        timeout   no progress for --timeout seconds
        non2xx    a complete response whose status is not 2xx
        other     anything else (malformed response, unexpected error)

      Stops by itself: after --duration seconds, after --max-requests
      requests, or as soon as --stop-file exists. Every --progress-ms it
      rewrites --progress with "ok=N fail=N". At the end it prints up to 40
      failure lines and the counts per kind, then, as its last line,
      "ok=N fail=N". With --report FILE it also writes a JSON document:
      {"ok", "fail", "kinds", "failures": [{"start_ms", "end_ms", "kind",
      "path", "detail", "client"}], "ok_end_ms": [...]} (times in unix ms).
      With --fail-pause S a client waits S seconds after a failed request.

  loadgen.py header NAME
      The stats segment /dev/shm/corral.NAME, header fields as "key=value"
      lines: ready, master_pid, generation, reloads_ok, reloads_failed,
      workers, nslots, mechanism. Exit 1 if there is no segment or its
      magic or major version is not the one the source tree's
      shm/layout.h defines (read at start, as is the position of
      requests_total among a slot's counters).

  loadgen.py slots NAME
      One line per slot in use: "pid state generation requests_total".

  loadgen.py reloads --master PID --name NAME --port P --conf FILE
                     --template FILE --count N [--known "PID PID ..."]
                     [--workers W] [--pause S] [--log FILE]
      N reloads in a row, each timed from inside this one process. Reload
      i writes --template to --conf (atomically, by rename) with every
      "@N@" replaced by i, sends SIGHUP to the master, then polls every
      5 ms until the segment's generation is one more than before (any
      other value is an error), until the master has W children not seen
      before (the first ones known from --known), and until GET /version,
      on a new connection each time, answers "version i". Then it waits
      --pause seconds (the load runs on the new generation) and goes on.
      One line per reload on stdout (and in --log): "reload i t_hup=MS
      gen_ms=.. pids_ms=.. version_ms=.. stale=.. new=PID,PID", where the
      times are since the SIGHUP and stale counts /version answers other
      than "version i" received after the new generation was serving.
      Exit 1 after a line "FAIL: ..." if the generation or the pids take
      more than --limit seconds, or /version more than --version-limit
      (default 2), after the SIGHUP.

  loadgen.py respawn-watch --master PID --name NAME --port P --victim PID
                           --signal KILL|STOP [--limit S]
      Sends the signal to the victim (one of the master's children), then
      polls every 10 ms and reports, in ms since the signal: child_ms, a
      new child of the master (not one of its children before); listen_ms,
      that child owning a LISTEN socket on P as "ss -Hltnp" shows; served_ms,
      its slot in the segment counting a request; e2e_ms, a GET /ping on a
      new connection answered 200 after listen_ms; gone_ms, the victim no
      longer a process (or a zombie) nor a child of the master. Prints
      "new=PID child_ms=.. listen_ms=.. served_ms=.. e2e_ms=.. gone_ms=..
      t_sig=MS" (t_sig: when the signal was sent, unix ms);
      exit 1 (with "-1" for what never happened) if not all are seen
      within --limit seconds.

Only 127.0.0.1 is ever contacted.
"""

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"

# --------------------------------------------------------------------------
# HTTP client


class Failure(Exception):
    def __init__(self, kind, detail):
        Exception.__init__(self, detail)
        self.kind = kind
        self.detail = detail


def classify(exc, phase):
    """(kind, detail) for an exception raised during <phase>."""
    if isinstance(exc, Failure):
        return exc.kind, exc.detail
    name = type(exc).__name__
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "%s: %s" % (phase, exc)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset", "%s: %s: %s" % (phase, name, exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout", "%s: %s: %s" % (phase, name, exc)
    return "other", "%s: %s: %s" % (phase, name, exc)


class Reader:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.total = 0

    def fill(self, what):
        d = self.s.recv(65536)
        if not d:
            raise Failure("eof", "closed after %d bytes, while reading %s"
                          % (self.total, what))
        self.total += len(d)
        self.buf += d

    def line(self, what):
        while b"\n" not in self.buf:
            if len(self.buf) > 65536:
                raise Failure("other", "line too long in %s" % what)
            self.fill(what)
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n, what):
        while len(self.buf) < n:
            self.fill(what)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self):
        while True:
            d = self.s.recv(65536)
            if not d:
                out, self.buf = self.buf, b""
                return out
            self.total += len(d)
            self.buf += d


def get(port, path, timeout):
    """One GET on a new connection: (status, body). Raises on failure."""
    phase = "connect"
    s = None
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((HOST, port))
        phase = "send"
        s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                   "User-Agent: loadgen\r\n\r\n" % path).encode("latin-1"))
        phase = "receive"
        r = Reader(s)
        first = r.line("the status line")
        parts = first.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise Failure("other", "bad status line %r" % first[:80])
        status = int(parts[1])
        cl = None
        chunked = False
        while True:
            ln = r.line("the headers")
            if ln in (b"\r\n", b"\n"):
                break
            k, _, v = ln.decode("latin-1").partition(":")
            k = k.strip().lower()
            if k == "content-length":
                cl = int(v.strip())
            elif k == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif chunked:
            body = b""
            while True:
                size = int(r.line("a chunk size").split(b";")[0].strip(), 16)
                if size == 0:
                    while r.line("the trailer") not in (b"\r\n", b"\n"):
                        pass
                    break
                body += r.exact(size, "a chunk (%d bytes)" % size)
                r.exact(2, "a chunk end")
        elif cl is not None:
            body = r.exact(cl, "the body (%d bytes)" % cl)
        else:
            body = r.rest()
        return status, body
    except Exception as e:  # noqa: BLE001 - every failure is classified
        kind, detail = classify(e, phase)
        raise Failure(kind, detail)
    finally:
        if s is not None:
            s.close()


# --------------------------------------------------------------------------
# load

KINDS = ("refused", "reset", "eof", "timeout", "non2xx", "other")


def utc_ms(t):
    return "%s.%03dZ" % (time.strftime("%H:%M:%S", time.gmtime(t)), int(t * 1000) % 1000)


def cmd_load(a):
    paths = [p for p in a.paths.split(",") if p]
    lock = threading.Lock()
    st = {"ok": 0, "fail": 0, "issued": 0}
    kinds = dict((k, 0) for k in KINDS)
    failures = []
    ok_end_ms = []
    stop_at = time.time() + a.duration
    done = threading.Event()

    def stopping():
        return (done.is_set() or time.time() >= stop_at
                or (a.stop_file and os.path.exists(a.stop_file)))

    def client(k):
        i = 0
        while not stopping():
            with lock:
                if st["issued"] >= a.max_requests:
                    return
                st["issued"] += 1
            path = paths[(k + i) % len(paths)]
            if "?" in path:
                path = "%s&c=%d&i=%d" % (path, k, i)
            elif path.startswith("/status/"):
                path = "%s?c=%d&i=%d" % (path, k, i)
            i += 1
            t0 = time.time()
            kind = detail = None
            try:
                status, body = get(a.port, path, a.timeout)
                if not 200 <= status < 300:
                    kind, detail = "non2xx", "status %d, body %r" % (status, body[:60])
            except Failure as f:
                kind, detail = f.kind, f.detail
            t1 = time.time()
            with lock:
                if kind is None:
                    st["ok"] += 1
                    if a.report:
                        ok_end_ms.append(int(t1 * 1000))
                else:
                    st["fail"] += 1
                    kinds[kind] += 1
                    failures.append({"start_ms": int(t0 * 1000), "end_ms": int(t1 * 1000),
                                     "kind": kind, "path": path, "detail": detail,
                                     "client": k})
            if kind is not None and a.fail_pause > 0:
                time.sleep(a.fail_pause)

    def progress():
        while not done.wait(a.progress_ms / 1000.0):
            write_progress()

    def write_progress():
        if not a.progress:
            return
        with lock:
            line = "ok=%d fail=%d\n" % (st["ok"], st["fail"])
        tmp = a.progress + ".tmp"
        with open(tmp, "w") as f:
            f.write(line)
        os.replace(tmp, a.progress)

    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(a.clients)]
    pt = threading.Thread(target=progress, daemon=True)
    pt.start()
    for t in threads:
        t.start()
    # the join is bounded too: a client blocked in a socket call returns
    # within its timeout after the stop
    hard_end = stop_at + a.timeout + 10
    for t in threads:
        t.join(max(0.0, hard_end - time.time()))
    done.set()
    pt.join()
    stuck = sum(1 for t in threads if t.is_alive())
    write_progress()

    with lock:
        for f in failures[:40]:
            print("error %s %-7s %s -> %s" % (utc_ms(f["start_ms"] / 1000.0), f["kind"],
                                            f["path"], f["detail"]))
        if len(failures) > 40:
            print("error ... and %d more" % (len(failures) - 40))
        print("kinds " + " ".join("%s=%d" % (k, kinds[k]) for k in KINDS))
        if stuck:
            print("stuck clients: %d" % stuck)
        if a.report:
            with open(a.report + ".tmp", "w") as f:
                json.dump({"ok": st["ok"], "fail": st["fail"], "kinds": kinds,
                           "failures": failures, "ok_end_ms": ok_end_ms,
                           "stuck": stuck}, f)
            os.replace(a.report + ".tmp", a.report)
        print("ok=%d fail=%d" % (st["ok"], st["fail"]), flush=True)
    return 0


# --------------------------------------------------------------------------
# stats segment (shm/layout.h)

MAGIC = 0x31534d48524f4343
HDR_FMT = "<QHHIQIiQQQQQQQIIQQ"   # magic .. slots_off
HDR_KEYS = ("magic", "major", "minor", "header_size", "total_size", "ready",
            "master_pid", "start_ms", "generation", "config_hash", "reloads_ok",
            "reloads_failed", "fold_seq", "updated_ms", "workers", "nslots",
            "slot_size", "slots_off")
# after the fixed fields: retired_off, routes_off, routes_cap, pad0,
# servers_off, servers_cap, pad1, slot_routes_off, slot_servers_off, then
# name[64], config_path[256], last_reload_error[512], reload_mechanism[16]
MECH_OFF = struct.calcsize(HDR_FMT) + struct.calcsize("<QQIIQIIQQ") + 64 + 256 + 512
SLOT_FMT = "<iIIIQQQ"               # pid state id pad generation start heartbeat
SLOT_COUNTERS_OFF = 64


def tree_layout():
    """(major, index of requests_total in a slot's counters) as the source
    tree's shm/layout.h defines them (the binary under test is built from
    it); (None, 2) if it cannot be read."""
    import re
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "shm", "layout.h")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, 2
    m = re.search(r"#define\s+CR_SHM_MAJOR\s+(\d+)", text)
    major = int(m.group(1)) if m else None
    index = 2
    m = re.search(r"#define\s+CR_SHM_WORKER_COUNTERS\(X\)(.*?)\n\s*\n", text, re.S)
    if m:
        names = re.findall(r"X\((\w+),", m.group(1))
        if "requests_total" in names:
            index = names.index("requests_total")
    return major, index


MAJOR, REQUESTS_TOTAL = tree_layout()


def read_segment(name):
    path = "/dev/shm/corral." + name
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < struct.calcsize(HDR_FMT):
        raise ValueError("%s: truncated (%d bytes)" % (path, len(data)))
    h = dict(zip(HDR_KEYS, struct.unpack_from(HDR_FMT, data, 0)))
    if h["magic"] != MAGIC or (MAJOR is not None and h["major"] != MAJOR):
        raise ValueError("%s: magic %#x major %d, expected %#x major %s (shm/layout.h)"
                         % (path, h["magic"], h["major"], MAGIC, MAJOR))
    if h["header_size"] < MECH_OFF + 16 or len(data) < h["header_size"]:
        raise ValueError("%s: header of %d bytes, expected at least %d"
                         % (path, h["header_size"], MECH_OFF + 16))
    mech = data[MECH_OFF:MECH_OFF + 16].split(b"\0")[0].decode("ascii", "replace")
    h["mechanism"] = mech
    return h, data


def cmd_header(a):
    try:
        h, _ = read_segment(a.name)
    except (OSError, ValueError) as e:
        sys.stderr.write("loadgen: %s\n" % e)
        return 1
    for k in ("ready", "master_pid", "generation", "reloads_ok", "reloads_failed",
              "workers", "nslots", "mechanism"):
        print("%s=%s" % (k, h[k]))
    return 0


def cmd_slots(a):
    try:
        h, data = read_segment(a.name)
    except (OSError, ValueError) as e:
        sys.stderr.write("loadgen: %s\n" % e)
        return 1
    for i in range(h["nslots"]):
        off = h["slots_off"] + i * h["slot_size"]
        if off + SLOT_COUNTERS_OFF + 8 * (REQUESTS_TOTAL + 1) > len(data):
            break
        pid, state, _id, _pad, gen, _start, _beat = struct.unpack_from(SLOT_FMT, data, off)
        if pid == 0 or state == 0:
            continue
        req = struct.unpack_from("<Q", data, off + SLOT_COUNTERS_OFF + 8 * REQUESTS_TOTAL)[0]
        print("%d %d %d %d" % (pid, state, gen, req))
    return 0


def children(pid):
    """Pids of <pid>'s live children (any of its threads)."""
    out = set()
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def reload_once(a, i, gen, known, out):
    """Reload number <i>, to generation <gen>: 0 or 1 (failed, said why)."""
    import signal

    with open(a.template) as f:
        text = f.read().replace("@N@", str(i))
    with open(a.conf + ".tmp", "w") as f:
        f.write(text)
    os.replace(a.conf + ".tmp", a.conf)

    t0 = time.time()
    os.kill(a.master, signal.SIGHUP)
    limit = t0 + a.limit

    def ms(t):
        return int((t - t0) * 1000)

    # generation + 1 in the segment
    last = "no segment"
    while True:
        try:
            h, _ = read_segment(a.name)
            last = "generation %d" % h["generation"]
            if h["generation"] >= gen:
                break
        except (OSError, ValueError) as e:
            last = str(e)
        if time.time() >= limit:
            out("FAIL: reload %d: generation %d not in the segment %.1f s after the SIGHUP (%s)"
                % (i, gen, a.limit, last))
            return 1
        time.sleep(0.005)
    t_gen = time.time()
    if h["generation"] != gen:
        out("FAIL: reload %d: one SIGHUP, the segment's generation went to %d, expected %d"
            % (i, h["generation"], gen))
        return 1

    # new worker pids among the master's children
    while True:
        new = sorted(children(a.master) - known)
        if len(new) >= a.workers:
            break
        if time.time() >= limit:
            out("FAIL: reload %d: %d new children of the master %.1f s after the SIGHUP: %s "
                "(children now: %s)" % (i, len(new), a.limit, new, sorted(children(a.master))))
            return 1
        time.sleep(0.005)
    t_pids = time.time()
    known.update(new)
    if len(new) != a.workers:
        out("FAIL: reload %d: expected %d new workers, got %s" % (i, a.workers, new))
        return 1

    # /version answers the new number; old answers after the switch counted
    want = "200 version %d" % i
    stale = []
    vlimit = t0 + a.version_limit
    while True:
        try:
            status, body = get(a.port, "/version", 2.0)
            got = "%d %s" % (status, body.decode("latin-1").strip())
        except Failure as f:
            got = "%s: %s" % (f.kind, f.detail)
        if got == want:
            break
        stale.append(got)
        if time.time() >= vlimit:
            out("FAIL: reload %d: /version does not answer \"version %d\" within %.1f s of "
                "the SIGHUP (generation %d was serving after %d ms; answers since: %s)"
                % (i, i, a.version_limit, gen, ms(t_gen), stale[-3:]))
            return 1
        time.sleep(0.005)
    t_ver = time.time()
    out("reload %d t_hup=%d gen_ms=%d pids_ms=%d version_ms=%d stale=%d new=%s%s"
        % (i, int(t0 * 1000), ms(t_gen), ms(t_pids), ms(t_ver), len(stale),
           ",".join(str(p) for p in new),
           (" stale_answers=%r" % stale[:3]) if stale else ""))
    return 0


def cmd_reloads(a):
    known = set(int(x) for x in a.known.replace(",", " ").split())
    logf = open(a.log, "a") if a.log else None

    def out(line):
        print(line, flush=True)
        if logf:
            logf.write(line + "\n")
            logf.flush()

    try:
        h, _ = read_segment(a.name)
    except (OSError, ValueError) as e:
        out("FAIL: %s" % e)
        return 1
    gen = h["generation"]
    for i in range(1, a.count + 1):
        gen += 1
        if reload_once(a, i, gen, known, out) != 0:
            return 1
        time.sleep(a.pause)
    return 0


def listen_owners(port):
    """Pids owning a LISTEN socket on 127.0.0.1:<port>, from ss -Hltnp."""
    import re
    import subprocess
    try:
        out = subprocess.run(["ss", "-Hltnp", "sport = :%d" % port], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(int(x) for x in re.findall(r"pid=(\d+)", out))


def gone(pid, master):
    if pid in children(master):
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except (OSError, IndexError):
        return True


def slot_requests(name, pid):
    try:
        h, data = read_segment(name)
    except (OSError, ValueError):
        return None
    for i in range(h["nslots"]):
        off = h["slots_off"] + i * h["slot_size"]
        if off + SLOT_COUNTERS_OFF + 8 * (REQUESTS_TOTAL + 1) > len(data):
            break
        spid, state = struct.unpack_from("<iI", data, off)
        if spid == pid and state != 0:
            return struct.unpack_from("<Q", data, off + SLOT_COUNTERS_OFF + 8 * REQUESTS_TOTAL)[0]
    return None


def cmd_respawn_watch(a):
    import signal
    sig = {"KILL": signal.SIGKILL, "STOP": signal.SIGSTOP}[a.signal]
    before = children(a.master)
    if a.victim not in before:
        print("FAIL: %d is not a child of the master %d (children: %s)"
              % (a.victim, a.master, sorted(before)))
        return 1
    ev = {"child_ms": -1, "listen_ms": -1, "served_ms": -1, "e2e_ms": -1, "gone_ms": -1}
    new = None
    t0 = time.time()
    os.kill(a.victim, sig)
    end = t0 + a.limit

    def ms():
        return int((time.time() - t0) * 1000)

    while time.time() < end and min(ev.values()) < 0:
        if new is None:
            fresh = sorted(children(a.master) - before)
            if fresh:
                new = fresh[0]
                ev["child_ms"] = ms()
        if new is not None:
            if ev["listen_ms"] < 0 and new in listen_owners(a.port):
                ev["listen_ms"] = ms()
            if ev["served_ms"] < 0 and (slot_requests(a.name, new) or 0) > 0:
                ev["served_ms"] = ms()
            if ev["listen_ms"] >= 0 and ev["e2e_ms"] < 0:
                try:
                    if get(a.port, "/ping", 1.0)[0] == 200:
                        ev["e2e_ms"] = ms()
                except Failure:
                    pass
        if ev["gone_ms"] < 0 and gone(a.victim, a.master):
            ev["gone_ms"] = ms()
        time.sleep(0.01)
    print("new=%s %s t_sig=%d" % (new if new is not None else "-",
                                  " ".join("%s=%d" % (k, ev[k]) for k in
                                           ("child_ms", "listen_ms", "served_ms", "e2e_ms",
                                            "gone_ms")),
                                  int(t0 * 1000)))
    return 0 if min(ev.values()) >= 0 else 1


def main():
    ap = argparse.ArgumentParser(description="load and stats helper for corral's tests")
    sub = ap.add_subparsers(dest="cmd")
    lp = sub.add_parser("load")
    lp.add_argument("--port", type=int, required=True)
    lp.add_argument("--clients", type=int, default=20)
    lp.add_argument("--paths", default="/ping")
    lp.add_argument("--duration", type=float, default=60.0, help="seconds, at most")
    lp.add_argument("--max-requests", type=int, default=500000)
    lp.add_argument("--timeout", type=float, default=10.0)
    lp.add_argument("--stop-file", default="")
    lp.add_argument("--progress", default="")
    lp.add_argument("--progress-ms", type=int, default=100)
    lp.add_argument("--report", default="")
    lp.add_argument("--fail-pause", type=float, default=0.0,
                    help="seconds a client waits after a failed request")
    hp = sub.add_parser("header")
    hp.add_argument("name")
    sp = sub.add_parser("slots")
    sp.add_argument("name")
    rp = sub.add_parser("reloads")
    rp.add_argument("--master", type=int, required=True)
    rp.add_argument("--name", required=True)
    rp.add_argument("--port", type=int, required=True)
    rp.add_argument("--conf", required=True)
    rp.add_argument("--template", required=True)
    rp.add_argument("--count", type=int, required=True)
    rp.add_argument("--known", default="")
    rp.add_argument("--workers", type=int, default=2)
    rp.add_argument("--pause", type=float, default=0.2)
    rp.add_argument("--limit", type=float, default=20.0)
    rp.add_argument("--version-limit", type=float, default=2.0)
    rp.add_argument("--log", default="")
    wp = sub.add_parser("respawn-watch")
    wp.add_argument("--master", type=int, required=True)
    wp.add_argument("--name", required=True)
    wp.add_argument("--port", type=int, required=True)
    wp.add_argument("--victim", type=int, required=True)
    wp.add_argument("--signal", choices=("KILL", "STOP"), required=True)
    wp.add_argument("--limit", type=float, default=15.0)
    a = ap.parse_args()
    if a.cmd == "load":
        if a.clients < 1 or a.duration <= 0 or not a.paths:
            ap.error("bad load arguments")
        return cmd_load(a)
    if a.cmd == "header":
        return cmd_header(a)
    if a.cmd == "slots":
        return cmd_slots(a)
    if a.cmd == "reloads":
        return cmd_reloads(a)
    if a.cmd == "respawn-watch":
        return cmd_respawn_watch(a)
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
