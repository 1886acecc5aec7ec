"""The benchmark workload and the side-by-side comparison engine.

``pagestore bench`` and ``bench/compare.py`` call :func:`run`; this module
parses no command line and prints nothing. It only needs the standard library;
the other engines (lmdb, rocksdict, plyvel) are imported lazily and skipped
with a message when they are not installed.

    >>> from pagestore import bench
    >>> results = bench.run(["pagestore", "sqlite", "lmdb"], n=20_000)
    >>> print(bench.format_table(results))

The workload, per engine, in one process, on one dataset, each engine in its
own temporary directory (removed afterwards):

=============  ==============================================================
phase          what is timed
=============  ==============================================================
insert         the N records, 1000 per transaction, each commit durable
point_reads    ``min(N, 100_000)`` gets of existing keys, in random order
full_scan      one ordered scan of every record (items/s)
range_scans    2000 scans of the first 50 records at or after a random key
churn          3 rounds: delete a random half of the live records, then
               insert as many records with new keys; 1000 per transaction
space          (not timed) file bytes / live logical bytes, right after churn
durable_puts   500 single puts, each its own durable commit (commits/s)
=============  ==============================================================

Before the engines run, the raw ``fdatasync`` rate of the work directory is
measured (4 KiB write + ``os.fdatasync``, 500 times, appending and then
overwriting in place): the yardstick for ``insert`` and ``durable_puts``.

Each timed operation is also timed on its own (a transaction of a batch, a
get, a range scan, a durable put; the full scan is one operation and has
none): a phase's ``latency`` holds p50, p99, p99.9 and max of those, in
seconds, computed with numpy (``pagestore.latency``; None without numpy).
Gets and range scans read the clock once per operation (an operation's
latency runs from the end of the one before, loop step included): timing
each costs point reads about 4% of their rate (7% with two clock reads),
measured on the 2-core VM.

Every phase's results are checked outside the timed region (reads find
their keys, the scan sees every live record, each range scan returns
``min(50, records at or after the start)``); an engine that fails a check is
reported as an error rather than as a figure.
"""
from __future__ import annotations

import bisect
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from array import array
from itertools import islice
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .latency import Samples, format_summary, sig3, summarize

__all__ = [
    "ENGINES",
    "PHASES",
    "BenchError",
    "Dataset",
    "make_dataset",
    "get_adapter",
    "available_engines",
    "measure_fdatasync",
    "run",
    "format_table",
    "format_rate",
    "to_json",
    "from_json",
]

Progress = Callable[[str, int, int], None]

#: Records per write transaction in the insert and churn phases.
BATCH = 1000
#: Upper bound on the number of point reads.
MAX_READS = 100_000
RANGE_SCANS = 2000
RANGE_LEN = 50
CHURN_ROUNDS = 3
DURABLE_PUTS = 500
FSYNC_WRITES = 500
FSYNC_BLOCK = 4096

#: Timed phases, in the order they run, with the unit of their rate.
PHASES: Dict[str, str] = {
    "insert": "ops/s",
    "point_reads": "ops/s",
    "full_scan": "items/s",
    "range_scans": "scans/s",
    "churn": "ops/s",
    "durable_puts": "commits/s",
}


class BenchError(Exception):
    """An engine returned something the workload did not expect (a lost key, a short scan)."""


# --------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------

#: The "mixed" value-size distribution: (share, smallest, largest), in bytes,
#: lengths uniform inside each band. Mostly small values, and one in twenty
#: larger than a 4 KiB page, so overflow paths are exercised. Mean ~860 B.
VALUE_MIX: Tuple[Tuple[float, int, int], ...] = (
    (0.80, 1, 200),
    (0.15, 201, 2000),
    (0.05, 4096, 20480),
)
VALUE_DISTS: Dict[str, Tuple[Tuple[float, int, int], ...]] = {
    "mixed": VALUE_MIX,
    "small": ((1.0, 1, 200),),
}
#: Values are slices of one random pool rather than separate random strings,
#: so 500k records cost ~30 MB instead of ~450 MB. Offsets are random, so two
#: values are unrelated, and the bytes are incompressible.
POOL_SIZE = 8 << 20


