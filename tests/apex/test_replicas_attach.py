"""``--attach-learner``: Ape-X learner replicas on nodes started elsewhere, and what is refused."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from beamrl import GenServer, Node
from beamrl.process import From
from beamrl.rl.apex.config import apex_config
from beamrl.rl.apex.replicas import LearnerReplicas, group_address
from beamrl.trees import tree_path
from tests import ROOT, start_peer
from tests.cli.test_cli_errors import beamrl, refused

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

SMALL = ["--set", "hidden=[32,32]", "--set", "batch_size=64", "--set", "min_replay=500", "--set", "eval_every=5000"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


async def test_the_readme_replica_recipe_over_curve_on_loopback(tmp_path: Path) -> None:
    """Replica 1 on a node started from nodes/learner-replica.toml (as on another machine), an actor node
    from nodes/actor.toml, the learner from nodes/learner.toml attaching both by name, all over CURVE."""
    boxes = {"learner": tmp_path / "learner-box", "gpu-replica-1": tmp_path / "gpu", "pi-actor-1": tmp_path / "pi"}
    for name, directory in boxes.items():
        assert beamrl("keys", "generate", str(directory), "--name", name, cwd=tmp_path).returncode == 0
    for name, directory in boxes.items():  # the learner trusts both; each of them trusts the learner
        if name != "learner":
            (directory / "learner.key").write_bytes((boxes["learner"] / "learner.key").read_bytes())
            (boxes["learner"] / f"{name}.key").write_bytes((directory / f"{name}.key").read_bytes())
    replica = start_peer(
        "gpu-replica-1", str(ROOT / "nodes/learner-replica.toml"), "--keys", str(boxes["gpu-replica-1"])
    )
    actor = start_peer("pi-actor-1", str(ROOT / "nodes/actor.toml"), "--keys", str(boxes["pi-actor-1"]))
    try:
        port = _free_port()
        result = await asyncio.to_thread(
            beamrl,
            *("train", "apex-dqn", "CartPole-v1", "--node", str(ROOT / "nodes/learner.toml")),
            *("--listen", "tcp://127.0.0.1:0", "--keys", str(boxes["learner"])),
            *("--attach", f"{actor.address}#pi-actor-1", "--attach-learner", f"{replica.address}#gpu-replica-1"),
            *("--set", "learners=2", "--set", f"group_port={port}", *SMALL),
            *("--steps", "6000", "--out", "run", "--quiet"),
            cwd=tmp_path,
            timeout=150,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        learners = summary["learners"]
        assert summary["actor_nodes"] == ["pi-actor-1"] and learners["nodes"] == ["gpu-replica-1"]
        assert not list((tmp_path / "run").glob("learner-learner*.log"))  # no loopback replica node was started
        assert learners["group"] == f"tcp://127.0.0.1:{port}"  # the learner's --listen host, the pinned port
        assert learners["versions"][0] == learners["versions"][1] > 0
        assert learners["loop_updates"][0] == learners["loop_updates"][1] == learners["versions"][0]
        assert learners["digests"][0] == learners["digests"][1], "the replicas' weights drifted apart"
        async with Node("learner", listen="tcp://127.0.0.1:0", keys=str(boxes["learner"])) as node:
            name = await node.connect(replica.address)  # still up, its replica stopped: ready for a next run
            assert await node.which_children(("workers", name)) == []
            info = await node.call(("replica-host", name), ["info"])
            assert info["kind"] == "learner-replica" and info["torch"]
    finally:
        assert actor.terminate() == 0, "".join(actor.output)
        assert replica.terminate() == 0, "".join(replica.output)


def test_an_actor_node_is_refused_as_a_learner_replica(tmp_path: Path) -> None:
    actor = start_peer("pi-actor-1", tree=tree_path("actor_node.toml"))
    try:
        args = ["--nodes", "1", "--steps", "1000", "--set", "learners=2", "--attach-learner", actor.address]
        result = beamrl("train", "apex-dqn", "CartPole-v1", "--out", "run", *args, cwd=tmp_path, timeout=60)
        message = refused(result, f"--attach-learner {actor.address}: node 'pi-actor-1' is not a learner-replica node")
        assert "nodes/learner-replica.toml" in message
        assert not (tmp_path / "run" / "learner-actor1.log").exists()  # refused before the actor nodes started
    finally:
        assert actor.terminate() == 0, "".join(actor.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "learners=2", "--attach-learner", "tcp://127.0.0.1:1"], "--attach-learner tcp://127.0.0.1:1: "),
        (
            [
                "--set",
                "learners=2",
                "--attach-learner",
                "tcp://127.0.0.1:7101",
                "--attach-learner",
                "tcp://127.0.0.1:7102",
            ],
            "--attach-learner: 2 replica node(s) given, but learners=2 leaves room for 1 besides replica 0",
        ),
        (["--attach-learner", "tcp://127.0.0.1:7101"], "give --set learners=2 or fewer --attach-learner"),
        (["--set", "group_port=29500"], "group_port is where learner replicas meet: it needs --set learners=G"),
        (["--set", "learners=2", "--set", "group_port=70000"], "group_port must be a TCP port in 0..65535"),
        (
            ["--set", "learners=2", "--attach-learner", "tcp://10.255.0.1:7003"],
            "the learner node listens on tcp://127.0.0.1:0, so the replica node at 10.255.0.1 could not reach",
        ),
    ],
)
def test_bad_replica_attachments_are_refused(args: list[str], message: str, tmp_path: Path) -> None:
    result = beamrl("train", "apex-dqn", "CartPole-v1", "--out", "run", "--steps", "1000", *args, cwd=tmp_path)
    refused(result, message)
    assert not (tmp_path / "run" / "learner").exists()


def test_attach_learner_is_for_apex_runs(tmp_path: Path) -> None:
    result = beamrl("train", "a3c", "CartPole-v1", "--attach-learner", "tcp://127.0.0.1:7101", cwd=tmp_path)
    refused(result, "--attach-learner is for apex-dqn runs with --set learners=G")


def test_the_group_meets_where_the_replica_machines_reach_the_learner() -> None:
    assert group_address("tcp://127.0.0.1:0", [], 29500) == "tcp://127.0.0.1:29500"
    assert group_address("tcp://0.0.0.0:7001", ["tcp://127.0.0.1:7003#r1"], 29500) == "tcp://127.0.0.1:29500"
    assert group_address("tcp://10.0.0.5:7001", ["tcp://10.0.0.6:7003"], 29500) == "tcp://10.0.0.5:29500"
    assert group_address("tcp://learner.lan:7001", ["tcp://gpu.lan:7003"], 29500) == "tcp://learner.lan:29500"
    free = group_address("tcp://127.0.0.1:0", [])
    assert free.startswith("tcp://127.0.0.1:") and 0 < int(free.rpartition(":")[2]) < 65536
    with pytest.raises(ValueError, match=r"listens on tcp://localhost:7001, so the replica node at gpu\.lan"):
        group_address("tcp://localhost:7001", ["tcp://gpu.lan:7003"])
    assert apex_config("CartPole-v1", {"learners": 2, "group_port": 29500}).group_port == 29500


class _Host(GenServer):
    """A stand-in ``replica-host`` answering ``info`` (what a machine without torch answers, say)."""

    async def init(self, info: dict[str, Any]) -> None:
        self.info = info

    async def handle_call(self, request: Any, from_: From) -> Any:
        return self.info


class _Busy(GenServer):
    """A stand-in for an earlier run's replica, still on the node."""

    async def handle_call(self, request: Any, from_: From) -> Any:
        return {}


@pytest.mark.parametrize(
    ("torch", "busy", "message"),
    [
        (None, False, "node 'remote-box' (host 'box') has no torch, which a learner replica needs"),
        ("2.13.0", True, "node 'remote-box' already hosts a 'learner' (an earlier run's?): restart that node"),
    ],
)
async def test_a_node_that_cannot_host_a_replica_is_refused_before_any_joins(
    torch: str | None, busy: bool, message: str, tmp_path: Path
) -> None:
    cfg = apex_config("CartPole-v1", {"learners": 2})
    async with Node("remote-box", listen="tcp://127.0.0.1:0") as remote, Node("learner") as node:
        await remote.start(_Host, {"kind": "learner-replica", "torch": torch, "host": "box"}, name="replica-host")
        if busy:
            await remote.start(_Busy, name="learner")
        replicas = LearnerReplicas(node, cfg, "CartPole-v1", 0, tmp_path, "tcp://127.0.0.1:29500", [remote.address])
        replica_zero = asyncio.sleep(0)
        with pytest.raises(ValueError, match=re.escape(f"--attach-learner {remote.address}: {message}")):
            await replicas.start(replica_zero)
        assert replicas.nodes is None  # no loopback replica node started either
