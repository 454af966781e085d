"""A hypothesis state machine: random crashes, normal exits and kills against a reference model.

The model is the OTP rulebook in a few lines (strategies, restart types,
intensity); after every step the live tree must match it: which children exist,
which run, which got a new pid, the restart counts, and whether the supervisor
itself is still alive.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvloop
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from beamrl import Down, Node, NoProc, child
from beamrl.testing import Counter


@dataclass
class ModelChild:
    name: str
    restart: str
    running: bool = True
    restarts: int = 0
    generation: int = 0  # bumps whenever the model says a new pid appears


class SupervisorModel:
    """What OTP says a supervisor does, without any asyncio."""

    def __init__(self, strategy: str, max_restarts: int, restarts: list[str]) -> None:
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.children = [ModelChild(f"c{i}", r) for i, r in enumerate(restarts)]
        self.alive = True
        self.restart_count = 0  # the window (1000 s) never expires during a test

    def exit(self, index: int, abnormal: bool) -> None:
        failed = self.children[index]
        failed.running = False
        wants = failed.restart == "permanent" or (failed.restart == "transient" and abnormal)
        if not wants:
            if failed.restart == "temporary":
                self.children.remove(failed)
            return
        self.restart_count += 1
        if self.restart_count > self.max_restarts:
            self.alive = False
            for c in self.children:
                c.running = False
            return
        if self.strategy == "one_for_one":
            group = [failed]
        elif self.strategy == "one_for_all":
            group = list(self.children)
        else:
            group = self.children[self.children.index(failed) :]
        for c in group:
            if c is not failed and c.restart == "temporary":
                self.children.remove(c)
                continue
            c.running = True
            c.restarts += 1
            c.generation += 1


class SupervisionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = uvloop.new_event_loop()
        self.node = Node("model")
        self.run(self.node.start_node())
        self.model: SupervisorModel | None = None
        self.sup: Any = None
        self.pids: dict[str, Any] = {}
        self.generations: dict[str, int] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.node.shutdown())
        self.loop.close()

    @initialize(
        strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
        max_restarts=st.integers(0, 4),
        restarts=st.lists(st.sampled_from(["permanent", "transient", "temporary"]), min_size=1, max_size=4),
    )
    def start_tree(self, strategy: str, max_restarts: int, restarts: list[str]) -> None:
        self.model = SupervisorModel(strategy, max_restarts, restarts)
        specs = [child(Counter, 0, name=f"c{i}", restart=r) for i, r in enumerate(restarts)]
        self.sup = self.run(
            self.node.start_supervisor(specs, strategy=strategy, max_restarts=max_restarts, max_seconds=1000.0)
        )
        self.sup_ref = self.node.monitor(self.sup)
        self.pids = {c.name: self.node.whereis(c.name) for c in self.model.children}

    def _running(self) -> list[int]:
        assert self.model is not None
        return [i for i, c in enumerate(self.model.children) if c.running] if self.model.alive else []

    async def _end_child(self, name: str, how: str) -> None:
        pid = self.node.whereis(name)
        ref = self.node.monitor(pid)  # type: ignore[arg-type]
        if how == "crash":
            self.node.cast(pid, ["crash", "random failure"])  # type: ignore[arg-type]
        elif how == "normal":
            self.node.cast(pid, ["stop", "normal"])  # type: ignore[arg-type]
        else:
            self.node.kill(pid)  # type: ignore[arg-type]
        while True:  # wait for this child's Down; the supervisor got its Exit before it
            message = await self.node.receive(timeout=5)
            if isinstance(message, Down) and message.ref == ref:
                return

    @precondition(lambda self: self.model is not None and bool(self._running()))
    @rule(data=st.data(), how=st.sampled_from(["crash", "normal", "kill"]))
    def end_a_child(self, data: st.DataObject, how: str) -> None:
        assert self.model is not None
        index = data.draw(st.sampled_from(self._running()))
        name = self.model.children[index].name
        self.run(self._end_child(name, how))
        self.model.exit(index, abnormal=how != "normal")

    @rule()
    def running_children_answer_calls(self) -> None:
        if self.model is None:
            return
        for i in self._running():
            assert self.run(self.node.call(self.model.children[i].name, ["get"])) == 0

    @invariant()
    def live_tree_matches_model(self) -> None:
        if self.model is None:
            return
        model = self.model
        if not model.alive:
            down = self.run(self.node.receive(timeout=5))
            while not (isinstance(down, Down) and down.ref == self.sup_ref):
                down = self.run(self.node.receive(timeout=5))
            assert down.reason == "shutdown"
            assert all(self.node.whereis(c.name) is None for c in model.children)
            self.model = None  # nothing left to compare
            return
        try:
            live = self.run(self.node.which_children(self.sup))
        except NoProc as exc:  # pragma: no cover - a mismatch, reported clearly
            raise AssertionError("the supervisor died but the model says it lives") from exc
        assert [c.id for c in live] == [c.name for c in model.children]
        for got, want in zip(live, model.children, strict=True):
            assert (got.pid is not None) == want.running, (got, want)
            assert got.restarts == want.restarts, (got, want)
            if want.running:
                old = self.pids.get(want.name)
                changed = got.pid != old
                assert changed == (want.generation > self.generations.get(want.name, 0)), (got, want)
        self.generations = {c.name: c.generation for c in model.children}
        self.pids = {c.id: c.pid for c in live if c.pid is not None} | {
            c.name: self.pids.get(c.name) for c in model.children if not c.running
        }


SupervisionMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_supervisor_matches_the_model = SupervisionMachine.TestCase


def test_model_itself_follows_the_rulebook() -> None:
    m = SupervisorModel("rest_for_one", 1, ["permanent", "transient", "temporary"])
    m.exit(1, abnormal=False)  # transient, normal: stays down
    assert [c.running for c in m.children] == [True, False, True]
    m.exit(0, abnormal=True)  # permanent: rest_for_one restarts all from 0; temporary forgotten
    assert [c.name for c in m.children] == ["c0", "c1"]
    assert [c.running for c in m.children] == [True, True]
    m.exit(0, abnormal=True)  # second restart > max_restarts=1
    assert not m.alive
    asyncio.get_event_loop_policy()  # the model needs no loop
