#!/usr/bin/env bash
# 06-routes: routing by host, exact path, prefix, regex and method (a method
# not allowed falls through to the next route); strip_prefix; request and
# response header rules; respond and redirect actions.
. "$(dirname "$0")/lib.sh"

bport=$(start_backend b1)
PORT=$(free_port)
export PORT

cat > corral.yaml <<EOF
name: t
workers: 2
drain_timeout: 5s
listen: [ { address: "127.0.0.1:$PORT" } ]
limits: { max_header_bytes: 16k, max_headers: 100, max_uri_bytes: 8k, max_body_bytes: 100m, header_timeout: 10s, idle_timeout: 60s }
upstreams:
  app: { keepalive: 32, connect_timeout: 1s, read_timeout: 2s, retries: 1, max_fails: 1, fail_timeout: 10s, balance: round_robin,
         servers: [ { address: "127.0.0.1:$bport", weight: 1 } ] }
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n", headers: { X-Ping: "1" } } }
  - { name: old, match: { path_prefix: /old/ }, redirect: { status: 301, location: "http://example.test/new" } }
  - { name: api, match: { host: api.test, path_prefix: /api/, methods: [GET, POST] }, upstream: app, strip_prefix: /api,
      request_headers: { set: { X-Env: test }, remove: [X-Debug] }, response_headers: { set: { X-Served-By: corral }, remove: [X-Backend] } }
  - { name: rx, match: { path_regex: "^/items/[0-9]+$" }, respond: { status: 200, body: "item\n" } }
  - { name: teapot, match: { path: /teapot }, respond: { status: 418, body: "short and stout\n" } }
  - { name: default, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml

py <<'EOF' || exit 1
import json
from httpc import *

def do(method, path, host="www.test", headers=(), body=None, head=False):
    c = Conn()
    c.send(request(method, path, host=host, headers=headers, body=body))
    r = c.response(head_request=head)
    c.close()
    return r

def backend_view(r, what):
    check(r.status == 200, what + ": status", 200, r)
    try:
        return json.loads(r.body)
    except ValueError:
        fail(what + ": expected the backend's JSON", "JSON", r.body[:200])

def hvals(doc, name):
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]

# -- respond ---------------------------------------------------------------------------
r = do("GET", "/ping")
check(r.status == 200, "GET /ping status", 200, r)
check(r.body == b"pong\n", "GET /ping body", b"pong\n", r.body)
check(r.header("X-Ping") == "1", "GET /ping header X-Ping", "1", r.header("X-Ping"))
check(r.header("X-Backend") is None, "GET /ping is not proxied", None, r.header("X-Backend"))
r = do("POST", "/ping", body=b"ignored")
check(r.status == 200 and r.body == b"pong\n", "POST /ping (no method limit)", b"pong\n", r)
r = do("GET", "/ping?x=1")
check(r.body == b"pong\n", "exact path ignores the query", b"pong\n", r.body)
r = do("GET", "/teapot")
check(r.status == 418 and r.body == b"short and stout\n", "respond with status 418",
      "418 short and stout", r)
# exact means exact
r = do("GET", "/ping/more")
check(r.header("X-Backend") == "b1", "GET /ping/more goes to the default route", "b1", r)
r = do("GET", "/pingx")
check(r.header("X-Backend") == "b1", "GET /pingx goes to the default route", "b1", r)

# -- redirect --------------------------------------------------------------------------
r = do("GET", "/old/page")
check(r.status == 301, "GET /old/page status", 301, r)
check(r.header("Location") == "http://example.test/new", "GET /old/page Location",
      "http://example.test/new", r.header("Location"))
r = do("GET", "/old")
check(r.status == 200 and r.header("X-Backend") == "b1", "GET /old is not under /old/", "b1", r)

# -- regex -----------------------------------------------------------------------------
r = do("GET", "/items/42")
check(r.status == 200 and r.body == b"item\n", "GET /items/42 (regex)", b"item\n", r)
for p in ["/items/4x2", "/items/", "/items/42/x"]:
    r = do("GET", p)
    check(r.header("X-Backend") == "b1", "GET %s does not match the regex" % p, "b1", r)

# -- host + prefix + methods + strip_prefix + header rules -------------------------------
r = do("GET", "/api/headers?q=1", host="api.test",
       headers=[("X-Debug", "1"), ("X-Env", "prod"), ("X-Other", "o")])
