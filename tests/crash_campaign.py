"""crash_campaign: kill -9 a writer that has two readers beside it, at random moments, round after round.

Issue 20's campaign: the writer's log restarts often (small ``KEEP_BYTES`` and
``wal_limit``, or now and then the real constants with logs past 4 MiB), its
transactions vary (single puts, small ones, big ones whose overflow values
spill from the cache, deletes, an occasional ``compact()``, durable and
``sync=False`` mixed), and two readonly reader processes loop over snapshots
and iterations, some held for a while (so checkpoints copy partially and
restarts wait). Every transaction keeps ``__sum__`` equal to the total length
of the ``k...`` values, so a reader checks any state it sees on its own.

The parent SIGKILLs the writer at a random moment (sometimes a reader too),
stops the readers, and reopens the store (a copy, read-only, or in place, in
turn: test_crash.verify): it must pass ``check()``, hold every transaction the
writer acknowledged (``ACK n D``, printed after the commit call returned: D is
1 for a durable commit), and hold exactly the model's contents after its
transaction (nothing partial). Readers report each wrong sum at once (``BAD``).

Roles (``python crash_campaign.py ROLE ...``), run as test_crash.Child processes:

``writer PATH SEED PAGE_SIZE MODE MMAP``
    MODE ``small`` (KEEP_BYTES 16 pages, wal_limit 48 pages: a restart every few
    commits) or ``real``. Prints ``START n``, ``ACK n D``, ``GEN g PEAK`` when the
    log started generation g (PEAK: the largest log file of the generation
    before, in bytes), ``COMPACTED n`` / ``NOCOMPACT n`` (refused: readers open).
``reader PATH STOP MMAP SEED``
    Until the file STOP exists. Prints ``START 0``, ``BAD ...`` per wrong sum or
    counter gone back, ``ERR ...`` per other error, ``DONE rounds``.

As a script: ``python tests/crash_campaign.py --rounds N --seed S`` runs N rounds
in each configuration (pages of 1 KiB and 4 KiB, mmap on and off) and prints
a summary per configuration.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Dict, Iterable, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import crash_writer  # noqa: E402
from crash_writer import COUNTER, Op  # noqa: E402

SUM = b"__sum__"
PREFIX = b"k"  # crash_writer's keys: k0000 ...
CONFIGS: List[Tuple[int, bool]] = [(1024, True), (1024, False), (4096, True), (4096, False)]


def campaign_ops(seed: int, n: int, keys: Iterable[bytes]) -> List[Op]:
    """campaign_ops: crash_writer's transaction n, or now and then (3%) a big one of 40 to 120 puts
    of 2 to 20 KB values, which spills pages from the writer's 64-page cache."""
    rng = random.Random(f"{seed}:{n}:big")
    if rng.random() >= 0.03:
        return crash_writer.txn_ops(seed, n, keys)
    return [(b"k%04d" % rng.randrange(crash_writer.NKEYS), b"%d/" % n + rng.randbytes(rng.randint(2000, 20000)))
            for _ in range(rng.randint(40, 120))]


def is_durable(seed: int, n: int) -> bool:
    """is_durable: whether transaction n commits with sync=True (70%)."""
    return random.Random(f"{seed}:{n}:sync").random() < 0.7


