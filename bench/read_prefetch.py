"""read_prefetch.py: two builds of the read path's C calls, side by side in one process.

    python bench/read_prefetch.py --old /tmp/main/pagestore/_fastpage.cpython-311-x86_64-linux-gnu.so

Loads a store as bench/compare.py does (its dataset, 1000 records a
transaction, reads right after the inserts; ``--checkpoint`` to read a
checkpointed store), then times the same random keys through this
checkout's ``pagestore._fastpage`` and through another build of it (``--old``,
e.g. main's, built with ``python setup.py build_ext --inplace`` in an
unpacked ``git archive``), loaded under the same name from its own file.
Rows, CPU microseconds per call, the median of ``--rounds`` rounds, every
round in a new random order of the six loops:

  leaf    ``node_get`` of a raw leaf (the leaf found beforehand)
  value   ``map_value`` of a record in the map (the rid found beforehand)
  full    a get with nothing but the descent over decoded internal nodes,
          the leaf search and the value read

One process, one store, the builds interleaved: a machine shared with other
work slows both alike, so the ratio new/old is the figure to read. Written
for the prefetches of issue 22 (the whole node page asked for at once before
a search; a heap page's header and slot lines, then the record's, before a
value is copied).
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from bisect import bisect_right

try:
    from pagestore import bench
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pagestore import bench
from pagestore import _fastpage as new_build


def _load(path: str):
    """_load: the extension module at ``path``, loaded beside the one imported (its own file)."""
    loader = importlib.machinery.ExtensionFileLoader("pagestore._fastpage", path)
    spec = importlib.util.spec_from_file_location("pagestore._fastpage", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the other build's _fastpage shared object")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--gets", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--checkpoint", action="store_true", help="checkpoint before reading")
    args = ap.parse_args()
    old_build = _load(args.old)
    if old_build.node_get is new_build.node_get:
        raise SystemExit("--old is the build already imported")
    ds = bench.make_dataset(args.records, 0)
    root = tempfile.mkdtemp(prefix="read-prefetch-")
    try:
        a = bench.get_adapter("pagestore")
        a.open(root, durable=True)
        for at in range(0, args.records, bench.BATCH):
            a.put_batch([ds.record(j) for j in range(at, min(args.records, at + bench.BATCH))])
        db = a.db
        if args.checkpoint:
            db.checkpoint()
        pager, tree, heap = db._pager, db._tree, db._heap
        lru = tree.nodes.lru
        rng = random.Random(7)
        keys = [ds.keys[rng.randrange(args.records)] for _ in range(args.gets)]
        handle = heap._map

        def leaf_of(k: bytes) -> int:
            pgno = pager.meta.root
            for _ in range(pager.meta.tree_height - 1):
                node = lru[pgno].node
                pgno = node.vals[bisect_right(node.keys, k)]
            return pgno

        for k in keys:
            db[k]  # every leaf into the node cache, every heap page verified
        leaves = [(lru[leaf_of(k)].raw, k) for k in keys]
        rids = [tree.get(k) for k in keys]
        if any(raw is None for raw, _ in leaves) or any(r is None for r in rids):
            raise SystemExit("a leaf not cached raw, or a key not found")

        def loops(fp):
            node_get, map_value = fp.node_get, fp.map_value

            def leaf(items):
                for raw, k in items:
                    node_get(raw, k, 0)

            def value(items):
                for rid in items:
                    map_value(handle, rid[0], rid[1])

            def full(items):
                meta = pager.meta
                for k in items:
                    pgno = meta.root
                    for _ in range(meta.tree_height - 1):
                        node = lru[pgno].node
                        pgno = node.vals[bisect_right(node.keys, k)]
                    rid = node_get(lru[pgno].raw, k, pgno)
                    map_value(handle, rid[0], rid[1])

            return {"leaf": (leaf, leaves), "value": (value, rids), "full": (full, keys)}

        runs = [(part, tag, fn, items) for tag, fp in (("old", old_build), ("new", new_build))
                for part, (fn, items) in loops(fp).items()]
        times: dict = {}
        clock = time.process_time
        for _ in range(args.rounds):
            rng.shuffle(runs)
            for part, tag, fn, items in runs:
                t = clock()
                fn(items)
                times.setdefault((part, tag), []).append((clock() - t) / len(items) * 1e6)
        print(f"{args.records:,} records, {len(keys):,} random keys, overlaid pages {len(pager.overlaid)}; "
              f"CPU us per call, median of {args.rounds} (load {os.getloadavg()[0]:.2f})")
        for part in ("leaf", "value", "full"):
            old, new = statistics.median(times[(part, "old")]), statistics.median(times[(part, "new")])
            print(f"{part:<6} old {old:.3f}  new {new:.3f}  new/old {new / old:.2f}")
        db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
