#!/usr/bin/env python3
"""
backend.py - stub upstream server for corral's integration tests.

Standard library only. One ThreadingHTTPServer speaking HTTP/1.1 with
keep-alive; every response carries "X-Backend: NAME".

Endpoints (matched on the first path segment that names one, so they also
answer under a prefix: /api/headers is served like /headers and reports
the path it really received):

  /                 small HTML page containing the backend name
  /echo             any method: 200 with the request body exactly
                    (Content-Length or chunked request bodies)
  /headers          JSON: {"method", "path" (with query), "version",
                    "headers": [[name, value], ...] in order received,
                    "body_bytes"}
  /slow?ms=N        sleep N ms, then answer "slow\n"
  /status/NNN       answer status NNN (no body for 1xx/204/304)
  /bytes?n=N        N bytes of the pattern below, with Content-Length
  /chunked?n=N&size=S
                    N bytes of the pattern, chunked, S bytes per chunk
  /sink             read the whole body in pieces without keeping it;
                    JSON {"bytes": N, "sha256": hex}
  /conns            number of TCP connections accepted so far
  /reqs             number of requests handled so far (this one included)
  /setheaders?K=V&..  200 with each K: V added to the response head
                    (a repeated K gives repeated headers)

Pattern of /bytes and /chunked: byte i is PATTERN[i % len(PATTERN)] with
PATTERN = bytes(range(256)) * 16 + b"corral" (4102 bytes, so block
boundaries do not line up with powers of two).

Each request is logged to stderr as "NAME METHOD TARGET", so a test can
check what reached the backend.
"""

import argparse
import hashlib
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATTERN = bytes(range(256)) * 16 + b"corral"
ENDPOINTS = ("echo", "headers", "slow", "status", "bytes", "chunked",
             "sink", "conns", "reqs", "setheaders")
NOBODY_STATUS = (204, 304)


def pattern_bytes(offset, n):
    """n bytes of the pattern starting at absolute offset."""
    out = bytearray()
    plen = len(PATTERN)
    while n > 0:
        start = offset % plen
        take = min(n, plen - start)
        out += PATTERN[start:start + take]
        offset += take
        n -= take
    return bytes(out)


