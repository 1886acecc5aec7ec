"""multiproc_phases: where a durable one-put commit's time goes when writers in several processes take turns.

    python bench/multiproc_phases.py [--procs 1,4] [--seconds 1.5] [--dir DIR] [--nosync]

The workload of bench/multiproc.py (each process makes durable one-put commits under keys of
its own, all starting together), each process timing, per commit, the wall and thread CPU
time of:

- ``acquire``: the store's write lock taken (``WriteLock.try_acquire``): the wait in line,
  its ``nap``s (``Pager.await_turn``: asleep on the *turns* futex; ``timed out``: naps that
  ran their whole 1-3 ms, no release woke them in time) and ``try_lock``s, and the turn's
  ``begin_write`` (the catch-up with the others' commits), split into ``log`` (``WAL.catch_up``: the others' frames taken from the shared index) and
  ``follow`` (``Pager._follow``: the header decoded, the pages held brought up to date or
  dropped, and ``caches``: ``Store._changed``, the tree's nodes and the free-space map);
- ``hold``: LOCK_WRITE held, from ``begin_write`` to ``end_write`` (the catch-up, the put,
  the commit's log write and publication): the turn the others wait for; ``put``
  (``Store._put``: the tree and the heap), ``commit`` (``Pager.commit``: the log write and
  the publication, the sync deferred), ``release`` (``Pager.end_write``: LOCK_WRITE let go
  and the next writer woken);
- ``sync``: the commit's sync after the locks are let go (``WAL.sync``), split into its
  ``fdatasync``, the ``wait_slot``s (step 5 of ``WAL._sync_round``: the syncs of other
  processes busy when this one's returned), ``lock_sync`` (LOCK_SYNC) and ``ride``.

With writers taking turns, commits/s can be no more than 1 / (hold + handoff), where the
handoff is the time from a release to the next holder's ``begin_write`` (a wake-up and a
place on a core): 1/commits-per-second less ``hold``, when the line is never empty. With
``--dir /dev/shm`` (syncs that cost nothing) this is the CPU-bound regime of a fast disk,
the one where the ratio of 4 processes to 1 falls lowest.

The timings wrap the methods named, monkeypatched in the child processes only (about a
microsecond a call); every figure is per commit. Speed is noise on a shared machine: the
load average is printed beside each run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402
from pagestore import fileio, locks, shm, store, wal  # noqa: E402
from pagestore.pager import Pager  # noqa: E402

VALUE = b"v" * 100
PARTS = ("acquire", "nap", "try_lock", "begin_write", "log", "follow", "caches", "hold", "put", "commit", "release",
         "sync", "fdatasync", "wait_slot", "lock_sync", "ride")


def _wrap(owner: Any, name: str, into: List[float]) -> None:
    """_wrap adds each call's wall time, thread CPU time and one call to ``into``."""
    real: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        w, c = time.perf_counter(), time.thread_time()
        try:
            return real(*args, **kwargs)
        finally:
            into[0] += time.perf_counter() - w
            into[1] += time.thread_time() - c
            into[2] += 1

    setattr(owner, name, timed)


