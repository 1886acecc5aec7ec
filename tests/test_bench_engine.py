"""Fast checks of pagestore.bench: the dataset, every installed adapter, the run, the output.

A few hundred records each; the real measurements are bench/compare.py and
bench/test_bench_store.py.
"""
from __future__ import annotations

import bisect
import json

import pytest

import pagestore
from pagestore import bench

def _engine_params():
    for name in bench.ENGINES:
        marks = []
        why = bench.get_adapter(name).available()
        if why is not None:
            marks.append(pytest.mark.skip(reason=why))
        yield pytest.param(name, marks=marks, id=name)


ENGINE_PARAMS = list(_engine_params())


@pytest.fixture(scope="module")
def ds():
    return bench.make_dataset(4000, seed=7)


@pytest.fixture
def quick(monkeypatch):
    """quick: shrink the fixed-count phases so a whole run takes well under a second per engine."""
    monkeypatch.setattr(bench, "DURABLE_PUTS", 20)
    monkeypatch.setattr(bench, "FSYNC_WRITES", 20)
    monkeypatch.setattr(bench, "RANGE_SCANS", 100)
    monkeypatch.setattr(bench, "BATCH", 64)


# ---- dataset ----

def test_dataset_is_deterministic(ds):
    again = bench.make_dataset(4000, seed=7)
    assert again.keys == ds.keys
    assert all(again.value(i) == ds.value(i) for i in range(len(ds)))
    other = bench.make_dataset(50, seed=8)
    assert other.keys != ds.keys[:50]


def test_dataset_prefix_is_the_smaller_dataset(ds):
    small = bench.make_dataset(100, seed=7)
    assert small.keys == ds.keys[:100]
    assert [small.value(i) for i in range(100)] == [ds.value(i) for i in range(100)]


def test_dataset_keys_unique_and_in_range(ds):
    assert len(set(ds.keys)) == len(ds)
    assert all(8 <= len(k) <= 40 for k in ds.keys)
    assert {len(k) for k in ds.keys} == set(range(8, 41))


def test_dataset_has_the_documented_mix(ds):
    bands = bench.VALUE_MIX
    counts = [0] * len(bands)
    for i in range(len(ds)):
        n = ds.value_len(i)
        assert len(ds.value(i)) == n
        hits = [j for j, (_, lo, hi) in enumerate(bands) if lo <= n <= hi]
        assert len(hits) == 1, n
        counts[hits[0]] += 1
    for (share, _, _), got in zip(bands, counts):
        # 4000 draws: a 4-sigma band around the expected share
        sigma = (share * (1 - share) / len(ds)) ** 0.5
        assert abs(got / len(ds) - share) < 4 * sigma, (share, got)
    assert ds.logical_bytes() == sum(len(k) + len(v) for k, v in ds.records())


def test_dataset_small_dist_and_bad_arguments():
    small = bench.make_dataset(500, seed=1, key_min=4, key_max=4, value_dist="small")
    assert all(len(k) == 4 for k in small.keys) and len(set(small.keys)) == 500
    assert all(1 <= small.value_len(i) <= 200 for i in range(500))
    assert small.describe()["value_dist"] == "small"
    with pytest.raises(ValueError):
        bench.make_dataset(10, value_dist="huge")
    with pytest.raises(ValueError):
        bench.make_dataset(10, key_min=0)
    with pytest.raises(ValueError):
        bench.make_dataset(10, key_min=9, key_max=8)


# ---- adapters ----

