"""memwhere.py: where a store's private memory goes after scaling.py's load and gets.

    python bench/memwhere.py --records 1e6 [--trace] [--path FILE] [--keep] [--json OUT]

Loads N records as ``bench/scaling.py`` does (its records, 1000 per durable
transaction, 32 MiB cache unless ``--cache-mb``), then 20,000 random gets, and
reports, in this one process:

- ``/proc/self/smaps_rollup`` (Anonymous, Private_Dirty, Rss) and glibc's
  ``mallinfo2`` (bytes in live chunks, free chunks it keeps), before and after
  ``malloc_trim(0)``;
- the store's own accounting (``stats()["cache_bytes"]`` parts);
- the deep size of each part of the store's object graph (each Python object
  counted once, under the first attribute path that reaches it, breadth first
  from the store), so a structure that grows with N shows as a row;
- with ``--trace``: tracemalloc (started before the open) grouped by the line
  that allocated, and by a 4-frame traceback, the 25 largest. Tracing slows
  the load about 2x; use it up to 10^6.

The baseline (a process that imported pagestore and did nothing) is measured
in a child and subtracted where it says "-base".
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import deque
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scaling import BATCH, _libc, malloc_heap, parse_sizes, record  # noqa: E402

import pagestore  # noqa: E402

MIB = 1 << 20


def smaps() -> Dict[str, int]:
    """smaps: /proc/self/smaps_rollup's fields in bytes, and RssAnon/RssFile from status."""
    out: Dict[str, int] = {}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[-1] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
        with open("/proc/self/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("RssAnon", "RssFile", "VmHWM"):
                    out[name] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def anon_mappings(top: int = 8) -> List[Tuple[int, str]]:
    """anon_mappings: the largest mappings by Anonymous bytes, with their names ([heap], anon)."""
    rows: List[Tuple[int, str]] = []
    name = ""
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):
                parts = line.split()
                name = f"{parts[0]} {parts[5] if len(parts) > 5 else '(anon)'}"
            elif first == "Anonymous:":
                kb = int(line.split()[1])
                if kb:
                    rows.append((kb * 1024, name))
    rows.sort(reverse=True)
    return rows[:top]


def pymalloc_stats() -> Dict[str, int]:
    """pymalloc_stats: pymalloc's arenas (bytes mapped) and bytes in its free blocks and pools."""
    import io
    import re

    r, w = os.pipe()
    saved = os.dup(2)
    os.dup2(w, 2)
    try:
        sys._debugmallocstats()  # type: ignore[attr-defined]
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(w)
    text = b""
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        text += chunk
    os.close(r)
    out: Dict[str, int] = {}
    for line in io.StringIO(text.decode()):
        m = re.match(r"# bytes in (allocated blocks|available blocks|\d+ unused pools|arenas)?\s*=\s*([\d,]+)", line.strip())
        m2 = re.match(r"#?\s*(bytes in allocated blocks|bytes in available blocks|bytes lost to pool headers|"
                      r"bytes lost to quantization|bytes lost to arena alignment|Total)\s*=\s*([\d,]+)", line.strip())
        if m2:
            out[m2.group(1)] = int(m2.group(2).replace(",", ""))
        elif m:
            out[m.group(1) or "?"] = int(m.group(2).replace(",", ""))
        m3 = re.match(r"(\d+) unused pools \* \d+ bytes\s*=\s*([\d,]+)", line.strip())
        if m3:
            out["unused pools"] = int(m3.group(2).replace(",", ""))
        m4 = re.match(r"# arenas allocated current\s*=\s*([\d,]+)", line.strip())
        if m4:
            out["arenas current"] = int(m4.group(1).replace(",", ""))
    return out


def deep_sizes(root: Any, name: str, depth: int = 3) -> Dict[str, int]:
    """deep_sizes: bytes of every object reachable from ``root``, each counted once, by attribute path.

    Breadth first: an object belongs to the first (shortest) path reaching it;
    paths are cut to ``depth`` attribute names (containers' items keep their
    container's path). Modules, classes and functions are not followed.
    """
    import types

    seen = set()
    sizes: Dict[str, int] = {}
    skip = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
    queue = deque([(root, name, 0)])
    while queue:
        obj, path, d = queue.popleft()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        sizes[path] = sizes.get(path, 0) + sys.getsizeof(obj)
        attrs: Optional[Dict[str, Any]] = None
        try:
            attrs = vars(obj)
        except TypeError:
            slots = getattr(type(obj), "__slots__", None)
            if slots and not isinstance(obj, (tuple, list, dict, set, frozenset, bytes, bytearray, str)):
                attrs = {s: getattr(obj, s) for s in ([slots] if isinstance(slots, str) else slots) if hasattr(obj, s)}
        if attrs is not None and d < depth:
            if id(attrs) not in seen and type(attrs) is dict and attrs is getattr(obj, "__dict__", None):
                seen.add(id(attrs))
                sizes[path] += sys.getsizeof(attrs)
            for k, v in attrs.items():
                queue.append((v, f"{path}.{k}", d + 1))
        for ref in gc.get_referents(obj):  # a container's items (an OrderedDict has a __dict__ too)
            queue.append((ref, path, d))
    return sizes


