"""readers_child: the other processes of tests/test_readers.py (issue 13: readers beside a writer).

Run as ``python readers_child.py ROLE PATH [ARGS...]``; each role talks to the
test through its stdin and stdout, one line at a time, flushed:

``serve PATH [--readonly] [--wal-limit N] [--no-mmap]``
    Opens the store and answers commands, one JSON object per line on stdin
    (``{"op": "get", "key": "6b31"}``; keys and values in hex), one JSON reply
    per line on stdout (``{"ok": ...}`` or ``{"error": "StoreLockedError",
    "msg": ...}``). The open itself is the first reply: ``{"ok": "open"}``.
    Snapshots are numbered; ``snap`` opens one and replies its number. The
    test drives it step by step, so what the reader saw and when is exact.

``bank-writer PATH NACC SEED [--wal-limit N] [--sync] [--seconds S]``
    Moves amounts between NACC accounts of the store ``bank_create`` made
    (keys ``acct/0000``..., values ``b"%012d" % balance + padding``), one
    transaction each, for S seconds (0: until killed), the total constant. Transaction n also sets
    ``counter`` to n and writes the key ``z/%08d`` % n; after its commit
    returns it prints ``ACK n``, and every 25 commits ``LOG n log_size``. The padding makes each commit log a few
    pages, so a small ``--wal-limit`` checkpoints every few commits.

``bank-reader PATH NACC TOTAL SECONDS MODE [--no-pause]``
    Reads the accounts over and over for SECONDS, in one way per round,
    cycling through the ways (snapshot items, ``snap[k]`` of every account
    inside one snapshot, iteration of ``db.items()``, ``db.get_many``), each
    with the counter read in the same snapshot or operation. Prints one JSON
    line at the end: ``{"rounds", "bad": [the first wrong sums], "backwards":
    [rounds that saw an older commit than one before], "counters": [distinct
    counters seen], "errors": [...]}``. MODE "mmap" or "no-mmap". The readers
    pause now and then, all at the same moments (see below), unless
    ``--no-pause``: then each round follows the last without a break.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from typing import Any, Dict, List

import pagestore
from pagestore.store import Store

COUNTER = b"counter"
MARK = b"z/%08d"  # one per commit; sorts after the accounts and the counter
QUIET_EVERY, QUIET_FOR = 0.25, 0.025  # seconds: when every bank reader pauses (see bank_reader)
PAD = 300  # bytes of padding per account value: more pages per commit, so the log grows quickly


def acct(i: int) -> bytes:
    return b"acct/%04d" % i


def balance(value: bytes) -> int:
    return int(value[:12])


def encode(amount: int) -> bytes:
    return b"%012d" % amount + b"." * PAD


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _flag(args: List[str], name: str) -> bool:
    if name in args:
        args.remove(name)
        return True
    return False


def _option(args: List[str], name: str, default: int) -> int:
    if name in args:
        i = args.index(name)
        value = int(args[i + 1])
        del args[i : i + 2]
        return value
    return default


# ---- serve ----


def serve(path: str, args: List[str]) -> None:
    readonly = _flag(args, "--readonly")
    mmap = not _flag(args, "--no-mmap")
    wal_limit = _option(args, "--wal-limit", 16 * 1024 * 1024)
    try:
        db = Store(path, create=not readonly, readonly=readonly, wal_limit=wal_limit, mmap=mmap)
    except Exception as exc:
        out(json.dumps({"error": type(exc).__name__, "msg": str(exc)}))
        return
    out(json.dumps({"ok": "open", "pid": os.getpid()}))
    snaps: Dict[int, Any] = {}
    iters: Dict[int, Any] = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            reply = _run(db, snaps, iters, cmd)
        except Exception as exc:
            out(json.dumps({"error": type(exc).__name__, "msg": str(exc)}))
        else:
            out(json.dumps({"ok": reply}))
        if cmd["op"] == "exit":
            break
    # Leaving without closing: the interpreter's finalisation closes what is left.


def _hex(b: Any) -> Any:
    return None if b is None else bytes(b).hex()


def _run(db: Store, snaps: Dict[int, Any], iters: Dict[int, Any], cmd: Dict[str, Any]) -> Any:
    op = cmd["op"]
    key = bytes.fromhex(cmd["key"]) if "key" in cmd else None
    target: Any = db
    if "snap" in cmd:
        target = snaps[cmd["snap"]]
    if op == "get":
        return _hex(target.get(key))
    if op == "getitem":
        return _hex(target[key])
    if op == "contains":
        return key in target
    if op == "len":
        return len(target)
    if op == "items":
        return [[_hex(k), _hex(v)] for k, v in target.items()]
    if op == "first":
        k, v = db.first()
        return [_hex(k), _hex(v)]
    if op == "last":
        k, v = db.last()
        return [_hex(k), _hex(v)]
    if op == "get_many":
        return [_hex(v) for v in db.get_many([bytes.fromhex(k) for k in cmd["keys"]])]
    if op == "snap":
        n = max(snaps, default=0) + 1
        snaps[n] = db.snapshot()
        return n
    if op == "close_snap":
        snaps.pop(cmd["snap"]).close()
        return None
    if op == "iter_start":  # an iteration left half way: it holds its snapshot
        n = max(iters, default=0) + 1
        it = iter(db.items())
        iters[n] = it
        k, v = next(it)
        return [n, _hex(k), _hex(v)]
    if op == "iter_rest":
        return [[_hex(k), _hex(v)] for k, v in iters.pop(cmd["iter"])]
    if op == "put":
        db[key] = bytes.fromhex(cmd["value"])
        return None
    if op == "fill":  # n puts of `size` bytes, each its own commit
        for i in range(cmd["n"]):
            db[b"%s%04d" % (cmd["tag"].encode(), i)] = bytes([i % 256]) * cmd["size"]
        return None
    if op == "fork_probe":
        return _fork_probe(db, snaps)
    if op == "stats":
        s = db.stats()
        return {k: s[k] for k in ("records", "log_size", "wal_size", "snapshots", "oldest_snapshot")}
    if op == "check":
        return db.check()
    if op == "close":
        for s in snaps.values():
            s.close()
        snaps.clear()
        db.close()
        return None
    if op == "exit":
        return None
    raise ValueError(f"unknown op {op!r}")


def _fork_probe(db: Store, snaps: Dict[int, Any]) -> Any:
    """_fork_probe forks; the child tries reads on the store (and on a snapshot) opened before the fork.

    Returns the child's outcome per read ("ok", or the exception's class and
    message) and its exit status. The child then closes the store and exits
    normally (finalisation included), which must harm nothing of the parent's.
    """
    r, w = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        probes = {
            "get": lambda: db.get(b"k"),
            "contains": lambda: b"k" in db,
            "len": lambda: len(db),
            "items": lambda: list(db.items()),
            "snapshot": lambda: db.snapshot().close(),
        }
        for n, snap in snaps.items():
            probes[f"snap{n}.get"] = lambda snap=snap: snap.get(b"k")
            probes[f"snap{n}.items"] = lambda snap=snap: list(snap.items())
        results = {}
        for name, fn in probes.items():
            try:
                fn()
            except Exception as exc:
                results[name] = f"{type(exc).__name__}: {exc}"
            else:
                results[name] = "ok"
        os.write(w, json.dumps(results).encode())
        os.close(w)
        try:
            db.close()
        finally:
            sys.exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return {"results": json.loads(b"".join(chunks) or b"{}"), "status": status}


# ---- bank ----


def bank_writer(path: str, args: List[str]) -> None:
    sync = _flag(args, "--sync")
    wal_limit = _option(args, "--wal-limit", 64 * 1024)
    seconds = _option(args, "--seconds", 0)
    nacc, seed = int(args[0]), int(args[1])
    db = Store(path, create=False, wal_limit=wal_limit, sync=sync)
    n = balance(db[COUNTER])
    rng = random.Random(f"{seed}:{n}")
    out("START %d" % n)
    deadline = time.monotonic() + seconds if seconds else None
    while deadline is None or time.monotonic() < deadline:
        n += 1
        a, b = rng.sample(range(nacc), 2)
        with db.transaction() as t:
            va, vb = balance(t[acct(a)]), balance(t[acct(b)])
            amount = rng.randint(0, va)
            t[acct(a)] = encode(va - amount)
            t[acct(b)] = encode(vb + amount)
            t[COUNTER] = encode(n)
            t[MARK % n] = b"%d" % n
        out("ACK %d" % n)
        if n % 25 == 0:
            out("LOG %d %d" % (n, db.stats()["log_size"]))
    db.close()
    out("DONE %d" % n)


def bank_create(path: str, nacc: int, each: int) -> int:
    """bank_create makes the store of the bank: NACC accounts of EACH, counter 0; returns the total."""
    with Store(path) as db:
        with db.transaction() as t:
            for i in range(nacc):
                t[acct(i)] = encode(each)
            t[COUNTER] = encode(0)
    return nacc * each


def bank_reader(path: str, args: List[str]) -> None:
    pause = not _flag(args, "--no-pause")
    nacc, total, seconds, mode = int(args[0]), int(args[1]), float(args[2]), args[3]
    keys = [acct(i) for i in range(nacc)]
    rng = random.Random()
    result: Dict[str, Any] = {"rounds": 0, "bad": [], "backwards": [], "counters": [], "errors": [], "ways": {}}
    counters = set()
    try:
        db = pagestore.open(path, readonly=True, mmap=(mode == "mmap"))
        out("OPEN")
        deadline = time.monotonic() + seconds
        way = 0
        took = [0.0] * 5  # the last round of each way (4: a full scan), in seconds
        while time.monotonic() < deadline:
            way = (way + 1) % 4
            full = way == 2 and result["ways"].get("2", 0) % 10 == 0
            # Now and then hold no mark at all for a moment, so that the writer
            # can restart its log: it does only when no reader holds a mark, so
            # readers that read without pause keep it from ever restarting (the
            # log grew to 1.5 GB in a minute). Every reader is idle in the same
            # QUIET_FOR of every QUIET_EVERY seconds of the clock (a round that
            # might not end before the next quiet time waits until after it),
            # and at random moments too. After a restart a snapshot reads pages
            # from the data file that later checkpoints overwrite, the case a
            # checkpoint that copied past a reader's mark gets wrong.
            phase = time.time() % QUIET_EVERY
            need = min(2 * took[4 if full else way] + 0.002, QUIET_EVERY - QUIET_FOR - 0.01)
            if not pause:
                pass
            elif phase < QUIET_FOR or QUIET_EVERY - phase < need:
                time.sleep((QUIET_FOR - phase) % QUIET_EVERY)
            elif rng.random() < 0.1:
                time.sleep(rng.uniform(0.001, 0.01))
            t0 = time.monotonic()
            if way == 0:  # a snapshot's items
                with db.snapshot() as snap:
                    counter = balance(snap[COUNTER])
                    got = sum(balance(v) for _, v in snap.items(prefix=b"acct/"))
                    n = len(snap)
                    # keys: nacc accounts, the counter, one z/ key per commit
                    if n != nacc + 1 + counter:
                        result["bad"].append(["len", n, counter])
            elif way == 1:  # every account read alone, in one snapshot, slowly
                with db.snapshot() as snap:
                    counter = balance(snap[COUNTER])
                    got = 0
                    for i, k in enumerate(keys):
                        got += balance(snap[k])
                        if i % 16 == 0:
                            time.sleep(0.0002)  # the writer commits and checkpoints meanwhile
                    if (counter and (MARK % counter) not in snap) or (MARK % (counter + 1)) in snap:
                        result["bad"].append(["marker", counter])
            elif way == 2:  # iteration over the store: a snapshot of its start
                # Every tenth to the end (one marker per commit: as many as the
                # counter says), the others only past the counter: a whole scan
                # grows with the commits, and long reads would starve the log.
                got, counter, marks = 0, -1, 0
                for k, v in db.items():
                    if k.startswith(b"acct/"):
                        got += balance(v)
                    elif k == COUNTER:
                        counter = balance(v)
                    elif not full:
                        break
                    else:
                        marks += 1
                if full and marks != counter:
                    result["bad"].append(["marks", marks, counter])
            else:  # one get_many: one operation, one commit
                values = db.get_many(keys + [COUNTER])
                got = sum(balance(v) for v in values[:-1])
                counter = balance(values[-1])
            took[4 if full else way] = time.monotonic() - t0
            result["ways"][str(way)] = result["ways"].get(str(way), 0) + 1
            result["rounds"] += 1
            if counters and counter < max(counters) and len(result["backwards"]) < 20:
                result["backwards"].append([way, counter, max(counters)])  # time went back
            counters.add(counter)
            if got != total and len(result["bad"]) < 20:
                result["bad"].append(["sum", way, got, counter])
        db.close()
    except Exception:
        result["errors"].append(traceback.format_exc())
    result["counters"] = sorted(counters)
    out(json.dumps(result))


def main() -> None:
    role, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if role == "serve":
        serve(path, args)
    elif role == "bank-writer":
        bank_writer(path, args)
    elif role == "bank-reader":
        bank_reader(path, args)
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
