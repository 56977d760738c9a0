#!/usr/bin/env python3
"""test_snapshot - initial sync from document states through a real server.

usage: test_snapshot.py PATH/TO/weft

A server started with --snapshot-min 5 sends a replica that has no cursor
the documents' states (SNAPSHOT) instead of the change log once the log
holds 5 units or more:

  a. replica A writes 12 units over 4 documents (a set, a counter, LWW
     fields, a delete); a fresh replica B syncs: it has exactly the
     server's state (same canonical hash), including the delete;
  b. B, now with a cursor, keeps syncing incrementally from the log;
  c. a replica C with its own offline writes syncs fresh: the snapshot
     joins into what it has (nothing of its own is lost), its writes
     reach the server, and all three converge;
  d. --snapshot-min must be a count.
"""

import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weftlib  # noqa: E402


def main():
    t = weftlib.Test(sys.argv)
    srv = t.server(extra=("--snapshot-min", "5"))
    url = srv.url
    A, B, C = t.path("a.db"), t.path("b.db"), t.path("c.db")

    def hashes(*dbs):
        hs = []
        for db in dbs:
            out, _ = t.run_ok("dump --hash", "dump", "--hash", "--db", db)
            hs.append(out.strip())
        out, _ = t.run_ok("dump --hash of the server", "dump", "--hash", "--data",
                          srv.data_dir)
        hs.append(out.strip())
        return hs

    # a. A writes 12 units, then B syncs fresh.
    for i in range(4):
        t.run_ok("put", "put", "--db", A, "--server", url, "notes", "n%d" % i,
                 json.dumps({"title": "note %d" % i, "n": i}))
    for i in range(3):
        t.run_ok("incr", "incr", "--db", A, "--server", url, "stats", "s", "views", "2")
    t.run_ok("sadd", "sadd", "--db", A, "--server", url, "stats", "s", "tags", '"x"')
    t.run_ok("sadd", "sadd", "--db", A, "--server", url, "stats", "s", "tags", '"y"')
    t.run_ok("put", "put", "--db", A, "--server", url, "notes", "n1", '{"title": "edited"}')
    t.run_ok("del", "del", "--db", A, "--server", url, "notes", "n3")
    t.run_ok("put", "put", "--db", A, "--server", url, "notes", "n0", '{"pinned": true}')
    t.run_ok("sync B (snapshot)", "sync", "--db", B, "--server", url)
    hs = hashes(A, B)
    t.check(len(set(hs)) == 1, "A, B and the server have the same state", hs)
    out, _ = t.run_ok("get on B", "get", "--db", B, "stats", "s")
    t.check_eq(json.loads(out), {"tags": ["x", "y"], "views": 6}, "counter and set on B")
    rc, out, err = t.weft("get", "--db", B, "notes", "n3")
    t.check(rc == 1, "the deleted document is absent on B", rc, out, err)
    log = open(srv.log_path, encoding="utf-8", errors="replace").read()
    t.check("catch-up" not in log, "no catch-up failure in the server log", log)

    # a2. The same pull shown on the wire (HTTP, JSON form): with the
    # "snapshot" capability the answer is SNAPSHOT chunks of states and
    # SYNCED at the head, no CHANGES; without it, the log.
    def pull(caps):
        body = json.dumps([[1, 1, 777, 1, None, None, caps]]).encode()
        req = urllib.request.Request("http://127.0.0.1:%d/v1/pull" % srv.port, data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    msgs = pull(["snapshot"])
    types = [m[0] for m in msgs]
    t.check(types[0] == 2 and types[-1] == 6 and 12 in types and 5 not in types,
            "a fresh pull with the capability is WELCOME, SNAPSHOT..., SYNCED", types)
    states = [e for m in msgs if m[0] == 12 for e in m[1]]
    keys = sorted((e[0], e[1]) for e in states)
    t.check_eq(keys, [("notes", "n0"), ("notes", "n1"), ("notes", "n2"), ("notes", "n3"),
                      ("stats", "s")], "one state per document, the deleted one too")
    last = [m for m in msgs if m[0] == 12][-1]
    t.check(last[2] == last[3] == 5, "progress reaches done == total == 5", last[2:])
    types = [m[0] for m in pull([])]
    t.check(12 not in types and 5 in types, "without the capability: CHANGES", types)

    # b. B continues from its cursor.
    t.run_ok("put on A", "put", "--db", A, "--server", url, "notes", "n9", '{"late": 1}')
    t.run_ok("sync B (log)", "sync", "--db", B, "--server", url)
    out, _ = t.run_ok("get n9 on B", "get", "--db", B, "notes", "n9")
    t.check_eq(json.loads(out), {"late": 1}, "B got the later write from the log")

    # c. C wrote offline first; the snapshot joins into its own state.
    t.run_ok("offline put on C", "put", "--db", C, "notes", "c1", '{"from": "C"}')
    t.run_ok("offline incr on C", "incr", "--db", C, "stats", "s", "views", "10")
    t.run_ok("sync C (snapshot + push)", "sync", "--db", C, "--server", url)
    out, _ = t.run_ok("get stats on C", "get", "--db", C, "stats", "s")
    t.check_eq(json.loads(out)["views"], 16, "C's increment and A's all count")
    t.run_ok("sync A", "sync", "--db", A, "--server", url)
    t.run_ok("sync B", "sync", "--db", B, "--server", url)
    hs = hashes(A, B, C)
    t.check(len(set(hs)) == 1, "A, B, C and the server converge", hs)

    # d. Usage.
    rc, out, err = t.weft("serve", "--snapshot-min", "lots", "--data", t.path("x"))
    t.check(rc == 2 and "--snapshot-min" in err, "--snapshot-min must be a count", rc, out, err)
    t.done()


if __name__ == "__main__":
    main()
