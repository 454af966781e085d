"""The errors a beamrl user can catch, all importable from ``beamrl``.

They are data, too: the codec carries them between nodes by class name, so a
``CallTimeout`` raised on a learner box is a ``CallTimeout`` at the caller. Each is
registered with the codec below; ``BeamError``, ``CodecError`` and ``RemoteError`` are
the codec's own (``beamrl.codec.errors``) and re-exported here.
"""

from __future__ import annotations

from beamrl import codec
from beamrl.codec import BeamError, CodecError, RemoteError
from beamrl.pid import Pid

__all__ = [
    "AlreadyRegistered",
    "Backpressure",
    "BeamError",
    "CallSelf",
    "CallTimeout",
    "CodecError",
    "NoProc",
    "NodeDown",
    "NotInProcess",
    "ProcessCrashed",
    "Rejected",
    "RemoteError",
]


class CallTimeout(BeamError, TimeoutError):
    """A ``call`` got no reply within its timeout; a late reply is dropped."""


class NoProc(BeamError, LookupError):
    """No process answers to that pid or name (it never existed or it has exited)."""


class StartRefused(NoProc):
    """``init`` returned ``Stop(reason)``: the process exited with ``reason`` and ``start`` raises this.

    OTP's ``{error, Reason}`` from ``start_link`` after ``{stop, Reason}``. ``reason``
    is the exit reason ``init`` gave. A ``NoProc``: the process does not exist.
    """

    def __init__(self, message: str = "", reason: object = None) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (str(self), self.reason))


class ProcessCrashed(BeamError):
    """The target crashed (or was killed) before replying to a call.

    ``exc_type`` and ``exc_message`` describe the exception that crashed it, as
    text, because the exception itself may live on another machine.
    """

    def __init__(self, message: str = "", exc_type: str = "", exc_message: str = "") -> None:
        super().__init__(message)
        self.exc_type = exc_type
        self.exc_message = exc_message

    def __reduce__(self):  # keeps copy/deepcopy working with the extra fields
        return (type(self), (str(self), self.exc_type, self.exc_message))


class Rejected(BeamError):
    """Raised by a handler to refuse a request: re-raised at the caller, the process lives on."""


class NodeDown(BeamError, ConnectionError):
    """The node hosting the target is not connected, or was lost during a call."""


class AlreadyRegistered(BeamError, ValueError):
    """A name is already held by a live process."""

    def __init__(self, message: str = "", pid: object = None) -> None:
        super().__init__(message)
        self.pid = pid

    def __reduce__(self):
        return (type(self), (str(self), self.pid))


class CallSelf(BeamError, RuntimeError):
    """A process called itself: it would wait forever for its own reply."""


class NotInProcess(BeamError, RuntimeError):
    """A function that acts on 'the current process' or 'the current node' ran outside one."""


class Backpressure(BeamError):
    """A peer's queue is full (its high-water mark was reached): slow down or retry."""


# every error above travels as itself: the codec rebuilds it by name, with its fields
codec.register_exception(ProcessCrashed, {"exc_type": (str,), "exc_message": (str,)})
codec.register_exception(AlreadyRegistered, {"pid": (Pid, str, type(None))})
codec.register_exception(StartRefused, {"reason": (str, int, float, bool, type(None))})
for _cls in (CallTimeout, NoProc, Rejected, NodeDown, CallSelf, NotInProcess, Backpressure):
    codec.register_exception(_cls)
