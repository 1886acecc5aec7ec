"""store: the public API, an ordered ``MutableMapping[bytes, bytes]`` in one file.

    >>> import pagestore
    >>> with pagestore.open("data.ps") as db:
    ...     db[b"apple"] = b"red"
    ...     with db.transaction() as txn:
    ...         txn[b"banana"] = b"yellow"
    ...         del txn[b"apple"]
    ...     list(db.items(prefix=b"b"))
    [(b'banana', b'yellow')]

Layers (imports point one way): store -> btree, heap -> pager, wal -> page ->
_native. The B+tree maps keys to record ids; the heap maps record ids to
values; the pager turns both into pages and commits them through the log.

Concurrency: one process writes a store at a time (``StoreLockedError``
otherwise); read-only opens from other processes are refused while a writer
has the store open, and share it with each other. Threads may share a Store:
every operation holds the store's lock; scans take it once per leaf and once
per value or short run of values, so a long scan never blocks writers for
long, and sees each value as committed at the moment it read it.
"""
from __future__ import annotations

import os
import threading
from collections.abc import MutableMapping
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from sortedcontainers import SortedDict

from . import fileio
from . import format as fmt
from .btree import BTree
from .errors import (
    CorruptionError,
    NotFoundError,
    PageStoreError,
    StoreClosedError,
    TransactionClosedError,
)
from .heap import Heap
from .page import as_bytes_like
from .pager import DEFAULT_CACHE_BYTES, DEFAULT_WAL_LIMIT, Pager

T = TypeVar("T")
MAX_VALUE = 2**32 - 1
_DELETED = object()
#: How a scan batches its value reads; see Store._scan. Reading ahead costs
#: more than the lock it saves when the caller stops early (a cache miss is
#: about 4 us, a lock acquisition and pager operation 0.25 us): hence one at a
#: time at first, then runs that waste at most 1/32 of what was taken.
_RUN_FROM = 64
_RUN_SHIFT = 5
_MAX_RUN = 64
#: With the data file mapped, values are sliced in runs that start at this
#: many and double up to _MAX_RUN (see Store._scan).
_FIRST_RUN = 1


