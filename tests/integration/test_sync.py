#!/usr/bin/env python3
"""test_sync - end-to-end proof that weft syncs, merges, converges, survives a
server crash and works offline, driving the real `weft` binary.

usage: test_sync.py PATH/TO/weft

Every replica is its own file, every client step its own process, the server
a real `weft serve` on a free port of 127.0.0.1. Checks, in order:
  a. a write on A, pushed to the server, is read by B exactly (canonical JSON)
  b. writes to different fields of one document merge
  c. concurrent offline writes to the same field converge: A, B and the
     server dump identically, and the value is one of the two written
  d. a delete propagates
  e. `weft watch` prints a live change as one JSON line
  f. kill -9 of the server right after acknowledgements loses nothing
  g. a write while the server is down exits 3, stays local, syncs later
  h. many documents written offline sync in one go and converge
  i. the command-line contract (exit statuses, messages, replica locking)
"""

import hashlib
import json
import os
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weftlib  # noqa: E402


def canon(obj):
    """Canonical JSON as weft prints it: keys sorted, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def main():
    t = weftlib.Test(sys.argv)
    srv = t.server()
    url = srv.url
    t.info("server listening at %s, data in %s" % (url, srv.data_dir))
    A, B, C, D = (t.path(n + ".db") for n in "ABCD")

    # What every replica must end up with: (collection, id) -> document.
    expected = {}

    def put(db, coll, doc_id, obj, server=True, what=None, extra=()):
        args = ["put", "--db", db]
        if server:
            args += ["--server", url]
        args += list(extra) + [coll, doc_id, canon(obj)]
        t.run_ok(what or "put %s/%s on %s" % (coll, doc_id, os.path.basename(db)), *args)

    def get(db, coll, doc_id, server=True):
        args = ["get", "--db", db] + (["--server", url] if server else []) + [coll, doc_id]
        return t.weft(*args)

    def dump_hash(what, *args):
        out, err = t.run_ok("dump --hash of %s" % what, "dump", "--hash", *args)
        h = out.strip()
        t.check(re.fullmatch(r"[0-9a-f]{64}", h) is not None and out == h + "\n",
                "dump --hash of %s prints one line of 64 hex digits" % what, repr(out))
        return h

    def dump(what, *args):
        out, err = t.run_ok("dump of %s" % what, "dump", *args)
        return out

    # --- a. A writes, B reads exactly ------------------------------------
    t.info("a. write on A, read on B")
    put(A, "todos", "1", {"title": "buy milk", "n": 1})
    expected[("todos", "1")] = {"title": "buy milk", "n": 1}
    rc, out, err = get(B, "todos", "1")
    t.check_eq((rc, out), (0, '{"n":1,"title":"buy milk"}\n'),
               "B get --server sees exactly A's write, canonical", "stderr: " + err)

    # --- b. field merge -------------------------------------------------
    t.info("b. B adds a field; A sees all three")
    put(B, "todos", "1", {"done": True})
    expected[("todos", "1")]["done"] = True
    rc, out, err = get(A, "todos", "1")
    t.check_eq((rc, out), (0, '{"done":true,"n":1,"title":"buy milk"}\n'),
               "A get --server sees the merged document", "stderr: " + err)

    # --- c. concurrent offline writes to one field --------------------------
    t.info("c. A and B write the same field offline, then sync")
    put(A, "todos", "2", {"v": "a"}, server=False, what="A writes todos/2 v=a offline")
    put(B, "todos", "2", {"v": "b"}, server=False, what="B writes todos/2 v=b offline")
    rc, out, _ = get(A, "todos", "2", server=False)
    t.check_eq(out, '{"v":"a"}\n', "A reads its own offline write")
    for rnd in (1, 2):
        t.run_ok("A sync, round %d" % rnd, "sync", "--db", A, "--server", url)
        t.run_ok("B sync, round %d" % rnd, "sync", "--db", B, "--server", url)
    ha = dump_hash("A", "--db", A)
    hb = dump_hash("B", "--db", B)
    hs = dump_hash("the server", "--data", srv.data_dir)
    t.check(ha == hb == hs, "A, B and the server dump identically",
            "A: " + ha, "B: " + hb, "server: " + hs,
            "A dump:\n" + dump("A", "--db", A), "server dump:\n" +
            dump("server", "--data", srv.data_dir))
    plain = dump("A", "--db", A)
    t.check_eq(hashlib.sha256(plain.encode()).hexdigest(), ha,
               "dump --hash is the SHA-256 of exactly the dump's output")
    t.check(len(plain) > 0 and plain.endswith("\n") and len(plain.splitlines()) == 2,
            "the dump has one line per visible document (2)", repr(plain))
    rc_a, out_a, _ = get(A, "todos", "2", server=False)
    rc_b, out_b, _ = get(B, "todos", "2", server=False)
    t.check(rc_a == 0 and out_a == out_b and out_a in ('{"v":"a"}\n', '{"v":"b"}\n'),
            "both replicas hold the same winner, one of the two values written",
            "A: %r" % out_a, "B: %r" % out_b)
    expected[("todos", "2")] = json.loads(out_a)

    # --- d. delete ---------------------------------------------------------
    t.info("d. A deletes todos/1; B no longer finds it")
    t.run_ok("A del todos/1 --server", "del", "--db", A, "--server", url, "todos", "1")
    del expected[("todos", "1")]
    rc, out, err = get(B, "todos", "1")
    t.check_eq((rc, out), (1, ""), "B get --server of the deleted document exits 1",
               "stderr: " + err)

    # --- e. watch ---------------------------------------------------------
    t.info("e. weft watch prints a live change")
    w = t.background("watch", "--db", C, "--server", url, "todos")
    # The initial sync delivers todos/2 to the empty replica C: once that
    # line is out, the watcher is connected and the next change is live.
    first = w.wait_line(lambda ln: json.loads(ln)["id"] == "2", timeout=15)
    t.check(first is not None, "the watcher's initial sync delivers todos/2",
            "lines: %r" % w.lines, "stderr: " + w.stderr(), "alive: %s" % w.alive())
    put(A, "todos", "3", {"title": "live", "tags": ["x"]})
    expected[("todos", "3")] = {"title": "live", "tags": ["x"]}

    def is_live_insert(ln):
        o = json.loads(ln)
        return o["id"] == "3"

    line = w.wait_line(is_live_insert, timeout=10)
    t.check(line is not None, "the watcher prints a line for todos/3 within 10 s",
            "lines: %r" % w.lines, "stderr: " + w.stderr())
    o = json.loads(line)
    t.check_eq(o, {"collection": "todos", "doc": {"tags": ["x"], "title": "live"},
                   "from_sync": True, "id": "3", "op": "insert"},
               "the change line has collection, doc, from_sync, id and op")
    t.check_eq(line, canon(o), "the change line is canonical JSON (keys sorted)")

    # An update and a delete, on an id that needs escaping in JSON.
    weird = 'we"ird\\ \n\t\x01\x7f/\u00e9'
    put(A, "todos", weird, {"k": 1}, what="put a document whose id needs escaping")
    line = w.wait_line(lambda ln: json.loads(ln)["id"] == weird, timeout=10)
    t.check(line is not None, "the watcher prints the escaped id's insert",
            "lines: %r" % w.lines, "stderr: " + w.stderr())
    t.check_eq(line, canon({"collection": "todos", "doc": {"k": 1}, "from_sync": True,
                            "id": weird, "op": "insert"}),
               "collection and id are escaped as canonical JSON strings")
    n_lines = len(w.lines)
    put(A, "todos", weird, {"k": 2, "more": True}, what="update it")
    line = w.wait_line(lambda ln: json.loads(ln)["id"] == weird, timeout=10, start=n_lines)
    t.check_eq(json.loads(line) if line else None,
               {"collection": "todos", "doc": {"k": 2, "more": True}, "from_sync": True,
                "id": weird, "op": "update"}, "the watcher prints the update", w.lines)
    n_lines = len(w.lines)
    t.run_ok("delete it", "del", "--db", A, "--server", url, "todos", weird)
    line = w.wait_line(lambda ln: json.loads(ln)["id"] == weird, timeout=10, start=n_lines)
    t.check_eq(line, canon({"collection": "todos", "doc": None, "from_sync": True,
                            "id": weird, "op": "delete"}),
               "the watcher prints the delete with doc null", w.lines)
    put(A, "other", "1", {"x": 1}, what="put to another collection")
    # A later write to todos: once it is printed, the one to "other" has
    # been through the server too, so the filter check below means something.
    put(A, "todos", "barrier", {"b": 1}, what="then a write to todos")
    t.check(w.wait_line(lambda ln: json.loads(ln)["id"] == "barrier", timeout=10,
                        start=n_lines) is not None, "the watcher sees it", w.lines)
    expected[("other", "1")] = {"x": 1}
    expected[("todos", "barrier")] = {"b": 1}
    t.check(all(json.loads(ln)["collection"] == "todos" for ln in w.lines),
            "the watcher only prints changes of its collection", repr(w.lines))
    t.check(w.alive(), "the watcher keeps running", "stderr: " + w.stderr())
    w.kill()

    # --- f. kill -9 right after acknowledgements ----------------------------
    t.info("f. kill -9 the server right after acknowledged writes")
    for i in range(4, 8):
        obj = {"acked": i}
        put(A, "todos", str(i), obj, what="put todos/%d --server is acknowledged" % i)
        expected[("todos", str(i))] = obj
    srv.kill9()
    t.info("server killed with SIGKILL; restarting on port %d" % srv.port)
    t.restart(srv)
    t.check(srv.url == url, "the server is back on the same port", srv.url)
    t.run_ok("a fresh client D syncs", "sync", "--db", D, "--server", url)
    for (coll, doc_id), obj in sorted(expected.items()):
        rc, out, err = get(D, coll, doc_id, server=False)
        t.check_eq((rc, out), (0, canon(obj) + "\n"),
                   "D sees acknowledged %s/%s after the crash" % (coll, doc_id),
                   "stderr: " + err)
    rc, out, err = get(D, "todos", "1", server=False)
    t.check_eq(rc, 1, "D does not see the deleted todos/1", out, err)
    t.run_ok("A syncs with the restarted server", "sync", "--db", A, "--server", url)
    t.check_eq(dump_hash("the server", "--data", srv.data_dir), dump_hash("A", "--db", A),
               "the restarted server dumps identically to A")

    t.info("f. kill -9 the server in the middle of a stream of acknowledged puts")
    results = []

    def writer():
        for i in range(200):
            doc_id = "stream%03d" % i
            rc, out, err = t.weft("put", "--db", A, "--server", url, "--wait", "2",
                                  "todos", doc_id, canon({"s": i}))
            results.append((doc_id, rc, err))
            if rc != 0:
                return

    th = threading.Thread(target=writer)
    th.start()
    # Let a few through (however slow the build is), then kill at a moment
    # that is probably in the middle of one.
    deadline = time.monotonic() + 30
    while len(results) < 3 and th.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05 + (os.getpid() % 10) / 100.0)
    srv.kill9()
    th.join(timeout=60)
    acked = [d for d, rc, _ in results if rc == 0]
    t.check(len(results) > len(acked) and results[-1][1] == 3,
            "the put in flight when the server died exits 3 (%d were acknowledged before)"
            % len(acked), results[-3:])
    t.check(len(acked) >= 1, "some puts were acknowledged before the kill", results[:3])
    t.restart(srv)
    D2 = t.path("D2.db")
    t.run_ok("a fresh client D2 syncs after the restart", "sync", "--db", D2, "--server", url)
    missing = []
    for doc_id in acked:
        rc, out, err = get(D2, "todos", doc_id, server=False)
        if rc != 0:
            missing.append(doc_id)
    t.check(not missing, "every one of the %d acknowledged puts survived kill -9"
            % len(acked), "missing: %r" % missing)
    for i, (doc_id, _, _) in enumerate(results):
        expected[("todos", doc_id)] = {"s": i}
    t.run_ok("A syncs; the unacknowledged put goes through now", "sync", "--db", A,
             "--server", url)
    last = results[-1][0]
    rc, out, err = get(D2, "todos", last)
    t.check_eq((rc, out), (0, canon(expected[("todos", last)]) + "\n"),
               "D2 sees the put that was in flight during the crash", err)

    # --- g. write while the server is down --------------------------------
    t.info("g. write while the server is down")
    srv.kill9()
    t0 = time.monotonic()
    rc, out, err = t.weft("put", "--db", A, "--server", url, "--wait", "1",
                          "todos", "9", '{"offline":true}')
    took = time.monotonic() - t0
    t.check_eq(rc, 3, "put --server --wait 1 with the server down exits 3", out, err)
    t.check(took < 8, "it gives up within the --wait bound (took %.1f s)" % took)
    t.check(err.startswith("weft: put: "), "it says why on stderr", repr(err))
    expected[("todos", "9")] = {"offline": True}
    rc, out, err = get(A, "todos", "9", server=False)
    t.check_eq((rc, out), (0, '{"offline":true}\n'), "the write is kept locally", err)
    t.restart(srv)
    t.run_ok("A sync after the server is back", "sync", "--db", A, "--server", url)
    rc, out, err = get(B, "todos", "9")
    t.check_eq((rc, out), (0, '{"offline":true}\n'), "B sees the write made while down", err)

    # --- h. many documents -------------------------------------------------
    n = int(os.environ.get("WEFT_TEST_DOCS", "200"))
    t.info("h. %d documents written offline on A" % n)
    t0 = time.monotonic()
    for i in range(n):
        rc, out, err = t.weft("put", "--db", A, "many", "d%04d" % i,
                              canon({"i": i, "s": "doc %d" % i}))
        if rc != 0:
            t.check(False, "offline put many/d%04d" % i, rc, out, err)
        expected[("many", "d%04d" % i)] = {"i": i, "s": "doc %d" % i}
    t.check(True, "%d offline puts (%.1f s)" % (n, time.monotonic() - t0))
    t.run_ok("A syncs %d documents in one go" % n, "sync", "--db", A, "--server", url,
             "--wait", "30")
    t.run_ok("B syncs", "sync", "--db", B, "--server", url, "--wait", "30")
    ha = dump_hash("A", "--db", A)
    hb = dump_hash("B", "--db", B)
    hs = dump_hash("the server", "--data", srv.data_dir)
    t.check(ha == hb == hs, "A, B and the server dump identically after %d docs" % n,
            "A: " + ha, "B: " + hb, "server: " + hs)
    plain = dump("B", "--db", B)
    t.check_eq(len(plain.splitlines()), len(expected),
               "B's dump has one line per expected document")
    for key in (("many", "d0000"), ("many", "d%04d" % (n // 2)), ("many", "d%04d" % (n - 1))):
        rc, out, err = get(B, key[0], key[1], server=False)
        t.check_eq(out, canon(expected[key]) + "\n", "B reads %s/%s" % key, err)

    # --- i. the command-line contract ---------------------------------------
    t.info("i. command-line contract")
    rc, out, err = get(A, "todos", "missing", server=False)
    t.check_eq((rc, out), (1, ""), "get of a missing document exits 1, prints nothing")
    for bad in ('{"a":', "[1,2]", '"str"', '{"a":1,"a":2}', "not json"):
        rc, out, err = t.weft("put", "--db", A, "todos", "x", bad)
        t.check(rc == 2 and err.startswith("weft: put: ") and out == "",
                "put of bad JSON %r exits 2 with a message on stderr" % bad,
                rc, repr(out), repr(err))
    rc, out, err = get(A, "todos", "x", server=False)
    t.check_eq(rc, 1, "a refused put leaves nothing behind", out, err)
    for w_arg in ("abc", "-1", "1e3", "", "nan"):
        rc, out, err = t.weft("put", "--db", A, "--server", url, "--wait", w_arg,
                              "todos", "x", "{}")
        t.check(rc == 2 and "weft: put: " in err, "--wait %r exits 2" % w_arg,
                rc, repr(err))
    for bad_url in ("http://127.0.0.1:%d" % srv.port, "127.0.0.1:%d" % srv.port, "ws://h:0",
                    "ws://:1"):
        rc, out, err = t.weft("put", "--db", A, "--server", bad_url, "todos", "badurl", "{}")
        t.check(rc == 2 and "weft: put: " in err, "--server %r exits 2" % bad_url, rc, err)
    rc, out, err = get(A, "todos", "badurl", server=False)
    t.check_eq(rc, 1, "a put with a malformed --server writes nothing", out, err)
    rc, out, err = t.weft("sync", "--db", A, "--server", url, "--wait=0.5")
    t.check_eq(rc, 0, "--wait=0.5 (with '=') is accepted", err)
    rc, out, err = t.weft("put", "--help")
    t.check(rc == 0 and out.startswith("usage: weft put") and err == "",
            "put --help exits 0 with usage on stdout", rc, repr(out), repr(err))
    for args in (["--help"], ["help"], ["help", "watch"], ["dump", "--help"],
                 ["serve", "--help"], ["get", "--db", A, "--help"]):
        rc, out, err = t.weft(*args)
        t.check(rc == 0 and out.startswith("usage: ") and err == "",
                "weft %s exits 0 with usage on stdout" % " ".join(args), rc, repr(err))
    rc, out, err = t.weft("--version")
    t.check(rc == 0 and re.fullmatch(r"\d+\.\d+\.\d+\S*\n", out) is not None,
            "--version prints the version", rc, repr(out))
    for args in (["put", "--bogus", "--db", A, "c", "i", "{}"], ["frobnicate"], [],
                 ["get", "--db", A, "only-collection"], ["get", "--db", A, "c", "i", "extra"],
                 ["put", "c", "i", "{}"], ["sync", "--db", A],
                 ["dump", "--db", A, "--data", srv.data_dir], ["serve", "--listen", "nope"]):
        rc, out, err = t.weft(*args)
        t.check(rc == 2 and out == "" and "usage:" in err,
                "weft %s exits 2 with usage on stderr" % " ".join(args), rc, repr(out),
                repr(err))
    rc, out, err = t.weft("put", "--db", A, "todos", "opts-after", "{}", "--server", url)
    t.check_eq(rc, 0, "options may follow the positional arguments", err)
    expected[("todos", "opts-after")] = {}

    X = t.path("X.db")
    w = t.background("watch", "--db", X, "--server", url, "todos")
    first = w.wait_line(lambda ln: True, timeout=15)
    t.check(first is not None, "a watcher on replica X is running",
            "stderr: " + w.stderr())
    rc, out, err = t.weft("put", "--db", X, "todos", "z", "{}")
    t.check(rc == 2 and "in use" in err,
            "a second process opening X while watch holds it fails: exit 2, 'in use'",
            rc, repr(err))
    t.check(w.alive(), "the watcher is unaffected", w.stderr())
    # Read-only opens take no lock. What the watcher received reaches the
    # disk within the group-commit interval (100 ms by default).
    deadline = time.monotonic() + 5
    while True:
        rc, out, err = t.weft("dump", "--db", X)
        if rc != 0 or out != "" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    t.check(rc == 0 and out != "",
            "dump --db X works while watch holds X, and shows what it received",
            rc, repr(out), repr(err))
    w.kill()
    rc, out, err = t.weft("put", "--db", X, "todos", "z", "{}")
    t.check_eq(rc, 0, "once the watcher is killed (-9), X opens again", err)

    # Clean shutdown: SIGTERM -> exit 0, and the store is intact.
    t.run_ok("A final sync", "sync", "--db", A, "--server", url)
    hs = dump_hash("the server", "--data", srv.data_dir)
    rc = srv.stop()
    t.check_eq(rc, 0, "weft serve exits 0 on SIGTERM")
    t.check_eq(dump_hash("the stopped server", "--data", srv.data_dir), hs,
               "the stopped server's store dumps as before")
    t.check_eq(dump_hash("A", "--db", A), hs, "A and the server agree at the end")
    t.done()


if __name__ == "__main__":
    main()
