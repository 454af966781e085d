"""One data-parallel replica in its own OS process, for ``tests/deep/test_distributed.py``.

    python tests/deep/ddp_replica.py RANK WORLD_SIZE ADDRESS STEPS OUT_DIR [CHECKPOINT_DIR]

It starts a ``DataParallelLearner`` on a node, has it learn ``STEPS`` batches of its own
(``replica_batch(rank, step)``) and prints one JSON line: its rank, version, digest and
whether ``get_params`` was refused. Replica 0 also saves its policy to ``OUT_DIR/replica0.safetensors``
and, given ``CHECKPOINT_DIR``, resumes from (and checkpoints to) it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from beamrl import Node
from beamrl.errors import Rejected
from beamrl.rl.deep.config import config_for

CFG = dataclasses.asdict(
    config_for("dqn", "CartPole-v1", {"hidden": [16, 16], "batch_size": 8, "lr": 1e-2, "target_update": 3})
)
BATCH = 8


def replica_batch(rank: int, step: int) -> dict[str, np.ndarray]:
    """The batch replica ``rank`` learns at ``step``: different on every replica."""
    rng = np.random.default_rng(1000 * rank + step)
    return {
        "state": rng.normal(size=(BATCH, 4)).astype(np.float32),
        "next_state": rng.normal(size=(BATCH, 4)).astype(np.float32),
        "action": rng.integers(0, 2, BATCH),
        "reward": rng.normal(size=BATCH).astype(np.float32),
        "discount": np.where(rng.random(BATCH) < 0.2, 0.0, 0.99).astype(np.float32),
        "weights": rng.uniform(0.5, 1.0, BATCH).astype(np.float32),
    }


async def main(rank: int, world_size: int, address: str, steps: int, out: Path, checkpoint: str | None) -> None:
    from beamrl.rl.deep.distributed import DataParallelLearner
    from beamrl.rl.deep.params import save_params

    async with Node(f"replica{rank}") as node:
        pid = await node.start(
            DataParallelLearner,
            "dqn",
            "CartPole-v1",
            CFG,
            rank,  # replicas start apart: replicate() makes them rank 0's copies
            checkpoint,
            rank=rank,
            world_size=world_size,
            address=address,
        )
        for step in range(steps):
            await node.call(pid, ["learn", replica_batch(rank, step)], timeout=60.0)
        stats = await node.call(pid, ["stats"])
        try:
            _version, params = await node.call(pid, ["get_params", None])
            save_params(out / f"replica{rank}.safetensors", params)
            refused = ""
        except Rejected as exc:
            refused = str(exc)
        await node.stop(pid)
    print(json.dumps({"rank": rank, "version": stats["version"], "digest": stats["digest"], "refused": refused}))


if __name__ == "__main__":
    rank_, world_, address_, steps_, out_, *checkpoint_ = sys.argv[1:]
    asyncio.run(main(int(rank_), int(world_), address_, int(steps_), Path(out_), (checkpoint_ or [None])[0]))
