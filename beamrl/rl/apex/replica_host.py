"""``ReplicaHost``: what marks a node as able to host Ape-X learner replicas (``--attach-learner``).

A learner-replica node (``beamrl node start nodes/learner-replica.toml``, the packaged tree
``learner_replica``) runs it beside its empty ``workers`` supervisor. Before a run starts
a replica there, it asks::

    await node.call(("replica-host", "gpu-box-1"), ["info"])
    # {"kind": "learner-replica", "torch": "2.13.0" (None: not installed), "host": "gpu-box-1"}

so an actor node attached by mistake, or a machine without torch, is refused before any
replica joins the data-parallel group (a replica that never joins would stall the others
there). It imports nothing heavy: torch's version comes from the installed metadata.
"""

from __future__ import annotations

import socket
from importlib import metadata
from typing import Any

from beamrl.gen_server import GenServer
from beamrl.process import From

__all__ = ["KIND", "ReplicaHost"]

KIND = "learner-replica"


def _torch_version() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


class ReplicaHost(GenServer):
    """Answers ``["info"]``: this node's kind, its torch version (or None) and host name."""

    async def init(self) -> None:
        self.info = {"kind": KIND, "torch": _torch_version(), "host": socket.gethostname()}

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["info"]:
                return dict(self.info)
        return await super().handle_call(request, from_)
