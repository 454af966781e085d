"""Encoding and decoding: the msgpack packer/unpacker with the extension hooks.

``encode``/``decode`` work on frames (the msgpack body, then one frame per large numpy
array); ``packb``/``unpackb`` on one bytes object with arrays inline. Which types travel
is decided by the tables in ``registry`` (filled by ``arrays``, ``exceptions`` and every
layer that registers its own types); this module only drives msgpack, bounds decoding by
``Limits`` and turns every failure into a ``CodecError`` that says where the bad value sat.

A little past the ~400-line aim: the decode budget's hooks must sit beside the unpacker
they bound, so one reader can check that no path decodes without them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import numpy as np

from beamrl.codec.arrays import dec_array, dec_scalar, scalar_encoder
from beamrl.codec.errors import CodecError
from beamrl.codec.exceptions import dec_exception, enc_exception
from beamrl.codec.limits import DEFAULT_LIMITS, ZERO_COPY_THRESHOLD, Limits
from beamrl.codec.registry import (
    ARRAY,
    ARRAY_FRAME,
    BY_CODE,
    ENCODERS,
    EXC,
    PLAIN,
    SCALAR,
    TUPLE,
    EncodeFn,
    Refused,
    ext,
)


def _enc_tuple(packer: _Encoder, t: tuple[Any, ...]) -> msgpack.ExtType:
    return ext(TUPLE, packer.nested(list(t)))


ENCODERS[tuple] = _enc_tuple


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
        enc = ENCODERS.get(type(obj))
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


def _slow_encoder(obj: Any) -> EncodeFn:
    """Encoder for a type not in ``_ENCODERS`` yet, or raise ``Refused``."""
    cls = type(obj)
    if isinstance(obj, np.generic):
        return scalar_encoder(obj)
    if isinstance(obj, BaseException):
        return enc_exception
    if cls is int:  # msgpack hands over ints it cannot pack
        hint = "ints must lie in -2**63 .. 2**64-1"
    elif isinstance(obj, np.ndarray):
        hint = "numpy array subclasses are not sent; pass np.asarray(x)"
    elif isinstance(obj, (set, frozenset)):
        hint = "convert it to a list or tuple"
    elif isinstance(obj, PLAIN):
        base = next(b for b in PLAIN if isinstance(obj, b))
        hint = f"convert it to a plain {base.__name__}"
    else:
        hint = "register it with beamrl.codec.register(code, cls, to_data, from_data)"
    raise Refused(obj, hint)


def _encode_top(obj: Any, frames: list[bytes | memoryview] | None, threshold: int) -> bytes:
    try:
        return _pack(obj, frames, threshold)
    except Refused as e:
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
_NO_FRAMES_USED = bytearray()


def object_budget(body_bytes: int, limits: Limits) -> int:
    """How many objects a message whose msgpack body has ``body_bytes`` may decode into."""
    return min(limits.max_objects, limits.object_allowance + body_bytes // limits.bytes_per_object)


class _Decoder:
    """The state of one ``decode``: frames, limits, depth, copy budget and object budget.

    The object budget is what bounds memory per input byte: msgpack's own limits are
    per container, and an empty list is 1 byte on the wire but 64 in memory. Each list
    and dict counts itself plus its items (keys and values), counted by hooks msgpack
    calls as each container completes, so containers, the costly values, count twice.
    No container may announce more items than the budget has left, so a refused message
    never gets far beyond its budget either. Each value takes at least one byte of the
    body, so the count is at most twice the body size: a body no longer than half its
    budget cannot exceed it and skips the hooks.
    """

    __slots__ = ("budget", "depth", "frames", "left", "limits", "size", "used")

    def __init__(self, frames: list[memoryview], limits: Limits, size: int) -> None:
        self.frames = frames
        self.limits = limits
        self.depth = 0
        self.budget = limits.max_message_bytes
        self.used = _NO_FRAMES_USED
        self.size = size
        budget = limits.object_allowance + size // limits.bytes_per_object
        if budget > limits.max_objects:
            budget = limits.max_objects
        self.left = -1 if 2 * size <= budget else budget  # -1: the hooks are not needed

    def unpack(self, data: Any) -> Any:
        lim = self.limits
        left = self.left
        if left < 0:  # a small body: cannot exceed its object budget
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
        try:
            return msgpack.unpackb(
                data,
                ext_hook=self.ext_hook,
                list_hook=self.list_hook,
                object_pairs_hook=self.pairs_hook,
                strict_map_key=False,
                timestamp=2,
                max_str_len=lim.max_str_len,
                max_bin_len=lim.max_bin_len,
                max_array_len=min(left, lim.max_array_len),
                max_map_len=min(left // 2, lim.max_map_len),
                max_ext_len=lim.max_ext_len,
            )
        except ValueError as e:  # a container announced more items than the budget has left
            text = str(e)
            if (f"max_array_len({left})" in text and left < lim.max_array_len) or (
                f"max_map_len({left // 2})" in text and left // 2 < lim.max_map_len
            ):
                self._too_many()
            raise

    def list_hook(self, items: list[Any]) -> list[Any]:
        self.left -= len(items) + 1
        if self.left < 0:
            self._too_many()
        return items

    def pairs_hook(self, pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        self.left -= 2 * len(pairs) + 1
        if self.left < 0:
            self._too_many()
        return _dict_from_pairs(pairs)

    def _too_many(self) -> None:
        budget = object_budget(self.size, self.limits)
        raise CodecError(
            f"a message of {self.size} bytes decodes into more than {budget} objects "
            "(Limits.object_allowance + body bytes // bytes_per_object, at most max_objects): "
            "send bulk data as numpy arrays, not as lists of many small values"
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
        entry = BY_CODE.get(code)  # registered types first: Pids are in nearly every message
        if entry is not None:
            cls, raw, rebuild = entry
            try:
                return rebuild(data) if raw else rebuild(self.nested(data))
            except (ValueError, TypeError) as e:
                raise CodecError(f"bad {cls.__name__} data: {e}") from e
        if code == TUPLE:
            items = self.nested(data)
            if type(items) is not list:
                raise CodecError("malformed tuple")
            return tuple(items)
        if code in (ARRAY, ARRAY_FRAME):
            return dec_array(self, data, code == ARRAY_FRAME)
        if code == SCALAR:
            return dec_scalar(data)
        if code == EXC:
            return dec_exception(self.nested(data))
        hint = " (beamrl's rl types register when beamrl.rl is imported)" if code < 64 else ""
        raise CodecError(f"unknown extension type code {code}{hint}")


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
        dec = _Decoder(views, limits, views[0].nbytes)
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


_HEAD_BYTES = 4096


def unpack_head(body: Any, count: int) -> list[Any]:
    """The first ``count`` items of a body holding a msgpack array, leaving the rest alone.

    For answering a message that cannot be decoded whole: a call refused for its size
    still says, in its first items, who waits for the answer. Only the first 4 KB are
    read; raises ``CodecError`` when they do not hold ``count`` items.
    """
    try:
        view = _as_bytes_view(body)[:_HEAD_BYTES]
        dec = _Decoder(_NO_FRAMES, DEFAULT_LIMITS, view.nbytes)
        unpacker = msgpack.Unpacker(
            ext_hook=dec.ext_hook,
            object_pairs_hook=_dict_from_pairs,
            strict_map_key=False,
            max_buffer_size=_HEAD_BYTES,
            max_array_len=_HEAD_BYTES,
            max_map_len=_HEAD_BYTES,
        )
        unpacker.feed(view)
        if unpacker.read_array_header() < count:
            raise CodecError(f"the message holds fewer than {count} items")
        return [unpacker.unpack() for _ in range(count)]
    except CodecError:
        raise
    except Exception as e:  # OutOfData, bad msgpack: the head cannot be read
        raise _wrap(e) from e


def _decode_body(body: Any, limits: Limits) -> Any:
    if type(body) is not bytes:
        body = _as_bytes_view(body)
        size = body.nbytes
    else:
        size = len(body)
    if size > limits.max_message_bytes:
        raise CodecError(f"message of {size} bytes exceeds max_message_bytes")
    return _Decoder(_NO_FRAMES, limits, size).unpack(body)


def _wrap(e: BaseException) -> CodecError:
    return CodecError(f"cannot decode message: {type(e).__name__}: {str(e)[:200]}")
