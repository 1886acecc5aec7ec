"""jsonshape: each codec's keys and values as JSON, for the command line (dump, load, get, put, delete, scan).

The CLI opens stores with ``codecs.RAW``: it handles keys and values as the
encoded bytes in the file, and turns them into JSON and back here, by the
codec's recorded name. So a dump never unpickles anything and loses nothing,
and a store with a custom codec still dumps (as base64). docs/cli.md
documents the shapes:

KEYS
  bytes (and custom codecs)  base64 string
  str                        string; a lone surrogate written as its escape
                             (\udce9); a string in which a high surrogate
                             directly precedes a low one (two code points
                             that JSON would join into one) as
                             {"utf8": base64 of its stored bytes}
  int                        integer (any size)
  tuple                      array, one item per element: null, true/false,
                             integer, number (a float: always with a "." or
                             exponent), string (str, as a str key),
                             {"bytes": base64}, {"float": "inf" | "-inf" |
                             "nan" | "-nan" | "nan:<16 hex digits>" (a NaN
                             of other bits)}, or an array (a nested tuple)

VALUES
  bytes, pickle (and custom) base64 string (a pickle is never loaded)
  str                        string, as a str key
  json                       the JSON value itself
  numpy                      {"dtype": "<f8", "shape": [2, 3], "data": base64 of the C-order bytes}
"""
from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from typing import Any, List, Optional, Tuple

from . import codecs

#: Codecs whose keys or values the CLI shows as base64 (the bytes as they are).
OPAQUE_VALUES = ("bytes", "pickle")


#: A lone surrogate (U+D800..U+DFFF): a str key or value may hold one (os.listdir gives
#: 'caf\udce9.txt' for a Latin-1 name; the codecs encode it with surrogatepass), but
#: UTF-8 text cannot, so dumps and printed text write it as the JSON escape ``\udce9``.
_SURROGATE = re.compile("[\ud800-\udfff]")


#: A high surrogate directly before a low one: two code points in a Python str, which a JSON
#: reader joins into one character when both are written as escapes.
_SPLIT_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _str_to_json(text: str) -> Any:
    """_str_to_json: a str key, value or tuple element as JSON: itself, or ``{"utf8": base64}``
    of its stored bytes when it holds a split pair (see _SPLIT_PAIR)."""
    if _SPLIT_PAIR.search(text):
        return {"utf8": _b64(text.encode("utf-8", "surrogatepass"))}
    return text


def _str_from_json(obj: Any, what: str) -> str:
    """_str_from_json: the str that _str_to_json wrote as ``obj``.

    Raises:
        ShapeError: neither a string nor ``{"utf8": base64}`` of UTF-8 (lone surrogates allowed).
    """
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict) and set(obj) == {"utf8"}:
        raw = _unb64(obj["utf8"], f'{what}\'s "utf8"')
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise ShapeError(f'{what}\'s "utf8" is not UTF-8 ({exc.reason})') from None
    raise ShapeError(f'{what} is a string (or {{"utf8": base64}}), got {obj!r:.80}')


def escape_surrogates(text: str) -> str:
    """escape_surrogates writes each lone surrogate in ``text`` as its six-character JSON escape
    (``\udce9``), so that the text is valid UTF-8 and ``json.loads`` of a dump gives it back."""
    return _SURROGATE.sub(lambda m: "\\u%04x" % ord(m.group()), text)


