"""Live learning curves from a running trainer's recorder, as series of (x, y) points.

A ``LearningFeed`` asks the recorder ``["metrics", cursor]`` (a tabular run's
``beamrl.rl.training.recorder.Recorder.metrics_since``, a deep run's
``beamrl.rl.deep.metrics.RunMetrics.metrics_since``: the same reply shape) and turns
each reply into points on named series, x being the episode number:

=================  ==========================================================
``return``         each episode's return
``return_mean``    its moving mean over the last 100 episodes
``eval_return``    greedy evaluations: mean return
``eval_success``   greedy evaluations: success rate (tabular runs)
``steps_per_s``    environment steps per second over the last poll
``epsilon``        the exploring worker's epsilon (none for policy-gradient runs)
anything else      the recorder's ``scalars`` (``loss``, ``replay_size``,
                   ``param_lag/<actor>`` of deep and distributed runs)
=================  ==========================================================

plus ``marks``: the run's fault events (a crash injected, a process killed, a
worker restarted) at their episode, drawn on the curves as in ``curve.png``.
``poll()`` returns what is new; ``history()`` what a page that opens now needs
(each series thinned to at most ``max_points`` points).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from beamrl.dashboard.cluster import jsonable
from beamrl.errors import BeamError
from beamrl.node import Node

MEAN_WINDOW = 100


class Series:
    """Points of one curve; keeps every ``stride``-th point, doubling the stride when full."""

    __slots__ = ("_seen", "max_points", "points", "stride")

    def __init__(self, max_points: int = 2000) -> None:
        self.max_points = max_points
        self.points: list[list[float]] = []
        self.stride = 1
        self._seen = 0

    def add(self, x: float, y: float) -> None:
        if self._seen % self.stride == 0:
            self.points.append([x, y])
            if len(self.points) > self.max_points:
                self.points = self.points[::2]
                self.stride *= 2
        self._seen += 1


class LearningFeed:
    """Follows one recorder (``target``, e.g. ``("recorder", "learner")``)."""

    def __init__(self, node: Node, target: Any, *, timeout: float = 1.0, max_points: int = 2000) -> None:
        self.node = node
        self.target = target
        self.timeout = timeout
        self.max_points = max_points
        self.cursor: dict[str, int] = {}
        self.series: dict[str, Series] = {}
        self.marks: list[dict[str, Any]] = []
        self.run: dict[str, Any] = {}
        self._window: deque[float] = deque(maxlen=MEAN_WINDOW)
        self._window_sum = 0.0
        self._last_speed: tuple[float, int] | None = None  # (wall, steps) at the previous poll

    async def poll(self) -> dict[str, Any] | None:
        """Ask the recorder what is new; None when it did not answer (gone, restarting)."""
        try:
            reply = await self.node.call(self.target, ["metrics", dict(self.cursor)], timeout=self.timeout)
        except (BeamError, TimeoutError):
            return None
        return self.absorb(reply)

    def absorb(self, reply: dict[str, Any]) -> dict[str, Any]:
        """Turn one recorder reply into new points (also kept for ``history``)."""
        new: dict[str, list[list[float]]] = {}

        def add(name: str, x: float, y: float) -> None:
            series = self.series.get(name)
            if series is None:
                series = self.series[name] = Series(self.max_points)
            series.add(x, y)
            new.setdefault(name, []).append([x, y])

        rows = reply["rows"]
        window = self._window
        for episode, ret in zip(rows["episode"], rows["return"], strict=True):
            ret = float(ret)
            if len(window) == window.maxlen:
                self._window_sum -= window[0]
            window.append(ret)
            self._window_sum += ret
            add("return", episode, ret)
            add("return_mean", episode, self._window_sum / len(window))
        if rows["episode"]:
            last = rows["episode"][-1]
            if rows["epsilon"][-1] is not None:
                add("epsilon", last, float(rows["epsilon"][-1]))
            wall, steps = float(reply["wall"]), int(reply["steps"])
            if self._last_speed is not None and wall > self._last_speed[0]:
                add("steps_per_s", last, (steps - self._last_speed[1]) / (wall - self._last_speed[0]))
            self._last_speed = (wall, steps)
        for ev in reply["evals"]:
            add("eval_return", ev["episode"], ev["mean_return"])
            if ev.get("success_rate") is not None:
                add("eval_success", ev["episode"], ev["success_rate"])
        for name, points in (reply.get("scalars") or {}).items():
            for x, y in points:
                add(str(name), x, y)
        marks = [{"x": e["episode"], "text": e["event"]} for e in reply["events"]]
        self.marks.extend(marks)
        self.cursor = dict(reply["cursor"])
        self.run = {**jsonable(reply.get("run") or {}), "finished": bool(reply.get("finished"))}
        return jsonable({"run": self.run, "points": new, "marks": marks})

    def history(self) -> dict[str, Any]:
        """Everything so far, thinned: what a page that opens now draws first."""
        return jsonable(
            {
                "run": self.run,
                "points": {name: s.points for name, s in self.series.items()},
                "marks": self.marks,
            }
        )


async def watch(node: Node, target: Any, timeout: float = 1.0) -> dict[str, Any] | None:
    """An environment process now: its env id, episode and step counts, text rendering, last observation.

    The text keeps gymnasium's ANSI colours (Taxi's); the page turns them into colours.
    """
    try:
        info = await node.call(target, ["info"], timeout=timeout)
        text = await node.call(target, ["render"], timeout=timeout)
        obs = await node.call(target, ["observe"], timeout=timeout)
    except (BeamError, TimeoutError):
        return None
    return {
        "env_id": str(info.get("env_id")),
        "episodes": info.get("episodes"),
        "steps": info.get("steps"),
        "text": str(text),
        "obs": jsonable(obs.tolist() if hasattr(obs, "tolist") else obs),
    }
