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