class BodyError(Exception):
    pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, handler, name):
        super().__init__(addr, handler)
        self.name = name
        self.lock = threading.Lock()
        self.nconns = 0
        self.nreqs = 0

    def get_request(self):
        conn = super().get_request()
        with self.lock:
            self.nconns += 1
        return conn


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "corral-test-backend"

    def log_message(self, fmt, *args):
        pass

    # -- request body -------------------------------------------------------

    def body_chunks(self):
        """Yield the request body in pieces (Content-Length or chunked)."""
        te = self.headers.get("Transfer-Encoding", "")
        if te:
            if te.strip().lower() != "chunked":
                raise BodyError("unsupported transfer-encoding " + te)
            while True:
                line = self.rfile.readline(4096)
                if not line.endswith(b"\n"):
                    raise BodyError("bad chunk size line")
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BodyError("bad chunk size %r" % size_text)
                if size == 0:
                    # trailer section, up to the empty line
                    while True:
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            return
                left = size
                while left > 0:
                    piece = self.rfile.read(min(left, 65536))
                    if not piece:
                        raise BodyError("eof in chunk")
                    left -= len(piece)
                    yield piece
                if self.rfile.readline(4) not in (b"\r\n", b"\n"):
                    raise BodyError("chunk not followed by CRLF")
            return
        cl = self.headers.get("Content-Length")
        if cl is None:
            return
        left = int(cl)
        while left > 0:
            piece = self.rfile.read(min(left, 65536))
            if not piece:
                raise BodyError("eof in body")
            left -= len(piece)
            yield piece

    def read_body(self):
        return b"".join(self.body_chunks())

    # -- responses ----------------------------------------------------------

    def start(self, status, headers=(), length=None, chunked=False, body=b""):
        self.send_response(status)
        self.send_header("X-Backend", self.server.name)
        for k, v in headers:
            self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", str(length))
        # what end_headers() does, with <body> in the same write: a backend
        # killed between two writes of one small answer would cut it after
        # its head, which no proxy can hide once the head is on its way
        self._headers_buffer.append(b"\r\n")
        if body:
            self._headers_buffer.append(body)
        self.flush_headers()

    def answer(self, status, body=b"", ctype="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        hdrs = [("Content-Type", ctype)] + list(headers)
        if status in NOBODY_STATUS or 100 <= status < 200:
            self.start(status, hdrs)
            return
        self.start(status, hdrs, length=len(body),
                   body=body if self.command != "HEAD" else b"")

    # -- dispatch -----------------------------------------------------------

    def handle_any(self):
        with self.server.lock:
            self.server.nreqs += 1
            nreqs = self.server.nreqs
            nconns = self.server.nconns
        sys.stderr.write("%s %s %s\n" % (self.server.name, self.command, self.path))
        sys.stderr.flush()

        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        segs = [s for s in url.path.split("/") if s]
        ep, rest = "", []
        for i, s in enumerate(segs):
            if s in ENDPOINTS:
                ep, rest = s, segs[i + 1:]
                break

        try:
            if ep == "echo":
                body = self.read_body()
                self.answer(200, body, ctype="application/octet-stream")
                return
            if ep == "sink":
                h = hashlib.sha256()
                n = 0
                for piece in self.body_chunks():
                    n += len(piece)
                    h.update(piece)
                self.answer(200, json.dumps({"bytes": n, "sha256": h.hexdigest()}) + "\n",
                            ctype="application/json")
                return
            # every other endpoint ignores the body, but must consume it
            nbody = 0
            for piece in self.body_chunks():
                nbody += len(piece)
        except BodyError as e:
            self.close_connection = True
            self.answer(400, "backend: %s\n" % e, headers=[("Connection", "close")])
            return

        if ep == "headers":
            doc = {
                "method": self.command,
                "path": self.path,
                "version": self.request_version,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_bytes": nbody,
            }
            self.answer(200, json.dumps(doc) + "\n", ctype="application/json")
        elif ep == "slow":
            ms = int(q.get("ms", ["1000"])[0])
            time.sleep(ms / 1000.0)
            self.answer(200, "slow\n")
        elif ep == "status":
            code = int(rest[0]) if rest else 200
            self.answer(code, "status %d\n" % code)
        elif ep == "bytes":
            n = int(q.get("n", ["1024"])[0])
            self.start(200, [("Content-Type", "application/octet-stream")], length=n)
            if self.command != "HEAD":
                off = 0
                while off < n:
                    take = min(65536, n - off)
                    self.wfile.write(pattern_bytes(off, take))
                    off += take
        elif ep == "chunked":
            n = int(q.get("n", ["1024"])[0])
            size = max(1, int(q.get("size", ["4096"])[0]))
            self.start(200, [("Content-Type", "application/octet-stream")], chunked=True)
            if self.command != "HEAD":
                off = 0
                while off < n:
                    take = min(size, n - off)
                    self.wfile.write(b"%x\r\n" % take + pattern_bytes(off, take) + b"\r\n")
                    off += take
                self.wfile.write(b"0\r\n\r\n")
        elif ep == "conns":
            self.answer(200, "%d\n" % nconns)
        elif ep == "reqs":
            self.answer(200, "%d\n" % nreqs)
        elif ep == "setheaders":
            extra = []
            for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
                extra.append((k, v))
            self.answer(200, "headers set\n", headers=extra)
        else:
            page = ("<!DOCTYPE html>\n<html><head><title>%s</title></head>\n"
                    "<body><h1>backend %s</h1></body></html>\n"
                    % (self.server.name, self.server.name))
            self.answer(200, page, ctype="text/html")

    def __getattr__(self, name):
        # do_GET, do_POST, do_DELETE, ... and any other method token
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)


def main():
    ap = argparse.ArgumentParser(description="corral test backend")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="backend")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    srv = Server((args.host, args.port), Handler, args.name)
    sys.stderr.write("%s listening on %s:%d\n" % (args.name, args.host, srv.server_address[1]))
    sys.stderr.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