def _node_bytes(node: Any) -> int:
    size = sys.getsizeof(node) + sys.getsizeof(node.keys) + sys.getsizeof(node.vals)
    size += sum(map(sys.getsizeof, node.keys))
    for v in node.vals:
        size += sys.getsizeof(v)
        if type(v) is tuple:
            size += sum(map(sys.getsizeof, v))
    return size


def nodecache_breakdown(nc: Any) -> Dict[str, Any]:
    """nodecache_breakdown: the node cache's entries by form, their weight and their bytes."""
    out = {"capacity_pages": nc.capacity, "weight": nc.weight, "entries": len(nc.lru), "raw": 0, "raw_bytes": 0,
           "decoded_leaf": 0, "decoded_internal": 0, "with_image": 0, "decoded_bytes": 0, "image_bytes": 0,
           "entry_overhead": sys.getsizeof(nc.lru)}
    for pgno, e in nc.lru.items():
        out["entry_overhead"] += sys.getsizeof(e) + sys.getsizeof(pgno)
        if e.raw is not None:
            out["raw"] += 1
            out["raw_bytes"] += sys.getsizeof(e.raw)
        else:
            out["decoded_leaf" if e.leaf else "decoded_internal"] += 1
            out["decoded_bytes"] += _node_bytes(e.node)
            if e.image is not None:
                out["with_image"] += 1
                out["image_bytes"] += sys.getsizeof(e.image)
    d = out["decoded_leaf"] + out["decoded_internal"]
    out["decoded_bytes_per_node"] = out["decoded_bytes"] // d if d else 0
    return out


def pagecache_breakdown(pager: Any) -> Dict[str, Any]:
    """pagecache_breakdown: the page cache's frames, their buffers and the rest of each entry."""
    out = {"frames": len(pager.cache), "buf_bytes": 0, "base_bytes": 0, "entry_overhead": sys.getsizeof(pager.cache)}
    for pgno, f in pager.cache.items():
        out["buf_bytes"] += sys.getsizeof(f.buf)
        if f.base is not None:
            out["base_bytes"] += sys.getsizeof(f.base)
        out["entry_overhead"] += sys.getsizeof(f) + sys.getsizeof(f.page) + sys.getsizeof(pgno) + 80  # + cffi view
    return out


def _once(*containers: Any) -> int:
    """_once: the bytes of ``containers`` and of the ints they hold, each object once (the log's
    offsets are one int object in its list, its index and its depths)."""
    seen = set()
    total = 0
    for c in containers:
        total += sys.getsizeof(c)
        items = list(c.items()) if isinstance(c, dict) else [(x,) for x in c]
        for row in items:
            for x in row:
                if id(x) not in seen:
                    seen.add(id(x))
                    total += sys.getsizeof(x)
    return total


