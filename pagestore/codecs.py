"""codecs: what turns a store's Python keys and values into bytes and back.

The B+tree orders keys bytewise, so a key codec must preserve order: for any
two keys ``a`` and ``b`` it accepts, ``a < b`` if and only if
``encode(a) < encode(b)`` (bytewise). The built-in key codecs:

- ``"bytes"``: bytes-like keys as they are (the store's native form);
- ``"str"``: UTF-8 (code-point order; lone surrogates pass through, as three
  bytes each: a name from ``os.listdir`` such as ``'caf\udce9.txt'`` is a key);
- ``"int"``: integers of any size, negative ones first;
- ``"tuple"``: tuples of None, bool, int, float, str, bytes and nested
  tuples, element by element, in the spirit of the FoundationDB tuple layer
  (and byte-compatible with it for these types, ints up to 255 bytes).

The exact bytes, type codes and cross-type order are in docs/format.md
(KEY ENCODINGS). Value codecs need no order: ``"bytes"``, ``"str"``
(UTF-8), ``"json"`` (a lone surrogate in a string is refused: JSON text
cannot carry one), ``"pickle"`` (opt-in: unpickling runs code from the
file) and ``"numpy"`` (dtype, shape and bytes; read back with
``np.frombuffer``, read-only, no second copy). numpy is imported only when
the numpy codec (or a numpy array as input) is used.

A custom codec is any object with a ``name`` (1 to 16 printable ASCII
characters, recorded in the file header), ``encode(obj) -> bytes`` and
``decode(bytes) -> obj``; a key codec also sets ``ordered = True``, its
promise that the encoding preserves order. A key codec may offer
``prefix_range(obj) -> (lo, hi)``, the encoded range ``lo <= key < hi``
(``hi`` None: no bound) of the keys ``prefix=obj`` means; without it a
prefix scan takes the keys whose encoding starts with ``encode(obj)``. Encoders raise ``TypeError`` or ``ValueError`` naming the codec
(``"keys='int' store: key must be int, got str"``).
"""
from __future__ import annotations

import json
import pickle
import struct
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import PageStoreError

__all__ = [
    "KeyCodec",
    "ValueCodec",
    "KEY_CODECS",
    "VALUE_CODECS",
    "key_codec",
    "value_codec",
    "encode_tuple",
    "decode_tuple",
    "encode_int",
    "decode_int",
]

#: Longest codec name the file header holds (format.CODEC_NAME_SIZE).
NAME_SIZE = 16
#: What a store records when no codec is named.
DEFAULT_NAME = "bytes"


class CodecError(PageStoreError, ValueError):
    """Stored bytes that the store's codec cannot decode (written by another codec, or damaged)."""


# ---- the tuple layer: type codes ----
#
# One byte opens every element; its value fixes the order across types:
# None < bytes < str < tuple < int < float < False < True.
NULL = 0x00
BYTES = 0x01
STRING = 0x02
NESTED = 0x05
INT_ZERO = 0x14  # 0x0C..0x13: negative, 8..1 bytes; 0x15..0x1C: positive, 1..8 bytes
NEG_BIG = 0x0B  # negative, more than 8 bytes: complemented length, then complemented magnitude
POS_BIG = 0x1D  # positive, more than 8 bytes: length, then magnitude
DOUBLE = 0x21
FALSE = 0x26
TRUE = 0x27
#: A 0x00 inside bytes, str or a nested tuple is followed by 0xFF, so a lone
#: 0x00 can end them and every element's encoding is prefix-free.
ESCAPE = 0xFF

_DOUBLE = struct.Struct(">d")
_U64 = struct.Struct(">Q")
_SIGN = 1 << 63
_MASK64 = (1 << 64) - 1


def _what(obj: object) -> str:
    return type(obj).__name__


# ---- ints ----


