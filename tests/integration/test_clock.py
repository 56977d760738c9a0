#!/usr/bin/env python3
"""test_clock - skewed client clocks against a real `weft serve`.

usage: test_clock.py PATH/TO/weft

Clients run under Debian's faketime with their wall clock a day ahead or a
day behind. Checks:
  a. a replica a day ahead writes; the server re-stamps the op with its own
     clock (the ack carries the new stamp, the replica adopts the server's
     state); a correct replica that then overwrites the field wins, on every
     replica and on the server;
  b. the replica a day ahead keeps converging afterwards;
  c. a replica a day behind that has synced once measures its offset to
     the server, so its later write is not outvoted by older writes;
  d. skews of 1 s, 5 min and 1 h in both directions all converge on the
     value written last in real time.
Skipped (exit 77) when faketime is not installed.
"""

import os
import shutil
import subprocess
import sys
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weftlib  # noqa: E402


def main():
    if shutil.which("faketime") is None:
        print("SKIPPED: faketime is not installed (apt-get install faketime)")
        sys.exit(77)
    t = weftlib.Test(sys.argv)
    srv = t.server()
    url = srv.url

    env = dict(os.environ)
    # libfaketime is preloaded; the sanitizers' runtimes must not object.
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"

    def skewed(offset, what, *args, want_rc=0):
        cmd = ["faketime", "-f", offset, t.bin] + list(args)
        p = subprocess.run(cmd, capture_output=True, timeout=60, env=env,
                           stdin=subprocess.DEVNULL)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        t.check(p.returncode == want_rc, "%s [clock %s] (exit %d)" % (what, offset, want_rc),
                "command: %s" % " ".join(cmd), "exit: %d" % p.returncode,
                "stdout: %r" % out[-1000:], "stderr: %r" % err[-1000:])
        return out

    def hashes(*dbs):
        hs = []
        for db in dbs:
            out, _ = t.run_ok("dump --hash of " + os.path.basename(db), "dump", "--hash",
                              "--db", db)
            hs.append(out.strip())
        out, _ = t.run_ok("dump --hash of the server", "dump", "--hash", "--data",
                          srv.data_dir)
        hs.append(out.strip())
        return hs

    A, B, C = t.path("ahead.db"), t.path("right.db"), t.path("behind.db")

    # --- a. a day ahead cannot override a causally later correct write --
    t.info("a. replica a day ahead writes; a correct replica overwrites it")
    skewed("+1d", "A (a day ahead) puts v=a", "put", "--db", A, "--server", url,
           "todos", "x", '{"v":"a"}')
    t.run_ok("B syncs and sees A's write", "sync", "--db", B, "--server", url)
    out, _ = t.run_ok("B reads x", "get", "--db", B, "todos", "x")
    t.check_eq(out, '{"v":"a"}\n', "B sees v=a")
    t.run_ok("B (correct clock) puts v=b after seeing v=a", "put", "--db", B, "--server",
             url, "todos", "x", '{"v":"b"}')
    skewed("+1d", "A syncs", "sync", "--db", A, "--server", url)
    out = skewed("+1d", "A reads x", "get", "--db", A, "todos", "x")
    t.check_eq(out, '{"v":"b"}\n',
               "the causally later write of the correct replica wins on A")
    out, _ = t.run_ok("server dump", "dump", "--data", srv.data_dir)
    t.check('"v":"b"' in out, "the server holds v=b", out)
    h = hashes(A, B)
    t.check(len(set(h)) == 1, "A, B and the server have the same state hash", h)

    # --- b. the replica a day ahead keeps working -----------------------
    t.info("b. A writes again and everyone converges")
    skewed("+1d", "A puts another field", "put", "--db", A, "--server", url,
           "todos", "x", '{"w":1}')
    t.run_ok("B syncs", "sync", "--db", B, "--server", url)
    out, _ = t.run_ok("B reads x", "get", "--db", B, "todos", "x")
    t.check_eq(out, '{"v":"b","w":1}\n', "B sees both fields")
    h = hashes(A, B)
    t.check(len(set(h)) == 1, "A, B and the server agree after A's second write", h)

    # --- c. a day behind is not outvoted forever -------------------------
    t.info("c. replica a day behind syncs once, then writes")
    skewed("-1d", "C (a day behind) syncs", "sync", "--db", C, "--server", url)
    skewed("-1d", "C puts v=c", "put", "--db", C, "--server", url, "todos", "x",
           '{"v":"c"}')
    t.run_ok("B syncs", "sync", "--db", B, "--server", url)
    out, _ = t.run_ok("B reads x", "get", "--db", B, "todos", "x")
    t.check_eq(json.loads(out)["v"], "c",
               "C's later write wins although its clock is a day behind")
    skewed("+1d", "A syncs", "sync", "--db", A, "--server", url)
    skewed("-1d", "C syncs", "sync", "--db", C, "--server", url)
    h = hashes(A, B, C)
    t.check(len(set(h)) == 1, "A, B, C and the server agree", h)

    # --- d. smaller skews, both directions -------------------------------
    t.info("d. skews of 1 s, 5 min and 1 h")
    dbs = []
    for i, off in enumerate(["+1s", "-1s", "+5m", "-5m", "+1h", "-1h"]):
        db = t.path("skew%d.db" % i)
        dbs.append(db)
        skewed(off, "sync", "sync", "--db", db, "--server", url)
        skewed(off, "put n=%d" % i, "put", "--db", db, "--server", url, "todos", "y",
               '{"n":%d}' % i)
    for i, off in enumerate(["+1s", "-1s", "+5m", "-5m", "+1h", "-1h"]):
        skewed(off, "final sync", "sync", "--db", dbs[i], "--server", url)
    out, _ = t.run_ok("server dump", "dump", "--data", srv.data_dir)
    t.check('"id":"y"' in out and '{"n":5}' in out,
            "the write made last in real time wins", out)
    h = hashes(*dbs)
    t.check(len(set(h)) == 1, "every skewed replica and the server agree", h)
    t.done()


if __name__ == "__main__":
    main()
