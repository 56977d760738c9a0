#!/usr/bin/env python3
"""test_ws_abuse - hostile WebSocket clients cannot hurt `weft serve` or the
other clients connected to it.

usage: test_ws_abuse.py PATH/TO/weft

A well-behaved client (`weft watch` on collection "abuse") stays connected
while raw-socket clients, framing written by hand below (RFC 6455), send:
  1. garbage instead of an HTTP request     -> HTTP 4xx or close
  2. an upgrade, then garbage frame bytes    -> close 1002 or TCP close
  3. an upgrade, a truncated frame, EOF      -> the server closes too
  4. an upgrade, a header announcing 100 MiB -> close 1009 or TCP close
     within 5 s, without waiting for the payload
  5. an upgrade, a well-formed binary frame that is not a weft message
                                             -> an error message or close
  6. an upgrade, a text frame                -> close 1003 or TCP close
  7. an upgrade, an unmasked client frame    -> close 1002 or TCP close
  8. a connection that never finishes its HTTP request is not allowed to
     hold the server up (others are served meanwhile)
Afterwards the server is still alive, a `weft put --server` succeeds and the
watcher prints the change: the server kept serving everyone else.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weftlib  # noqa: E402

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    """One WebSocket frame as a client sends it (masked unless told)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawClient:
    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _recv_more(self, deadline):
        """Reads more bytes into self.buf. Returns False on EOF/reset,
        raises socket.timeout past the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def upgrade(self, path="/v1/ws", timeout=5.0):
        """The opening handshake; returns the HTTP status line and checks
        Sec-WebSocket-Accept when the status is 101."""
        key = base64.b64encode(os.urandom(16))
        req = (b"GET " + path.encode() + b" HTTP/1.1\r\n"
               b"Host: 127.0.0.1\r\n"
               b"Upgrade: websocket\r\n"
               b"Connection: Upgrade\r\n"
               b"Sec-WebSocket-Key: " + key + b"\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")
        self.send(req)
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._recv_more(deadline):
                return None, {}
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        if lines[0].split(" ")[1:2] == ["101"] and headers.get("sec-websocket-accept") != want:
            raise AssertionError("bad Sec-WebSocket-Accept %r, want %r"
                                 % (headers.get("sec-websocket-accept"), want))
        return lines[0], headers

    def read_frame(self, deadline):
        """Returns (opcode, payload) of the next server frame, or None when
        the TCP connection closed. Raises socket.timeout."""
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n = b1 & 0x7F
                off = 2
                if n == 126:
                    if len(self.buf) >= 4:
                        n = struct.unpack("!H", self.buf[2:4])[0]
                    off = 4
                elif n == 127:
                    if len(self.buf) >= 10:
                        n = struct.unpack("!Q", self.buf[2:10])[0]
                    off = 10
                if b1 & 0x80:
                    raise AssertionError("the server sent a masked frame")
                if len(self.buf) >= off and len(self.buf) >= off + n:
                    payload = self.buf[off:off + n]
                    self.buf = self.buf[off + n:]
                    return b0 & 0x0F, payload
            if not self._recv_more(deadline):
                return None

    def outcome(self, timeout=5.0):
        """Reads until the server closes. Returns a list of events:
        ("frame", opcode, payload), ("close", code) for a close frame, and a
        final ("eof",) when the TCP connection closed, or ("timeout",) if
        it was still open after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        events = []
        try:
            while True:
                f = self.read_frame(deadline)
                if f is None:
                    events.append(("eof",))
                    return events
                op, payload = f
                if op == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    events.append(("close", code))
                    # Answer the close, as a client should, then wait for EOF.
                    try:
                        self.send(frame(0x8, payload[:2]))
                    except OSError:
                        pass
                else:
                    events.append(("frame", op, payload))
        except socket.timeout:
            events.append(("timeout",))
            return events

    def raw_outcome(self, timeout=5.0):
        """For non-WebSocket replies: all bytes until EOF, and whether EOF
        came before the timeout."""
        deadline = time.monotonic() + timeout
        try:
            while self._recv_more(deadline):
                pass
            return self.buf, True
        except socket.timeout:
            return self.buf, False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def closes(events):
    return events and events[-1] == ("eof",)


def close_codes(events):
    return [e[1] for e in events if e[0] == "close"]


