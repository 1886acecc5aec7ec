"""readers: readers in other processes beside a writer, for issue 13's Report.

    python bench/readers.py [--seconds 3] [--records 20000] [--json PATH] [--dir DIR]

Three measurements in one run, every party a separate process (this script
runs itself as the child, ``--role ...``; processes are synchronised by lines
on their stdin and stdout):

1. Reader throughput: one reader process's point reads per second (``db[k]``
   of random existing keys) and full-scan items per second (``for k, v in
   db.items()``, over and over), first with no writer, then beside a busy
   writer process (transactions of 10 overwrites, ``sync=False``, as fast as
   it can; its commit rate is reported too). Between the two, beside a
   writer process that has the store open and commits nothing: what the
   writer's presence alone costs (the shared index, a read mark per read).
2. The writer's durable one-put commit rate (each ``db[k] = v`` its own
   fdatasync'd commit; this process is the writer) with 0, 1 and 4 reader
   processes reading meanwhile (point reads and short scans, without pause;
   each count measured twice, in the order 0 1 4 4 1 0, half the time each),
   the p50 / p99 / p99.9 of one commit, and the log's size at the end (readers
   that never pause keep it from restarting).
3. The log: a slow reader process takes one snapshot and holds it while the
   writer makes durable one-put commits for ``--seconds``; the log's largest
   size meanwhile (``stats()["log_size"]``), then its size once the reader
   lets go and the writer commits again. The same commits with no reader give
   the log's largest size in the normal run of things, for comparison.

Speed is noise on a shared two-core machine: compare figures of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402
from pagestore import latency  # noqa: E402
from pagestore.store import Store  # noqa: E402

VALUE = 100  # bytes of each record's value


def key(i: int) -> bytes:
    return b"k%08d" % i


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_line(want: str) -> None:
    line = sys.stdin.readline()
    if line.strip() != want:
        raise SystemExit(f"expected {want!r} on stdin, got {line!r}")


# ---- the children ----


def role_reader(path: str, records: int, seconds: float, seed: int) -> None:
    """One reader: point reads for ``seconds``, then full scans for ``seconds``; one JSON line."""
    rng = random.Random(seed)
    db = pagestore.open(path, readonly=True)
    say("OPEN")
    wait_line("go")
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(200):
            db[key(rng.randrange(records))]
        n += 200
        if time.perf_counter() >= deadline:
            break
    points = n / (time.perf_counter() - t0)
    items = 0
    scans = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for i, _ in enumerate(db.items()):
            if i % 1000 == 999 and time.perf_counter() >= deadline:
                break
            items += 1
        else:
            scans += 1
    scan_rate = items / (time.perf_counter() - t0)
    db.close()
    say(json.dumps({"point_reads_per_s": points, "scan_items_per_s": scan_rate, "full_scans": scans}))


def role_loop(path: str, records: int, seed: int) -> None:
    """A reader that reads without pause (1000 point reads, one 100-item range scan, ...) until "stop"."""
    rng = random.Random(seed)
    db = pagestore.open(path, readonly=True)
    stop = threading.Event()
    say("OPEN")
    wait_line("go")
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    ops = 0
    t0 = time.perf_counter()
    while not stop.is_set():
        for _ in range(1000):
            db[key(rng.randrange(records))]
        for _ in db.items(start=key(rng.randrange(records)), stop=None):
            ops += 1
            if ops % 100 == 0:
                break
        ops += 1000
    elapsed = time.perf_counter() - t0
    db.close()
    say(json.dumps({"ops": ops, "ops_per_s": ops / elapsed}))


def role_writer(path: str, records: int, seconds: float, seed: int, idle: bool = False) -> None:
    """A busy writer: transactions of 10 overwrites, sync=False, for ``seconds``; one JSON line.

    ``idle``: the store open for writing, and not one commit (what a writer's
    mere presence costs a reader)."""
    rng = random.Random(seed)
    db = pagestore.open(path, create=False, sync=False)
    say("START")
    wait_line("go")
    commits = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    if idle:
        time.sleep(seconds)
    while time.perf_counter() < deadline and not idle:
        with db.transaction() as t:
            for _ in range(10):
                t[key(rng.randrange(records))] = rng.randbytes(VALUE)
        commits += 1
    elapsed = time.perf_counter() - t0
    db.close()
    say(json.dumps({"commits": commits, "commits_per_s": commits / elapsed}))


def role_holder(path: str) -> None:
    """A slow reader: "snap" takes one snapshot and holds it, "release" closes it, "stop" leaves."""
    db = pagestore.open(path, readonly=True)
    say("OPEN")
    wait_line("snap")
    snap = db.snapshot()
    n = len(snap)
    say(f"HELD {n}")
    wait_line("release")
    assert len(snap) == n  # still the same commit, however far the writer went
    snap.close()
    say("RELEASED")
    wait_line("stop")
    db.close()


# ---- the parent ----


class Child:
    """Child is this script run as one of the roles above."""

    def __init__(self, role: str, *args: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--role", role, *map(str, args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )

    def expect(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(prefix):
            self.proc.kill()
            raise SystemExit(f"a child said {line!r}, not {prefix!r} (exit {self.proc.wait()})")
        return line.strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def result(self) -> Dict[str, Any]:
        out: Dict[str, Any] = json.loads(self.expect("{"))
        if self.proc.wait(60) != 0:
            raise SystemExit(f"a child failed (exit {self.proc.returncode})")
        return out


def make_store(path: str, records: int) -> None:
    rng = random.Random(0)
    with pagestore.open(path) as db:
        for b in range(0, records, 1000):
            with db.transaction() as t:
                for i in range(b, min(records, b + 1000)):
                    t[key(i)] = rng.randbytes(VALUE)


def reader_throughput(path: str, records: int, seconds: float) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for label in ("alone", "beside_idle_writer", "beside_writer"):
        reader = Child("reader", path, records, seconds, 1)
        reader.expect("OPEN")
        writer = None
        if label != "alone":
            writer = Child("writer", path, records, 2 * seconds + 0.5, 2, int(label == "beside_idle_writer"))
            writer.expect("START")
            writer.send("go")
            time.sleep(0.25)  # under way before the reader starts
        reader.send("go")
        out[label] = reader.result()
        if writer is not None:
            out["writer" if label == "beside_writer" else "idle_writer"] = writer.result()
    return out


def durable_puts(db: Store, seconds: float, rng: random.Random, watch_log: bool = False,
                 samples: Optional[latency.Samples] = None) -> Dict[str, Any]:
    """durable_puts makes durable one-put commits for ``seconds``: their count, rate and latency
    (into ``samples`` if given), and with ``watch_log`` the log's largest size meanwhile."""
    if samples is None:
        samples = latency.Samples()
    largest = 0
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        t = time.perf_counter()
        if t >= deadline:
            break
        db[b"p%08d" % rng.randrange(10**8)] = rng.randbytes(VALUE)
        samples.add(time.perf_counter() - t)
        n += 1
        if watch_log and n % 20 == 0:
            largest = max(largest, int(db.stats()["log_size"]))
    elapsed = time.perf_counter() - t0
    out: Dict[str, Any] = {"commits": n, "seconds": elapsed, "commits_per_s": n / elapsed,
                           "latency": latency.summarize(samples)}
    if watch_log:
        out["log_largest"] = max(largest, int(db.stats()["log_size"]))
    return out


