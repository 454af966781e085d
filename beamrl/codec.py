"""The wire codec: msgpack with an allow-list of extension types, never pickle.

Every message between nodes goes through here, so it is both the hot path and the
first thing untrusted bytes meet. Usage::

    frames = codec.encode(["step", np.zeros((84, 84), np.float32)])
    value = codec.decode(frames)                 # raises only CodecError on bad input
    b = codec.packb(value); value = codec.unpackb(b)   # one frame, arrays inline

What travels (anything else is refused at encode time with a ``CodecError`` naming the
type and where in the value it sat, e.g. ``cannot encode <class 'set'> at value[2]``):

=================================  ==============================================
Python value                       comes back as
=================================  ==============================================
None, bool, float, str             the same
int                                int; -2**63 <= i < 2**64, else refused
bytes, bytearray, memoryview       bytes
list / tuple                       list / tuple (tuples are an extension type)
dict                               dict; keys may be any value on this list that is
                                   hashable once decoded (str, int, float, bool,
                                   None, bytes, tuples of those, Pid, Ref, numpy
                                   scalars); others fail at decode with CodecError
``Pid``, ``Ref``                   the same
numpy array, dtype bool, int8..64, numpy array of the same dtype (little-endian),
uint8..64, float16/32/64,          shape and values, C-contiguous. Inline arrays
complex64/128, any shape, 0-d,     are writable copies; out-of-band arrays (see
non-contiguous, either byte order  below) are views on the frame buffer, read-only
                                   when that buffer is (bytes)
numpy scalar of those dtypes       numpy scalar of the same dtype
``beamrl.rl.Exp``                  ``Exp`` (registered here, lazily, to keep layering)
any exception                      the same class with its message when it is a
                                   beamrl error or an allow-listed builtin (see
                                   ``_BUILTIN_EXCEPTIONS``, ``register_exception``);
                                   else its nearest such base class (by the MRO
                                   names it travels with; ``remote_type`` and a
                                   note keep the original name), so a sender-only
                                   ``OutOfStock(Rejected)`` arrives as ``Rejected``;
                                   else ``RemoteError(message, exc_type="mod.Name")``
types added with ``register``      rebuilt by their ``from_data``
=================================  ==============================================

``encode`` sends numpy arrays of at least ``ZERO_COPY_THRESHOLD`` bytes as extra frames
(a memoryview of the array's buffer, copied only when the array is not C-contiguous
little-endian), referenced from the msgpack body by frame index. Do not mutate such an
array until its frames are sent. Exceptions travel as data: the receiver rebuilds them
from a fixed table and never imports a module named in the message.

Decoding is bounded by ``Limits``: sizes and counts are checked before anything is
allocated for them, and every failure (msgpack errors, bad extension data, recursion,
memory) surfaces as ``CodecError``. Non-str map keys are allowed (msgpack's
``strict_map_key`` is off), so maps whose keys share one hash are refused (hash
flooding). Subclasses of allowed types (IntEnum, OrderedDict, NamedTuples other than
Pid/Ref, ndarray subclasses) are refused rather than silently downgraded. msgpack's own
timestamp extension (-1), which beamrl never sends, decodes to an int of nanoseconds.
Extension codes 0-15 belong to this module, 16-63 to beamrl's other layers (spaces),
64-127 to users.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgpack
import numpy as np

from beamrl.errors import (
    AlreadyRegistered,
    Backpressure,
    BeamError,
    CallSelf,
    CallTimeout,
    CodecError,
    NodeDown,
    NoProc,
    NotInProcess,
    ProcessCrashed,
    Rejected,
    RemoteError,
)
from beamrl.pid import Pid, Ref

__all__ = [
    "DEFAULT_LIMITS",
    "ZERO_COPY_THRESHOLD",
    "Codec",
    "Limits",
    "decode",
    "encode",
    "encode_with_head",
    "packb",
    "register",
    "register_exception",
    "unpackb",
]

#: numpy arrays at least this many bytes travel as their own frame in ``encode``
ZERO_COPY_THRESHOLD = 64 * 1024

_MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what ``decode`` accepts; exceeding one raises ``CodecError``.

    Decoded Python objects can take more memory than their encoding (an empty list is
    one byte on the wire, ~60 in memory); the ``max_*_len`` fields bound that.
    """

    max_message_bytes: int = 256 * _MiB
    """Largest total size of all frames of one message (also caps nested payload copies)."""
    max_frames: int = 1025
    """Most frames in one message: the body plus one per out-of-band array."""
    max_array_bytes: int = 256 * _MiB
    """Largest numpy array (shape product times itemsize), inline or out-of-band."""
    max_depth: int = 64
    """Deepest nesting of extension values (tuples, exceptions, Exp, registered types)."""
    max_str_len: int = 64 * _MiB
    """Longest str, in UTF-8 bytes."""
    max_bin_len: int = 256 * _MiB
    """Longest bytes value."""
    max_array_len: int = 16 * _MiB
    """Most items in one list or tuple."""
    max_map_len: int = 4 * _MiB
    """Most entries in one dict."""
    max_ext_len: int = 256 * _MiB
    """Largest extension payload (an inline array, a tuple's encoded items, ...)."""
    max_ndim: int = 32
    """Most dimensions of one numpy array."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if type(v) is not int or v < 1:
                raise ValueError(f"Limits.{f.name} must be a positive int, got {v!r}")
        if self.max_ndim > 64:
            raise ValueError("Limits.max_ndim can be at most 64 (numpy's own limit)")


DEFAULT_LIMITS = Limits()


class Codec(Protocol):
    """The seam the transport codes against; this module satisfies it."""

    def encode(self, obj: Any, *, threshold: int = ...) -> list[bytes | memoryview]: ...

    def decode(self, frames: Sequence[Any], limits: Limits = ...) -> Any: ...


# ---------------------------------------------------------------- extension codes
_ARRAY = 1  # dtype code, ndim, shape (u64 each), raw C-order bytes
_ARRAY_FRAME = 2  # dtype code, ndim, shape, u32 index of the frame holding the bytes
_SCALAR = 3  # dtype code, raw bytes
_TUPLE = 4  # msgpack list of the items
_PID = 5  # i64 id, i64 creation, node name (UTF-8)
_REF = 6  # i64 id, node name (UTF-8)
_EXC = 7  # msgpack [qualified type name, message, [base names], *extra fields]
_EXP = 8  # msgpack [state, action, reward, next_state, terminated, truncated, info]
_FIRST_FREE_CODE = 16

_DTYPES = tuple(
    np.dtype(s)
    for s in (
        "|b1",
        "|i1",
        "<i2",
        "<i4",
        "<i8",
        "|u1",
        "<u2",
        "<u4",
        "<u8",
        "<f2",
        "<f4",
        "<f8",
        "<c8",
        "<c16",
    )
)
_DTYPE_CODE = {d.str: i for i, d in enumerate(_DTYPES)}
_ALLOWED_DTYPES = ", ".join(d.name for d in _DTYPES)
_PID_HEAD = struct.Struct("<qq")
_REF_HEAD = struct.Struct("<q")
_U32 = struct.Struct("<I")
_SHAPES = [struct.Struct(f"<BB{n}Q") for n in range(65)]  # dtype code, ndim, dims


def _ext(code: int, data: bytes) -> msgpack.ExtType:
    """``msgpack.ExtType(code, data)`` without its Python-level argument checks."""
    return tuple.__new__(msgpack.ExtType, (code, data))


class _Refused(Exception):
    """Internal: ``obj`` is not on the allow-list (turned into a CodecError with a path)."""

    def __init__(self, obj: object, hint: str) -> None:
        super().__init__(hint)
        self.obj = obj
        self.hint = hint


def _wire_dtype(obj: Any) -> tuple[int, Any]:
    """The dtype code for an array or numpy scalar, byte-swapped to little-endian if needed."""
    dt = obj.dtype
    code = _DTYPE_CODE.get(dt.str)
    if code is None:
        code = _DTYPE_CODE.get(dt.newbyteorder("<").str)
        if code is None:
            raise _Refused(obj, f"dtype {dt} is not supported (allowed: {_ALLOWED_DTYPES})")
        obj = np.asarray(obj).astype(_DTYPES[code])
    return code, obj


# ---------------------------------------------------------------------- encoding
class _Encoder:
    """A msgpack Packer plus the frame list its ``default`` hook appends arrays to.

    Packers are not re-entrant, so nested values (a tuple's items, to_data results) are
    packed by another encoder taken from ``_POOL``; list.pop/append keep it thread-safe.
    """

    __slots__ = ("frames", "packer", "threshold")

    def __init__(self) -> None:
        self.frames: list[bytes | memoryview] | None = None
        self.threshold = ZERO_COPY_THRESHOLD
        self.packer = msgpack.Packer(default=self.default, use_bin_type=True, strict_types=True, datetime=False)

    def nested(self, value: Any) -> bytes:
        return _pack(value, self.frames, self.threshold)

    def default(self, obj: Any) -> msgpack.ExtType:
        enc = _ENCODERS.get(type(obj))
        if enc is None:
            enc = _slow_encoder(obj)
        return enc(self, obj)


_POOL: list[_Encoder] = []


def _pack(value: Any, frames: list[bytes | memoryview] | None, threshold: int) -> bytes:
    try:
        enc = _POOL.pop()
    except IndexError:
        enc = _Encoder()
    enc.frames = frames
    enc.threshold = threshold
    data: bytes = enc.packer.pack(value)  # on error the encoder is dropped, not pooled
    enc.frames = None
    if len(_POOL) < 64:
        _POOL.append(enc)
    return data


def _enc_array(self: _Encoder, arr: Any) -> msgpack.ExtType:
    shape = arr.shape
    if len(shape) > DEFAULT_LIMITS.max_ndim:
        raise _Refused(arr, f"{len(shape)} dimensions (at most {DEFAULT_LIMITS.max_ndim})")
    code, arr = _wire_dtype(arr)
    head = _SHAPES[len(shape)].pack(code, len(shape), *shape)
    frames = self.frames
    if frames is not None and arr.nbytes >= self.threshold:
        flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        frames.append(flat.data)
        return _ext(_ARRAY_FRAME, head + _U32.pack(len(frames) - 1))
    return _ext(_ARRAY, head + arr.tobytes())


def _enc_scalar(self: _Encoder, x: Any) -> msgpack.ExtType:
    prefix = _SCALAR_PREFIX.get(type(x))
    if prefix is None:  # a byte-swapped scalar
        code, x = _wire_dtype(x)
        prefix = bytes((code,))
    return _ext(_SCALAR, prefix + x.tobytes())


def _enc_tuple(self: _Encoder, t: tuple[Any, ...]) -> msgpack.ExtType:
    return _ext(_TUPLE, self.nested(list(t)))


def _enc_pid(self: _Encoder, p: Pid) -> msgpack.ExtType:
    try:
        return _ext(_PID, _PID_HEAD.pack(p.id, p.creation) + p.node.encode())
    except (struct.error, AttributeError, UnicodeError):
        raise _Refused(p, "a Pid needs a str node and 64-bit int id and creation")


def _enc_ref(self: _Encoder, r: Ref) -> msgpack.ExtType:
    try:
        return _ext(_REF, _REF_HEAD.pack(r.id) + r.node.encode())
    except (struct.error, AttributeError, UnicodeError):
        raise _Refused(r, "a Ref needs a str node and a 64-bit int id")


def _qualname(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _exc_message(exc: BaseException) -> str:
    if len(exc.args) == 1 and type(exc.args[0]) is str:
        return exc.args[0]  # KeyError('k') keeps 'k', not "'k'"
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not make the error itself unsendable
        return f"<unprintable {type(exc).__name__}>"


def _exc_bases(cls: type) -> list[str]:
    """Qualified names of ``cls``'s bases, nearest first, for a receiver that lacks ``cls``."""
    if cls in _CORE_EXCEPTIONS:
        return []  # every receiver knows these
    return [_qualname(b) for b in cls.__mro__[1:] if b not in _GENERIC_BASES][:_MAX_BASES]


def _enc_exception(self: _Encoder, exc: BaseException) -> msgpack.ExtType:
    cls = type(exc)
    fields: list[Any] = [_qualname(cls), _exc_message(exc), _exc_bases(cls)]
    if isinstance(exc, ProcessCrashed):
        fields += [str(exc.exc_type), str(exc.exc_message)]
    elif isinstance(exc, AlreadyRegistered):
        pid = exc.pid
        fields.append(pid if pid is None or type(pid) is Pid else str(pid))
    elif isinstance(exc, RemoteError):
        fields.append(str(exc.exc_type))
    return _ext(_EXC, self.nested(fields))


_ENCODERS: dict[type, Callable[[_Encoder, Any], msgpack.ExtType]] = {
    np.ndarray: _enc_array,
    tuple: _enc_tuple,
    Pid: _enc_pid,
    Ref: _enc_ref,
}
_SCALAR_PREFIX: dict[type, bytes] = {}
for _code, _dt in enumerate(_DTYPES):
    if _dt.isnative:
        _SCALAR_PREFIX[_dt.type] = bytes((_code,))
    _ENCODERS[_dt.type] = _enc_scalar

_PLAIN = (bool, int, float, str, bytes, bytearray, list, tuple, dict)


def _slow_encoder(obj: Any) -> Callable[[_Encoder, Any], msgpack.ExtType]:
    """Encoder for a type not in ``_ENCODERS`` yet, or raise ``_Refused``."""
    cls = type(obj)
    if isinstance(obj, np.generic):
        code, _ = _wire_dtype(obj)  # refuses object, str, datetime, void ... scalars
        if obj.dtype.str in _DTYPE_CODE:
            _SCALAR_PREFIX[cls] = bytes((code,))
        _ENCODERS[cls] = _enc_scalar
        return _enc_scalar
    if isinstance(obj, BaseException):
        return _enc_exception
    if _load_lazy_types():
        enc = _ENCODERS.get(cls)
        if enc is not None:
            return enc
    if cls is int:  # msgpack hands over ints it cannot pack
        hint = "ints must lie in -2**63 .. 2**64-1"
    elif isinstance(obj, np.ndarray):
        hint = "numpy array subclasses are not sent; pass np.asarray(x)"
    elif isinstance(obj, (set, frozenset)):
        hint = "convert it to a list or tuple"
    elif isinstance(obj, _PLAIN):
        base = next(b for b in _PLAIN if isinstance(obj, b))
        hint = f"convert it to a plain {base.__name__}"
    else:
        hint = "register it with beamrl.codec.register(code, cls, to_data, from_data)"
    raise _Refused(obj, hint)


def _encode_top(obj: Any, frames: list[bytes | memoryview] | None, threshold: int) -> bytes:
    try:
        return _pack(obj, frames, threshold)
    except _Refused as e:
        bad = e.obj
        where = _find_path(obj, lambda x: x is bad)
        raise CodecError(f"cannot encode {type(bad)!r} at {where}: {e.hint}") from None
    except OverflowError:
        where = _find_path(obj, lambda x: type(x) is int and not -(2**63) <= x < 2**64)
        raise CodecError(f"cannot encode an int at {where}: outside the 64-bit range") from None
    except CodecError:
        raise
    except RecursionError as e:
        raise CodecError("cannot encode value: nested too deeply") from e
    except Exception as e:  # a user's to_data, a non-contiguous memoryview, a lone surrogate
        if isinstance(e, ValueError) and "recursion limit" in str(e):  # msgpack's own
            raise CodecError("cannot encode value: nested too deeply or cyclic") from e
        raise CodecError(f"cannot encode value: {type(e).__name__}: {e}") from e


def _find_path(root: Any, match: Callable[[Any], bool]) -> str:
    """Where in ``root`` the first value satisfying ``match`` sits (error path only)."""
    stack: list[tuple[Any, str]] = [(root, "value")]
    seen: set[int] = set()
    while stack:
        value, path = stack.pop()
        if match(value):
            return path
        if id(value) in seen:
            continue
        seen.add(id(value))
        children: list[tuple[Any, str]] = []
        if type(value) in (list, tuple):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(value)]
        elif type(value) is dict:
            for k, v in value.items():
                children += [(k, f"{path} key {k!r}"), (v, f"{path}[{k!r}]")]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                children.append((getattr(value, f.name), f"{path}.{f.name}"))
        stack.extend(reversed(children))
    return "value"


