"""views: ``keys()``, ``values()`` and ``items()`` of a Store or Transaction, as a dict's views.

A view holds no entries: it remembers its owner and its range (encoded
bounds) and starts a fresh streaming scan each time it is iterated, so it is
iterable more than once, sees the owner's current state, and keeps memory
bounded by one leaf. ``len()`` of a whole-store view is the owner's O(1)
count; of a range view, the owner's count of the range (``_view_count``: one
C call a leaf, no key copied out), or where the owner has none, a count of
its keys by scanning them (no value is read). ``list(view)`` asks ``len()``
first (CPython's length hint), so that count must not cost a second scan. ``in`` looks the key up (O(log n)); ``reversed()`` scans the range
the other way. Keys views are sets (``&``, ``|``, ``-``, ``==`` with other
sets), as a dict's are.

What a view asks of its owner is ``ViewSource``, a narrow protected protocol
that Store, Snapshot and Transaction implement (and nothing else of theirs is
touched here): ``len(owner)``; ``_view_key(key)`` encoding a key (raising
TypeError/ValueError for one the codec refuses); ``_view_get(k)``, the
encoded value of an encoded key or None; ``_view_count(lo, hi)``, the
number of keys in range, or None to have the view count them by scanning;
``_view_scan(lo, hi, reverse,
values, limit)`` yielding encoded ``(key, value or None)`` in range (at most
``limit`` of them; None: all); and
``_view_decoders()``, the codecs' key and value decoders (None for bytes).
"""
from __future__ import annotations

from collections import abc
from typing import Any, Callable, Iterator, Optional, Protocol, Tuple, cast

Decoder = Optional[Callable[[bytes], Any]]


class ViewSource(Protocol):
    """ViewSource is what a view asks of its owner (Store, Snapshot, Transaction): who implements
    it keeps the views off its private names. Keys and values here are encoded (bytes)."""

    def __len__(self) -> int:
        """__len__: the owner's record count, O(1) (a whole-store view's ``len``)."""
        ...

    def _view_key(self, key: Any) -> bytes:
        """_view_key encodes a user's key; raises TypeError or ValueError for one the codec refuses."""
        ...

    def _view_get(self, k: bytes) -> Optional[bytes]:
        """_view_get returns the encoded value of the encoded key ``k``, or None."""
        ...

    def _view_count(self, lo: Optional[bytes], hi: Optional[bytes]) -> Optional[int]:
        """_view_count: how many keys k have ``lo <= k < hi`` (None: unbounded), counted without
        reading them out; None when the owner cannot (the view then scans)."""
        ...

    def _view_scan(self, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, values: bool,
                   limit: Optional[int] = None) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        """_view_scan streams ``(key, value or None)`` with ``lo <= key < hi`` (None: unbounded),
        the first ``limit`` of them in that order (None: all)."""
        ...

    def _view_decoders(self) -> Tuple[Decoder, Decoder]:
        """_view_decoders returns the key and the value decoder (None: the bytes are the value)."""
        ...


def _in_range(k: bytes, lo: Optional[bytes], hi: Optional[bytes]) -> bool:
    return (lo is None or k >= lo) and (hi is None or k < hi)


def _equal(a: Any, b: Any) -> bool:
    """_equal: a == b, also for numpy arrays (whose == is element-wise)."""
    if a is b:
        return True
    eq = a == b
    if type(eq) is bool:
        return eq
    try:  # an array: equal dtype, shape and elements
        import numpy as np

        return bool(getattr(a, "dtype", None) == getattr(b, "dtype", None) and np.array_equal(a, b))
    except (ImportError, TypeError, ValueError):
        return False


