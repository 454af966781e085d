"""Issue 10 item 3: no kill, at any moment of a checkpoint, leaves it unrestorable.

50 kills of each server (``node.kill`` in this process while a checkpoint thread may be
writing, and ``kill -9`` of a node OS process) at random moments around checkpoints:
every restart restores, what it restores is exactly a state the client saw (no mix of two
writers, no older state written over a newer one), and the data lost never exceeds what
the restarted server reports.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from beamrl import CallTimeout, Node, NodeDown, ProcessCrashed, child
from beamrl.rl import QServer, ReplayServer
from beamrl.rl.replay import ReplayMemory
from beamrl.testing import eventually
from tests import start_peer

IN_PROCESS_KILLS = 42
OS_KILLS = 8  # with the in-process ones: 50 kills of each server
CAPACITY = 48
N_STATES = 8


def rows(start: int, n: int) -> dict[str, np.ndarray]:
    """Transitions ``start .. start+n-1``; the reward of each is its id."""
    ids = np.arange(start, start + n)
    state = np.stack([ids, ids], axis=1).astype(np.float32)
    return {
        "state": state,
        "action": ids % 2,
        "reward": ids.astype(np.float32),
        "next_state": state + 1,
        "terminated": np.zeros(n, dtype=bool),
        "truncated": np.zeros(n, dtype=bool),
    }


def ledger(d: Path) -> int:
    try:
        return int(json.loads((d / "ledger.json").read_text())["total_added"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


class ReplayClient:
    """Adds transitions whose reward is their id; checks what a restarted server restored."""

    def __init__(self, node: Node, target: Any, d: Path) -> None:
        self.node, self.target, self.d = node, target, d
        self.next_id = 0

    async def work(self, rng: random.Random) -> None:
        for _ in range(rng.randint(1, 3)):
            n = rng.randint(1, 20)
            ids = await self.node.call(self.target, ["add_batch", rows(self.next_id, n)])
            assert list(ids) == list(range(self.next_id, self.next_id + n))
            self.next_id += n
        if rng.random() < 0.5:
            held = await self.node.call(self.target, ["len"])
            if held:
                batch = await self.node.call(self.target, ["sample", min(held, 8)])
                prios = np.full(batch["indices"].shape, rng.uniform(0.1, 5.0))
                self.node.cast(self.target, ["update_priorities", batch["indices"], prios])

    async def check_restart(self, ledger_before: int) -> None:
        stats = await self.node.call(self.target, ["stats"], timeout=10.0)
        assert stats["restored_total"] <= self.next_id, stats  # nothing invented
        # what was lost is reported: the report covers everything the ledger had recorded
        assert stats["restored_total"] + stats["lost"] >= ledger_before, (stats, ledger_before)
        if stats["len"]:
            batch = await self.node.call(self.target, ["sample", stats["len"], "latest"])
            # exactly the transitions added: no mix of two writers' segments
            np.testing.assert_array_equal(batch["reward"], batch["indices"].astype(np.float32))
            assert sorted(batch["indices"].tolist()) == list(
                range(stats["restored_total"] - stats["len"], stats["restored_total"])
            )
        self.next_id = stats["restored_total"]  # ids of lost transitions are handed out again


class QClient:
    """Writes unique values; checks a restored table is exactly one the client saw at its version."""

    def __init__(self, node: Node, target: Any) -> None:
        self.node, self.target = node, target
        self.writes = 0
        self.history: dict[int, np.ndarray] = {}

    async def begin(self) -> None:
        """After a (re)start: the restored table must be a state of the previous life."""
        info = await self.node.call(self.target, ["info"], timeout=10.0)
        table = await self.node.call(self.target, ["table"])
        if self.history:  # (only the first life may restart from nothing: version 0 is in its history)
            assert info["version"] in self.history, (info, sorted(self.history))
            np.testing.assert_array_equal(table, self.history[info["version"]])
        self.history = {info["version"]: table}

    async def work(self, rng: random.Random) -> None:
        for _ in range(rng.randint(1, 5)):
            self.writes += 1
            s, a = rng.randrange(N_STATES), rng.randrange(2)
            await self.node.call(self.target, ["set", s, a, float(self.writes)])
            version = await self.node.call(self.target, ["version"])
            table = await self.node.call(self.target, ["table"])
            self.history[version] = table


async def _kill_mid_checkpoint(node: Node, target: Any, rng: random.Random, kill: Any) -> bool:
    """Start a checkpoint, kill at a random moment; True when the kill beat the checkpoint's reply."""
    pending = asyncio.ensure_future(node.call(target, ["checkpoint"], timeout=10.0))
    await asyncio.sleep(rng.uniform(0.0, 0.004))  # a random moment to strike, not a wait for something
    kill()
    try:
        await pending
    except ProcessCrashed:
        return True
    except (NodeDown, CallTimeout):  # a lost node: the kill beat it too
        return True
    return False


