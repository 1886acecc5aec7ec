"""views: ``keys()``, ``values()`` and ``items()`` of a Store or Transaction, as a dict's views.

A view holds no entries: it remembers its owner and its range (encoded
bounds) and starts a fresh streaming scan each time it is iterated, so it is
iterable more than once, sees the owner's current state, and keeps memory
bounded by one leaf. ``len()`` of a whole-store view is the owner's O(1)
count; of a range view, a count of its keys by scanning them (no value is
read). ``in`` looks the key up (O(log n)); ``reversed()`` scans the range
the other way. Keys views are sets (``&``, ``|``, ``-``, ``==`` with other
sets), as a dict's are.

What a view asks of its owner (Store and Transaction provide it):
``_raw_scan(lo, hi, reverse, values)`` yielding encoded ``(key, value or
None)``; ``_raw_get(key)`` -> encoded value or None; ``_key(key)`` encoding
a key (raising TypeError/ValueError for one the codec refuses); ``_kdec`` and
``_vdec``, the codecs' decoders (None for bytes); ``len(owner)``.
"""
from __future__ import annotations

from collections import abc
from typing import Any, Iterator, Optional, Tuple


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
    """_Range is what the three views share: the owner, the encoded bounds, the direction."""

    _owner: Any
    _lo: Optional[bytes]
    _hi: Optional[bytes]
    _reverse: bool
    _whole: bool

    def _setup(self, owner: Any, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, whole: bool) -> None:
        self._owner, self._lo, self._hi, self._reverse, self._whole = owner, lo, hi, reverse, whole

    def _scan(self, values: bool, backwards: bool = False) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        return self._owner._raw_scan(self._lo, self._hi, self._reverse != backwards, values)  # type: ignore[no-any-return]

    def _count(self) -> int:
        if self._whole:
            return len(self._owner)
        n = 0
        for _ in self._scan(False):
            n += 1
        return n

    def _find(self, key: Any) -> Tuple[bool, Optional[bytes]]:
        """_find: (key in range and present, its encoded value)."""
        k = self._owner._key(key)
        if not _in_range(k, self._lo, self._hi):
            return False, None
        v = self._owner._raw_get(k)
        return v is not None, v


class KeysView(_Range, abc.KeysView):  # type: ignore[type-arg]
    """KeysView: the keys of a range, in key order (or reversed), streamed."""

    def __init__(self, owner: Any, lo: Optional[bytes] = None, hi: Optional[bytes] = None, reverse: bool = False, whole: bool = True) -> None:
        self._mapping = owner
        self._setup(owner, lo, hi, reverse, whole)

    def __len__(self) -> int:
        return self._count()

    def __contains__(self, key: object) -> bool:
        return self._find(key)[0]

    def _keys(self, backwards: bool) -> Iterator[Any]:
        dec = self._owner._kdec
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

    def __init__(self, owner: Any, lo: Optional[bytes] = None, hi: Optional[bytes] = None, reverse: bool = False, whole: bool = True) -> None:
        self._mapping = owner
        self._setup(owner, lo, hi, reverse, whole)

    def __len__(self) -> int:
        return self._count()

    def __contains__(self, value: object) -> bool:
        return any(_equal(v, value) for v in self)

    def _values(self, backwards: bool) -> Iterator[Any]:
        dec = self._owner._vdec
        if dec is None:
            for _, v in self._scan(True, backwards):
                yield v
        else:
            for _, v in self._scan(True, backwards):
                yield dec(v)

    def __iter__(self) -> Iterator[Any]:
        return self._values(False)

    def __reversed__(self) -> Iterator[Any]:
        return self._values(True)


class ItemsView(_Range, abc.ItemsView):  # type: ignore[type-arg]
    """ItemsView: the ``(key, value)`` pairs of a range, in key order (or reversed), streamed."""

    def __init__(self, owner: Any, lo: Optional[bytes] = None, hi: Optional[bytes] = None, reverse: bool = False, whole: bool = True) -> None:
        self._mapping = owner
        self._setup(owner, lo, hi, reverse, whole)

    def __len__(self) -> int:
        return self._count()

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        found, raw = self._find(item[0])
        if not found:
            return False
        dec = self._owner._vdec
        return _equal(raw if dec is None else dec(raw), item[1])

    def _items(self, backwards: bool) -> Iterator[Tuple[Any, Any]]:
        kdec, vdec = self._owner._kdec, self._owner._vdec
        if kdec is None and vdec is None:
            return self._scan(True, backwards)
        return self._decoded(kdec, vdec, backwards)

    def _decoded(self, kdec: Any, vdec: Any, backwards: bool) -> Iterator[Tuple[Any, Any]]:
        for k, v in self._scan(True, backwards):
            yield (k if kdec is None else kdec(k)), (v if vdec is None else vdec(v))

    def __iter__(self) -> Iterator[Tuple[Any, Any]]:
        return self._items(False)

    def __reversed__(self) -> Iterator[Tuple[Any, Any]]:
        return self._items(True)
