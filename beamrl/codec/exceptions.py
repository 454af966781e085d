"""Exceptions as data: an error travels as its class name, message and extra fields.

The receiver rebuilds it from a table of known classes and never imports a module named
in the message. Known are the builtins below, the codec's own errors, and every class a
layer registers with ``register_exception`` where the class is defined (``beamrl.errors``,
``beamrl.rl.errors``). An unknown class arrives as its nearest known base class (the
sender sends the names of its bases), else as ``RemoteError``.
"""

from __future__ import annotations

from typing import Any

import msgpack

from beamrl.codec.errors import BeamError, CodecError, RemoteError
from beamrl.codec.registry import EXC, ext

_BUILTIN_EXCEPTIONS: tuple[type[BaseException], ...] = (
    Exception, ArithmeticError, AssertionError, AttributeError, BufferError, EOFError,
    FloatingPointError, IndexError, KeyError, LookupError, MemoryError, NameError,
    NotImplementedError, OverflowError, RecursionError, RuntimeError, TimeoutError,
    TypeError, UnboundLocalError, ValueError, ZeroDivisionError, OSError, ConnectionError,
    BrokenPipeError, ConnectionAbortedError, ConnectionRefusedError, ConnectionResetError,
    FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError,
    NotADirectoryError,
)  # fmt: skip


def _qualname(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


# qualified name -> class; extra fields: class -> ((attribute, allowed types), ...)
_EXCEPTIONS: dict[str, type[BaseException]] = {
    _qualname(c): c for c in (*_BUILTIN_EXCEPTIONS, BeamError, CodecError, RemoteError)
}
_FIELDS: dict[type, tuple[tuple[str, tuple[type, ...]], ...]] = {RemoteError: (("exc_type", (str,)),)}
# every receiver knows these, so their bases are not sent
_CORE_EXCEPTIONS = frozenset(_EXCEPTIONS.values())
# too general to stand for a class the receiver lacks: such errors arrive as RemoteError,
# which is a BeamError and says what the original class was
_GENERIC_BASES = frozenset((object, BaseException, Exception, BeamError))
_MAX_BASES = 16


def register_exception(cls: type[BaseException], fields: dict[str, tuple[type, ...]] | None = None) -> None:
    """Let ``cls`` be rebuilt at decode as ``cls(message, *fields)`` instead of a RemoteError.

    ``fields`` names the attributes that travel after the message, in ``__init__``'s
    order, with the types each may have (a value of another type travels as ``str``
    when ``str`` is allowed). Subclasses inherit them.
    """
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        raise TypeError(f"register_exception needs an Exception subclass, got {cls!r}")
    _EXCEPTIONS[_qualname(cls)] = cls
    if fields:
        _FIELDS[cls] = tuple(fields.items())


def _fields_of(cls: type) -> tuple[tuple[str, tuple[type, ...]], ...]:
    for c in cls.__mro__:
        f = _FIELDS.get(c)
        if f is not None:
            return f
    return ()


def _message(exc: BaseException) -> str:
    if len(exc.args) == 1 and type(exc.args[0]) is str:
        return exc.args[0]  # KeyError('k') keeps 'k', not "'k'"
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not make the error itself unsendable
        return f"<unprintable {type(exc).__name__}>"


def _bases(cls: type) -> list[str]:
    """Qualified names of ``cls``'s bases, nearest first, for a receiver that lacks ``cls``."""
    if cls in _CORE_EXCEPTIONS:
        return []
    return [_qualname(b) for b in cls.__mro__[1:] if b not in _GENERIC_BASES][:_MAX_BASES]


def enc_exception(packer: Any, exc: BaseException) -> msgpack.ExtType:
    cls = type(exc)
    fields: list[Any] = [_qualname(cls), _message(exc), _bases(cls)]
    for attr, types in _fields_of(cls):
        value = getattr(exc, attr, None)
        if type(value) not in types:
            value = str(value) if str in types else None
        fields.append(value)
    return ext(EXC, packer.nested(fields))


def dec_exception(v: Any) -> BaseException:
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
    exc = _build(cls, message, extra)
    if remote_type is not None:
        exc.remote_type = remote_type  # type: ignore[attr-defined]
        exc.add_note(f"raised on the remote node as {remote_type}")
    return exc


def _build(cls: type[BaseException], message: str, extra: list[Any]) -> BaseException:
    fields = _fields_of(cls)
    if len(extra) != len(fields) or not all(type(x) in t for x, (_, t) in zip(extra, fields, strict=True)):
        if fields:
            raise CodecError(f"malformed {cls.__name__}")
        extra = []  # fields a newer sender added: the message is what matters
    return cls(message, *extra)
