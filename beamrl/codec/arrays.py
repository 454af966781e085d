"""numpy arrays and scalars on the wire: the dtype table, inline and out-of-band arrays.

An array is a header (dtype code, ndim, shape) followed by its C-order little-endian
bytes, either inline in the extension payload or, for ``encode`` and arrays of at least
the threshold, in a frame of its own that the header names by index (zero-copy).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import numpy as np

from beamrl.codec.errors import CodecError
from beamrl.codec.limits import DEFAULT_LIMITS
from beamrl.codec.registry import ARRAY, ARRAY_FRAME, ENCODERS, SCALAR, Refused, ext

DTYPES = tuple(
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
_DTYPE_CODE = {d.str: i for i, d in enumerate(DTYPES)}
_ALLOWED_DTYPES = ", ".join(d.name for d in DTYPES)
_U32 = struct.Struct("<I")
_SHAPES = [struct.Struct(f"<BB{n}Q") for n in range(65)]  # dtype code, ndim, dims
_SCALAR_PREFIX: dict[type, bytes] = {}


def _wire_dtype(obj: Any) -> tuple[int, Any]:
    """The dtype code for an array or numpy scalar, byte-swapped to little-endian if needed."""
    dt = obj.dtype
    code = _DTYPE_CODE.get(dt.str)
    if code is None:
        code = _DTYPE_CODE.get(dt.newbyteorder("<").str)
        if code is None:
            raise Refused(obj, f"dtype {dt} is not supported (allowed: {_ALLOWED_DTYPES})")
        obj = np.asarray(obj).astype(DTYPES[code])
    return code, obj


def enc_array(packer: Any, arr: Any) -> msgpack.ExtType:
    shape = arr.shape
    if len(shape) > DEFAULT_LIMITS.max_ndim:
        raise Refused(arr, f"{len(shape)} dimensions (at most {DEFAULT_LIMITS.max_ndim})")
    code, arr = _wire_dtype(arr)
    head = _SHAPES[len(shape)].pack(code, len(shape), *shape)
    frames = packer.frames
    if frames is not None and arr.nbytes >= packer.threshold:
        flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        frames.append(flat.data)
        return ext(ARRAY_FRAME, head + _U32.pack(len(frames) - 1))
    return ext(ARRAY, head + arr.tobytes())


def enc_scalar(packer: Any, x: Any) -> msgpack.ExtType:
    prefix = _SCALAR_PREFIX.get(type(x))
    if prefix is None:  # a byte-swapped scalar
        code, x = _wire_dtype(x)
        prefix = bytes((code,))
    return ext(SCALAR, prefix + x.tobytes())


def scalar_encoder(obj: Any) -> Any:
    """The encode function for a numpy scalar type met for the first time (or Refused)."""
    code, _ = _wire_dtype(obj)  # refuses object, str, datetime, void ... scalars
    if obj.dtype.str in _DTYPE_CODE:
        _SCALAR_PREFIX[type(obj)] = bytes((code,))
    ENCODERS[type(obj)] = enc_scalar
    return enc_scalar


ENCODERS[np.ndarray] = enc_array
for _code, _dt in enumerate(DTYPES):
    if _dt.isnative:
        _SCALAR_PREFIX[_dt.type] = bytes((_code,))
    ENCODERS[_dt.type] = enc_scalar


def dec_scalar(data: bytes) -> Any:
    if not data or data[0] >= len(DTYPES) or len(data) != 1 + DTYPES[data[0]].itemsize:
        raise CodecError("malformed numpy scalar")
    return np.frombuffer(data, DTYPES[data[0]], 1, 1)[0]


def dec_array(dec: Any, data: bytes, framed: bool) -> Any:
    """Rebuild an array; ``dec`` is the running decoder (limits, frames, copy budget)."""
    limits = dec.limits
    if len(data) < 2 or data[0] >= len(DTYPES):
        raise CodecError("malformed numpy array header")
    dtype, ndim = DTYPES[data[0]], data[1]
    if ndim > limits.max_ndim:
        raise CodecError(f"array with {ndim} dimensions exceeds max_ndim")
    end = 2 + 8 * ndim
    if len(data) < end:
        raise CodecError("truncated numpy array header")
    shape = _SHAPES[ndim].unpack_from(data)[2:]
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes > limits.max_array_bytes:
        raise CodecError(f"array of {nbytes} bytes exceeds max_array_bytes")
    if not framed:
        if len(data) - end != nbytes:
            raise CodecError("numpy array data does not match its shape")
        if count == 0:
            return np.empty(shape, dtype)
        dec.budget -= nbytes
        if dec.budget < 0:
            raise CodecError("inline arrays exceed max_message_bytes")
        return np.array(np.ndarray(shape, dtype, data, end))  # a writable copy
    if len(data) != end + 4:
        raise CodecError("malformed out-of-band array reference")
    index = _U32.unpack_from(data, end)[0]
    frames = dec.frames
    if not 0 < index < len(frames):
        n = len(frames) or 1
        raise CodecError(f"array refers to frame {index}, message has {n}")
    if dec.used[index]:
        raise CodecError(f"frame {index} is referenced twice")
    dec.used[index] = 1
    buf = frames[index]
    if buf.nbytes != nbytes:
        raise CodecError(f"frame {index} holds {buf.nbytes} bytes, its array needs {nbytes}")
    return np.ndarray(shape, dtype, buf)
