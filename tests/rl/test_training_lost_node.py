"""Issue 10 item 7: an actor node lost for good is an event, and the run finishes its budget.

The run attaches a real actor node (``beamrl node start`` with the packaged actor tree);
the test kills it (SIGKILL) once its worker plays. The run must end normally, with every
episode of its budget played by the remaining worker and the loss in ``summary.json``;
the console must not claim a supervisor restarts a worker whose node is gone.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from beamrl import Node
from beamrl.rl.training import RunSpec, train
from beamrl.rl.training.run import TrainingFailed
from beamrl.testing import eventually
from beamrl.trees import tree_path
from tests import start_peer

EPISODES = 6000


async def _worker_plays(node: Node, peer: str) -> bool:
    try:
        names = await node.call(("$node", peer), ["registered"], timeout=1.0)
    except Exception:
        return False
    return "worker-1" in names


async def test_an_actor_node_lost_mid_run_is_an_event_and_the_run_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    actor = start_peer("lost-actor", tree=tree_path("actor_node.toml"))
    try:
        spec = RunSpec("q-learning", "FrozenLake-v1", episodes=EPISODES, seed=0, eval_every=EPISODES)
        run = asyncio.ensure_future(train(spec, tmp_path / "run", attach=[actor.address], progress=False))
        async with Node("watcher") as watcher:
            peer = await watcher.connect(actor.address)
            await eventually(lambda: _worker_plays(watcher, peer), timeout=60.0, what="the remote worker playing")
            actor.kill()
        summary = await run
    finally:
        actor.kill()
    assert summary["episodes"] == EPISODES
    events = [e["event"] for e in summary["events"]]
    assert any("worker 1 lost" in e and "lost-actor" in e for e in events), events
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["events"] == summary["events"]
    out = capsys.readouterr().out
    assert "its supervisor restarts it" not in out
    # lost while playing ("is gone") or, when the kill beat its start's reply, while starting
    assert "worker 1 is lost: its node 'lost-actor' is gone" in out or "went away while it started" in out


async def test_an_actor_node_killed_during_start_up_ends_cleanly_or_with_a_clear_error(tmp_path: Path) -> None:
    actor = start_peer("dying-actor", tree=tree_path("actor_node.toml"))
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=500, seed=0, eval_every=500)
    run = asyncio.ensure_future(train(spec, tmp_path / "run", attach=[actor.address], progress=False))
    await asyncio.sleep(0)  # let the run connect, then pull the node from under it
    actor.kill()
    outcome = (await asyncio.gather(run, return_exceptions=True))[0]
    if isinstance(outcome, BaseException):  # a clear error naming what went wrong, not one from deep inside
        assert isinstance(outcome, TrainingFailed), repr(outcome)
        assert "actor node" in str(outcome)
    else:
        assert outcome["episodes"] == 500