def prefix_end(prefix: bytes) -> Optional[bytes]:
    """prefix_end returns the smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


def _bounds(start: Optional[bytes], stop: Optional[bytes], prefix: Optional[bytes]) -> Tuple[Optional[bytes], Optional[bytes]]:
    lo = None if start is None else bytes(as_bytes_like(start, "start"))
    hi = None if stop is None else bytes(as_bytes_like(stop, "stop"))
    if prefix is not None:
        prefix = bytes(as_bytes_like(prefix, "prefix"))
        if lo is None or lo < prefix:
            lo = prefix
        end = prefix_end(prefix)
        if end is not None and (hi is None or hi > end):
            hi = end
    return lo, hi


class Store(MutableMapping):
    """Store is an open pagestore file; use ``pagestore.open`` to get one.

    Keys and values are bytes-like; keys order bytewise. ``len(db)`` is O(1);
    a get, put or delete is O(log n) page reads. Writes outside a transaction
    each commit on their own (durably, unless opened with ``sync=False``).
    """

    def __init__(
        self,
        path: str,
        *,
        create: bool = True,
        readonly: bool = False,
        page_size: int = 4096,
        cache_size: int = DEFAULT_CACHE_BYTES,
        sync: bool = True,
        wal_limit: int = DEFAULT_WAL_LIMIT,
        mmap: bool = True,
        _opener: fileio.Opener = fileio.open_file,
    ) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._version = 0  # bumped by every write: scans re-descend after one
        self._closed = True
        self._opener = _opener
        # One memory budget, so memory stays near cache_size: half holds the
        # B+tree's nodes (raw pages), half is the pager's page cache. Every
        # get reads one leaf and one heap page, and heap pages outnumber
        # leaves about fifteen to one, so a byte of leaf cache saves more
        # reads than a byte of heap cache (measured at 200k records: point
        # reads +15% over a quarter for the tree, other phases unchanged).
        # What the tree's half does not hold yet it lends to the pager.
        self._cache_size = cache_size
        self._options = dict(cache_size=cache_size - cache_size // 2, sync=sync, wal_limit=wal_limit, mmap=mmap)
        try:
            self._pager = Pager(
                self.path, create=create, readonly=readonly, page_size=page_size, opener=_opener, **self._options
            )
        except IsADirectoryError as exc:
            raise PageStoreError(f"{self.path}: is a directory, not a store file") from exc
        except FileNotFoundError as exc:
            raise FileNotFoundError(2, "no such store (open with create=True to make one)", self.path) from exc
        except PermissionError as exc:
            raise PermissionError(13, "permission denied", self.path) from exc
        try:
            self._tree = BTree(self._pager, node_cache=self._tree_node_cache(), lend=True)
            self._heap = Heap(self._pager)  # reads the free-space map: may raise CorruptionError
        except BaseException:
            # Nobody will ever hold this Store to close it: release the file and its lock now.
            self._pager.close(checkpoint=False)
            raise
        self._closed = False
        self.max_key = self._tree.max_key

    # ---- plumbing ----

    def _begin(self) -> Pager:
        if self._closed:
            raise StoreClosedError(f"{self.path}: store is closed")
        self._pager.begin_operation()
        return self._pager

    def _key(self, key: Any) -> bytes:
        k = as_bytes_like(key, "key")
        if len(k) > self.max_key:
            raise ValueError(f"key of {len(k)} bytes exceeds the maximum of {self.max_key} for {self._pager.page_size}-byte pages")
        return bytes(k)

    @staticmethod
    def _value(value: Any) -> bytes:
        v = as_bytes_like(value, "value")
        if len(v) > MAX_VALUE:
            raise ValueError(f"value of {len(v)} bytes exceeds the maximum of {MAX_VALUE}")
        return bytes(v)

    def _write(self, fn: Callable[[], T], sync: Optional[bool] = None) -> T:
        """_write runs ``fn`` (which changes pages) and commits it, or undoes it all on any error."""
        self._begin()
        self._pager.check_writable()
        self._version += 1
        try:
            result = fn()
            self._tree.flush()
            self._heap.flush()
            self._pager.commit(sync)
        except BaseException:
            self._abort()
            raise
        return result

    def _abort(self) -> None:
        self._pager.rollback()
        self._tree.reset()
        self._heap.reset()

    def _put(self, key: bytes, value: bytes) -> None:
        meta = self._pager.meta
        old = self._tree.get(key)
        if old is None:
            rid = self._heap.insert(value)
            self._tree.put(key, rid)
            meta.record_count += 1
            meta.live_bytes += len(key) + len(value)
        else:
            rid, old_len = self._heap.update(old, value)
            if rid != old:
                self._tree.put(key, rid)
            meta.live_bytes += len(value) - old_len

    def _delete(self, key: bytes) -> bool:
        rid = self._tree.delete(key)
        if rid is None:
            return False
        n = self._heap.delete(rid)
        meta = self._pager.meta
        meta.record_count -= 1
        meta.live_bytes -= len(key) + n
        return True

    # ---- the mapping ----

    def __getitem__(self, key: Any) -> bytes:
        k = self._key(key)
        with self._lock:
            self._begin()
            rid = self._tree.get(k)
            if rid is None:
                raise NotFoundError(k)
            return self._heap.read(rid)

    def get(self, key: Any, default: Any = None) -> Any:
        """get returns the value of ``key``, or ``default`` when it is missing."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        k = self._key(key)
        with self._lock:
            self._begin()
            return self._tree.get(k) is not None

    def __setitem__(self, key: Any, value: Any) -> None:
        k, v = self._key(key), self._value(value)
        with self._lock:
            self._write(lambda: self._put(k, v))

    def __delitem__(self, key: Any) -> None:
        k = self._key(key)
        with self._lock:
            if not self._write(lambda: self._delete(k)):
                raise NotFoundError(k)

    def __len__(self) -> int:
        with self._lock:
            self._begin()
            return self._pager.meta.record_count

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def __bool__(self) -> bool:
        return len(self) > 0

    # ---- ordered scans ----

    def _scan(self, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, values: bool) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        """_scan yields entries lazily, one leaf's keys at a time.

        The keys and record ids of a leaf are taken under the lock. Values are
        read under the lock again, only when the caller asks for them, and
        only if no write committed since the leaf was read: a write may move
        a record, so after one the scan re-descends from the root after the
        last key it yielded. Nothing is ever read through a stale record id,
        and no write invalidates the iterator.

        Until it has yielded _RUN_FROM values, a scan reads one value per
        lock acquisition, so a short scan (most range scans stop early) reads
        exactly the values it yields. A longer one reads runs of values in one
        acquisition and one pager operation: a run is 1/2**_RUN_SHIFT of the
        values yielded so far, at most _MAX_RUN, and never passes the leaf's
        batch. A caller that stops mid-run has paid for a few percent more
        values than it took, and memory stays bounded by one leaf. A run's
        values are those committed when the run was read.
        """
        resume: Optional[bytes] = None
        lock = self._lock
        taken = 0
        run = _FIRST_RUN
        version = -1
        path: List[Tuple[Any, int]] = []  # the tree's path to the last leaf, while no write intervenes
        while True:
            with lock:
                pager = self._begin()
                heap = self._heap
                if self._version != version:
                    version = self._version
                    path = []
                located = None
                if not values or pager.use_map:
                    keys, pgnos, slots = self._tree.range_leaf(lo, hi, reverse, resume, path)
                    if values and keys:
                        # A long scan locates a whole leaf's values in one call; a
                        # short one (most ranges stop early) each run's as it takes it.
                        located = heap.locate(pgnos, slots, lazy=run < _MAX_RUN)
                else:
                    batch = self._tree.range_batch(lo, hi, reverse, resume)
            if not values:
                if not keys:
                    return
                for k in keys:
                    yield k, None
                resume = keys[-1]
                continue
            if located is not None:
                # The leaf's values were located in one call; they are sliced
                # in runs of 1, 2, 4, ... (at most _MAX_RUN), each under the
                # lock: a short scan takes little more than it yields.
                i, n = 0, len(keys)
                while i < n:
                    j = min(n, i + run)
                    with lock:
                        if self._version != version:
                            break  # re-descend after `resume`
                        self._begin()
                        vals = located.take(i, j)
                    yield from zip(keys[i:j], vals)
                    resume = keys[j - 1]
                    i = j
                    run = min(2 * run, _MAX_RUN)
                continue
            if pager.use_map or not batch:
                return
            if taken < _RUN_FROM:
                for k, rid in batch:
                    with lock:
                        if self._version != version:
                            break  # re-descend after `resume`
                        self._begin()
                        v = heap.read(rid)
                    yield k, v
                    taken += 1
                    resume = k
                continue
            i, n = 0, len(batch)
            while i < n:
                part = batch[i : i + min(taken >> _RUN_SHIFT, _MAX_RUN)]
                with lock:
                    if self._version != version:
                        break  # re-descend after `resume`
                    self._begin()
                    vals = heap.read_many([rid for _, rid in part])
                for (k, _), v in zip(part, vals):
                    yield k, v
                i += len(part)
                taken += len(part)
                resume = part[-1][0]

    def items(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False) -> Iterator[Tuple[bytes, bytes]]:
        """items yields ``(key, value)`` with ``start <= key < stop`` (and the prefix), in key order.

        Lazy: memory is bounded by one leaf, however large the store.
        ``reverse=True`` yields the same range in descending order.
        """
        lo, hi = _bounds(start, stop, prefix)
        return self._scan(lo, hi, reverse, True)  # type: ignore[return-value]

    def keys(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False) -> Iterator[bytes]:  # type: ignore[override]
        """keys yields the keys of ``items(...)`` without reading values."""
        lo, hi = _bounds(start, stop, prefix)
        return (k for k, _ in self._scan(lo, hi, reverse, False))

    def values(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False) -> Iterator[bytes]:  # type: ignore[override]
        """values yields the values of ``items(...)``."""
        return (v for _, v in self.items(start, stop, prefix=prefix, reverse=reverse))

    # ---- transactions ----

    def transaction(self, *, sync: Optional[bool] = None) -> "Transaction":
        """transaction returns a Transaction: use it as ``with db.transaction() as txn``.

        Its writes are buffered and applied as one atomic commit on normal
        exit; an exception rolls it back and nothing of it is visible.
        """
        self._begin()
        return Transaction(self, sync)

    def _apply(self, writes: "SortedDict", sync: Optional[bool]) -> None:
        def run() -> None:
            for k, v in writes.items():
                self._pager.begin_operation()
                if v is _DELETED:
                    self._delete(k)
                else:
                    self._put(k, v)

        with self._lock:
            self._write(run, sync)

    # ---- introspection and maintenance ----

    def stats(self) -> Dict[str, Any]:
        """stats returns figures about the store. O(pages): it reads every page header.

        Keys: page_size, file_size, page_count, free_pages, records, live_bytes,
        tree_height, average_fill, page_types, overflow_pages, wal_size,
        cache_bytes (private memory: the page cache and the tree's node
        cache, counted in pages, as ``cache_size`` bounds them) and
        mapped_bytes (the data file mapped read-only: shared with the OS page
        cache, which may reclaim it; 0 with ``mmap=False``). Both as they
        were before this call, which reads every page through the cache.
        """
        with self._lock:
            pager = self._begin()
            memory = pager.memory()
            memory["cache_bytes"] += self._tree.cache_pages() * pager.page_size
            meta = pager.meta
            types: Dict[str, int] = {}
            used = 0
            counted = 0
            for pgno in range(1, meta.page_count):
                pager.begin_operation()
                page = pager.read(pgno)
                name = fmt.PAGE_TYPE_NAMES.get(page.page_type, str(page.page_type))
                types[name] = types.get(name, 0) + 1
                if page.page_type != fmt.PAGE_FREE:
                    used += pager.page_size - page.free_space
                    counted += 1
            return {
                "path": self.path,
                "page_size": pager.page_size,
                "file_size": pager.file_size(),
                "page_count": meta.page_count,
                "free_pages": meta.freelist_count,
                "records": meta.record_count,
                "live_bytes": meta.live_bytes,
                "tree_height": meta.tree_height,
                "average_fill": (used / (counted * pager.page_size)) if counted else 0.0,
                "page_types": types,
                "overflow_pages": types.get("overflow", 0),
                "wal_size": pager.wal_size(),
                **memory,
            }

    def check(self) -> Dict[str, int]:
        """check verifies every invariant of the store and returns what it counted.

        Key order and tree shape (the B+tree's check), every record id live and
        referenced once, overflow chains, the free-space map, and that every
        page is accounted for exactly once (header, tree, heap, overflow, map,
        free list). Memory: one bit per heap slot.

        Raises:
            CorruptionError: naming the first page found wrong.
        """
        with self._lock:
            pager = self._begin()
            meta = pager.meta
            owner: Dict[int, str] = {}

            def claim(pgno: int, what: str) -> None:
                if pgno <= 0 or pgno >= meta.page_count:
                    raise CorruptionError(pgno, f"{what} page outside the file")
                if pgno in owner:
                    raise CorruptionError(pgno, f"page claimed twice: by {owner[pgno]} and {what}")
                owner[pgno] = what

            pager.check()
            tree_stats = self._tree.check()
            for pgno in self._tree.pages():
                claim(pgno, "tree")
            for pgno in pager.freelist():
                claim(pgno, "free list")
            for pgno in self._heap.fsm.pages:
                claim(pgno, "free-space map")
            refs: Dict[int, bytearray] = {}
            records = 0
            live_bytes = 0
            for key, rid in self._tree.entries():
                pager.begin_operation()
                pgno, slot = rid
                length, chain = self._heap.check_record(rid)
                bits = refs.get(pgno)
                if bits is None:
                    claim(pgno, "heap")
                    bits = refs[pgno] = bytearray(fmt.MAX_SLOTS // 8 + 1)
                if bits[slot >> 3] & (1 << (slot & 7)):
                    raise CorruptionError(pgno, f"record id ({pgno}, {slot}) is referenced by two keys")
                bits[slot >> 3] |= 1 << (slot & 7)
                for p in chain:
                    claim(p, "overflow")
                records += 1
                live_bytes += len(key) + length
            for pgno, bits in refs.items():
                pager.begin_operation()
                page = pager.read(pgno)
                referenced = sum(bin(b).count("1") for b in bits)
                if referenced != page.nlive:
                    raise CorruptionError(pgno, f"heap page has {page.nlive} live records but {referenced} are referenced")
                self._heap.check_page(pgno)
            for pgno in range(1, meta.page_count):
                if pgno not in owner:
                    pager.begin_operation()
                    page = pager.read(pgno)
                    raise CorruptionError(pgno, f"page of type {page.page_type} is not accounted for (leaked)")
            for pgno, c in self._heap.fsm.cat.items():
                if owner.get(pgno) != "heap" and c:
                    raise CorruptionError(pgno, "free-space map offers a page that is not a heap page")
            if records != meta.record_count:
                raise CorruptionError(0, f"header counts {meta.record_count} records, the tree holds {records}")
            if live_bytes != meta.live_bytes:
                raise CorruptionError(0, f"header counts {meta.live_bytes} live bytes, records hold {live_bytes}")
            free = sum(1 for v in owner.values() if v == "free list")
            if free != meta.freelist_count:
                raise CorruptionError(0, f"header counts {meta.freelist_count} free pages, the list holds {free}")
            return {
                "records": records,
                "pages": meta.page_count,
                "heap_pages": len(refs),
                "free_pages": free,
                "overflow_pages": sum(1 for v in owner.values() if v == "overflow"),
                **{f"tree_{k}": v for k, v in tree_stats.items()},
            }

    def compact(self) -> int:
        """compact rewrites the store densely and shrinks the file; returns the bytes returned to the OS.

        The live records are copied in key order into a new file beside this
        one, which is synced and then renamed over it. A crash before the
        rename leaves the old store as it was; after it, the new one. The
        Store object stays usable throughout (other threads wait).
        """
        with self._lock:
            pager = self._begin()
            pager.check_writable()
            before = pager.file_size() + pager.wal_size()
            pager.checkpoint()
            tmp = self.path + ".compact"
            if os.path.exists(tmp):
                os.unlink(tmp)
            new = Store(tmp, create=True, page_size=pager.page_size, sync=False, _opener=self._opener)
            try:
                batch: List[Tuple[bytes, bytes]] = []

                def flush() -> None:
                    def run() -> None:
                        for k, v in batch:
                            new._pager.begin_operation()
                            new._put(k, v)

                    new._write(run)
                    batch.clear()

                for key, rid in self._tree.entries():
                    pager.begin_operation()
                    batch.append((key, self._heap.read(rid)))
                    if len(batch) >= 1000:
                        flush()
                if batch:
                    flush()
                new._pager.close()  # checkpoints and syncs the new file
            except BaseException:
                new._pager.close(checkpoint=False)
                os.unlink(tmp)
                raise
            new._closed = True
            old_pager = self._pager
            # The lock is taken on the new file before it replaces the old one,
            # so no other process can slip in between.
            fresh = Pager(tmp, create=False, page_size=pager.page_size, opener=self._opener, **self._options)
            os.replace(tmp, self.path)
            try:
                os.unlink(tmp + "-wal")
            except FileNotFoundError:
                pass
            fileio.sync_directory(self.path)
            fresh.path = self.path
            if fresh.wal is not None:
                fresh.wal.close()
            fresh.wal = None
            from .wal import WAL

            fresh.wal = WAL(self.path + "-wal", fresh.page_size, fresh.meta.file_id, opener=self._opener)
            fresh.wal.recover(fresh.meta.checkpoint_seq)
            old_pager.close(checkpoint=False)
            self._version += 1
            self._pager = fresh
            self._tree = BTree(fresh, node_cache=self._tree_node_cache(), lend=True)
            self._heap = Heap(fresh)
            after = fresh.file_size() + fresh.wal_size()
            return max(0, before - after)

    def _tree_node_cache(self) -> int:
        return max(64, self._cache_size // 2 // self._pager.page_size)

    # ---- lifecycle ----

    def close(self) -> None:
        """close checkpoints, removes the log and releases the file. Closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._version += 1
            self._pager.close(checkpoint=not self.readonly)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._pager.meta.record_count} records"
        return f"<pagestore.Store {self.path!r} {state}>"


class Transaction(MutableMapping):
    """Transaction buffers writes and applies them atomically at commit.

    It is a mapping that sees its own writes over the store's committed
    state. Outside readers see nothing of it until it commits. Concurrent
    transactions do not conflict-check: the later commit wins per key.
    """

    def __init__(self, store: Store, sync: Optional[bool]) -> None:
        self._store = store
        self._sync = sync
        self._writes: SortedDict = SortedDict()
        self._open = True

    def _check(self) -> None:
        if not self._open:
            raise TransactionClosedError("transaction already committed or rolled back")

    def __getitem__(self, key: Any) -> bytes:
        self._check()
        k = self._store._key(key)
        v = self._writes.get(k)
        if v is _DELETED:
            raise NotFoundError(k)
        if v is not None:
            return v
        return self._store[k]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check()
        self._store._pager.check_writable()
        self._writes[self._store._key(key)] = self._store._value(value)

    def __delitem__(self, key: Any) -> None:
        self._check()
        k = self._store._key(key)
        if k not in self:
            raise NotFoundError(k)
        self._writes[k] = _DELETED

    def __contains__(self, key: object) -> bool:
        self._check()
        k = self._store._key(key)
        v = self._writes.get(k)
        if v is not None:
            return v is not _DELETED
        return k in self._store

    def __len__(self) -> int:
        self._check()
        n = len(self._store)
        for k, v in self._writes.items():
            present = k in self._store
            if v is _DELETED and present:
                n -= 1
            elif v is not _DELETED and not present:
                n += 1
        return n

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def items(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False) -> Iterator[Tuple[bytes, bytes]]:
        """items merges the store's committed entries with this transaction's writes."""
        self._check()
        lo, hi = _bounds(start, stop, prefix)
        return self._merge(self._store._scan(lo, hi, reverse, True), lo, hi, reverse)

    def keys(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False) -> Iterator[bytes]:  # type: ignore[override]
        return (k for k, _ in self.items(start, stop, prefix=prefix, reverse=reverse))

    def values(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False) -> Iterator[bytes]:  # type: ignore[override]
        return (v for _, v in self.items(start, stop, prefix=prefix, reverse=reverse))

    def _merge(self, base: Iterator, lo: Optional[bytes], hi: Optional[bytes], reverse: bool) -> Iterator[Tuple[bytes, bytes]]:
        mine = iter(list(self._writes.irange(lo, hi, inclusive=(True, False), reverse=reverse)))
        before = (lambda a, b: a > b) if reverse else (lambda a, b: a < b)
        b = next(base, None)
        m = next(mine, None)
        while b is not None or m is not None:
            if m is None or (b is not None and before(b[0], m)):
                yield b  # type: ignore[misc]
                b = next(base, None)
                continue
            if b is not None and b[0] == m:
                b = next(base, None)
            v = self._writes[m]
            if v is not _DELETED:
                yield m, v
            m = next(mine, None)

    def commit(self) -> None:
        """commit applies every write as one atomic, durable (by default) commit."""
        self._check()
        self._open = False
        if self._writes:
            self._store._apply(self._writes, self._sync)
        self._writes = SortedDict()

    def rollback(self) -> None:
        """rollback discards every write; the store is as if the transaction never began."""
        self._check()
        self._open = False
        self._writes = SortedDict()

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._open:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


def open(
    path: "str | os.PathLike[str]",
    *,
    create: bool = True,
    readonly: bool = False,
    page_size: int = 4096,
    cache_size: int = DEFAULT_CACHE_BYTES,
    sync: bool = True,
    mmap: bool = True,
) -> Store:
    """open opens (or creates) a store file and returns a Store.

    Args:
        path: the store's file; its log lives beside it as ``<path>-wal``.
        create: make the file if it does not exist (else ``FileNotFoundError``).
        readonly: open for reading only; writes raise ``ReadOnlyError``.
        page_size: for a new file (a power of two, 512 to 65536); an existing
            file keeps the page size it was made with.
        cache_size: bytes of private memory for pages (the page cache and
            the tree's node cache); it stays near this however large the
            store is.
        sync: make each commit durable before it returns (fdatasync). With
            False, a crash may lose the latest commits but never consistency.
        mmap: also map the data file read-only, and read the pages whose
            newest committed image is there in place (no copy, no private
            memory: they are the operating system's page cache, shared and
            reclaimable). False reads every page into the private cache, for
            file systems without a coherent mmap (network file systems).

    Raises:
        InvalidFileError: the file is not a pagestore file.
        VersionMismatchError: written by a newer format.
        StoreLockedError: another process has it open for writing.
        CorruptionError: the header or log is damaged beyond recovery.
    """
    return Store(path, create=create, readonly=readonly, page_size=page_size, cache_size=cache_size, sync=sync, mmap=mmap)
