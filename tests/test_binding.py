"""The two bindings of the read path's hot C calls (pagestore/_native.py): the
``pagestore._fastpage`` extension module and the cffi fallback, ``CffiPage``.

Both are run here, on the same pages: function by function against each other
(sound pages, damaged pages, pages outside the file), and the whole read path
of a store in one process per binding (``PAGESTORE_NATIVE``), each proving
which binding it ran. Small pages (512 bytes) so that overflow chains, splits
and three tree levels come with a few thousand records.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from typing import Any, Callable, Dict, List, Tuple

import pytest

from pagestore import _native, nodes
from pagestore import format as fmt
from pagestore.errors import CorruptionError
from pagestore.page import SlottedPage
from pagestore.store import Store

from helpers import FAST, outcome as _outcome

pytestmark = pytest.mark.skipif(FAST is None, reason="pagestore._fastpage is built on CPython only")


def _build(path: str, n: int, seed: int) -> Dict[bytes, bytes]:
    rng = random.Random(seed)
    model: Dict[bytes, bytes] = {}
    with Store(path, page_size=512) as db:
        with db.transaction() as txn:
            for _ in range(n):
                k = rng.randbytes(rng.randint(1, 24))
                v = rng.randbytes(rng.choice([0, 1, 10, 100, 200, 600, 2000]))
                txn[k] = model[k] = v
    return model


def test_the_binding_is_chosen_at_import():
    """By default CPython takes _fastpage; PAGESTORE_NATIVE=cffi the fallback; anything else is refused."""
    code = "import pagestore._native as n; print(n.BINDING, type(n.fast).__name__)"

    def run(value: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "PAGESTORE_NATIVE"}
        if value:
            env["PAGESTORE_NATIVE"] = value
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)

    assert run("").stdout.split() == ["fastpage", "module"]
    assert run("fastpage").stdout.split() == ["fastpage", "module"]
    assert run("cffi").stdout.split() == ["cffi", "CffiPage"]
    bad = run("ctypes")
    assert bad.returncode != 0 and "PAGESTORE_NATIVE must be" in bad.stderr


def test_both_bindings_answer_alike_on_sound_damaged_and_outside_pages(tmp_path):
    """Every hot call, through _fastpage and through cffi, on every page of a mapped file (some
    of them damaged on disk) and two past its end: the same answers, and the same errors, a
    damaged page always a CorruptionError naming it (or None where the call's contract says so)."""
    path = str(tmp_path / "db")
    model = _build(path, 1500, seed=3)
    keys = sorted(model)
    with Store(path, page_size=512) as db:
        page_count = db._pager.meta.page_count
        types = {p: db._pager.read(p).page_type for p in range(1, page_count)}
    rng = random.Random(4)
    damaged = sorted(rng.sample([p for p, t in types.items() if t != fmt.PAGE_FSM], 12))
    with open(path, "r+b") as f:
        for p in damaged:
            f.seek(p * 512 + rng.randrange(fmt.HEADER_SIZE, 512))
            f.write(bytes([rng.randrange(256)]))
    cf = _native.CffiPage()
    fast = FAST
    with Store(path, page_size=512) as db:
        pager = db._pager
        assert pager.map is not None and not pager.overlaid
        m = pager.pagemap._handle.struct  # the binding test compares the two bindings on the raw description
        h = int(_native.ffi.cast("uintptr_t", m))
        probes = [rng.choice(keys) for _ in range(3)] + [rng.randbytes(rng.randint(0, 30)), b""]
        seen = {"ok": 0, "corrupt": 0}
        for p in range(1, page_count + 2):
            calls: List[Tuple[str, Tuple[Any, ...], Tuple[Any, ...]]] = []
            for k in probes:
                calls.append(("map_child", (h, p, k), (m, p, k)))
                calls.append(("map_find", (h, p, k), (m, p, k)))
                calls.append(("map_get", (h, p, k), (m, p, k)))
                lo, hi = sorted(rng.sample(probes, 2))
                limit = rng.choice([-1, 0, 1, 5, 1000])
                calls.append(("map_leaf_run", (h, p, lo, rng.random() < 0.5, hi, limit),
                              (m, p, lo, False, hi, limit)))
                calls.append(("map_leaf_run", (h, p, None, False, None, -1), (m, p, None, False, None, -1)))
            for slot in (0, 1, 2, 7, 70000):
                calls.append(("map_value", (h, p, slot), (m, p, slot)))
                calls.append(("map_record", (h, p, slot, fmt.PAGE_HEAP), (m, p, slot, fmt.PAGE_HEAP)))
                calls.append(("map_record", (h, p, slot, -1), (m, p, slot, -1)))
            calls.append(("map_chunk", (h, p), (m, p)))
            for count in (0, 1, 2, 3, 6):
                for step in (1, -1):
                    calls.append(("map_chain_run", (h, p, count, step), (m, p, count, step)))
                    for stub in (p - 1, p + 1, 2):  # stub pages near the chain and one far from it
                        for slot in (0, 1):
                            calls.append(("map_chain_value", (h, p, count, step, stub, slot),
                                          (m, p, count, step, stub, slot)))
            calls.append(("map_values", (h, [p, p, 0], [0, 1, 0]), (m, [p, p, 0], [0, 1, 0])))
            out: List[Any] = [None] * len(keys)
            calls.append(("map_find_many", (h, p, keys, 0, 40, list(out)), (m, p, keys, 0, 40, list(out))))
            for name, fast_args, cffi_args in calls:
                # map_leaf_run's after flag: both sides the same
                if name == "map_leaf_run":
                    cffi_args = (cffi_args[0], p, fast_args[2], fast_args[3], fast_args[4], fast_args[5])
                a = _outcome(getattr(fast, name), *fast_args)
                b = _outcome(getattr(cf, name), *cffi_args)
                if name == "map_find_many" and a[0] == b[0] == "ok":
                    a, b = ("ok", fast_args[5]), ("ok", cffi_args[5])
                assert a == b, (name, p, a, b)
                if a[0] == "corrupt":
                    assert a[1] == p, (name, p, a)
                seen[a[0]] = seen.get(a[0], 0) + 1
            # raw forms, on a copy of the page's bytes
            raw = bytes(pager.map[p * 512 : (p + 1) * 512]) if p < page_count else b"\0" * 512
            for k in probes:
                for name, args in (("node_child", (raw, k, p)), ("node_find", (raw, k, True, p)),
                                   ("node_find", (raw, k, False, p)), ("node_get", (raw, k, p)),
                                   ("leaf_run", (raw, p, k, False, None, 3)),
                                   ("leaf_run", (raw, p, None, True, k, -1)), ("page_value", (raw, 0)),
                                   ("page_value", (bytearray(raw), 1))):
                    assert _outcome(getattr(fast, name), *args) == _outcome(getattr(cf, name), *args), (name, p)
        assert seen["ok"] > 1000 and seen["corrupt"] > 20, seen
        # map_values over many pages at once (sound, damaged, outside, 0, bad slots): the
        # fast binding takes them in prefetched batches of 32; the answers are the same
        pgnos = [p for p in range(page_count + 3) for _ in range(3)] + [0, 2**32 - 1] * 20
        slots = [rng.choice([0, 1, 2, 3, 65535]) for _ in pgnos]
        a, b = _outcome(fast.map_values, h, pgnos, slots), _outcome(cf.map_values, m, pgnos, slots)
        assert a == b and a[0] == "ok" and len(a[1]) == len(pgnos), (a[0], b[0])
        assert sum(v is not None for v in a[1]) > 100
        # through the store: a damaged page is named, never a crash
        for k in keys:
            try:
                assert db[k] == model[k]
            except CorruptionError as e:
                assert e.pgno in damaged, e


def test_wrong_arguments_are_errors_not_crashes():
    """The C module checks what it is handed: types, counts, bounds."""
    fast = FAST
    raw = bytes(512)
    with pytest.raises(TypeError):
        fast.node_find(bytearray(raw), b"k", False, 1)
    with pytest.raises(TypeError):
        fast.node_child(raw, "k", 1)
    with pytest.raises(TypeError):
        fast.map_child(0, 1)
    with pytest.raises(ValueError):
        fast.map_child(0, 1, b"k")  # a null handle
    with pytest.raises(OverflowError):
        fast.map_value(1, 2**40, 0)
    page = SlottedPage.new(512, 1, fmt.PAGE_LEAF)
    nodes.build(page, 1, True, [b"a"], [(7, 3)])
    leaf = bytes(page.buffer)
    out: List[Any] = [None]
    fast.node_find_many(leaf, [b"a"], 0, 1, out, 1)
    assert out == [(7, 3)]
    with pytest.raises(IndexError):
        fast.node_find_many(leaf, [b"a"], 0, 5, out, 1)
    with pytest.raises(TypeError):
        fast.node_find_many(leaf, (b"a",), 0, 1, out, 1)
    with pytest.raises(CorruptionError) as e:
        fast.node_find(raw, b"k", False, 9)  # an all-zero page is no node
    assert e.value.pgno == 9
    assert fast.page_value(b"short", 0) is None
    assert fast.node_get(leaf, b"a", 1) == (7, 3) and fast.node_get(leaf, b"b", 1) is None
    with pytest.raises(TypeError):
        fast.node_get(leaf, "a", 1)
    with pytest.raises(TypeError):
        fast.map_get(0, 1)


_DIGEST = textwrap.dedent(
    """
    import hashlib, random, sys
    from itertools import islice
    import pagestore
    from pagestore import _native, nodes
    path = sys.argv[1]
    h = hashlib.sha256()
    def add(x):
        h.update(repr(x).encode())
    rng = random.Random(7)
    with pagestore.open(path, page_size=512) as db:
        keys = list(db.keys())
        # some writes left in the log: pages newest there are read through the caches
        with db.transaction() as txn:
            for k in keys[::37]:
                txn[k] = b"rewritten" * rng.randrange(80)
        overlaid = len(db._pager.overlaid)
        probes = keys + [rng.randbytes(rng.randint(1, 20)) for _ in range(200)]
        add([db.get(k) for k in probes])
        add([k in db for k in probes[::5]])
        add(db.get_many(probes[::3]))
        add(list(db.items()))
        add(list(db.items(reverse=True)))
        for _ in range(100):
            s = rng.choice(probes)
            add(list(islice(db.items(start=s), 50)))
            add(list(islice(db.values(stop=s, reverse=True), 7)))
            add(list(db.keys(prefix=s[:1])))
            add([kv for kv in db.items(start=s, limit=50)])  # one hold of the lock, no snapshot
            add([v for v in db.values(stop=s, reverse=True, limit=rng.choice([1, 64, 100]))])
        with db.snapshot() as snap:
            add([snap.get(k) for k in probes[::11]])
        db.check()
    print(_native.BINDING, overlaid, h.hexdigest())
    """
)


def test_the_read_path_gives_the_same_answers_with_both_bindings(tmp_path):
    """Gets, membership, get_many, scans both ways, ranges, prefixes and a snapshot, on a store
    with pages both in the map and in the log: one digest per binding, each process saying
    which binding it ran."""
    path = str(tmp_path / "db")
    _build(path, 2500, seed=5)
    script = tmp_path / "digest.py"
    script.write_text(_DIGEST)
    results = {}
    for binding in ("cffi", "fastpage"):
        copy = tmp_path / f"db-{binding}"
        with open(path, "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())
        env = dict(os.environ, PAGESTORE_NATIVE=binding)
        out = subprocess.run([sys.executable, str(script), str(copy)], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        ran, overlaid, digest = out.stdout.split()
        assert ran == binding and int(overlaid) > 0
        results[binding] = digest
    assert results["cffi"] == results["fastpage"]


def test_internal_nodes_gets_meet_stay_within_the_cache_budget(tmp_path):
    """A get keeps the internal nodes it meets in the node cache as their page bytes (one page
    each, searched in C; decoded, a node weighs four to seven), counted in its weight: with a
    cache smaller than the tree's internal nodes, gets stay right and the cache bounded."""
    path = str(tmp_path / "db")
    model = _build(path, 3000, seed=9)
    with Store(path, page_size=512, cache_size=512 * 16) as db:
        tree = db._tree
        cap = tree.nodes.capacity
        assert db._pager.meta.tree_height >= 3
        for k, v in model.items():
            assert db[k] == v
            assert tree.nodes.weight <= cap
        counts = tree.nodes.check()
        assert counts["decoded"] == 0 and counts["entries"] >= 1
        assert all(e.raw is not None for e in tree.nodes.lru.values() if not e.leaf)
    with Store(path, page_size=512) as db:  # a roomy cache keeps every internal node met
        for k in model:
            db[k]
        internal = [e for e in db._tree.nodes.lru.values() if not e.leaf]
        assert internal and all(e.raw is not None for e in internal)


def test_a_commit_leaves_internal_nodes_decoded(tmp_path):
    """flush builds a changed internal node's page and keeps the node decoded, so the next get
    bisects it instead of decoding it again; leaves go back to raw."""
    with Store(str(tmp_path / "db"), page_size=512) as db:
        with db.transaction() as txn:
            for i in range(3000):
                txn[b"%06d" % i] = b"v"
        lru = db._tree.nodes.lru
        assert any(not e.leaf for e in lru.values())
        assert all(e.node is not None for e in lru.values() if not e.leaf)
        assert all(e.raw is not None for e in lru.values() if e.leaf)
        db.check()


def test_scan_takes_each_run_of_values_in_one_call(tmp_path):
    """A mapped scan's run of values is one read_run (one C call for the values in the map)."""
    path = str(tmp_path / "db")
    with Store(path) as db:
        with db.transaction() as txn:
            for i in range(2000):
                txn[b"%06d" % i] = b"v%d" % i
    with Store(path) as db:
        db.snapshot().close()
        calls: List[int] = []
        # a scan reads through the store's heap while it holds the scan's state, else the snapshot's
        for heap in (db._heap, db._view.heap):  # type: ignore[union-attr]

            def counted(pgnos: List[int], slots: List[int], run: Any = heap.read_run) -> List[bytes]:
                calls.append(len(pgnos))
                return run(pgnos, slots)  # type: ignore[no-any-return]

            heap.read_run = counted  # type: ignore[method-assign]
        from itertools import islice

        got = list(islice(db.items(start=b"000500"), 50))
        assert got == [(b"%06d" % i, b"v%d" % i) for i in range(500, 550)]
        assert calls == [4, 3, 9, 36]  # a run cut by its leaf's end goes on in the next leaf: 52 values


def test_overflow_chains_in_any_page_order_read_back(tmp_path):
    """An overflow value is one call when its chain's pages are a run (ascending or descending),
    and page by page when they are not (pages reused from the free list): the same bytes."""
    path = str(tmp_path / "db")
    rng = random.Random(13)
    model: Dict[bytes, bytes] = {}
    with Store(path, page_size=512) as db:
        with db.transaction() as txn:
            for i in range(300):
                txn[b"%05d" % i] = model[b"%05d" % i] = rng.randbytes(rng.randrange(600, 4000))
        with db.transaction() as txn:
            for i in range(0, 300, 2):
                del txn[b"%05d" % i]
                del model[b"%05d" % i]
        with db.transaction() as txn:  # new chains on freed pages, in whatever order the free list gives
            for i in range(300, 450):
                txn[b"%05d" % i] = model[b"%05d" % i] = rng.randbytes(rng.randrange(600, 4000))
    runs: List[Any] = []
    with Store(path, page_size=512) as db:
        assert db._pager.map is not None and not db._pager.overlaid
        heap = db._heap
        from pagestore import heap as heap_module

        real = heap_module._map_chain_value  # a whole value, chain run and stub tail, in one call

        def counted(*args: Any) -> Any:
            got = real(*args)
            runs.append(got is not None)
            return got

        heap_module._map_chain_value = counted
        try:
            for k, v in model.items():
                assert db[k] == v
            assert dict(db.items()) == model
        finally:
            heap_module._map_chain_value = real
        assert heap is db._heap
    assert True in runs and False in runs  # both ways were taken
