"""The crash tests' child process: one harness for every test that kills a writer.

``Child(argv, errlog)`` runs ``python argv...`` (a script of tests/ and its arguments) with
this checkout on its path, its stderr to ``errlog``, and a thread that collects its complete
stdout lines (a line cut short by the kill does not count). The child prints ``START ...``
once it is running and ``ACK ...`` after each acknowledged write; the parent waits on
``started``, kills it at a moment of its choosing, and reads what was acknowledged.

Users: tests/test_crash.py (crash_writer.py), tests/crash_campaign.py (its writer and reader
roles), tests/test_crash_write_path.py (crash_write_path.py).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


class Child:
    """Child is one child process of a crash test; a thread collects its stdout lines."""

    def __init__(self, argv: List[str], errlog: str) -> None:
        """``argv``: the script (a path, or a name in tests/) and its arguments."""
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.errlog = errlog
        self.err = open(errlog, "wb")
        script = argv[0] if os.path.isabs(argv[0]) else os.path.join(HERE, argv[0])
        self.proc = subprocess.Popen([sys.executable, script, *argv[1:]], stdout=subprocess.PIPE, stderr=self.err, env=env)
        self.lines: List[str] = []
        self.started = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if raw.endswith(b"\n"):  # a line cut short by the kill does not count
                line = raw.decode().strip()
                self.lines.append(line)
                if line.startswith("START"):
                    self.started.set()
        self.started.set()

    def kill(self) -> int:
        """kill sends SIGKILL, waits for the process and its output; returns its exit status."""
        self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(30)
        self.reader.join(30)
        self.err.close()
        return rc

    def kill_expecting_sigkill(self, what: str) -> None:
        """kill_expecting_sigkill kills it, and fails (with its stderr) if it had exited by itself."""
        rc = self.kill()
        if rc != -signal.SIGKILL:
            with open(self.errlog, "rb") as f:
                raise AssertionError(f"{what} exited by itself (rc {rc}):\n{f.read().decode(errors='replace')}")

    def start_fields(self) -> List[int]:
        """start_fields: the numbers of the ``START`` line."""
        return [int(x) for x in next(line for line in self.lines if line.startswith("START")).split()[1:]]

    def start_txn(self) -> int:
        return self.start_fields()[0]

    def acks(self) -> List[List[int]]:
        """acks: the numbers of every ``ACK`` line, in order."""
        return [[int(x) for x in line.split()[1:]] for line in self.lines if line.startswith("ACK")]

    def last_ack(self, default: int) -> int:
        acks = self.acks()
        return acks[-1][0] if acks else default

    def compactions(self) -> int:
        return sum(1 for x in self.lines if x.startswith("COMPACTED"))