doc = backend_view(r, "GET /api/headers on api.test")
check(doc["path"] == "/headers?q=1", "strip_prefix: path seen by the backend", "/headers?q=1", doc["path"])
check(hvals(doc, "X-Env") == ["test"], "request_headers set replaces X-Env", ["test"], hvals(doc, "X-Env"))
check(hvals(doc, "X-Debug") == [], "request_headers remove X-Debug", [], hvals(doc, "X-Debug"))
check(hvals(doc, "X-Other") == ["o"], "other request headers pass", ["o"], hvals(doc, "X-Other"))
check(hvals(doc, "Host") == ["api.test"], "Host unchanged on a stripped route", ["api.test"], hvals(doc, "Host"))
check(r.all("X-Served-By") == ["corral"], "response_headers set X-Served-By", ["corral"], r.all("X-Served-By"))
check(r.header("X-Backend") is None, "response_headers remove X-Backend", None, r.header("X-Backend"))

# set replaces what the backend sent
r = do("GET", "/api/setheaders?X-Served-By=backend&X-Kept=1", host="api.test")
check(r.all("X-Served-By") == ["corral"], "response_headers set replaces the backend's value",
      ["corral"], r.all("X-Served-By"))
check(r.header("X-Kept") == "1", "other response headers pass", "1", r.header("X-Kept"))

# host with a port and in upper case still matches
r = do("GET", "/api/headers", host="API.Test:%d" % PORT)
doc = backend_view(r, "GET /api/headers on API.Test:port")
check(doc["path"] == "/headers", "host match ignores case and port", "/headers", doc["path"])

# POST allowed, body passes
r = do("POST", "/api/echo", host="api.test", body=b"via api")
check(r.status == 200 and r.body == b"via api", "POST /api/echo on api.test", b"via api", r)
check(r.header("X-Served-By") == "corral", "POST on api route gets X-Served-By", "corral", r)

# DELETE is not in methods: falls through to the default route (no strip, no rules)
r = do("DELETE", "/api/headers", host="api.test", headers=[("X-Debug", "1")])
doc = backend_view(r, "DELETE /api/headers on api.test")
check(doc["method"] == "DELETE", "method seen by the backend", "DELETE", doc["method"])
check(doc["path"] == "/api/headers", "DELETE falls through: path not stripped", "/api/headers", doc["path"])
check(hvals(doc, "X-Debug") == ["1"], "DELETE falls through: X-Debug kept", ["1"], hvals(doc, "X-Debug"))
check(r.header("X-Backend") == "b1", "DELETE falls through: X-Backend kept", "b1", r.header("X-Backend"))
check(r.header("X-Served-By") is None, "DELETE falls through: no X-Served-By", None, r.header("X-Served-By"))

# another host: default route
r = do("GET", "/api/headers", host="other.test", headers=[("X-Debug", "1")])
doc = backend_view(r, "GET /api/headers on other.test")
check(doc["path"] == "/api/headers", "other host: path not stripped", "/api/headers", doc["path"])
check(hvals(doc, "X-Env") == [], "other host: no X-Env", [], hvals(doc, "X-Env"))
check(r.header("X-Backend") == "b1", "other host: X-Backend kept", "b1", r.header("X-Backend"))
check(r.header("X-Served-By") is None, "other host: no X-Served-By", None, r.header("X-Served-By"))

# a host that only ends like api.test is another host
r = do("GET", "/api/headers", host="xapi.test")
doc = backend_view(r, "GET /api/headers on xapi.test")
check(doc["path"] == "/api/headers", "xapi.test is not api.test", "/api/headers", doc["path"])

# /api (no slash) is not under the prefix /api/
r = do("GET", "/api", host="api.test")
check(r.header("X-Backend") == "b1" and r.header("X-Served-By") is None,
      "GET /api on api.test goes to the default route", "b1, no X-Served-By", r)
EOF

# the same through curl, as a user would
hdrs=$("${CURL[@]}" -s -o /dev/null -D - -H 'Host: api.test' "http://127.0.0.1:$PORT/api/" | tr -d '\r' | tr '[:upper:]' '[:lower:]')
assert_match '^x-served-by: corral$' "$hdrs" "curl GET /api/ on api.test: X-Served-By"
code=$(http_code "http://127.0.0.1:$PORT/old/x")
assert_eq 301 "$code" "curl GET /old/x status"

log "ok"
