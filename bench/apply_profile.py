"""apply_profile: compare.py's insert and churn phases, on their own, timed and profiled.

    python bench/apply_profile.py [--records 200000] [--engines pagestore,sqlite,lmdb] [--profile]

Runs the ``insert`` phase (``--records`` records, 1,000 per durable
transaction) and the ``churn`` phase (3 rounds: delete a random half, insert
as many new records, 1,000 per durable transaction) of ``pagestore.bench``,
the same dataset and operations as ``bench/compare.py``, for each engine in
the same process, and prints us per op and each engine's rate against
pagestore's, and the bytes each engine passed to write calls per op
(``wchar`` of /proc/self/io: the same count for every engine). The reads between the two phases in compare.py are left out
(they leave the store as they found it, but for what the caches hold).

With ``--profile``, pagestore's two phases run under cProfile and the
functions with the most own time are listed, in us per op (cProfile's
overhead inflates them: read shares, not absolutes).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pagestore import bench  # noqa: E402
from pagestore import checkpointer as checkpointer_mod  # noqa: E402
from pagestore import fileio  # noqa: E402
from pagestore import pager as pager_mod  # noqa: E402

#: seconds inside Pager.commit (checkpoints included) and inside checkpoints alone, so far
SPENT = {"commit": 0.0, "checkpoint": 0.0, "log": 0.0, "data": 0.0}
#: CPU seconds (``process_time``) inside Pager.commit and inside checkpoints, and in each phase
CPU = {"commit": 0.0, "checkpoint": 0.0, "insert": 0.0, "churn": 0.0}


def instrument() -> None:
    """instrument: time Pager.commit and the checkpointer's backfill (two clock reads per call)."""
    for cls, name, label in ((pager_mod.Pager, "commit", "commit"),
                             (checkpointer_mod.Checkpointer, "_backfill", "checkpoint")):
        fn = getattr(cls, name)

        def wrapper(*a: Any, _fn: Any = fn, _label: str = label, **k: Any) -> Any:
            t, c = time.perf_counter(), time.process_time()
            try:
                return _fn(*a, **k)
            finally:
                SPENT[_label] += time.perf_counter() - t
                CPU[_label] += time.process_time() - c

        setattr(cls, name, wrapper)
    orig_write = fileio.File.write

    def write(f: Any, offset: int, data: Any) -> None:
        SPENT["log" if f.path.endswith("-wal") else "data"] += len(data)
        orig_write(f, offset, data)

    fileio.File.write = write  # type: ignore[method-assign]


