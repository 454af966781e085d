"""Extension types the higher layers add to the codec: spaces and supervisor rows.

The codec loads this module the first time it meets a type or extension code
it does not know, so a node that never imported ``beamrl.rl`` still decodes a
space another node sent. Codes 16..63 are beamrl's, 64..127 are left to users.
"""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

from beamrl import codec
from beamrl.rl import spaces
from beamrl.supervisor import ChildInfo

_SPACE_CODES = {
    spaces.Discrete: 16,
    spaces.Box: 17,
    spaces.MultiDiscrete: 18,
    spaces.MultiBinary: 19,
    spaces.Tuple: 20,
    spaces.Dict: 21,
}
_CHILD_INFO = 22


def _space_to_data(space: Any) -> Any:
    return space.to_data()


def _child_info_from_data(data: Any) -> ChildInfo:
    if type(data) is not list or len(data) != 7:
        raise ValueError("a ChildInfo is a list of 7 fields")
    return ChildInfo(*data)


def register_all() -> None:
    """Register every beamrl extension type (idempotent)."""
    for cls, code in _SPACE_CODES.items():
        codec.register(code, cls, _space_to_data, spaces.space_from_data)
    codec.register(_CHILD_INFO, ChildInfo, lambda c: list(astuple(c)), _child_info_from_data)