def commit_rates(db: Store, path: str, records: int, seconds: float) -> Dict[str, Any]:
    """commit_rates measures each reader count twice, in the order 0, 1, 4, 4, 1, 0, for half the
    time each, so that a drift of the machine's speed over the run weighs on them alike."""
    rng = random.Random(3)
    acc: Dict[int, Dict[str, Any]] = {}
    for nreaders in (0, 1, 4, 4, 1, 0):
        settle(db)
        readers = [Child("loop", path, records, 10 + i) for i in range(nreaders)]
        for r in readers:
            r.expect("OPEN")
        for r in readers:
            r.send("go")
        a = acc.setdefault(nreaders, {"commits": 0, "seconds": 0.0, "samples": latency.Samples(),
                                      "log_size_after": [], "reader_ops_per_s": []})
        res = durable_puts(db, seconds / 2, rng, samples=a["samples"])
        a["commits"] += res["commits"]
        a["seconds"] += res["seconds"]
        a["log_size_after"].append(int(db.stats()["log_size"]))  # readers that never pause keep the log from restarting
        for r in readers:
            r.send("stop")
        a["reader_ops_per_s"] += [r.result()["ops_per_s"] for r in readers]
    out: Dict[str, Any] = {}
    for nreaders, a in acc.items():
        out[str(nreaders)] = {
            "commits": a["commits"],
            "commits_per_s": a["commits"] / a["seconds"],
            "latency": latency.summarize(a["samples"]),
            "log_size_after": max(a["log_size_after"]),
            "reader_ops_per_s": a["reader_ops_per_s"],
        }
    return out


def settle(db: Store) -> int:
    """settle commits small puts until the log is back under its checkpoint threshold (the
    readers of the phase before may have kept it from restarting); returns how many."""
    threshold = _threshold(db) or 4 * 2**20
    n = 0
    while int(db.stats()["log_size"]) > threshold and n < 5000:
        db[b"settle%06d" % n] = b"x"
        n += 1
    return n