def wchar() -> int:
    """wchar: bytes this process has passed to write calls so far (/proc/self/io), any engine alike."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def phases(adapter: Any, ds: Any, n: int, seed: int, profs: Optional[Dict[str, cProfile.Profile]]) -> Dict[str, Any]:
    """phases: seconds spent in the insert and churn phases, each as ``_run_engine`` runs it."""
    out: Dict[str, Any] = {}
    prof = profs["insert"] if profs else None
    live = list(range(n))
    written0 = wchar()
    c0, k0, l0, d0 = SPENT["commit"], SPENT["checkpoint"], SPENT["log"], SPENT["data"]
    cc0, ck0 = CPU["commit"], CPU["checkpoint"]
    elapsed = 0.0
    for idx in bench._batches(live, bench.BATCH):
        items = [ds.record(i) for i in idx]
        if prof:
            prof.enable()
        t0, u0 = time.perf_counter(), time.process_time()
        adapter.put_batch(items)
        elapsed += time.perf_counter() - t0
        CPU["insert"] += time.process_time() - u0
        if prof:
            prof.disable()
    written1 = wchar()
    c1, k1, l1, d1 = SPENT["commit"], SPENT["checkpoint"], SPENT["log"], SPENT["data"]
    out["insert"] = (n, elapsed, written1 - written0, c1 - c0, k1 - k0, l1 - l0, d1 - d0)
    cc1, ck1 = CPU["commit"], CPU["checkpoint"]
    out["insert_cpu"] = (CPU["insert"], cc1 - cc0, ck1 - ck0)
    prof = profs["churn"] if profs else None
    rng = random.Random(f"{seed}:churn")
    fresh = n
    ops, elapsed = 0, 0.0
    for _ in range(bench.CHURN_ROUNDS):
        rng.shuffle(live)
        half = len(live) // 2
        victims, live = live[:half], live[half:]
        for idx in bench._batches(victims, bench.BATCH):
            keys = [ds.keys[i] for i in idx]
            if prof:
                prof.enable()
            t0, u0 = time.perf_counter(), time.process_time()
            adapter.delete_batch(keys)
            elapsed += time.perf_counter() - t0
            CPU["churn"] += time.process_time() - u0
            if prof:
                prof.disable()
            ops += len(idx)
        new = list(range(fresh, fresh + half))
        fresh += half
        for idx in bench._batches(new, bench.BATCH):
            items = [ds.record(i) for i in idx]
            if prof:
                prof.enable()
            t0, u0 = time.perf_counter(), time.process_time()
            adapter.put_batch(items)
            elapsed += time.perf_counter() - t0
            CPU["churn"] += time.process_time() - u0
            if prof:
                prof.disable()
            ops += len(idx)
        live.extend(new)
    written2 = wchar()
    c2, k2, l2, d2 = SPENT["commit"], SPENT["checkpoint"], SPENT["log"], SPENT["data"]
    out["churn"] = (ops, elapsed, written2 - written1, c2 - c1, k2 - k1, l2 - l1, d2 - d1)
    out["churn_cpu"] = (CPU["churn"], CPU["commit"] - cc1, CPU["checkpoint"] - ck1)
    out["space"] = adapter.file_size() / ds.logical_bytes(live)
    out["inserted"] = ds.logical_bytes(range(n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--engines", default="pagestore,sqlite,lmdb")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    n = args.records
    instrument()
    ds = bench.make_dataset(bench.dataset_size(n), seed=args.seed)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; {n} records")
    res: Dict[str, Dict[str, Any]] = {}
    profs: Optional[Dict[str, cProfile.Profile]] = None
    for name in args.engines.split(","):
        adapter = bench.get_adapter(name)
        d = tempfile.mkdtemp(dir=args.workdir)
        try:
            adapter.open(d, durable=True)
            profs = ({"insert": cProfile.Profile(), "churn": cProfile.Profile()}
                     if args.profile and name == "pagestore" else None)
            try:
                res[name] = phases(adapter, ds, n, args.seed, profs)
            finally:
                adapter.close()
        finally:
            shutil.rmtree(d)
        r = res[name]
        line = [f"{name:10s}"]
        for ph in ("insert", "churn"):
            ops, el, wr, com, ck, lg, dt = r[ph]
            line.append(f"{ph} {el / ops * 1e6:5.1f} us/op ({ops / el:6.0f}/s)")
            if name == "pagestore":
                line.append(f"[apply {(el - com) / ops * 1e6:4.1f} commit {com / ops * 1e6:4.1f} "
                            f"of which ckpt {ck / ops * 1e6:4.1f}; log {lg / ops:4.0f} B/op, data {dt / ops:4.0f}]")
            line.append(f"{wr / ops:5.0f} B written/op")
            if name == "pagestore":
                cpu, ccom, cck = r[ph + "_cpu"]
                line.append(f"[CPU {cpu / ops * 1e6:4.1f} us/op: apply {(cpu - ccom) / ops * 1e6:4.1f} "
                            f"commit {ccom / ops * 1e6:4.1f} of which ckpt {cck / ops * 1e6:4.1f}]")
        line.append(f"space {r['space']:.2f}x live")
        print("  ".join(line), flush=True)
        for ph, prof in (profs or {}).items():
            ops = r[ph][0]
            st = pstats.Stats(prof)
            rows: List[Any] = sorted(st.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
            total = sum(v[2] for _, v in rows)
            print(f"  cProfile of {ph}, own time, us per op ({ops} ops; {total / ops * 1e6:.1f} us profiled):")
            for (fn, line_no, func), (cc, nc, tt, ct, _) in rows[: args.top]:
                print(f"    {tt / ops * 1e6:6.2f}  {ct / ops * 1e6:6.2f} cum  {nc / ops:5.2f}/op  "
                      f"{os.path.basename(fn)}:{line_no}({func})")
    if "pagestore" in res:
        p = res["pagestore"]
        for other in res:
            if other == "pagestore":
                continue
            o = res[other]
            ratios = []
            for ph in ("insert", "churn"):
                rate_p = p[ph][0] / p[ph][1]
                rate_o = o[ph][0] / o[ph][1]
                ratios.append(f"{ph} {rate_p / rate_o:.2f}x")
            print(f"pagestore vs {other}: " + ", ".join(ratios))
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")


if __name__ == "__main__":
    main()
