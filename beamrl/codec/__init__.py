"""The wire codec: msgpack with an allow-list of extension types, never pickle.

Every message between nodes goes through here, so it is both the hot path and the
first thing untrusted bytes meet. Usage::

    frames = codec.encode(["step", np.zeros((84, 84), np.float32)])
    value = codec.decode(frames)                 # raises only CodecError on bad input
    b = codec.packb(value); value = codec.unpackb(b)   # one frame, arrays inline

The codec is the bottom layer: it knows msgpack, numpy and a registry of extension
types, and imports nothing else from beamrl. Modules:

- ``core``: encode/decode, the msgpack hooks, bounded decoding, error paths;
- ``arrays``: numpy arrays and scalars (inline and out-of-band frames);
- ``exceptions``: exceptions as data (``register_exception``);
- ``registry``: which class travels under which extension code (``register``);
- ``limits``: ``Limits``; ``errors``: ``BeamError``, ``CodecError``, ``RemoteError``.

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
numpy array, dtype bool, int8..64, numpy array of the same dtype (little-endian),
uint8..64, float16/32/64,          shape and values, C-contiguous. Inline arrays
complex64/128, any shape, 0-d,     are writable copies; out-of-band arrays (see
non-contiguous, either byte order  below) are views on the frame buffer, read-only
                                   when that buffer is (bytes)
numpy scalar of those dtypes       numpy scalar of the same dtype
any exception                      the same class with its message when its class
                                   is registered (``register_exception``: the
                                   builtins, beamrl's errors, the rl errors); else
                                   its nearest such base class (by the MRO names it
                                   travels with; ``remote_type`` and a note keep the
                                   original name), so a sender-only
                                   ``OutOfStock(Rejected)`` arrives as ``Rejected``;
                                   else ``RemoteError(message, exc_type="mod.Name")``
a registered type                  rebuilt by its ``from_data``
=================================  ==============================================

**Where a new wire type goes.** Register it in the module that defines it, at import
time, so the codec never imports upwards: ``Pid``/``Ref`` in ``beamrl.pid``, beamrl's
errors in ``beamrl.errors``, ``ChildInfo`` in ``beamrl.supervisor``, spaces, ``Exp``
and the rl errors in their ``beamrl.rl`` modules (so those types decode in a process
that imported ``beamrl.rl``). Use ``register(code, cls, to_data, from_data)`` with a
free code: 16-63 are beamrl's layers (16-21 spaces, 22 ChildInfo), 64-127 users'.
Codes 1-15 are the codec's and the core types' (``registry``). An exception class
needs only ``register_exception(cls)``.

``encode`` sends numpy arrays of at least ``ZERO_COPY_THRESHOLD`` bytes as extra frames
(a memoryview of the array's buffer, copied only when the array is not C-contiguous
little-endian), referenced from the msgpack body by frame index. Do not mutate such an
array until its frames are sent.

Decoding is bounded by ``Limits``: sizes and counts are checked before anything is
allocated for them, and every failure (msgpack errors, bad extension data, recursion,
memory) surfaces as ``CodecError``. The objects one message decodes into are bounded
by its body's size (``object_allowance + body_bytes // bytes_per_object``, at most
``max_objects``), so no message costs more than about 20 bytes of memory per byte of
body plus ~1 MB (``beamrl bench codec`` measures it); bulk data goes in numpy arrays.
Non-str map keys are allowed (msgpack's ``strict_map_key`` is off), so maps whose keys
share one hash are refused (hash flooding). Subclasses of allowed types (IntEnum, OrderedDict, NamedTuples other than
Pid/Ref, ndarray subclasses) are refused rather than silently downgraded. msgpack's own
timestamp extension (-1), which beamrl never sends, decodes to an int of nanoseconds.
"""

from beamrl.codec.core import decode, encode, encode_with_head, packb, unpack_head, unpackb
from beamrl.codec.errors import BeamError, CodecError, RemoteError
from beamrl.codec.exceptions import register_exception
from beamrl.codec.limits import DEFAULT_LIMITS, ZERO_COPY_THRESHOLD, Limits
from beamrl.codec.registry import register, register_bytes, register_core

__all__ = [
    "DEFAULT_LIMITS",
    "ZERO_COPY_THRESHOLD",
    "BeamError",
    "CodecError",
    "Limits",
    "RemoteError",
    "decode",
    "encode",
    "encode_with_head",
    "packb",
    "register",
    "register_bytes",
    "register_core",
    "register_exception",
    "unpack_head",
    "unpackb",
]
