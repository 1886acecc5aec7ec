"""Shared test constants and helpers, defined once for every test module.

``SMALL``: the small-page store options (512-byte pages force splits, overflow chains and
compaction often; a cache of 32 pages forces eviction). Modules that need more add to it
(``dict(SMALL, wal_limit=...)``).

``HYPOTHESIS``: the hypothesis settings the property and stateful tests share (no deadline: a
loaded machine makes timings noise; the health checks that only say "slow" or "big" are off).

``fill``: writes ``n`` numbered records, in one transaction or one commit each.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, MutableMapping, Optional

from hypothesis import HealthCheck

SMALL: Dict[str, Any] = dict(page_size=512, cache_size=512 * 32)

HYPOTHESIS: Dict[str, Any] = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def fill(
    db: Any,
    n: int,
    value: Callable[[int], bytes],
    *,
    key: bytes = b"k%05d",
    start: int = 0,
    model: Optional[MutableMapping[bytes, bytes]] = None,
    one_commit: bool = True,
) -> None:
    """fill writes keys ``key % i`` for i in [start, start + n) with values ``value(i)``: in one
    transaction (``one_commit``) or a commit each; ``model`` gets every record written."""
    def write(target: Any) -> None:
        for i in range(start, start + n):
            k, v = key % i, value(i)
            target[k] = v
            if model is not None:
                model[k] = v

    if one_commit:
        with db.transaction() as txn:
            write(txn)
    else:
        write(db)
