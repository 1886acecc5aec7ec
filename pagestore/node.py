"""node: the decoded, in-memory form of one B+tree node page, and what a node's size is.

The B+tree keeps a clean node as its raw page bytes, searched in C
(``nodes.py``); it decodes a node into a ``Node`` (Python lists) only to
change it in a way the page cannot take in place: a split, a merge, a
redistribution. ``nodecache.py`` holds both forms, ``split.py`` changes
decoded nodes, ``nodes.build`` writes one back into its page.

SPACE

Usable bytes U = page_size - 40. An entry costs its record plus its 6-byte
slot: 12 + len(key) in a leaf, 10 + len(key) in an internal node. A node
fits a page if and only if the sum of its entry costs is at most U.
``max_key_len`` keeps three largest entries in a page, which is what lets a
split always produce two halves that fit and are not underfull (see
``split.choose_split``).
"""
from __future__ import annotations

from typing import Any, List, Tuple

from . import format as fmt
from . import nodes

Rid = Tuple[int, int]

#: Bytes a leaf entry costs before its key: slot + rid.
LEAF_COST = fmt.SLOT_SIZE + fmt.NODE_RID_SIZE  # 12
#: Bytes an internal entry (one child) costs before its separator key: slot + child page number.
INTERNAL_COST = fmt.SLOT_SIZE + fmt.NODE_CHILD_SIZE  # 10


def max_key_len(page_size: int) -> int:
    """max_key_len returns the longest key a tree on ``page_size`` pages accepts.

    (page_size - 40) // 3 - 16: three largest leaf entries (12 bytes + key)
    fit in one page with room to spare, which is what makes every split and
    every redistribution end with two nodes that fit and are not underfull.
    4096 -> 1336, 512 -> 141.
    """
    return (page_size - fmt.HEADER_SIZE) // 3 - 16


class Node:
    """Node is the decoded, in-memory form of one node page.

    Leaf: ``keys[i]`` maps to ``vals[i]`` (a rid tuple). Internal: ``vals``
    are child page numbers, ``keys`` the separators, ``len(vals) ==
    len(keys) + 1``; child i holds keys in [keys[i-1], keys[i]). ``size`` is
    the number of page bytes the node needs past the header (entries plus
    slots), kept up to date by every mutation.
    """

    __slots__ = ("pgno", "leaf", "keys", "vals", "size")

    def __init__(self, pgno: int, leaf: bool, keys: List[bytes], vals: List[Any], size: int = -1) -> None:
        """``size`` -1: compute it from the keys (``node_size``)."""
        self.pgno = pgno
        self.leaf = leaf
        self.keys = keys
        # rids (leaf) or child page numbers (internal): one list type, so that
        # splits and merges move entries without asking which kind they hold
        self.vals: List[Any] = vals
        self.size = node_size(leaf, keys) if size < 0 else size

    def __repr__(self) -> str:
        kind = "leaf" if self.leaf else "internal"
        return f"<Node {kind} pgno={self.pgno} n={len(self.vals)} size={self.size}>"


def node_size(leaf: bool, keys: List[bytes]) -> int:
    """node_size computes a node's byte size from scratch (splits, decoding, check). O(keys)."""
    if leaf:
        return LEAF_COST * len(keys) + sum(map(len, keys))
    return INTERNAL_COST * (len(keys) + 1) + sum(map(len, keys))


def separator(left: bytes, right: bytes) -> bytes:
    """separator returns the shortest prefix of ``right`` that is greater than ``left`` (left < right).

    Any s with left < s <= right separates the two leaves; the shortest
    keeps internal nodes small.
    """
    n = min(len(left), len(right))
    i = 0
    while i < n and left[i] == right[i]:
        i += 1
    return right[: i + 1]


def decode(pgno: int, raw: bytes) -> Node:
    """decode builds a Node from a node page's raw bytes, trusting nothing it reads.

    Raises:
        CorruptionError: wrong page type, a slot that is free or overflow, a
            record too short for its kind, keys out of order (names ``pgno``).
    """
    leaf, keys, vals = nodes.decode(raw, pgno)
    return Node(pgno, leaf, keys, vals)
