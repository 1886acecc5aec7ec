"""binding.py: the cost of the read path's hot C calls through each binding.

The same page-local C (native/map.c) reached three ways, on one store's
mapped data file, the pages hot:

  cffi-wide   the call as the read path made it before: ps_map_node_search
              (10 arguments, 4 out-parameters read back) / ps_map_page_read
              (8 arguments, 4 out-parameters) and a slice of the map
  cffi-lean   the lean signatures through cffi: ps_map_child /
              ps_map_leaf_find (4 arguments, the answer returned) and
              ps_map_value (one out-parameter), bytes out of the map
  fastpage    the same lean functions through pagestore._fastpage
              (METH_FASTCALL: a handle and the key, the answer returned)

Rows: an internal node's child (one level of a descent), a leaf search (its
rid as a tuple), a value read (the bytes). CPU nanoseconds per call, best of
five passes over the same keys. It needs the _fastpage module built (it is,
by `pip install .` on CPython).

    python bench/binding.py --records 50000
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pagestore  # noqa: E402
from pagestore import _native  # noqa: E402
from pagestore._native import CffiPage, ffi, lib  # noqa: E402


def best_ns(fn: Callable[[Any], Any], items: List[Any], passes: int = 5) -> float:
    """best_ns: the least CPU time per call of ``fn`` over ``items``, in nanoseconds."""
    best = float("inf")
    for _ in range(passes):
        t0 = time.process_time()
        for x in items:
            fn(x)
        best = min(best, (time.process_time() - t0) / len(items))
    return best * 1e9


def main(argv: Any = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50000)
    ap.add_argument("--calls", type=int, default=50000)
    args = ap.parse_args(argv)
    from pagestore import _fastpage  # type: ignore[attr-defined]

    _fastpage.init(_native.raise_for)
    tmp = tempfile.mkdtemp(prefix="ps-binding-")
    try:
        rng = random.Random(1)
        path = os.path.join(tmp, "db")
        with pagestore.open(path) as db:
            keys = [rng.randbytes(rng.randint(8, 40)) for _ in range(args.records)]
            db.put_many((k, rng.randbytes(rng.randint(1, 200))) for k in keys)
        db = pagestore.open(path)  # reopened: every page in the data file, none in the log
        pager = db._pager
        tree = db._tree
        m = pager.pagemap._handle.struct  # the raw description, for the cffi-wide calls
        h = _native.map_handle(m) if _native.BINDING == "fastpage" else int(ffi.cast("uintptr_t", m))
        mm = pager.map
        root = pager.meta.root
        assert pager.meta.tree_height >= 2 and not pager.overlaid
        sample = [rng.choice(keys) for _ in range(args.calls)]
        # the leaf and rid of each sampled key, found once
        cf = CffiPage()
        leaves = []
        for k in sample:
            pgno = root
            for _ in range(pager.meta.tree_height - 1):
                pgno = cf.map_child(m, pgno, k)
            leaves.append(pgno)
        rids = [tree.get(k) for k in sample]
        assert None not in rids
        child_args = [(k,) for k in sample]
        leaf_args = list(zip(leaves, sample))

        u32, eq, u16 = ffi.new("uint32_t[3]"), ffi.new("uint8_t *"), ffi.new("uint16_t *")
        off64, ln, st, nx = ffi.new("uint64_t *"), ffi.new("uint32_t *"), ffi.new("uint8_t *"), ffi.new("uint32_t *")
        search, page_read = lib.ps_map_node_search, lib.ps_map_node_search and lib.ps_map_page_read
        map_child_c, leaf_find_c, value_c = lib.ps_map_child, lib.ps_map_leaf_find, lib.ps_map_value
        fchild, ffind, fvalue = _fastpage.map_child, _fastpage.map_find, _fastpage.map_value
        lean = CffiPage()

        def wide_child(a: Any) -> int:
            k = a[0]
            search(m, root, 3, k, len(k), 1, u32, eq, u32 + 1, u16)
            return int(u32[1])

        def wide_find(a: Any) -> Any:
            p, k = a
            search(m, p, 2, k, len(k), 0, u32, eq, u32 + 1, u16)
            return u32[0], bool(eq[0]), u32[1], u16[0]

        def wide_value(r: Any) -> bytes:
            page_read(m, r[0], r[1], 1, off64, ln, st, nx)
            o = off64[0]
            return mm[o : o + ln[0]]

        rows: Dict[str, Dict[str, float]] = {
            "child (one level)": {
                "cffi-wide": best_ns(wide_child, child_args),
                "cffi-lean": best_ns(lambda a: lean.map_child(m, root, a[0]), child_args),
                "fastpage": best_ns(lambda a: fchild(h, root, a[0]), child_args),
                "C call only, cffi-lean": best_ns(lambda a: map_child_c(m, root, a[0], len(a[0])), child_args),
            },
            "leaf search (rid)": {
                "cffi-wide": best_ns(wide_find, leaf_args),
                "cffi-lean": best_ns(lambda a: lean.map_find(m, a[0], a[1]), leaf_args),
                "fastpage": best_ns(lambda a: ffind(h, a[0], a[1]), leaf_args),
                "C call only, cffi-lean": best_ns(lambda a: leaf_find_c(m, a[0], a[1], len(a[1])), leaf_args),
            },
            "value read (bytes)": {
                "cffi-wide": best_ns(wide_value, rids),
                "cffi-lean": best_ns(lambda r: lean.map_value(m, r[0], r[1]), rids),
                "fastpage": best_ns(lambda r: fvalue(h, r[0], r[1]), rids),
                "C call only, cffi-lean": best_ns(lambda r: value_c(m, r[0], r[1], ln), rids),
            },
        }
        empty = best_ns(lambda a: None, child_args)
        cols = ["cffi-wide", "cffi-lean", "fastpage", "C call only, cffi-lean"]
        print(f"{args.records} records, {args.calls} calls, tree height {pager.meta.tree_height}; "
              f"CPU ns per call (a lambda doing nothing: {empty:.0f} ns, included)")
        print(f"| call | {' | '.join(cols)} |")
        print("|---|" + "---|" * len(cols))
        for name, r in rows.items():
            print(f"| {name} | " + " | ".join(f"{r[c]:.0f}" for c in cols) + " |")
        db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
