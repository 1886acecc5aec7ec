"""get_many_floor.py: what a batch read could cost at best, beside ``get_many`` and a loop of ``db[k]``.

    python bench/get_many_floor.py --records 200000 --batch 10000

A throwaway measurement (issue 22), not a code path of the store. For each
value size (100 B, 2,000 B, and the mix of bench/compare.py: 80% 1-200 B,
15% 201-2000 B, 5% 4-20 KiB) it loads a store as compare.py does, then
times on disjoint batches of random keys, each phase after a warm-up read of
every key (so no run pays first-touch page faults or checksums):

- ``loop``: ``for k in batch: db[k]`` (each value dropped at once);
- ``get_many``: ``db.get_many(batch)`` (the values dropped at the end);
- ``floor``: the cheapest code that does get_many's job with the store's own
  page-local C calls: one sort, ``BTree.get_sorted`` (one C call a leaf),
  one ``map_values`` C call over the whole batch (``Heap.read`` for an
  overflow value), the values put back in the caller's order; no lock, no run of 256, no fallback for pages newest in
  the log (so it is only valid on a checkpointed store: it checks);
- ``copies``: just the values' bytes copied out of a pool, all held (as any
  batch read must hold them) against one at a time (as the loop does): the
  allocator's share, which no store code can remove.

Times are CPU time of this thread (``time.thread_time``), the best of
``--repeat`` rounds, per key. The machine is shared: read ratios, not rates.
glibc's malloc gives the pages of freed values back to the kernel when the
top of its heap has more than 128 KiB free, so a batch of large values takes
fresh pages (a fault each) every time; run once more with
``MALLOC_TRIM_THRESHOLD_=2000000000`` in the environment to see the figures
without that.
"""
from __future__ import annotations

import argparse
import operator
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, List

try:
    from pagestore import bench
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pagestore import bench
from pagestore import _native

_T = time.thread_time


def _floor(db, keys: List[bytes]) -> List[object]:
    """_floor: get_many's job, the cheapest way the store's C calls allow (see the module docstring)."""
    order = sorted(range(len(keys)), key=keys.__getitem__)
    rids = db._tree.get_sorted([keys[i] for i in order])
    pager = db._pager
    vals = _native.fast.map_values(pager.fast_map, list(map(operator.itemgetter(0), rids)),
                                   list(map(operator.itemgetter(1), rids)))
    read = db._heap.read
    for t, v in enumerate(vals):
        if v is None:  # an overflow value (or not a whole live record): read it as get_many does
            vals[t] = read(rids[t])
    out: List[object] = [None] * len(keys)
    for i, v in zip(order, vals):
        out[i] = v
    return out


def run(size: str, records: int, batch: int, repeat: int) -> Dict[str, float]:
    ds = bench.make_dataset(records, 0)
    root = tempfile.mkdtemp(prefix="get-many-floor-")
    try:
        a = bench.get_adapter("pagestore")
        a.open(root, durable=False)
        value: Callable[[int], bytes] = ds.value if size == "mixed" else (lambda i, n=int(size): ds._pool[i % 1000: i % 1000 + n])
        for at in range(0, records, bench.BATCH):
            a.put_batch([(ds.keys[j], value(j)) for j in range(at, min(records, at + bench.BATCH))])
        db = a.db
        db.checkpoint()
        if db._pager.overlaid:
            raise SystemExit("the floor reads only the map: the store must be checkpointed")
        rng = random.Random(1)
        picks = rng.sample(range(records), min(records, batch * 4 * repeat))
        pool = ds._pool
        best = {"loop": 1e9, "get_many": 1e9, "floor": 1e9, "copies_held": 1e9, "copies_one_by_one": 1e9}
        for r in range(repeat):
            parts = [[ds.keys[i] for i in picks[(4 * r + j) * batch:(4 * r + j + 1) * batch]] for j in range(4)]
            for part in parts:
                for k in part:
                    db[k]  # warm: page tables, the map's verified pages
            assert _floor(db, parts[2]) == db.get_many(parts[2])
            t = _T()
            for k in parts[0]:
                db[k]
            best["loop"] = min(best["loop"], _T() - t)
            t = _T()
            db.get_many(parts[1])
            best["get_many"] = min(best["get_many"], _T() - t)
            t = _T()
            _floor(db, parts[2])
            best["floor"] = min(best["floor"], _T() - t)
            lens = [len(db[k]) for k in parts[3]]
            offs = [(i * 7919) % (len(pool) - 20_000) for i in range(len(lens))]
            t = _T()
            held = [pool[o:o + n] for o, n in zip(offs, lens)]
            del held
            best["copies_held"] = min(best["copies_held"], _T() - t)
            t = _T()
            for o, n in zip(offs, lens):
                pool[o:o + n]
            best["copies_one_by_one"] = min(best["copies_one_by_one"], _T() - t)
        db.close()
        return {k: v / batch * 1e6 for k, v in best.items()}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: List[str] = None) -> int:  # type: ignore[assignment]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="100,2000,mixed")
    args = ap.parse_args(argv)
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_", "glibc default")
    print(f"us per key, best of {args.repeat}; MALLOC_TRIM_THRESHOLD_: {trim}")
    for size in args.sizes.split(","):
        r = run(size, args.records, args.batch, args.repeat)
        print(f"values {size:>5}: loop {r['loop']:.2f}  get_many {r['get_many']:.2f}  floor {r['floor']:.2f}  | "
              f"loop/get_many {r['loop'] / r['get_many']:.2f}x  loop/floor {r['loop'] / r['floor']:.2f}x  | "
              f"value copies held {r['copies_held']:.2f}, one by one {r['copies_one_by_one']:.2f}  "
              f"(load {os.getloadavg()[0]:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
