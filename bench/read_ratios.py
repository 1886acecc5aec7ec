"""read_ratios.py: the read phases of bench/compare.py, engines interleaved, for steadier ratios.

    python bench/read_ratios.py --records 200000 --rounds 3

Loads ``pagestore.bench``'s dataset into each engine through the same
adapters and batches as compare.py (1000 records per durable transaction),
keeps every store open, then runs the read phases right after the inserts,
as compare.py does, but round-robin: each round runs a phase on every engine
before the next phase, and each engine's best round counts. On a shared
machine a noisy stretch then hits every engine alike, where compare.py's
engines run one after another. Phases: point reads (compare.py's 100,000
random gets), one full scan, 2000 ranges of 50 (``islice`` of
``items(start=k)``), and for pagestore ``get_many`` of 10,000 random keys
against a loop of ``db[k]`` over the same keys (values of 1 B to 20 KB:
the dataset's mix). Prints rates per engine and the ratios the issue's
targets name.
"""
from __future__ import annotations

import argparse
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


def main(argv: List[str] = None) -> int:  # type: ignore[assignment]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engines", default="pagestore,sqlite,lmdb")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.records
    ds = bench.make_dataset(n, args.seed)
    root = tempfile.mkdtemp(prefix="read-ratios-")
    engines: Dict[str, bench.Adapter] = {}
    try:
        for name in args.engines.split(","):
            if bench.available_engines().get(name) is not None:
                print(f"{name}: skipped ({bench.available_engines()[name]})")
                continue
            a = bench.get_adapter(name)
            os.mkdir(os.path.join(root, name))
            a.open(os.path.join(root, name), durable=True)
            t = time.perf_counter()
            for i in range(0, n, bench.BATCH):
                a.put_batch([ds.record(j) for j in range(i, min(n, i + bench.BATCH))])
            print(f"{name}: loaded {n:,} records in {time.perf_counter() - t:.1f} s", flush=True)
            engines[name] = a
        rng = random.Random(f"{args.seed}:reads")
        probe = [ds.keys[i] for i in rng.sample(range(n), min(n, bench.MAX_READS))]
        rng = random.Random(f"{args.seed}:ranges")
        starts = [ds.keys[rng.randrange(n)] for _ in range(bench.RANGE_SCANS)]
        batch = probe[:10_000]

        def phases(a: bench.Adapter) -> Dict[str, Callable[[], None]]:
            get = a.get

            def gets() -> None:
                for k in probe:
                    get(k)

            def ranges() -> None:
                for k in starts:
                    a.range_scan(k, bench.RANGE_LEN)

            out = {"point_reads": gets, "full_scan": lambda: a.scan_all() and None, "ranges_of_50": ranges}
            if a.name == "pagestore":
                db = a.db  # type: ignore[attr-defined]

                def loop() -> None:
                    for k in batch:
                        db[k]

                out["get_many"] = lambda: db.get_many(batch) and None
                out["loop_of_get"] = loop
            return out

        units = {"point_reads": len(probe), "full_scan": n, "ranges_of_50": len(starts), "get_many": len(batch),
                 "loop_of_get": len(batch)}
        best: Dict[str, Dict[str, float]] = {name: {} for name in engines}
        runs = {name: phases(a) for name, a in engines.items()}
        for phase in units:
            for _ in range(args.rounds):
                for name in engines:
                    fn = runs[name].get(phase)
                    if fn is None:
                        continue
                    t = time.perf_counter()
                    fn()
                    rate = units[phase] / (time.perf_counter() - t)
                    best[name][phase] = max(best[name].get(phase, 0.0), rate)
        print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; best of {args.rounds} rounds, rates per second")
        for name in engines:
            print(f"{name:10} " + "  ".join(f"{p} {r / 1e3:8.1f}k" for p, r in best[name].items()))
        ps = best.get("pagestore", {})
        for other in ("lmdb", "sqlite"):
            if other in best:
                print(f"pagestore / {other}: " + "  ".join(f"{p} {ps[p] / best[other][p]:.2f}x"
                                                        for p in ("point_reads", "full_scan", "ranges_of_50")))
        if "get_many" in ps:
            print(f"pagestore get_many / loop of db[k]: {ps['get_many'] / ps['loop_of_get']:.2f}x")
    finally:
        for a in engines.values():
            a.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