async def test_replay_server_survives_kills_during_checkpoints(node: Node, tmp_path: Path) -> None:
    rng = random.Random(10)
    d = tmp_path / "replay"
    spec = child(
        ReplayServer,
        CAPACITY,
        name="replay",
        checkpoint_dir=str(d),
        checkpoint_every=0.003,
        ledger_every=0.003,
        prioritized=True,
        seed=0,
    )
    await node.start_supervisor([spec], max_restarts=1000, max_seconds=1.0)
    client = ReplayClient(node, "replay", d)
    during = 0
    for _ in range(IN_PROCESS_KILLS):
        old = node.whereis("replay")
        await client.work(rng)
        ledger_before = ledger(d)
        during += await _kill_mid_checkpoint(node, "replay", rng, lambda old=old: node.kill(old))
        await eventually(lambda old=old: node.whereis("replay") not in (None, old), what="restart")
        await client.check_restart(ledger_before)
    assert ReplayMemory.restore(d).count <= client.next_id + CAPACITY
    print(f"replay: {IN_PROCESS_KILLS} node.kill, {during} before the checkpoint answered, 0 unrestorable")


async def test_qserver_survives_kills_during_checkpoints(node: Node, tmp_path: Path) -> None:
    rng = random.Random(11)
    path = tmp_path / "q" / "q.npz"
    spec = child(QServer, N_STATES, 2, name="q", checkpoint=str(path), checkpoint_every=0.003)
    await node.start_supervisor([spec], max_restarts=1000, max_seconds=1.0)
    client = QClient(node, "q")
    await client.begin()
    during = 0
    for _ in range(IN_PROCESS_KILLS):
        old = node.whereis("q")
        await client.work(rng)
        during += await _kill_mid_checkpoint(node, "q", rng, lambda old=old: node.kill(old))
        await eventually(lambda old=old: node.whereis("q") not in (None, old), what="restart")
        await client.begin()
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == ["q.npz"]
    print(f"qserver: {IN_PROCESS_KILLS} node.kill, {during} before the checkpoint answered, 0 unrestorable")


TREE = """
max_restarts = 100
max_seconds = 1
[[children]]
start = "beamrl.rl.replay_server:ReplayServer"
name = "replay"
args = [{capacity}]
kwargs = {{ checkpoint_dir = "{replay}", checkpoint_every = 0.003, ledger_every = 0.003, prioritized = true }}
[[children]]
start = "beamrl.rl.qserver:QServer"
name = "q"
args = [{n_states}, 2]
kwargs = {{ checkpoint = "{q}", checkpoint_every = 0.003 }}
"""


async def test_both_servers_survive_kill_9_of_their_node_during_checkpoints(node: Node, tmp_path: Path) -> None:
    rng = random.Random(12)
    d, qpath = tmp_path / "replay", tmp_path / "q" / "q.npz"
    tree = TREE.format(capacity=CAPACITY, replay=d.as_posix(), q=qpath.as_posix(), n_states=N_STATES)
    replay = q = None
    during = [0, 0]
    ledger_before = 0
    for i in range(OS_KILLS + 1):
        peer = start_peer(f"victim{i}", tree_text=tree)
        try:
            name = await node.connect(peer.address)
            if replay is None or q is None:
                replay, q = ReplayClient(node, ("replay", name), d), QClient(node, ("q", name))
            else:
                replay.target, q.target = ("replay", name), ("q", name)
                await replay.check_restart(ledger_before)
            await q.begin()
            if i == OS_KILLS:  # the last restart swept what the killed writers left half-written
                assert not [p.name for p in (*d.iterdir(), *qpath.parent.iterdir()) if p.name.endswith(".tmp")]
                break
            await replay.work(rng)
            await q.work(rng)
            ledger_before = ledger(d)
            calls = [
                asyncio.ensure_future(node.call(t, ["checkpoint"], timeout=10.0)) for t in (replay.target, q.target)
            ]
            await asyncio.sleep(rng.uniform(0.0, 0.004))  # a random moment to strike, not a wait
            peer.kill()  # SIGKILL: no terminate, no goodbye
            for k, call in enumerate(calls):
                if not call.done() or call.exception() is not None:  # killed before it answered
                    during[k] += 1
                call.cancel()  # no need to wait for the heartbeat to call the node lost
        finally:
            if peer.proc.poll() is None:
                assert peer.terminate() == 0, "".join(peer.output)
    print(f"kill -9: {OS_KILLS} of a node with both servers; {during} before the checkpoints answered")
