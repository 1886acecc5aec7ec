"""pagestore.latency and the latency figures pagestore bench reports per phase."""
from __future__ import annotations

import random

import pytest

from pagestore import bench, latency

np = pytest.importorskip("numpy")


def test_summarize_matches_numpy_percentiles():
    rng = random.Random(3)
    values = [rng.expovariate(1e5) for _ in range(5000)]
    s = latency.Samples()
    for v in values:
        s.add(v)
    got = latency.summarize(s)
    want = np.percentile(values, [50, 99, 99.9])
    assert got is not None
    assert [got["p50"], got["p99"], got["p99.9"]] == pytest.approx(list(want))
    assert got["max"] == max(values) and got["samples"] == 5000
    assert got["p50"] <= got["p99"] <= got["p99.9"] <= got["max"]


def test_summarize_without_samples_or_numpy(monkeypatch):
    assert latency.summarize(latency.Samples()) is None
    s = latency.Samples()
    s.add(1.0)
    monkeypatch.setitem(__import__("sys").modules, "numpy", None)  # import numpy now fails
    assert latency.summarize(s) is None
    assert latency.format_summary(None) == "-"


def test_format_seconds():
    assert latency.format_seconds(0.0000123) == "12.3us"
    assert latency.format_seconds(0.0153) == "15.3ms"
    assert latency.format_seconds(2.0) == "2.00s"
    assert latency.format_seconds(5e-8) == "50.0ns"
    assert latency.format_summary({"p50": 1e-6, "p99": 2e-5, "p99.9": 3e-4}) == "1.00us / 20.0us / 300us"


def test_bench_reports_latency_per_phase(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "DURABLE_PUTS", 20)
    monkeypatch.setattr(bench, "FSYNC_WRITES", 20)
    monkeypatch.setattr(bench, "RANGE_SCANS", 100)
    monkeypatch.setattr(bench, "BATCH", 64)
    results = bench.run(["pagestore"], n=500, workdir=str(tmp_path))
    phases = results["engines"]["pagestore"]["phases"]
    samples = {"insert": -(-500 // 64), "point_reads": 500, "range_scans": 100, "durable_puts": 20}
    for phase, n in samples.items():
        lat = phases[phase]["latency"]
        assert lat["samples"] == n
        assert 0 < lat["p50"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert phases["churn"]["latency"]["samples"] > 0
    assert "latency" not in phases["full_scan"]  # one operation: no percentiles
    table = bench.format_table(results)
    assert "latency p50 / p99 / p99.9" in table and "point_reads (a get)" in table
    assert bench.from_json(bench.to_json(results))["engines"]["pagestore"]["phases"]["insert"]["latency"]["samples"] > 0
