"""``short_repr``: the bounded repr every log line and error message uses for a request.

Requests and messages come from other processes and other nodes, and can be megabytes:
repeating one in a log line or in the text of a ``Rejected`` that travels back would
copy it again (twenty 1 MB casts once grew a log by 32 MB). Use it wherever a value
someone else chose ends up in text::

    raise Rejected(f"Counter does not understand {short_repr(request)}")
    log.warning("%s rejected cast %s: %s", self, short_repr(request), exc)

The result is at most ``limit`` characters (``REPR_LIMIT``, a few hundred): nested
containers show their first items and then ``...``, long str/bytes their first
characters, and whatever is still too long is cut, saying how long the whole was.
Large str and bytes are never repr'd whole on the way.
"""

from __future__ import annotations

import reprlib
from typing import Any

REPR_LIMIT = 300
"""Most characters ``short_repr`` returns by default."""


class _Short(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 4
        self.maxtuple = self.maxlist = self.maxset = self.maxfrozenset = self.maxdeque = 12
        self.maxdict = 8
        self.maxstring = 160
        self.maxlong = 60
        self.maxother = 160

    def repr_bytes(self, x: bytes, level: int) -> str:
        return self._cut_bytes(x)

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        return f"bytearray({self._cut_bytes(bytes(x[: self.maxstring]), len(x))})"

    def repr_memoryview(self, x: memoryview, level: int) -> str:
        return f"<memoryview of {x.nbytes} bytes>"

    def _cut_bytes(self, x: bytes, n: int | None = None) -> str:
        n = len(x) if n is None else n
        if n <= self.maxstring:
            return repr(x)
        return f"{x[: self.maxstring]!r}...({n} bytes)"

    def repr_str(self, x: str, level: int) -> str:
        if len(x) <= self.maxstring:
            return repr(x)
        return f"{x[: self.maxstring]!r}...({len(x)} chars)"


_SHORT = _Short()


def short_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` bounded to ``limit`` characters (see the module docstring)."""
    try:
        text = _SHORT.repr(value)
    except Exception as exc:  # a user's __repr__ raised: say so rather than fail the log line
        text = f"<{type(value).__name__} with a failing repr: {type(exc).__name__}>"
    return short_text(text, limit)


def short_text(text: str, limit: int = REPR_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[: max(0, limit - 24)]}...({len(text)} chars)"
