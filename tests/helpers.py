"""Shared test constants and helpers, defined once for every test module.

``SMALL``: the small-page store options (512-byte pages force splits, overflow chains and
compaction often; a cache of 32 pages forces eviction). Modules that need more add to it
(``dict(SMALL, wal_limit=...)``).

``HYPOTHESIS``: the hypothesis settings the property and stateful tests share (no deadline: a
loaded machine makes timings noise; the health checks that only say "slow" or "big" are off).

``fill``: writes ``n`` numbered records, in one transaction or one commit each.

``FAST`` and ``outcome``: the C core's fast binding (None off CPython, where it is not built) and
what a call gave, for comparing the two bindings call by call.
"""
from __future__ import annotations

import importlib
import platform
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, MutableMapping, Optional, Tuple

from hypothesis import HealthCheck

from pagestore.errors import CorruptionError

# On CPython the package builds _fastpage (setup.py): its absence there is a failure, not a skip.
FAST: Optional[ModuleType] = (importlib.import_module("pagestore._fastpage")
                              if platform.python_implementation() == "CPython" else None)
if FAST is not None:
    # With PAGESTORE_NATIVE=cffi the package never loads _fastpage (``_native._load_fast``), so
    # nothing gave it the callable that raises for a status: the tests comparing the two
    # bindings call it directly, and every error came back as "init() not called". Given here
    # (the same callable the package gives it: idempotent), they compare in that mode too.
    from pagestore import _native as _nat

    FAST.init(_nat.raise_for)


def outcome(fn: Callable[..., Any], *args: Any) -> Tuple[Any, ...]:
    """outcome: what a call gave: its answer, or the error's kind (and, for corruption, the page it names)."""
    try:
        return ("ok", fn(*args))
    except CorruptionError as e:
        return ("corrupt", e.pgno)
    except Exception as e:  # noqa: BLE001 - the kind is what is compared
        return (type(e).__name__,)

SMALL: Dict[str, Any] = dict(page_size=512, cache_size=512 * 32)

HYPOTHESIS: Dict[str, Any] = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def fill(
    db: Any,
    n: int,
    value: Callable[[int], bytes],
    *,
    key: bytes = b"k%05d",
    start: int = 0,
    model: Optional[MutableMapping[bytes, bytes]] = None,
    one_commit: bool = True,
) -> None:
    """fill writes keys ``key % i`` for i in [start, start + n) with values ``value(i)``: in one
    transaction (``one_commit``) or a commit each; ``model`` gets every record written."""
    def write(target: Any) -> None:
        for i in range(start, start + n):
            k, v = key % i, value(i)
            target[k] = v
            if model is not None:
                model[k] = v

    if one_commit:
        with db.transaction() as txn:
            write(txn)
    else:
        write(db)


# ---- the one seam white-box tests use to reach the layers under a Store ----
# Tests of the pager, the tree or the heap as a store drives them (tests/test_readpath.py)
# go through these, not the Store's private names, so a reshaped Store changes them here.


def pager_of(db: Any) -> Any:
    """pager_of: the Pager under a Store."""
    return db._pager


def tree_of(db: Any) -> Any:
    """tree_of: the BTree under a Store (as of its last operation)."""
    return db._tree


def heap_of(db: Any) -> Any:
    """heap_of: the Heap under a Store (as of its last operation)."""
    return db._heap


@contextmanager
def operation(db: Any, *, begin: bool = True) -> Iterator[Any]:
    """operation holds the Store's operation lock (other threads wait) and, with ``begin``, starts a
    pager operation as a store call does (a reader: on the latest commit); yields the pager."""
    with db._lock:
        yield db._begin() if begin else db._pager


def write_as_store(db: Any, fn: Callable[[], Any]) -> Any:
    """write_as_store runs ``fn`` as one store write (commit, or roll back on error), under the lock."""
    with db._lock:
        return db._write(fn)