def encode_int(n: int) -> bytes:
    """encode_int: an int's order-preserving bytes (the tuple layer's int element).

    Zero is 0x14. A positive int of m bytes (big-endian, no leading zero) is
    0x14 + m then its bytes, for m <= 8; a larger one is 0x1D, a length, then
    its bytes (the length is one byte m < 255, or 0xFF and m as 8 bytes). A
    negative int is the same with the code mirrored (0x14 - m, 0x0B) and every
    byte after the code complemented, so larger magnitudes sort first.
    """
    if n == 0:
        return b"\x14"
    if n > 0:
        m = (n.bit_length() + 7) >> 3
        if m <= 8:
            return bytes((INT_ZERO + m,)) + n.to_bytes(m, "big")
        head = bytes((m,)) if m < 255 else b"\xff" + _U64.pack(m)
        return bytes((POS_BIG,)) + head + n.to_bytes(m, "big")
    a = -n
    m = (a.bit_length() + 7) >> 3
    if m <= 8:
        return bytes((INT_ZERO - m,)) + ((1 << (8 * m)) - 1 - a).to_bytes(m, "big")
    head = bytes((m ^ 0xFF,)) if m < 255 else b"\x00" + _U64.pack(m ^ _MASK64)
    return bytes((NEG_BIG,)) + head + ((1 << (8 * m)) - 1 - a).to_bytes(m, "big")


def _decode_int_at(buf: bytes, i: int) -> Tuple[int, int]:
    """_decode_int_at decodes the int element at ``buf[i]`` (its type code); returns (value, end)."""
    code = buf[i]
    i += 1
    if code == INT_ZERO:
        return 0, i
    if INT_ZERO < code < POS_BIG:
        m = code - INT_ZERO
        _need(buf, i + m)
        return int.from_bytes(buf[i : i + m], "big"), i + m
    if NEG_BIG < code < INT_ZERO:
        m = INT_ZERO - code
        _need(buf, i + m)
        return int.from_bytes(buf[i : i + m], "big") - ((1 << (8 * m)) - 1), i + m
    if code == POS_BIG:
        _need(buf, i + 1)
        m = buf[i]
        i += 1
        if m == 0xFF:
            _need(buf, i + 8)
            m = _U64.unpack_from(buf, i)[0]
            i += 8
        _need(buf, i + m)
        return int.from_bytes(buf[i : i + m], "big"), i + m
    if code == NEG_BIG:
        _need(buf, i + 1)
        m = buf[i] ^ 0xFF
        i += 1
        if m == 0xFF:
            _need(buf, i + 8)
            m = _U64.unpack_from(buf, i)[0] ^ _MASK64
            i += 8
        _need(buf, i + m)
        return int.from_bytes(buf[i : i + m], "big") - ((1 << (8 * m)) - 1), i + m
    raise CodecError(f"byte 0x{code:02x} at {i - 1} does not start an int")


def decode_int(buf: bytes) -> int:
    """decode_int is the inverse of ``encode_int``.

    Raises:
        CodecError: the bytes are not one encoded int.
    """
    if not buf:
        raise CodecError("empty bytes are not an encoded int")
    n, end = _decode_int_at(buf, 0)
    if end != len(buf):
        raise CodecError(f"{len(buf) - end} bytes after an encoded int")
    return n


def _need(buf: bytes, end: int) -> None:
    if end > len(buf):
        raise CodecError("encoded key ends in the middle of an element")


# ---- floats ----


def _encode_double(x: float) -> bytes:
    # IEEE 754 total order: flip the sign bit of a positive number, every bit of a negative one.
    (u,) = _U64.unpack(_DOUBLE.pack(x))
    u = (u ^ _MASK64) if u & _SIGN else (u | _SIGN)
    return _U64.pack(u)


def _decode_double(raw: bytes) -> float:
    (u,) = _U64.unpack(raw)
    u = (u ^ _SIGN) if u & _SIGN else (u ^ _MASK64)
    return float(_DOUBLE.unpack(_U64.pack(u))[0])


# ---- tuples ----


