#!/usr/bin/env python3
"""bench/reload_client.py - the client side of bench/reload.sh (stdlib only).

Three subcommands, each prints one JSON object on stdout:

  load    N concurrent clients, each in a loop: a new TCP connection, one
          HTTP/1.1 GET with "Connection: close", read to EOF, close. Every
          request ends as ok or as exactly one failure kind:
            refused   connect() got ECONNREFUSED (no listener took the SYN)
            reset     ECONNRESET / EPIPE before a complete response
            eof       EOF before a complete response (nothing, or a part)
            timeout   the whole request took longer than --timeout
            non2xx    a complete response whose status is not 2xx
            other     any other error (named in "examples")
          A reset that comes after a complete response is counted ok (the
          client has its answer) and also in "reset_after_response".

  reload  sends a signal to a master process --count times, --interval
          seconds apart, after --delay; samples the master's children the
          whole time (every --sample seconds) and reports every distinct pid
          seen, so a reload that never happened shows up as missing pids.
          With --port it also counts the distinct listening sockets on that
          port (by inode: a reload that hands its sockets over keeps them,
          one that binds new ones adds some) and the deepest accept queue.
          With --configs it also changes the config file before each reload.

  selftest  provokes each failure kind against small local servers and
          checks that it is classified as such (exit 1 if not).

Every loop is bounded: by a deadline, and by a count.
"""
import argparse
import asyncio
import errno
import json
import os
import signal
import socket
import struct
import sys
import time

KINDS = ("refused", "reset", "eof", "timeout", "non2xx", "other")
MAX_RESPONSE = 1 << 20          # a response larger than this is an error here
MAX_EXAMPLES = 20
MAX_FAILURE_TIMES = 20000


def response_complete(buf):
    """(complete, status) for the bytes received so far."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False, None
    head = bytes(buf[:end]).decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return False, None
    status = int(parts[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return False, status
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    body = len(buf) - (end + 4)
    if status < 200 or status in (204, 304):
        return True, status
    if chunked:
        return buf.endswith(b"0\r\n\r\n"), status
    if length is not None:
        return body >= length, status
    return True, status         # delimited by EOF, which the caller saw


class Stats:
    def __init__(self):
        self.requests = 0
        self.ok = 0
        self.kinds = dict.fromkeys(KINDS, 0)
        self.by_phase = {}
        self.reset_after_response = 0
        self.latencies = []
        self.examples = []
        self.failure_times = []

    def fail(self, kind, phase, detail, t_start):
        """t_start: when the request started (epoch seconds)."""
        self.kinds[kind] += 1
        key = "%s:%s" % (kind, phase)
        self.by_phase[key] = self.by_phase.get(key, 0) + 1
        if len(self.failure_times) < MAX_FAILURE_TIMES:
            self.failure_times.append(round(t_start, 4))
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"t": round(t_start, 4), "kind": kind, "phase": phase,
                                  "detail": detail})


async def one_request(loop, addr, payload, state):
    """Runs one request; returns (kind or None, detail). state['phase'] is
    kept current so that a timeout can say where it happened."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    buf = bytearray()
    try:
        state["phase"] = "connect"
        await loop.sock_connect(sock, addr)
        state["phase"] = "send"
        await loop.sock_sendall(sock, payload)
        state["phase"] = "recv"
        for _ in range(4096):                           # bounded: MAX_RESPONSE
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_RESPONSE:
                return "other", "response larger than %d bytes" % MAX_RESPONSE
        else:
            return "other", "too many reads"
        complete, status = response_complete(buf)
        if not complete:
            return "eof", "EOF after %d bytes" % len(buf)
        if not 200 <= status < 300:
            return "non2xx", "status %d" % status
        return None, None
    except ConnectionRefusedError:
        return "refused", "ECONNREFUSED"
    except (ConnectionResetError, BrokenPipeError) as e:
        complete, status = response_complete(buf)
        if complete and status is not None and 200 <= status < 300 and state["phase"] == "recv":
            state["reset_after_response"] = True
            return None, None
        return "reset", "%s after %d bytes" % (errno.errorcode.get(e.errno, str(e.errno)), len(buf))
    except OSError as e:
        return "other", "%s: %s" % (errno.errorcode.get(e.errno, str(e.errno)), e.strerror)
    finally:
        sock.close()


