"""``RunMetrics``: a deep run's live metrics, asked for by dashboards with a cursor (torch-free).

    pid = await node.start(RunMetrics, {"algo": "dqn", "env_id": "CartPole-v1", "steps": 50_000}, name="recorder")
    await node.call(pid, ["record", {"rows": rows, "events": [], "steps": 1200, "done": False,
                                     "gauges": {"replay_size": 1200}}])   # the run's driver, each poll
    await node.call(pid, ["metrics", {}])        # a dashboard: what came after the cursor (see metrics_since)

A deep run's acting process (``agent``, or with ``--split`` ``actor``) hands its new
metric rows to whoever asks for ``["progress"]``, once; its driver (``beamrl.rl.deep.run``,
and Ape-X's, ``beamrl.rl.apex.run``) writes them to ``metrics.csv`` and records them
here, in a process of its own, so that the history outlives a killed agent and a page
that opens late still gets all of it. Rows are the acting processes' (``step``,
``episode_return``, ``episode_length``, ``loss``, ``epsilon``; or ``step``,
``eval_mean_return``); ``gauges`` are readings of the moment (``replay_size``,
``param_lag/<actor>``, ``inserts_per_s``, ...), kept as one point per episode.
It answers the tabular ``Recorder``'s ``["metrics", cursor]`` request with the same reply
shape (``beamrl.dashboard.learning`` reads both), x being the episode number, with
``loss`` and the gauges as ``scalars``.

A driver that polls processes of its own (Ape-X's, A3C's) reaches its recorder and the
run's observers through one ``RunWatch``::

    async with Node(...) as node, RunWatch(node, observers, run.events) as watch:   # observers up first
        await node.start_supervisor([recorder_child({"algo": "a3c", ...}), ...], name="a3c")
        await watch.report(rows, steps, gauges, done)   # each poll: its rows, the events not told yet
        await watch.close()                             # the last rows reach the pages, then stop the tree
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Self

from beamrl.child_spec import ChildSpec, child
from beamrl.errors import CallTimeout, NoProc, ProcessCrashed, Rejected
from beamrl.gen_server import GenServer
from beamrl.node import Node
from beamrl.process import From
from beamrl.reprs import short_repr

__all__ = ["ROW_COLUMNS", "Observer", "RunMetrics", "RunWatch", "record", "recorder_child"]

log = logging.getLogger("beamrl.rl.deep")

#: what a run's ``observers=`` take: given the run's node, a context that watches it while it runs
Observer = Callable[[Node], AbstractAsyncContextManager[Any]]

#: the columns of a ``["metrics", cursor]`` reply's rows, one row per episode
ROW_COLUMNS = ("episode", "return", "length", "epsilon", "step", "wall")
PAGE = 20_000


def _finite(value: Any) -> float | None:
    """``value`` as a float, or None for a missing or non-finite one (JSON has no NaN)."""
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def event_text(event: dict[str, Any]) -> str:
    """``{"event": "killed", "name": "agent"}`` -> ``"agent killed"``; actor_lost of actor 1 -> ``"actor lost (1)"``
    (and worker_lost of an A3C worker 1, ``"worker lost (1)"``)."""
    kind = str(event.get("event", "event")).replace("_", " ")
    who = event.get("name") or event.get("target")
    text = f"{who} {kind}" if who else kind
    index = event.get("actor", event.get("worker"))
    return text if index is None else f"{text} ({index})"


async def record(node: Node, request: list[Any], target: Any = "recorder") -> None:
    """Hand the run's recorder what a driver read; a recorder that is restarting misses it (logged)."""
    try:
        await node.call(target, request, timeout=5.0)
    except (NoProc, CallTimeout, ProcessCrashed, Rejected) as e:
        log.warning("the run's recorder did not take %s: %s", request[0], e)


def recorder_child(run: dict[str, Any]) -> ChildSpec:
    """The ``recorder`` of a run's tree: ``RunMetrics`` with ``run`` (algo, env id, budget, ``absent``)."""
    return child("beamrl.rl.deep.metrics:RunMetrics", run, name="recorder")