def main():
    t = weftlib.Test(sys.argv)
    srv = t.server()
    url = srv.url
    port = srv.port
    t.info("server at %s" % url)
    B = t.path("B.db")
    A = t.path("A.db")

    # The well-behaved client. Seed one document so that the watcher's
    # initial sync prints a line: then it is known to be connected.
    t.run_ok("seed abuse/seed", "put", "--db", A, "--server", url, "abuse", "seed", '{"n":0}')
    w = t.background("watch", "--db", B, "--server", url, "abuse")
    t.check(w.wait_line(lambda ln: json.loads(ln)["id"] == "seed", timeout=15) is not None,
            "the watcher B is connected (its initial sync printed abuse/seed)",
            "stderr: " + w.stderr(), "lines: %r" % w.lines)

    # 1. garbage instead of an HTTP request
    c = RawClient(port)
    c.send(b"\x00\xff\x13\x37 this is not HTTP at all\r\n\r\n" + os.urandom(64))
    data, eof = c.raw_outcome(timeout=5)
    c.close()
    status = data.split(b"\r\n", 1)[0].split(b" ")
    is_4xx = (len(status) >= 2 and status[0].startswith(b"HTTP/1.")
              and len(status[1]) == 3 and status[1].startswith(b"4"))
    t.check((data == b"" and eof) or is_4xx,
            "1. garbage instead of HTTP gets an HTTP 4xx or a close",
            "reply: %r" % data[:200], "closed: %s" % eof)
    t.check(eof, "1. ... and the connection is closed within 5 s", "reply: %r" % data[:200])

    # A plain request for another path is refused too.
    c = RawClient(port)
    status_line, _ = c.upgrade(path="/nope")
    c.close()
    t.check(status_line is None or " 4" in status_line,
            "an upgrade to a path other than /v1/ws is refused (4xx or close)", status_line)

    # 2. valid upgrade, then garbage frame bytes (reserved bits, reserved opcode)
    c = RawClient(port)
    status_line, _ = c.upgrade()
    t.check(status_line is not None and " 101" in status_line,
            "2. the upgrade to /v1/ws is accepted (101)", status_line)
    # FIN, all three reserved bits and reserved opcode 0x3; masked, 5 bytes.
    c.send(b"\xf3\x85" + os.urandom(9))
    ev = c.outcome(timeout=5)
    c.close()
    t.check(closes(ev) and all(code == 1002 for code in close_codes(ev)),
            "2. garbage frame bytes get a close 1002 or a TCP close", "events: %r" % ev)

    # 3. valid upgrade, truncated frame, then EOF from our side
    c = RawClient(port)
    status_line, _ = c.upgrade()
    t.check(status_line is not None and " 101" in status_line, "3. upgrade accepted",
            status_line)
    whole = frame(0x2, os.urandom(100))
    c.send(whole[:30])
    c.sock.shutdown(socket.SHUT_WR)
    ev = c.outcome(timeout=5)
    c.close()
    t.check(closes(ev), "3. after a truncated frame and EOF the server closes too",
            "events: %r" % ev)

    # 4. a header announcing 100 MiB, and no payload
    c = RawClient(port)
    status_line, _ = c.upgrade()
    t.check(status_line is not None and " 101" in status_line, "4. upgrade accepted",
            status_line)
    t0 = time.monotonic()
    c.send(struct.pack("!BBQ", 0x82, 0x80 | 127, 100 * 1024 * 1024) + os.urandom(4))
    ev = c.outcome(timeout=5)
    took = time.monotonic() - t0
    c.close()
    t.check(closes(ev) and all(code == 1009 for code in close_codes(ev)),
            "4. a 100 MiB frame header gets close 1009 or a TCP close within 5 s, "
            "without the payload (took %.2f s)" % took, "events: %r" % ev)

    # 5. a well-formed binary frame that is not a weft message
    c = RawClient(port)
    status_line, _ = c.upgrade()
    t.check(status_line is not None and " 101" in status_line, "5. upgrade accepted",
            status_line)
    # 0xc1 is the one byte MessagePack never uses: this cannot decode.
    c.send(frame(0x2, b"\xc1" + os.urandom(63)))
    ev = c.outcome(timeout=5)
    c.close()
    t.check(any(e[0] != "timeout" for e in ev),
            "5. a frame that is not a weft message gets an error message or a close",
            "events: %r" % ev)

    # 6. a text frame (the protocol is binary only)
    c = RawClient(port)
    status_line, _ = c.upgrade()
    t.check(status_line is not None and " 101" in status_line, "6. upgrade accepted",
            status_line)
    c.send(frame(0x1, b'{"hello":"server"}'))
    ev = c.outcome(timeout=5)
    c.close()
    t.check(closes(ev) and all(code == 1003 for code in close_codes(ev)),
            "6. a text frame gets close 1003 or a TCP close", "events: %r" % ev)

    # 7. an unmasked client frame
    c = RawClient(port)
    status_line, _ = c.upgrade()
    t.check(status_line is not None and " 101" in status_line, "7. upgrade accepted",
            status_line)
    c.send(frame(0x2, b"\x90", mask=False))
    ev = c.outcome(timeout=5)
    c.close()
    t.check(closes(ev) and all(code == 1002 for code in close_codes(ev)),
            "7. an unmasked client frame gets close 1002 or a TCP close", "events: %r" % ev)

    # 8. a slow client that sends half a request and stops: it must not
    # hold anyone else up while it sits there.
    slow = RawClient(port)
    slow.send(b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpg")

    t.check(srv.alive(), "the server is still running after all of the above",
            srv.log_tail())
    t.check(w.alive(), "the watcher B is still running", "stderr: " + w.stderr())
    t0 = time.monotonic()
    t.run_ok("a well-behaved put --server to abuse/x succeeds", "put", "--db", A,
             "--server", url, "abuse", "x", '{"after":"abuse"}')
    line = w.wait_line(lambda ln: json.loads(ln)["id"] == "x", timeout=10)
    t.check(line is not None, "the watcher B prints the change to abuse/x",
            "lines: %r" % w.lines, "stderr: " + w.stderr())
    t.check_eq(json.loads(line), {"collection": "abuse", "doc": {"after": "abuse"},
                                  "from_sync": True, "id": "x", "op": "insert"},
               "the change B prints is the one written")
    t.check(time.monotonic() - t0 < 5,
            "served promptly while the half-open request is pending (%.2f s)"
            % (time.monotonic() - t0))
    slow.close()
    w.kill()
    t.check(srv.alive(), "the server is still running at the end", srv.log_tail())
    t.done()


if __name__ == "__main__":
    main()
