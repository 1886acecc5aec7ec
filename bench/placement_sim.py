"""placement_sim.py: would placing each value next to its key's neighbours make range scans cheaper?

Values live in heap pages apart from their keys, so a range scan reads about
one heap page per value unless neighbouring keys' values share pages. This
simulates heap placement policies over the benchmark's data set, inserted
in its (random) key order, without building a store: each policy decides a
page for each record, and the script reports how many distinct heap pages a
range of 50 consecutive keys touches, and how full the pages end up (which
is the file-size side of the trade).

    python bench/placement_sim.py --records 200000

Policies:
  fit        the store's placement: any page with room (modelled as the most
             recently opened page, which is what best fit amounts to while
             pages fill up in insertion order)
  near       the page of the key just before or after the new key, if it has
             room; otherwise as ``fit``
  near:W     the same, looking at up to W keys on each side
  fresh      the neighbours' page if it has room, otherwise a new page

Result at 200,000 records (2026-11-24): fit 49.9 pages per range of 50,
88% full; near 37.3, 97%; near:4 35.8, 99%; near:16 38.2, 99.6%; fresh 12.0,
but pages only 34% full. With keys arriving in random order a neighbour's
page is usually full by the time the next key lands beside it, so placement
alone recovers little locality; ``Store.compact()``, which rewrites values in
key order, is what clusters them.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from typing import Dict, List, Optional

from sortedcontainers import SortedList

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pagestore import format as fmt  # noqa: E402
from pagestore.bench import make_dataset  # noqa: E402


def record_size(n: int, usable: int) -> int:
    """record_size: bytes a value of ``n`` bytes takes in its heap page (the stub's tail for a large one), with its slot."""
    half = usable // 2
    if n > half:
        tail = n % usable
        n = 8 + (tail if tail <= half else 0)
    return n + fmt.SLOT_SIZE


def simulate(policy: str, records: List[tuple], usable: int, ranges: int, seed: int) -> Dict[str, float]:
    width = int(policy.split(":")[1]) if ":" in policy else 1
    keys: SortedList = SortedList()
    page_of: Dict[bytes, int] = {}
    free: List[int] = []
    current: Optional[int] = None

    def new_page() -> int:
        free.append(usable)
        return len(free) - 1

    for key, size in records:
        page = None
        if policy != "fit":
            i = keys.bisect_left(key)
            for d in range(1, width + 1):
                for j in (i - d, i + d - 1):
                    if 0 <= j < len(keys) and free[page_of[keys[j]]] >= size:
                        page = page_of[keys[j]]
                        break
                if page is not None:
                    break
        if page is None:
            if policy == "fresh":
                page = new_page()
            else:
                if current is None or free[current] < size:
                    current = new_page()
                page = current
        free[page] -= size
        page_of[key] = page
        keys.add(key)
    ordered = list(keys)
    rng = random.Random(seed)
    touched = 0
    for _ in range(ranges):
        s = rng.randrange(len(ordered) - 50)
        touched += len({page_of[k] for k in ordered[s : s + 50]})
    return {
        "pages": len(free),
        "pages_per_range": touched / ranges,
        "fill": sum(usable - f for f in free) / (len(free) * usable),
    }


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--page-size", type=int, default=4096)
    ap.add_argument("--policies", default="fit,near,near:4,near:16,fresh")
    ap.add_argument("--ranges", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    usable = args.page_size - fmt.HEADER_SIZE - fmt.SLOT_SIZE
    ds = make_dataset(args.records)
    records = []
    for i in range(args.records):
        key, value = ds.record(i)
        records.append((key, record_size(len(value), usable)))
    print(f"{'policy':<8} {'heap pages':>10} {'pages per range of 50':>22} {'fill':>6}")
    for policy in args.policies.split(","):
        r = simulate(policy, records, usable, args.ranges, args.seed)
        print(f"{policy:<8} {r['pages']:>10,} {r['pages_per_range']:>22.1f} {r['fill']:>6.1%}")


if __name__ == "__main__":
    main()
