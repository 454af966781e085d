"""``beamrl train --tensorboard DIR``: the dashboard's learning scalars as TensorBoard event files.

CleanRL and Stable-Baselines3 users read their runs in TensorBoard; this writes the
same series the dashboard draws (``beamrl.dashboard.learning``) under tags
``charts/episodic_return``, ``charts/return_mean100``, ``eval/mean_return``,
``eval/success_rate``, ``charts/steps_per_second``, ``charts/epsilon``, for deep
runs ``losses/loss`` and ``charts/replay_size`` (and ``scalars/<name>`` for a trainer's
other scalars, e.g. ``scalars/param_lag/actor``), with the episode as the step.
It needs only the ``tensorboard`` package (the ``tensorboard`` extra), not
TensorFlow or torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from beamrl.dashboard.learning import LearningFeed
from beamrl.node import Node

TAGS = {
    "return": "charts/episodic_return",
    "return_mean": "charts/return_mean100",
    "eval_return": "eval/mean_return",
    "eval_success": "eval/success_rate",
    "steps_per_s": "charts/steps_per_second",
    "epsilon": "charts/epsilon",
    "loss": "losses/loss",
    "replay_size": "charts/replay_size",
}


def require_tensorboard() -> None:
    """Fail early, with the fix, when the ``tensorboard`` package is missing."""
    try:
        import tensorboard.summary.writer.event_file_writer  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            f"--tensorboard needs the tensorboard package ({exc}): pip install 'beamrl[tensorboard]'"
        ) from exc


class TensorBoardWriter:
    """Follows a recorder and appends its new points to an event file in ``logdir``."""

    def __init__(self, node: Node, logdir: str | os.PathLike[str], recorder: Any = "recorder", period: float = 1.0):
        require_tensorboard()
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.feed = LearningFeed(node, recorder, timeout=5.0)
        self.period = period
        self._writer = EventFileWriter(os.fspath(logdir))
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TensorBoardWriter:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="beamrl-tensorboard")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()  # the run's last episodes
        self._writer.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            await self.flush()

    async def flush(self) -> int:
        """Write what the recorder has that was not written yet; returns the number of scalars."""
        written = 0
        while True:
            update = await self.feed.poll()
            if update is None:
                return written
            written += self.write(update["points"])
            if not update["points"].get("return"):
                return written

    def write(self, points: dict[str, list[list[float]]]) -> int:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        now = time.time()
        n = 0
        for name, series in points.items():
            tag = TAGS.get(name, f"scalars/{name}")
            for x, y in series:
                if y is None:
                    continue
                summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(y))])
                self._writer.add_event(Event(wall_time=now, step=int(x), summary=summary))
                n += 1
        self._writer.flush()
        return n
