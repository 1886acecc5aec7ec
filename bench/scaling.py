"""scaling.py: insert and get cost per operation, and peak memory, as the store grows.

    python bench/scaling.py --sizes 1e4,1e5,1e6,1e7 --out DIR

For each size N, a fresh child process (this script again, with the hidden
``--child N``) creates an empty store with a fixed cache size, loads N records
in transactions of 1000 (each commit durable), then does 20,000 gets of random
existing keys. One more child only imports pagestore and reports its memory:
the baseline. The parent prints a table, and writes into DIR:

    scaling.json   every figure, per size, plus the machine it ran on
    scaling.svg    three panels against N (log scale): insert us/op, get us/op,
                   peak RSS with the cache size drawn as a line; tree height
                   written beside every point
    scaling.txt    the table, as printed

Both files are rewritten after every size, so an interrupted run keeps the
sizes it finished. The claim being measured: cost per operation grows no
faster than the tree height, and peak RSS minus the baseline stays near the
cache size whatever N is. See docs/benchmarks.md for what each column means.

The workload holds no per-record state: record ``i`` (key and value) is
derived from ``i`` alone (:func:`record`), so memory does not grow with N and
a get can regenerate any key.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

try:
    import pagestore
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import pagestore
from pagestore.bench import measure_fdatasync

#: Records per write transaction.
BATCH = 1000
#: Point reads after the load.
GETS = 20_000
#: Share of the load, at its end, whose cost is reported on its own.
TAIL = 0.10
MIB = 1 << 20

_MASK64 = (1 << 64) - 1


# --------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------

def _mix64(x: int) -> int:
    # splitmix64's finalizer: each step (xor with a right shift of itself, odd
    # multiply mod 2**64) is invertible, so this is a bijection on 64-bit ints.
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def record(i: int, seed: int = 0) -> Tuple[bytes, bytes]:
    """record returns key ``i`` and value ``i``: 8..40 and 16..128 bytes. O(1).

    The key's first 8 bytes are a bijection of ``(i, seed)``, so keys are
    unique for every ``i < 2**64`` and arrive in random key order; the rest of
    the key (0..32 bytes), its length and the value come from a blake2b hash of
    ``i``.

        >>> record(7) == record(7) and record(7)[0] != record(8)[0]
        True
    """
    h = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=64, person=b"ps-scaling").digest()
    prefix = _mix64((i ^ (seed * 0x9E3779B97F4A7C15)) & _MASK64).to_bytes(8, "big")
    key = prefix + h[32 : 32 + h[0] % 33]
    value = (h + h)[: 16 + h[1] % 113]
    return key, value


# --------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------

def _proc_status() -> Dict[str, int]:
    out: Dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    out[name] = int(rest.split()[0]) * 1024  # "kB"
    except OSError:
        pass
    return out


class _Mallinfo2(__import__("ctypes").Structure):
    _fields_ = [(name, __import__("ctypes").c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        return None
    return libc


def malloc_heap() -> Dict[str, int]:
    """malloc_heap: glibc's own account of its heap (``mallinfo2``), in bytes; {} elsewhere.

    ``arena``: the bytes of its main and thread heaps (not mmapped chunks), ``in_use``: the bytes
    of live chunks in them, ``free``: the bytes of free chunks it keeps, ``mmapped``: chunks of
    128 KiB and more, each its own mapping. ``free`` that stays high while ``in_use`` stays
    near the cache is fragmentation: freed 4 KiB buffers among live small objects.
    """
    libc = _libc()
    if libc is None:
        return {}
    m = libc.mallinfo2()
    return {"arena": m.arena, "in_use": m.uordblks, "free": m.fordblks, "mmapped": m.hblkhd}


def trimmed_anon() -> Optional[int]:
    """trimmed_anon: private memory (RssAnon) after ``malloc_trim(0)``, which hands back every whole free
    page of glibc's heaps: what the process keeps live. None where there is no glibc or /proc."""
    libc = _libc()
    if libc is None:
        return None
    libc.malloc_trim(0)
    return _proc_status().get("RssAnon")


