"""Errors raised by the rl layer; each crosses the wire as itself (registered below).

The ``Rejected`` ones are refusals: a server raises them from a handler, keeps running,
and the caller gets the same class with the same message.
"""

from __future__ import annotations

from beamrl import codec
from beamrl.errors import Rejected


class InvalidAction(Rejected):
    """An action outside the environment's action space; the environment is left unchanged.

    The message names the action and the space, e.g.
    ``"action 7 is not in the action space Discrete(4)"``.
    """


class UnknownEnv(ValueError):
    """``make`` was given an id that is neither native nor registered with gymnasium."""


class ReplayError(Rejected, ValueError):
    """Input a replay memory refuses (shape, dtype, priority, size, index); the memory is unchanged."""


class StaleIndex(ReplayError):
    """An index names a transition that was evicted (its slot was overwritten) or never added."""


class QTableError(Rejected, ValueError):
    """A Q-table was given a state, action, shape or file it cannot use; the table is unchanged."""


for _error in (InvalidAction, UnknownEnv, ReplayError, StaleIndex, QTableError):
    codec.register_exception(_error)