class Dataset:
    """Dataset is a deterministic list of records: unique random keys, pooled values.

    Record ``i`` is ``(keys[i], value(i))``. Values are materialised on demand
    (one slice of the pool each); keys are held as a list. Built by
    :func:`make_dataset`; nothing here is random once built.
    """

    def __init__(self, keys: List[bytes], voff: "array[int]", vlen: "array[int]", pool: bytes, params: Dict[str, Any]) -> None:
        self.keys = keys
        self._voff = voff
        self._vlen = vlen
        self._pool = pool
        self.params = params

    def __len__(self) -> int:
        return len(self.keys)

    def value(self, i: int) -> bytes:
        """value: the value of record ``i``. O(len(value))."""
        off = self._voff[i]
        return self._pool[off:off + self._vlen[i]]

    def value_len(self, i: int) -> int:
        return int(self._vlen[i])

    def record(self, i: int) -> Tuple[bytes, bytes]:
        return self.keys[i], self.value(i)

    def records(self, indices: Optional[Iterable[int]] = None) -> Iterator[Tuple[bytes, bytes]]:
        """records: ``(key, value)`` for each index (default: all, in order)."""
        for i in (range(len(self.keys)) if indices is None else indices):
            yield self.keys[i], self.value(i)

    def logical_bytes(self, indices: Optional[Iterable[int]] = None) -> int:
        """logical_bytes: sum of ``len(key) + len(value)`` over the records."""
        keys, vlen = self.keys, self._vlen
        idx = range(len(keys)) if indices is None else indices
        return sum(len(keys[i]) + vlen[i] for i in idx)

    def describe(self) -> Dict[str, Any]:
        """describe: the parameters and the mix as built, JSON-ready."""
        dist = VALUE_DISTS[self.params["value_dist"]]
        return dict(self.params, records=len(self.keys),
                    value_mix=[{"share": s, "min": lo, "max": hi} for s, lo, hi in dist])


def make_dataset(n: int, seed: int = 0, key_min: int = 8, key_max: int = 40,
                 value_dist: str = "mixed") -> Dataset:
    """make_dataset: ``n`` records with unique random keys and mixed-size values.

    Keys are random bytes, ``key_min..key_max`` long (uniform). Values follow
    ``VALUE_DISTS[value_dist]``; for "mixed" that is 80% 1-200 B, 15%
    201-2000 B and 5% 4-20 KiB. The same arguments give the same dataset on
    every machine, and the first ``m`` records of ``make_dataset(n)`` are
    ``make_dataset(m)`` for ``m <= n`` (records are drawn one after another),
    so a run can draw its churn keys from the same dataset.

    Only :mod:`random` is used, not numpy: numpy's generators differ from
    ``random``'s, and the dataset must not depend on what is installed. About
    3 us per record.

    Raises:
        ValueError: a bad size range or unknown ``value_dist``.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 1 <= key_min <= key_max:
        raise ValueError(f"need 1 <= key_min <= key_max, got {key_min}, {key_max}")
    if value_dist not in VALUE_DISTS:
        raise ValueError(f"unknown value_dist {value_dist!r} (known: {', '.join(VALUE_DISTS)})")
    dist = VALUE_DISTS[value_dist]
    if max(hi for _, _, hi in dist) > POOL_SIZE:
        raise ValueError("value larger than the pool")
    rng = random.Random(seed)
    pool = rng.randbytes(POOL_SIZE)
    # cumulative shares for one uniform draw per record
    bounds, acc = [], 0.0
    for share, lo, hi in dist:
        acc += share
        bounds.append((acc, lo, hi))
    keys: List[bytes] = []
    seen = set()
    voff = array("I")
    vlen = array("I")
    randint, randbytes, rand, randrange = rng.randint, rng.randbytes, rng.random, rng.randrange
    while len(keys) < n:
        key = randbytes(randint(key_min, key_max))
        if key in seen:  # only plausible with very short keys; redraw
            continue
        seen.add(key)
        u = rand()
        for edge, lo, hi in bounds:
            if u < edge:
                break
        length = randint(lo, hi)
        keys.append(key)
        vlen.append(length)
        voff.append(randrange(POOL_SIZE - length + 1))
    params = {"seed": seed, "key_min": key_min, "key_max": key_max, "value_dist": value_dist}
    return Dataset(keys, voff, vlen, pool, params)


# --------------------------------------------------------------------------
# engine adapters
# --------------------------------------------------------------------------

def _dir_bytes(dirpath: str) -> Tuple[int, int]:
    """_dir_bytes: (sum of file sizes, sum of allocated bytes) under ``dirpath``."""
    size = alloc = 0
    for root, _, files in os.walk(dirpath):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except FileNotFoundError:  # engines delete files behind our back (rocksdb)
                continue
            size += st.st_size
            alloc += getattr(st, "st_blocks", st.st_size // 512) * 512
    return size, alloc


class Adapter:
    """Adapter is one engine behind the interface the workload drives.

    Subclasses set ``name`` and ``module`` and implement the methods below.
    Constructing one imports nothing; :meth:`open` does. Values passed in and
    returned are ``bytes``. Write methods each commit their own transaction.
    """

    name = ""
    #: module whose absence means the engine is unavailable, and a hint to fix it
    module = ""
    install_hint = ""

    def __init__(self, page_size: int = 4096) -> None:
        self.page_size = page_size
        self.dirpath: Optional[str] = None
        self.durable = True

    @classmethod
    def available(cls) -> Optional[str]:
        """available: None if the engine can run here, else why not."""
        try:
            __import__(cls.module)
        except ImportError as exc:
            return f"cannot import {cls.module} ({exc}); {cls.install_hint}"
        return None

    def version(self) -> str:
        return _package_version(self.module)

    def open(self, dirpath: str, durable: bool) -> None:
        """open: create a store in the (empty) directory ``dirpath``.

        ``durable``: every commit reaches stable storage before returning.
        """
        raise NotImplementedError

    def put_batch(self, items: Sequence[Tuple[bytes, bytes]]) -> None:
        """put_batch: insert or overwrite all ``items`` in one transaction."""
        raise NotImplementedError

    def put_one_durable(self, key: bytes, value: bytes) -> None:
        """put_one_durable: one put, its own commit (durable if opened durable)."""
        raise NotImplementedError

    def bytes_written(self) -> Optional[int]:
        """bytes_written: bytes the engine has written to its files so far, or None when it does not say."""
        return None

    def get(self, key: bytes) -> Optional[bytes]:
        """get: the value of ``key``, or None."""
        raise NotImplementedError

    def scan_all(self) -> int:
        """scan_all: read every record (key and value) in key order; the count."""
        raise NotImplementedError

    def range_scan(self, start: bytes, n: int) -> int:
        """range_scan: read the first ``n`` records with key >= ``start``; the count."""
        raise NotImplementedError

    def delete_batch(self, keys: Sequence[bytes]) -> None:
        """delete_batch: delete all ``keys`` (each present) in one transaction."""
        raise NotImplementedError

    def file_size(self) -> int:
        """file_size: bytes in all the engine's files (apparent sizes)."""
        assert self.dirpath is not None
        return _dir_bytes(self.dirpath)[0]

    def disk_usage(self) -> int:
        """disk_usage: bytes allocated on disk to the engine's files."""
        assert self.dirpath is not None
        return _dir_bytes(self.dirpath)[1]

    def stats(self) -> Dict[str, Any]:
        """stats: engine-specific figures worth keeping with the results."""
        return {}

    def close(self) -> None:
        raise NotImplementedError