async def timed_request(loop, addr, payload, timeout):
    """one_request within <timeout> seconds: (kind or None, detail, state)."""
    state = {"phase": "connect"}
    try:
        kind, detail = await asyncio.wait_for(one_request(loop, addr, payload, state), timeout)
    except asyncio.TimeoutError:
        kind, detail = "timeout", "no complete response in %gs" % timeout
    return kind, detail, state


async def client(loop, args, payload, stats, deadline):
    addr = ("127.0.0.1", args.port)
    for _ in range(args.max_requests):                  # bounded: count and deadline
        now = time.monotonic()
        if now >= deadline:
            return
        started = time.time()
        stats.requests += 1
        kind, detail, state = await timed_request(loop, addr, payload, args.timeout)
        if kind is None:
            stats.ok += 1
            stats.latencies.append(time.monotonic() - now)
            if state.get("reset_after_response"):
                stats.reset_after_response += 1
        else:
            stats.fail(kind, state["phase"], detail, started)


def request_bytes(port, path="/"):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: corral-reload-bench\r\n"
            "Connection: close\r\n\r\n" % (path, port)).encode()


async def run_selftest():
    """Each failure kind provoked on purpose against small local servers: the
    classification must say what really happened, or a run that reports
    zero failures could be a client that cannot see them."""
    loop = asyncio.get_running_loop()
    results = {}

    def listener(backlog=16):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        ls.listen(backlog)
        ls.setblocking(False)
        return ls, ("127.0.0.1", ls.getsockname()[1])

    async def serve_once(ls, reply, close_after=True):
        conn, _ = await loop.sock_accept(ls)
        conn.setblocking(False)
        try:
            await loop.sock_recv(conn, 65536)
            if reply:
                await loop.sock_sendall(conn, reply)
            if not close_after:
                await asyncio.sleep(3)
        finally:
            conn.close()

    async def case(name, expect, addr, server=None, timeout=2.0):
        task = asyncio.ensure_future(server) if server is not None else None
        kind, detail, state = await timed_request(loop, addr, request_bytes(addr[1]), timeout)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        results[name] = {"expected": expect, "got": kind, "phase": state["phase"],
                         "detail": detail}

    ok200 = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
    # ok
    ls, addr = listener()
    await case("ok", None, addr, serve_once(ls, ok200))
    ls.close()
    # non-2xx
    ls, addr = listener()
    await case("non2xx", "non2xx", addr, serve_once(
        ls, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
    ls.close()
    # EOF with nothing, and EOF in the middle of a body
    ls, addr = listener()
    await case("eof_empty", "eof", addr, serve_once(ls, b""))
    ls.close()
    ls, addr = listener()
    await case("eof_partial", "eof", addr, serve_once(
        ls, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"))
    ls.close()
    # timeout: accepted, never answered
    ls, addr = listener()
    await case("timeout", "timeout", addr, serve_once(ls, b"", close_after=False), timeout=0.5)
    ls.close()
    # refused: a port nobody listens on (bound, not listening)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    await case("refused", "refused", s.getsockname())
    s.close()
    # reset: the connection sits in a listener's accept queue, and the listener
    # closes without accepting it (what a reload that closes a socket does)
    ls, addr = listener()

    async def close_soon():
        await asyncio.sleep(0.3)
        ls.close()
    await case("reset_queued", "reset", addr, close_soon())
    failed = [k for k, v in results.items() if v["got"] != v["expected"]]
    return {"selftest": "ok" if not failed else "FAILED", "failed": failed, "cases": results}


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values))) - 1))
    return sorted_values[i]


