"""Process classes whose start goes wrong in ways that must not end the node."""

from __future__ import annotations

import sys
from typing import Any

from beamrl import GenServer


class ExitsInInit(GenServer):
    async def init(self) -> None:
        sys.exit(3)


class InterruptsInInit(GenServer):
    async def init(self) -> None:
        raise KeyboardInterrupt


class Echo(GenServer):
    async def handle_call(self, request: Any, from_: Any) -> Any:
        return request
