"""The transport's framing: how data, batches and control messages look on a ZeroMQ socket.

Every ZeroMQ message, after the ROUTER's routing-id frame::

    [first, *rest]              data (``first`` non-empty), handed to ``on_message`` as is
    [b"", b"D", *data_frames]   data whose first frame is empty (or no frames at all)
    [b"", b"B", msgpack([bin])] a batch: one-frame data messages, in order
    [b"", b"C", msgpack(map)]   control: hello / welcome / reject / ping / ack / reset / bye

Data carries no tag frame in the common case (the codec's first frame is never empty).
Control maps and batches are decoded here with tight msgpack limits: they come from
peers, maybe before any handshake, so a malformed one is ``None``, never an exception.
"""

from __future__ import annotations

from typing import Any

import msgpack

PROTOCOL_VERSION = 3  # 3: cookie MACs in hello and welcome, byte acks
DATA = b"D"
CTRL = b"C"
MANY = b"B"
ESC = b""  # an empty first frame means "a tag frame follows"
MAX_CONTROL_BYTES = 64 << 10
MAX_NAME = 255  # longest node name, in UTF-8 bytes
MANY_MAX = 256  # most messages in one batch
MANY_BYTES = 256 << 10  # a batch is sent once its bodies reach this many bytes
SMALL = 16 << 10  # one-frame messages below this size may travel in a batch


def pack_control(msg: dict[str, Any]) -> bytes:
    """A control message's payload frame."""
    return msgpack.packb(msg, use_bin_type=True)


PING = pack_control({"t": "ping"})
RESET = pack_control({"t": "reset"})
BYE = pack_control({"t": "bye"})


def unpack_control(frame: bytes) -> dict[str, Any] | None:
    """A control map with a str ``t``, or None when the frame is not one."""
    if len(frame) > MAX_CONTROL_BYTES:
        return None
    try:
        msg = msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=True,
            max_str_len=4096,
            max_bin_len=4096,
            max_array_len=4096,
            max_map_len=64,
        )
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.ExtraData, RecursionError):
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
        return None
    return msg


def ack(received: int) -> bytes:
    """Control: "I have taken in ``received`` data bytes from you on this connection"."""
    return pack_control({"t": "ack", "rx": received})


def nbytes(frames: Any) -> int:
    """Data bytes in ``frames`` (what flow control counts: bodies, not tags or ids)."""
    return sum(f.nbytes if type(f) is memoryview else len(f) for f in frames)


def pack_many(bodies: list[bytes]) -> bytes:
    """A batch's payload frame."""
    return msgpack.packb(bodies, use_bin_type=True)


def unpack_many(frame: bytes) -> list[Any] | None:
    """The bodies of a batch (a msgpack array of bin), or None when it is malformed."""
    try:
        bodies = msgpack.unpackb(
            frame,
            raw=False,
            max_array_len=MANY_MAX,
            max_str_len=1,
            max_map_len=1,
            max_ext_len=1,
        )
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.ExtraData, RecursionError):
        return None
    return bodies if type(bodies) is list else None