async def run_load(args):
    loop = asyncio.get_running_loop()
    payload = request_bytes(args.port, args.path)
    stats = Stats()
    t_epoch = time.time()
    t0 = time.monotonic()
    deadline = t0 + args.duration
    tasks = [asyncio.ensure_future(client(loop, args, payload, stats, deadline))
             for _ in range(args.concurrency)]
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    lat = sorted(stats.latencies)
    failed = sum(stats.kinds.values())
    out = {
        "label": args.label,
        "start_epoch": round(t_epoch, 4),
        "duration_s": round(elapsed, 3),
        "concurrency": args.concurrency,
        "timeout_s": args.timeout,
        "requests": stats.requests,
        "ok": stats.ok,
    }
    out.update(stats.kinds)
    out.update({
        "failed": failed,
        "failure_rate": (failed / stats.requests) if stats.requests else None,
        "req_per_s": round(stats.requests / elapsed, 1) if elapsed > 0 else None,
        "latency_ms": {k: (round(v * 1000, 3) if v is not None else None) for k, v in
                       (("p50", percentile(lat, 50)), ("p99", percentile(lat, 99)),
                        ("max", lat[-1] if lat else None))},
        "reset_after_response": stats.reset_after_response,
        "failures_by_phase": stats.by_phase,
        "examples": stats.examples,
        "failure_epochs": stats.failure_times,
    })
    return out


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return None


NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10


def listeners(port):
    """[(inode, accept queue length)] of the TCP listening sockets on <port>,
    from the kernel's sock_diag netlink interface (what ss uses)."""
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    nl.settimeout(1.0)
    found = []
    try:
        # inet_diag_req_v2: family, protocol, ext, pad, states, then a zero
        # inet_diag_sockid (48 bytes): dump every IPv4 TCP listener
        req = struct.pack("=BBBBI48x", socket.AF_INET, socket.IPPROTO_TCP, 0, 0,
                          1 << TCP_LISTEN)
        hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY,
                          0x1 | 0x300, 1, 0)                # NLM_F_REQUEST | NLM_F_DUMP
        nl.sendto(hdr + req, (0, 0))
        for _ in range(1000):                               # bounded
            data = nl.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                length, mtype = struct.unpack_from("=IH", data, off)
                if mtype in (NLMSG_DONE, NLMSG_ERROR) or length < 16:
                    return found
                # inet_diag_msg: family, state, timer, retrans, sockid (sport
                # big-endian first), expires, rqueue, wqueue, uid, inode
                msg = off + 16
                sport = struct.unpack_from("!H", data, msg + 4)[0]
                rqueue, _, _, inode = struct.unpack_from("=IIII", data, msg + 4 + 48 + 4)
                if sport == port:
                    found.append((inode, rqueue))
                off += (length + 3) & ~3
        return found
    except OSError:                 # includes the timeout: report what we have
        return found
    finally:
        nl.close()


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def swap_config(src, dst):
    """Put a copy of <src> in place of <dst>, atomically."""
    tmp = dst + ".next"
    with open(src, "rb") as f, open(tmp, "wb") as g:
        g.write(f.read())
    os.replace(tmp, dst)


