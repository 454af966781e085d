"""Errors raised by the rl layer."""

from __future__ import annotations

from beamrl import codec
from beamrl.errors import Rejected


class InvalidAction(Rejected):
    """An action outside the environment's action space; the environment is left unchanged.

    The message names the action and the space, e.g.
    ``"action 7 is not in the action space Discrete(4)"``.
    """


class InvalidObservation(Rejected, ValueError):
    """An observation a served policy cannot take (shape, dtype, range, NaN); the server goes on.

    The message names what is wrong, e.g. ``"observation[2] = 0.9 is outside the observation
    space's bounds [-0.418879, 0.418879]"`` (``beamrl.rl.serving``).
    """


class UnknownEnv(ValueError):
    """``make`` was given an id that is neither native nor registered with gymnasium."""


class ReplayError(Rejected, ValueError):
    """Input a replay memory refuses (shape, dtype, priority, size, index); the memory is unchanged."""


class StaleIndex(ReplayError):
    """An index names a transition that was evicted (its slot was overwritten) or never added."""


class QTableError(Rejected, ValueError):
    """A Q-table was given a state, action, shape or file it cannot use; the table is unchanged.

    A ``Rejected``: a QServer raises it from a handler, keeps running, and the caller (on any
    node) gets a ``QTableError`` with the same message.
    """


# every error defined above travels as itself (the codec rebuilds it by name)
for _obj in list(globals().values()):
    if isinstance(_obj, type) and issubclass(_obj, Exception) and _obj.__module__ == __name__:
        codec.register_exception(_obj)
