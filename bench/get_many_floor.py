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

With ``--parts``, the floor's steps are timed one by one on a further batch
(per key): ``sort`` (the positions in key order), ``leaves`` (get_sorted:
the descent and routing in Python, one C call a leaf), ``leaf C`` (those
same C calls replayed with nothing around them: what get_sorted would cost
if its routing were free), ``values`` (the map_values call and the rids
split for it), ``overflow`` (the values map_values left: Heap.read each) and
``order`` (the values put back in the caller's order). ``floor - routing``
is the floor with get_sorted's Python taken out: no code doing get_many's
job in this design (sorted keys, leaves searched in C, values copied out
and held) goes below it.

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


def _parts(db, keys: List[bytes]) -> Dict[str, float]:
    """_parts: the floor's steps timed one by one on ``keys`` (seconds; see the module docstring)."""
    from pagestore import btree
    t: Dict[str, float] = {}
    t0 = _T()
    order = sorted(range(len(keys)), key=keys.__getitem__)
    sk = [keys[i] for i in order]
    t1 = _T()
    rids = db._tree.get_sorted(sk)
    t2 = _T()
    calls = []
    real = _native.fast

    class Recorder:
        def __getattr__(self, name):
            return getattr(real, name)

        def node_find_many(self, raw, ks, i, end, out, pgno):
            calls.append((real.node_find_many, (raw, ks, i, end, out, pgno)))
            return real.node_find_many(raw, ks, i, end, out, pgno)

    class MapRecorder:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def leaf_find_many(self, pgno, ks, i, end, out):
            calls.append((self.inner.leaf_find_many, (pgno, ks, i, end, out)))
            return self.inner.leaf_find_many(pgno, ks, i, end, out)

    tree = db._tree
    saved = btree._fast, tree._calls
    btree._fast, tree._calls = Recorder(), MapRecorder(tree._calls)
    try:
        again = tree.get_sorted(sk)
    finally:
        btree._fast, tree._calls = saved
    assert again == rids
    replay = [None] * len(sk)
    t3 = _T()
    for fn, args in calls:
        fn(*args[:-1], replay) if fn is not real.node_find_many else fn(*args[:4], replay, args[5])
    t4 = _T()
    assert replay == rids, "the replayed calls found what get_sorted found"
    pager = db._pager
    vals = _native.fast.map_values(pager.fast_map, list(map(operator.itemgetter(0), rids)),
                                   list(map(operator.itemgetter(1), rids)))
    t5 = _T()
    read = db._heap.read
    for i, v in enumerate(vals):
        if v is None:
            vals[i] = read(rids[i])
    t6 = _T()
    out: List[object] = [None] * len(keys)
    for i, v in zip(order, vals):
        out[i] = v
    t7 = _T()
    t.update(sort=t1 - t0, leaves=t2 - t1, leaf_c=t4 - t3, values=t5 - t4, overflow=t6 - t5, order=t7 - t6)
    return t


def run(size: str, records: int, batch: int, repeat: int, want_parts: bool = False) -> Dict[str, float]:
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
        steps: Dict[str, float] = {}
        for r in range(repeat):
            parts = [[ds.keys[i] for i in picks[(4 * r + j) * batch:(4 * r + j + 1) * batch]] for j in range(4)]
            for part in parts:
                for k in part:
                    db[k]  # warm: page tables, the map's verified pages
            assert _floor(db, parts[2]) == db.get_many(parts[2])
            if want_parts:  # on a warmed batch, as every phase
                for k, v in _parts(db, parts[3]).items():
                    steps[k] = min(steps.get(k, 1e9), v)
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
        best.update(steps)
        return {k: v / batch * 1e6 for k, v in best.items()}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: List[str] = None) -> int:  # type: ignore[assignment]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="100,2000,mixed")
    ap.add_argument("--parts", action="store_true", help="also time the floor's steps one by one")
    args = ap.parse_args(argv)
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_", "glibc default")
    print(f"us per key, best of {args.repeat}; MALLOC_TRIM_THRESHOLD_: {trim}")
    for size in args.sizes.split(","):
        r = run(size, args.records, args.batch, args.repeat, args.parts)
        print(f"values {size:>5}: loop {r['loop']:.2f}  get_many {r['get_many']:.2f}  floor {r['floor']:.2f}  | "
              f"loop/get_many {r['loop'] / r['get_many']:.2f}x  loop/floor {r['loop'] / r['floor']:.2f}x  | "
              f"value copies held {r['copies_held']:.2f}, one by one {r['copies_one_by_one']:.2f}  "
              f"(load {os.getloadavg()[0]:.2f})", flush=True)
        if args.parts:
            names = ("sort", "leaves", "leaf_c", "values", "overflow", "order")
            floor_c = sum(r[n] for n in names) - r["leaves"]
            print("  floor's steps: " + "  ".join(f"{n} {r[n]:.2f}" for n in names) +
                  f"  | floor - routing {floor_c:.2f}: loop/(floor - routing) {r['loop'] / floor_c:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