def encode(obj: Any, *, threshold: int = ZERO_COPY_THRESHOLD) -> list[bytes | memoryview]:
    """Encode ``obj`` as frames: the msgpack body, then one frame per large numpy array.

    Arrays of at least ``threshold`` bytes travel as memoryviews of their buffer (no copy
    when C-contiguous little-endian); keep them unchanged until the frames are sent.
    """
    frames: list[bytes | memoryview] = [b""]
    frames[0] = _encode_top(obj, frames, threshold)
    return frames


def encode_with_head(head: bytes, obj: Any, *, threshold: int = ZERO_COPY_THRESHOLD) -> list[bytes | memoryview]:
    """``encode`` for a value whose first msgpack items are already packed in ``head``.

    msgpack is a stream format, so ``head + packb(x)`` is one valid body when ``head``
    holds an array header and all items but the last: ``encode_with_head(b"\\x92" +
    packb("cast"), x)`` equals ``encode(["cast", x])``. Senders use it to keep the packed
    bytes of fixed message parts (kinds, pids, names) instead of packing them each time.
    """
    frames: list[bytes | memoryview] = [b""]
    frames[0] = head + _encode_top(obj, frames, threshold)
    return frames


def packb(obj: Any) -> bytes:
    """Encode ``obj`` as one bytes object, arrays inline."""
    return _encode_top(obj, None, 0)


