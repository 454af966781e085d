"""The errors the codec itself raises or builds, and the root of every beamrl error.

They live here, at the bottom layer, because the codec needs them: ``CodecError`` is
what decoding hostile bytes raises, and ``RemoteError`` is what an exception of a class
the receiver does not know arrives as. ``BeamError`` is their base, so it sits here too.
Users import all three from ``beamrl`` (or ``beamrl.errors``).
"""

from __future__ import annotations


class BeamError(Exception):
    """Base class of every error beamrl raises on purpose."""


class CodecError(BeamError, ValueError):
    """A value cannot be encoded, or bytes cannot be decoded, by the wire codec."""


class RemoteError(BeamError):
    """An exception of a type the receiving side does not rebuild, carried as text.

    ``exc_type`` is the qualified name of the original class (``"mylib.BadThing"``).
    """

    def __init__(self, message: str = "", exc_type: str = "") -> None:
        super().__init__(message)
        self.exc_type = exc_type

    def __reduce__(self):  # keeps copy/deepcopy working with the extra field
        return (type(self), (str(self), self.exc_type))
