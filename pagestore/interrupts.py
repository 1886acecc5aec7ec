"""interrupts: cleanup that a Ctrl-C does not cut short.

CPython runs a signal's Python handler (for SIGINT: raise KeyboardInterrupt) in the main thread
between bytecodes: at a function's start, after a call returns, at a loop's jump back. So a
KeyboardInterrupt can land inside any cleanup written in Python, also in an ``except`` clause or
a ``finally`` block, and leave it half done: a lock held, an undo half made, a commit half
published. ``run_through`` runs such a step again, from its start, each time an interrupt cuts
it, until it ends; the caller raises the interrupt afterwards. The step must be idempotent (run
twice, or once half and then whole, it leaves what it leaves run once).

What no Python code can cover: an interrupt at the very start of ``run_through`` itself (before
its ``try``), or at the jump back of its loop after one interrupt was caught (a second signal
within a few bytecodes of the first). Each such window is a handful of bytecodes wide.
"""
from __future__ import annotations

from typing import Callable, Optional


def run_through(step: Callable[[], object]) -> Optional[BaseException]:
    """run_through calls ``step`` until it returns without a KeyboardInterrupt; returns the first
    interrupt that cut it (None if none did), for the caller to raise once its cleanup is done.
    Other exceptions go on up at once. ``step`` must be idempotent (see the module docstring).
    Callers: cleanup paths of the write path (store.py, group.py, pager.py, wal.py)."""
    interrupted: Optional[BaseException] = None
    while True:
        try:
            step()
            return interrupted
        except KeyboardInterrupt as exc:
            if interrupted is None:
                interrupted = exc
