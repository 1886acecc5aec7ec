"""group_commit: durable one-put commits from 1 and from N threads on one Store, same run.

    python bench/group_commit.py [--records 20000] [--puts 1500] [--threads 8] [--rounds 2]

Loads ``--records`` records (1,000 per transaction), then alternates, for
``--rounds`` rounds: ``--puts`` durable single puts from one thread, and
``--puts`` from ``--threads`` threads (each its share). Issues 12 and 23 ask for the
N-thread total at or above 3x the single-thread rate in the same run. Also
prints how many commits (log syncs) the threaded puts took, when the store
counts them.

Then the same for small transactions (``--txns`` of them, each reading a
counter and writing it back plus one new record, durably): one thread, then
``--threads`` threads. Write transactions run one at a time (issue 21), so
the bar is that N threads are no slower than one running the same
transactions; the counter must end at exactly the number of transactions.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from typing import List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402
from pagestore import fileio  # noqa: E402

#: fdatasync calls on a log file (counted by wrapping File.sync in this process only)
LOG_SYNCS = [0]
_real_sync = fileio.File.sync


def _counting_sync(self: fileio.File) -> None:
    if self.path.endswith("-wal"):
        LOG_SYNCS[0] += 1
    _real_sync(self)


fileio.File.sync = _counting_sync  # type: ignore[method-assign]


def puts(db: "pagestore.Store", items: List[Tuple[bytes, bytes]], threads: int) -> Tuple[float, float]:
    """puts writes ``items`` as durable single puts from ``threads`` threads; returns commits/s and
    the process's CPU per put in us (``process_time``: trustworthy under load, unlike the rate)."""
    shares = [items[t::threads] for t in range(threads)]
    errors: List[BaseException] = []

    def worker(share: List[Tuple[bytes, bytes]]) -> None:
        try:
            for k, v in share:
                db[k] = v
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(s,)) for s in shares]
    c0, t0 = time.process_time(), time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if errors:
        raise errors[0]
    return len(items) / elapsed, cpu / len(items) * 1e6


def transactions(db: "pagestore.Store", n: int, threads: int, rng_seed: int) -> Tuple[float, int]:
    """transactions runs ``n`` small read-modify-write transactions from ``threads`` threads; returns them
    per second and how many of their counter increments were lost (0 when transactions are serialized)."""
    errors: List[BaseException] = []
    before = int(db.get(b"counter", b"0"))

    def worker(count: int, seed: int) -> None:
        import random as _random

        r = _random.Random(seed)
        try:
            for _ in range(count):
                with db.transaction() as t:
                    t[b"counter"] = b"%d" % (int(t.get(b"counter", b"0")) + 1)
                    t[r.randbytes(16)] = r.randbytes(r.randint(1, 200))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(n // threads + (t < n % threads), rng_seed + t)) for t in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return n / elapsed, n - (int(db[b"counter"]) - before)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--puts", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--txns", type=int, default=1000)
    ap.add_argument("--dir", default=os.environ.get("DIR", "."))
    args = ap.parse_args()
    rng = random.Random(0)
    d = tempfile.mkdtemp(dir=args.dir)
    try:
        db = pagestore.open(os.path.join(d, "s"), sync=True)
        for b in range(0, args.records, 1000):
            with db.transaction() as txn:
                for _ in range(min(1000, args.records - b)):
                    txn[rng.randbytes(rng.randint(8, 40))] = rng.randbytes(rng.randint(1, 200))
        print(f"durable one-put commits on a store of {args.records} records, {args.puts} per measurement")
        for r in range(args.rounds):
            one, cpu1 = puts(db, [(rng.randbytes(16), rng.randbytes(rng.randint(1, 200))) for _ in range(args.puts)], 1)
            queue = getattr(db, "_commits", None)
            before = (queue.batches, queue.writes) if queue is not None else None
            syncs0 = LOG_SYNCS[0]
            many, cpu = puts(db, [(rng.randbytes(16), rng.randbytes(rng.randint(1, 200))) for _ in range(args.puts)], args.threads)
            shared = ""
            if queue is not None and before is not None:
                # Commits and syncs differ since the sync left the lock (issue 23): a put alone
                # commits at once, and one log sync covers every commit written before it began.
                batches, writes = queue.batches - before[0], queue.writes - before[1]
                syncs = LOG_SYNCS[0] - syncs0
                shared = (f"; {writes} puts in {batches} commits and {syncs} log syncs "
                          f"({writes / max(1, syncs):.1f} puts per sync)")
            print(f"  round {r + 1}: 1 thread {one:7.0f}/s   {args.threads} threads {many:7.0f}/s   "
                  f"= {many / one:.2f}x{shared}; CPU per put {cpu1:.0f} and {cpu:.0f} us")
        if args.txns:
            print(f"durable small transactions (read-modify-write of a counter + one put), {args.txns} per measurement")
            for r in range(args.rounds):
                one, lost1 = transactions(db, args.txns, 1, 1000 * r)
                many, lost = transactions(db, args.txns, args.threads, 1000 * r + 100)
                print(f"  round {r + 1}: 1 thread {one:7.0f}/s   {args.threads} threads {many:7.0f}/s   = {many / one:.2f}x"
                      f"   lost updates: {lost1} and {lost}")
        db.close()
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