@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_adapter_operations(engine, ds, tmp_path):
    adapter = bench.get_adapter(engine, page_size=4096)
    adapter.open(str(tmp_path), durable=False)
    try:
        n = 300
        for start in range(0, n, 100):
            adapter.put_batch([ds.record(i) for i in range(start, start + 100)])
        assert adapter.get(ds.keys[5]) == ds.value(5)
        assert adapter.get(ds.keys[n + 1]) is None
        assert adapter.scan_all() == n

        ordered = sorted(ds.keys[:n])
        for start in (ordered[0], ordered[n // 2], ordered[-30], ordered[-1], b"\x00", b"\xff" * 41):
            want = min(50, n - bisect.bisect_left(ordered, start))
            assert adapter.range_scan(start, 50) == want

        adapter.delete_batch(ds.keys[:100])
        assert adapter.get(ds.keys[0]) is None
        assert adapter.scan_all() == n - 100
        adapter.put_batch([(ds.keys[200], b"overwritten")])
        assert adapter.get(ds.keys[200]) == b"overwritten"
        assert adapter.scan_all() == n - 100

        adapter.put_one_durable(ds.keys[n], ds.value(n))
        assert adapter.get(ds.keys[n]) == ds.value(n)
        assert adapter.file_size() > 0
        json.dumps(adapter.stats())
    finally:
        adapter.close()


def test_unknown_engine():
    with pytest.raises(KeyError, match="unknown engine"):
        bench.get_adapter("nosuchdb")
    assert bench.get_adapter("sqlite3").name == "sqlite"
    assert set(bench.available_engines()) == set(bench.ENGINES)


# ---- run ----

@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_run_phases_are_sane(engine, quick, tmp_path):
    n = 300
    seen = []
    results = bench.run([engine], n=n, seed=3, workdir=str(tmp_path),
                        progress=lambda phase, done, total: seen.append((phase, done, total)))
    entry = results["engines"][engine]
    assert "error" not in entry and "skipped" not in entry, entry
    phases = entry["phases"]
    assert list(phases) == list(bench.PHASES)
    assert phases["insert"]["ops"] == n
    assert phases["point_reads"]["ops"] == n
    assert phases["full_scan"]["ops"] == n
    assert phases["range_scans"]["ops"] == 100
    assert 0 < phases["range_scans"]["items"] <= 100 * 50
    assert phases["churn"]["ops"] == 3 * 2 * (n // 2)
    assert phases["durable_puts"]["ops"] == 20
    assert all(p["rate"] > 0 for p in phases.values())
    space = entry["space"]
    assert space["live_records"] == n
    assert space["amplification"] > 1  # no engine stores less than the raw bytes of random data
    # the temporary directories are gone
    assert list(tmp_path.iterdir()) == []
    # progress: every phase reported, never past its total, ends complete
    for phase in bench.PHASES:
        reports = [(d, t) for p, d, t in seen if p == f"{engine}:{phase}"]
        assert reports and reports[-1][0] == reports[-1][1]
        assert all(0 <= d <= t for d, t in reports)


def test_run_skips_unknown_and_missing(quick, tmp_path, monkeypatch):
    monkeypatch.setattr(bench.LmdbAdapter, "module", "no_such_module_for_bench")
    results = bench.run(["nosuchdb", "lmdb", "sqlite"], n=50, workdir=str(tmp_path))
    assert "unknown engine" in results["engines"]["nosuchdb"]["skipped"]
    assert "no_such_module_for_bench" in results["engines"]["lmdb"]["skipped"]
    assert "phases" in results["engines"]["sqlite"]
    table = bench.format_table(results)
    assert "skipped nosuchdb" in table and "skipped lmdb" in table


def test_run_reports_a_wrong_engine_as_error(quick, tmp_path, monkeypatch):
    class LossySqlite(bench.SqliteAdapter):
        def scan_all(self):
            return super().scan_all() - 1

    monkeypatch.setitem(bench._ADAPTERS, "sqlite", LossySqlite)
    results = bench.run(["sqlite"], n=50, workdir=str(tmp_path))
    assert "BenchError" in results["engines"]["sqlite"]["error"]
    assert "FAILED sqlite" in bench.format_table(results)


def test_run_zero_records(quick, tmp_path):
    results = bench.run(["sqlite"], n=0, workdir=str(tmp_path))
    phases = results["engines"]["sqlite"]["phases"]
    assert phases["insert"]["rate"] is None
    assert phases["durable_puts"]["rate"] > 0
    json.loads(bench.to_json(results))  # no inf/NaN
    bench.format_table(results)


# ---- output ----

def _fake(rates, amp):
    phases = {p: {"ops": 10, "seconds": 1.0, "rate": r, "unit": u} for (p, u), r in zip(bench.PHASES.items(), rates)}
    return {"version": "1", "phases": phases, "space": {"file_bytes": 2048, "amplification": amp}, "stats": {}}


def test_table_ratios_are_to_pagestore():
    results = {
        "meta": {"records": 10, "page_size": 4096, "seed": 0,
                 "fdatasync": {"rate": 1000.0}, "fdatasync_overwrite": {"rate": 2000.0}},
        "engines": {
            "lmdb": _fake([35100.0] * 6, 1.5),
            "pagestore": _fake([83571.4] * 6, 3.0),
            "rocksdb": {"skipped": "cannot import rocksdict"},
        },
    }
    table = bench.format_table(results)
    assert "ratios are engine / pagestore" in table
    assert "35.1k/s (0.42x)" in table
    assert "1.50 (0.50x)" in table
    assert "83.6k/s (" not in table  # the baseline has no ratio
    assert "1.00k/s appending, 2.00k/s overwriting" in table
    assert "skipped rocksdb: cannot import rocksdict" in table
    assert bench.from_json(bench.to_json(results)) == results


def test_table_of_one_engine_has_no_ratio_line():
    # plain `pagestore bench` runs pagestore alone: it printed "ratios are engine /
    # pagestore" above a table without a single ratio in it
    results = {
        "meta": {"records": 10, "page_size": 4096, "seed": 0},
        "engines": {"pagestore": _fake([83571.4] * 6, 3.0)},
    }
    table = bench.format_table(results)
    assert "83.6k/s" in table and "x)" not in table
    assert "ratios are" not in table


def test_json_round_trip_of_a_real_run(quick, tmp_path):
    results = bench.run(["sqlite"], n=100, workdir=str(tmp_path))
    assert bench.from_json(bench.to_json(results)) == results
    assert bench.format_table(bench.from_json(bench.to_json(results))) == bench.format_table(results)


@pytest.mark.parametrize("rate,text", [
    (None, "-"), (0.5, "0.50/s"), (12.345, "12.3/s"), (999.0, "999/s"), (35100.0, "35.1k/s"),
    (1_234_567.0, "1.23M/s"), (2.5e9, "2.50G/s"),
])
def test_format_rate(rate, text):
    assert bench.format_rate(rate) == text


# ---- the pagestore adapter's extras ----

def test_pagestore_entry_keeps_the_store_stats(quick, tmp_path):
    """The run keeps Store.stats() of pagestore at the end, and the table's ratios are to pagestore."""
    n = 200
    results = bench.run(["pagestore", "sqlite"], n=n, workdir=str(tmp_path))
    entry = results["engines"]["pagestore"]
    assert "error" not in entry, entry
    st = entry["stats"]
    assert st["records"] == n + bench.DURABLE_PUTS  # churn keeps n; each durable put adds one
    assert st["page_count"] >= 2 and 0 < st["average_fill"] <= 1
    assert json.loads(json.dumps(st)) == st
    assert entry["version"] == pagestore.__version__
    assert "ratios are engine / pagestore" in bench.format_table(results)


# ---- the README quotes one run ----

def test_readme_prose_agrees_with_its_table():
    """The README's prose figures are those of the table it shows (issue 15: 1.13 against 1.20)."""
    import os
    import re

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    table = text[text.index("ratios are engine / pagestore"):]
    table = table[: table.index("```")]
    row = {m.group(1).strip(): m.group(2) for m in re.finditer(r"^([a-z_ /()]+?)\s{2,}(.*)$", table, re.M)}
    nums = re.findall(r"\d+\.\d+", row["file / live bytes"])  # pagestore, sqlite (ratio), lmdb (ratio)
    ps, sqlite, lmdb = nums[0], nums[1], nums[3]
    prose = " ".join(text.split())
    assert f"are {ps} times the live data; SQLite's {sqlite} and LMDB's {lmdb}" in prose

    def ratio(phase: str, engine: int) -> float:
        return float(re.findall(r"\((\d+\.\d+)x\)", row[phase])[engine])

    assert f"inserted {1 / ratio('insert (ops/s)', 0):.2f} times as fast as SQLite" in prose
    assert f"read points {1 / ratio('point_reads (ops/s)', 0):.2f} times as fast" in prose
    lmdb_fast = [ratio(p, 1) for p in row if p.endswith("/s)") and p != "durable_puts (commits/s)"]
    assert f"LMDB was {min(lmdb_fast):.2f} to {max(lmdb_fast):.2f} times faster" in prose
    scans = [ratio("full_scan (items/s)", 0), ratio("range_scans (scans/s)", 0)]
    assert f"SQLite {min(scans):.2f} to {max(scans):.2f} times faster at scans" in prose