class ShapeError(ValueError):
    """JSON that is not a key or value of the codec (the message says what was expected)."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ShapeError(f"{what} must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ShapeError(f"{what} is not valid base64: {exc}") from None


# ---- keys ----


def _element_to_json(x: Any) -> Any:
    if isinstance(x, str):
        return _str_to_json(x)
    if x is None or isinstance(x, (bool, int)):
        return x
    if isinstance(x, float):
        if math.isfinite(x):
            return x
        if math.isnan(x):
            bits = _DOUBLE_BITS.unpack(_DOUBLE.pack(x))[0]
            if bits in _NAN_NAMES:
                return {"float": _NAN_NAMES[bits]}
            return {"float": f"nan:{bits:016x}"}  # a NaN's payload is part of the key
        return {"float": "inf" if x > 0 else "-inf"}
    if isinstance(x, bytes):
        return {"bytes": _b64(x)}
    assert isinstance(x, tuple)
    return [_element_to_json(e) for e in x]


_SPECIAL_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan, "-nan": -math.nan}
_DOUBLE = struct.Struct(">d")
_DOUBLE_BITS = struct.Struct(">Q")
#: The bits of the NaNs written by name; any other NaN is written "nan:<its 16 hex digits>".
_NAN_NAMES = {_DOUBLE_BITS.unpack(_DOUBLE.pack(v))[0]: k for k, v in _SPECIAL_FLOATS.items() if math.isnan(v)}
_NAN_BITS = re.compile(r"nan:[0-9a-f]{16}\Z")


def _element_from_json(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return tuple(_element_from_json(e) for e in obj)
    if isinstance(obj, dict) and len(obj) == 1:
        if "bytes" in obj:
            return _unb64(obj["bytes"], "a tuple's bytes element")
        if "utf8" in obj:
            return _str_from_json(obj, "a tuple's str element")
        f = obj.get("float")
        if isinstance(f, str) and f in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[f]
        if isinstance(f, str) and _NAN_BITS.match(f):
            v = _DOUBLE.unpack(_DOUBLE_BITS.pack(int(f[4:], 16)))[0]
            if math.isnan(v):
                return v
    raise ShapeError(
        'a tuple element must be null, true/false, a number, a string, an array, {"bytes": base64}, '
        f'{{"utf8": base64}} or {{"float": "inf"|"-inf"|"nan"|"-nan"|"nan:<16 hex digits>"}}, got {obj!r}'
    )


def key_to_json(codec: str, raw: bytes) -> Any:
    """key_to_json: the JSON form of an encoded key of codec ``codec``."""
    if codec == "str":
        return _str_to_json(codecs.KEY_CODECS["str"].decode(raw))
    if codec == "int":
        return codecs.decode_int(raw)
    if codec == "tuple":
        return [_element_to_json(x) for x in codecs.decode_tuple(raw)]
    return _b64(raw)


def key_from_json(codec: str, obj: Any) -> bytes:
    """key_from_json: the encoded key that JSON ``obj`` stands for.

    Raises:
        ShapeError: ``obj`` is not a key of the codec.
    """
    try:
        if codec == "str":
            return codecs.KEY_CODECS["str"].encode(_str_from_json(obj, "a key of a keys='str' store"))
        if codec == "int":
            if not isinstance(obj, int) or isinstance(obj, bool):
                raise ShapeError(f"a key of a keys='int' store is an integer, got {obj!r}")
            return codecs.encode_int(obj)
        if codec == "tuple":
            if not isinstance(obj, list):
                raise ShapeError(f"a key of a keys='tuple' store is an array, got {obj!r}")
            return codecs.encode_tuple(tuple(_element_from_json(e) for e in obj))
    except TypeError as exc:
        raise ShapeError(str(exc)) from None
    return _unb64(obj, "a key")


def key_from_text(codec: str, text: str) -> Optional[bytes]:
    """key_from_text: a command-line key as the codec's encoded key; None for bytes keys (the caller decodes them).

    str keys are the text itself; int keys a decimal integer; tuple keys a
    JSON array.

    Raises:
        ShapeError: text that is not such a key.
    """
    import json

    if codec == "str":
        return key_from_json(codec, text)
    if codec == "int":
        try:
            return codecs.encode_int(int(text))
        except ValueError:
            raise ShapeError(f"a key of a keys='int' store is a decimal integer, got {text!r}") from None
    if codec == "tuple":
        try:
            obj = json.loads(text)
        except ValueError:
            raise ShapeError(f'a key of a keys=\'tuple\' store is a JSON array such as \'["user", 2]\', got {text!r}') from None
        return key_from_json(codec, obj)
    return None


def prefix_range(codec: str, text: str) -> Tuple[bytes, Optional[bytes]]:
    """prefix_range: the encoded range ``--prefix`` text means for the codec (bytes keys: the caller's).

    Raises:
        ShapeError: text that is not a key of the codec, or int keys (no prefixes).
    """
    if codec == "int":
        raise ShapeError("--prefix needs str, bytes or tuple keys; this store has keys='int'")
    raw = key_from_text(codec, text)
    assert raw is not None
    if codec == "tuple":
        return codecs.tuple_prefix_range(codecs.decode_tuple(raw))
    return codecs.byte_prefix_range(raw)


# ---- values ----


def value_to_json(codec: str, raw: bytes) -> Any:
    """value_to_json: the JSON form of an encoded value of codec ``codec`` (a pickle stays base64)."""
    if codec == "str":
        return _str_to_json(codecs.VALUE_CODECS["str"].decode(raw))
    if codec == "json":
        return codecs.VALUE_CODECS["json"].decode(raw)
    if codec == "numpy":
        arr = codecs.VALUE_CODECS["numpy"].decode(raw)
        import numpy as np

        descr = np.lib.format.dtype_to_descr(arr.dtype)
        return {
            "dtype": descr if isinstance(descr, str) else repr(descr),
            "shape": list(arr.shape),
            "data": _b64(arr.tobytes()),
        }
    return _b64(raw)


def value_from_json(codec: str, obj: Any) -> bytes:
    """value_from_json: the encoded value that JSON ``obj`` stands for.

    Raises:
        ShapeError: ``obj`` is not a value of the codec.
    """
    if codec == "str":
        return codecs.VALUE_CODECS["str"].encode(_str_from_json(obj, "a value of a values='str' store"))
    if codec == "json":
        return codecs.VALUE_CODECS["json"].encode(obj)
    if codec == "numpy":
        return _numpy_from_json(obj)
    return _unb64(obj, "a value")


def _numpy_from_json(obj: Any) -> bytes:
    import ast

    import numpy as np

    want = 'a value of a values=\'numpy\' store is {"dtype": ..., "shape": [...], "data": base64}'
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise ShapeError(f"{want}, got {obj!r:.80}")
    shape = obj["shape"]
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ShapeError(f"{want}: shape must be a list of sizes, got {shape!r}")
    descr = obj["dtype"]
    try:
        if not isinstance(descr, str):
            raise TypeError(f"dtype must be a string, got {type(descr).__name__}")
        dtype = np.lib.format.descr_to_dtype(ast.literal_eval(descr)) if descr.startswith("[") else np.dtype(descr)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise ShapeError(f"{want}: bad dtype {descr!r} ({exc})") from None
    data = _unb64(obj["data"], "an array's data")
    count = 1
    for n in shape:
        count *= n
    if len(data) != count * dtype.itemsize:
        raise ShapeError(f"{want}: {len(data)} bytes of data for shape {shape} of {dtype}")
    arr = np.frombuffer(data, dtype, count).reshape(shape) if count and dtype.itemsize else np.empty(shape, dtype)
    return codecs.VALUE_CODECS["numpy"].encode(arr)


def value_from_text(codec: str, text: str) -> Optional[bytes]:
    """value_from_text: a command-line value as the codec's encoded value; None for bytes/pickle/custom (the caller decodes).

    str values are the text itself; json values JSON text; numpy values the
    JSON object of ``value_to_json``.

    Raises:
        ShapeError: text that is not such a value.
    """
    import json

    if codec == "str":
        return value_from_json(codec, text)
    if codec in ("json", "numpy"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise ShapeError(f"a value of a values={codec!r} store is JSON text: {exc}") from None
        return value_from_json(codec, obj)
    return None


def text_of(obj: Any) -> str:
    """text_of: how get and scan print a key or value in JSON form (strings bare, the rest as compact
    JSON); a lone surrogate is printed as its escape, ``\udce9`` (UTF-8 cannot hold it)."""
    import json

    if isinstance(obj, str):
        return escape_surrogates(obj)
    return escape_surrogates(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def dump_line(kcodec: str, vcodec: str, key: bytes, value: bytes) -> str:
    """dump_line: one record as a dump line, ``{"k": ..., "v": ...}`` in the codecs' JSON shapes.

    Valid UTF-8 whatever the store holds: a lone surrogate in a string (a str
    key from os.listdir of a Latin-1 name) is written as its JSON escape,
    which ``load`` reads back as the same string, so the same stored bytes.
    """
    import json

    line = json.dumps({"k": key_to_json(kcodec, key), "v": value_to_json(vcodec, value)}, ensure_ascii=False,
                      separators=(",", ":"))
    return escape_surrogates(line)


def header_line(kcodec: str, vcodec: str) -> str:
    """header_line: the first line of a dump of a store that is not bytes to bytes."""
    import json

    return json.dumps({"codecs": {"keys": kcodec, "values": vcodec}}, separators=(",", ":"))


def parse_header(obj: Any) -> Optional[Tuple[str, str]]:
    """parse_header: (key codec, value codec) if ``obj`` is a dump's header line, else None.

    Raises:
        ShapeError: a header that names no codecs.
    """
    if not isinstance(obj, dict) or "codecs" not in obj:
        return None
    c = obj["codecs"]
    if not isinstance(c, dict) or not isinstance(c.get("keys"), str) or not isinstance(c.get("values"), str):
        raise ShapeError('a dump header is {"codecs": {"keys": name, "values": name}}')
    return c["keys"], c["values"]


__all__: List[str] = [
    "ShapeError",
    "key_to_json",
    "key_from_json",
    "key_from_text",
    "prefix_range",
    "value_to_json",
    "value_from_json",
    "value_from_text",
    "text_of",
    "escape_surrogates",
    "dump_line",
    "header_line",
    "parse_header",
]
