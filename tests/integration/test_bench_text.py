#!/usr/bin/env python3
"""test_bench_text - `weft bench text` on every editing trace, both modes.

usage: test_bench_text.py PATH/TO/weft

For each trace under $WEFT_DATA_DIR/editing-traces (default ../shared/data
beside the checkout), runs `weft bench text TRACE --mode local|remote
--runs 1` and checks the printed JSON: ops equals the trace's patch count,
final_len the code points of endContent, final_sha256 the SHA-256 of
endContent as UTF-8. Also: a missing file and a trace whose endContent
does not match are errors (exit 1), bad usage exits 2. Skipped (77) when
the traces are absent.
"""

import glob
import gzip
import hashlib
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weftlib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    data = os.environ.get("WEFT_DATA_DIR",
                          os.path.join(HERE, "..", "..", "..", "shared", "data"))
    traces = sorted(glob.glob(os.path.join(data, "editing-traces", "*_traces", "*.json.gz")))
    if not traces:
        print("SKIPPED: editing traces not found under %s" % os.path.abspath(data))
        sys.exit(77)
    t = weftlib.Test(sys.argv)
    for path in traces:
        with gzip.open(path, "rb") as f:
            tr = json.loads(f.read())
        end = tr["endContent"]
        ops = sum(len(x["patches"]) for x in tr["txns"])
        for mode in ("local", "remote"):
            rc, out, err = t.weft("bench", "text", path, "--mode", mode, "--runs", "1",
                                  timeout=120)
            name = "%s --mode %s" % (os.path.basename(path), mode)
            t.check(rc == 0, name + " exits 0", rc, err)
            o = json.loads(out)
            t.check_eq((o["ops"], o["final_len"], o["final_sha256"]),
                       (ops, len(end), hashlib.sha256(end.encode()).hexdigest()),
                       name + ": ops, final_len and final_sha256 match the trace")
            t.check(o["ms"] >= 0 and o["encoded_bytes"] > 0, name + " prints sizes", o)

    rc, out, err = t.weft("bench", "text", t.path("missing.json.gz"))
    t.check(rc == 1 and "cannot open" in err, "a missing trace is an error (exit 1)", rc, err)
    bad = t.path("bad.json.gz")
    with gzip.open(bad, "wb") as f:
        f.write(json.dumps({"startContent": "", "endContent": "xyz",
                            "txns": [{"patches": [[0, 0, "abc"]]}]}).encode())
    rc, out, err = t.weft("bench", "text", bad)
    t.check(rc == 1 and "endContent" in err, "a wrong endContent is an error, not a number",
            rc, err)
    rc, out, err = t.weft("bench", "text", bad, "--mode", "sideways")
    t.check(rc == 2, "a bad --mode is a usage error (exit 2)", rc, err)
    t.done()


if __name__ == "__main__":
    main()
