"""Fault injection for demos and tests: crash a worker, or kill a learner-side process.

A run's ``RunSpec.chaos`` lists faults by the episode they fire at::

    {"at": 300, "fault": 1}        worker 1 raises before its next batch; its supervisor restarts it
    {"at": 300, "kill": "qserver"} the named process is killed; it restarts from its checkpoint

The recorder calls ``inject`` when episode ``at`` is reported and logs what it returns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from beamrl.api import call, cast
from beamrl.rl.training.progress import say


async def inject(node: Any, workers: dict[int, Any], episode: int, chaos: dict[str, Any]) -> list[dict[str, Any]]:
    """Carry out one chaos entry on ``node``; returns the events to record."""
    events: list[dict[str, Any]] = []
    if "fault" in chaos:
        index = int(chaos["fault"])
        target = workers.get(index)
        if target is not None:
            say(f"* episode {episode}: injecting a fault into worker {index} ({target} on node {target.node!r})")
            events.append({"episode": episode, "event": f"fault injected into worker {index}"})
            # the node's event log
            node.events.record("fault", f"fault injected into worker {index}", pid=target, episode=episode)
            cast(target, ["inject_fault"])
    if "kill" in chaos:
        name = str(chaos["kill"])
        old = node.whereis(name)
        if old is not None:
            say(f"* episode {episode}: killing {name} ({old}); its supervisor restarts it from its checkpoint")
            # the node's event log
            node.events.record("fault", f"{name} killed by the run's chaos", pid=old, name=name, episode=episode)
            node.kill(old)
            for _ in range(1000):  # the supervisor restarts it within a millisecond or so
                new = node.whereis(name)
                if new is not None and new != old:
                    break
                await asyncio.sleep(0.001)
            info = await call(name, ["info"])
            say(f"  {name} is back as {node.whereis(name)}: {info}")
            events.append({"episode": episode, "event": f"{name} killed", "after_restart": info})
    return events
