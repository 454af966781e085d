"""Actors fill a prioritized ReplayServer while a learner samples it and updates priorities.

    python examples/replay_across_nodes.py                  # everything on one node
    beamrl node start --tree supervisors/replay.toml --listen tcp://127.0.0.1:7001
    python examples/replay_across_nodes.py --remote tcp://127.0.0.1:7001   # the memory on that node

Four actor processes explore FrozenLake (not slippery) at random and cast their steps
to the memory in batches of 50; one learner process samples 64 transitions at a time,
does a tabular Q-learning update weighted by the importance-sampling weights, and
casts the new priorities (|TD error|) back. Nobody knows whether the memory is local
or remote: only its address changes. At the end the learner's greedy policy walks
the lake.

    Smoke expect: memory: 8,000 transitions held
    Smoke expect: greedy policy
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import beamrl
from beamrl import Down, Node
from beamrl.rl import make
from beamrl.rl.replay_server import ReplayServer

ACTORS = 4
STEPS = 2_000  # per actor
SEND_EVERY = 50
UPDATES = 600
BATCH = 64


async def actor(i: int, replay: Any) -> None:
    """Random exploration; a batch of ``Exp`` every 50 steps, then a call as flow control."""
    env = make("FrozenLake-v1", is_slippery=False)
    rng = np.random.default_rng(i)
    exp = env.reset(seed=i)
    steps = []
    for _ in range(STEPS):
        exp = env.step(int(rng.integers(4)))
        steps.append(exp)
        if exp.done:
            exp = env.reset()
        if len(steps) == SEND_EVERY:
            beamrl.cast(replay, ["add_batch", steps, None])
            steps = []
            await beamrl.call(replay, ["len"])


async def learner(replay: Any, q: np.ndarray) -> None:
    """Prioritized, IS-weighted Q-learning from replay: q[s, a] += lr * mean(w * td)."""
    while await beamrl.call(replay, ["len"]) < BATCH:
        pass
    for _ in range(UPDATES):
        b = await beamrl.call(replay, ["sample", BATCH])
        s, a, ns = b["state"], b["action"], b["next_state"]
        td = b["reward"] + b["discount"] * q[ns].max(axis=1) - q[s, a]
        seen = np.zeros_like(q)
        np.add.at(seen, (s, a), 1.0)  # a pair drawn k times moves by the mean of its k updates
        np.add.at(q, (s, a), 0.5 * b["weights"] * td / seen[s, a])
        beamrl.cast(replay, ["update_priorities", b["indices"], np.abs(td)])


def walk(q: np.ndarray) -> tuple[bool, int]:
    """The greedy policy's episode: (reached the goal, steps)."""
    env = make("FrozenLake-v1", is_slippery=False)
    exp = env.reset(seed=0)
    steps = 0
    while not exp.done and steps < 100:
        exp = env.step(int(q[exp.next_state].argmax()))
        steps += 1
    return exp.reward > 0, steps


async def main(remote: str | None) -> None:
    t0 = time.monotonic()
    async with Node("replay-demo") as node:
        if remote is None:
            await node.start(ReplayServer, 100_000, prioritized=True, seed=0, name="replay")
            replay: Any = "replay"
        else:
            replay = ("replay", await node.connect(remote))
        q = np.zeros((16, 4))
        pids = [await node.spawn(actor, i, replay) for i in range(ACTORS)]
        pids.append(await node.spawn(learner, replay, q))
        refs = {node.monitor(pid) for pid in pids}
        while refs:
            down = await node.receive(timeout=60)
            assert isinstance(down, Down)
            if down.reason != "normal":
                raise SystemExit(f"process {down.pid} failed: {down.reason}")
            refs.discard(down.ref)
        stats = await node.call(replay, ["stats"])
        print(f"memory: {stats['len']:,} transitions held, {stats['total_added']:,} added, {stats['samples']} batches")
        print(f"value of the start state: {q[0].max():.3f} (gamma 0.99, 6 steps to the goal: {0.99**5:.3f})")
        reached, steps = walk(q)
        print(f"greedy policy {'reaches the goal' if reached else 'does not reach the goal'} in {steps} steps")
        print(f"done in {time.monotonic() - t0:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="actors and a learner around a ReplayServer")
    parser.add_argument("--remote", metavar="ADDR", help="use the 'replay' server of the node at ADDR")
    beamrl.run(main(parser.parse_args().remote))
