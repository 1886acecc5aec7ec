"""write_profile: where the write path's time goes, and how many pages and log bytes a commit costs.

    python bench/write_profile.py durable [--records 50000] [--puts 1500]
    python bench/write_profile.py insert  [--records 50000] [--batch 1000]

``durable``: loads ``--records`` random records (mixed sizes as in ``pagestore
bench``, 1,000 per transaction, not synced), reopens with sync=True and times
``--puts`` single-put durable commits, split into: the put itself (descent,
page reads, heap and leaf changes), the tree and heap flush, frame building
(stamping, CRC32C, frame headers), the log write, the log sync, and the
checkpoint (its data-file writes, data-file sync, and the log reset). Also
the sync time by how far the log's end is from its start, and page reads
from disk per commit.

``insert``: inserts ``--records`` random records in durable transactions of
``--batch`` and reports per commit: dirty pages, log bytes, and the share of
time spent in checkpoints; and bytes written (log + data file) per byte
inserted. It splits each record's time into the apply (everything outside
``Pager.commit``: the overlay, the tree, the heap, in Python) and the commit.
With ``--lmdb`` it then inserts the same records into LMDB the same way, in
the same run, as the yardstick for issue 12's inserts target: a Python apply
alone slower than LMDB's whole insert puts 1.0x out of reach of commit work.

Timings wrap the methods named (monkeypatched in this process only);
the wrappers add about a microsecond per call.
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
from typing import Any, Callable, DefaultDict, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402
from pagestore import btree as btree_mod  # noqa: E402
from pagestore import fileio  # noqa: E402
from pagestore import heap as heap_mod  # noqa: E402
from pagestore import pager as pager_mod  # noqa: E402
from pagestore import wal as wal_mod  # noqa: E402

T: DefaultDict[str, float] = defaultdict(float)
N: DefaultDict[str, int] = defaultdict(int)
B: DefaultDict[str, int] = defaultdict(int)


def timed(cls: Any, name: str, label: str, classify: Callable[..., str] = lambda *a: "") -> None:
    fn = getattr(cls, name)

    def wrapper(*a: Any, **k: Any) -> Any:
        key = label + classify(*a)
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            T[key] += time.perf_counter() - t
            N[key] += 1

    setattr(cls, name, wrapper)


def _which(f: Any, *rest: Any) -> str:
    return ".log" if f.path.endswith("-wal") else ".data"


def instrument() -> None:
    timed(fileio.File, "sync", "sync", _which)
    timed(fileio.File, "read", "read", _which)
    timed(fileio.File, "read_into", "read", _which)
    orig_write = fileio.File.write

    def write(f: Any, offset: int, data: Any) -> None:
        key = "write" + _which(f)
        t = time.perf_counter()
        try:
            orig_write(f, offset, data)
        finally:
            T[key] += time.perf_counter() - t
            N[key] += 1
            B[key] += len(data)

    fileio.File.write = write  # type: ignore[method-assign]
    timed(pager_mod.Pager, "commit", "commit")
    timed(pager_mod.Pager, "checkpoint", "checkpoint")
    timed(wal_mod.WAL, "append_many", "append_many")
    timed(wal_mod.WAL, "reset", "wal.reset")
    timed(btree_mod.BTree, "flush", "tree.flush")
    timed(heap_mod.Heap, "flush", "heap.flush")
    orig_commit = pager_mod.Pager.commit

    def commit(self: Any, *a: Any, **k: Any) -> bool:
        N["dirty_pages"] += len(self.dirty)
        return orig_commit(self, *a, **k)

    pager_mod.Pager.commit = commit  # type: ignore[method-assign]


def value_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.80:
        return rng.randint(1, 200)
    if r < 0.95:
        return rng.randint(201, 2000)
    return rng.randint(4096, 20480)


def load(path: str, n: int, rng: random.Random, batch: int = 1000, sync: bool = False) -> float:
    db = pagestore.open(path, sync=sync)
    t0 = time.perf_counter()
    for b in range(0, n, batch):
        with db.transaction() as txn:
            for _ in range(min(batch, n - b)):
                txn[rng.randbytes(rng.randint(8, 40))] = rng.randbytes(value_size(rng))
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed


def report(wall: float, ops: int, unit: str) -> None:
    print(f"  {'part':24s} {'seconds':>8s} {'share':>6s} {'us/' + unit:>10s} {'calls':>8s}")
    for k, v in sorted(T.items(), key=lambda kv: -kv[1]):
        print(f"  {k:24s} {v:8.3f} {v / wall * 100:5.1f}% {v / ops * 1e6:10.1f} {N[k]:8d}")
    for k, v in sorted(B.items()):
        print(f"  bytes {k:18s} {v / ops:10.0f} per {unit}")


def durable(args: argparse.Namespace) -> None:
    d = tempfile.mkdtemp(dir=args.dir)
    try:
        path = os.path.join(d, "s.ps")
        rng = random.Random(0)
        load(path, args.records, rng)
        instrument()
        db = pagestore.open(path, sync=True)
        wal = db._pager.wal
        orig_sync = wal_mod.WAL.sync
        by_pos: DefaultDict[int, List[float]] = defaultdict(list)

        def sync(self: Any) -> None:
            t = time.perf_counter()
            orig_sync(self)
            by_pos[self.end // (1 << 20)].append(time.perf_counter() - t)

        wal_mod.WAL.sync = sync  # type: ignore[method-assign]
        T.clear(), N.clear(), B.clear()
        items = [(rng.randbytes(16), rng.randbytes(rng.randint(1, 200))) for _ in range(args.puts)]
        t0 = time.perf_counter()
        for k, v in items:
            db[k] = v
        wall = time.perf_counter() - t0
        print(f"durable one-put commits on a store of {args.records} records: {args.puts / wall:.0f} commits/s "
              f"({wall / args.puts * 1e6:.0f} us each); dirty pages per commit {N['dirty_pages'] / args.puts:.2f}; "
              f"log {wal.end} B in use, threshold {db._pager.checkpoint_threshold()} B")
        report(wall, args.puts, "commit")
        print("  log sync time by the log's end (MiB from its start):")
        for mib in sorted(by_pos):
            s = by_pos[mib]
            print(f"    {mib:3d} MiB: {len(s):5d} syncs, mean {sum(s) / len(s) * 1e6:7.1f} us")
        db.close()
    finally:
        shutil.rmtree(d)


def insert(args: argparse.Namespace) -> None:
    d = tempfile.mkdtemp(dir=args.dir)
    try:
        path = os.path.join(d, "s.ps")
        rng = random.Random(0)
        instrument()
        T.clear(), N.clear(), B.clear()
        inserted = 0
        db = pagestore.open(path, sync=True)
        t0 = time.perf_counter()
        for b in range(0, args.records, args.batch):
            with db.transaction() as txn:
                for _ in range(min(args.batch, args.records - b)):
                    k, v = rng.randbytes(rng.randint(8, 40)), rng.randbytes(value_size(rng))
                    inserted += len(k) + len(v)
                    txn[k] = v
        wall = time.perf_counter() - t0
        commits = N["commit"]
        records = args.records
        print(f"insert {args.records} records, {args.batch} per durable transaction: {args.records / wall:.0f} records/s; "
              f"{N['dirty_pages'] / commits:.0f} dirty pages and {B['write.log'] / commits / 2**20:.2f} MiB of log per commit; "
              f"checkpoints {T['checkpoint'] / wall * 100:.0f}% of the time")
        written = B["write.log"] + B["write.data"]
        print(f"  bytes written per byte inserted: {written / inserted:.2f} "
              f"(log {B['write.log'] / inserted:.2f}, data file {B['write.data'] / inserted:.2f})")
        report(wall, args.records, "record")
        apply_us = (wall - T["commit"]) / records * 1e6
        print(f"  apply (outside Pager.commit) {apply_us:.1f} us/record, commit {T['commit'] / records * 1e6:.1f}, "
              f"whole {wall / records * 1e6:.1f}")
        db.close()
        if args.lmdb:
            lmdb_us = lmdb_insert(d, args)
            print(f"  lmdb, same records, {args.batch} per durable transaction: {lmdb_us:.1f} us/record "
                  f"({1e6 / lmdb_us:.0f} records/s); pagestore's apply alone is {apply_us / lmdb_us:.2f}x it, "
                  f"its whole insert {wall / records * 1e6 / lmdb_us:.2f}x")
    finally:
        shutil.rmtree(d)


def lmdb_insert(d: str, args: argparse.Namespace) -> float:
    """lmdb_insert: microseconds per record for the insert phase's records (same seed) in LMDB."""
    import lmdb  # the bench extra

    rng = random.Random(0)
    env = lmdb.open(os.path.join(d, "lmdb"), map_size=1 << 36, sync=True, metasync=True, writemap=False)
    t0 = time.perf_counter()
    for b in range(0, args.records, args.batch):
        with env.begin(write=True) as txn:
            for _ in range(min(args.batch, args.records - b)):
                txn.put(rng.randbytes(rng.randint(8, 40)), rng.randbytes(value_size(rng)))
    elapsed = time.perf_counter() - t0
    env.close()
    return elapsed / args.records * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["durable", "insert"])
    ap.add_argument("--records", type=int, default=50000)
    ap.add_argument("--puts", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--dir", default=os.environ.get("DIR", "."))
    ap.add_argument("--lmdb", action="store_true", help="insert: the same records into LMDB too, same run")
    args = ap.parse_args()
    (durable if args.mode == "durable" else insert)(args)


if __name__ == "__main__":
    main()
