"""multiproc_child: the processes of tests/test_multiproc.py (writers in several processes, issue 26).

``python multiproc_child.py ROLE PATH ...``; each role prints ``START`` once the store is
open, and lines the parent reads (flushed at once: the parent may SIGKILL it any time).

``counter PATH N``
    N transactions, each reading ``counter`` and writing it back plus one. Prints ``DONE``.
``transfer PATH SEED N ACCOUNTS``
    N transactions, each moving min(amount, balance) between two random accounts and
    recording the move as ``op/<seq>`` (``seq`` read and bumped in the same transaction), so
    that a serial replay of the ops in seq order must give the final balances.
``sum PATH STOP TOTAL``
    Read-only: until the file STOP exists, sums the balances in a snapshot; prints ``BAD sum``
    for a sum other than TOTAL, then ``DONE rounds``.
``writer PATH NAME SEED [PAUSE]``
    Without end: transactions of 2 to 6 keys ``t/NAME/n/i`` (now and then a big one, whose
    values spill from a small cache) and single puts ``s/NAME/n``, durable; prints
    ``ACK t n k`` / ``ACK s n`` once the commit returned. PAUSE: seconds between writes (a
    soak's store grows slower).
``groups PATH STOP``
    Read-only: until STOP exists, checks in snapshots that every transaction ``t/NAME/n`` is
    whole (its keys ``i`` are 0..k-1, each value naming k); prints ``BAD ...`` otherwise.
``hold PATH SECONDS``
    Opens a transaction, writes in it, prints ``HELD``, sleeps SECONDS, commits, prints ``DONE``.
``keep PATH SECONDS``
    Writes ``kept`` (its turn then kept: no other writer asked), prints ``KEPT yes|no``, idles
    SECONDS, then prints whether it still keeps it (``STILL yes|no``) and what ``kept`` reads
    (``READ value``; another writer may have changed it).
``put PATH KEY``
    Opens the store as a writer, puts KEY (timeout 10 s) and prints ``PUT seconds``: how long
    the put took, waiting for the turn included.
``hang PATH KEY``
    Opens the store as a writer, puts ``base``, then puts KEY, whose sync of the log hangs
    after its slot is taken and before the fdatasync (prints ``IN_SYNC``; a kill -9 mid-sync).
"""
from __future__ import annotations

import os
import random
import sys
import time
from typing import Iterable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def counter(path: str, n: int) -> None:
    with pagestore.open(path, timeout=60) as db:
        say("START")
        for _ in range(n):
            with db.transaction() as t:
                t[b"counter"] = b"%d" % (int(t.get(b"counter", b"0")) + 1)
        say("DONE")


def transfer(path: str, seed: int, n: int, accounts: int) -> None:
    rng = random.Random(seed)
    with pagestore.open(path, timeout=60) as db:
        say("START")
        for _ in range(n):
            a, b = rng.sample(range(accounts), 2)
            amount = rng.randint(1, 50)
            with db.transaction() as t:
                ka, kb = b"acct/%04d" % a, b"acct/%04d" % b
                have = int(t[ka])
                moved = min(amount, have)
                t[ka] = b"%d" % (have - moved)
                t[kb] = b"%d" % (int(t[kb]) + moved)
                seq = int(t.get(b"seq", b"0"))
                t[b"seq"] = b"%d" % (seq + 1)
                t[b"op/%08d" % seq] = b"%d %d %d" % (a, b, amount)
        say("DONE")


def sum_reader(path: str, stop: str, total: int) -> None:
    rounds = 0
    with pagestore.open(path, readonly=True) as db:
        say("START")
        while not os.path.exists(stop):
            with db.snapshot() as s:
                got = sum(int(v) for _k, v in s.items(prefix=b"acct/"))
            if got != total:
                say(f"BAD {got}")
            rounds += 1
        say(f"DONE {rounds}")


def writer(path: str, name: str, seed: int, pause: float = 0.0) -> None:
    rng = random.Random(seed)
    with pagestore.open(path, timeout=60, cache_size=64 * 4096) as db:
        say("START")
        n = 0
        while True:
            n += 1
            if pause:
                time.sleep(pause)
            r = rng.random()
            if r < 0.4:
                db[b"s/%s/%d" % (name.encode(), n)] = b"x" * rng.randint(1, 200)
                say(f"ACK s {n}")
                continue
            big = r > 0.99
            k = rng.randint(50, 90) if big else rng.randint(2, 6)
            size = 4000 if big else 100
            with db.transaction() as t:
                for i in range(k):
                    t[b"t/%s/%d/%d" % (name.encode(), n, i)] = b"%d:" % k + rng.randbytes(rng.randint(1, size))
            say(f"ACK t {n} {k}")