def baseline() -> Dict[str, int]:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--baseline"], stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=parse_sizes, default=[100_000])
    ap.add_argument("--cache-mb", type=float, default=32)
    ap.add_argument("--gets", type=int, default=20_000)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--path")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        print(json.dumps(smaps()))
        return
    base = baseline()
    n = args.records[0]
    tmp = None
    path = args.path
    if path is None:
        tmp = tempfile.mkdtemp(prefix=f"memwhere-{n}-")
        path = os.path.join(tmp, "store.ps")
    if args.trace:
        import tracemalloc

        tracemalloc.start(4)
    t0 = time.time()
    db = pagestore.open(path, cache_size=int(args.cache_mb * MIB))
    wal = db._pager.wal  # type: ignore[attr-defined]
    peak: Dict[str, Any] = {"anon": 0}
    for lo in range(0, n, BATCH):
        hi = min(n, lo + BATCH)
        batch = [record(i) for i in range(lo, hi)]
        with db.transaction() as txn:
            for k, v in batch:
                txn[k] = v
        if len(wal.frame_pgnos) > peak.get("frames", -1):
            peak.update(frames=len(wal.frame_pgnos), log_bytes=wal.end, at=hi)
        if lo % (n // 100 or 1) < BATCH:
            a = smaps().get("RssAnon", 0)
            if a > peak["anon"]:
                peak.update(anon=a, anon_at=hi)
        if lo % (n // 10 or 1) < BATCH:
            print(f"  loaded {hi:,} {time.time() - t0:.0f}s anon {smaps().get('RssAnon', 0) / MIB:.1f} MiB",
                  file=sys.stderr, flush=True)
    after_load = smaps()
    rng = random.Random(0)
    keys = [record(rng.randrange(n))[0] for _ in range(args.gets)]
    for k in keys:
        db[k]
    del keys, batch
    gc.collect()
    res: Dict[str, Any] = {"records": n, "cache_size": int(args.cache_mb * MIB), "load_seconds": time.time() - t0,
                           "base": base, "after_load": after_load, "after_gets": smaps(),
                           "malloc": malloc_heap(), "pymalloc": pymalloc_stats()}
    pager = db._pager  # type: ignore[attr-defined]
    res["accounting"] = {
        "pager.memory": pager.memory(),
        "pager.cache_pages": pager.cache_pages, "pager.cache_len": len(pager.cache),
        "tree.cache_pages": db._tree.cache_pages(),  # type: ignore[attr-defined]
        "fsm.memory": db._heap.fsm.memory(),  # type: ignore[attr-defined]
        "page_count": pager.meta.page_count,
        "wal": {"frames": len(wal.frame_pgnos), "log_bytes": wal.end, "index": len(wal.index),
                "depth": len(wal.depth), "images": len(wal._images), "overlaid": len(pager.overlaid),
                "bytes": _once(wal.frame_pgnos, wal.frame_offsets, wal.depth, wal.index, pager.overlaid)},
        "peak_during_load": dict(peak),
        "nodecache": nodecache_breakdown(db._tree.nodes),  # type: ignore[attr-defined]
        "pagecache": pagecache_breakdown(pager),
        "verified_bytes": sys.getsizeof(pager.pagemap.verified),
    }
    res["malloc_before_trim"] = malloc_heap()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    res["after_trim"] = smaps()
    res["malloc_after_trim"] = malloc_heap()
    if args.trace:
        snap = tracemalloc.take_snapshot()
        res["traced"] = tracemalloc.get_traced_memory()
        stats = snap.statistics("lineno")
        res["trace_lines"] = [(str(s.traceback), s.size, s.count) for s in stats[:25]]
        stats = snap.statistics("traceback")
        res["trace_tb"] = [(" <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(s.traceback)),
                            s.size, s.count) for s in stats[:25]]
        tracemalloc.stop()
    sizes = deep_sizes(db, "db", args.depth)
    res["deep"] = sorted(((v, k) for k, v in sizes.items() if v > 64 * 1024), reverse=True)
    res["deep_total"] = sum(sizes.values())
    res["anon_mappings"] = anon_mappings()
    db.close()
    if tmp and not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    b = base.get("RssAnon", 0)
    print(f"records {n:,}  pages {res['accounting']['page_count']:,}  load {res['load_seconds']:.0f}s")
    for label in ("after_load", "after_gets", "after_trim"):
        s = res[label]
        print(f"  {label:11s} RssAnon-base {(s.get('RssAnon', 0) - b) / MIB:7.1f} MiB  Anonymous {s.get('Anonymous', 0) / MIB:7.1f}"
              f"  Private_Dirty {s.get('Private_Dirty', 0) / MIB:7.1f}  RssFile {s.get('RssFile', 0) / MIB:7.1f}")
    m = res["malloc"]
    print(f"  malloc: arena {m.get('arena', 0) / MIB:.1f} in_use {m.get('in_use', 0) / MIB:.1f} free {m.get('free', 0) / MIB:.1f}"
          f" mmapped {m.get('mmapped', 0) / MIB:.1f} MiB; after trim in_use {res['malloc_after_trim'].get('in_use', 0) / MIB:.1f}"
          f" free {res['malloc_after_trim'].get('free', 0) / MIB:.1f}")
    print(f"  pymalloc: {res['pymalloc']}")
    for k, v in res["accounting"].items():
        print(f"  {k}: {v}")
    if args.trace:
        print(f"  traced now/peak {res['traced'][0] / MIB:.1f}/{res['traced'][1] / MIB:.1f} MiB; by line:")
        for tb, size, count in res["trace_lines"]:
            print(f"    {size / MIB:8.2f} MiB {count:9,}  {tb}")
        print("  by traceback:")
        for tb, size, count in res["trace_tb"][:15]:
            print(f"    {size / MIB:8.2f} MiB {count:9,}  {tb}")
    print(f"  deep sizes (total {res['deep_total'] / MIB:.1f} MiB), parts over 64 KiB:")
    for v, k in res["deep"][:40]:
        print(f"    {v / MIB:8.2f} MiB  {k}")
    print("  anonymous mappings:")
    for v, k in res["anon_mappings"]:
        print(f"    {v / MIB:8.2f} MiB  {k}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)


if __name__ == "__main__":
    main()
