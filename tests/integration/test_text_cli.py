#!/usr/bin/env python3
"""test_text_cli - collaborative text end to end through a real `weft serve`.

usage: test_text_cli.py PATH/TO/weft

  a. A text-inserts "hello" online; B syncs and sees it;
  b. A and B both type offline at the same spot (one character per op, as
     an editor sends them), both sync twice: `weft get` is equal on A and B,
     each run of typing stays together, and dump --hash is equal on A, B and
     the server;
  c. deletes, a reset of the path, and the CLI contract (exit codes as put).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weftlib  # noqa: E402


def main():
    t = weftlib.Test(sys.argv)
    srv = t.server()
    url = srv.url
    A, B = t.path("a.db"), t.path("b.db")

    def get(db):
        out, _ = t.run_ok("get notes/n on " + os.path.basename(db), "get", "--db", db,
                          "notes", "n")
        return out

    def sync_both(times=2):
        for _ in range(times):
            t.run_ok("A syncs", "sync", "--db", A, "--server", url)
            t.run_ok("B syncs", "sync", "--db", B, "--server", url)

    def same_hashes(*dbs):
        hs = []
        for db in dbs:
            out, _ = t.run_ok("dump --hash", "dump", "--hash", "--db", db)
            hs.append(out.strip())
        out, _ = t.run_ok("dump --hash of the server", "dump", "--hash", "--data",
                          srv.data_dir)
        hs.append(out.strip())
        t.check(len(set(hs)) == 1, "replicas and server have the same state hash", hs)

    # --- a. insert and sync -------------------------------------------------
    t.info("a. insert, then sync")
    t.run_ok("A text-insert hello (online)", "text-insert", "--db", A, "--server", url,
             "notes", "n", "body", "0", "hello")
    t.run_ok("B syncs", "sync", "--db", B, "--server", url)
    t.check_eq(json.loads(get(B)), {"body": "hello"}, "B sees A's text")

    # --- b. concurrent typing at the same spot --------------------------------
    t.info("b. concurrent typing offline at the same spot")
    for i, ch in enumerate("XYZ"):
        t.run_ok("A types " + ch + " offline", "text-insert", "--db", A, "notes", "n",
                 "body", str(5 + i), ch)
    for i, ch in enumerate("123"):
        t.run_ok("B types " + ch + " offline", "text-insert", "--db", B, "notes", "n",
                 "body", str(5 + i), ch)
    sync_both()
    ga, gb = get(A), get(B)
    t.check_eq(ga, gb, "A and B show the same document")
    body = json.loads(ga)["body"]
    t.check(body in ("helloXYZ123", "hello123XYZ"),
            "both runs survive, neither interleaved with the other", body)
    same_hashes(A, B)

    # --- c. deletes, reset, CLI contract --------------------------------------
    t.info("c. deletes, a reset, the CLI contract")
    t.run_ok("A deletes 'hello'", "text-delete", "--db", A, "--server", url, "notes", "n",
             "body", "0", "5")
    t.run_ok("B inserts ', é' at the end (offline, UTF-8)", "text-insert", "--db", B,
             "notes", "n", "body", "11", "!é")
    sync_both()
    t.check_eq(json.loads(get(A))["body"], body[5:] + "!é", "delete and insert merge")
    t.check_eq(get(A), get(B), "A and B agree")
    same_hashes(A, B)
    t.run_ok("B deletes the path", "del", "--db", B, "--server", url, "notes", "n")
    t.run_ok("B starts a new text there", "text-insert", "--db", B, "--server", url,
             "notes", "n", "body", "0", "fresh")
    sync_both()
    t.check_eq(json.loads(get(A)), {"body": "fresh"}, "after a reset only the new text shows")
    same_hashes(A, B)

    rc, out, err = t.weft("text-insert", "--db", A, "notes", "n", "body", "99", "x")
    t.check(rc == 2 and "range" in err, "a position past the end is refused (exit 2)", rc,
            err)
    rc, out, err = t.weft("text-insert", "--db", A, "notes", "n", "body", "-1", "x")
    t.check(rc == 2, "a negative position is a usage error (exit 2)", rc, err)
    rc, out, err = t.weft("text-delete", "--db", A, "notes", "n", "body", "0", "x")
    t.check(rc == 2 and "COUNT" in err, "COUNT must be an integer (exit 2)", rc, err)
    rc, out, err = t.weft("text-delete", "--db", A, "notes", "n", "body", "0")
    t.check(rc == 2, "a missing argument is a usage error (exit 2)", rc, err)
    t.check_eq(json.loads(get(A)), {"body": "fresh"}, "refused edits changed nothing")
    t.done()


if __name__ == "__main__":
    main()