def run_reload(args):
    sig = getattr(signal, "SIG" + args.signal.upper().removeprefix("SIG"))
    seen = {}                       # pid -> epoch first seen
    inodes = set()                  # listening sockets on --port
    max_queue = 0                   # deepest accept queue seen
    max_live = 0
    samples = 0
    sent = []
    t0 = time.monotonic()

    def sample():
        nonlocal max_live, samples, max_queue
        if args.port:
            for inode, queue in listeners(args.port):
                inodes.add(inode)
                max_queue = max(max_queue, queue)
        kids = children(args.pid)
        if kids is None:
            return
        samples += 1
        max_live = max(max_live, len(kids))
        now = time.time()
        for k in kids:
            seen.setdefault(k, now)

    def sample_until(t_end):
        for _ in range(int((t_end - time.monotonic()) / args.sample) + 2):  # bounded
            sample()
            left = t_end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(args.sample, left))

    sample_until(t0 + args.delay)
    initial = sorted(seen)
    error = None
    for i in range(args.count):
        if not alive(args.pid):
            error = "master %d gone before reload %d" % (args.pid, i + 1)
            break
        if args.configs:
            swap_config(args.configs[(i + 1) % len(args.configs)], args.config_path)
        os.kill(args.pid, sig)
        sent.append(round(time.time(), 4))
        sample_until(t0 + args.delay + (i + 1) * args.interval)
    sample_until(time.monotonic() + args.tail)
    final = children(args.pid)
    # per reload: how long until a new worker pid showed up, if it did so
    # before the next reload was sent (None: it did not)
    news = sorted(v for k, v in seen.items() if k not in initial)
    latencies = []
    for i, e in enumerate(sent):
        nxt = sent[i + 1] if i + 1 < len(sent) else float("inf")
        first = next((v for v in news if e <= v < nxt), None)
        latencies.append(round(first - e, 4) if first is not None else None)
    return {
        "pid": args.pid,
        "signal": args.signal,
        "reloads_requested": args.count,
        "reloads_sent": len(sent),
        "interval_s": args.interval,
        "reload_epochs": sent,
        "initial_workers": initial,
        "new_worker_after_s": latencies,
        "distinct_worker_pids": len(seen),
        "worker_pids_first_seen": sorted(([k, round(v, 4)] for k, v in seen.items()),
                                         key=lambda kv: kv[1]),
        "max_live_children": max_live,
        "distinct_listen_sockets": len(inodes) if args.port else None,
        "max_accept_queue": max_queue if args.port else None,
        "final_children": final,
        "master_alive": alive(args.pid),
        "samples": samples,
        "error": error,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("load", help="run the clients, print a JSON summary")
    lp.add_argument("--port", type=int, required=True)
    lp.add_argument("--path", default="/")
    lp.add_argument("--concurrency", "-c", type=int, default=100)
    lp.add_argument("--duration", "-d", type=float, default=10.0, help="seconds")
    lp.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    lp.add_argument("--max-requests", type=int, default=10_000_000,
                    help="per client, a bound on top of the duration")
    lp.add_argument("--label", default="")
    rp = sub.add_parser("reload", help="signal a master on a schedule, count its workers")
    rp.add_argument("--pid", type=int, required=True)
    rp.add_argument("--signal", default="HUP")
    rp.add_argument("--port", type=int, default=0,
                    help="also count the listening sockets on this port")
    rp.add_argument("--config-path", help="with --configs: the file the master reads")
    rp.add_argument("--configs", nargs="+", metavar="FILE",
                    help="before reload i, copy FILE number (i + 1) mod len to --config-path "
                         "(the first one is the config the master started with)")
    rp.add_argument("--count", type=int, default=50)
    rp.add_argument("--interval", type=float, default=0.5)
    rp.add_argument("--delay", type=float, default=2.0, help="before the first reload")
    rp.add_argument("--tail", type=float, default=1.0, help="sampling after the last")
    rp.add_argument("--sample", type=float, default=0.02, help="sampling period")
    sub.add_parser("selftest", help="provoke each failure kind, check the classification")
    args = ap.parse_args()
    if args.cmd == "reload" and bool(args.configs) != bool(args.config_path):
        ap.error("--configs and --config-path go together")
    if args.cmd == "load":
        out = asyncio.run(run_load(args))
    elif args.cmd == "selftest":
        out = asyncio.run(run_selftest())
    else:
        out = run_reload(args)
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if out.get("selftest") == "FAILED":
        sys.exit(1)


if __name__ == "__main__":
    main()