def child(path: str, name: str, start_at: float, seconds: float, sync: bool) -> None:
    """child: one process's commits from ``start_at`` for ``seconds``; prints its figures."""
    st: Dict[str, List[float]] = {k: [0.0, 0.0, 0] for k in PARTS}
    _wrap(locks.WriteLock, "try_acquire", st["acquire"])
    _wrap(Pager, "begin_write", st["begin_write"])
    _wrap(Pager, "try_lock_write", st["try_lock"])
    _wrap(wal.WAL, "catch_up", st["log"])
    _wrap(Pager, "_follow", st["follow"])
    _wrap(store.Store, "_changed", st["caches"])
    _wrap(store.Store, "_put", st["put"])
    _wrap(Pager, "commit", st["commit"])
    _wrap(Pager, "end_write", st["release"])
    _wrap(wal.WAL, "sync", st["sync"])
    _wrap(wal.WAL, "_ride", st["ride"])
    _wrap(fileio.File, "sync", st["fdatasync"])
    _wrap(shm.SharedIndex, "wait_slot", st["wait_slot"])
    _wrap(shm.SharedIndex, "lock_sync", st["lock_sync"])
    hold = st["hold"]
    began: List[Optional[float]] = [None, None, None]  # wall, thread CPU, thread
    begin, end = Pager.begin_write, Pager.end_write

    def begin_write(self: Pager) -> None:
        began[:] = [time.perf_counter(), time.thread_time(), threading.get_ident()]
        begin(self)

    def end_write(self: Pager) -> None:
        w, c, thread = began
        if w is not None and c is not None:
            hold[0] += time.perf_counter() - w
            # Given up by another thread (the watcher's, a kept turn's): its CPU is not the turn's.
            hold[1] += time.thread_time() - c if thread == threading.get_ident() else 0.0
            hold[2] += 1
            began[:] = [None, None, None]
        end(self)

    Pager.begin_write, Pager.end_write = begin_write, end_write  # type: ignore[method-assign]
    naps = st["nap"]
    timed_out = [0]
    await_turn = Pager.await_turn

    def nap(self: Pager, seen: int, secs: float) -> None:
        w, c = time.perf_counter(), time.thread_time()
        await_turn(self, seen, secs)
        took = time.perf_counter() - w
        naps[0] += took
        naps[1] += time.thread_time() - c
        naps[2] += 1
        timed_out[0] += took >= 0.95 * secs

    Pager.await_turn = nap  # type: ignore[method-assign]
    # Opened once every method is wrapped: the store keeps some of them bound (``on_change``).
    db = pagestore.open(path, timeout=60, sync=sync)
    time.sleep(max(0.0, start_at - time.time()))
    for v in st.values():
        v[:] = [0.0, 0.0, 0]
    timed_out[0] = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stop = time.monotonic() + seconds
    n = 0
    prefix = name.encode() + b"/"
    while time.monotonic() < stop:
        db[prefix + b"%09d" % n] = VALUE
        n += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    db.close()
    n = max(n, 1)
    parts = "  ".join(f"{k} {v[2] / n:.2f}x {v[0] / n * 1e6:.0f}/{v[1] / n * 1e6:.0f}" for k, v in st.items() if v[2])
    print(f"COUNT {n} commit {wall / n * 1e6:.0f}/{cpu / n * 1e6:.0f}  {parts}  naps timed out {timed_out[0] / n:.2f}x",
          flush=True)


def run(procs: int, seconds: float, where: str, sync: bool) -> None:
    """run: ``procs`` processes on one fresh store; prints each one's line and the total."""
    path = os.path.join(where, f"s{procs}")
    pagestore.open(path).close()
    start_at = time.time() + 1.0 + 0.3 * procs
    kids = [subprocess.Popen([sys.executable, __file__, "--role", path, f"p{i}", repr(start_at), repr(seconds),
                              str(int(sync))], stdout=subprocess.PIPE, text=True) for i in range(procs)]
    total = 0
    for k in kids:
        out = k.communicate(timeout=seconds + 120)[0]
        if k.returncode != 0 or "COUNT" not in out:
            raise SystemExit(f"child failed ({k.returncode}): {out}")
        line = out.strip().splitlines()[-1]
        print("  " + line.replace("COUNT ", "commits "), flush=True)
        total += int(line.split()[1])
    print(f"{procs} process{'es' if procs > 1 else ''}: {total / seconds:.0f} commits/s, "
          f"{seconds / total * 1e6:.0f} us a commit in all (load {os.getloadavg()[0]:.2f})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--procs", default="1,4")
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--dir", help="where the stores go (/dev/shm: syncs that cost nothing)")
    ap.add_argument("--nosync", action="store_true", help="commits with sync=False")
    ap.add_argument("--role", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        path, name, start, seconds, sync = args.role
        child(path, name, float(start), float(seconds), sync == "1")
        return
    print("per commit: wall/CPU microseconds; Nx: calls a commit", flush=True)
    where = tempfile.mkdtemp(prefix="multiproc-phases-", dir=args.dir)
    try:
        for procs in (int(p) for p in args.procs.split(",")):
            run(procs, args.seconds, where, not args.nosync)
    finally:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
