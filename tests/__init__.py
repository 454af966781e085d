"""beamrl's tests. ``start_peer()`` starts a ``beamrl node start`` process that can import them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beamrl.testing import NodeProcess

ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_TIMEOUT = 1.5  # peers started here detect a lost node this fast


def start_peer(name: str, *args: str, **kwargs: Any) -> NodeProcess:
    """A peer node run from the repository root, with ``tests`` importable there."""
    kwargs.setdefault("heartbeat_timeout", HEARTBEAT_TIMEOUT)
    args = ("--allow-module", "tests", *args)  # the tests name their own classes for peers to start
    return NodeProcess(name, *args, cwd=ROOT, pythonpath=[ROOT], **kwargs)
