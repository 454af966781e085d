"""The table of extension types: which class travels under which msgpack extension code.

Two kinds of entries, both looked up by exact class on encode and by code on decode:

- **value types** (``register``): ``to_data(obj)`` gives a codec-encodable value that is
  encoded recursively; ``from_data(value)`` rebuilds the object. Users and most layers
  use these (spaces, ``Exp``, ``ChildInfo``).
- **byte types** (``register_bytes``): ``to_bytes(obj)``/``from_bytes(data)`` for small,
  hot values with a fixed layout (``Pid``, ``Ref``), skipping the nested msgpack.

Codes: 1-15 are the codec's and the core layers' (1-4 and 7 are taken by arrays,
scalars, tuples and exceptions; 5 Pid, 6 Ref, 8 Exp), 16-63 belong to beamrl's other
layers, 64-127 to users.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgpack

# the codec's own codes (the rest of 1..15 is handed out with ``register_core``)
ARRAY = 1  # dtype code, ndim, shape (u64 each), raw C-order bytes
ARRAY_FRAME = 2  # dtype code, ndim, shape, u32 index of the frame holding the bytes
SCALAR = 3  # dtype code, raw bytes
TUPLE = 4  # msgpack list of the items
EXC = 7  # msgpack [qualified type name, message, [base names], *extra fields]
_CODEC_CODES = frozenset((ARRAY, ARRAY_FRAME, SCALAR, TUPLE, EXC))
FIRST_FREE_CODE = 16

#: types msgpack packs itself; they (and their subclasses) cannot be registered
PLAIN = (bool, int, float, str, bytes, bytearray, list, tuple, dict)


class Packer(Protocol):
    """What an encode function gets: a way to encode a nested value with the same frames."""

    def nested(self, value: Any) -> bytes: ...


EncodeFn = Callable[[Any, Any], msgpack.ExtType]  # (packer, obj) -> ExtType


class Refused(Exception):
    """Internal: ``obj`` is not on the allow-list (turned into a CodecError with a path)."""

    def __init__(self, obj: object, hint: str) -> None:
        super().__init__(hint)
        self.obj = obj
        self.hint = hint


def ext(code: int, data: bytes) -> msgpack.ExtType:
    """``msgpack.ExtType(code, data)`` without its Python-level argument checks."""
    return tuple.__new__(msgpack.ExtType, (code, data))


#: exact class -> its encode function (arrays, scalars, tuples, then every registered type)
ENCODERS: dict[type, EncodeFn] = {}
#: code -> (class, is a byte type, from_data or from_bytes)
BY_CODE: dict[int, tuple[type, bool, Callable[[Any], Any]]] = {}


def register(code: int, cls: type, to_data: Callable[[Any], Any], from_data: Callable[[Any], Any]) -> None:
    """Let instances of exactly ``cls`` travel as extension type ``code`` (16..127).

    ``to_data(obj)`` returns a codec-encodable value (encoded recursively);
    ``from_data(value)`` rebuilds the object and raises ValueError/TypeError on bad data;
    it may run on a worker thread (a node decodes big messages off its event loop), so
    it must not touch the event loop or state shared without a lock.
    Registering the same class (by qualified name) again replaces its functions.
    """
    if type(code) is not int or not FIRST_FREE_CODE <= code <= 127:
        raise ValueError(f"extension code must be an int in {FIRST_FREE_CODE}..127, got {code!r}")
    _add(code, cls, to_data, from_data)


def register_core(code: int, cls: type, to_data: Callable[[Any], Any], from_data: Callable[[Any], Any]) -> None:
    """``register`` for the core layers' reserved codes (1..15 not taken by the codec)."""
    _check_core_code(code)
    _add(code, cls, to_data, from_data)


def register_bytes(code: int, cls: type, to_bytes: Callable[[Any], bytes], from_bytes: Callable[[bytes], Any]) -> None:
    """Register a core type with a fixed byte layout (code 1..15 not taken by the codec).

    ``to_bytes`` raises ValueError (its message is shown) for an instance it cannot
    encode; ``from_bytes`` raises ValueError for bad data.
    """
    _check_core_code(code)
    name = cls.__name__

    def enc(packer: Any, obj: Any) -> msgpack.ExtType:
        try:
            return ext(code, to_bytes(obj))
        except ValueError as e:
            raise Refused(obj, str(e)) from None
        except Exception as e:  # struct.error, UnicodeError, AttributeError from a malformed instance
            raise Refused(obj, f"not a valid {name}: {e}") from None

    _claim(code, cls)
    BY_CODE[code] = (cls, True, from_bytes)
    ENCODERS[cls] = enc


def _check_core_code(code: int) -> None:
    if type(code) is not int or not 1 <= code < FIRST_FREE_CODE or code in _CODEC_CODES:
        raise ValueError(f"core extension codes are 1..15 except {sorted(_CODEC_CODES)}, got {code!r}")


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _claim(code: int, cls: type) -> None:
    """Check ``code`` and ``cls`` may be paired; forget ``code``'s previous class."""
    registered = {c for c, _, _ in BY_CODE.values()}
    builtin = cls in PLAIN or cls is type(None) or cls in ENCODERS
    if not isinstance(cls, type) or (builtin and cls not in registered):
        raise ValueError(f"{cls!r} cannot be registered: it is not a class or is built in")
    old = BY_CODE.get(code)
    if old is not None and _qualname(old[0]) != _qualname(cls):
        raise ValueError(f"extension code {code} is already registered for {old[0]!r}")
    for other, (c, _, _) in BY_CODE.items():
        if c is cls and other != code:
            raise ValueError(f"{cls!r} is already registered with code {other}")
    if old is not None:
        ENCODERS.pop(old[0], None)


def _add(code: int, cls: type, to_data: Callable[[Any], Any], from_data: Callable[[Any], Any]) -> None:
    _claim(code, cls)
    BY_CODE[code] = (cls, False, from_data)

    def enc(packer: Any, obj: Any) -> msgpack.ExtType:
        return ext(code, packer.nested(to_data(obj)))

    ENCODERS[cls] = enc