def _package_version(module: str) -> str:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:  # version metadata is nice to have, never required
        mod = sys.modules.get(module)
        return str(getattr(mod, "__version__", "?"))


class PagestoreAdapter(Adapter):
    """PagestoreAdapter drives the public pagestore API, nothing else."""

    name = "pagestore"
    module = "pagestore"
    install_hint = "pip install pagestore-kv (or pip install -e . in a checkout)"

    def version(self) -> str:
        import pagestore
        return pagestore.__version__

    def open(self, dirpath: str, durable: bool) -> None:
        import pagestore
        self.dirpath, self.durable = dirpath, durable
        self.db = pagestore.open(os.path.join(dirpath, "bench.pagestore"), sync=durable,
                                 page_size=self.page_size)

    def put_batch(self, items: Sequence[Tuple[bytes, bytes]]) -> None:
        with self.db.transaction() as txn:
            for k, v in items:
                txn[k] = v

    def bytes_written(self) -> Optional[int]:
        """bytes_written: the store's own count of bytes written to its data file and log."""
        return int(self.db.stats()["bytes_written"])

    def put_one_durable(self, key: bytes, value: bytes) -> None:
        self.db[key] = value

    def get(self, key: bytes) -> Optional[bytes]:
        try:
            value: bytes = self.db[key]  # a bytes-to-bytes store
        except KeyError:
            return None
        return value

    def scan_all(self) -> int:
        count = 0
        for _ in self.db.items():
            count += 1
        return count

    def range_scan(self, start: bytes, n: int) -> int:
        return sum(1 for _ in self.db.items(start=start, limit=n))  # as sqlite3's LIMIT

    def delete_batch(self, keys: Sequence[bytes]) -> None:
        with self.db.transaction() as txn:
            for k in keys:
                del txn[k]

    def stats(self) -> Dict[str, Any]:
        stats = getattr(self.db, "stats", None)
        return _jsonable(stats()) if stats is not None else {}

    def close(self) -> None:
        self.db.close()


