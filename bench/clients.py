#!/usr/bin/env python3
"""bench/clients.py - the two clients of bench/bench.py that wrk cannot be.

  count   exactly N keep-alive GET requests over C connections (each
          connection sends its share one after the other), every response
          read to its end. The syscall counts of a proxy are divided by N, so
          N must be exact: a wrk run of fixed duration is not.
  idle    N client connections that each send one keep-alive GET, read the
          whole response and then stay open and silent, to measure what an
          idle connection costs a proxy. At most --concurrency requests are in
          flight at once, so the proxy's upstream pool stays small. When all
          are answered it prints one JSON line ("ready") and holds the
          connections until its stdin closes or --hold seconds pass, then
          prints a final JSON line with how many were still open.

Both print JSON on stdout and exit 1 when a request failed. Every loop is
bounded by a deadline. Standard library only.
"""
import argparse
import json
import os
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reload_client import response_complete  # noqa: E402

MAX_RESPONSE = 1 << 20


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < need:
        sys.exit("clients: need %d file descriptors, the limit is %d" % (need, soft))


def request_bytes(port, path):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: corral-bench\r\n\r\n"
            % (path, port)).encode()


class Conn:
    """One client connection: sends a request, reads one response."""

    def __init__(self, sel, port, req):
        self.sel = sel
        self.req = req
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect_ex(("127.0.0.1", port))
        self.out = b""
        self.buf = bytearray()
        self.registered = False

    def send_request(self):
        self.out = self.req
        self.buf.clear()
        self._watch(selectors.EVENT_WRITE)

    def _watch(self, events):
        if self.registered:
            self.sel.modify(self.sock, events, self)
        else:
            self.sel.register(self.sock, events, self)
            self.registered = True

    def unwatch(self):
        if self.registered:
            self.sel.unregister(self.sock)
            self.registered = False

    def on_event(self, mask):
        """None while the response is incomplete, else its status; raises
        OSError (or EOFError) on a failure."""
        if mask & selectors.EVENT_WRITE:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            n = self.sock.send(self.out)
            self.out = self.out[n:]
            if not self.out:
                self._watch(selectors.EVENT_READ)
            return None
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed before a complete response")
        self.buf += data
        if len(self.buf) > MAX_RESPONSE:
            raise OSError("response larger than %d bytes" % MAX_RESPONSE)
        done, status = response_complete(self.buf)
        return status if done else None

    def close(self):
        self.unwatch()
        self.sock.close()


def poll(sel, deadline):
    """Ready (conn, mask) pairs; TimeoutError past the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return [(key.data, mask) for key, mask in sel.select(min(left, 1.0))]


def run_count(args):
    raise_nofile(args.connections + 64)
    req = request_bytes(args.port, args.path)
    sel = selectors.DefaultSelector()
    share = [args.requests // args.connections + (i < args.requests % args.connections)
             for i in range(args.connections)]
    left = {}
    for n in share:
        if n:
            c = Conn(sel, args.port, req)
            left[c] = n
            c.send_request()
    res = {"requests": args.requests, "connections": len(left), "ok": 0, "non2xx": 0,
           "errors": 0, "error": ""}
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    try:
        while left:
            for c, mask in poll(sel, deadline):
                try:
                    status = c.on_event(mask)
                except (OSError, EOFError) as e:
                    res["errors"] += left.pop(c)
                    res["error"] = res["error"] or str(e)
                    c.close()
                    continue
                if status is None:
                    continue
                res["ok" if 200 <= status < 300 else "non2xx"] += 1
                left[c] -= 1
                if left[c]:
                    c.send_request()
                else:
                    del left[c]
                    c.close()
    except TimeoutError:
        res["errors"] += sum(left.values())
        res["error"] = "timed out after %s s" % args.timeout
    res["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(res))
    return 0 if res["ok"] == args.requests else 1


def run_idle(args):
    raise_nofile(args.connections + 64)
    req = request_bytes(args.port, args.path)
    sel = selectors.DefaultSelector()
    held, inflight = [], set()
    res = {"connections": args.connections, "answered": 0, "non2xx": 0, "errors": 0,
           "error": ""}
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    opened = 0
    try:
        while res["answered"] + res["errors"] + res["non2xx"] < args.connections:
            while opened < args.connections and len(inflight) < args.concurrency:
                c = Conn(sel, args.port, req)
                c.send_request()
                inflight.add(c)
                opened += 1
            for c, mask in poll(sel, deadline):
                try:
                    status = c.on_event(mask)
                except (OSError, EOFError) as e:
                    res["errors"] += 1
                    res["error"] = res["error"] or str(e)
                    inflight.discard(c)
                    c.close()
                    continue
                if status is None:
                    continue
                inflight.discard(c)
                c.unwatch()
                if 200 <= status < 300:
                    res["answered"] += 1
                    held.append(c)
                else:
                    res["non2xx"] += 1
                    c.close()
    except TimeoutError:
        res["error"] = "timed out after %s s with %d answered" % (args.timeout,
                                                                  res["answered"])
    res["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(dict(res, event="ready")), flush=True)
    if res["answered"] == args.connections:
        # hold until stdin closes (the bench has measured) or --hold passes
        sel2 = selectors.DefaultSelector()
        sel2.register(sys.stdin, selectors.EVENT_READ)
        end = time.monotonic() + args.hold
        while time.monotonic() < end:
            if sel2.select(min(1.0, end - time.monotonic())) and not os.read(0, 4096):
                break
    # a connection the proxy closed meanwhile is readable (EOF): count them
    still = 0
    for c in held:
        try:
            still += c.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            still += 1
        except OSError:
            pass
        c.close()
    print(json.dumps({"event": "done", "still_open": still}), flush=True)
    return 0 if res["answered"] == args.connections else 1


def main():
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("--port", type=int, required=True, help="on 127.0.0.1")
    target.add_argument("--path", default="/")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count", parents=[target], help="exactly N keep-alive requests")
    c.add_argument("-n", "--requests", type=int, required=True)
    c.add_argument("-c", "--connections", type=int, default=50)
    c.add_argument("--timeout", type=float, default=120, help="whole run, seconds")
    i = sub.add_parser("idle", parents=[target], help="N idle keep-alive connections")
    i.add_argument("-n", "--connections", type=int, required=True)
    i.add_argument("--concurrency", type=int, default=100)
    i.add_argument("--timeout", type=float, default=120, help="to open and answer all")
    i.add_argument("--hold", type=float, default=120, help="longest hold, seconds")
    args = ap.parse_args()
    if args.cmd == "count" and not 0 < args.connections <= args.requests:
        ap.error("need 0 < connections <= requests")
    return run_count(args) if args.cmd == "count" else run_idle(args)


if __name__ == "__main__":
    sys.exit(main())
