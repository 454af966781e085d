"""EnvServer rows of ``beamrl bench env``: stepping an env through a local and a remote call."""

from __future__ import annotations

import time
from typing import Any

from beamrl.launch import NodeProcess
from beamrl.node import Node
from beamrl.node import run as run_on_uvloop
from beamrl.rl.env_server import EnvServer

ENV_TREE = """
[[children]]
start = "beamrl.rl.env_server:EnvServer"
name = "env"
args = ["FrozenLake-v1"]
"""


async def _steps_per_second(node: Node, target: Any, steps: int) -> float:
    await node.call(target, ["reset", 0])
    start = time.perf_counter()
    for i in range(steps):
        exp = await node.call(target, ["step", i & 3])
        if exp.done:
            await node.call(target, ["reset"])
    return steps / (time.perf_counter() - start)


async def _local(steps: int) -> float:
    async with Node("bench-env") as node:
        await node.start(EnvServer, "FrozenLake-v1", name="env")
        return max([await _steps_per_second(node, "env", steps) for _ in range(3)])


async def _remote(address: str, steps: int) -> float:
    async with Node("bench-env-client") as node:
        peer = await node.connect(address)
        return await _steps_per_second(node, ("env", peer), steps)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """EnvServer steps/s through a local call (target >= 30,000/s) and through a remote call."""
    steps = 5_000 if quick else 30_000
    local = run_on_uvloop(_local(steps))
    with NodeProcess("bench-env-server", tree_text=ENV_TREE) as server:
        remote = run_on_uvloop(_remote(server.address, steps // 5))
    return [
        {
            "name": "EnvServer FrozenLake-v1 step, local call",
            "value": local,
            "unit": "steps/s",
            "target": ">= 30,000/s",
        },
        {"name": "EnvServer FrozenLake-v1 step, remote call", "value": remote, "unit": "steps/s"},
    ]