class SqliteAdapter(Adapter):
    """SqliteAdapter: a WITHOUT ROWID table keyed by BLOB, WAL journal.

    WITHOUT ROWID clusters rows by key like a B+tree key-value store does.
    ``synchronous=FULL`` in WAL mode syncs the log at every commit (NORMAL
    would not be durable); OFF when not durable. The page size follows the
    run's page size.
    """

    name = "sqlite"
    module = "sqlite3"
    install_hint = "Python was built without sqlite3"

    def version(self) -> str:
        import sqlite3
        return sqlite3.sqlite_version

    def open(self, dirpath: str, durable: bool) -> None:
        import sqlite3
        self.dirpath, self.durable = dirpath, durable
        # isolation_level=None: no implicit transactions; we BEGIN/COMMIT ourselves
        self.conn = sqlite3.connect(os.path.join(dirpath, "bench.sqlite"), isolation_level=None)
        c = self.conn
        c.execute(f"PRAGMA page_size={int(self.page_size)}")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        c.execute("CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")

    def put_batch(self, items: Sequence[Tuple[bytes, bytes]]) -> None:
        c = self.conn
        c.execute("BEGIN")
        c.executemany("INSERT OR REPLACE INTO kv(k, v) VALUES (?, ?)", items)
        c.execute("COMMIT")

    def put_one_durable(self, key: bytes, value: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kv(k, v) VALUES (?, ?)", (key, value))

    def get(self, key: bytes) -> Optional[bytes]:
        row = self.conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def scan_all(self) -> int:
        count = 0
        for _ in self.conn.execute("SELECT k, v FROM kv ORDER BY k"):
            count += 1
        return count

    def range_scan(self, start: bytes, n: int) -> int:
        rows = self.conn.execute("SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?", (start, n)).fetchall()
        return len(rows)

    def delete_batch(self, keys: Sequence[bytes]) -> None:
        c = self.conn
        c.execute("BEGIN")
        c.executemany("DELETE FROM kv WHERE k = ?", [(k,) for k in keys])
        c.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class LmdbAdapter(Adapter):
    """LmdbAdapter: one environment, a 64 GiB map (the file grows as needed).

    ``writemap`` off (the safe default); ``sync``/``metasync`` follow the
    durable flag. LMDB's page size is the OS page size; the run's page size
    does not apply.
    """

    name = "lmdb"
    module = "lmdb"
    install_hint = "pip install lmdb, or every engine with the bench extra: pip install 'pagestore-kv[bench]'"
    MAP_SIZE = 64 << 30

    def open(self, dirpath: str, durable: bool) -> None:
        import lmdb
        self.dirpath, self.durable = dirpath, durable
        self.env = lmdb.open(dirpath, map_size=self.MAP_SIZE, sync=durable, metasync=durable,
                             writemap=False, max_dbs=0)

    def put_batch(self, items: Sequence[Tuple[bytes, bytes]]) -> None:
        with self.env.begin(write=True) as txn:
            put = txn.put
            for k, v in items:
                put(k, v)

    def put_one_durable(self, key: bytes, value: bytes) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(key, value)

    def get(self, key: bytes) -> Optional[bytes]:
        with self.env.begin() as txn:
            value: Optional[bytes] = txn.get(key)  # lmdb's own annotations, or Any where it is absent
            return value

    def scan_all(self) -> int:
        count = 0
        with self.env.begin() as txn:
            for _ in txn.cursor():
                count += 1
        return count

    def range_scan(self, start: bytes, n: int) -> int:
        with self.env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range(start):
                return 0
            return sum(1 for _ in islice(cur, n))

    def delete_batch(self, keys: Sequence[bytes]) -> None:
        with self.env.begin(write=True) as txn:
            delete = txn.delete
            for k in keys:
                delete(k)

    def stats(self) -> Dict[str, Any]:
        return dict(_jsonable(self.env.stat()))

    def close(self) -> None:
        self.env.close()


class RocksdbAdapter(Adapter):
    """RocksdbAdapter: RocksDB through rocksdict, raw bytes mode, default options.

    Durable writes set ``WriteOptions.sync`` (the WAL is synced per write).
    """

    name = "rocksdb"
    module = "rocksdict"
    install_hint = "pip install rocksdict, or every engine with the bench extra: pip install 'pagestore-kv[bench]'"

    def open(self, dirpath: str, durable: bool) -> None:
        from rocksdict import Options, Rdict, WriteOptions
        self.dirpath, self.durable = dirpath, durable
        self.db = Rdict(os.path.join(dirpath, "rocksdb"), Options(raw_mode=True))
        wo = WriteOptions()
        wo.sync = durable
        self.db.set_write_options(wo)

    def put_batch(self, items: Sequence[Tuple[bytes, bytes]]) -> None:
        from rocksdict import WriteBatch
        wb = WriteBatch(raw_mode=True)
        for k, v in items:
            wb.put(k, v)
        self.db.write(wb)

    def put_one_durable(self, key: bytes, value: bytes) -> None:
        self.db.put(key, value)

    def get(self, key: bytes) -> Optional[bytes]:
        value: Optional[bytes] = self.db.get(key)
        return value

    def scan_all(self) -> int:
        count = 0
        for _ in self.db.items():
            count += 1
        return count

    def range_scan(self, start: bytes, n: int) -> int:
        return sum(1 for _ in islice(self.db.items(from_key=start), n))

    def delete_batch(self, keys: Sequence[bytes]) -> None:
        from rocksdict import WriteBatch
        wb = WriteBatch(raw_mode=True)
        for k in keys:
            wb.delete(k)
        self.db.write(wb)

    def close(self) -> None:
        self.db.close()


class LeveldbAdapter(Adapter):
    """LeveldbAdapter: LevelDB through plyvel; ``sync=`` per write when durable."""

    name = "leveldb"
    module = "plyvel"
    install_hint = "pip install plyvel, or every engine with the bench extra: pip install 'pagestore-kv[bench]'"

    def version(self) -> str:
        import plyvel
        return f"{plyvel.__version__} (leveldb {plyvel.__leveldb_version__})"

    def open(self, dirpath: str, durable: bool) -> None:
        import plyvel
        self.dirpath, self.durable = dirpath, durable
        self.db = plyvel.DB(os.path.join(dirpath, "leveldb"), create_if_missing=True)

    def put_batch(self, items: Sequence[Tuple[bytes, bytes]]) -> None:
        with self.db.write_batch(sync=self.durable) as wb:
            for k, v in items:
                wb.put(k, v)

    def put_one_durable(self, key: bytes, value: bytes) -> None:
        self.db.put(key, value, sync=self.durable)

    def get(self, key: bytes) -> Optional[bytes]:
        value: Optional[bytes] = self.db.get(key)
        return value

    def scan_all(self) -> int:
        count = 0
        with self.db.iterator() as it:
            for _ in it:
                count += 1
        return count

    def range_scan(self, start: bytes, n: int) -> int:
        with self.db.iterator(start=start) as it:
            return sum(1 for _ in islice(it, n))

    def delete_batch(self, keys: Sequence[bytes]) -> None:
        with self.db.write_batch(sync=self.durable) as wb:
            for k in keys:
                wb.delete(k)

    def close(self) -> None:
        self.db.close()


_ADAPTERS = {a.name: a for a in (PagestoreAdapter, SqliteAdapter, LmdbAdapter, RocksdbAdapter, LeveldbAdapter)}
#: Engine names run() knows, in display order.
ENGINES: Tuple[str, ...] = tuple(_ADAPTERS)
_ALIASES = {"sqlite3": "sqlite", "rocksdict": "rocksdb", "plyvel": "leveldb"}


def _canonical(name: str) -> str:
    name = name.strip().lower()
    return _ALIASES.get(name, name)


def get_adapter(name: str, page_size: int = 4096) -> Adapter:
    """get_adapter: a fresh, unopened adapter for engine ``name`` (aliases allowed).

    Raises:
        KeyError: unknown engine.
    """
    cls = _ADAPTERS.get(_canonical(name))
    if cls is None:
        raise KeyError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
    return cls(page_size=page_size)


def available_engines() -> Dict[str, Optional[str]]:
    """available_engines: every known engine -> None if it can run here, else why not."""
    return {name: cls.available() for name, cls in _ADAPTERS.items()}


# --------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------

def measure_fdatasync(dirpath: str, count: int = FSYNC_WRITES, block: int = FSYNC_BLOCK,
                      overwrite: bool = False, fallocate: bool = False) -> Dict[str, Any]:
    """measure_fdatasync: rate of (write ``block`` bytes + fdatasync) in ``dirpath``.

    By default each write appends, so every sync also carries the file-size
    change, as a log that grows does. ``overwrite=True`` first fills the file
    with zeros by writing them and syncs it, then rewrites it in place: the
    cheaper case of a log zero-filled ahead or recycled (pagestore's log,
    SQLite's WAL reset). ``fallocate=True`` overwrites space reserved by
    ``posix_fallocate`` instead, which on ext4 is unwritten until first
    written: each first write is a metadata change the sync must commit. A
    durable commit may beat the append rate but not the overwrite rate. The
    temporary file is removed. Falls back to ``os.fsync`` where there is no
    ``fdatasync`` (macOS).
    """
    sync = getattr(os, "fdatasync", os.fsync)
    buf = os.urandom(block)
    fd, path = tempfile.mkstemp(prefix="fsync-", dir=dirpath)
    try:
        if fallocate and hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, block * count)
            os.fsync(fd)
        elif overwrite or fallocate:
            os.write(fd, bytes(block * count))
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        t0 = time.perf_counter()
        for _ in range(count):
            os.write(fd, buf)
            sync(fd)
        seconds = time.perf_counter() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    return _phase(count, seconds, "syncs/s")


