"""latency: per-operation latency samples and their percentiles, for ``pagestore bench``.

A benchmark phase records one sample per operation it times (a get, a scan,
a transaction of a batch) into a ``Samples`` (an ``array('d')`` of seconds:
8 bytes a sample, no Python float kept per operation). ``summarize`` turns
them into p50, p99, p99.9 and max with numpy; without numpy it returns None
and the bench prints rates only (numpy is the ``numpy`` extra, not a
dependency of the store).

    >>> s = Samples()
    >>> for k in keys:
    ...     t = time.perf_counter(); db.get(k); s.add(time.perf_counter() - t)
    >>> summarize(s)
    {'p50': 4.1e-06, 'p99': 2.3e-05, 'p99.9': 8.0e-05, 'max': 0.0011, 'samples': 100000}
"""
from __future__ import annotations

from array import array
from typing import Any, Dict, Optional

#: The percentiles reported, as (name, percent).
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))


class Samples:
    """Samples collects latencies in seconds, compactly."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values = array("d")

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def __len__(self) -> int:
        return len(self.values)


def summarize(samples: Samples) -> Optional[Dict[str, Any]]:
    """summarize returns ``{"p50", "p99", "p99.9", "max"}`` in seconds and ``"samples"``, computed with numpy.

    Percentiles by linear interpolation between the closest ranks (numpy's
    default): with fewer than 1,000 samples p99.9 lies between the two
    largest. None when there are no samples or numpy is not installed.
    """
    if not len(samples):
        return None
    try:
        import numpy as np
    except ImportError:
        return None
    a = np.frombuffer(samples.values, dtype=np.float64)
    points = np.percentile(a, [p for _, p in PERCENTILES])
    out: Dict[str, Any] = {name: float(v) for (name, _), v in zip(PERCENTILES, points)}
    out["max"] = float(a.max())
    out["samples"] = int(a.size)
    return out


def format_seconds(seconds: Optional[float]) -> str:
    """format_seconds: 0.0000123 -> "12.3us", 0.0153 -> "15.3ms"; three significant figures."""
    if seconds is None:
        return "-"
    for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{sig3(seconds / scale)}{suffix}"
    return f"{sig3(seconds * 1e9)}ns"


def format_summary(summary: Optional[Dict[str, Any]]) -> str:
    """format_summary: "p50 / p99 / p99.9" of a ``summarize`` result, or "-"."""
    if not summary:
        return "-"
    return " / ".join(format_seconds(summary.get(name)) for name, _ in PERCENTILES)


def sig3(x: float) -> str:
    """sig3: ``x`` to three significant figures (also bench's rates)."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"