# ---------------------------------------------------------------------- decoding
def _dict_from_pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """Build a dict, refusing maps whose keys were crafted to share one hash.

    str hashes are salted per process, but int, float, tuple and Pid hashes are not:
    20k tuple keys with one hash take seconds to insert (hash flooding). Distinct
    Python keys almost never share a hash, and duplicate keys are malformed anyway.
    """
    if len(pairs) > 8:
        keys = [k for k, _ in pairs if type(k) is not str]
        if len(keys) - len(set(map(hash, keys))) > 8:
            raise CodecError("map keys with colliding hashes (or repeated keys)")
    return dict(pairs)


_NO_FRAMES: list[memoryview] = []
_PIDS: dict[bytes, Pid] = {}  # encoded Pid -> Pid: the same few pids arrive again and again
_PIDS_MAX = 4096
_NO_FRAMES_USED = bytearray()


class _Decoder:
    """The state of one ``decode``: frames, limits, depth and copy budget."""

    __slots__ = ("budget", "depth", "frames", "limits", "used")

    def __init__(self, frames: list[memoryview], limits: Limits) -> None:
        self.frames = frames
        self.limits = limits
        self.depth = 0
        self.budget = limits.max_message_bytes
        self.used = _NO_FRAMES_USED

    def unpack(self, data: Any) -> Any:
        lim = self.limits
        return msgpack.unpackb(
            data,
            ext_hook=self.ext_hook,
            object_pairs_hook=_dict_from_pairs,
            strict_map_key=False,
            timestamp=2,  # msgpack's own timestamp ext (never sent by beamrl) -> int ns
            max_str_len=lim.max_str_len,
            max_bin_len=lim.max_bin_len,
            max_array_len=lim.max_array_len,
            max_map_len=lim.max_map_len,
            max_ext_len=lim.max_ext_len,
        )

    def nested(self, data: bytes) -> Any:
        self.budget -= len(data)  # nested payloads are copies: bound their sum
        if self.budget < 0:
            raise CodecError("nested payloads exceed max_message_bytes")
        if self.depth >= self.limits.max_depth:
            raise CodecError(f"values nested deeper than max_depth={self.limits.max_depth}")
        self.depth += 1
        try:
            return self.unpack(data)
        finally:
            self.depth -= 1

    def ext_hook(self, code: int, data: bytes) -> Any:
        if code in (_ARRAY, _ARRAY_FRAME):
            return self.array(data, code == _ARRAY_FRAME)
        if code == _SCALAR:
            if not data or data[0] >= len(_DTYPES) or len(data) != 1 + _DTYPES[data[0]].itemsize:
                raise CodecError("malformed numpy scalar")
            return np.frombuffer(data, _DTYPES[data[0]], 1, 1)[0]
        if code == _TUPLE:
            items = self.nested(data)
            if type(items) is not list:
                raise CodecError("malformed tuple")
            return tuple(items)
        if code == _PID:
            pid = _PIDS.get(data)
            if pid is None:
                if len(data) < 16:
                    raise CodecError("malformed Pid")
                pid_id, creation = _PID_HEAD.unpack_from(data)
                pid = Pid._make((data[16:].decode(), pid_id, creation))
                if len(_PIDS) >= _PIDS_MAX:
                    _PIDS.clear()
                _PIDS[data] = pid
            return pid
        if code == _REF:
            if len(data) < 8:
                raise CodecError("malformed Ref")
            return Ref._make((data[8:].decode(), _REF_HEAD.unpack_from(data)[0]))
        if code == _EXC:
            return _dec_exception(self.nested(data))
        entry = _BY_CODE.get(code)
        if entry is None and _load_lazy_types():
            entry = _BY_CODE.get(code)
        if entry is None:
            raise CodecError(f"unknown extension type code {code}")
        value = self.nested(data)
        try:
            return entry[2](value)
        except (ValueError, TypeError) as e:
            raise CodecError(f"bad {entry[0].__name__} data: {e}") from e

    def array(self, data: bytes, framed: bool) -> Any:
        if len(data) < 2 or data[0] >= len(_DTYPES):
            raise CodecError("malformed numpy array header")
        dtype, ndim = _DTYPES[data[0]], data[1]
        if ndim > self.limits.max_ndim:
            raise CodecError(f"array with {ndim} dimensions exceeds max_ndim")
        end = 2 + 8 * ndim
        if len(data) < end:
            raise CodecError("truncated numpy array header")
        shape = _SHAPES[ndim].unpack_from(data)[2:]
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if nbytes > self.limits.max_array_bytes:
            raise CodecError(f"array of {nbytes} bytes exceeds max_array_bytes")
        if not framed:
            if len(data) - end != nbytes:
                raise CodecError("numpy array data does not match its shape")
            if count == 0:
                return np.empty(shape, dtype)
            self.budget -= nbytes
            if self.budget < 0:
                raise CodecError("inline arrays exceed max_message_bytes")
            return np.array(np.ndarray(shape, dtype, data, end))  # a writable copy
        if len(data) != end + 4:
            raise CodecError("malformed out-of-band array reference")
        index = _U32.unpack_from(data, end)[0]
        if not 0 < index < len(self.frames):
            n = len(self.frames) or 1
            raise CodecError(f"array refers to frame {index}, message has {n}")
        if self.used[index]:
            raise CodecError(f"frame {index} is referenced twice")
        self.used[index] = 1
        buf = self.frames[index]
        if buf.nbytes != nbytes:
            raise CodecError(f"frame {index} holds {buf.nbytes} bytes, its array needs {nbytes}")
        return np.ndarray(shape, dtype, buf)


