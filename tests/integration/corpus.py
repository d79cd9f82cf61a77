#!/usr/bin/env python3
"""
corpus.py - run the hostile-input corpus (tests/http-corpus/cases.py)
against a running corral; used by 30-http-corpus.sh.

    corpus.py --port PORT --port-nomerge PORT --backend-port PORT
              [--cases FILE] [--only NAME-OR-CATEGORY] [--list]

Starts the recording upstream on 127.0.0.1:PORT (both corrals' configs must
send their routes there), then for each case: note what the upstream has received
so far, send the case's bytes on a fresh connection to corral, read the
responses (as many as the case's longest outcome, then whatever else comes
within a moment), let the upstream settle, and compare the statuses and
the requests the upstream received with the case's outcomes. Prints a diff
for each failing case, then "N cases, M failed"; exits 1 if any failed.

The recording upstream frames each request itself (Content-Length or
chunked, which is all corral writes), records its exact head, its decoded
body and whether it came chunked, and answers each with
"HTTP/1.1 200 OK, Content-Length: 2, ok" (no body for HEAD). Bytes it
cannot frame are recorded as such and end that connection; bytes still
unframed when corral closes the connection are recorded as "partial", and
bytes unframed on a connection still open when a case ends as "pending".
Any of them fails the case, except a "partial" that is exactly what the
case's "cut" outcome allows.
"""

import argparse
import difflib
import importlib.util
import os
import re
import select
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CASES = os.path.join(HERE, "..", "http-corpus", "cases.py")

RESPONSE_TIMEOUT = 8.0      # one response (corral's header/body timeouts are 2 s)
EXTRA_WAIT = 0.05           # for responses beyond the expected ones
SETTLE = 0.02               # then until the upstream's sockets are all quiet
SETTLE_MAX = 3.0
MAX_HEAD = 256 * 1024


# ---------------------------------------------------------------------------
# recording upstream

class Recorder:
    def __init__(self, port):
        self.lock = threading.Lock()
        self.events = []        # (conn, kind, payload); kind "req", "junk", "partial"
        self.pending = {}       # conn -> bytes received but not framed yet
        self.open = {}          # conn -> socket
        self.busy = 0           # connections handling bytes just received
        self.nconns = 0
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def mark(self):
        with self.lock:
            return len(self.events)

    def since(self, mark):
        """Events after <mark>, then ("pending", bytes) per open connection
        holding unframed bytes."""
        with self.lock:
            return (list(self.events[mark:])
                    + [(c, "pending", b) for c, b in sorted(self.pending.items()) if b])

    def quiet(self):
        """Nothing to accept, nothing unread, nothing being handled."""
        with self.lock:
            socks = [self.ls] + list(self.open.values())
            if self.busy:
                return False
        try:
            readable, _, _ = select.select(socks, [], [], 0)
        except (OSError, ValueError):
            return False                # a socket closed meanwhile: look again
        return not readable

    def settle(self):
        """Wait until quiet twice in a row, so that what corral sent before
        the client got its answer (a close included) is recorded."""
        time.sleep(SETTLE)
        end = time.time() + SETTLE_MAX
        calm = 0
        while calm < 2 and time.time() < end:
            calm = calm + 1 if self.quiet() else 0
            time.sleep(0.01)

    def _record(self, conn, kind, payload):
        with self.lock:
            self.events.append((conn, kind, payload))

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.nconns += 1
                n = self.nconns
                self.open[n] = s
            threading.Thread(target=self._serve, args=(s, n), daemon=True).start()

    def _serve(self, s, conn):
        buf = b""
        busy = False
        try:
            while True:
                d = s.recv(65536)
                with self.lock:
                    self.busy += 1
                busy = True
                if not d:
                    break
                buf += d
                while True:
                    r = frame(buf)
                    if r is None:
                        break
                    kind, payload, used = r
                    buf = buf[used:]
                    if kind == "junk":
                        self._record(conn, "junk", payload)
                        buf = b""
                        return
                    self._record(conn, "req", payload)
                    head = payload[0]
                    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
                    if not head.startswith(b"HEAD "):
                        resp += b"ok"
                    s.sendall(resp)
                with self.lock:
                    self.pending[conn] = buf
                    self.busy -= 1
                busy = False
        except OSError as e:
            buf += (" [%s]" % e).encode()
        finally:
            with self.lock:
                self.pending.pop(conn, None)
                self.open.pop(conn, None)
                if buf:
                    self.events.append((conn, "partial", mask_id(buf)))
                if busy:
                    self.busy -= 1
            s.close()


# A request id corral generated (32 hex digits, right after Via): random,
# so compared as the placeholder cases.py writes (cases.REQUEST_ID).
GENERATED_ID = re.compile(rb"(\r\nVia: [^\r\n]*\r\nX-Request-Id: )[0-9a-f]{32}(?=\r\n)")


def mask_id(data):
    return GENERATED_ID.sub(rb"\1<request-id>", data)


