"""``Limits``: the bounds on what ``decode`` accepts from untrusted bytes."""

from __future__ import annotations

import dataclasses

_MiB = 1024 * 1024

#: numpy arrays at least this many bytes travel as their own frame in ``encode``
ZERO_COPY_THRESHOLD = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what ``decode`` accepts; exceeding one raises ``CodecError``.

    Decoded Python objects take more memory than their encoding (an empty list is one
    byte on the wire and 64 in memory, an empty dict 72), so besides the per-value sizes,
    the number of objects one message decodes into is bounded by its size: at most
    ``min(max_objects, object_allowance + body_bytes // bytes_per_object)``, counting
    every list, dict, tuple and their items. Bulk data belongs in numpy arrays (one
    object, no amplification); a list of many tiny values is what the bound refuses.
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
    """Most items in one list or tuple (the object budget below is usually tighter)."""
    max_map_len: int = 4 * _MiB
    """Most entries in one dict (the object budget below is usually tighter)."""
    max_ext_len: int = 256 * _MiB
    """Largest extension payload (an inline array, a tuple's encoded items, ...)."""
    max_ndim: int = 32
    """Most dimensions of one numpy array."""
    object_allowance: int = 16384
    """Objects any message may decode into, whatever its size (small messages are dense)."""
    bytes_per_object: int = 3
    """Beyond the allowance, each decoded object must be paid for by this many body bytes."""
    max_objects: int = 1 * _MiB
    """Most objects one message decodes into, whatever its size."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if type(v) is not int or v < 1:
                raise ValueError(f"Limits.{f.name} must be a positive int, got {v!r}")
        if self.max_ndim > 64:
            raise ValueError("Limits.max_ndim can be at most 64 (numpy's own limit)")


DEFAULT_LIMITS = Limits()