class RunWatch:
    """A polling driver's side of its run's recorder (see the module docstring).

    ``observers`` are entered on ``__aenter__``, before the driver starts its tree, and
    left on ``close()`` (or on leaving the block); ``events`` is the driver's own list of
    the run's events, which it only appends to: each ``report`` hands over the new ones.
    """

    def __init__(
        self, node: Node, observers: Sequence[Observer], events: list[dict[str, Any]], target: Any = "recorder"
    ) -> None:
        self.node, self.observers, self.events, self.target = node, list(observers), events, target
        self.told = 0  #: events handed to the recorder so far
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        for observer in self.observers:
            await self._stack.enter_async_context(observer(self.node))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Leave the observers (they take the recorder's last rows): call it before the tree stops."""
        await self._stack.aclose()

    async def report(self, rows: list[dict[str, Any]], steps: int, gauges: dict[str, Any], done: bool) -> None:
        """One poll: its rows (episodes, evaluations), the events since the last report, the gauges."""
        progress = {"rows": rows, "events": self.events[self.told :], "steps": steps, "done": done, "gauges": gauges}
        self.told = len(self.events)
        await record(self.node, ["record", progress], self.target)


class RunMetrics(GenServer):
    """See the module docstring. ``run``: what the page says the run is (algo, env id, budget; ``absent``:
    the dashboard's series this run never has);
    ``page``: the most episode rows one reply carries."""

    async def init(self, run: dict[str, Any], page: int = PAGE) -> None:
        if page < 1:
            raise ValueError(f"page must be at least one row, got {page}")
        self.run = dict(run)
        self.page = page
        self.rows: list[tuple[int, float, int | None, float | None, int, float]] = []
        self.evals: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.scalars: list[tuple[str, int, float]] = []  # (name, episode, value), in arrival order
        self._gauged = 0  # the episode of the last gauge reading
        self.steps = 0
        self.finished = False
        self.t0 = time.monotonic()

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["record", dict(progress)]:
                try:
                    return self.record(progress)
                except (KeyError, TypeError, ValueError) as exc:
                    raise Rejected(f"record takes an agent's progress reply: {exc!r:.200}") from exc
            case ["record_event", dict(event)]:
                self.events.append({"episode": len(self.rows), "event": event_text(event)})
                return len(self.events)
            case ["metrics", dict(cursor)]:
                return self.metrics_since(cursor)
        raise Rejected(f"RunMetrics does not understand {short_repr(request)}")

    def record(self, progress: dict[str, Any]) -> int:
        """Keep one poll's rows, events and gauges; returns the episodes so far."""
        wall = time.monotonic() - self.t0
        for row in progress["rows"]:
            if "episode_return" in row:
                episode = len(self.rows) + 1
                self.rows.append(
                    (
                        episode,
                        float(row["episode_return"]),
                        None if row.get("episode_length") is None else int(row["episode_length"]),
                        _finite(row.get("epsilon")),
                        int(row["step"]),
                        wall,
                    )
                )
                if (loss := _finite(row.get("loss"))) is not None:
                    self.scalars.append(("loss", episode, loss))
            if row.get("eval_mean_return") is not None:
                ev = {"episode": len(self.rows), "mean_return": float(row["eval_mean_return"])}
                self.evals.append(ev | {"step": int(row["step"])})
        for event in progress["events"]:
            self.events.append({"episode": len(self.rows), "event": event_text(event)})
        episode = len(self.rows)
        if episode > self._gauged:  # gauges: one point per episode, the latest reading
            self._gauged = episode
            for name, value in (progress.get("gauges") or {}).items():
                if (y := _finite(value)) is not None:
                    self.scalars.append((str(name), episode, y))
        self.steps = int(progress["steps"])
        self.finished = bool(progress.get("done"))
        return episode

    def metrics_since(self, cursor: dict[str, Any]) -> dict[str, Any]:
        """What was added after ``cursor`` (``{"rows": r, "evals": e, "events": v, "scalars": s}``, ``{}`` at first).

        The reply has the tabular ``Recorder.metrics_since`` shape: the next cursor, up to
        ``page`` episode rows as columns (``ROW_COLUMNS``), the new evaluations and events,
        ``scalars`` (name -> ``[[episode, value], ...]``), the run, env steps and wall time.
        """
        r, e, v, s = (max(0, int(cursor.get(k, 0))) for k in ("rows", "evals", "events", "scalars"))
        rows = self.rows[r : r + self.page]
        cols: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * len(ROW_COLUMNS)
        end = r + len(rows)  # scalars up to the last episode sent: a reader paging through keeps x in order
        new = self.scalars[s:]
        taken = next((i for i, (_, x, _) in enumerate(new) if x > end), len(new))
        scalars: dict[str, list[list[float]]] = {}
        for name, x, y in new[:taken]:
            scalars.setdefault(name, []).append([x, y])
        next_cursor = {"rows": end, "evals": len(self.evals), "events": len(self.events), "scalars": s + taken}
        return {
            "cursor": next_cursor,
            "rows": {name: list(col) for name, col in zip(ROW_COLUMNS, cols, strict=True)},
            "evals": self.evals[e:],
            "events": self.events[v:],
            "run": self.run,
            "steps": self.steps,
            "wall": time.monotonic() - self.t0,
            "finished": self.finished,
            "scalars": scalars,
        }
