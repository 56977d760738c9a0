#!/usr/bin/env python3
"""test_restamp - a raw protocol client against `weft serve`: the server
re-stamps an op stamped a day in the future, and sends the document's
authoritative state again when the same op is re-pushed after a lost ACK.

usage: test_restamp.py PATH/TO/weft

Speaks the wire protocol of docs/PROTOCOL.md directly (a small MessagePack
codec below), so it can do what the weft client never does on purpose:
drop a connection right after pushing, as if the ACK were lost.
  a. HELLO, WELCOME (max_drift_ms present), SYNCED;
  b. PUSH of an op stamped now + 1 day: the ACK lists the op with a new
     HLC within the drift of the server's clock, and carries the
     document's state;
  c. a second connection re-pushes the same op (identity unchanged, old
     far-future stamp): the ACK carries the state again, with no re-stamp
     entry, and nothing new is committed (dump unchanged);
  d. an op within the drift keeps its stamp: no re-stamp, no state.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weftlib  # noqa: E402
from test_ws_abuse import RawClient, frame  # noqa: E402


from mplite import mp, unmp  # noqa: E402


REPLICA = 0x0102030405060708


def hlc(ms, c=0):
    return (ms << 16) | c


def op(seq, stamp, doc_id, value):
    return [REPLICA, 1, seq, stamp, 1, "todos", doc_id, [], value]


class Session:
    def __init__(self, t, port):
        self.t = t
        self.c = RawClient(port)
        status, _ = self.c.upgrade()
        t.check(status is not None and " 101 " in status + " ", "WebSocket upgrade", status)
        self.c.send(frame(0x2, mp([1, 1, REPLICA, 1, None])))
        welcome = self.recv()
        t.check(welcome[0] == 2 and len(welcome) >= 6, "WELCOME carries max_drift_ms", welcome)
        self.server_ms, self.drift = welcome[2], welcome[5]
        while self.recv()[0] != 6:  # catch-up CHANGES until SYNCED
            pass

    def recv(self, timeout=5.0):
        f = self.c.read_frame(time.monotonic() + timeout)
        if f is None:
            self.t.fail("the server closed the connection")
        return unmp(f[1])[0]

    def push(self, ops):
        self.c.send(frame(0x2, mp([3, ops])))
        while True:
            m = self.recv()
            if m[0] == 4:
                return m
            # CHANGES from others may interleave; skip them


def main():
    t = weftlib.Test(sys.argv)
    srv = t.server()
    day = 86400 * 1000

    # --- a/b. a far-future op is re-stamped -----------------------------
    s1 = Session(t, srv.port)
    t.check_eq(s1.drift, 60000, "the default max drift is 60 s")
    future = hlc(s1.server_ms + day)
    ack = s1.push([op(1, future, "x", {"v": "from the future"})])
    t.check_eq(ack[1:3], [1, 1], "ACK names (incarnation 1, seq 1)")
    restamps, states = ack[3], ack[4]
    t.check(len(restamps) == 1 and restamps[0][:2] == [1, 1], "the op is listed as re-stamped",
            ack)
    new = restamps[0][2]
    t.check((new >> 16) <= s1.server_ms + s1.drift + 5000 and new < future,
            "its new HLC is the server's, within the drift", new, future)
    t.check(len(states) == 1 and states[0][:2] == ["todos", "x"] and
            isinstance(states[0][2], bytes), "the ACK carries todos/x's state", ack)
    s1.c.close()  # as if the ACK had been lost on the way
    out, _ = t.run_ok("dump the server", "dump", "--data", srv.data_dir)
    t.check_eq(out, '{"collection":"todos","doc":{"v":"from the future"},"id":"x"}\n',
               "the server committed the op once")

    # --- c. re-push after a lost ACK: the state is sent again ----------
    s2 = Session(t, srv.port)
    ack = s2.push([op(1, future, "x", {"v": "from the future"})])
    t.check_eq((ack[1:3], ack[3]), ([1, 1], []),
               "the re-pushed op is a duplicate: acknowledged, not re-stamped again")
    t.check(len(ack[4]) == 1 and ack[4][0][:2] == ["todos", "x"],
            "the ACK carries todos/x's authoritative state again", ack)
    out2, _ = t.run_ok("dump the server again", "dump", "--data", srv.data_dir)
    t.check_eq(out2, out, "nothing new was committed")

    # --- d. within the drift: kept as sent -------------------------------
    near = hlc(s2.server_ms + 1000)
    ack = s2.push([op(2, near, "y", {"v": 1})])
    t.check_eq((ack[1:3], ack[3], ack[4]), ([1, 2], [], []),
               "an op within the drift keeps its stamp: no re-stamp, no state")
    s2.c.close()
    t.done()


if __name__ == "__main__":
    main()
