"""Ape-X across real OS processes: a torch-free actor node, and an actor node killed mid-run."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from beamrl import Node
from beamrl.rl.apex.config import apex_config
from beamrl.rl.apex.run import actor_spec, train_apex
from beamrl.rl.replay_server import ReplayServer
from beamrl.testing import eventually
from beamrl.trees import tree_path
from tests import start_peer

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from beamrl.rl.apex.loop import LearnerLoop
from beamrl.rl.deep.learner import Learner

SMALL = {"hidden": [32, 32], "batch_size": 64, "min_replay": 200, "pull_every": 100, "num_envs": 2}


async def test_an_actor_node_acts_without_ever_importing_torch() -> None:
    cfg = apex_config("CartPole-v1", SMALL)
    peer = start_peer("torchless", tree=tree_path("actor_node.toml"))
    try:
        async with Node("learner", listen="tcp://127.0.0.1:0") as node:
            await node.start(ReplayServer, 10_000, prioritized=True, rate_limiter=cfg.limiter(), name="replay")
            await node.start(Learner, "dqn", "CartPole-v1", cfg.learner_overrides(), 0, name="learner")
            await node.start(LearnerLoop, "replay", "learner", cfg.batch_size, name="learner-loop")
            remote = await node.connect(peer.address)
            await node.start_child(("workers", remote), actor_spec("CartPole-v1", cfg, 0, 1, 0, "learner"))
            actor = ("apex-actor-0", remote)

            async def acting_on_new_params() -> bool:
                p: dict[str, Any] = await node.call(actor, ["progress"])
                return p["version"] > 0 and p["sent"] > 0

            await eventually(acting_on_new_params, timeout=60.0, what="the remote actor acting on learnt params")
            stats = await node.call(actor, ["stats"])
            assert stats["torch_loaded"] is False  # sys.modules of the actor node's own process
            replay = await node.call("replay", ["stats"])
            assert replay["total_added"] > 0 and replay["rejected_casts"] == 0
    finally:
        peer.terminate()


async def test_an_actor_node_killed_mid_run_rejoins_with_current_params(tmp_path: Path) -> None:
    """kill -9 of actor node 1 (the second): the learner goes on; the restarted node's actor is current."""
    overrides = {"eval_every": 1_000_000, "samples_per_insert": 1.0}  # about the fault: no evaluations, fast actors
    summary = await train_apex(
        "CartPole-v1", 150_000, nodes=2, out=tmp_path / "run", kill_at=[(10_000, "actor-node", 1)], overrides=overrides
    )
    events = summary["events"]
    kinds = [e["event"] for e in events]
    assert kinds[:1] == ["killed"] and "actor_lost" in kinds and "restarted" in kinds, kinds
    assert "actor_rejoined" in kinds, kinds
    killed = events[0]
    lost = next(e for e in events if e["event"] == "actor_lost")
    rejoined = next(e for e in events if e["event"] == "actor_rejoined")
    assert killed["node"] == "learner-actor2" and killed["node_index"] == 1
    assert lost["actor"] == rejoined["actor"] == 1 and lost["node"] == killed["node"]
    # the learner kept learning while the node was gone, and the new actor started from its current version
    with (tmp_path / "run" / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "rates"]
    # (a node back within one rates period leaves no row between the two events: compare across them)
    at_loss = [int(r["learner_version"]) for r in rows if float(r["wall_s"]) <= lost["wall_s"]]
    during = [int(r["learner_version"]) for r in rows if lost["wall_s"] <= float(r["wall_s"]) <= rejoined["wall_s"]]
    assert at_loss, rows[:3]
    assert rejoined["params_version"] > at_loss[-1], (at_loss[-1], rejoined)
    assert rejoined["params_version"] >= max(during, default=0)
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["events"] == events
    assert summary["env_steps"] >= 150_000 and summary["learner_updates"] > 0