class CampaignModel(crash_writer.Model):
    """CampaignModel: crash_writer's model with campaign_ops and the ``__sum__`` key."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed, campaign_ops)

    def state(self, n: int) -> Dict[bytes, bytes]:
        want = super().state(n)
        if n:
            want[SUM] = b"%d" % sum(len(v) for k, v in want.items() if k.startswith(PREFIX))
        return want


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ---- the writer ----


def _killing_opener(kill: str) -> Any:
    """_killing_opener: a file opener whose files SIGKILL this process right after one I/O call.

    ``kill``: ``io:K``, after the K-th write, truncate or sync of any file; ``truncate:J:t``,
    right after the J-th truncate of the log (a log restart, or recovery cutting a torn
    tail); ``truncate:J:w``, right after the first write to the log that follows it. A kill
    at a random moment lands between two I/O calls in proportion to the time between them:
    a restart's few microseconds are found once in thousands of rounds. These land on the
    I/O boundaries themselves.
    """
    import pagestore.fileio as fileio

    parts = kill.split(":")
    state = {"calls": 0, "truncates": 0, "armed": False}

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    class KillFile(fileio.File):
        def _event(self, name: str) -> None:
            state["calls"] += 1
            if parts[0] == "io" and state["calls"] == int(parts[1]):
                die()
            if parts[0] == "truncate" and self.path.endswith("-wal"):
                if name == "truncate":
                    state["truncates"] += 1
                    if state["truncates"] == int(parts[1]):
                        if parts[2] == "t":
                            die()
                        state["armed"] = True
                elif name == "write" and state["armed"]:
                    die()

        def write(self, offset: int, data: Any) -> None:
            super().write(offset, data)
            self._event("write")

        def truncate(self, size: int) -> None:
            super().truncate(size)
            self._event("truncate")

        def sync(self) -> None:
            super().sync()
            self._event("sync")

    def opener(path: str, *, create: bool = False, readonly: bool = False) -> fileio.File:
        return KillFile(path, create=create, readonly=readonly)

    return opener


def writer(path: str, seed: int, page_size: int, mode: str, mmap: bool, kill: str = "time") -> None:
    import pagestore.checkpointer
    import pagestore.pager
    import pagestore.wal
    from pagestore import fileio
    from pagestore.errors import PageStoreError
    from pagestore.store import Store

    wal_limit = pagestore.pager.DEFAULT_WAL_LIMIT
    if mode == "small":
        pagestore.wal.KEEP_BYTES = pagestore.checkpointer.KEEP_BYTES = 16 * page_size
        wal_limit = 48 * page_size
    keep = pagestore.wal.KEEP_BYTES
    opener = fileio.open_file if kill == "time" else _killing_opener(kill)
    db = Store(path, page_size=page_size, cache_size=page_size * 64, wal_limit=wal_limit, sync=True, mmap=mmap,
               _opener=opener)
    n = int(db.get(COUNTER, b"0"))
    sizes = {k: len(v) for k, v in db.items(prefix=PREFIX)}
    total = sum(sizes.values())
    assert n == 0 or int(db[SUM]) == total
    wal = db._pager.wal  # the harness watches the log's generation: how many restarts it reached
    assert wal is not None
    gen, peak = wal.generation, wal.disk_size()
    out(f"START {n} {keep}")
    while True:
        n += 1
        ops = campaign_ops(seed, n, sizes)
        durable = is_durable(seed, n)
        with db.transaction(sync=durable) as txn:
            for k, v in ops:
                if v is None:
                    del txn[k]
                    total -= sizes.pop(k)
                else:
                    txn[k] = v
                    total += len(v) - sizes.get(k, 0)
                    sizes[k] = len(v)
            txn[COUNTER] = b"%d" % n
            txn[SUM] = b"%d" % total
        out(f"ACK {n} {int(durable)}")
        if wal.generation != gen:
            out(f"GEN {wal.generation} {peak}")
            gen, peak = wal.generation, 0
        peak = max(peak, wal.disk_size())
        if crash_writer.wants_compact(seed, n):
            try:
                db.compact()
            except PageStoreError:
                out(f"NOCOMPACT {n}")  # a reader has the store open
            else:
                out(f"COMPACTED {n}")
            wal = db._pager.wal
            assert wal is not None
            gen, peak = wal.generation, max(peak, wal.disk_size())


# ---- the readers ----


def _sums(items: Iterable[Tuple[bytes, bytes]]) -> Tuple[int, int, int]:
    """_sums: (counter, the __sum__ value, the k-values' total length) of one state's items."""
    counter = total = got = 0
    for k, v in items:
        if k == COUNTER:
            counter = int(v)
        elif k == SUM:
            total = int(v)
        elif k.startswith(PREFIX):
            got += len(v)
    return counter, total, got


def reader(path: str, stop: str, mmap: bool, seed: int) -> None:
    from pagestore.errors import CorruptionError, PageStoreError
    from pagestore.store import Store

    rng = random.Random(seed)

    def open_() -> Any:
        return Store(path, readonly=True, create=False, mmap=mmap)

    db = open_()
    out("START 0")
    rounds, last = 0, 0

    def judge(way: str, seen: Tuple[int, int, int]) -> None:
        nonlocal last
        counter, total, got = seen
        if got != total:
            out(f"BAD sum {way} counter {counter}: __sum__ {total}, values {got}")
        if counter < last:
            out(f"BAD backwards {way}: counter {counter} after {last}")
        last = max(last, counter)

    while not os.path.exists(stop):
        r = rng.random()
        try:
            if r < 0.04:  # let go of the store for a moment (a compact() can run then)
                db.close()
                time.sleep(rng.uniform(0.02, 0.2))
                db = open_()
                continue
            if r < 0.25:  # hold a snapshot for a while: checkpoints copy partially, restarts wait
                with db.snapshot() as snap:
                    first = _sums(snap.items())
                    judge("held", first)
                    time.sleep(rng.uniform(0.05, 0.5))
                    again = _sums(snap.items())
                    if again != first:
                        out(f"BAD held snapshot changed: {first} then {again}")
            elif r < 0.6:
                with db.snapshot() as snap:
                    judge("snapshot", _sums(snap.items()))
            else:
                judge("items", _sums(db.items()))
        except CorruptionError as exc:
            out(f"BAD {type(exc).__name__}: {exc}".replace("\n", " "))
        except PageStoreError as exc:
            out(f"ERR {type(exc).__name__}: {exc}".replace("\n", " "))
            time.sleep(0.01)
        except Exception:
            out("BAD " + traceback.format_exc().replace("\n", " | "))
            time.sleep(0.01)
        rounds += 1
    db.close()
    out(f"DONE {rounds}")


# ---- the parent ----


def _remove_store(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


def run_config(tmp: str, page_size: int, mmap: bool, rounds: int, seed: int, *, max_delay: float = 2.0,
               say: Any = None, ways: Optional[List[str]] = None) -> Dict[str, Any]:
    """run_config runs ``rounds`` kill -9 rounds on one store and returns what they counted.

    A round whose reopen fails (a lost commit, a failed check) is recorded in
    ``failures`` and the next round starts on a fresh store.
    """
    from crashchild import Child
    from test_crash import verify

    rng = random.Random(seed)
    path = os.path.join(tmp, f"db-{page_size}-{'mmap' if mmap else 'nommap'}.ps")
    stop = path + ".stop"
    _remove_store(path)
    model = CampaignModel(seed)
    stats: Dict[str, Any] = {
        "rounds": 0, "kills": 0, "reader_kills": 0, "acks": 0, "durable_acks": 0, "acks_checked": 0,
        "lost": 0, "lost_durable": 0, "wrong_sums": 0, "reader_errors": 0, "reader_rounds": 0,
        "restarts": 0, "long_restarts": 0, "compactions": 0, "compact_refused": 0, "real_rounds": 0,
        "self_kills": 0, "killed_opening": 0, "kill_ways": {"time": 0, "io": 0, "truncate": 0},
        "failures": [], "bad": [], "errors": [],
    }
    last = 0
    flag = "1" if mmap else "0"
    script = os.path.join(HERE, "crash_campaign.py")
    for r in range(rounds):
        mode = "real" if rng.random() < 0.25 else "small"
        stats["real_rounds"] += mode == "real"
        err = os.path.join(tmp, "child.err")
        r_kill = rng.random()
        if ways:
            r_kill = {"time": 0.0, "io": 0.5, "truncate": 0.75}[ways[r % len(ways)]]
        if r_kill < 0.5:
            kill = "time"
        elif r_kill < 0.75:
            kill = f"io:{rng.randint(1, 4000)}"
        else:
            kill = f"truncate:{rng.randint(1, 8)}:{rng.choice('tw')}"
        stats["kill_ways"][kill.split(":")[0]] += 1
        w = Child([script, "writer", path, str(seed), str(page_size), mode, flag, kill], err)
        w.started.wait(60)
        opened = any(x.startswith("START") for x in w.lines)
        rc = None
        if not opened:  # it killed itself while it opened (in recovery), or it failed
            try:
                rc = w.proc.wait(30)  # its output ended: it is exiting
            except subprocess.TimeoutExpired:
                pass
        if not opened and rc != -signal.SIGKILL:
            w.kill()
            with open(err, "rb") as f:
                raise AssertionError(f"the campaign writer did not start:\n{f.read().decode(errors='replace')}")
        readers = [Child([script, "reader", path, stop, flag, str(rng.randrange(1 << 30))],
                         os.path.join(tmp, f"reader{i}.err")) for i in range(2)]
        for c in readers:
            c.started.wait(60)
        delay = rng.uniform(0.1, max_delay)
        if kill == "time":
            time.sleep(delay)
        else:  # the writer kills itself at an I/O event; if it has not by then, a kill at a random moment
            try:
                w.proc.wait(delay + max_delay)
            except subprocess.TimeoutExpired:
                pass
            else:
                stats["self_kills"] += 1
        victim = readers[rng.randrange(2)] if rng.random() < 0.25 else None
        rc = w.kill()
        if victim is not None:
            victim.kill()
            stats["reader_kills"] += 1
        if rc != -signal.SIGKILL:
            with open(err, "rb") as f:
                raise AssertionError(f"the campaign writer exited by itself (rc {rc}):\n{f.read().decode(errors='replace')}")
        stats["kills"] += 1
        open(stop, "w").close()
        for c in readers:
            if c is not victim:
                try:
                    c.proc.wait(120)
                except Exception:
                    c.kill()
                c.reader.join(30)
                c.err.close()
        os.unlink(stop)
        for c in readers:
            for line in c.lines:
                if line.startswith("BAD"):
                    stats["wrong_sums"] += 1
                    if len(stats["bad"]) < 10:
                        stats["bad"].append(f"round {r}: {line[:300]}")
                elif line.startswith("ERR"):
                    stats["reader_errors"] += 1
                    if len(stats["errors"]) < 10:
                        stats["errors"].append(f"round {r}: {line[:300]}")
                elif line.startswith("DONE"):
                    stats["reader_rounds"] += int(line.split()[1])
            if c is not victim and not any(x.startswith("DONE") for x in c.lines):
                with open(c.err.name, "rb") as f:
                    stats["bad"].append(f"round {r}: a reader ended without DONE: {f.read().decode(errors='replace')[-500:]}")
                stats["wrong_sums"] += 1
        start = w.start_txn() if opened else last
        keep_bytes = next((int(x.split()[2]) for x in w.lines if x.startswith("START")), 0)
        stats["killed_opening"] += not opened
        acks = [(int(x.split()[1]), x.split()[2] == "1") for x in w.lines if x.startswith("ACK")]
        ack = acks[-1][0] if acks else start
        stats["acks"] += len(acks)
        stats["durable_acks"] += sum(d for _, d in acks)
        for x in w.lines:
            if x.startswith("GEN"):
                stats["restarts"] += 1
                stats["long_restarts"] += int(x.split()[2]) > keep_bytes
        stats["compactions"] += sum(x.startswith("COMPACTED") for x in w.lines)
        stats["compact_refused"] += sum(x.startswith("NOCOMPACT") for x in w.lines)
        how = ("copy", "readonly", "inplace")[r % 3]
        try:
            if start != last:
                raise AssertionError(f"the writer started from txn {start}, the parent verified {last}")
            last = verify(path, how, model, ack, page_size)
            stats["acks_checked"] += len(acks)
        except Exception as exc:
            n = _counter(path, page_size)
            lost = [a for a, _ in acks if n is not None and a > n]
            stats["lost"] += len(lost)
            stats["lost_durable"] += sum(1 for a, d in acks if d and n is not None and a > n)
            stats.setdefault("first_failure", r)
            stats["failures"].append(f"round {r} ({mode}, kill {kill}, verified {how}, last ack {ack}, store says {n}): "
                                     f"{type(exc).__name__}: {str(exc)[:300]}")
            if say:
                say(f"  FAILURE {stats['failures'][-1]}")
            keep = os.path.join(tmp, f"failed-{page_size}-{flag}-round{r}")
            os.makedirs(keep, exist_ok=True)
            for suffix in ("", "-wal"):
                if os.path.exists(path + suffix):
                    shutil.copyfile(path + suffix, os.path.join(keep, "db.ps" + suffix))
            _remove_store(path)
            model, last = CampaignModel(seed + r + 1), 0
            seed = seed + r + 1
        stats["rounds"] += 1
    return stats


def _counter(path: str, page_size: int) -> Optional[int]:
    """_counter: the transaction a failed store names, read from a copy (None if it cannot be read)."""
    from pagestore.store import Store

    side = path + ".peek"
    try:
        shutil.copyfile(path, side)
        if os.path.exists(path + "-wal"):
            shutil.copyfile(path + "-wal", side + "-wal")
        with Store(side, create=False, page_size=page_size) as db:
            return int(db.get(COUNTER, b"0"))
    except Exception:
        return None
    finally:
        _remove_store(side)


def summary(label: str, s: Dict[str, Any]) -> str:
    lines = [
        f"{label}: {s['rounds']} rounds ({s['real_rounds']} with the real log constants), {s['kills']} writer kills, "
        f"{s['reader_kills']} reader kills (kills at a random time {s['kill_ways']['time']}, at a random I/O call "
        f"{s['kill_ways']['io']}, at a log truncate {s['kill_ways']['truncate']}; {s['self_kills']} landed on their I/O call, {s['killed_opening']} while it opened); {s['acks']} acknowledged commits ({s['durable_acks']} durable), "
        f"{s['acks_checked']} checked; lost {s['lost']} ({s['lost_durable']} durable); "
        f"wrong sums {s['wrong_sums']}; reader errors {s['reader_errors']} in {s['reader_rounds']} reads; "
        f"log restarts {s['restarts']} ({s['long_restarts']} of a log past KEEP_BYTES); "
        f"compactions {s['compactions']} ({s['compact_refused']} refused: readers open); "
        f"failed rounds {len(s['failures'])}"
    ]
    lines += [f"  failure: {f}" for f in s["failures"]]
    lines += [f"  first failure in round {s['first_failure']}"] if s["failures"] else []
    lines += [f"  reader: {b}" for b in s["bad"]]
    lines += [f"  reader error: {e}" for e in s["errors"][:3]]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20, help="rounds per configuration")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-delay", type=float, default=2.0, help="longest writer run before the kill, seconds")
    ap.add_argument("--config", action="append", help="PAGE_SIZE:mmap|nommap (default: all four)")
    ap.add_argument("--kill", action="append", choices=["time", "io", "truncate"],
                    help="the ways the writer is killed, in turn (default: at random, half of them at a random time)")
    ap.add_argument("--dir", help="work directory (default: a temporary one, removed at the end)")
    args = ap.parse_args(argv)
    configs = CONFIGS
    if args.config:
        configs = [(int(c.split(":")[0]), c.split(":")[1] == "mmap") for c in args.config]
    tmp = args.dir or tempfile.mkdtemp(prefix="pagestore-campaign-")
    os.makedirs(tmp, exist_ok=True)
    failed = 0
    t0 = time.monotonic()
    for i, (ps, mm) in enumerate(configs):
        label = f"{ps}-byte pages, {'mmap' if mm else 'no mmap'}"
        s = run_config(tmp, ps, mm, args.rounds, args.seed * 100 + i, max_delay=args.max_delay,
                       say=lambda m: print(m, flush=True), ways=args.kill)
        print(summary(label, s), flush=True)
        failed += len(s["failures"]) + s["wrong_sums"]
    print(f"campaign: {time.monotonic() - t0:.0f} s, work directory {tmp}")
    if not args.dir and not failed:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def _child(argv: List[str]) -> None:
    role = argv[1]
    if role == "writer":
        writer(argv[2], int(argv[3]), int(argv[4]), argv[5], argv[6] == "1", argv[7])
    elif role == "reader":
        reader(argv[2], argv[3], argv[4] == "1", int(argv[5]))
    else:
        sys.exit(main(argv[1:]))


if __name__ == "__main__":
    _child(sys.argv)
