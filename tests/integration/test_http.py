#!/usr/bin/env python3
"""test_http - the HTTP fallback of the sync protocol against `weft serve`:
POST /v1/push and POST /v1/pull on the WebSocket port, in MessagePack and
in the JSON debug form.

usage: test_http.py PATH/TO/weft

  a. push by HTTP (MessagePack, then JSON with a replica id above 2^63):
     [WELCOME, ACK], the ACK without its cursor, no CHANGES or SYNCED;
  b. pull by HTTP from another replica id: [WELCOME, CHANGES..., SYNCED]
     with every op exactly as pushed (the 64-bit replica id too);
  c. a WebSocket client (`weft get --server`) sees what HTTP pushed, and
     what the CLI writes is pulled by HTTP from the last cursor;
  d. the cursor survives the JSON form ({"$bin": base64}) both ways;
     floats and the "$map" escape round-trip;
  e. a re-push of the same ops is acknowledged and deduplicated;
  f. a backlog over the 4 MiB pull budget comes in pages: the cursor
     chain reaches SYNCED without loss or duplicate;
  g. long poll: returns at its time limit without changes, wakes on a
     write from another client, and survives its client going away;
  h. every error path: 400 (malformed bodies, both forms), 404, 405,
     413 (Content-Length and chunk size, before the body), 415, and hub
     ERRORs inside a 200 answer; meanwhile a WebSocket watcher and a
     long poll are unaffected and the server keeps serving;
  i. chunked bodies, Expect: 100-continue, application/x-msgpack, and
     Connection: close on every answer.
Durations are only ever checked against generous bounds.
"""

import base64
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weftlib  # noqa: E402

HELLO, WELCOME, PUSH, ACK, CHANGES, SYNCED, ERROR, REJECT, PING = 1, 2, 3, 4, 5, 6, 7, 8, 9
MAX_MESSAGE = 16 << 20


from mplite import mp, unmp, unmp_all  # noqa: E402