def _as_bytes_view(frame: Any) -> memoryview:
    view = memoryview(frame)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


def decode(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode ``encode``'s frames (bytes, memoryviews, zmq.Frames: any buffer).

    Raises only ``CodecError``. Out-of-band arrays are views on their frame.
    """
    if type(frames) is list and len(frames) == 1:  # the common case: one body
        try:
            return _decode_body(frames[0], limits)
        except CodecError:
            raise
        except Exception as e:
            raise _wrap(e) from e
    if isinstance(frames, (bytes, bytearray, memoryview, str)):
        raise CodecError("decode() takes a sequence of frames; use unpackb() for one bytes object")
    try:
        n = len(frames)
        if n == 1:
            return _decode_body(frames[0], limits)
        if n == 0 or n > limits.max_frames:
            raise CodecError(f"message has {n} frames (1 to max_frames={limits.max_frames})")
        views = [_as_bytes_view(f) for f in frames]
        size = sum(v.nbytes for v in views)
        if size > limits.max_message_bytes:
            raise CodecError(f"message of {size} bytes exceeds max_message_bytes")
        dec = _Decoder(views, limits)
        dec.used = bytearray(n)
        value = dec.unpack(views[0])
        if dec.used.count(0) != 1:  # every frame but the body is referenced once
            raise CodecError(f"message has {n} frames, the body refers to fewer")
        return value
    except CodecError:
        raise
    except Exception as e:  # untrusted input: msgpack, numpy, Unicode, Memory, Recursion
        raise _wrap(e) from e


def unpackb(data: Any, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode one ``packb`` buffer; raises only ``CodecError``."""
    try:
        return _decode_body(data, limits)
    except CodecError:
        raise
    except Exception as e:
        raise _wrap(e) from e


def _decode_body(body: Any, limits: Limits) -> Any:
    if type(body) is not bytes:
        body = _as_bytes_view(body)
        size = body.nbytes
    else:
        size = len(body)
    if size > limits.max_message_bytes:
        raise CodecError(f"message of {size} bytes exceeds max_message_bytes")
    return _Decoder(_NO_FRAMES, limits).unpack(body)


def _wrap(e: BaseException) -> CodecError:
    return CodecError(f"cannot decode message: {type(e).__name__}: {str(e)[:200]}")


# ----------------------------------------------------------- exceptions as data
_BUILTIN_EXCEPTIONS: tuple[type[BaseException], ...] = (
    Exception, ArithmeticError, AssertionError, AttributeError, BufferError, EOFError,
    FloatingPointError, IndexError, KeyError, LookupError, MemoryError, NameError,
    NotImplementedError, OverflowError, RecursionError, RuntimeError, TimeoutError,
    TypeError, UnboundLocalError, ValueError, ZeroDivisionError, OSError, ConnectionError,
    BrokenPipeError, ConnectionAbortedError, ConnectionRefusedError, ConnectionResetError,
    FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError,
    NotADirectoryError,
)  # fmt: skip
_EXCEPTIONS: dict[str, type[BaseException]] = {
    _qualname(c): c
    for c in (
        *_BUILTIN_EXCEPTIONS,
        *(BeamError, CallTimeout, NoProc, ProcessCrashed, Rejected, NodeDown),
        *(AlreadyRegistered, CallSelf, NotInProcess, Backpressure, CodecError, RemoteError),
    )
}


_CORE_EXCEPTIONS = frozenset(_EXCEPTIONS.values())
# too general to stand for a class the receiver lacks: such errors arrive as RemoteError,
# which is a BeamError and says what the original class was
_GENERIC_BASES = frozenset((object, BaseException, Exception, BeamError))
_MAX_BASES = 16


def register_exception(cls: type[BaseException]) -> None:
    """Let ``cls`` be rebuilt at decode as ``cls(message)`` instead of a RemoteError."""
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        raise TypeError(f"register_exception needs an Exception subclass, got {cls!r}")
    _EXCEPTIONS[_qualname(cls)] = cls


def _dec_exception(v: Any) -> BaseException:
    if type(v) is not list or len(v) < 2 or type(v[0]) is not str or type(v[1]) is not str:
        raise CodecError("malformed exception")
    name, message = v[0], v[1]
    if len(v) > 2 and type(v[2]) is list:
        bases, extra = v[2], v[3:]
        if len(bases) > _MAX_BASES or not all(type(b) is str for b in bases):
            raise CodecError("malformed exception bases")
    else:
        bases, extra = [], v[2:]
    cls = _EXCEPTIONS.get(name)
    remote_type = None
    if cls is None:
        # the nearest base this side knows (by name only: nothing is imported), so
        # `except Rejected` catches a subclass that only the sender defines
        cls = next((c for c in map(_EXCEPTIONS.get, bases) if c is not None and c not in _GENERIC_BASES), None)
        if cls is None:
            return RemoteError(message, exc_type=name)
        remote_type = name
    exc = _build_exception(cls, message, extra)
    if remote_type is not None:
        exc.remote_type = remote_type  # type: ignore[attr-defined]
        exc.add_note(f"raised on the remote node as {remote_type}")
    return exc


def _build_exception(cls: type[BaseException], message: str, extra: list[Any]) -> BaseException:
    if cls is ProcessCrashed or cls is RemoteError:
        if not all(type(x) is str for x in extra) or len(extra) != (2 if cls is ProcessCrashed else 1):
            raise CodecError(f"malformed {cls.__name__}")
        return cls(message, *extra)
    if cls is AlreadyRegistered:
        if len(extra) != 1 or not (extra[0] is None or type(extra[0]) in (Pid, str)):
            raise CodecError("malformed AlreadyRegistered")
        return AlreadyRegistered(message, extra[0])
    return cls(message)


# ------------------------------------------------------------ registered types
_BY_CODE: dict[int, tuple[type, Callable[[Any], Any], Callable[[Any], Any]]] = {}


def register(code: int, cls: type, to_data: Callable[[Any], Any], from_data: Callable[[Any], Any]) -> None:
    """Let instances of exactly ``cls`` travel as extension type ``code`` (16..127).

    ``to_data(obj)`` returns a codec-encodable value (encoded recursively);
    ``from_data(value)`` rebuilds the object and raises ValueError/TypeError on bad data.
    Registering the same class (by qualified name) again replaces its functions.
    """
    if type(code) is not int or not _FIRST_FREE_CODE <= code <= 127:
        raise ValueError(f"extension code must be an int in {_FIRST_FREE_CODE}..127, got {code!r}")
    _register(code, cls, to_data, from_data)


def _register(code: int, cls: type, to_data: Callable[[Any], Any], from_data: Callable[[Any], Any]) -> None:
    builtin = cls in _PLAIN or cls is type(None) or cls in _ENCODERS
    if not isinstance(cls, type) or (builtin and cls not in _registered_classes()):
        raise ValueError(f"{cls!r} cannot be registered: it is not a class or is built in")
    old = _BY_CODE.get(code)
    if old is not None and _qualname(old[0]) != _qualname(cls):
        raise ValueError(f"extension code {code} is already registered for {old[0]!r}")
    for other, (c, _, _) in _BY_CODE.items():
        if c is cls and other != code:
            raise ValueError(f"{cls!r} is already registered with code {other}")
    if old is not None:
        _ENCODERS.pop(old[0], None)
    _BY_CODE[code] = (cls, to_data, from_data)

    def enc(self: _Encoder, obj: Any) -> msgpack.ExtType:
        return _ext(code, self.nested(to_data(obj)))

    _ENCODERS[cls] = enc


def _registered_classes() -> set[type]:
    return {c for c, _, _ in _BY_CODE.values()}


def _unregister(code: int) -> None:
    """Test helper: forget extension ``code``."""
    entry = _BY_CODE.pop(code, None)
    if entry is not None:
        _ENCODERS.pop(entry[0], None)


_lazy_loaded = False


def _load_lazy_types() -> bool:
    """Register Exp and the rl errors on first need; True the first time it ran."""
    global _lazy_loaded
    if _lazy_loaded:
        return False
    from beamrl.rl import errors as rl_errors
    from beamrl.rl.exp import Exp

    def exp_from_data(v: Any) -> Exp:
        if type(v) is not list or len(v) != 7 or type(v[6]) is not dict:
            raise ValueError("an Exp is a list of 7 fields ending with the info dict")
        return Exp(*v)

    def exp_to_data(e: Exp) -> list[Any]:
        return [e.state, e.action, e.reward, e.next_state, e.terminated, e.truncated, e.info]

    _register(_EXP, Exp, exp_to_data, exp_from_data)
    from beamrl.wire_types import register_all

    register_all()
    for obj in vars(rl_errors).values():
        if isinstance(obj, type) and issubclass(obj, Exception):
            register_exception(obj)
    _lazy_loaded = True
    return True