def _phase(ops: int, seconds: float, unit: str, **extra: Any) -> Dict[str, Any]:
    # no ops (or a clock too coarse to see them): no rate, rather than inf/NaN in the JSON
    rate = ops / seconds if ops and seconds > 0 else None
    return dict({"ops": ops, "seconds": round(seconds, 6), "rate": rate, "unit": unit}, **extra)


def _batches(seq: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


class _Tracker:
    """_Tracker calls the progress callback at most once per batch, labelled ``engine:phase``."""

    def __init__(self, progress: Optional[Progress], engine: str) -> None:
        self.progress, self.engine = progress, engine

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(f"{self.engine}:{phase}", done, total)


def _run_engine(adapter: Adapter, ds: Dataset, n: int, dirpath: str, seed: int,
                progress: _Tracker) -> Dict[str, Any]:
    """_run_engine: every phase against one opened-here adapter; its results.

    Record indices ``0..n-1`` are the initial load; churn and the durable
    puts take fresh indices from ``n`` on, in order. Every random choice comes
    from ``seed`` and the phase, so all engines see the same operations.
    Verification happens outside the timed regions.
    """
    phases: Dict[str, Any] = {}
    now = time.perf_counter
    adapter.open(dirpath, durable=True)
    try:
        # insert: n records, BATCH per durable transaction
        live = list(range(n))
        elapsed = 0.0
        lat = Samples()
        progress("insert", 0, n)
        written = adapter.bytes_written()
        for done, idx in enumerate(_batches(live, BATCH)):
            items = [ds.record(i) for i in idx]
            t0 = now()
            adapter.put_batch(items)
            t1 = now() - t0
            elapsed += t1
            lat.add(t1)
            progress("insert", min((done + 1) * BATCH, n), n)
        after = adapter.bytes_written()
        written = after - written if after is not None and written is not None else None
        inserted = ds.logical_bytes(range(n))
        phases["insert"] = _phase(n, elapsed, PHASES["insert"], latency=summarize(lat), bytes_written=written,
                                  write_amplification=written / inserted if written is not None and inserted else None)

        # point reads: random order over the keys
        rng = random.Random(f"{seed}:reads")
        nreads = min(n, MAX_READS)
        probe = [ds.keys[i] for i in rng.sample(live, nreads)]
        found = 0
        get = adapter.get
        lat = Samples()
        add = lat.add
        progress("point_reads", 0, nreads)
        t0 = t1 = now()
        for k in probe:  # one clock read per get: each get's latency runs from the end of the one before
            if get(k) is not None:
                found += 1
            t2 = now()
            add(t2 - t1)
            t1 = t2
        elapsed = now() - t0
        progress("point_reads", nreads, nreads)
        if found != nreads:
            raise BenchError(f"{adapter.name}: point reads found {found} of {nreads} keys")
        phases["point_reads"] = _phase(nreads, elapsed, PHASES["point_reads"], latency=summarize(lat))

        # full scan
        progress("full_scan", 0, n)
        t0 = now()
        count = adapter.scan_all()
        elapsed = now() - t0
        progress("full_scan", n, n)
        if count != n:
            raise BenchError(f"{adapter.name}: full scan saw {count} records, {n} are live")
        phases["full_scan"] = _phase(count, elapsed, PHASES["full_scan"])

        # range scans of RANGE_LEN from random live keys
        nscans = RANGE_SCANS if n else 0
        rng = random.Random(f"{seed}:ranges")
        starts = [ds.keys[rng.choice(live)] for _ in range(nscans)]
        counts = []
        lat = Samples()
        progress("range_scans", 0, nscans)
        t0 = t1 = now()
        for k in starts:
            counts.append(adapter.range_scan(k, RANGE_LEN))
            t2 = now()
            lat.add(t2 - t1)
            t1 = t2
        elapsed = now() - t0
        progress("range_scans", nscans, nscans)
        ordered = sorted(ds.keys[i] for i in live)
        for k, got in zip(starts, counts):
            want = min(RANGE_LEN, len(ordered) - bisect.bisect_left(ordered, k))
            if got != want:
                raise BenchError(f"{adapter.name}: range scan from {k.hex()} returned {got}, expected {want}")
        del ordered
        phases["range_scans"] = _phase(nscans, elapsed, PHASES["range_scans"],
                                       items=sum(counts), scan_len=RANGE_LEN, latency=summarize(lat))

        # churn: delete a random half, insert as many new keys, CHURN_ROUNDS times
        rng = random.Random(f"{seed}:churn")
        fresh = n
        total = sum(2 * (n // 2) for _ in range(CHURN_ROUNDS))
        ops, elapsed = 0, 0.0
        lat = Samples()
        progress("churn", 0, total)
        for _ in range(CHURN_ROUNDS):
            rng.shuffle(live)
            half = len(live) // 2
            victims, live = live[:half], live[half:]
            for idx in _batches(victims, BATCH):
                keys = [ds.keys[i] for i in idx]
                t0 = now()
                adapter.delete_batch(keys)
                t1 = now() - t0
                elapsed += t1
                lat.add(t1)
                ops += len(idx)
                progress("churn", ops, total)
            new = list(range(fresh, fresh + half))
            fresh += half
            for idx in _batches(new, BATCH):
                items = [ds.record(i) for i in idx]
                t0 = now()
                adapter.put_batch(items)
                t1 = now() - t0
                elapsed += t1
                lat.add(t1)
                ops += len(idx)
                progress("churn", ops, total)
            live.extend(new)
        phases["churn"] = _phase(ops, elapsed, PHASES["churn"], rounds=CHURN_ROUNDS, latency=summarize(lat))
        count = adapter.scan_all()
        if count != len(live):
            raise BenchError(f"{adapter.name}: after churn a scan saw {count} records, {len(live)} are live")

        # space, right after churn
        live_bytes = ds.logical_bytes(live)
        file_bytes = adapter.file_size()
        space = {
            "file_bytes": file_bytes,
            "disk_bytes": adapter.disk_usage(),
            "live_bytes": live_bytes,
            "live_records": len(live),
            "amplification": file_bytes / live_bytes if live_bytes else None,
        }

        # durable single-put commits, new keys
        nputs = DURABLE_PUTS
        put = adapter.put_one_durable
        items = [ds.record(i) for i in range(fresh, fresh + nputs)]
        lat = Samples()
        progress("durable_puts", 0, nputs)
        t0 = now()
        for k, v in items:
            t1 = now()
            put(k, v)
            lat.add(now() - t1)
        elapsed = now() - t0
        progress("durable_puts", nputs, nputs)
        if adapter.get(items[-1][0]) != items[-1][1]:
            raise BenchError(f"{adapter.name}: last durable put not readable")
        phases["durable_puts"] = _phase(nputs, elapsed, PHASES["durable_puts"], latency=summarize(lat))

        stats = adapter.stats()
    finally:
        adapter.close()
    return {"phases": phases, "space": space, "stats": stats}


def dataset_size(n: int) -> int:
    """dataset_size: records run() draws for ``n`` initial ones (load + churn + durable puts)."""
    return n + CHURN_ROUNDS * (n // 2) + DURABLE_PUTS


def run(engines: Optional[Sequence[str]] = None, n: int = 100_000, page_size: int = 4096, seed: int = 0,
        progress: Optional[Progress] = None, workdir: Optional[str] = None,
        dataset: Optional[Dataset] = None) -> Dict[str, Any]:
    """run: the whole workload on each engine, one after another; the results.

    ``engines``: names from :data:`ENGINES` (aliases sqlite3, rocksdict,
    plyvel accepted); default all of them. An unknown or uninstalled engine is
    recorded as skipped with the reason; an engine that raises, or fails a
    check, is recorded with ``error`` and the others still run.

    ``progress(phase, done, total)`` is called as each phase starts, after
    each batch, and as it ends; ``phase`` is ``"engine:phase"`` (e.g.
    ``"lmdb:insert"``), or ``"dataset"`` / ``"fdatasync"`` for the shared
    steps. ``workdir``: where the temporary directories go (default: the
    system temp dir); measure on the disk you care about. ``dataset``: reuse
    one built by ``make_dataset(dataset_size(n), seed)`` (e.g. across runs).

    Returns a JSON-ready dict: ``meta`` (parameters, dataset, platform,
    fdatasync rate) and ``engines`` (name -> ``phases``, ``space``, ``stats``,
    ``version``; or ``skipped`` / ``error``). See :func:`format_table`.
    """
    names = list(ENGINES if engines is None else engines)
    if n < 0:
        raise ValueError("n must be >= 0")
    need = dataset_size(n)
    if dataset is None:
        if progress:
            progress("dataset", 0, need)
        dataset = make_dataset(need, seed)
        if progress:
            progress("dataset", need, need)
    elif len(dataset) < need:
        raise ValueError(f"dataset has {len(dataset)} records, run needs {need}")
    root = tempfile.mkdtemp(prefix="pagestore-bench-", dir=workdir)
    results: Dict[str, Any] = {"meta": {}, "engines": {}}
    try:
        if progress:
            progress("fdatasync", 0, 3 * FSYNC_WRITES)
        fsync = measure_fdatasync(root, FSYNC_WRITES)
        if progress:
            progress("fdatasync", FSYNC_WRITES, 3 * FSYNC_WRITES)
        fsync_over = measure_fdatasync(root, FSYNC_WRITES, overwrite=True)
        if progress:
            progress("fdatasync", 2 * FSYNC_WRITES, 3 * FSYNC_WRITES)
        fsync_falloc = measure_fdatasync(root, FSYNC_WRITES, fallocate=True)
        if progress:
            progress("fdatasync", 3 * FSYNC_WRITES, 3 * FSYNC_WRITES)
        results["meta"] = {
            "records": n,
            "seed": seed,
            "page_size": page_size,
            "batch": BATCH,
            "dataset": dict(dataset.describe(), records=need,
                            initial_live_bytes=dataset.logical_bytes(range(n))),
            "fdatasync": fsync,
            "fdatasync_overwrite": fsync_over,
            "fdatasync_fallocated": fsync_falloc,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        for requested in names:
            name = _canonical(requested)
            cls = _ADAPTERS.get(name)
            if cls is None:
                results["engines"][requested] = {
                    "skipped": f"unknown engine {requested!r} (known: {', '.join(ENGINES)})"}
                continue
            if name in results["engines"]:
                continue
            why = cls.available()
            if why is not None:
                results["engines"][name] = {"skipped": why}
                continue
            adapter = cls(page_size=page_size)
            entry: Dict[str, Any] = {"version": adapter.version()}
            dirpath = os.path.join(root, name)
            os.mkdir(dirpath)
            try:
                entry.update(_run_engine(adapter, dataset, n, dirpath, seed, _Tracker(progress, name)))
            except Exception as exc:  # one engine failing must not lose the others' figures
                entry["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                shutil.rmtree(dirpath, ignore_errors=True)
            results["engines"][name] = entry
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def _jsonable(obj: Any) -> Any:
    """_jsonable: ``obj`` with tuples as lists, keys as str, unknowns as repr."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "_asdict"):
        return _jsonable(obj._asdict())
    if hasattr(obj, "__dict__"):
        return _jsonable(vars(obj))
    return repr(obj)


def to_json(results: Dict[str, Any], indent: Optional[int] = 2) -> str:
    """to_json: the results of :func:`run` as JSON text (``from_json`` reverses it)."""
    return json.dumps(_jsonable(results), indent=indent, sort_keys=False)


def from_json(text: str) -> Dict[str, Any]:
    """from_json: results saved with :func:`to_json`, ready for :func:`format_table`."""
    results: Dict[str, Any] = json.loads(text)
    return results


def format_rate(rate: Optional[float], unit: str = "/s") -> str:
    """format_rate: 35123.4 -> "35.1k/s"; three significant figures."""
    if rate is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= scale:
            return f"{sig3(rate / scale)}{suffix}{unit}"
    return f"{sig3(rate)}{unit}"


def _format_bytes(n: float) -> str:
    for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.1f} {suffix}"
    return f"{n:.0f} B"


def _ratio(value: Optional[float], base: Optional[float]) -> str:
    if value is None or not base:
        return ""
    return f" ({value / base:.2f}x)"


#: What one latency sample is, per phase.
LATENCY_OF = {
    "insert": f"a {BATCH}-record txn",
    "point_reads": "a get",
    "range_scans": "a scan",
    "churn": f"a {BATCH}-key txn",
    "durable_puts": "a commit",
}


def _latency_table(engines: Dict[str, Any], ran: List[str]) -> List[str]:
    """_latency_table: the rows "phase (per what): p50 / p99 / p99.9" per engine; [] when no phase has any."""
    rows: List[List[str]] = [["latency p50 / p99 / p99.9"] + ran]
    for phase, what in LATENCY_OF.items():
        cells = [format_summary(engines[name]["phases"].get(phase, {}).get("latency")) for name in ran]
        rows.append([f"{phase} ({what})"] + cells)
    if all(c == "-" for r in rows[1:] for c in r[1:]):
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = [""]
    for j, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def format_table(results: Dict[str, Any]) -> str:
    """format_table: one row per phase, one column per engine, ratios to pagestore.

    Each cell is the rate and, in brackets, the rate divided by pagestore's
    (above 1: faster than pagestore). When pagestore did not run, ratios are
    to the first engine that did. Space rows compare file size / live bytes
    (above 1: bigger). Skipped and failed engines are listed below the table.
    """
    engines = results.get("engines", {})
    ran = [name for name, e in engines.items() if "phases" in e]
    meta = results.get("meta", {})
    lines: List[str] = []
    ds = meta.get("dataset", {})
    head = f"pagestore bench: {meta.get('records', '?')} records, page size {meta.get('page_size', '?')}"
    if "initial_live_bytes" in ds:
        head += f", {_format_bytes(ds['initial_live_bytes'])} of keys+values"
    head += f", seed {meta.get('seed', '?')}"
    lines.append(head)
    if ran:
        base = "pagestore" if "pagestore" in ran else ran[0]
        if len(ran) > 1:  # one engine alone (plain `pagestore bench`) has no ratio to explain
            lines.append(f"ratios are engine / {base}")
        rows: List[List[str]] = [["phase"] + ran]
        for phase, unit in PHASES.items():
            row = [f"{phase} ({unit})"]
            base_rate = engines[base]["phases"].get(phase, {}).get("rate")
            for name in ran:
                rate = engines[name]["phases"].get(phase, {}).get("rate")
                row.append(format_rate(rate) + (_ratio(rate, base_rate) if name != base else ""))
            rows.append(row)
        row = ["insert: bytes written / inserted"]
        for name in ran:
            wa = engines[name]["phases"].get("insert", {}).get("write_amplification")
            row.append("-" if wa is None else f"{wa:.2f}")
        rows.append(row)
        row = ["file / live bytes"]
        base_amp = engines[base].get("space", {}).get("amplification")
        for name in ran:
            amp = engines[name].get("space", {}).get("amplification")
            cell = "-" if amp is None else f"{amp:.2f}"
            row.append(cell + (_ratio(amp, base_amp) if name != base else ""))
        rows.append(row)
        row = ["file size after churn"]
        for name in ran:
            fb = engines[name].get("space", {}).get("file_bytes")
            row.append("-" if fb is None else _format_bytes(fb))
        rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for j, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.extend(_latency_table(engines, ran))
    fs, fso, fsf = meta.get("fdatasync"), meta.get("fdatasync_overwrite"), meta.get("fdatasync_fallocated")
    if fs:
        line = f"raw fdatasync in the same directory ({FSYNC_BLOCK} B writes): {format_rate(fs.get('rate'))} appending"
        if fsf:
            line += f", {format_rate(fsf.get('rate'))} overwriting fallocated space"
        if fso:
            line += f", {format_rate(fso.get('rate'))} overwriting a zero-written file"
        lines.append(line)
    for name, e in engines.items():
        if "skipped" in e:
            lines.append(f"skipped {name}: {e['skipped']}")
        elif "error" in e:
            lines.append(f"FAILED {name}: {e['error']}")
    return "\n".join(lines)