def frame(buf):
    """One request from the start of <buf>: ("req", (head, body, chunked,
    trailers), used), ("junk", bytes, used), or None when incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            return ("junk", buf[:2000], len(buf))
        return None
    head = mask_id(buf[:end + 4])
    lines = head[:-4].split(b"\r\n")
    if len(lines[0].split(b" ")) != 3 or b"\n" in head.replace(b"\r\n", b""):
        return ("junk", buf[:2000], len(buf))
    te = cl = None
    for ln in lines[1:]:
        name, colon, value = ln.partition(b":")
        if not colon:
            return ("junk", buf[:2000], len(buf))
        name = name.lower()
        if name == b"transfer-encoding":
            if te is not None or value.strip() != b"chunked":
                return ("junk", buf[:2000], len(buf))
            te = True
        elif name == b"content-length":
            if cl is not None or not value.strip().isdigit():
                return ("junk", buf[:2000], len(buf))
            cl = int(value.strip())
    if te and cl is not None:
        return ("junk", buf[:2000], len(buf))
    pos = end + 4
    if cl is not None:
        if len(buf) < pos + cl:
            return None
        return ("req", (head, buf[pos:pos + cl], False, b""), pos + cl)
    if not te:
        return ("req", (head, b"", False, b""), pos)
    body = b""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_txt = buf[pos:eol]
        if not size_txt or any(c not in b"0123456789abcdefABCDEF" for c in size_txt) \
                or len(size_txt) > 16:
            return ("junk", buf[:2000], len(buf))
        size = int(size_txt, 16)
        pos = eol + 2
        if size == 0:
            tend = buf.find(b"\r\n", pos)
            trailers = b""
            while tend >= 0 and tend != pos:
                trailers += buf[pos:tend + 2]
                pos = tend + 2
                tend = buf.find(b"\r\n", pos)
            if tend < 0:
                return None
            return ("req", (head, body, True, trailers), pos + 2)
        if len(buf) < pos + size + 2:
            return None
        if buf[pos + size:pos + size + 2] != b"\r\n":
            return ("junk", buf[:2000], len(buf))
        body += buf[pos:pos + size]
        pos += size + 2


def is_cut(data, head):
    """<data> is <head>, then complete chunks of non-zero size, no more."""
    if not data.startswith(head):
        return False
    pos = len(head)
    while pos < len(data):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return False
        size_txt = data[pos:eol]
        if not size_txt or len(size_txt) > 16 \
                or any(c not in b"0123456789abcdefABCDEF" for c in size_txt):
            return False
        size = int(size_txt, 16)
        if size == 0 or data[eol + 2 + size:eol + 4 + size] != b"\r\n":
            return False
        pos = eol + 4 + size
    return True


def matches(outcome, statuses, reqs, stray):
    st, fwd, cut_head = outcome
    if list(st) != statuses:
        return False
    if any(r[3] for r in reqs):
        return False                    # trailers are never forwarded
    if cut_head is None:
        return not stray and [r[:3] for r in reqs] == fwd
    return (not reqs and len(stray) == 1 and stray[0][0] == "partial"
            and is_cut(stray[0][1], cut_head))


# ---------------------------------------------------------------------------
# client side

class Reader:
    def __init__(self, s):
        self.s = s
        self.buf = b""
        self.eof = False

    def fill(self, deadline):
        remaining = deadline - time.time()
        if remaining <= 0:
            raise socket.timeout()
        self.s.settimeout(remaining)
        try:
            d = self.s.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            raise EOFError()
        self.buf += d

    def until(self, sep, deadline):
        while sep not in self.buf:
            self.fill(deadline)
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n, deadline):
        while len(self.buf) < n:
            self.fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_only, timeout):
        """The status of one response, after reading all of it."""
        deadline = time.time() + timeout
        headtxt = self.until(b"\r\n\r\n", deadline)
        first = headtxt.split(b"\r\n", 1)[0]
        parts = first.split(b" ")
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ValueError("bad status line %r" % first[:100])
        status = int(parts[1])
        cl, chunked = None, False
        for ln in headtxt.split(b"\r\n")[1:]:
            name, _, value = ln.partition(b":")
            if name.strip().lower() == b"content-length":
                cl = int(value.strip())
            elif name.strip().lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if head_only or status in (204, 304) or 100 <= status < 200:
            return status
        if chunked:
            while True:
                size = int(self.until(b"\r\n", deadline).split(b";")[0], 16)
                if size == 0:
                    while self.until(b"\r\n", deadline) != b"\r\n":
                        pass
                    break
                self.exact(size + 2, deadline)
        elif cl is not None:
            self.exact(cl, deadline)
        else:
            try:
                while True:
                    self.fill(deadline)
            except EOFError:
                pass
        return status


def exchange(port, data, want, head_only):
    """Send <data>, read up to <want> responses, then whatever comes within
    EXTRA_WAIT. Returns (statuses, note)."""
    statuses, note = [], ""
    s = socket.create_connection(("127.0.0.1", port), timeout=RESPONSE_TIMEOUT)
    try:
        try:
            s.sendall(data)
        except OSError as e:
            note = "send: %s" % e
        r = Reader(s)
        try:
            while len(statuses) < want:
                statuses.append(r.response(head_only, RESPONSE_TIMEOUT))
            while True:
                if not r.buf:
                    r.fill(time.time() + EXTRA_WAIT)
                statuses.append(r.response(head_only, RESPONSE_TIMEOUT))
        except (EOFError, socket.timeout):
            pass
        except (ValueError, OSError) as e:
            note = str(e)
    finally:
        s.close()
    return statuses, note


# ---------------------------------------------------------------------------
# comparing

def fmt_req(req):
    head, body, chunked = req[0], req[1], req[2]
    lines = ["    " + repr(ln)[2:-1] for ln in head.split(b"\r\n")[:-2]]
    lines.append("    body (%s, %d bytes): %r" % ("chunked, decoded" if chunked else "length",
                                                  len(body), body[:200]))
    if len(req) > 3 and req[3]:
        lines.append("    trailers: %r" % req[3])
    return lines


def fmt_outcome(statuses, fwd, cut_head=None):
    st = "statuses %s" % list(statuses) if statuses else "no response (closed)"
    if cut_head is not None:
        return ["  " + st + ", upstream gets this head, maybe complete chunks, then a close:"] \
            + ["    " + repr(ln)[2:-1] for ln in cut_head.split(b"\r\n")[:-2]]
    if not fwd:
        return ["  " + st + ", nothing forwarded"]
    lines = ["  " + st + ", forwarded %d request(s):" % len(fwd)]
    for f in fwd:
        lines += fmt_req(f)
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--port-nomerge", type=int)
    ap.add_argument("--backend-port", type=int)
    ap.add_argument("--cases", default=DEFAULT_CASES)
    ap.add_argument("--only", default="")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()

    spec = importlib.util.spec_from_file_location("corpus_cases", args.cases)
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    selected = [c for c in cases.CASES if args.only in c.name or args.only == c.cat]

    cats = {}
    for c in selected:
        cats[c.cat] = cats.get(c.cat, 0) + 1
    if args.list:
        for cat, n in cats.items():
            print("%-20s %d" % (cat, n))
        print("%d cases" % len(selected))
        return 0

    upstream = b"127.0.0.1:%d" % args.backend_port
    ports = {"main": args.port, "nomerge": args.port_nomerge}
    rec = Recorder(args.backend_port)
    failed = []
    deadline = time.time() + 150
    for c in selected:
        if time.time() > deadline:
            print("FAIL: the corpus took over 150 s; stopped before %s" % c.name)
            failed.append(c)
            break
        outcomes = []
        for st, fwd, cut_req in c.outcomes:
            outcomes.append((st, [(f.head.replace(cases.UPSTREAM, upstream), f.body, f.chunked)
                                  for f in fwd],
                             cut_req.head.replace(cases.UPSTREAM, upstream) if cut_req else None))
        want = max(len(o[0]) for o in outcomes)
        mark = rec.mark()
        statuses, note = exchange(ports[c.instance], c.raw, want, c.head)
        rec.settle()
        events = rec.since(mark)
        got_reqs = [p for _, kind, p in events if kind == "req"]
        stray = [(kind, p) for _, kind, p in events if kind != "req"]
        if any(matches(o, statuses, got_reqs, stray) for o in outcomes):
            continue
        failed.append(c)
        lines = ["FAIL [%s] %s%s" % (c.cat, c.name,
                                     " (merge_slashes: false)" if c.instance != "main" else ""),
                 "  sent: %r%s" % (c.raw[:400], " ..." if len(c.raw) > 400 else "")]
        if c.why:
            lines.append("  why: " + c.why)
        lines.append(" expected%s:" % (" one of" if len(outcomes) > 1 else ""))
        for st, fwd, cut_head in outcomes:
            lines += fmt_outcome(st, fwd, cut_head)
        lines.append(" got:")
        lines += fmt_outcome(statuses, got_reqs)
        if note:
            lines.append("  (client: %s)" % note)
        for kind, p in stray:
            lines.append("  upstream also got %s bytes: %r" % (kind, p[:300]))
        # a line diff of the heads when the count of requests agrees
        best = next((o[1] for o in outcomes if len(o[1]) == len(got_reqs) and o[1]), None)
        if best is not None:
            for e, g in zip(best, got_reqs):
                if e[0] != g[0]:
                    lines += ["  " + d.rstrip("\n") for d in difflib.unified_diff(
                        [repr(x)[2:-1] for x in e[0].split(b"\r\n")],
                        [repr(x)[2:-1] for x in g[0].split(b"\r\n")],
                        "expected head", "forwarded head", lineterm="")]
        print("\n".join(lines), flush=True)

    print()
    for cat, n in cats.items():
        nf = sum(1 for c in failed if c.cat == cat)
        print("%-20s %3d cases, %3d failed" % (cat, n, nf))
    print("%d cases, %d failed" % (len(selected), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
