"""The seam between a node and its remote half: what ``LocalNode`` asks of ``Distribution``.

The local node decides, for every operation, whether its target is here or on another
node; for the second case it calls this protocol. Bookkeeping that outlives one message
(calls waiting on a peer, links and monitors that cross nodes) stays in the node, so a
lost peer is handled in one place (``LocalNode.peer_lost``); the remote half only turns
operations into wire messages (``beamrl.wire``) and incoming messages back into node
operations.
"""

from __future__ import annotations

from typing import Any, Protocol

from beamrl.pid import Pid, Ref
from beamrl.process import From


class Remote(Protocol):
    """Operations on processes of other nodes; every method is non-blocking unless async."""

    @property
    def address(self) -> str | None: ...

    def connected(self, peer: str) -> bool: ...

    def peers(self) -> list[str]: ...

    async def connect(self, address: str, timeout: float) -> str: ...

    async def close(self) -> None: ...

    def call(self, ref: int, caller: Pid, target: Any, request: Any) -> None:
        """Send a call request; the reply completes ``ref`` in the node's ``Calls``."""

    def cast(self, target: Any, request: Any) -> None: ...

    def send(self, target: Any, message: Any) -> None: ...

    def reply(self, from_: From, value: Any, error: BaseException | None) -> None: ...

    def stop(self, ref: int, caller: Pid, target: Any, reason: Any, timeout: float | None) -> None: ...

    def exit(self, sender: Pid, target: Any, reason: Any, is_link: bool) -> None: ...

    def link(self, sender: Pid, target: Pid) -> None: ...

    def unlink(self, sender: Pid, target: Pid) -> None: ...

    def monitor(self, watcher: Pid, ref: Ref, target: Any) -> None: ...

    def demonitor(self, ref: Ref, target: Any) -> None: ...

    def down(self, watcher: Pid, ref: Ref, pid: Any, reason: Any) -> None: ...