def _escaped(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff") if b"\x00" in raw else raw


def _encode_element(x: object, out: List[bytes], nested: bool) -> None:
    t = type(x)
    if x is None:
        out.append(b"\x00\xff" if nested else b"\x00")
    elif t is bool:
        out.append(b"\x27" if x else b"\x26")
    elif t is int or (isinstance(x, int) and not isinstance(x, bool)):
        out.append(encode_int(int(x)))  # type: ignore[call-overload]
    elif t is float or isinstance(x, float):
        out.append(b"\x21" + _encode_double(float(x)))  # type: ignore[arg-type]
    elif t is str or isinstance(x, str):
        out.append(b"\x02" + _escaped(str(x).encode("utf-8", "surrogatepass")) + b"\x00")
    elif isinstance(x, (bytes, bytearray, memoryview)):
        out.append(b"\x01" + _escaped(bytes(x)) + b"\x00")
    elif isinstance(x, tuple):
        out.append(b"\x05")
        for e in x:
            _encode_element(e, out, True)
        out.append(b"\x00")
    elif hasattr(t, "__index__"):  # numpy integers and other int-likes
        out.append(encode_int(x.__index__()))  # type: ignore[attr-defined]
    else:
        raise TypeError(
            f"keys='tuple' store: tuple elements must be None, bool, int, float, str, bytes or tuple, got {_what(x)}"
        )


def encode_tuple(key: tuple) -> bytes:  # type: ignore[type-arg]
    """encode_tuple: a tuple's order-preserving bytes, its elements' encodings one after another.

    Each element's encoding is self-delimiting, and no element's encoding
    continues with 0xFF (no type code is 0xFF): so ``t[:len(p)] == p``
    (element by element, with the encoding's notion of equality: see
    docs/format.md) exactly when ``encode_tuple(p) <= encode_tuple(t) <
    encode_tuple(p) + b"\xff"`` (``tuple_prefix_range``). Note that
    ``encode_tuple(p)`` being a prefix is not enough: ``(b"",)`` encodes
    to a prefix of ``(b"\x00",)``, whose zero byte is escaped as 00 FF.

    Raises:
        TypeError: not a tuple, or an element of another type.
        ValueError: nested past Python's recursion limit.
    """
    if not isinstance(key, tuple):
        raise TypeError(f"keys='tuple' store: key must be tuple, got {_what(key)}")
    out: List[bytes] = []
    try:
        for x in key:
            _encode_element(x, out, False)
    except RecursionError:
        raise ValueError("keys='tuple' store: key is nested too deeply to encode") from None
    return b"".join(out)


def tuple_prefix_range(prefix: tuple) -> Tuple[bytes, bytes]:  # type: ignore[type-arg]
    """tuple_prefix_range: the encoded range of the tuples whose leading elements are ``prefix``.

    ``[encode_tuple(prefix), encode_tuple(prefix) + b"\xff")``: see encode_tuple.
    """
    lo = encode_tuple(prefix)
    return lo, lo + b"\xff"


def byte_prefix_range(prefix: bytes) -> Tuple[bytes, Optional[bytes]]:
    """byte_prefix_range: the range of the byte strings that start with ``prefix`` (None: no upper bound)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return prefix, None
    p[-1] += 1
    return prefix, bytes(p)


def _unescape(buf: bytes, i: int) -> Tuple[bytes, int]:
    """_unescape reads escaped bytes from ``buf[i]`` up to their lone 0x00; returns (bytes, end after it)."""
    parts = []
    while True:
        j = buf.find(b"\x00", i)
        if j < 0:
            raise CodecError("encoded key ends inside a bytes or str element")
        parts.append(buf[i:j])
        if j + 1 < len(buf) and buf[j + 1] == ESCAPE:
            parts.append(b"\x00")
            i = j + 2
            continue
        return b"".join(parts), j + 1


def _decode_element(buf: bytes, i: int, nested: bool) -> Tuple[object, int]:
    code = buf[i]
    if code == NULL:
        if nested:
            if i + 1 < len(buf) and buf[i + 1] == ESCAPE:
                return None, i + 2
            raise CodecError(f"byte 0x00 at {i} inside a nested tuple is neither None nor its end")
        return None, i + 1
    if code == BYTES:
        return _unescape(buf, i + 1)
    if code == STRING:
        raw, end = _unescape(buf, i + 1)
        try:
            return raw.decode("utf-8", "surrogatepass"), end
        except UnicodeDecodeError as exc:
            raise CodecError(f"str element at {i} is not UTF-8: {exc}") from None
    if code == NESTED:
        items: List[object] = []
        i += 1
        while True:
            if i >= len(buf):
                raise CodecError("encoded key ends inside a nested tuple")
            if buf[i] == NULL and not (i + 1 < len(buf) and buf[i + 1] == ESCAPE):
                return tuple(items), i + 1
            x, i = _decode_element(buf, i, True)
            items.append(x)
    if NEG_BIG <= code <= POS_BIG:
        return _decode_int_at(buf, i)
    if code == DOUBLE:
        _need(buf, i + 9)
        return _decode_double(buf[i + 1 : i + 9]), i + 9
    if code == FALSE:
        return False, i + 1
    if code == TRUE:
        return True, i + 1
    raise CodecError(f"byte 0x{code:02x} at {i} is not a tuple element type code")


def decode_tuple(buf: bytes) -> tuple:  # type: ignore[type-arg]
    """decode_tuple is the inverse of ``encode_tuple``.

    Raises:
        CodecError: the bytes are not an encoded tuple, or nest past Python's recursion limit
        (bytes no encode_tuple of this interpreter wrote, or one run far deeper in the stack).
    """
    items: List[object] = []
    i, n = 0, len(buf)
    try:
        while i < n:
            x, i = _decode_element(buf, i, False)
            items.append(x)
    except RecursionError:
        raise CodecError("encoded key is nested too deeply to decode") from None
    return tuple(items)


# ---- the codec objects ----


class KeyCodec:
    """KeyCodec is a built-in key codec: a name, an order-preserving ``encode`` and its ``decode``.

    ``prefix_range`` gives the encoded range of the keys "starting with" a
    prefix, or raises ValueError where prefixes mean nothing (ints).
    """

    ordered = True

    def __init__(
        self,
        name: str,
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
        prefix_range: Optional[Callable[[Any], Tuple[bytes, Optional[bytes]]]] = None,
    ) -> None:
        self.name = name
        self.encode = encode
        self.decode = decode
        self._prefix = prefix_range

    def prefix_range(self, prefix: Any) -> Tuple[bytes, Optional[bytes]]:
        if self._prefix is None:
            raise ValueError(f"keys={self.name!r} store: prefix scans need str, bytes or tuple keys")
        return self._prefix(prefix)

    def __repr__(self) -> str:
        return f"<key codec {self.name!r}>"


class ValueCodec:
    """ValueCodec is a built-in value codec: a name, ``encode`` and ``decode``."""

    def __init__(self, name: str, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]) -> None:
        self.name = name
        self.encode = encode
        self.decode = decode

    def __repr__(self) -> str:
        return f"<value codec {self.name!r}>"


def _bytes_key(key: Any) -> bytes:
    if type(key) is bytes:
        return key
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"keys='bytes' store: key must be bytes-like, got {_what(key)}")


def _str_key(key: Any) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"keys='str' store: key must be str, got {_what(key)}")
    return key.encode("utf-8", "surrogatepass")


def _str_key_decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise CodecError(f"keys='str' store: stored key {raw[:40]!r} is not UTF-8 ({exc.reason})") from None


def _int_key(key: Any) -> bytes:
    if type(key) is int:
        return encode_int(key)
    if isinstance(key, bool) or not hasattr(type(key), "__index__"):
        raise TypeError(f"keys='int' store: key must be int, got {_what(key)}")
    return encode_int(key.__index__())  # numpy integers, and other int-likes


def _str_value(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"values='str' store: value must be str, got {_what(value)}")
    return value.encode("utf-8", "surrogatepass")


def _str_value_decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise CodecError(f"values='str' store: stored value is not UTF-8 ({exc.reason})") from None


def _bytes_value(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"values='bytes' store: value must be bytes-like, got {_what(value)}")


def _json_value(value: Any) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"values='json' store: value is not JSON: {exc}") from None
    except RecursionError:
        raise ValueError("values='json' store: value is nested too deeply to encode") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # JSON text is Unicode (RFC 8259, I-JSON): a JSON reader would join a split pair
        # ('\ud83d\ude00') into one character, so the value would not come back as stored.
        bad = ord(text[exc.start])
        raise ValueError(f"values='json' store: a string in the value holds a lone surrogate (U+{bad:04X}), "
                         "which JSON text cannot carry; use values='str' or 'pickle' for such text") from None


def _json_value_decode(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8", "surrogatepass"))
    except ValueError as exc:
        raise CodecError(f"values='json' store: stored value is not JSON ({exc})") from None
    except RecursionError:  # '[' * 10**5: no value _json_value wrote (it refuses such nesting)
        raise CodecError("values='json' store: stored value is nested too deeply to decode") from None


#: Pickle protocol 5 (Python 3.8+): fixed, so files do not change with the Python that wrote them.
PICKLE_PROTOCOL = 5


def _pickle_value(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"values='pickle' store: value cannot be pickled: {exc}") from None


# ---- numpy ----
#
# NUMPY VALUE: a header padded to a multiple of 16 bytes, then the array's
# bytes in C order. All integers little-endian.
#
#   OFFSET  SIZE    DESCRIPTION
#      0      1     version: 1
#      1      1     ndim (0 to 64)
#      2      2     d = length of the dtype description (u16)
#      4    8*ndim  shape (u64 each)
#      .      d     dtype description: ASCII, numpy.lib.format.dtype_to_descr's repr
#      .      .     zero padding to a multiple of 16 (keeps the data aligned)
#      H      .     the array's bytes, C order, the dtype's own byte order

_NP_VERSION = 1
_NP_HEAD = struct.Struct("<BBH")
_NP_ALIGN = 16
_np_descr_cache: Dict[str, Any] = {}


def _numpy() -> Any:
    import numpy

    return numpy


def _numpy_value(value: Any) -> bytes:
    np = _numpy()
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"values='numpy' store: value must be a numpy array, got {_what(value)}")
    if value.dtype.hasobject:
        raise TypeError(f"values='numpy' store: arrays of dtype {value.dtype} hold Python objects (use values='pickle')")
    descr = repr(np.lib.format.dtype_to_descr(value.dtype)).encode("ascii")
    head = _NP_HEAD.pack(_NP_VERSION, value.ndim, len(descr)) + struct.pack(f"<{value.ndim}Q", *value.shape) + descr
    head += bytes(-len(head) % _NP_ALIGN)
    data = value if value.flags.c_contiguous else np.ascontiguousarray(value)
    return b"".join((head, data.reshape(-1).view(np.uint8).data if data.size and data.itemsize else b""))


def _numpy_value_decode(raw: bytes) -> Any:
    np = _numpy()
    bad = "values='numpy' store: stored value is not an encoded array"
    if len(raw) < _NP_HEAD.size:
        raise CodecError(f"{bad} (too short)")
    version, ndim, dlen = _NP_HEAD.unpack_from(raw, 0)
    if version != _NP_VERSION or ndim > 64:
        raise CodecError(f"{bad} (version {version}, {ndim} dimensions)")
    off = _NP_HEAD.size
    end = off + 8 * ndim + dlen
    if end > len(raw):
        raise CodecError(f"{bad} (header runs past the value)")
    shape = struct.unpack_from(f"<{ndim}Q", raw, off)
    descr = raw[off + 8 * ndim : end].decode("ascii", "replace")
    dtype = _np_descr_cache.get(descr)
    if dtype is None:
        import ast

        try:
            dtype = np.lib.format.descr_to_dtype(ast.literal_eval(descr))
        except (ValueError, TypeError, SyntaxError) as exc:
            raise CodecError(f"{bad} (dtype {descr!r}: {exc})") from None
        if len(_np_descr_cache) < 256:
            _np_descr_cache[descr] = dtype
    start = end + (-end % _NP_ALIGN)
    count = 1
    for n in shape:
        count *= n
    if len(raw) - start != count * dtype.itemsize:
        raise CodecError(f"{bad} ({len(raw) - start} data bytes for shape {shape} of {dtype})")
    if count == 0 or dtype.itemsize == 0:
        arr = np.empty(shape, dtype)
        arr.flags.writeable = False
        return arr
    return np.frombuffer(raw, dtype, count, start).reshape(shape)


def _identity(raw: bytes) -> bytes:
    return raw


#: The built-in key codecs by name.
KEY_CODECS: Dict[str, KeyCodec] = {
    "bytes": KeyCodec("bytes", _bytes_key, _identity, lambda p: byte_prefix_range(_bytes_key(p))),
    "str": KeyCodec("str", _str_key, _str_key_decode, lambda p: byte_prefix_range(_str_key(p))),
    "int": KeyCodec("int", _int_key, decode_int),
    "tuple": KeyCodec("tuple", encode_tuple, decode_tuple, tuple_prefix_range),
}

#: The built-in value codecs by name. "pickle" is opt-in: a store that
#: recorded it opens only when the caller names it again (see key_codec).
VALUE_CODECS: Dict[str, ValueCodec] = {
    "bytes": ValueCodec("bytes", _bytes_value, _identity),
    "str": ValueCodec("str", _str_value, _str_value_decode),
    "json": ValueCodec("json", _json_value, _json_value_decode),
    "pickle": ValueCodec("pickle", _pickle_value, pickle.loads),
    "numpy": ValueCodec("numpy", _numpy_value, _numpy_value_decode),
}


class _Raw:
    """_Raw is the type of RAW."""

    def __repr__(self) -> str:
        return "pagestore.codecs.RAW"


#: ``open(path, keys=RAW, values=RAW)`` opens a store at the bytes level,
#: whatever codecs it recorded: keys and values go in and come out encoded,
#: as they lie in the file, and nothing is decoded (no pickle is loaded).
#: For tools such as ``pagestore dump``; ``db.key_codec.name`` tells what
#: the bytes are. A new store opened so records "bytes".
RAW = _Raw()


def raw_key_codec(name: str) -> KeyCodec:
    """raw_key_codec: a key codec named ``name`` that passes encoded bytes through.

    Opens (or creates) a store that records ``name`` while the caller
    encodes keys itself (a tool that knows the codec by name).
    """
    codec = KeyCodec(check_name(name, "key"), _bytes_key, _identity, lambda p: byte_prefix_range(_bytes_key(p)))
    codec.raw = True  # type: ignore[attr-defined]
    return codec


def raw_value_codec(name: str) -> ValueCodec:
    """raw_value_codec: a value codec named ``name`` that passes encoded bytes through."""
    codec = ValueCodec(check_name(name, "value"), _bytes_value, _identity)
    codec.raw = True  # type: ignore[attr-defined]
    return codec


def check_name(name: object, kind: str) -> str:
    """check_name returns a codec's name if the file header can hold it.

    Raises:
        ValueError: not 1 to 16 printable ASCII characters (no spaces).
    """
    if not isinstance(name, str) or not name or len(name) > NAME_SIZE or not all("!" <= c <= "~" for c in name):
        raise ValueError(f"{kind} codec name must be 1 to {NAME_SIZE} printable ASCII characters, got {name!r}")
    return name


def _resolve(spec: Any, recorded: str, kind: str, table: Dict[str, Any]) -> Any:
    """_resolve picks the codec for an open: the one named (checked against the header) or the recorded one."""
    arg = "keys" if kind == "key" else "values"
    if spec is RAW:
        name = DEFAULT_NAME if recorded is None else recorded
        return raw_key_codec(name) if kind == "key" else raw_value_codec(name)
    if spec is None:
        if recorded in table:
            if recorded == "pickle":
                raise ValueError(
                    "store was created with values='pickle': unpickling runs code from the file, "
                    "so open it with values='pickle' only if you trust the file"
                )
            return table[recorded]
        raise ValueError(
            f"store was created with {arg}={recorded!r}, a custom codec: pass {arg}= an object named {recorded!r}"
        )
    if isinstance(spec, str):
        codec = table.get(spec)
        if codec is None:
            raise ValueError(f"unknown {kind} codec {spec!r}: one of {', '.join(table)} or a codec object")
    else:
        codec = spec
        for attr in ("name", "encode", "decode"):
            if not hasattr(codec, attr):
                raise TypeError(f"{arg}= codec object has no {attr!r} attribute")
        if kind == "key" and getattr(codec, "ordered", False) is not True:
            raise ValueError(f"keys= codec {codec.name!r} must set ordered = True (its encoding preserves order)")
        check_name(codec.name, kind)
    if recorded is not None and codec.name != recorded:
        raise ValueError(f"store was created with {arg}={recorded!r}, not {arg}={codec.name!r}")
    return codec


def key_codec(spec: Any, recorded: Optional[str]) -> Any:
    """key_codec returns the key codec for ``keys=spec`` on a store that recorded ``recorded`` (None: a new store).

    Raises:
        ValueError: an unknown name, a name other than the recorded one, a
            custom codec recorded but not passed, or no order promise.
        TypeError: a codec object missing name, encode or decode.
    """
    if spec is None and recorded is None:
        spec = "bytes"
    return _resolve(spec, recorded, "key", KEY_CODECS)  # type: ignore[arg-type]


def value_codec(spec: Any, recorded: Optional[str]) -> Any:
    """value_codec is ``key_codec`` for values (a recorded "pickle" must be named again)."""
    if spec is None and recorded is None:
        spec = "bytes"
    return _resolve(spec, recorded, "value", VALUE_CODECS)  # type: ignore[arg-type]
