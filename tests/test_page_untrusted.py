"""SlottedPage.load on bytes that are not to be trusted.

A page read from disk may be anything: torn, bit-rotted, written by a bug.
load must either accept it (it validates) or raise CorruptionError; nothing
may crash, and a page it accepts must behave: every operation keeps it valid.
The C harness (native/run_harness.sh) runs the same ideas under sanitizers;
these tests cover the Python wrapper's half of the contract.
"""
from __future__ import annotations

import random
import struct
from collections import Counter
from typing import Callable, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagestore import CorruptionError, NotFoundError, PageFullError, SlottedPage
from pagestore import format as fmt

SIZES = (512, 1024, 4096, 65536)
HEADER = fmt.HEADER_SIZE
SLOT = fmt.SLOT_SIZE


def build_valid(rnd: random.Random, size: int, pgno: int = 3) -> bytearray:
    """build_valid: the bytes of a checksummed page reached by random operations."""
    page = SlottedPage.new(size, pgno=pgno, page_type=rnd.randrange(7))
    for _ in range(rnd.randrange(60)):
        n = rnd.randrange(40) if rnd.random() < 0.7 else rnd.randrange(size // 4)
        data = rnd.randbytes(n)
        live = page.slots()
        try:
            r = rnd.random()
            if r < 0.6 or not live:
                page.insert(data, state=rnd.choice((fmt.SLOT_LIVE, fmt.SLOT_OVERFLOW)))
            elif r < 0.8:
                page.update(rnd.choice(live), data)
            else:
                page.delete(rnd.choice(live))
        except PageFullError:
            pass
    if rnd.random() < 0.25:
        page.compact()
    page.set_checksum()
    return bytearray(page.buffer)


# ---- mutations ----


def _fields(buf: bytearray):
    nslots, nlive, lower, upper, frag = struct.unpack_from("<HHHII", buf, fmt.OFF_NSLOTS)
    return nslots, nlive, lower, upper, frag


def _slot_count(buf: bytearray) -> int:
    """_slot_count: nslots, cut to what fits (after earlier damage the header may lie)."""
    return min(_fields(buf)[0], (len(buf) - HEADER) // SLOT)


def flip_bits(rnd, buf):
    for _ in range(rnd.randint(1, 4)):
        buf[rnd.randrange(len(buf))] ^= 1 << rnd.randrange(8)


def flip_bit_in_header_or_slots(rnd, buf):
    lower = min(_fields(buf)[2] + 8, len(buf))
    buf[rnd.randrange(max(lower, HEADER))] ^= 1 << rnd.randrange(8)


def overwrite_header_byte(rnd, buf):
    buf[rnd.randrange(HEADER)] = rnd.randrange(256)


def overwrite_slot_byte(rnd, buf):
    nslots = _slot_count(buf)
    if nslots:
        buf[HEADER + rnd.randrange(SLOT * nslots)] = rnd.randrange(256)


def edge_header_field(rnd, buf):
    size = len(buf)
    fmt_, off = rnd.choice(
        [("<H", fmt.OFF_NSLOTS), ("<H", fmt.OFF_NLIVE), ("<H", fmt.OFF_LOWER), ("<I", fmt.OFF_UPPER), ("<I", fmt.OFF_FRAG)]
    )
    (cur,) = struct.unpack_from(fmt_, buf, off)
    mask = 0xFFFF if fmt_ == "<H" else 0xFFFFFFFF
    value = rnd.choice((0, 1, size - 1, size, mask, cur + 1, cur - 1, cur + SLOT, cur - SLOT, rnd.getrandbits(32)))
    struct.pack_into(fmt_, buf, off, value & mask)


def truncate_slot_length(rnd, buf):
    """A slot's length made shorter (or longer), nothing else adjusted."""
    nslots = _slot_count(buf)
    if nslots:
        at = HEADER + SLOT * rnd.randrange(nslots) + 2
        (n,) = struct.unpack_from("<H", buf, at)
        struct.pack_into("<H", buf, at, rnd.choice((0, n // 2, max(n - 1, 0), n + 1, 0xFFFF)))


def edge_slot_offset(rnd, buf):
    nslots = _slot_count(buf)
    if nslots:
        at = HEADER + SLOT * rnd.randrange(nslots)
        struct.pack_into("<H", buf, at, rnd.choice((0, 1, HEADER, len(buf) - 1, 0xFFFF, rnd.getrandbits(16))))


def random_bytes_run(rnd, buf):
    at = rnd.randrange(len(buf))
    n = min(rnd.randint(1, 64), len(buf) - at)
    buf[at : at + n] = rnd.randbytes(n)


BLIND = [
    flip_bits,
    flip_bit_in_header_or_slots,
    overwrite_header_byte,
    overwrite_slot_byte,
    edge_header_field,
    truncate_slot_length,
    edge_slot_offset,
    random_bytes_run,
]


def shorten_record_keep_counts(rnd, buf) -> bool:
    """Valid on purpose: a record loses its tail, and frag counts the hole."""
    nslots, _, _, _, frag = _fields(buf)
    live = [i for i in range(nslots) if buf[HEADER + SLOT * i + 4] and struct.unpack_from("<H", buf, HEADER + SLOT * i + 2)[0]]
    if not live:
        return False
    at = HEADER + SLOT * rnd.choice(live)
    (n,) = struct.unpack_from("<H", buf, at + 2)
    d = rnd.randint(1, n)
    struct.pack_into("<H", buf, at + 2, n - d)
    if n == d:
        struct.pack_into("<H", buf, at, 0)
    struct.pack_into("<I", buf, fmt.OFF_FRAG, frag + d)
    return True


def lower_upper_keep_counts(rnd, buf) -> bool:
    """Valid on purpose: upper moves down into the gap, and frag counts it."""
    _, _, lower, upper, frag = _fields(buf)
    if upper <= lower:
        return False
    d = rnd.randint(1, upper - lower)
    struct.pack_into("<II", buf, fmt.OFF_UPPER, upper - d, frag + d)
    return True


def free_last_slot_untrimmed(rnd, buf) -> bool:
    """Invalid on purpose: the last slot freed but not trimmed, counts kept right."""
    nslots, nlive, _, _, frag = _fields(buf)
    if not nslots:
        return False
    at = HEADER + SLOT * (nslots - 1)
    (n,) = struct.unpack_from("<H", buf, at + 2)
    buf[at : at + SLOT] = bytes(SLOT)
    struct.pack_into("<H", buf, fmt.OFF_NLIVE, nlive - 1)
    struct.pack_into("<I", buf, fmt.OFF_FRAG, frag + n)
    return True


def overlap_two_records(rnd, buf) -> bool:
    """Invalid on purpose: one record starts inside another, byte counts unchanged."""
    nslots = _fields(buf)[0]
    live = [i for i in range(nslots) if buf[HEADER + SLOT * i + 4] and struct.unpack_from("<H", buf, HEADER + SLOT * i + 2)[0]]
    if len(live) < 2:
        return False
    a, b = rnd.sample(live, 2)
    off_b, len_b = struct.unpack_from("<HH", buf, HEADER + SLOT * b)
    (len_a,) = struct.unpack_from("<H", buf, HEADER + SLOT * a + 2)
    start = off_b + rnd.randrange(len_b)
    if start + len_a > len(buf):
        return False
    struct.pack_into("<H", buf, HEADER + SLOT * a, start)
    return True


def reserved_byte(rnd, buf) -> bool:
    """Invalid on purpose: a reserved byte (header or slot) is not zero."""
    nslots = _fields(buf)[0]
    if nslots and rnd.random() < 0.5:
        buf[HEADER + SLOT * rnd.randrange(nslots) + 5] = rnd.randint(1, 255)
    else:
        buf[36 + rnd.randrange(4)] = rnd.randint(1, 255)
    return True


STAYS_VALID = [shorten_record_keep_counts, lower_upper_keep_counts]
BREAKS = [free_last_slot_untrimmed, overlap_two_records, reserved_byte]


# ---- what a page that loaded must survive ----


def exercise(page: SlottedPage, rnd: random.Random) -> int:
    """exercise runs every operation on a page that validated; returns the count run.

    Every call must answer (a value, NotFoundError or PageFullError) and leave
    the page valid.
    """
    ops = 0

    def step(fn: Callable[[], object], allowed=()) -> None:
        nonlocal ops
        try:
            fn()
        except allowed:
            pass
        page.check()
        ops += 1

    nslots = page.nslots
    live = page.slots()
    assert len(live) == len(page)
    for slot in range(nslots + 2):
        if slot in live:
            assert len(page.read(slot)) == len(page.view(slot))
        else:
            with pytest.raises(NotFoundError):
                page.read(slot)
        ops += 1
    assert page.free_space == page.page_size - HEADER - SLOT * nslots - sum(r[2] for r in page.records())
    for n in (0, 1, 17, page.page_size // 3, page.max_insert, page.max_insert + 1):
        step(lambda: page.insert(rnd.randbytes(n)), PageFullError)
    for _ in range(4):
        slot = rnd.randrange(page.nslots + 1)
        n = rnd.choice((0, 3, 50, page.free_space, page.free_space + 1))
        step(lambda: page.update(slot, rnd.randbytes(n)), (PageFullError, NotFoundError))
    for _ in range(3):
        slot = rnd.randrange(page.nslots + 1)
        step(lambda: page.delete(slot), NotFoundError)
    step(lambda: page.append_many([b"", rnd.randbytes(9), rnd.randbytes(rnd.randrange(300))]), PageFullError)
    step(page.compact)
    assert page.frag == 0
    step(lambda: list(page.items()))
    return ops


def load_or_corrupt(data: bytes, pgno: Optional[int] = None) -> Optional[SlottedPage]:
    """load_or_corrupt: the loaded page, or None after a CorruptionError naming pgno."""
    try:
        return SlottedPage.load(data, pgno=pgno)
    except CorruptionError as err:
        assert err.pgno == pgno
        return None


# ---- the tests ----


def test_random_buffers_are_rejected_or_valid():
    rnd = random.Random(11)
    outcomes = Counter()
    for i in range(4000):
        size = SIZES[i % len(SIZES)]
        buf = bytearray(rnd.randbytes(size))
        if i % 2:
            # A plausible header over random slots, so validation gets further.
            nslots = rnd.randrange(12)
            struct.pack_into(
                "<HHHII", buf, fmt.OFF_NSLOTS, nslots, rnd.randint(0, nslots), HEADER + SLOT * nslots,
                size - rnd.randrange(size // 2), rnd.randrange(64),
            )
            struct.pack_into("<I", buf, 36, 0)
        page = load_or_corrupt(bytes(buf))
        outcomes["valid" if page else "corrupt"] += 1
        if page:
            outcomes["ops"] += exercise(page, rnd)
        # With a pgno the checksum is checked first: random bytes fail it.
        assert load_or_corrupt(bytes(buf), pgno=5) is None
    assert outcomes["valid"] + outcomes["corrupt"] == 4000
    assert outcomes["corrupt"] > 3000


def test_zeroed_and_constant_pages():
    for size in SIZES:
        for fill in (0x00, 0xFF, 0x28):
            load_or_corrupt(bytes([fill]) * size)
    # All zeros is not a page: lower 0 is not 40.
    assert load_or_corrupt(bytes(512)) is None


@pytest.mark.parametrize("size", SIZES)
def test_blind_mutations_of_valid_pages(size):
    rnd = random.Random(size)
    outcomes = Counter()
    tried = 0
    for _ in range(3000 if size < 65536 else 800):
        original = build_valid(rnd, size)
        buf = bytearray(original)
        for _ in range(rnd.choice((1, 1, 1, 2, 3))):
            rnd.choice(BLIND)(rnd, buf)
        tried += 1
        page = load_or_corrupt(bytes(buf))
        outcomes["valid" if page else "corrupt"] += 1
        if page:
            outcomes["ops"] += exercise(page, rnd)
        # The checksum catches any change to bytes [4, size).
        if buf[4:] != original[4:]:
            assert load_or_corrupt(bytes(buf), pgno=3) is None
        # Re-stamped, verify agrees with validate.
        stamped = SlottedPage(bytearray(buf), validate=False)
        stamped.set_checksum()
        again = load_or_corrupt(bytes(stamped.buffer), pgno=stamped.pgno)
        assert (again is None) == (page is None)
    assert outcomes["valid"] + outcomes["corrupt"] == tried
    assert outcomes["corrupt"] > tried // 2 and outcomes["valid"] > tried // 10 and outcomes["ops"] > 10 * tried // 10


@pytest.mark.parametrize("size", SIZES)
def test_targeted_mutations_get_the_promised_verdict(size):
    rnd = random.Random(size + 1)
    verdicts = Counter()
    rounds = 1500 if size < 65536 else 400
    for _ in range(rounds):
        buf = build_valid(rnd, size)
        keep = rnd.random() < 0.5
        mutation = rnd.choice(STAYS_VALID if keep else BREAKS)
        if not mutation(rnd, buf):
            continue
        page = load_or_corrupt(bytes(buf))
        if keep:
            assert page is not None, f"{mutation.__name__} should leave a valid page"
            exercise(page, rnd)
        else:
            assert page is None, f"{mutation.__name__} should be rejected"
        verdicts[mutation.__name__] += 1
    assert set(verdicts) == {m.__name__ for m in STAYS_VALID + BREAKS}
    assert sum(verdicts.values()) > rounds // 2


def test_truncated_and_padded_buffers():
    rnd = random.Random(5)
    good = build_valid(rnd, 4096)
    for n in (0, 1, 39, 40, 511, 513, 4095, 4097, 2048 + 1):
        with pytest.raises(ValueError):
            SlottedPage.load(bytes(good[:n]) if n <= 4096 else bytes(good) + bytes(n - 4096))
    # A page cut to a smaller valid size is judged on its own bytes.
    for n in (512, 1024, 2048):
        load_or_corrupt(bytes(good[:n]))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from((512, 4096)),
    edits=st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 255)), min_size=1, max_size=6),
    in_header=st.booleans(),
)
def test_byte_edits_of_valid_pages(seed, size, edits, in_header):
    """Hypothesis shrinks a failure to the fewest, smallest edits."""
    rnd = random.Random(seed)
    buf = build_valid(rnd, size)
    lower = struct.unpack_from("<H", buf, fmt.OFF_LOWER)[0]
    span = lower if in_header else size
    for at, value in edits:
        buf[at % span] = value
    page = load_or_corrupt(bytes(buf))
    if page is not None:
        exercise(page, rnd)