def memory() -> Dict[str, int]:
    """memory returns this process's ``peak_rss`` and ``rss`` in bytes (``rss`` only on Linux), and
    on Linux ``rss_anon`` (private memory now) and ``rss_file`` (file-backed pages now: with
    ``mmap=True`` mostly the mapped data file, the OS page cache's, reclaimable)."""
    status = _proc_status()
    if "VmHWM" in status:
        return {"peak_rss": status["VmHWM"], "rss": status.get("VmRSS", 0),
                "rss_anon": status.get("RssAnon", 0), "rss_file": status.get("RssFile", 0)}
    import resource  # not on Windows; nor is /proc

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss": peak if sys.platform == "darwin" else peak * 1024, "rss": 0}


# --------------------------------------------------------------------------
# the child: one size, in a fresh process
# --------------------------------------------------------------------------

def _tail_records(n: int) -> int:
    """_tail_records: records in the batches that overlap the last TAIL of the load."""
    cut = n - int(n * TAIL)
    first = min((cut // BATCH) * BATCH, ((n - 1) // BATCH) * BATCH)
    return n - first


def run_size(n: int, path: str, *, page_size: int, cache_size: int, sync: bool, gets: int,
             seed: int, progress: bool) -> Dict[str, Any]:
    """run_size loads ``n`` records into a new store at ``path``, times gets, checks it.

    Only the transactions and the gets are timed; generating the records,
    verifying the values read, ``stats()`` and ``check()`` are not. Memory is
    read before stats/check, whose own bookkeeping (a bit per heap slot, a
    dict of pages) grows with the file and is reported apart.
    """
    from tqdm import tqdm

    result: Dict[str, Any] = {"records": n, "pid": os.getpid(), "loadavg_before": _loadavg()}
    tail_from = n - _tail_records(n)
    deciles = [[0, 0.0] for _ in range(10)]  # [records, seconds] per tenth of the load
    wall = cpu = tail_wall = 0.0
    t_load = time.perf_counter()
    db = pagestore.open(path, page_size=page_size, cache_size=cache_size, sync=sync)
    try:
        with tqdm(total=n, desc=f"load {n:,}", unit="rec", unit_scale=True, file=sys.stderr,
                  disable=None if progress else True, leave=False) as bar:
            for lo in range(0, n, BATCH):
                hi = min(n, lo + BATCH)
                batch = [record(i, seed) for i in range(lo, hi)]
                c0 = time.process_time()
                t0 = time.perf_counter()
                with db.transaction() as txn:
                    for k, v in batch:
                        txn[k] = v
                dt = time.perf_counter() - t0
                cpu += time.process_time() - c0
                wall += dt
                if lo >= tail_from:
                    tail_wall += dt
                d = deciles[min(9, lo * 10 // n)]
                d[0] += hi - lo
                d[1] += dt
                bar.update(hi - lo)
        result["load_seconds"] = time.perf_counter() - t_load  # with record generation
        result["insert_seconds"] = wall
        result["insert_us"] = wall / n * 1e6
        result["insert_cpu_us"] = cpu / n * 1e6
        result["tail_records"] = n - tail_from
        result["insert_tail_us"] = tail_wall / (n - tail_from) * 1e6
        result["insert_deciles_us"] = [s / r * 1e6 if r else None for r, s in deciles]
        result["after_load"] = memory()

        rng = random.Random(seed)
        indices = [rng.randrange(n) for _ in range(gets)]
        keys = [record(i, seed)[0] for i in indices]
        c0 = time.process_time()
        t0 = time.perf_counter()
        got = [db[k] for k in keys]
        dt = time.perf_counter() - t0
        result["gets"] = gets
        result["get_us"] = dt / gets * 1e6
        result["get_cpu_us"] = (time.process_time() - c0) / gets * 1e6
        result["get_mismatches"] = sum(1 for i, v in zip(indices, got) if v != record(i, seed)[1])
        del keys, got, indices
        result["after_gets"] = memory()
        result["malloc_after_gets"] = malloc_heap()
        # what of that private memory was glibc's free chunks (this changes the heap: stats()
        # and check() below run on a trimmed one, and their memory is reported apart)
        result["anon_after_trim"] = trimmed_anon()

        stats = db.stats()
        result["tree_height"] = stats["tree_height"]
        result["page_count"] = stats["page_count"]
        result["page_size"] = stats["page_size"]
        result["average_fill"] = stats["average_fill"]
        result["page_types"] = stats["page_types"]
        result["wal_bytes"] = stats["wal_size"]
        try:
            counted = db.check()
        except pagestore.PageStoreError as exc:
            result["check"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        else:
            ok = counted["records"] == n
            result["check"] = {"ok": ok, **counted}
            if not ok:
                result["check"]["error"] = f"check counted {counted['records']} records, loaded {n}"
        result["after_check"] = memory()
    finally:
        db.close()
    result["file_bytes"] = os.path.getsize(path)  # after close: checkpointed, no log
    return result


def run_baseline() -> Dict[str, Any]:
    """run_baseline: the memory of an interpreter that imported what a child imports."""
    import tqdm  # noqa: F401  (a child imports it too)

    return {"pid": os.getpid(), "after_import": memory()}


def _loadavg() -> Optional[List[float]]:
    try:
        return list(os.getloadavg())
    except (OSError, AttributeError):
        return None


# --------------------------------------------------------------------------
# the parent
# --------------------------------------------------------------------------

def parse_sizes(text: str) -> List[int]:
    """parse_sizes: ``"1e4,1e5,20000"`` -> ``[10000, 100000, 20000]``.

    Raises:
        argparse.ArgumentTypeError: a size that is not a positive whole number.
    """
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {part!r}") from None
        if not (value >= 1 and value == int(value)):
            raise argparse.ArgumentTypeError(f"not a positive whole number: {part!r}")
        sizes.append(int(value))
    if not sizes:
        raise argparse.ArgumentTypeError("no sizes given")
    return sizes


def _spawn(child_args: Sequence[str]) -> Dict[str, Any]:
    """_spawn runs this script as a child and returns the JSON it printed last."""
    cmd = [sys.executable, os.path.abspath(__file__), *child_args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr: the child's progress bar
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {' '.join(child_args)} exited with {proc.returncode}")
    return json.loads(lines[-1])


def _git_revision() -> Optional[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev + (" (uncommitted changes)" if dirty else "")) if rev else None


def _mem_total() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _source_digest() -> str:
    # which code ran, even from an uncommitted tree: a hash of the package's files
    pkg = os.path.dirname(os.path.abspath(pagestore.__file__))
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(os.listdir(pkg)):
        if name.endswith((".py", ".so", ".pyd")):
            h.update(name.encode() + b"\0")
            with open(os.path.join(pkg, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def machine_info(workdir: str) -> Dict[str, Any]:
    """machine_info: what the figures depend on besides the code, including the fdatasync rate."""
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity(0)) if affinity else None,
        "memory_bytes": _mem_total(),
        "pagestore": getattr(pagestore, "__version__", None),
        "git": _git_revision(),
        "source_digest": _source_digest(),
        "workdir": os.path.abspath(workdir),
        "fdatasync": measure_fdatasync(workdir, count=200),
    }


def run(sizes: Sequence[int], out: str, *, workdir: Optional[str] = None, page_size: int = 4096,
        cache_size: int = 32 * MIB, sync: bool = True, gets: int = GETS, seed: int = 0,
        keep: bool = False, progress: bool = True) -> Dict[str, Any]:
    """run measures every size in its own child process and writes DIR/scaling.{json,svg,txt}.

    Returns the results (as written to scaling.json).
    """
    os.makedirs(out, exist_ok=True)
    workdir = workdir or tempfile.gettempdir()
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    results: Dict[str, Any] = {
        "benchmark": "scaling",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {"sizes": list(sizes), "page_size": page_size, "cache_size": cache_size, "sync": sync,
                   "batch": BATCH, "gets": gets, "tail": TAIL, "seed": seed},
        "machine": machine_info(workdir),
        "baseline": _spawn(["--baseline"]),
        "sizes": [],
    }
    say(f"scaling: baseline RSS {results['baseline']['after_import']['peak_rss'] / MIB:.1f} MiB")
    for n in sizes:
        say(f"scaling: {n:,} records ...")
        tmp = tempfile.mkdtemp(prefix=f"scaling-{n}-", dir=workdir)
        path = os.path.join(tmp, "store.ps")
        try:
            row = _spawn(["--child", str(n), "--path", path, "--page-size", str(page_size),
                          "--cache-bytes", str(cache_size), "--gets", str(gets), "--seed", str(seed)]
                         + ([] if sync else ["--no-sync"]) + ([] if progress else ["--quiet"]))
        finally:
            if not keep:
                shutil.rmtree(tmp, ignore_errors=True)
        if keep:
            row["path"] = path
        results["sizes"].append(row)
        say(f"scaling: {n:,} records: {row['load_seconds']:.1f} s load, height {row['tree_height']}, "
            f"insert {row['insert_us']:.1f} us/op, get {row['get_us']:.1f} us/op, "
            f"peak RSS {row['after_gets']['peak_rss'] / MIB:.1f} MiB, check {'ok' if row['check']['ok'] else 'FAILED'}")
        _write_outputs(results, out)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_outputs(results, out)
    return results


def _write_outputs(results: Dict[str, Any], out: str) -> None:
    for name, text in (("scaling.json", json.dumps(results, indent=2) + "\n"),
                       ("scaling.svg", render_svg(results)),
                       ("scaling.txt", format_table(results) + "\n")):
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(out, name))


# --------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------

COLUMNS = ("records", "height", "insert us/op", "last-10% us/op", "get us/op", "peak RSS MiB",
           "RSS-base MiB", "private-base MiB", "file RSS MiB", "cache MiB", "file MiB", "check")


def _row_cells(row: Dict[str, Any], base: int, cache_size: int, base_anon: int = 0) -> List[str]:
    peak = row["after_gets"]["peak_rss"]
    anon = row["after_gets"].get("rss_anon", 0)
    file_rss = row["after_gets"].get("rss_file", 0)
    return [f"{row['records']:,}", str(row["tree_height"]), f"{row['insert_us']:.1f}",
            f"{row['insert_tail_us']:.1f}", f"{row['get_us']:.1f}", f"{peak / MIB:.1f}",
            f"{(peak - base) / MIB:.1f}", f"{(anon - base_anon) / MIB:.1f}", f"{file_rss / MIB:.1f}",
            f"{cache_size / MIB:g}", f"{row['file_bytes'] / MIB:.1f}",
            "ok" if row["check"]["ok"] and not row["get_mismatches"] else "FAILED"]


def growth(results: Dict[str, Any]) -> List[str]:
    """growth: one line per cost, its growth from the smallest to the largest size against the height's."""
    rows = results["sizes"]
    if len(rows) < 2:
        return []
    a, b = rows[0], rows[-1]
    h = b["tree_height"] / a["tree_height"]
    lines = []
    for name, field in (("insert (last 10%)", "insert_tail_us"), ("get", "get_us")):
        g = b[field] / a[field]
        lines.append(f"{name}: x{g:.2f} from {a['records']:,} to {b['records']:,} records; "
                     f"height x{h:.2f} ({a['tree_height']} -> {b['tree_height']})")
    return lines


def format_table(results: Dict[str, Any]) -> str:
    """format_table: the per-size table, then the growth lines."""
    base = results["baseline"]["after_import"]["peak_rss"]
    cache = results["config"]["cache_size"]
    base_anon = results["baseline"]["after_import"].get("rss_anon", 0)
    body = [_row_cells(r, base, cache, base_anon) for r in results["sizes"]]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(COLUMNS)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    m = results["machine"]
    lines = [f"pagestore scaling: page size {results['config']['page_size']}, cache {cache / MIB:g} MiB, "
             f"{BATCH} records per durable transaction, {results['config']['gets']:,} random gets; "
             f"baseline RSS {base / MIB:.1f} MiB",
             f"{m['python']} on {m['platform']}, {m['cpu_count']} CPUs",
             fmt(COLUMNS), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in body]
    lines += growth(results)
    return "\n".join(lines)


# --------------------------------------------------------------------------
# the chart
# --------------------------------------------------------------------------

_PANEL_W, _PANEL_H = 340, 300
_MARGIN = dict(left=56, right=16, top=34, bottom=96)  # the legend goes under the x axis
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#7f7f7f")


def _nice_ceiling(v: float) -> float:
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.6, 2, 4, 6, 8, 10):  # quarters of these are round numbers
        if v <= m * e:
            return m * e
    return 10 * e


def _size_label(n: int) -> str:
    """_size_label: 10000 -> "10^4" (drawn as a power), 2000 -> "2k", 1500000 -> "1.5M"."""
    e = round(math.log10(n))
    if 10**e == n and e >= 3:
        return f"10^{e}"
    for div, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return str(n)


def _panel(x0: float, title: str, ylabel: str, sizes: List[int], series: List[Dict[str, Any]],
           hlines: List[Tuple[float, str]], heights: List[int]) -> List[str]:
    """_panel draws one log-x plot at horizontal offset x0; series: {name, values, dash, points}.

    Every point of a series with points (the default) is a ``<circle class="point">``
    carrying ``data-series``, ``data-size`` and ``data-height``; the first series
    also gets an ``h=<tree height>`` label beside each point.
    """
    lo, hi = math.log10(min(sizes)), math.log10(max(sizes))
    pad = max(0.08 * (hi - lo), 0.15)  # room for the h= labels at both ends
    lo, hi = lo - pad, hi + pad
    ymax = _nice_ceiling(1.15 * max([v for s in series for v in s["values"]] + [h for h, _ in hlines] + [0]))
    left, top = x0 + _MARGIN["left"], _MARGIN["top"]
    w = _PANEL_W - _MARGIN["left"] - _MARGIN["right"]
    h = _PANEL_H - _MARGIN["top"] - _MARGIN["bottom"]
    px = lambda n: left + (math.log10(n) - lo) / (hi - lo) * w  # noqa: E731
    py = lambda v: top + h - v / ymax * h  # noqa: E731
    out = [f'<g class="panel" data-title="{escape(title)}">',
           f'<text x="{left + w / 2:.1f}" y="18" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#333"/>']
    for i in range(5):  # y grid and labels
        v = ymax * i / 4
        y = py(v)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    for n in sizes:  # x ticks at the measured sizes
        x = px(n)
        label = _size_label(n)
        if label.startswith("10^"):
            label = f'10<tspan dy="-5" font-size="9">{label[3:]}</tspan>'
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + h}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{top + h + 16}" text-anchor="middle">{label}</text>')
    out.append(f'<text x="{left + w / 2:.1f}" y="{top + h + 34}" text-anchor="middle">records (log scale)</text>')
    out.append(f'<text transform="translate({x0 + 14},{top + h / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{escape(ylabel)}</text>')
    for value, label in hlines:
        y = py(value)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#000" '
                   f'stroke-dasharray="6 3"/>')
        out.append(f'<text x="{left + w - 4}" y="{y - 4:.1f}" text-anchor="end">{escape(label)}</text>')
    legend_y = top + h + 54
    for k, s in enumerate(series):
        color = _COLORS[k % len(_COLORS)]
        pts = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v in zip(sizes, s["values"]))
        dash = f' stroke-dasharray="{s["dash"]}"' if s.get("dash") else ""
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>')
        if s.get("points", True):
            for n, v, ht in zip(sizes, s["values"], heights):
                out.append(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3" fill="{color}" class="point" '
                           f'data-series="{escape(s["name"])}" data-size="{n}" data-height="{ht}">'
                           f'<title>{escape(s["name"])}: {v:.3g} at {n:,} records, tree height {ht}</title></circle>')
        out.append(f'<line x1="{left + 8}" y1="{legend_y + 14 * k - 4}" x2="{left + 26}" '
                   f'y2="{legend_y + 14 * k - 4}" stroke="{color}" stroke-width="1.5"{dash}/>')
        out.append(f'<text x="{left + 30}" y="{legend_y + 14 * k}">{escape(s["name"])}</text>')
    first = series[0]
    for n, v, ht in zip(sizes, first["values"], heights):  # the tree height beside each point
        out.append(f'<text x="{px(n) + 5:.1f}" y="{py(v) - 6:.1f}" font-size="10" fill="#444" '
                   f'class="height">h={ht}</text>')
    out.append("</g>")
    return out


def render_svg(results: Dict[str, Any]) -> str:
    """render_svg draws the three panels as a standalone SVG document (no plotting library)."""
    rows = results["sizes"]
    width = 3 * _PANEL_W
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_PANEL_H}" '
            f'viewBox="0 0 {width} {_PANEL_H}" font-family="sans-serif" font-size="11">',
            '<rect width="100%" height="100%" fill="#fff"/>']
    if not rows:
        return "\n".join(head + ['<text x="20" y="40">no sizes measured yet</text>', "</svg>"]) + "\n"
    sizes = [r["records"] for r in rows]
    heights = [r["tree_height"] for r in rows]
    base = results["baseline"]["after_import"]["peak_rss"]
    cache_mib = results["config"]["cache_size"] / MIB

    def by_height(first: float) -> List[float]:
        # what the cost would be if it grew exactly as the tree height does
        return [first * ht / heights[0] for ht in heights]

    tail = [r["insert_tail_us"] for r in rows]
    get = [r["get_us"] for r in rows]
    peak = [r["after_gets"]["peak_rss"] / MIB for r in rows]
    body = _panel(0, "insert", "microseconds per insert", sizes, [
        {"name": "insert, last 10%", "values": tail},
        {"name": "insert, whole load", "values": [r["insert_us"] for r in rows], "dash": "4 2"},
        {"name": "growing as the tree height", "values": by_height(tail[0]), "dash": "1 3", "points": False},
    ], [], heights)
    body += _panel(_PANEL_W, "get", "microseconds per get", sizes, [
        {"name": "get (random key)", "values": get},
        {"name": "growing as the tree height", "values": by_height(get[0]), "dash": "1 3", "points": False},
    ], [], heights)
    body += _panel(2 * _PANEL_W, "memory", "MiB", sizes, [
        {"name": "peak RSS", "values": peak},
        {"name": "peak RSS - baseline", "values": [p - base / MIB for p in peak], "dash": "4 2"},
    ], [(cache_mib, f"cache {cache_mib:g} MiB")], heights)
    return "\n".join(head + body + ["</svg>"]) + "\n"


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1e4,1e5,1e6"),
                        help="comma-separated record counts, e.g. 1e4,1e5,1e6,1e7 (default 1e4,1e5,1e6)")
    parser.add_argument("--out", default="scaling-results", help="directory for scaling.json/.svg/.txt")
    parser.add_argument("--workdir", help="where the stores are made (default: system temp dir)")
    parser.add_argument("--cache-mb", type=float, default=32, help="cache size in MiB (default 32)")
    parser.add_argument("--page-size", type=int, default=4096)
    parser.add_argument("--gets", type=int, default=GETS, help=f"random gets after the load (default {GETS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sync", action="store_true", help="commits not durable (sync=False)")
    parser.add_argument("--keep", action="store_true", help="keep the stores (path recorded in the JSON)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    # the child modes: one size, or the bare baseline
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--cache-bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.baseline:
        print(json.dumps(run_baseline()))
        return 0
    cache_size = args.cache_bytes if args.cache_bytes is not None else int(args.cache_mb * MIB)
    if args.child is not None:
        print(json.dumps(run_size(args.child, args.path, page_size=args.page_size, cache_size=cache_size,
                                  sync=not args.no_sync, gets=args.gets, seed=args.seed,
                                  progress=not args.quiet)))
        return 0
    results = run(args.sizes, args.out, workdir=args.workdir, page_size=args.page_size, cache_size=cache_size,
                  sync=not args.no_sync, gets=args.gets, seed=args.seed, keep=args.keep,
                  progress=not args.quiet)
    print(format_table(results))
    failed = [r["records"] for r in results["sizes"] if not r["check"]["ok"] or r["get_mismatches"]]
    if failed:
        print(f"check or get verification FAILED at {', '.join(f'{n:,}' for n in failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
