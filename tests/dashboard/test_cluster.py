"""ClusterView: what the dashboard knows of the nodes it polls (no web server involved)."""

from __future__ import annotations

import logging

import pytest

from beamrl import Node, child
from beamrl.dashboard.cluster import ClusterView, jsonable, parse_pid_key, pid_key
from beamrl.pid import Pid
from beamrl.testing import Counter, eventually


def test_pid_keys_round_trip_and_bad_ones_are_named() -> None:
    pid = Pid("alpha", 12, 345)
    assert parse_pid_key(pid_key(pid)) == pid
    for bad, problem in [("alpha/x/1", "looks like"), ("a/1", "looks like"), (7, "string")]:
        with pytest.raises(ValueError, match=problem):
            parse_pid_key(bad)


def test_jsonable_turns_wire_data_into_json() -> None:
    import numpy as np

    data = {"pid": Pid("a", 1, 2), 3: (1.5, float("nan"), np.int64(4)), "ok": [True, None]}
    assert jsonable(data) == {"pid": "#PID<a.1>", "3": [1.5, None, 4], "ok": [True, None]}


async def test_a_view_of_two_nodes_follows_crashes_and_a_lost_node() -> None:
    async with Node("cv-dash", heartbeat_timeout=1.0) as dash:
        view = ClusterView(dash)
        await view.start()
        async with Node("cv-alpha", listen="tcp://127.0.0.1:0") as alpha:
            await alpha.start_supervisor([child(Counter, 0, name="c1"), child(Counter, 0, name="c2")], name="sup")
            await dash.connect(alpha.address)
            await view.poll()
            nodes = {n["name"]: n for n in view.state()}
            assert nodes["cv-alpha"]["status"] == "up" and nodes["cv-alpha"]["address"] == alpha.address
            assert view.state()[0]["name"] == "cv-dash" and view.state()[0]["self"]
            (sup,) = nodes["cv-alpha"]["tree"]
            assert [(c["name"], c["cls"], c["restarts"]) for c in sup["children"]] == [
                ("c1", "Counter", 0),
                ("c2", "Counter", 0),
            ]
            assert parse_pid_key(sup["children"][0]["key"]) == alpha.whereis("c1")
            for _ in range(20):
                await dash.call(("c2", "cv-alpha"), ["get"])
            await view.poll()
            ((_, c2),) = view.find(lambda e: e["name"] == "c2")
            assert c2["rate"] > 0  # 20 calls since the last poll
            view.take_events()
            with pytest.raises(Exception, match="bang"):
                await dash.call(("c1", "cv-alpha"), ["crash", "bang"])

            async def restarted() -> bool:
                await view.poll()
                c1 = view.find(lambda e: e["name"] == "c1")
                return bool(c1) and c1[0][1]["restarts"] == 1

            await eventually(restarted, what="c1 shown restarted")
            kinds = [(e["kind"], e.get("name")) for e in view.take_events()]
            assert ("crash", "c1") in kinds and ("restart", "c1") in kinds
            crash = next(e for e in view.events if e["kind"] == "crash")
            assert crash["exc_type"] == "RuntimeError" and crash["exc_message"] == "bang"
            assert crash["node"] == "cv-alpha" and crash["key"] is not None

        async def alpha_down() -> bool:
            await view.poll()
            return {n["name"]: n["status"] for n in view.state()}["cv-alpha"] == "down"

        await eventually(alpha_down, timeout=5.0, what="cv-alpha shown down")
        assert view.find(lambda e: e["name"] == "c1") == []  # a down node's processes are not targets


async def test_a_client_only_node_is_shown_while_connected_then_dropped() -> None:
    async with Node("cv-learner", listen="tcp://127.0.0.1:0") as learner:
        view = ClusterView(learner)
        await view.start()
        async with Node("cv-shell") as shell:
            await shell.connect(learner.address)
            await view.poll()
            assert {n["name"]: n["address"] for n in view.state()} == {
                "cv-learner": learner.address,
                "cv-shell": None,
            }

        async def gone() -> bool:
            await view.poll()
            return [n["name"] for n in view.state()] == ["cv-learner"]

        await eventually(gone, timeout=5.0, what="the shell dropped from the view")


async def test_a_node_back_after_the_transport_gave_up_on_it_reappears(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from beamrl.transport import membership

    monkeypatch.setattr(membership, "MESH_REDIAL", 0.2)  # the transport redials a learned peer this long
    caplog.set_level(logging.INFO, logger="beamrl")
    async with (
        Node("cv-a", listen="tcp://127.0.0.1:0") as a,
        Node("cv-watch", heartbeat_interval=0.2, heartbeat_timeout=1.0) as watcher,
    ):
        view = ClusterView(watcher, redial_after=0.5)
        await view.start()

        async def status(name: str, wanted: str) -> bool:
            await view.poll()
            return {n["name"]: n["status"] for n in view.state()}.get(name) == wanted

        async with Node("cv-b", listen="tcp://127.0.0.1:0") as b:
            address = b.address
            assert address is not None
            await b.connect(a.address)
            await watcher.connect(a.address)  # cv-b is learned from cv-a's welcome
            await eventually(lambda: status("cv-b", "up"), what="cv-b up")

        await eventually(lambda: status("cv-b", "down"), timeout=5.0, what="cv-b down")
        gave_up = "gave up redialling cv-b"
        await eventually(lambda: gave_up in caplog.text, timeout=10.0, what="the transport giving up on cv-b")
        async with Node("cv-b", listen=address):  # back at its address, joining nobody
            await eventually(lambda: status("cv-b", "up"), timeout=10.0, what="cv-b redialled and up again")
        await view.close()
