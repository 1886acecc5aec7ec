"""bench/scaling.py end to end on two tiny sizes, and its record generator.

The real measurement (10^4 to 10^7 records) is run by hand; see docs/benchmarks.md.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "scaling.py")
SIZES = [2000, 5000]
SVG = "{http://www.w3.org/2000/svg}"


def _load_script():
    spec = importlib.util.spec_from_file_location("scaling_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scaling():
    return _load_script()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    work = tmp_path_factory.mktemp("work")
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--sizes", ",".join(map(str, SIZES)), "--out", str(out), "--workdir", str(work),
         "--cache-mb", "0.25", "--page-size", "1024", "--gets", "2000", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with open(out / "scaling.json") as f:
        results = json.load(f)
    return {"out": out, "work": work, "stdout": proc.stdout, "results": results}


def test_every_size_measured_with_positive_figures(run):
    rows = run["results"]["sizes"]
    assert [r["records"] for r in rows] == SIZES
    for r in rows:
        for field in ("insert_us", "insert_tail_us", "get_us", "load_seconds", "file_bytes", "page_count"):
            assert r[field] > 0, (r["records"], field)
        assert r["after_gets"]["peak_rss"] > 0
        assert r["tree_height"] >= 1
        assert 0 < r["tail_records"] <= r["records"]
        assert r["gets"] == 2000 and r["get_mismatches"] == 0
        assert r["page_size"] == 1024
    assert run["results"]["baseline"]["after_import"]["peak_rss"] > 0
    assert run["results"]["config"]["cache_size"] == 256 * 1024
    assert run["results"]["machine"]["cpu_count"] >= 1


def test_each_child_store_passed_check(run):
    for r in run["results"]["sizes"]:
        assert r["check"]["ok"], r["check"]
        assert r["check"]["records"] == r["records"]


def test_heights_do_not_decrease(run):
    heights = [r["tree_height"] for r in run["results"]["sizes"]]
    assert heights == sorted(heights)
    assert heights[-1] >= 2  # 5000 records do not fit one 1 KiB leaf


def test_each_size_ran_in_its_own_process(run):
    # else one size's peak RSS would carry into the next; and the stores are
    # removed afterwards (unless --keep)
    pids = [run["results"]["baseline"]["pid"]] + [r["pid"] for r in run["results"]["sizes"]]
    assert len(set(pids)) == len(pids)
    assert os.listdir(run["work"]) == []


def test_svg_parses_with_one_point_per_size(run):
    root = ET.parse(run["out"] / "scaling.svg").getroot()
    assert root.tag == SVG + "svg"
    points = [c for c in root.iter(SVG + "circle") if c.get("class") == "point"]
    series = {c.get("data-series") for c in points}
    assert {"insert, last 10%", "get (random key)", "peak RSS"} <= series
    heights = {r["records"]: r["tree_height"] for r in run["results"]["sizes"]}
    for name in series:
        mine = [c for c in points if c.get("data-series") == name]
        assert sorted(int(c.get("data-size")) for c in mine) == SIZES, name
        assert all(int(c.get("data-height")) == heights[int(c.get("data-size"))] for c in mine)


def test_table_printed_and_saved(run):
    lines = run["stdout"].splitlines()
    header = next(line for line in lines if line.lstrip().startswith("records"))
    for column in ("height", "insert us/op", "last-10% us/op", "get us/op", "peak RSS MiB", "RSS-base MiB",
                   "cache MiB", "file MiB"):
        assert column in header
    assert any(line.lstrip().startswith("2,000") for line in lines)
    assert any(line.lstrip().startswith("5,000") for line in lines)
    assert (run["out"] / "scaling.txt").read_text().strip() == run["stdout"].strip()


def test_records_unique_deterministic_and_in_range(scaling):
    keys = set()
    for i in list(range(20_000)) + [2**40 + 3, 10**7 - 1]:
        k, v = scaling.record(i)
        assert 8 <= len(k) <= 40 and 16 <= len(v) <= 128
        keys.add(k)
    assert len(keys) == 20_002
    assert scaling.record(123) == scaling.record(123)
    assert scaling.record(123, seed=1)[0] != scaling.record(123)[0]
    lengths = {len(scaling.record(i)[0]) for i in range(2000)}
    assert min(lengths) == 8 and max(lengths) == 40


def test_mix_is_a_bijection_on_a_sample(scaling):
    # distinct inputs, distinct 8-byte prefixes: what makes keys unique at any N
    sample = list(range(0, 2**64, 2**64 // 50_001))[:50_000]
    assert len({scaling._mix64(x) for x in sample}) == len(sample)


def test_tail_covers_the_last_tenth(scaling):
    for n in (1, 999, 1000, 2000, 10_000, 10_500, 1_000_000):
        tail = scaling._tail_records(n)
        assert tail >= n // 10 and tail <= n
        assert (n - tail) % scaling.BATCH == 0  # starts on a transaction boundary
    assert scaling._tail_records(10_000) == 1000
    assert scaling._tail_records(1_000_000) == 100_000


def test_parse_sizes(scaling):
    assert scaling.parse_sizes("1e4, 1e5,20000") == [10_000, 100_000, 20_000]
    for bad in ("", "1.5", "0", "-3", "ten"):
        with pytest.raises(Exception):
            scaling.parse_sizes(bad)


# ---- bench/placement_sim.py ----


def test_placement_sim_policies_on_a_small_set():
    """The placement simulation: every policy places every record, and the orderings it reports hold."""
    spec = importlib.util.spec_from_file_location(
        "placement_sim", os.path.join(os.path.dirname(SCRIPT), "placement_sim.py"))
    sim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim)
    from pagestore import format as fmt
    usable, slot = 4096 - fmt.HEADER_SIZE - fmt.SLOT_SIZE, fmt.SLOT_SIZE
    assert sim.record_size(10, usable) == 10 + slot
    assert sim.record_size(usable + 5, usable) == 8 + 5 + slot  # a stub keeps the short tail
    assert sim.record_size(usable + usable // 2 + 1, usable) == 8 + slot  # a long tail gets its own page
    from pagestore.bench import make_dataset
    ds = make_dataset(5000)
    records = [(k, sim.record_size(len(v), usable)) for k, v in (ds.record(i) for i in range(5000))]
    total = sum(size for _, size in records)
    out = {p: sim.simulate(p, records, usable, 300, 1) for p in ("fit", "near", "fresh")}
    for r in out.values():
        assert abs(r["fill"] * r["pages"] * usable - total) < 1  # every byte placed once
        assert 1 <= r["pages_per_range"] <= 50
    assert out["fresh"]["pages_per_range"] < out["near"]["pages_per_range"] < out["fit"]["pages_per_range"]
    assert out["fresh"]["fill"] < out["fit"]["fill"]


# ---- bench/read_floor.py ----


def test_read_floor_reader_reads_what_the_store_reads(tmp_path):
    """The floor's bare get must find the same records as the store, or its figure means nothing."""
    spec = importlib.util.spec_from_file_location(
        "read_floor", os.path.join(os.path.dirname(SCRIPT), "read_floor.py"))
    floor_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floor_mod)
    import random as _random

    import pagestore
    rng = _random.Random(2)
    model = {rng.randbytes(rng.randrange(1, 30)): rng.randbytes(rng.randrange(0, 300)) for _ in range(3000)}
    with pagestore.open(str(tmp_path / "s"), page_size=1024, cache_size=1 << 24, sync=False) as db:
        with db.transaction() as txn:
            txn.update(model)
        assert db._pager.meta.tree_height >= 3
        get = floor_mod.floor_reader(db)
        for k, v in model.items():
            assert get(k) == v
        assert get(b"\xff" * 40) is None
    # best_us: the least time per call over the passes, in microseconds (a clock
    # that advances 0.5 s, 0.2 s, 0.3 s over the three passes of 10 calls)
    ticks = iter([0.0, 0.5, 1.0, 1.2, 2.0, 2.3])

    class Clock:
        @staticmethod
        def process_time() -> float:
            return next(ticks)

    calls = []
    real_time = floor_mod.time
    floor_mod.time = Clock
    try:
        assert floor_mod.best_us(calls.append, list(range(10)), passes=3) == pytest.approx(0.02 * 1e6)
    finally:
        floor_mod.time = real_time
    assert calls == list(range(10)) * 3
