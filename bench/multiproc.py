"""multiproc: writers in several processes taking turns (issue 26), beside sqlite3 and LMDB.

    python bench/multiproc.py [--seconds 3] [--procs 4] [--json PATH] [--dir DIR] [--engines E,...] [--nosync]

The workload: each process makes durable one-put commits (a 100-byte value under a key of
its own, each put its own commit, synced before it returns) for ``--seconds``, all starting
together. It runs with 1 process, then with ``--procs`` processes, on:

- pagestore (``db[k] = v``, sync=True: one fdatasync of the log per commit);
- sqlite3, WAL mode, ``synchronous=FULL``, ``busy_timeout`` 5 s, autocommit
  ``INSERT OR REPLACE`` (one fsync of the WAL per commit);
- LMDB (``lmdb`` package), one write transaction per put with the default sync (its
  writer mutex in the lock file; one fdatasync and a meta page write per commit).

Each count is measured twice, in the order 1, N, N, 1, half the time each (the disk's
speed drifts on a shared machine). Reported per engine: commits per second with 1 process
and with N, their ratio (the issue's
target for pagestore: >= 0.8), and each process's share of the N-process commits as a
fraction of the mean share (the issue: no process below 0.5). Speed is noise on a shared
two-core machine: compare figures of one run; ``uptime``'s load average is printed with them.
``--nosync``: pagestore commits with sync=False, the cost of the turns without the disk's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402

VALUE = b"v" * 100
ENGINES = ["pagestore", "sqlite3", "lmdb"]


def child(engine: str, path: str, name: str, start_at: float, seconds: float) -> None:
    """child: one process's commits, from ``start_at`` (a time.time()) for ``seconds``; prints its count."""
    if engine == "pagestore":
        db = pagestore.open(path, timeout=60, sync=os.environ.get("MULTIPROC_NOSYNC") != "1")

        def put(k: bytes) -> None:
            db[k] = VALUE

        close = db.close
    elif engine == "sqlite3":
        con = sqlite3.connect(path, isolation_level=None, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB)")

        def put(k: bytes) -> None:
            con.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (k, VALUE))

        close = con.close
    else:
        import lmdb

        env = lmdb.open(path, map_size=1 << 30, subdir=True, sync=True, lock=True)

        def put(k: bytes) -> None:
            with env.begin(write=True) as txn:
                txn.put(k, VALUE)

        close = env.close
    print("READY", flush=True)
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    end = time.monotonic() + seconds
    n = 0
    prefix = name.encode() + b"/"
    while time.monotonic() < end:
        put(prefix + b"%09d" % n)
        n += 1
    close()
    print(f"COUNT {n}", flush=True)


def run(engine: str, procs: int, seconds: float, where: str) -> List[int]:
    """run: ``procs`` processes of ``engine`` on one fresh store; returns each one's commits."""
    path = os.path.join(where, f"{engine}-{procs}")
    if os.path.isdir(path):
        shutil.rmtree(path)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix) and not os.path.isdir(path + suffix):
            os.unlink(path + suffix)
    if engine == "pagestore":
        pagestore.open(path).close()
    elif engine == "sqlite3":
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB)")
        con.close()
    start_at = time.time() + 1.0 + 0.3 * procs
    kids = [subprocess.Popen([sys.executable, __file__, "--role", engine, path, f"p{i}", repr(start_at), repr(seconds)],
                             stdout=subprocess.PIPE, text=True) for i in range(procs)]
    counts = []
    for k in kids:
        out, _ = k.communicate(timeout=seconds + 120)
        if k.returncode != 0:
            raise SystemExit(f"{engine} child failed ({k.returncode}): {out}")
        counts.append(int(out.split("COUNT")[1].split()[0]))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--json")
    ap.add_argument("--dir", help="where the stores go (default: a temporary directory)")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--nosync", action="store_true",
                    help="pagestore commits with sync=False: the cost of the turns alone, without the disk's")
    ap.add_argument("--role", nargs=5, metavar=("ENGINE", "PATH", "NAME", "START", "SECONDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        engine, path, name, start, seconds = args.role
        child(engine, path, name, float(start), float(seconds))
        return
    if args.nosync:
        os.environ["MULTIPROC_NOSYNC"] = "1"  # the children inherit it
    where = tempfile.mkdtemp(prefix="multiproc-", dir=args.dir)
    report: Dict[str, Any] = {"seconds": args.seconds, "procs": args.procs, "load": os.getloadavg()}
    try:
        for engine in args.engines.split(","):
            if engine == "lmdb":
                try:
                    import lmdb  # noqa: F401
                except ImportError:
                    print("lmdb: not installed, skipped")
                    continue
            # In the order 1, N, N, 1, half the time each: the disk's speed drifts on a shared
            # machine, and the two counts should see the same drift.
            half = args.seconds / 2
            ones = [run(engine, 1, half, where)]
            manys = [run(engine, args.procs, half, where), run(engine, args.procs, half, where)]
            ones.append(run(engine, 1, half, where))
            many = [a + b for a, b in zip(*manys)]
            rate1 = sum(o[0] for o in ones) / args.seconds
            rate_n = sum(many) / args.seconds
            mean = sum(many) / len(many)
            shares = [round(c / mean, 2) if mean else 0.0 for c in many]
            phases = [ones[0][0] / half, sum(manys[0]) / half, sum(manys[1]) / half, ones[1][0] / half]
            report[engine] = {"one": rate1, "many": rate_n, "ratio": rate_n / rate1 if rate1 else None,
                              "counts": many, "shares": shares, "phases": phases}
            print(f"{engine:9s} 1 process {rate1:8.0f} commits/s   {args.procs} processes {rate_n:8.0f} commits/s"
                  f"   ratio {rate_n / rate1:5.2f}   shares {shares}   phases 1,N,N,1 {[round(x) for x in phases]}",
                  flush=True)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load'][0]:.2f}, after {report['load_after'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
