"""PageMap through its own interface: remap, retire, unmap, the verified bits, and ``check``.

The map is exercised over a plain file of whole pages (the map knows nothing of
what the pages hold); ``check`` runs after every step, and a description that
no longer matches its map is shown to fail it.
"""
from __future__ import annotations

import pytest

from pagestore import fileio
from pagestore.errors import PageStoreError
from pagestore.pagemap import PageMap

PS = 512


def grown(f: fileio.File, pages: int) -> None:
    f.write(0, bytes(range(256)) * (pages * PS // 256))


def test_remap_follows_the_file_and_keeps_verified_bits(tmp_path):
    f = fileio.open_file(str(tmp_path / "d"), create=True)
    pm = PageMap(4096)
    pm.set_page_size(PS)
    pm.check()
    assert pm.remap(f, PS) is None and pm.map is None  # an empty file: nothing to map
    grown(f, 1)
    assert pm.remap(f, PS) is None  # only the header: no slotted page yet
    grown(f, 4)
    first = pm.remap(f, PS)
    assert first is not None and pm.map is first and pm.mapped_bytes() == 4 * PS
    pm.check()
    pm.verified[0] |= 1 << 3  # as C marks page 3 verified
    assert pm.is_verified(3) and not pm.is_verified(2) and not pm.is_verified(10 ** 6)
    assert pm.remap(f, PS) is first  # same size: same map
    grown(f, 20)
    second = pm.remap(f, PS)
    assert second is not first and pm.mapped_bytes() == 20 * PS
    assert pm.is_verified(3)  # the bytes it covered are the same: the bit carries over
    pm.check()
    pm.unverify(3)
    pm.unverify(10 ** 6)  # past the bits: nothing to clear
    assert not pm.is_verified(3)
    pm.verified[1] = 0xFF
    pm.unverify_all()
    assert not any(pm.verified)
    pm.check()
    pm.unmap()
    assert pm.map is None and pm.mapped_bytes() == 0
    assert first.closed and second.closed  # the retired map too, once nothing reads it
    pm.check()
    pm.forget()
    assert pm.verified == bytearray()
    f.close()


def test_a_retired_map_stays_open_while_something_reads_it(tmp_path):
    f = fileio.open_file(str(tmp_path / "d"), create=True)
    pm = PageMap(PS)
    grown(f, 4)
    held = pm.remap(f, PS)  # a snapshot keeps reading this one
    assert held is not None
    grown(f, 8)
    pm.remap(f, PS)
    assert not held.closed and held[PS:PS + 4] == bytes(range(4))
    grown(f, 12)
    pm.remap(f, PS)
    assert not held.closed  # still referred to: left for its holder
    pm.unmap()
    assert held.closed  # unmap closes every map: the file may shrink next
    f.close()


def test_check_fails_when_the_description_does_not_match(tmp_path):
    f = fileio.open_file(str(tmp_path / "d"), create=True)
    pm = PageMap(PS)
    grown(f, 16)
    pm.remap(f, PS)
    pm.check()
    pm.verified = bytearray(1)  # fewer bits than the map has pages (and not what C was given)
    with pytest.raises(PageStoreError, match="C description"):
        pm.check()
    pm.unmap()
    f.close()


def test_an_unused_map_maps_nothing(tmp_path):
    f = fileio.open_file(str(tmp_path / "d"), create=True)
    grown(f, 8)
    pm = PageMap(PS, use=False)
    assert pm.remap(f, PS) is None and pm.mapped_bytes() == 0
    pm.check()
    f.close()


def test_the_page_source_calls_answer_in_python_values(tmp_path):
    """Pager.map_node and map_records (what the node cache and the heap ask instead of the C
    description): bytes and lists of ints, the same as the pages read through the pager, and a
    page that is not what was asked is refused or reported, never served."""
    from pagestore import format as fmt
    from pagestore import nodes
    from pagestore.errors import CorruptionError
    from pagestore.pager import Pager

    path = str(tmp_path / "p.ps")
    pager = Pager(path, page_size=PS)
    pager.begin_operation()
    heap = pager.allocate(fmt.PAGE_HEAP)
    slots = [heap.insert(b"value %d" % i) for i in range(5)]
    leaf = pager.allocate(fmt.PAGE_LEAF)
    nodes.build_leaf(leaf, leaf.pgno, [b"a", b"b"], [heap.pgno, heap.pgno], [slots[0], slots[1]])
    hp, lp = heap.pgno, leaf.pgno
    pager.commit()
    pager.close()
    pager = Pager(path)  # reopened: every page in the data file, read in place
    pager.begin_operation()
    assert pager.map is not None and not pager.overlaid
    raw = pager.map_node(lp)
    assert type(raw) is bytes and raw == bytes(pager.read(lp).buffer)
    assert nodes.decode(raw, lp)[1] == [b"a", b"b"]
    with pytest.raises(CorruptionError) as info:
        pager.map_node(hp)  # a heap page is not a node
    assert info.value.pgno == hp
    offs, lens, states = pager.map_records([hp, 0, hp, lp], [slots[3], 0, 99, 0], fmt.PAGE_HEAP)
    assert all(type(x) is int for x in offs + lens + states)
    assert pager.map[offs[0]:offs[0] + lens[0]] == b"value 3" and states[0] != 0
    assert states[1:] == [0, 0, 0]  # skipped, no such slot, not a heap page
    pager.check()
    pager.close()