def group_errors(items: "Iterable[tuple[bytes, bytes]]") -> "list[str]":
    """group_errors: what is wrong with the ``t/NAME/n/i`` groups among ``items`` (a half transaction).
    Keeps the keys' numbers only, not the values."""
    groups: "dict[tuple[bytes, bytes], list[tuple[int, int]]]" = {}
    for k, v in items:
        _t, name, n, i = k.split(b"/")
        groups.setdefault((name, n), []).append((int(i), int(v.split(b":", 1)[0])))
    bad = []
    for (name, n), members in groups.items():
        want = members[0][1]
        if sorted(i for i, _ in members) != list(range(want)) or any(k != want for _, k in members):
            bad.append(f"{name.decode()}/{n.decode()}: {len(members)} of {want} keys")
    return bad


def groups(path: str, stop: str) -> None:
    rounds = 0
    with pagestore.open(path, readonly=True) as db:
        say("START")
        while not os.path.exists(stop):
            with db.snapshot() as s:
                for line in group_errors(s.items(prefix=b"t/")):
                    say(f"BAD {line}")
            rounds += 1
            time.sleep(0.05)
        say(f"DONE {rounds}")


def hold(path: str, seconds: float) -> None:
    with pagestore.open(path) as db:
        say("START")
        with db.transaction() as t:
            t[b"held"] = b"1"
            say("HELD")
            time.sleep(seconds)
        say("DONE")


def keep(path: str, seconds: float) -> None:
    with pagestore.open(path) as db:
        say("START")
        db[b"kept"] = b"1"
        turns = getattr(db, "_turns", None)
        say(f"KEPT {'yes' if turns is not None and turns.kept else 'no'}")
        time.sleep(seconds)
        say(f"STILL {'yes' if turns is not None and turns.kept else 'no'}")
        say(f"READ {db[b'kept'].decode()}")


def put(path: str, key: str) -> None:
    with pagestore.open(path, timeout=10) as db:
        say("START")
        t0 = time.monotonic()
        db[key.encode()] = b"2"
        say(f"PUT {time.monotonic() - t0:.4f}")


def hang(path: str, key: str) -> None:
    from pagestore import fileio

    with pagestore.open(path, timeout=10) as db:
        say("START")
        db[b"base"] = b"1"
        real = fileio.File.sync

        def sync(self: fileio.File) -> None:
            if self.path.endswith("-wal"):
                say("IN_SYNC")
                time.sleep(3600)
            real(self)

        fileio.File.sync = sync  # type: ignore[method-assign]
        db[key.encode()] = b"1"
        say("NEVER")


def first_dies(path: str) -> None:
    """first_dies: an open that stops in its first turn's recovery before it writes the new log's
    header (the parent kills it there)."""
    from pagestore import wal

    def reset(self: wal.WAL, generation: int) -> None:
        say("IN_RESET")
        time.sleep(3600)

    wal.WAL.reset = reset  # type: ignore[method-assign]
    pagestore.open(path)


def joined(path: str, go: str, n: int) -> None:
    """joined: an open (made while another writer holds its first turn), which then, once ``go``
    exists, counts ``n`` in durable transactions and dies without closing (no checkpoint)."""
    db = pagestore.open(path, timeout=30)
    say(f"OPEN {db.get(b'counter', b'0').decode()}")
    while not os.path.exists(go):
        time.sleep(0.01)
    for i in range(n):
        with db.transaction() as t:
            t[b"counter"] = b"%d" % (int(t.get(b"counter", b"0")) + 1)
        say(f"ACK {i + 1}")
    os._exit(0)


def main(argv: "list[str]") -> None:
    role, path, *rest = argv
    if role == "counter":
        counter(path, int(rest[0]))
    elif role == "transfer":
        transfer(path, int(rest[0]), int(rest[1]), int(rest[2]))
    elif role == "sum":
        sum_reader(path, rest[0], int(rest[1]))
    elif role == "writer":
        writer(path, rest[0], int(rest[1]), float(rest[2]) if len(rest) > 2 else 0.0)
    elif role == "groups":
        groups(path, rest[0])
    elif role == "hold":
        hold(path, float(rest[0]))
    elif role == "keep":
        keep(path, float(rest[0]))
    elif role == "put":
        put(path, rest[0])
    elif role == "first_dies":
        first_dies(path)
    elif role == "joined":
        joined(path, rest[0], int(rest[1]))
    elif role == "hang":
        hang(path, rest[0])
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main(sys.argv[1:])
