"""Supervision trees the library itself starts (package data, found with ``importlib.resources``).

``actor_node.toml``: an actor node's empty ``workers`` DynamicSupervisor, which
``beamrl train --nodes K`` starts on each extra node and fills with worker subtrees.
``learner_replica.toml``: the same plus ``replica-host``, for the nodes that host Ape-X's
data-parallel learner replicas (``--set learners=G``, ``--attach-learner``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def tree_path(name: str) -> Path:
    """The file of the packaged tree ``name`` (e.g. ``"actor_node.toml"``) on disk."""
    resource = resources.files(__package__).joinpath(name)
    if not resource.is_file():
        raise FileNotFoundError(f"beamrl ships no tree named {name!r}")
    return Path(str(resource))


def packaged_trees() -> list[str]:
    """The file names of the trees beamrl ships (``["actor_node.toml", "learner_replica.toml"]``)."""
    return sorted(r.name for r in resources.files(__package__).iterdir() if r.name.endswith(".toml"))
