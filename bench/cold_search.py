"""cold_search.py: the cost of one leaf search (``node_get``) on a leaf not in the CPU's caches.

    python bench/cold_search.py --records 200000

Loads a store of bench/compare.py's data set, takes the raw leaves the node
cache holds right after the load, and times 100,000 ``_fastpage.node_get``
calls for random keys in their leaves, after writing 64 MiB to push the
leaves out of the CPU's caches; best and median of 7 rounds, CPU ns a call.
A point read's leaf search is a chain of dependent memory reads (a slot,
then the key it points at); this shows what prefetching the slot array takes
off it (native/node.c ``prefetch_slots``): run it on two builds and compare.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time

try:
    from pagestore import bench
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pagestore import bench
from pagestore import _native


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    args = ap.parse_args(argv)
    n = args.records
    ds = bench.make_dataset(n, 0)
    root = tempfile.mkdtemp(prefix="cold-search-")
    try:
        a = bench.get_adapter("pagestore")
        a.open(root, durable=False)
        for i in range(0, n, bench.BATCH):
            a.put_batch([ds.record(j) for j in range(i, min(n, i + bench.BATCH))])
        tree = a.db._tree
        lru = tree.nodes.lru
        rng = random.Random(5)
        jobs = []
        for i in rng.sample(range(n), min(n, 100_000)):
            k = ds.keys[i]
            pgno = tree._descend(k)
            e = lru.get(pgno)
            if e is not None and e.raw is not None:
                jobs.append((e.raw, k, pgno))
        node_get = _native.fast.node_get
        flush = bytearray(64 << 20)
        res = []
        for r in range(7):
            for i in range(0, len(flush), 4096):
                flush[i] = r
            t = time.thread_time()
            for raw, k, pgno in jobs:
                node_get(raw, k, pgno)
            res.append((time.thread_time() - t) / len(jobs) * 1e9)
        res.sort()
        print(f"{len(jobs):,} searches in raw leaves: ns per node_get best {res[0]:.0f}, median {res[3]:.0f} "
              f"(binding {_native.BINDING}, load {os.getloadavg()[0]:.2f})")
        a.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
