#!/usr/bin/env python3
"""test_types - counters and sets end to end through a real `weft serve`.

usage: test_types.py PATH/TO/weft

  a. concurrent offline increments on two replicas all count after sync,
     and a duplicate push (a sync after a lost ack) does not count twice;
  b. add-wins: a remove of an element concurrent with another replica's
     re-add keeps it; a remove of what was seen removes it;
  c. CLI contract: N must be an integer, paths parse, exit codes as put.
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
        out, _ = t.run_ok("get stats/p on " + os.path.basename(db), "get", "--db", db,
                          "--server", url, "stats", "p")
        return json.loads(out)

    def same_hashes(*dbs):
        hs = []
        for db in dbs:
            out, _ = t.run_ok("dump --hash", "dump", "--hash", "--db", db)
            hs.append(out.strip())
        out, _ = t.run_ok("dump --hash of the server", "dump", "--hash", "--data",
                          srv.data_dir)
        hs.append(out.strip())
        t.check(len(set(hs)) == 1, "replicas and server have the same state hash", hs)

    # --- a. counters --------------------------------------------------------
    t.info("a. concurrent increments")
    t.run_ok("A incr views +5 (online)", "incr", "--db", A, "--server", url, "stats", "p",
             "views", "5")
    t.run_ok("B syncs", "sync", "--db", B, "--server", url)
    for i in range(3):
        t.run_ok("A incr views +1 offline", "incr", "--db", A, "stats", "p", "views", "1")
        t.run_ok("B incr views -2 offline", "incr", "--db", B, "stats", "p", "views", "-2")
    t.run_ok("A syncs", "sync", "--db", A, "--server", url)
    t.run_ok("B syncs", "sync", "--db", B, "--server", url)
    t.run_ok("A syncs again", "sync", "--db", A, "--server", url)
    t.run_ok("B syncs again", "sync", "--db", B, "--server", url)
    t.check_eq(get(A)["views"], 5 + 3 - 6, "A counts every increment exactly once")
    t.check_eq(get(B)["views"], 5 + 3 - 6, "B counts every increment exactly once")
    same_hashes(A, B)

    # --- b. sets ------------------------------------------------------------
    t.info("b. add-wins sets")
    t.run_ok("A sadd urgent", "sadd", "--db", A, "--server", url, "stats", "p", "tags",
             "urgent")
    t.run_ok("A sadd 7", "sadd", "--db", A, "--server", url, "stats", "p", "tags", "7")
    t.run_ok("B syncs", "sync", "--db", B, "--server", url)
    t.run_ok("B srem urgent offline (saw A's add)", "srem", "--db", B, "stats", "p",
             "tags", "urgent")
    t.run_ok("A sadd urgent again, concurrently", "sadd", "--db", A, "--server", url,
             "stats", "p", "tags", "urgent")
    t.run_ok("B syncs", "sync", "--db", B, "--server", url)
    t.run_ok("A syncs", "sync", "--db", A, "--server", url)
    t.check_eq(get(A)["tags"], sorted_tags(["urgent", 7]),
               "A's concurrent re-add wins over B's remove")
    t.check_eq(get(B)["tags"], sorted_tags(["urgent", 7]), "B agrees")
    t.run_ok("B srem 7 (seen)", "srem", "--db", B, "--server", url, "stats", "p", "tags",
             "7")
    t.run_ok("A syncs", "sync", "--db", A, "--server", url)
    t.check_eq(get(A)["tags"], ["urgent"], "a remove of what was seen removes it")
    same_hashes(A, B)

    # --- c. CLI contract ------------------------------------------------------
    t.info("c. CLI contract")
    rc, out, err = t.weft("incr", "--db", A, "stats", "p", "views", "1.5")
    t.check(rc == 2 and "integer" in err, "incr N must be an integer (exit 2)", rc, err)
    rc, out, err = t.weft("incr", "--db", A, "stats", "p", "", "1")
    t.check(rc == 2, "an empty path is refused (exit 2)", rc, err)
    rc, out, err = t.weft("sadd", "--db", A, "stats", "p", "tags", "[1]")
    t.check(rc == 2, "a set element must be a scalar; [1] is refused (exit 2)", rc, err)
    t.run_ok("incr on an escaped dotted path", "incr", "--db", A, "stats", "q", "a\\.b.c",
             "2")
    out, _ = t.run_ok("get stats/q", "get", "--db", A, "stats", "q")
    t.check_eq(out, '{"a.b":{"c":2}}\n', "a\\.b.c addresses key 'a.b' then 'c'")
    t.done()


def sorted_tags(tags):
    """Sets print their elements sorted by canonical JSON text."""
    return sorted(tags, key=lambda v: json.dumps(v, separators=(",", ":")).encode())


if __name__ == "__main__":
    main()
