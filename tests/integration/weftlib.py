"""weftlib - helpers for weft's integration tests (Python 3, stdlib only).

The tests drive the real `weft` binary as separate processes on 127.0.0.1,
the way an operator and applications would: a `weft serve` started on a
free port (read from its "listening" line), clients run as `weft put/get/...`
subprocesses with a timeout, and the server killed with SIGKILL and restarted
on the same data directory and port.

Usage in a test:

    import weftlib
    t = weftlib.Test(sys.argv)          # argv[1] is the weft binary
    srv = t.server()                     # started, port known
    rc, out, err = t.weft("put", "--db", t.path("a.db"), ...)
    t.check(rc == 0, "put succeeds", rc, out, err)
    ...
    t.done()                             # prints "N passed, 0 failed", exit 0

A failed check prints what was expected and what happened, stops every
process the test started, and exits 1. Temporary files are removed at the
end (set WEFT_KEEP_TMP=1 to keep them for a post-mortem; the path is
printed on failure).
"""

import atexit
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

LISTEN_RE = re.compile(r"^weft serve: listening on (\S+):(\d+)$")

# Every process a test started, so that nothing outlives the test.
_children = []


def _kill_all():
    for p in _children:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


atexit.register(_kill_all)


class Failure(Exception):
    pass


class Server:
    """One `weft serve` process on a data directory."""

    def __init__(self, test, data_dir, port=0, extra=()):
        self.test = test
        self.data_dir = data_dir
        self.port = port
        self.extra = list(extra)
        self.proc = None
        self.log_path = None
        self.starts = 0

    @property
    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    def start(self, timeout=10.0):
        """Starts the server and waits for its "listening" line. With a
        fixed port (a restart), retries for a few seconds while the port is
        still held by the previous process."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            ok, last = self._start_once(deadline)
            if ok:
                return self
            if self.port == 0 or time.monotonic() >= deadline:
                raise Failure("weft serve did not start: %s\n--- server log:\n%s"
                              % (last, self.log_tail()))
            time.sleep(0.2)

    def _start_once(self, deadline):
        self.starts += 1
        self.log_path = os.path.join(self.test.tmp, "server-%d-%d.log"
                                     % (id(self) % 10000, self.starts))
        log = open(self.log_path, "wb")
        cmd = [self.test.bin, "serve", "--listen", "127.0.0.1:%d" % self.port,
               "--data", self.data_dir] + self.extra
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        _children.append(self.proc)
        lines = queue.Queue()

        def reader(stream):
            # Keep draining stdout so that the server can never block on it.
            for raw in iter(stream.readline, b""):
                lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=reader, args=(self.proc.stdout,), daemon=True).start()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill9()
                return False, "no 'listening' line in time"
            try:
                line = lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                rc = self.proc.wait()
                return False, "exited with status %d before listening" % rc
            m = LISTEN_RE.match(line)
            if m:
                port = int(m.group(2))
                if self.port != 0 and port != self.port:
                    raise Failure("server listens on port %d, asked for %d"
                                  % (port, self.port))
                self.port = port
                return True, ""
            # Any other line before "listening" breaks the contract.
            raise Failure("unexpected line on weft serve's stdout: %r" % line)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL: no clean shutdown, exactly like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("weft serve did not exit within %.0f s of SIGTERM" % timeout)

    def restart(self, timeout=10.0):
        """Starts again on the same data directory and the same port."""
        self.kill9()
        return self.start(timeout=timeout)

    def log_tail(self, n=40):
        if not self.log_path or not os.path.exists(self.log_path):
            return "(no log)"
        with open(self.log_path, "rb") as f:
            data = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(data[-n:])


class Background:
    """A long-running weft command (watch) whose stdout lines are collected
    by a thread, so the test can wait for a line matching a condition."""

    def __init__(self, test, args):
        self.test = test
        self.args = list(args)
        self.err_path = os.path.join(test.tmp, "bg-%d.err" % len(_children))
        err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([test.bin] + self.args, stdout=subprocess.PIPE,
                                     stderr=err, stdin=subprocess.DEVNULL)
        err.close()
        _children.append(self.proc)
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_line(self, pred, timeout=10.0, start=0):
        """Returns the first line (from index `start`) for which pred(line)
        is true, or None once `timeout` seconds pass or stdout closes."""
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    try:
                        if pred(self.lines[i]):
                            return self.lines[i]
                    except Exception:
                        pass
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return None
                self.cond.wait(timeout=left)

    def alive(self):
        return self.proc.poll() is None

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


class Test:
    def __init__(self, argv):
        if len(argv) < 2:
            sys.stderr.write("usage: %s PATH/TO/weft\n" % argv[0])
            sys.exit(2)
        self.bin = os.path.abspath(argv[1])
        if not os.access(self.bin, os.X_OK):
            sys.stderr.write("%s: not an executable\n" % self.bin)
            sys.exit(2)
        self.name = os.path.basename(argv[0])
        self.tmp = tempfile.mkdtemp(prefix="weft-it-")
        self.passed = 0
        self.servers = []
        self.started = time.monotonic()
        atexit.register(self._cleanup)
        self._failed = False

    # --- files and processes ----------------------------------------
    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def weft(self, *args, timeout=60.0, input=None):
        """Runs `weft ARGS...`; returns (rc, stdout, stderr) as text."""
        cmd = [self.bin] + [str(a) for a in args]
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=timeout,
                               input=input.encode() if input is not None else None,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self.fail("command timed out after %.0f s: %s" % (timeout, " ".join(cmd)),
                      stdout=e.stdout, stderr=e.stderr)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def server(self, data_dir=None, port=0, extra=()):
        if data_dir is None:
            data_dir = self.path("server-data-%d" % len(self.servers))
        s = Server(self, data_dir, port, extra)
        self.servers.append(s)
        try:
            s.start()
        except Failure as e:
            self.fail(str(e))
        return s

    def restart(self, srv):
        try:
            srv.restart()
        except Failure as e:
            self.fail(str(e))
        return srv

    def background(self, *args):
        return Background(self, [str(a) for a in args])

    # --- checks -----------------------------------------------------
    def info(self, msg):
        print("# " + msg, flush=True)

    def check(self, cond, what, *detail):
        """A real assertion: prints "ok - what" or fails the test with the
        detail values (typically rc, stdout, stderr) printed."""
        if cond:
            self.passed += 1
            print("ok %d - %s" % (self.passed, what), flush=True)
            return
        self.fail(what, *detail)

    def check_eq(self, got, want, what, *detail):
        if got == want:
            self.check(True, what)
            return
        self.fail("%s\n  expected: %r\n  got:      %r" % (what, want, got), *detail)

    def run_ok(self, what, *args, want_rc=0, timeout=60.0):
        """Runs weft and checks its exit status; returns (stdout, stderr)."""
        rc, out, err = self.weft(*args, timeout=timeout)
        self.check(rc == want_rc, "%s (exit %d)" % (what, want_rc),
                   "command: weft %s" % " ".join(str(a) for a in args),
                   "exit status: %d" % rc, "stdout: %r" % out[-2000:],
                   "stderr: %r" % err[-2000:])
        return out, err

    def fail(self, what, *detail, stdout=None, stderr=None):
        self._failed = True
        lines = ["FAIL: " + what]
        for d in detail:
            lines.append("  " + str(d))
        if stdout:
            lines.append("  stdout: %r" % stdout[-2000:])
        if stderr:
            lines.append("  stderr: %r" % stderr[-2000:])
        for s in self.servers:
            lines.append("  --- server on port %d (alive: %s), log tail:" % (s.port, s.alive()))
            lines.append("  " + s.log_tail(20).replace("\n", "\n  "))
        lines.append("%d passed, 1 failed" % self.passed)
        if os.environ.get("WEFT_KEEP_TMP"):
            lines.append("temporary files kept in " + self.tmp)
        print("\n".join(lines), flush=True)
        _kill_all()
        sys.exit(1)

    def done(self):
        """Stops the servers still running (SIGTERM must end them with
        status 0: a clean shutdown, and under ASan no leak), looks for
        sanitizer reports in every log, prints the summary and exits 0."""
        for s in self.servers:
            if s.alive():
                try:
                    rc = s.stop()
                except Failure as e:
                    self.fail(str(e))
                self.check(rc == 0, "weft serve on port %d exits 0 on SIGTERM" % s.port,
                           "exit status: %r" % rc)
        _kill_all()
        for name in sorted(os.listdir(self.tmp)):
            if not (name.endswith(".log") or name.endswith(".err")):
                continue
            with open(os.path.join(self.tmp, name), "rb") as f:
                text = f.read().decode("utf-8", "replace")
            bad = [m for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                               "runtime error:", "WARNING: ThreadSanitizer")
                   if m in text]
            self.check(not bad, "no sanitizer report in %s" % name, text[-3000:])
        self.info("%s finished in %.1f s" % (self.name, time.monotonic() - self.started))
        print("%d passed, 0 failed" % self.passed, flush=True)
        sys.exit(0)

    def _cleanup(self):
        _kill_all()
        if os.environ.get("WEFT_KEEP_TMP"):
            return
        shutil.rmtree(self.tmp, ignore_errors=True)
