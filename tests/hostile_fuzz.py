"""hostile_fuzz: the "1,000 hostile files" check of issue 20.

A few small stores are built (several page sizes; overflow values; a free
list; a log with frames, copied while the store was open, as a crash leaves
it; one built bottom-up by ``update`` into an empty store). Each hostile
variant is one of them changed by one mutation:

    flip         1 to 4 bytes of the data file flipped at random (header included)
    header       a field of page 0 set to a hostile value, the header checksum re-stamped
    page         a field of a page's header, a slot, a record's bytes, a child pointer
                 or a record id set to a hostile value, the page checksum re-stamped
    wal-flip     1 to 4 bytes of the log flipped
    wal-frame    a frame's header field, or a field of the page image it carries,
                 changed, and the page checksum and the log's checksum chain from that
                 frame on re-stamped, so that recovery believes it
    trunk        a free-list trunk page (format 4) changed: an extent's first page or
                 count, its ``next``, its record's length, or as ``page`` does; the
                 checksum re-stamped (a seed with a free list in the data file)

Every variant is opened in a child process (forked: no interpreter start per
file), with a 2 GiB address-space limit (RLIMIT_AS) and a 20 s alarm, read
only and then for writing; each open is followed by a read of every key,
a full scan, ``check()``, ``salvage()``, and (writable) a put and a delete
and ``compact()``. Each step must end with a result or a ``PageStoreError``:
a hang, a signal, ``MemoryError`` or any other exception type is a failure.

Run: ``python tests/hostile_fuzz.py --files 1000`` (prints a table of
outcomes by mutation); tests/test_hostile.py runs 60 in the fast suite and
1,000 under ``-m slow``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

from pagestore import format as fmt
from pagestore._native import crc32c
from pagestore.errors import PageStoreError
from pagestore.page import SlottedPage
from pagestore.store import Store
from pagestore.wal import FRAME_HEADER_SIZE, WAL_HEADER_SIZE

TIMEOUT = 20
ADDRESS_SPACE = 2 << 30
KINDS = ("flip", "header", "page", "wal-flip", "wal-frame", "trunk")

#: page 0's fields after the checksum, in order (docs/format.md): name, offset, size
HEADER_FIELDS = [
    ("page_count", 28, 4), ("root", 32, 4), ("tree_height", 36, 4), ("freelist_head", 40, 4),
    ("freelist_count", 44, 4), ("fsm_head", 48, 4), ("freelist_trunks", 52, 4), ("record_count", 56, 8),
    ("live_bytes", 64, 8), ("lsn", 72, 8), ("file_id", 80, 8), ("checkpoint_seq", 88, 8),
    ("version", 16, 4), ("page_size", 20, 4),
]
#: a slotted page's header fields (native/pagestore.h): name, offset, size
PAGE_FIELDS = [
    ("pgno", fmt.OFF_PGNO, 4), ("lsn", fmt.OFF_LSN, 8), ("type", fmt.OFF_TYPE, 1), ("flags", fmt.OFF_FLAGS, 1),
    ("nslots", fmt.OFF_NSLOTS, 2), ("nlive", fmt.OFF_NLIVE, 2), ("lower", fmt.OFF_LOWER, 2),
    ("upper", fmt.OFF_UPPER, 2), ("frag", fmt.OFF_FRAG, 2), ("next", fmt.OFF_NEXT, 4),
]
_FRAME = struct.Struct("<IIQQIIQ")  # pgno, commit, txn, offset, salt, size, base (pagestore/wal.py)
#: a frame header's fields: name, offset, size
FRAME_FIELDS = [("pgno", 0, 4), ("commit", 4, 4), ("txn", 8, 8), ("size", 28, 4), ("base", 32, 8)]
_SIZES = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


# ---- the stores mutated ----


def _fill(db: Store, rng: random.Random, n: int, page_size: int, prefix: bytes = b"k") -> None:
    with db.transaction() as txn:
        for i in range(n):
            size = rng.choice([0, 3, 40, 200, page_size // 3, page_size, page_size * 3])
            txn[prefix + b"%05d" % rng.randrange(n * 2)] = rng.randbytes(size)


def build_seeds(root: str) -> List[Tuple[str, str]]:
    """build_seeds makes the stores the variants start from; returns (name, directory holding ``db``)."""
    seeds = []
    rng = random.Random(20)

    def place(name: str) -> str:
        d = os.path.join(root, name)
        os.makedirs(d)
        return os.path.join(d, "db")

    # 512-byte pages: a tree of height 3, overflow values, a free list from deletes; closed.
    p = place("small-512")
    with Store(p, page_size=512) as db:
        for t in range(4):
            _fill(db, rng, 120, 512, b"a%d" % t)
        for k in list(db.keys())[::5]:
            del db[k]
    seeds.append(("small-512", os.path.dirname(p)))
    # 1 KiB pages, a crash image: the log holds the last commits (never checkpointed).
    p = place("log-1024")
    with Store(p, page_size=1024, wal_limit=1 << 30) as db:
        _fill(db, rng, 100, 1024)
        db.compact()  # the data file now holds the first commits; the log the next ones
        for t in range(6):
            _fill(db, rng, 25, 1024, b"b%d" % t)
            del db[next(iter(db.keys()))]
        for name in ("db", "db-wal"):
            shutil.copyfile(os.path.join(os.path.dirname(p), name), os.path.join(root, name + ".tmp"))
    for name in ("db", "db-wal"):
        os.replace(os.path.join(root, name + ".tmp"), os.path.join(os.path.dirname(p), name))
    for stale in ("db-shm",):
        if os.path.exists(os.path.join(os.path.dirname(p), stale)):
            os.unlink(os.path.join(os.path.dirname(p), stale))
    seeds.append(("log-1024", os.path.dirname(p)))
    # 4 KiB pages, built bottom-up (update into an empty store), with overflow values.
    p = place("bulk-4096")
    with Store(p, page_size=4096) as db:
        db.update((b"c%06d" % i, rng.randbytes(rng.choice([10, 100, 3000, 9000]))) for i in range(600))
    seeds.append(("bulk-4096", os.path.dirname(p)))
    # 2 KiB pages, many small records: a wider tree; closed.
    p = place("wide-2048")
    with Store(p, page_size=2048) as db:
        for t in range(3):
            with db.transaction() as txn:
                for i in range(400):
                    txn[b"d%06d" % rng.randrange(5000)] = b"v" * rng.randrange(30)
    seeds.append(("wide-2048", os.path.dirname(p)))
    # 512-byte pages, a fragmented free list of several trunks: two prefixes written in
    # turns (their pages interleave), one range-deleted; then a clear of part; closed.
    p = place("trunks-512")
    with Store(p, page_size=512) as db:
        for t in range(30):
            for pre in (b"e", b"f"):
                with db.transaction() as txn:
                    for i in range(8):
                        txn[pre + b"%03d%d" % (t, i)] = rng.randbytes(rng.choice([20, 200, 700]))
        db.delete_range(b"f", b"g")
        db.delete_range(b"e010", b"e015")
    seeds.append(("trunks-512", os.path.dirname(p)))
    return seeds


def _trunks(data: bytes, ps: int) -> List[int]:
    """_trunks: the free list's trunk pages in the data file, from the header's ``freelist_head`` (format 4)."""
    out: List[int] = []
    pgno = _get(data, 40, 4)
    pages = len(data) // ps
    while 0 < pgno < pages and pgno not in out and len(out) < 64:
        out.append(pgno)
        pgno = _get(data, pgno * ps + fmt.OFF_NEXT, 4)
    return out


def mutate_trunk(page: bytearray, rng: random.Random, pages: int) -> str:
    """mutate_trunk changes one extent (first or count), the record's length, or the chain's
    ``next`` of a trunk page, or anything ``mutate_page`` would; re-stamps the checksum."""
    sp = SlottedPage(page, validate=False)
    choice = rng.random()
    try:
        rec = sp.read(0)
    except PageStoreError:
        rec = b""
    start = page.find(rec) if rec else -1
    if choice < 0.6 and len(rec) >= 8 and start > 0:
        i = rng.randrange(len(rec) // 8)
        field = rng.choice([0, 4])
        off = start + 8 * i + field
        _set(page, off, 4, _hostile(rng, _get(page, off, 4), 4, pages))
        what = f"trunk.extent.{'first' if field == 0 else 'count'}"
    elif choice < 0.7 and len(rec) >= 16 and start > 0:
        i = rng.randrange(len(rec) // 8 - 1)  # two extents swapped: out of order
        a, b = bytes(page[start + 8 * i : start + 8 * i + 8]), bytes(page[start + 8 * i + 8 : start + 8 * i + 16])
        page[start + 8 * i : start + 8 * i + 16] = b + a
        what = "trunk.extent.order"
    elif choice < 0.8:
        _set(page, fmt.OFF_NEXT, 4, _hostile(rng, _get(page, fmt.OFF_NEXT, 4), 4, pages))
        what = "trunk.next"
    elif choice < 0.85:
        off = fmt.HEADER_SIZE + 2  # slot 0's length
        _set(page, off, 2, _hostile(rng, _get(page, off, 2), 2, pages))
        what = "trunk.length"
    else:
        return "trunk." + mutate_page(page, rng, pages)
    sp.set_checksum()
    return what


def _page_size(data: bytes) -> int:
    return int(struct.unpack_from("<I", data, 20)[0])


# ---- mutations ----


def _hostile(rng: random.Random, old: int, size: int, pages: int) -> int:
    top = (1 << (8 * size)) - 1
    pick = rng.choice(["zero", "one", "minus", "plus", "max", "half", "random", "page", "page", "small"])
    value = {"zero": 0, "one": 1, "minus": old - 1, "plus": old + 1, "max": top, "half": 1 << (8 * size - 1),
             "random": rng.getrandbits(8 * size), "page": rng.randrange(max(1, pages + 2)),
             "small": rng.randrange(16)}[pick]
    return value & top


def _set(buf: bytearray, off: int, size: int, value: int) -> None:
    struct.pack_into(_SIZES[size], buf, off, value)


def _get(buf: "bytes | bytearray", off: int, size: int) -> int:
    return int(struct.unpack_from(_SIZES[size], buf, off)[0])


def mutate_page(page: bytearray, rng: random.Random, pages: int) -> str:
    """mutate_page changes one thing in a slotted page's bytes and re-stamps its checksum; returns what."""
    ps = len(page)
    sp = SlottedPage(page, validate=False)
    choice = rng.random()
    nslots = _get(page, fmt.OFF_NSLOTS, 2)
    if choice < 0.4:
        name, off, size = rng.choice(PAGE_FIELDS)
        _set(page, off, size, _hostile(rng, _get(page, off, size), size, pages))
        what = f"page.{name}"
    elif choice < 0.6 and nslots:
        slot = rng.randrange(min(nslots, (ps - fmt.HEADER_SIZE) // fmt.SLOT_SIZE))
        off = fmt.HEADER_SIZE + slot * fmt.SLOT_SIZE + rng.choice([0, 2, 4])
        size = 1 if off % fmt.SLOT_SIZE == fmt.HEADER_SIZE % fmt.SLOT_SIZE + 4 else 2
        _set(page, off, size, _hostile(rng, _get(page, off, size), size, pages))
        what = "slot"
    elif choice < 0.85 and nslots:
        # a child pointer, a record id's page or an overflow stub's first page: a record's first 4 bytes
        try:
            rec = sp.read(rng.randrange(nslots))
            if len(rec) >= 4:
                start = page.find(rec)
                if start > 0:
                    _set(page, start, 4, _hostile(rng, _get(page, start, 4), 4, pages))
        except PageStoreError:
            pass
        what = "pointer"
    else:
        for _ in range(rng.randint(1, 4)):
            page[rng.randrange(fmt.HEADER_SIZE, ps)] = rng.randrange(256)
        what = "bytes"
    sp.set_checksum()
    return what


def mutate(src: str, dst: str, kind: str, rng: random.Random) -> str:
    """mutate copies the store in directory ``src`` to ``dst`` with one hostile change; returns what changed."""
    os.makedirs(dst, exist_ok=True)
    data = bytearray(open(os.path.join(src, "db"), "rb").read())
    log: Optional[bytearray] = None
    if os.path.exists(os.path.join(src, "db-wal")):
        log = bytearray(open(os.path.join(src, "db-wal"), "rb").read())
    ps = _page_size(data)
    pages = len(data) // ps
    what = kind
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "header":
        name, off, size = rng.choice(HEADER_FIELDS)
        _set(data, off, size, _hostile(rng, _get(data, off, size), size, pages))
        _set(data, fmt.META_CHECKSUM_OFFSET, 4, fmt.header_checksum(data))
        what = f"header.{name}"
    elif kind == "page":
        pgno = rng.randrange(1, pages)
        page = bytearray(data[pgno * ps : (pgno + 1) * ps])
        what = mutate_page(page, rng, pages)
        data[pgno * ps : (pgno + 1) * ps] = page
    elif kind == "trunk":
        trunks = _trunks(data, ps)
        assert trunks, "a trunk seed has a free list in its data file"
        pgno = rng.choice(trunks)
        page = bytearray(data[pgno * ps : (pgno + 1) * ps])
        what = mutate_trunk(page, rng, pages)
        data[pgno * ps : (pgno + 1) * ps] = page
    elif kind == "wal-flip":
        assert log is not None
        for _ in range(rng.randint(1, 4)):
            log[rng.randrange(len(log))] ^= 1 << rng.randrange(8)
    elif kind == "wal-frame":
        assert log is not None
        what = mutate_frame(log, ps, rng, pages)
    else:
        raise ValueError(kind)
    with open(os.path.join(dst, "db"), "wb") as f:
        f.write(data)
    if log is not None:
        with open(os.path.join(dst, "db-wal"), "wb") as f:
            f.write(log)
    return what


def _frames(log: bytearray, ps: int) -> List[Tuple[int, int]]:
    """_frames: (offset, payload size) of each frame that recovery would read, in order."""
    out = []
    salt = _get(log, 32, 4)
    off = WAL_HEADER_SIZE
    while off + FRAME_HEADER_SIZE <= len(log):
        _pgno, _commit, _txn, own, fsalt, n, _base = _FRAME.unpack_from(log, off)
        if fsalt != salt or own != off or n > ps or off + FRAME_HEADER_SIZE + n > len(log):
            break
        out.append((off, n))
        off += FRAME_HEADER_SIZE + n
    return out


def mutate_frame(log: bytearray, ps: int, rng: random.Random, pages: int) -> str:
    """mutate_frame changes a frame of the log and re-stamps the checksum chain from it on."""
    frames = _frames(log, ps)
    if not frames:
        log[rng.randrange(len(log))] ^= 1
        return "wal-frame.none"
    k = rng.randrange(len(frames))
    off, n = frames[k]
    whole = [i for i, (o, m) in enumerate(frames) if m == ps]
    if rng.random() < 0.5 and whole:
        k = rng.choice(whole)
        off, n = frames[k]
        pgno = _get(log, off, 4)
        body = bytearray(log[off + FRAME_HEADER_SIZE : off + FRAME_HEADER_SIZE + ps])
        if pgno == 0:
            name, foff, size = rng.choice(HEADER_FIELDS[:12])
            _set(body, foff, size, _hostile(rng, _get(body, foff, size), size, pages))
            _set(body, fmt.META_CHECKSUM_OFFSET, 4, fmt.header_checksum(body))
            what = f"wal-frame.header.{name}"
        else:
            what = "wal-frame." + mutate_page(body, rng, pages)
        log[off + FRAME_HEADER_SIZE : off + FRAME_HEADER_SIZE + ps] = body
    else:
        name, foff, size = rng.choice(FRAME_FIELDS)
        _set(log, off + foff, size, _hostile(rng, _get(log, off + foff, size), size, pages))
        what = f"wal-frame.{name}"
    # Re-stamp the chain from the changed frame on (frames past it keep their places).
    crc = _get(log, 36, 4)
    for o, m in frames:
        size = _get(log, o + 28, 4)
        if o + FRAME_HEADER_SIZE + size > len(log):
            break
        crc = crc32c(bytes(log[o + FRAME_HEADER_SIZE : o + FRAME_HEADER_SIZE + size]), crc32c(bytes(log[o : o + 40]), crc))
        if o >= off:
            _set(log, o + 40, 4, crc)
        if size != m:
            break  # the frames after a changed size are no longer where they were
    return what


# ---- running one variant ----


def _steps(path: str, keys: List[bytes], readonly: bool, use_map: bool) -> List[Tuple[str, str]]:
    """_steps runs every operation on the store at ``path``; returns (step, outcome) for each."""
    out: List[Tuple[str, str]] = []
    mode = "ro" if readonly else "rw"

    def step(name: str, fn: Any) -> bool:
        try:
            fn()
        except PageStoreError as exc:
            out.append((f"{mode}.{name}", type(exc).__name__))
            return False
        except Exception as exc:  # MemoryError, struct.error, OverflowError, ...: a failure
            out.append((f"{mode}.{name}", "BAD " + type(exc).__name__ + ": " + str(exc)[:200]
                        + " @ " + traceback.format_exc(limit=-3).replace("\n", " | ")[-600:]))
            return False
        out.append((f"{mode}.{name}", "ok"))
        return True

    box: List[Store] = []
    if not step("open", lambda: box.append(Store(path, readonly=readonly, create=False, mmap=use_map))):
        return out
    db = box[0]
    try:
        step("len", lambda: len(db))
        step("get", lambda: [db.get(k) for k in keys])
        step("scan", lambda: [db.get(k) for k, _ in db.items()])
        step("reverse", lambda: list(db.keys(reverse=True)))
        step("check", db.check)
        step("salvage", lambda: list(db.salvage([])))
        step("stats", db.stats)
        if not readonly:
            def write() -> None:
                db[b"hostile-new"] = b"x" * 100
                for k in db.keys():
                    del db[k]
                    break
            step("write", write)
            step("compact", db.compact)
            step("after", lambda: [db.get(k) for k in keys])
    finally:
        step("close", db.close)
    return out


def _child(path: str, keys: List[bytes], use_map: bool, wfd: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(TIMEOUT)
    results: List[Tuple[str, str]] = []
    try:
        results += _steps(path, keys, True, use_map)
        results += _steps(path, keys, False, use_map)
    except BaseException as exc:  # pragma: no cover - a failure of the harness itself
        results.append(("harness", "BAD " + type(exc).__name__ + ": " + str(exc)[:200]))
    os.write(wfd, json.dumps(results).encode())
    os.close(wfd)
    os._exit(0)


def run_variant(path: str, keys: List[bytes], use_map: bool) -> Tuple[str, List[Tuple[str, str]]]:
    """run_variant runs the steps in a forked child; returns (outcome, steps). Outcomes: ok (every
    step a result), error (some step a PageStoreError, none worse), BAD, hang, signal N."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            _child(path, keys, use_map, w)
        finally:
            os._exit(70)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + TIMEOUT + 10
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:  # pragma: no cover - the alarm failed to end it
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return ("hang" if sig == signal.SIGALRM else f"signal {signal.Signals(sig).name}"), []
    if os.WEXITSTATUS(status) != 0:
        return f"exit {os.WEXITSTATUS(status)}", []
    steps = [tuple(s) for s in json.loads(b"".join(chunks) or b"[]")]
    if any(o.startswith("BAD") for _, o in steps):
        return "BAD", steps  # type: ignore[return-value]
    if any(o != "ok" for _, o in steps):
        return "error", steps  # type: ignore[return-value]
    return "ok", steps  # type: ignore[return-value]


def run(files: int, seed: int = 0, root: Optional[str] = None, keep: bool = False,
        verbose: bool = False) -> Dict[str, Any]:
    """run makes ``files`` hostile variants and runs each; returns the tally and the failures."""
    own = root is None
    root = root or tempfile.mkdtemp(prefix="hostile-")
    try:
        seeds = build_seeds(os.path.join(root, "seeds"))
        keys = {}
        for name, d in seeds:
            with Store(os.path.join(d, "db"), readonly=True) as db:
                keys[name] = list(db.keys())
            for stale in ("db-shm",):
                if os.path.exists(os.path.join(d, stale)):
                    os.unlink(os.path.join(d, stale))
        with_log = [s for s in seeds if os.path.exists(os.path.join(s[1], "db-wal"))]
        with_trunks = []
        for s in seeds:
            data = open(os.path.join(s[1], "db"), "rb").read()
            if _trunks(data, _page_size(data)):
                with_trunks.append(s)
        rng = random.Random(seed)
        table: Dict[str, Counter] = {}
        errors: Counter = Counter()
        failures: List[Dict[str, Any]] = []
        started = time.monotonic()
        for i in range(files):
            kind = KINDS[i % len(KINDS)]
            name, src = rng.choice(with_log if kind.startswith("wal") else with_trunks if kind == "trunk" else seeds)
            dst = os.path.join(root, "v")
            shutil.rmtree(dst, ignore_errors=True)
            what = mutate(src, dst, kind, rng)
            outcome, steps = run_variant(os.path.join(dst, "db"), keys[name], use_map=i % 2 == 0)
            table.setdefault(kind, Counter())[outcome.split(" ")[0] if outcome.startswith("signal") else outcome] += 1
            for _, o in steps:
                if o != "ok" and not o.startswith("BAD"):
                    errors[o] += 1
            if outcome not in ("ok", "error"):
                bad = {"file": i, "seed": name, "mutation": what, "outcome": outcome,
                       "steps": [s for s in steps if s[1].startswith("BAD")]}
                failures.append(bad)
                if keep:
                    shutil.copytree(dst, os.path.join(root, f"fail-{i}"))
                if verbose:
                    print(json.dumps(bad), flush=True)
        return {"files": files, "seconds": time.monotonic() - started, "table": table, "errors": errors,
                "failures": failures, "root": root}
    finally:
        if own and not keep:
            shutil.rmtree(root, ignore_errors=True)


def summary(result: Dict[str, Any]) -> str:
    """summary: the outcome table (rows: mutations; columns: outcomes), and the error types seen."""
    cols = ["ok", "error", "BAD", "hang", "signal", "exit"]
    lines = [f"{result['files']} hostile files in {result['seconds']:.1f} s",
             f"{'mutation':<10}" + "".join(f"{c:>8}" for c in cols) + f"{'total':>8}"]
    for kind in KINDS:
        c = result["table"].get(kind, Counter())
        others = sum(v for k, v in c.items() if k.startswith("exit"))
        row = [c.get(x, 0) for x in cols[:-1]] + [others]
        lines.append(f"{kind:<10}" + "".join(f"{v:>8}" for v in row) + f"{sum(c.values()):>8}")
    lines.append("PageStoreErrors raised by steps: " + ", ".join(f"{k} {v}" for k, v in result["errors"].most_common()))
    for f in result["failures"][:20]:
        lines.append("FAILURE " + json.dumps(f)[:1500])
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", metavar="DIR", help="build in DIR and keep failing variants there")
    args = ap.parse_args()
    result = run(args.files, args.seed, root=args.keep, keep=bool(args.keep), verbose=True)
    print(summary(result))
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