def block_then_fail_log_sync(monkeypatch: Any) -> Tuple[Any, Any, Dict[str, Any]]:
    """block_then_fail_log_sync makes the next log sync of a faultfs store, once ``armed["on"]`` is
    set, block until ``release`` is set and then fail as Linux does (the dirty pages dropped,
    EIO); ``in_sync`` is set while it blocks, and ``armed["log_writes_while_blocked"]`` counts
    the log writes made meanwhile (another group's or transaction's frames); ``armed["restore"]()``
    puts the real sync and write back. Returns ``(in_sync, release, armed)``. Callers: test_group_sync.py, test_txn_sync.py."""
    import errno
    import threading

    import faultfs

    real_sync = faultfs.FaultFile.sync
    real_write = faultfs.FaultFile.write
    in_sync, release = threading.Event(), threading.Event()
    armed: Dict[str, Any] = {"on": False, "log_writes_while_blocked": 0}

    def blocking_sync(self: faultfs.FaultFile) -> None:
        if armed["on"] and self.path.endswith("-wal"):
            armed["on"] = False
            in_sync.set()
            assert release.wait(10)
            self.fail_sync()  # what Linux does on a failed fsync (errseq: the other handles are told too)
            raise OSError(errno.EIO, "injected sync failure")
        real_sync(self)

    def watching_write(self: faultfs.FaultFile, offset: int, data: Any) -> None:
        if in_sync.is_set() and not release.is_set() and self.path.endswith("-wal"):
            armed["log_writes_while_blocked"] += 1
        real_write(self, offset, data)

    def restore() -> None:
        monkeypatch.setattr(faultfs.FaultFile, "sync", real_sync)
        monkeypatch.setattr(faultfs.FaultFile, "write", real_write)

    monkeypatch.setattr(faultfs.FaultFile, "sync", blocking_sync)
    monkeypatch.setattr(faultfs.FaultFile, "write", watching_write)
    armed["restore"] = restore
    return in_sync, release, armed


class Interrupted:
    """Interrupted: what one call under ``interrupt_at`` did: ``points`` (how many points of
    ``files`` it reached), ``where`` (where each interrupt landed) and ``completed`` (whether the
    call returned)."""

    def __init__(self) -> None:
        self.points = 0
        self.where: list = []
        self.completed = False


def interrupt_at(fn: Callable[[], Any], n: int, gap: int, files: Tuple[str, ...],
                 second_in: Optional[str] = None) -> Interrupted:
    """interrupt_at calls ``fn`` with a KeyboardInterrupt raised at its ``n``-th point in code of
    ``files`` (base names) where CPython 3.11 runs a SIGINT's handler: a Python function's start,
    the return of a call into C (the C call's work done). With ``gap`` k > 0, a second one lands at
    the start of the k-th Python function called after the first (inside the ``except`` or
    ``finally`` the first started); with ``second_in`` (a path prefix), only functions under it
    count. A KeyboardInterrupt out of ``fn`` is swallowed; any other error propagates.

    The first interrupt is raised by a profile function (``sys.setprofile``), the second by a trace
    function (``sys.settrace``): CPython unsets each after it raised, not the other. Both are unset
    in this frame's ``finally`` (C calls, no Python call for the trace to count)."""
    import os
    import sys

    out = Interrupted()
    after = [-1]  # Python calls since the first interrupt (-1: not yet)

    def prof(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_return") and os.path.basename(frame.f_code.co_filename) in files:
            out.points += 1
            if out.points == n:
                out.where.append(f"{event} {os.path.basename(frame.f_code.co_filename)}:"
                                 f"{frame.f_code.co_name}:{frame.f_lineno}")
                after[0] = 0
                raise KeyboardInterrupt(out.where[0])

    def trace(frame: Any, event: str, arg: Any) -> None:
        if (event == "call" and after[0] >= 0 and gap
                and (second_in is None or frame.f_code.co_filename.startswith(second_in))):
            after[0] += 1
            if after[0] == gap:
                out.where.append(f"then {frame.f_code.co_name}:{frame.f_lineno}")
                raise KeyboardInterrupt(out.where[-1])
        return None

    sys.setprofile(prof)
    sys.settrace(trace)
    try:
        fn()
        out.completed = True
    except KeyboardInterrupt:
        pass
    finally:
        sys.setprofile(None)
        sys.settrace(None)
    return out