class _Range:
    """_Range is what the three views share: the owner, the encoded bounds, the direction, the
    limit (a view with one holds the first ``limit`` entries of its range in its order)."""

    _owner: ViewSource
    _lo: Optional[bytes]
    _hi: Optional[bytes]
    _reverse: bool
    _whole: bool
    _limit: Optional[int]

    def _setup(self, owner: ViewSource, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, whole: bool,
               limit: Optional[int]) -> None:
        self._owner, self._lo, self._hi, self._reverse, self._whole = owner, lo, hi, reverse, whole
        self._limit = limit

    def _scan(self, values: bool, backwards: bool = False) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        limit = self._limit
        if backwards and limit is not None:
            # the view's own entries (the first ``limit`` of its order), last first: read
            # forwards, then turned (O(limit) memory); the other way would be other entries
            return reversed(list(self._owner._view_scan(self._lo, self._hi, self._reverse, values, limit)))
        return self._owner._view_scan(self._lo, self._hi, self._reverse != backwards, values, limit)

    def _pairs(self, backwards: bool) -> Iterator[Tuple[bytes, bytes]]:
        """_pairs: the scan with values (each one there: ``values=True``)."""
        return cast(Iterator[Tuple[bytes, bytes]], self._scan(True, backwards))

    def _count(self) -> int:
        if self._whole:
            n = len(self._owner)
            return n if self._limit is None else min(n, self._limit)
        counted = self._owner._view_count(self._lo, self._hi)
        if counted is not None:
            return counted if self._limit is None else min(counted, self._limit)
        n = 0
        for _ in self._scan(False):
            n += 1
        return n

    def _find(self, key: Any) -> Tuple[bool, Optional[bytes]]:
        """_find: (key in range and present, its encoded value)."""
        k = self._owner._view_key(key)
        if not _in_range(k, self._lo, self._hi):
            return False, None
        if self._limit is not None and not any(x == k for x, _ in self._scan(False)):
            return False, None  # in the range, but not among its first ``limit`` keys: O(limit)
        v = self._owner._view_get(k)
        return v is not None, v


class KeysView(_Range, abc.KeysView):  # type: ignore[type-arg]
    """KeysView: the keys of a range, in key order (or reversed), streamed."""

    def __init__(self, owner: ViewSource, lo: Optional[bytes] = None, hi: Optional[bytes] = None, reverse: bool = False, whole: bool = True,
                 limit: Optional[int] = None) -> None:
        self._mapping = owner
        self._setup(owner, lo, hi, reverse, whole, limit)

    def __len__(self) -> int:
        return self._count()

    def __contains__(self, key: object) -> bool:
        return self._find(key)[0]

    def _keys(self, backwards: bool) -> Iterator[Any]:
        dec = self._owner._view_decoders()[0]
        if dec is None:
            for k, _ in self._scan(False, backwards):
                yield k
        else:
            for k, _ in self._scan(False, backwards):
                yield dec(k)

    def __iter__(self) -> Iterator[Any]:
        return self._keys(False)

    def __reversed__(self) -> Iterator[Any]:
        return self._keys(True)


class ValuesView(_Range, abc.ValuesView):  # type: ignore[type-arg]
    """ValuesView: the values of a range, in key order (or reversed), streamed."""

    def __init__(self, owner: ViewSource, lo: Optional[bytes] = None, hi: Optional[bytes] = None, reverse: bool = False, whole: bool = True,
                 limit: Optional[int] = None) -> None:
        self._mapping = owner
        self._setup(owner, lo, hi, reverse, whole, limit)

    def __len__(self) -> int:
        return self._count()

    def __contains__(self, value: object) -> bool:
        return any(_equal(v, value) for v in self)

    def _values(self, backwards: bool) -> Iterator[Any]:
        dec = self._owner._view_decoders()[1]
        if dec is None:
            for _, v in self._scan(True, backwards):
                yield v
        else:
            for _, v in self._pairs(backwards):
                yield dec(v)

    def __iter__(self) -> Iterator[Any]:
        return self._values(False)

    def __reversed__(self) -> Iterator[Any]:
        return self._values(True)


class ItemsView(_Range, abc.ItemsView):  # type: ignore[type-arg]
    """ItemsView: the ``(key, value)`` pairs of a range, in key order (or reversed), streamed."""

    def __init__(self, owner: ViewSource, lo: Optional[bytes] = None, hi: Optional[bytes] = None, reverse: bool = False, whole: bool = True,
                 limit: Optional[int] = None) -> None:
        self._mapping = owner
        self._setup(owner, lo, hi, reverse, whole, limit)

    def __len__(self) -> int:
        return self._count()

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        _, raw = self._find(item[0])
        if raw is None:
            return False
        dec = self._owner._view_decoders()[1]
        return _equal(raw if dec is None else dec(raw), item[1])

    def _items(self, backwards: bool) -> Iterator[Tuple[Any, Any]]:
        kdec, vdec = self._owner._view_decoders()
        if kdec is None and vdec is None:
            return self._scan(True, backwards)
        return self._decoded(kdec, vdec, backwards)

    def _decoded(self, kdec: Any, vdec: Any, backwards: bool) -> Iterator[Tuple[Any, Any]]:
        for k, v in self._pairs(backwards):
            yield (k if kdec is None else kdec(k)), (v if vdec is None else vdec(v))

    def __iter__(self) -> Iterator[Tuple[Any, Any]]:
        return self._items(False)

    def __reversed__(self) -> Iterator[Tuple[Any, Any]]:
        return self._items(True)