# --- the JSON debug form -------------------------------------------------------
def to_json(v):
    if isinstance(v, bytes):
        return {"$bin": base64.b64encode(v).decode()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        d = {k: to_json(x) for k, x in v.items()}
        return {"$map": d} if len(d) == 1 and list(d)[0] in ("$bin", "$map") else d
    return v


def from_json(v):
    if isinstance(v, list):
        return [from_json(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1 and "$bin" in v:
            return base64.b64decode(v["$bin"], validate=True)
        if len(v) == 1 and "$map" in v:
            return {k: from_json(x) for k, x in v["$map"].items()}
        return {k: from_json(x) for k, x in v.items()}
    return v


# --- protocol helpers ----------------------------------------------------------
def hlc_now():
    return int(time.time() * 1000) << 16


def hello(replica, cursor=None, version=1):
    return [HELLO, version, replica, 1, cursor]


def op(replica, seq, doc, value, coll="todos", inc=1):
    return [replica, inc, seq, hlc_now(), 1, coll, doc, [], value]


def unit_ops(u):
    """The ops of one unit: a single op, or a transaction [[op...]]."""
    return u[0] if len(u) == 1 and isinstance(u[0], list) else [u]


def cursor_pos(c):
    return struct.unpack(">QQ", c)[1]


class Http:
    def __init__(self, t, port):
        self.t = t
        self.port = port

    def request(self, method, path, body=None, ctype="application/msgpack", headers=None,
                timeout=60):
        """One request on a fresh connection; returns (status, headers, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if ctype is not None:
            hdrs["Content-Type"] = ctype
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def exchange(self, path, msgs, form="msgpack", what=None):
        """POSTs messages; checks the 200 and the content type; returns the
        server's messages."""
        if form == "json":
            body = json.dumps(to_json(msgs)).encode()
            ctype = "application/json"
        else:
            body = mp(msgs)
            ctype = "application/" + form
        status, hdrs, data = self.request("POST", path, body, ctype)
        self.t.check(status == 200 and hdrs.get("content-type") == ctype and
                     hdrs.get("connection") == "close",
                     (what or "POST %s" % path) + ": 200, %s, Connection: close" % ctype,
                     status, hdrs, data[:500])
        if form == "json":
            return from_json(json.loads(data))
        return unmp_all(data)

    def push(self, replica, ops, form="msgpack", what=None):
        msgs = self.exchange("/v1/push", [hello(replica), [PUSH, ops]], form, what)
        return msgs

    def pull(self, replica, cursor=None, form="msgpack", wait=None, what=None):
        path = "/v1/pull" + ("?wait=%d" % wait if wait is not None else "")
        return self.exchange(path, [hello(replica, cursor)], form, what)

    def pull_all(self, replica, cursor=None, form="msgpack"):
        """Follows the cursor chain until SYNCED. Returns (ops, cursor,
        number of answers, answers without SYNCED)."""
        ops, pages, partial = [], 0, 0
        while True:
            msgs = self.pull(replica, cursor, form, what="pull page %d" % (pages + 1))
            pages += 1
            self.t.check(msgs[0][0] == WELCOME, "a pull answer starts with WELCOME", msgs[:1])
            synced = False
            for m in msgs[1:]:
                if m[0] == CHANGES:
                    for u in m[1]:
                        ops.extend(unit_ops(u))
                    self.t.check(cursor is None or cursor_pos(m[2]) > cursor_pos(cursor),
                                 "the CHANGES cursor moves forward", m[2], cursor)
                    cursor = m[2]
                elif m[0] == SYNCED:
                    cursor, synced = m[1], True
                else:
                    self.t.fail("unexpected message in a pull answer: %r" % (m,))
            if synced:
                self.t.check(msgs[-1][0] == SYNCED, "SYNCED ends the answer",
                             [m[0] for m in msgs])
                return ops, cursor, pages, partial
            partial += 1
            self.t.check(msgs[-1][0] == CHANGES, "an answer cut by the budget ends with CHANGES",
                         [m[0] for m in msgs])
            if pages > 100:
                self.t.fail("the pull never reaches SYNCED")


class Raw:
    """A raw TCP client, for what http.client will not send."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_head(self, deadline):
        """Reads one response head; returns (status, headers) or (None, {})."""
        while b"\r\n\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, {}
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                return None, {}
            if not d:
                return None, {}
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return int(lines[0].split(" ")[1]), hdrs

    def read_body(self, n, deadline):
        while len(self.buf) < n and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            self.buf += d
        body, self.buf = self.buf[:n], self.buf[n:]
        return body

    def close(self):
        self.sock.close()


class LongPoll(threading.Thread):
    """A pull with ?wait= in a thread."""

    def __init__(self, h, replica, cursor, wait):
        super().__init__(daemon=True)
        self.h, self.replica, self.cursor, self.wait = h, replica, cursor, wait
        self.result = None
        self.error = None
        self.elapsed = None

    def run(self):
        t0 = time.monotonic()
        try:
            path = "/v1/pull?wait=%d" % self.wait
            status, hdrs, data = self.h.request("POST", path, mp([hello(self.replica, self.cursor)]))
            self.result = (status, unmp_all(data) if status == 200 else data)
        except Exception as e:  # reported by the main thread
            self.error = e
        self.elapsed = time.monotonic() - t0


def main():
    t = weftlib.Test(sys.argv)
    srv = t.server()
    url, port = srv.url, srv.port
    h = Http(t, port)
    t.info("server at %s" % url)

    A = 0x0A0A0A0A0A0A0A0A
    B = 2**64 - 5  # above 2^63: exact through the JSON form
    C = 0x0C0C0C0C0C0C0C0C

    # --- a. push ---------------------------------------------------------------
    t.info("a. push by HTTP")
    a_ops = [op(A, i, "a%d" % i, {"t": "a%d" % i}) for i in (1, 2, 3)]
    msgs = h.push(A, a_ops, what="push 3 ops (MessagePack)")
    t.check_eq([m[0] for m in msgs], [WELCOME, ACK], "the answer is [WELCOME, ACK]")
    t.check_eq(msgs[1][1:3], [1, 3], "the ACK covers (incarnation 1, seq 3)")
    t.check_eq(len(msgs[1]), 5, "a push's ACK goes without its cursor field")
    welcome = msgs[0]
    t.check(welcome[1] == 1 and welcome[3] == MAX_MESSAGE, "WELCOME: version 1, 16 MiB",
            welcome)

    b_val = {"t": "b1", "z": 2**64 - 1, "a": 2**63 + 5, "neg": -2**63, "m": 1}
    b_ops = [op(B, 1, "b1", b_val)]
    msgs = h.push(B, b_ops, form="json", what="push by JSON, replica 2^64-5")
    t.check_eq([m[0] for m in msgs], [WELCOME, ACK], "the JSON answer is [WELCOME, ACK]")
    t.check_eq(msgs[1][1:3], [1, 1], "the ACK covers (1, 1)")

    # --- b. pull by another replica -----------------------------------------
    t.info("b. pull by HTTP")
    msgs = h.pull(C, None, what="pull from the start (MessagePack)")
    t.check_eq([m[0] for m in msgs], [WELCOME, CHANGES, SYNCED],
               "the answer is [WELCOME, CHANGES, SYNCED]")
    got = [o for u in msgs[1][1] for o in unit_ops(u)]
    t.check_eq(got, a_ops + b_ops, "every op comes back exactly as pushed, in commit order")
    t.check_eq(list(got[3][8]), list(b_val), "the JSON object's members kept their order")
    cur0 = msgs[2][1]
    t.check(isinstance(cur0, bytes) and len(cur0) == 16 and cursor_pos(cur0) == 4,
            "SYNCED carries a 16-byte cursor at position 4", cur0)
    t.check_eq(msgs[1][2], cur0, "the last CHANGES cursor is SYNCED's")

    msgs = h.pull(C, None, form="json", what="the same pull in JSON")
    t.check_eq([o for u in msgs[1][1] for o in unit_ops(u)], a_ops + b_ops,
               "the JSON form carries the same ops (64-bit integers exact)")
    t.check_eq(msgs[2][1], cur0, "and the same cursor, as {\"$bin\": base64}")

    # --- c. WebSocket clients and HTTP see each other -------------------------
    t.info("c. HTTP <-> WebSocket clients")
    Cdb, Ddb = t.path("C.db"), t.path("D.db")
    out, _ = t.run_ok("weft get --server of an op pushed by HTTP", "get", "--db", Cdb,
                      "--server", url, "todos", "a2")
    t.check_eq(out, '{"t":"a2"}\n', "the WebSocket client has todos/a2")
    out, _ = t.run_ok("weft get of the JSON-pushed op", "get", "--db", Cdb, "todos", "b1")
    t.check_eq(json.loads(out), b_val, "the WebSocket client has todos/b1 with exact integers")
    t.run_ok("weft put --server (a WebSocket client writes)", "put", "--db", Ddb, "--server",
             url, "todos", "fromcli", '{"by":"cli"}')
    ops, cur1, _, _ = h.pull_all(C, cur0)
    t.check(len(ops) == 1 and ops[0][5:7] == ["todos", "fromcli"],
            "HTTP pull from the last cursor gets exactly the CLI's write", ops)
    t.check("cli" in json.dumps(ops[0][8]), "with its value", ops)

    # --- d. JSON round trips -----------------------------------------------------
    t.info("d. JSON form round trips")
    msgs = h.pull(C, None, form="json", what="JSON pull for the cursor")
    jcur = msgs[-1][1]
    t.check_eq(jcur, cur1, "the JSON cursor decodes to the MessagePack one")
    status, hdrs, data = h.request(
        "POST", "/v1/pull",
        json.dumps([[1, 1, C, 1, {"$bin": base64.b64encode(jcur).decode()}]]).encode(),
        "application/json")
    t.check(status == 200, "pull with the cursor given back as {\"$bin\": ...}", status, data)
    back = json.loads(data)
    t.check_eq([m[0] for m in back], [WELCOME, SYNCED], "nothing new: [WELCOME, SYNCED]")
    t.check_eq(back[1][1], {"$bin": base64.b64encode(cur1).decode()},
               "the same cursor comes back, in standard padded base64")
    esc_ops = [op(A, 4, "floats", {"f": 2.0, "g": -1.5}), op(A, 5, "escaped", {"$bin": "x"})]
    body = json.dumps([hello(A), [PUSH, to_json(esc_ops)]]).encode()
    t.check(b'{"$map": {"$bin": "x"}}' in body, "the test escapes a one-key \"$bin\" map")
    status, _, data = h.request("POST", "/v1/push", body, "application/json")
    t.check(status == 200 and json.loads(data)[-1][:3] == [ACK, 1, 5],
            "push of floats and of an escaped map", status, data)
    status, _, data = h.request("POST", "/v1/pull", json.dumps([hello(C, None)]).encode(),
                                "application/json")
    text = data.decode()
    t.check('"f":2.0' in text and '"g":-1.5' in text and '{"$map":{"$bin":"x"}}' in text,
            "the JSON answer keeps 2.0 a float and escapes the map", text[-400:])
    ops, _, _, _ = h.pull_all(C, cur1)
    t.check_eq([o[8] for o in ops], [{"f": 2.0, "g": -1.5}, {"$bin": "x"}],
               "in MessagePack: a float64 2.0 and a map whose key is \"$bin\"")
    t.check(isinstance(ops[0][8]["f"], float), "2.0 is a float", ops[0])
    out, _ = t.run_ok("weft get of the escaped map", "get", "--db", Cdb, "--server", url,
                      "todos", "escaped")
    t.check_eq(out, '{"$bin":"x"}\n', "the document has a key \"$bin\"")

    # --- e. dedupe ---------------------------------------------------------------
    t.info("e. a re-push is deduplicated")
    _, before, _, _ = h.pull_all(C, None)
    msgs = h.push(A, a_ops, what="re-push of A's first 3 ops")
    t.check_eq([m[0] for m in msgs], [WELCOME, ACK], "the re-push is acknowledged")
    t.check_eq(msgs[1][1:3], [1, 3], "ACK (1, 3)")
    msgs = h.pull(C, before)
    t.check_eq([m[0] for m in msgs], [WELCOME, SYNCED], "nothing new after the re-push")
    t.check_eq(msgs[1][1], before, "the head did not move")
    ops, _, _, _ = h.pull_all(C, None)
    ids = [tuple(o[:3]) for o in ops]
    t.check_eq(sorted(ids).count((A, 1, 1)), 1, "A's op 1 is in the log once")
    t.check_eq(len(ids), len(set(ids)), "no op is in the log twice")

    # --- f. pages ------------------------------------------------------------------
    t.info("f. a backlog over the pull budget comes in pages")
    P = 0x0F0F0F0F0F0F0F0F
    big = "x" * 16384
    n_big = 400  # 6.5 MB: more than the 4 MiB budget of one answer
    for start in range(1, n_big + 1, 100):
        ops = [op(P, s, "p%d" % s, {"v": big, "s": s}, coll="pages")
               for s in range(start, start + 100)]
        msgs = h.push(P, ops, what="push ops %d..%d of 16 KiB" % (start, start + 99))
        t.check_eq(msgs[-1][:3], [ACK, 1, start + 99], "acknowledged")
    before_pages = before
    ops, cur, pages, partial = h.pull_all(0x1111, None)
    got = [(o[0], o[2]) for o in ops if o[0] == P]
    t.check_eq(sorted(got), [(P, s) for s in range(1, n_big + 1)],
               "the pages hold every op of the backlog")
    t.check_eq(len(ops), len(set(tuple(o[:3]) for o in ops)), "and no op twice")
    t.check(pages >= 2 and partial >= 1, "it took %d answers, %d cut by the budget"
            % (pages, partial), pages, partial)
    t.check(cursor_pos(cur) > cursor_pos(before_pages), "the chain ends at the head")
    status, _, data = h.request("POST", "/v1/pull", mp([hello(0x1111, None)]))
    t.check(status == 200 and len(data) < 6 * 1024 * 1024,
            "one answer stays near the budget (%d bytes)" % len(data))
    out, _ = t.run_ok("a WebSocket client gets the backlog", "get", "--db", Cdb, "--server",
                      url, "pages", "p400")
    t.check_eq(json.loads(out)["s"], 400, "pages/p400 arrived over WebSocket")

    # --- g. long poll --------------------------------------------------------------
    t.info("g. long poll")
    head = cur
    t0 = time.monotonic()
    msgs = h.pull(C, head, wait=1500, what="long poll at the head, nothing happens")
    t.check_eq([m[0] for m in msgs], [WELCOME, SYNCED],
               "it returns [WELCOME, SYNCED] once its wait is over")
    t.check(time.monotonic() - t0 < 20, "and returns (%.1f s)" % (time.monotonic() - t0))
    t0 = time.monotonic()
    msgs = h.pull(C, None, wait=30000, what="long poll from the start")
    t.check(msgs[-1][0] == CHANGES and time.monotonic() - t0 < 20,
            "a long poll with changes to catch up answers at once (%.1f s)"
            % (time.monotonic() - t0), [m[0] for m in msgs])

    lp = LongPoll(h, C, head, 600000)  # capped to 30 s by the server
    lp.start()
    time.sleep(0.5)
    t.run_ok("a CLI write while the long poll waits", "put", "--db", Ddb, "--server", url,
             "todos", "wake", '{"wake":1}')
    lp.join(40)
    t.check(not lp.is_alive() and lp.error is None and lp.result is not None,
            "the long poll returned", lp.error)
    status, msgs = lp.result
    t.check(status == 200, "with 200", status, msgs)
    woke = [o for m in msgs if m[0] == CHANGES for u in m[1] for o in unit_ops(u)]
    t.check(any(o[6] == "wake" for o in woke), "the answer carries the write",
            [m[0] for m in msgs])
    t.check(lp.elapsed < 25, "well before its 30 s limit (%.1f s)" % lp.elapsed)
    last = [m for m in msgs if m[0] in (CHANGES, SYNCED)][-1]
    head = last[2] if last[0] == CHANGES else last[1]
    msgs = h.pull(C, head)
    t.check_eq([m[0] for m in msgs], [WELCOME, SYNCED],
               "the last cursor of the answer is the head")

    # a client that leaves while its long poll waits
    r = Raw(port)
    body = mp([hello(C, head)])
    r.send(b"POST /v1/pull?wait=30000 HTTP/1.1\r\nHost: x\r\n"
           b"Content-Type: application/msgpack\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(0.5)
    r.close()
    time.sleep(0.2)
    t.run_ok("a write after that client left", "put", "--db", Ddb, "--server", url, "todos",
             "afterleave", '{"x":1}')
    t.check(srv.alive(), "the server is fine after a long-polling client left",
            srv.log_tail())
    ops, head, _, _ = h.pull_all(C, head)
    t.check_eq([o[6] for o in ops], ["afterleave"], "and the write is there")

    # --- h. errors ---------------------------------------------------------------------
    t.info("h. error paths")
    t.run_ok("seed http/seed", "put", "--db", Ddb, "--server", url, "http", "seed", '{"n":0}')
    Wdb = t.path("W.db")
    w = t.background("watch", "--db", Wdb, "--server", url, "http")
    t.check(w.wait_line(lambda ln: json.loads(ln)["id"] == "seed", timeout=15) is not None,
            "a WebSocket watcher is connected", w.stderr(), w.lines)
    _, head, _, _ = h.pull_all(C, head)
    lp = LongPoll(h, C, head, 30000)
    lp.start()

    def refused(what, status_want, method, path, body=None, ctype="application/msgpack",
                headers=None):
        status, hdrs, data = h.request(method, path, body, ctype, headers)
        t.check(status == status_want and hdrs.get("content-type", "").startswith("text/plain")
                and len(data) > 1 and hdrs.get("connection") == "close",
                "%s -> %d (text/plain reason: %r)" % (what, status_want, data[:120]),
                status, hdrs, data[:300])
        return hdrs, data

    good = mp([hello(C)])
    refused("msgpack: empty body", 400, "POST", "/v1/push", b"")
    refused("msgpack: a reserved byte", 400, "POST", "/v1/push", b"\xc1")
    refused("msgpack: not an array", 400, "POST", "/v1/pull", mp(5))
    refused("msgpack: an empty array", 400, "POST", "/v1/push", mp([]))
    refused("msgpack: a message that is not an array", 400, "POST", "/v1/push", mp([1]))
    refused("msgpack: truncated", 400, "POST", "/v1/push", good[:-2])
    refused("msgpack: bytes after the array", 400, "POST", "/v1/pull", good + b"\x00")
    refused("msgpack: bad UTF-8 in a string", 400, "POST", "/v1/push",
            b"\x91\x92\x01\xa2\xff\xfe")
    refused("pull: [HELLO, PING]", 400, "POST", "/v1/pull", mp([hello(C), [PING, 1]]))
    refused("pull: [PUSH]", 400, "POST", "/v1/pull", mp([[PUSH, []]]))
    refused("pull: ?wait=soon", 400, "POST", "/v1/pull?wait=soon", good)
    refused("pull: ?wait=", 400, "POST", "/v1/pull?wait=", good)
    js = "application/json"
    refused("JSON: not JSON", 400, "POST", "/v1/push", b"[[1,1,", js)
    refused("JSON: not an array", 400, "POST", "/v1/push", b'{"a":1}', js)
    refused("JSON: a duplicate key", 400, "POST", "/v1/push",
            b'[[1,1,5,1,null],[3,[[5,1,1,1,1,"t","x",[],{"a":1,"a":2}]]]]', js)
    refused("JSON: an integer above 2^64-1", 400, "POST", "/v1/pull",
            b"[[1,1,18446744073709551616,1,null]]", js)
    refused("JSON: an integer below -2^63", 400, "POST", "/v1/pull",
            b"[[1,1,-9223372036854775809,1,null]]", js)
    refused("JSON: $bin with bad base64", 400, "POST", "/v1/pull",
            b'[[1,1,5,1,{"$bin":"abc"}]]', js)
    refused("JSON: $bin with a number", 400, "POST", "/v1/pull", b'[[1,1,5,1,{"$bin":5}]]', js)
    refused("JSON: $map with an array", 400, "POST", "/v1/pull", b'[[1,1,5,1,{"$map":[]}]]', js)
    refused("JSON: nested 100 deep", 400, "POST", "/v1/push", b"[" * 100 + b"]" * 100, js)
    refused("JSON: not UTF-8", 400, "POST", "/v1/push", b'[["\xff"]]', js)
    hdrs, _ = refused("GET /v1/push", 405, "GET", "/v1/push", None, None)
    t.check_eq(hdrs.get("allow"), "POST", "405 says Allow: POST")
    refused("PUT /v1/pull", 405, "PUT", "/v1/pull", good)
    refused("POST /v1/nothing", 404, "POST", "/v1/nothing", good)
    refused("POST /v1/push/extra", 404, "POST", "/v1/push/extra", good)
    refused("GET /", 404, "GET", "/", None, None)
    refused("text/plain", 415, "POST", "/v1/push", good, "text/plain")
    refused("no Content-Type", 415, "POST", "/v1/push", good, None)
    refused("application/jsonx", 415, "POST", "/v1/push", good, "application/jsonx")

    # 413 before the body: only the head is sent
    for what, extra in (("Content-Length 16 MiB + 1",
                        b"Content-Length: %d\r\n" % (MAX_MESSAGE + 1)),
                       ("a chunk of 16 MiB + 1", b"Transfer-Encoding: chunked\r\n")):
        r = Raw(port)
        req = (b"POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
               + extra + b"\r\n")
        if b"chunked" in extra:
            req += b"%x\r\n" % (MAX_MESSAGE + 1)
        r.send(req)
        status, hdrs = r.read_head(time.monotonic() + 10)
        t.check(status == 413, "%s -> 413 without the body being sent" % what, status, hdrs)
        r.close()

    # hub ERRORs are part of the exchange: the last message of a 200 answer
    msgs = h.exchange("/v1/push", [[PUSH, [a_ops[0]]]], what="PUSH before HELLO")
    t.check_eq(msgs, [[ERROR, 1, "PUSH before HELLO"]], "-> [ERROR 1]")
    msgs = h.exchange("/v1/pull", [hello(C, None, version=99)], what="HELLO version 99")
    t.check(msgs[-1][:2] == [ERROR, 2], "-> ERROR 2 (version)", msgs)
    msgs = h.exchange("/v1/push", [hello(0)], what="HELLO with replica 0")
    t.check(msgs[-1][:2] == [ERROR, 1], "-> ERROR 1", msgs)
    bad_then_good = [hello(A), [PUSH, [[1, 2, 3]]], [PUSH, [op(A, 99, "never", {"x": 1})]]]
    msgs = h.exchange("/v1/push", bad_then_good, what="a malformed unit, then a good PUSH",
                      form="json")
    t.check_eq([m[0] for m in msgs], [WELCOME, ERROR], "-> [WELCOME, ERROR] and no ACK")
    t.check_eq(msgs[-1][1], 1, "ERROR 1 (protocol)")
    t.check(lp.is_alive(), "the long poll still waits through all of the above",
            lp.result)

    t.check(srv.alive(), "the server is still running", srv.log_tail())
    t.check(w.alive(), "the watcher is still running", w.stderr())
    t.run_ok("a CLI write after the errors", "put", "--db", Ddb, "--server", url, "http",
             "after", '{"after":"errors"}')
    line = w.wait_line(lambda ln: json.loads(ln)["id"] == "after", timeout=10)
    t.check(line is not None, "the watcher prints it", w.lines, w.stderr())
    lp.join(40)
    t.check(lp.result is not None and lp.result[0] == 200, "the long poll answers 200",
            lp.error, lp.result)
    woke = [o for m in lp.result[1] if m[0] == CHANGES for u in m[1] for o in unit_ops(u)]
    t.check([o[6] for o in woke] == ["after"], "with the write, and no trace of the errors",
            woke)
    ops, head, _, _ = h.pull_all(C, head)
    t.check_eq([o[6] for o in ops], ["after"], "the PUSH after an ERROR was not applied")
    w.kill()

    # --- i. transport details --------------------------------------------------------
    t.info("i. chunked, 100-continue, x-msgpack")
    body = mp([hello(A), [PUSH, [op(A, 6, "chunked", {"c": 1})]]])
    r = Raw(port)
    r.send(b"POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n")
    half = len(body) // 2
    for part in (body[:half], body[half:]):
        r.send(b"%x\r\n" % len(part) + part + b"\r\n")
        time.sleep(0.05)
    r.send(b"0\r\n\r\n")
    status, hdrs = r.read_head(time.monotonic() + 10)
    data = r.read_body(int(hdrs.get("content-length", "0")), time.monotonic() + 10)
    t.check(status == 200 and unmp_all(data)[-1][:3] == [ACK, 1, 6],
            "a chunked push is acknowledged", status, hdrs, data[:200])
    r.close()

    body = mp([hello(A), [PUSH, [op(A, 7, "continued", {"c": 2})]]])
    r = Raw(port)
    r.send(b"POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
           b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    status, _ = r.read_head(time.monotonic() + 10)
    t.check_eq(status, 100, "Expect: 100-continue gets 100 Continue")
    r.send(body)
    status, hdrs = r.read_head(time.monotonic() + 10)
    data = r.read_body(int(hdrs.get("content-length", "0")), time.monotonic() + 10)
    t.check(status == 200 and unmp_all(data)[-1][:3] == [ACK, 1, 7],
            "then the push is acknowledged", status, data[:200])
    r.close()

    msgs = h.exchange("/v1/pull", [hello(C, head)], form="x-msgpack",
                      what="application/x-msgpack")
    t.check_eq([m[0] for m in msgs], [WELCOME, CHANGES, SYNCED],
               "application/x-msgpack works and is echoed")
    status, _, data = h.request("GET", "/healthz", None, None)
    t.check(status == 200 and data == b"ok\n", "GET /healthz still answers", status, data)
    out, _ = t.run_ok("weft sync still works", "sync", "--db", Cdb, "--server", url)
    out, _ = t.run_ok("weft get todos/continued", "get", "--db", Cdb, "todos", "continued")
    t.check_eq(out, '{"c":2}\n', "the WebSocket client has what HTTP pushed last")

    # --- j. a clean stop answers the waiting long polls -----------------------------
    t.info("j. SIGTERM while a long poll waits")
    _, head, _, _ = h.pull_all(C, head)
    lp = LongPoll(h, C, head, 30000)
    lp.start()
    time.sleep(0.5)
    t.check(lp.is_alive(), "the long poll waits")
    rc = srv.stop()
    t.check_eq(rc, 0, "weft serve exits 0 on SIGTERM with a long poll open")
    lp.join(20)
    t.check(lp.result is not None and lp.result[0] == 200 and
            lp.result[1][-1][:2] == [ERROR, 5], "the long poll is answered with ERROR 5",
            lp.error, lp.result)
    t.done()


if __name__ == "__main__":
    main()
