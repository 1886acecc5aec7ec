"""commit_floor: the CPU of one durable one-put commit, split into its parts (issue 23).

    python bench/commit_floor.py [--records 20000] [--puts 3000] [--real-sync]

Loads ``--records`` records, reopens with sync=True and times ``--puts``
single durable puts. By default the log's ``fdatasync`` is replaced with a
no-op (in this process only), so what is left is the commit's CPU: the
figure issue 23's floor study compares (7.5-11.3 us; sqlite3 15.2, LMDB 5.9).
First the whole put's CPU (``time.thread_time``) without any wrapper, then a
second pass with wrappers timing the thread's CPU (``time.thread_time``) that splits it into:

    put      Store._put (the get, the heap insert, the leaf insert)
    flush    BTree.flush + Heap.flush (nodes encoded; the free-space map's flush)
    frames   WAL._append (frame headers, deltas, CRC32C, the write call)
    publish  Pager._publish (the shared index's header)
    sync     WAL.sync (a no-op call unless --real-sync)
    commit   the rest of Pager.commit (stamping, header encode, bookkeeping)
    queue    the rest: the commit queue, the locks, Store._write around the parts above

The wrappers cost about a microsecond each; the unwrapped figure is the one to quote.
With ``--calls``, a last pass counts the function calls (Python functions and C builtins,
cProfile's count) per put, by module: a figure the machine's load does not move, for
comparing two trees when CPU times are noise (another ``--puts`` of puts, unwrapped).
bench/commit_min.py builds the same commit lean (same formats, same sync rules): the
floor this path's overhead is measured against.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any, DefaultDict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402
from pagestore import btree, fileio, heap, pager, store, wal  # noqa: E402

T: DefaultDict[str, float] = defaultdict(float)


def wrap(cls: Any, name: str, label: str) -> None:
    fn = getattr(cls, name)
    clock = time.thread_time

    def wrapper(*a: Any, **k: Any) -> Any:
        t = clock()
        try:
            return fn(*a, **k)
        finally:
            T[label] += clock() - t

    setattr(cls, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--puts", type=int, default=3000)
    ap.add_argument("--real-sync", action="store_true", help="keep the log's fdatasync (wall time then includes the disk)")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--calls", action="store_true", help="also count the function calls per put, by module")
    args = ap.parse_args()
    if not args.real_sync:
        fileio.File.sync = lambda self: None  # type: ignore[method-assign]
    d = tempfile.mkdtemp(dir=args.dir)
    try:
        path = os.path.join(d, "s.ps")
        rng = random.Random(0)
        db = pagestore.open(path, sync=False)
        for b in range(0, args.records, 1000):
            with db.transaction() as txn:
                for _ in range(min(1000, args.records - b)):
                    txn[rng.randbytes(rng.randint(8, 40))] = rng.randbytes(rng.randint(1, 200))
        db.close()
        db = pagestore.open(path, sync=True)
        n = args.puts
        items = [(rng.randbytes(16), rng.randbytes(rng.randint(1, 200))) for _ in range(4 * n)]
        for k, v in items[:n]:  # warm the caches and the log
            db[k] = v
        c0, w0 = time.thread_time(), time.perf_counter()
        for k, v in items[n : 2 * n]:
            db[k] = v
        cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
        print(f"durable one-put commits ({'real' if args.real_sync else 'no-op'} sync), store of {args.records} records: "
              f"CPU {cpu / n * 1e6:.1f} us/put, wall {wall / n * 1e6:.1f} us/put")
        if args.calls:
            count_calls(db, items[3 * n :])
        wrap(store.Store, "_put", "put")
        wrap(btree.BTree, "flush", "flush")
        wrap(heap.Heap, "flush", "flush")
        wrap(wal.WAL, "_append", "frames")
        wrap(pager.Pager, "_publish", "publish")
        wrap(wal.WAL, "sync", "sync")
        wrap(pager.Pager, "commit", "commit")
        T.clear()
        w0 = time.thread_time()
        for k, v in items[2 * n :]:
            db[k] = v
        total = time.thread_time() - w0
        # A lone put's sync runs after Pager.commit (deferred: group.py ``_direct``), not inside it;
        # and the queue calls Store._write through a partial made at open, which no wrapper sees.
        inner = {"commit": T["commit"] - T["frames"] - T["publish"],
                 "queue": total - T["put"] - T["flush"] - T["commit"] - T["sync"]}
        parts = {k: T[k] for k in ("put", "flush", "frames", "publish", "sync")}
        parts.update(inner)
        print(f"  breakdown (wrapped, thread CPU time; total {total / n * 1e6:.1f} us/put):")
        for k, v in parts.items():
            print(f"    {k:8s} {v / n * 1e6:7.1f} us")
        db.close()
    finally:
        shutil.rmtree(d)


def count_calls(db: Any, items: Any) -> None:
    """count_calls prints the calls per put of ``db[k] = v`` over ``items``, by module (cProfile).
    Run before the breakdown's wrappers go in."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for k, v in items:
        db[k] = v
    prof.disable()
    by: DefaultDict[str, int] = defaultdict(int)
    n = len(items)
    for (path, _, name), row in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        calls = row[1]
        if path == "~":
            by["(C builtins)"] += calls
        else:
            by[os.path.basename(path)] += calls
    total = sum(by.values())
    print(f"  calls per put: {total / n:.1f}, by module:")
    for mod, calls in sorted(by.items(), key=lambda kv: -kv[1]):
        if calls >= n // 2:
            print(f"    {mod:24s} {calls / n:6.1f}")


if __name__ == "__main__":
    main()
