"""views.py through its one seam, ``ViewSource``: a dict-backed fake owner implements it and
nothing else, so the views are shown to need no more of a store than the protocol."""
from __future__ import annotations

import bisect
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from pagestore.views import ItemsView, KeysView, ValuesView, ViewSource


class FakeSource:
    """FakeSource: a sorted dict of encoded records; keys are ints encoded as 4 big-endian bytes,
    values str as UTF-8 (so decoding is visible); counts the scans it ran."""

    def __init__(self, records: Dict[int, str]) -> None:
        self.data = {k.to_bytes(4, "big"): v.encode() for k, v in records.items()}
        self.scans: List[Tuple[Optional[bytes], Optional[bytes], bool, bool]] = []
        self.counts = False  # True: _view_count answers (as a store does), else None

    def __len__(self) -> int:
        return len(self.data)

    def _view_key(self, key: Any) -> bytes:
        if not isinstance(key, int):
            raise TypeError("int keys only")
        return int(key).to_bytes(4, "big")

    def _view_get(self, k: bytes) -> Optional[bytes]:
        return self.data.get(k)

    def _view_scan(self, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, values: bool,
                   limit: Optional[int] = None) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        self.scans.append((lo, hi, reverse, values))
        keys = sorted(self.data)
        keys = keys[bisect.bisect_left(keys, lo) if lo is not None else 0: bisect.bisect_left(keys, hi) if hi is not None else None]
        order = keys[::-1] if reverse else keys
        for k in order if limit is None else order[:limit]:
            yield k, (self.data[k] if values else None)

    def _view_count(self, lo: Optional[bytes], hi: Optional[bytes]) -> Optional[int]:
        if not self.counts:
            return None  # the view counts by scanning
        return sum(1 for k in self.data if (lo is None or k >= lo) and (hi is None or k < hi))

    def _view_decoders(self) -> Tuple[Any, Any]:
        return (lambda b: int.from_bytes(b, "big")), (lambda b: b.decode())


def _enc(i: int) -> bytes:
    return i.to_bytes(4, "big")


@pytest.fixture
def src() -> FakeSource:
    return FakeSource({i: "v%d" % i for i in range(0, 20, 2)})


def test_the_fake_is_a_view_source(src: FakeSource) -> None:
    s: ViewSource = src  # mypy: the protocol is all a view asks
    assert len(s) == 10


def test_whole_views_decode_and_count_without_scanning(src: FakeSource) -> None:
    assert list(KeysView(src)) == list(range(0, 20, 2))
    assert list(ValuesView(src)) == ["v%d" % i for i in range(0, 20, 2)]
    assert list(ItemsView(src))[:2] == [(0, "v0"), (2, "v2")]
    src.scans.clear()
    assert len(KeysView(src)) == len(ItemsView(src)) == 10
    assert src.scans == []  # a whole view's len is the owner's


def test_a_range_view_counts_by_scanning_keys_only(src: FakeSource) -> None:
    view = KeysView(src, _enc(4), _enc(11), whole=False)
    assert list(view) == [4, 6, 8, 10]
    src.scans.clear()
    assert len(view) == 4
    assert src.scans == [(_enc(4), _enc(11), False, False)]  # no value read


def test_a_range_view_takes_the_owners_count_and_list_scans_once(src: FakeSource) -> None:
    src.counts = True
    for view in (KeysView(src, _enc(4), _enc(11), whole=False), ItemsView(src, _enc(4), None, whole=False),
                 ValuesView(src, None, _enc(11), whole=False, limit=3)):
        src.scans.clear()
        n = len(view)
        assert src.scans == []  # counted by the owner, no scan
        assert len(list(view)) == n
        assert len(src.scans) == 1  # list() asks len() first: still one scan, the iteration's


def test_views_iterate_again_and_see_the_owner_now(src: FakeSource) -> None:
    view = ItemsView(src)
    first = list(view)
    src.data[_enc(5)] = b"five"
    assert list(view) != first and (5, "five") in list(view)


def test_reversed_and_a_reverse_view(src: FakeSource) -> None:
    assert list(reversed(KeysView(src, _enc(2), _enc(9), whole=False))) == [8, 6, 4, 2]
    back = ValuesView(src, _enc(2), _enc(9), reverse=True, whole=False)
    assert list(back) == ["v8", "v6", "v4", "v2"]
    assert list(reversed(back)) == ["v2", "v4", "v6", "v8"]


def test_contains_honours_the_range(src: FakeSource) -> None:
    keys = KeysView(src, _enc(4), _enc(10), whole=False)
    assert 4 in keys and 8 in keys
    assert 2 not in keys and 10 not in keys and 5 not in keys  # out of range, or absent
    items = ItemsView(src, _enc(4), _enc(10), whole=False)
    assert (6, "v6") in items
    assert (6, "v7") not in items and (2, "v2") not in items and "x" not in items and (6,) not in items
    assert "v6" in ValuesView(src) and "v7" not in ValuesView(src)


def test_a_key_the_codec_refuses_raises(src: FakeSource) -> None:
    with pytest.raises(TypeError):
        "a" in KeysView(src)


def test_keys_views_are_sets(src: FakeSource) -> None:
    keys = KeysView(src, _enc(0), _enc(7), whole=False)
    assert keys == {0, 2, 4, 6}
    assert keys & {2, 3} == {2}
    assert keys - {0, 2} == {4, 6}
    assert keys | {99} == {0, 2, 4, 6, 99}


def test_plain_bytes_owners_skip_decoding() -> None:
    class Plain(FakeSource):
        def _view_decoders(self) -> Tuple[Any, Any]:
            return None, None

    p = Plain({1: "a", 2: "b"})
    assert list(ItemsView(p)) == [(_enc(1), b"a"), (_enc(2), b"b")]
    assert list(KeysView(p)) == [_enc(1), _enc(2)]
    assert list(ValuesView(p)) == [b"a", b"b"]
    assert (1, b"a") in ItemsView(p)