def log_growth(db: Store, path: str, seconds: float) -> Dict[str, Any]:
    rng = random.Random(4)
    settle(db)
    # the same commits with no reader: the log as it normally is
    free = durable_puts(db, seconds, rng, watch_log=True)
    holder = Child("holder", path)
    holder.expect("OPEN")
    holder.send("snap")
    holder.expect("HELD")
    held = durable_puts(db, seconds, rng, watch_log=True)
    holder.send("release")
    holder.expect("RELEASED")
    after_commits = 0
    at_release = size = int(db.stats()["log_size"])
    while after_commits < 1000:  # the first commit past the threshold checkpoints and restarts the log
        db[b"after%06d" % after_commits] = b"x"
        after_commits += 1
        size = int(db.stats()["log_size"])
        if size < held["log_largest"] // 4:
            break
    holder.send("stop")
    holder.proc.wait(60)
    return {
        "no_reader": {"commits": free["commits"], "log_largest": free["log_largest"]},
        "snapshot_held": {"commits": held["commits"], "log_largest": held["log_largest"]},
        "after_release": {"log_size_at_release": at_release, "commits": after_commits, "log_size": size},
        "checkpoint_threshold": _threshold(db),
    }


def _threshold(db: Store) -> Optional[int]:
    """_threshold: the log size that triggers a checkpoint, if this version of the pager says (private)."""
    pager = getattr(db, "_pager", None)
    fn = getattr(pager, "checkpoint_threshold", None)
    return int(fn()) if fn is not None else None


def mib(n: Optional[float]) -> str:
    if n is None:
        return "?"
    if n < 1024:
        return f"{n:.0f} B"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def report(res: Dict[str, Any]) -> None:
    rt = res["reader_throughput"]
    s = latency.sig3
    print(f"readers beside a writer: {res['records']} records of {VALUE} B, {res['seconds']} s per measurement; "
          f"load average {res['load_average'][0]:.1f} on {os.cpu_count()} cpus at the start")
    print()
    print("1. one reader process                  point reads/s   full-scan items/s")
    for label, name in (("alone", "no writer"), ("beside_idle_writer", "beside a writer that does not commit"),
                        ("beside_writer", "beside a busy writer")):
        r = rt[label]
        print(f"   {name:35s}  {s(r['point_reads_per_s']):>13}   {s(r['scan_items_per_s']):>17}")
    ratio_p = rt["beside_writer"]["point_reads_per_s"] / rt["alone"]["point_reads_per_s"]
    ratio_s = rt["beside_writer"]["scan_items_per_s"] / rt["alone"]["scan_items_per_s"]
    print(f"   {'beside / alone':35s}  {ratio_p:>12.2f}x   {ratio_s:>16.2f}x")
    print(f"   (the busy writer: {s(rt['writer']['commits_per_s'])} commits/s of 10 overwrites, sync=False)")
    print()
    print("2. durable one-put commits   commits/s         p50 / p99 / p99.9           log at end  readers' ops/s (sum)")
    base = res["commit_rates"]["0"]["commits_per_s"]
    for n, r in res["commit_rates"].items():
        ops = s(sum(r["reader_ops_per_s"]) / 2) if r["reader_ops_per_s"] else "-"
        rate = f"{s(r['commits_per_s'])} ({r['commits_per_s'] / base:.2f}x)"
        print(f"   {n} reader processes     {rate:>16}  {latency.format_summary(r['latency']):>28}  "
              f"{mib(r['log_size_after']):>10}  {ops}")
    print()
    lg = res["log_growth"]
    print("3. the log (stats()['log_size'])")
    print(f"   no reader: largest {mib(lg['no_reader']['log_largest'])} over {lg['no_reader']['commits']} durable commits "
          f"(checkpoint threshold {mib(lg['checkpoint_threshold'])})")
    print(f"   one snapshot held in another process: largest {mib(lg['snapshot_held']['log_largest'])} "
          f"over {lg['snapshot_held']['commits']} commits")
    ar = lg["after_release"]
    print(f"   after the reader lets go: {mib(ar['log_size_at_release'])} -> {mib(ar['log_size'])} "
          f"after {ar['commits']} more commit(s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each measurement (default 3)")
    ap.add_argument("--records", type=int, default=20000, help="records in the store (default 20000)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--dir", default=None, help="where the temporary store goes (default: the system's)")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.role:
        role = args.role
        if role == "reader":
            role_reader(rest[0], int(rest[1]), float(rest[2]), int(rest[3]))
        elif role == "loop":
            role_loop(rest[0], int(rest[1]), int(rest[2]))
        elif role == "writer":
            role_writer(rest[0], int(rest[1]), float(rest[2]), int(rest[3]), bool(int(rest[4])))
        elif role == "holder":
            role_holder(rest[0])
        return
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    d = tempfile.mkdtemp(dir=args.dir, prefix="readers-bench-")
    try:
        path = os.path.join(d, "store")
        make_store(path, args.records)
        res: Dict[str, Any] = {"records": args.records, "seconds": args.seconds, "load_average": os.getloadavg(),
                               "cpus": os.cpu_count()}
        res["reader_throughput"] = reader_throughput(path, args.records, args.seconds)
        with Store(path, create=False) as db:
            res["commit_rates"] = commit_rates(db, path, args.records, args.seconds)
            res["log_growth"] = log_growth(db, path, args.seconds)
        report(res)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
