"""Nodes as OS processes: failure detection, rejoin, CURVE, junk on the wire, the shell and ps."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

import beamrl
from beamrl import GenServer, Node, NodeDown, NoProc, child, codec
from beamrl.testing import eventually
from beamrl.transport.keys import generate_keys
from tests import HEARTBEAT_TIMEOUT, ROOT, start_peer


class RemoteWatcher(GenServer):
    """Links to a remote process without trapping exits: it dies when that node is lost.

    Restarted while the node is away, it runs degraded (no link) instead of failing.
    """

    async def init(self, target: Any, notify: Any) -> None:
        try:
            pid = await beamrl.call(target, ["pid"])
        except NodeDown:
            beamrl.send(notify, ("degraded", self.pid))
            return
        beamrl.link(pid)
        beamrl.send(notify, ("watching", self.pid))


async def test_a_killed_node_is_detected_and_a_restarted_one_rejoins() -> None:
    peer = start_peer("victim", tree="tests/trees/peer.toml")
    address = peer.address
    try:
        async with Node("survivor", heartbeat_timeout=HEARTBEAT_TIMEOUT) as node:
            await node.connect(address)
            counter = await node.call(("counter", "victim"), ["pid"])
            ref = node.monitor(counter)
            sup = await node.start_supervisor(
                [child(RemoteWatcher, ("counter", "victim"), node.self_pid, name="watcher")],
                max_restarts=5,
                max_seconds=60,
            )
            assert (await node.receive(timeout=5))[0] == "watching"
            pending = asyncio.ensure_future(node.call(counter, ["sleep", 30], timeout=60))
            await node.call(("journal", "victim"), ["entries"])  # same link, so the sleep call went first
            killed_at = time.monotonic()
            peer.kill()
            got: dict[str, Any] = {}
            while "down" not in got or "degraded" not in got:
                message = await node.receive(timeout=HEARTBEAT_TIMEOUT + 5)
                if isinstance(message, beamrl.Down) and message.ref == ref:
                    got["down"] = (message, time.monotonic() - killed_at)
                elif isinstance(message, tuple) and message[0] == "degraded":
                    got["degraded"] = message[1]
            down, detected = got["down"]
            assert down.reason == "noconnection"
            assert detected <= HEARTBEAT_TIMEOUT + 2.0, detected
            with pytest.raises(NodeDown):
                await pending
            with pytest.raises(NodeDown):
                await node.call(counter, ["get"])
            # the link killed the watcher; its supervisor restarted it (degraded, the node is away)
            [watcher] = await node.which_children(sup)
            assert watcher.restarts == 1 and watcher.pid == got["degraded"]
            peer = start_peer("victim", listen=address, tree="tests/trees/peer.toml")
            await eventually(lambda: "victim" in node.nodes(), timeout=15, what="the restarted node to rejoin")
            assert await node.call(("counter", "victim"), ["get"]) == 5
            with pytest.raises(NoProc):  # a pid of the old incarnation means nothing now
                await node.call(counter, ["get"])
    finally:
        peer.kill()


async def test_an_untrusted_node_is_shut_out(tmp_path: Path) -> None:
    trusted_dir, outsider_dir = tmp_path / "cluster", tmp_path / "outsider"
    for name in ("server", "client"):
        generate_keys(trusted_dir, name)
    generate_keys(outsider_dir, "intruder")
    (outsider_dir / "server.key").write_bytes((trusted_dir / "server.key").read_bytes())  # knows the server key
    async with Node("server", listen="tcp://127.0.0.1:0", keys=trusted_dir) as server:
        await server.start(beamrl.Supervisor, [], name="secret")
        async with Node("client", keys=trusted_dir) as friend:
            assert await friend.connect(server.address) == "server"
            assert await friend.call(("secret", "server"), ["count_children"]) == {
                "specs": 0,
                "active": 0,
                "supervisors": 0,
                "workers": 0,
            }
        async with Node("intruder", keys=outsider_dir) as intruder:
            with pytest.raises((NodeDown, TimeoutError)):
                await intruder.connect(server.address, timeout=1.0)
            with pytest.raises(NodeDown):
                await intruder.call(("secret", "server"), ["count_children"])
        assert server.nodes() == []


async def test_listening_beyond_loopback_needs_keys_or_insecure() -> None:
    with pytest.raises(ValueError, match="without CURVE keys"):
        async with Node("exposed", listen="tcp://0.0.0.0:0"):
            pass
    async with Node("exposed", listen="tcp://0.0.0.0:0", insecure=True) as node:
        assert node.address is not None


class Echo(GenServer):
    async def handle_call(self, request: Any, from_: Any) -> Any:
        return request


async def test_junk_on_the_wire_never_takes_a_node_down() -> None:
    async with Node("target", listen="tcp://127.0.0.1:0") as target, Node("friend") as friend:
        await target.start(Echo, name="echo")
        await friend.connect(target.address)
        # raw ZeroMQ peers that never handshake, sending garbage
        ctx = zmq.Context()
        try:
            for routing_id in (b"junk", b"friend", b""):
                sock = ctx.socket(zmq.DEALER)
                sock.linger = 0
                if routing_id:
                    sock.routing_id = routing_id
                sock.connect(target.address)
                for frames in ([b"\x00"], [b"", b"C", b"\xff\xfe"], [os.urandom(64)] * 3, [b"", b"D", b"x" * 1000]):
                    sock.send_multipart(frames)
                sock.close()
        finally:
            ctx.term()
        # a handshaken peer sending undecodable frames and malformed or unknown messages
        transport = friend._dist.transport
        bad_messages: list[Any] = [
            "not a list",
            [],
            [42],
            ["launch_missiles"],
            ["call"],
            ["call", "ref", "pid", "echo", ["x"]],
            ["reply", 1, True],
            ["exit", 1, 2, 3, 4],
            ["monitor", None, None, None],
            ["link", "someone", "echo"],
            ["cast", ["unhashable"], 1],
            ["send", {"a": 1}, 1],
            [["cast"], "echo", 1],
            ["cast", "nobody-here", 1],
        ]
        for message in bad_messages:
            transport.send("target", codec.encode(message))
        transport.send("target", [b"\xc1\xc1\xc1"])  # 0xc1 is never valid msgpack
        transport.send("target", [codec.encode(["send", "echo", 1])[0][:-1]])  # truncated
        # ... and the node still answers everyone
        assert await friend.call(("echo", "target"), ["still", "here"]) == ["still", "here"]
        assert await target.call("echo", ["local", "too"]) == ["local", "too"]


def _cli(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "beamrl.cli", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_two_nodes_from_the_cli_call_each_other_and_the_shell_drives_a_remote_process() -> None:
    first = start_peer("first", tree="tests/trees/peer.toml")
    second = start_peer("second", "--join", first.address)
    try:
        via_second = (
            'print("nodes:", s.call(("$node", "second"), ["nodes"]))\n'
            'print("via second:", s.call(("counter", "first"), ["get"]))\n'
        )
        result = _cli("shell", second.address, stdin=via_second)
        assert result.returncode == 0, result.stderr
        assert "via second: 5" in result.stdout, result.stdout + result.stderr
        assert "nodes: ['first'" in result.stdout
        result = _cli("shell", first.address, stdin='print("counter:", counter.add(2))\n')
        assert "counter: 7" in result.stdout, result.stdout + result.stderr
        ps = _cli("ps", first.address)
        assert ps.returncode == 0, ps.stderr
        lines = ps.stdout.splitlines()
        assert any(line.startswith("peer_sup (Supervisor)") for line in lines), ps.stdout
        assert any("counter (Counter)" in line and "#PID<first." in line for line in lines), ps.stdout
    finally:
        assert second.terminate() == 0
        assert first.terminate() == 0
    out = "".join(first.output)
    assert "stopping: children stop in reverse order" in out and "stopped" in out


def test_a_bad_node_file_is_refused_and_nothing_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nlisten = 7001\n')
    result = _cli("node", "start", str(bad), timeout=30)
    assert result.returncode == 2
    assert f"{bad}: listen: expected a string" in result.stderr
    assert "listening" not in result.stdout
    bad.write_text('name = "x"\ntree = "supervisors/absent.toml"\n')
    result = _cli("node", "start", str(bad), timeout=30)
    assert result.returncode == 2 and "absent.toml: no such file" in result.stderr


def test_the_readme_multi_machine_recipe_on_loopback(tmp_path: Path) -> None:
    """Keys generated per machine, public keys exchanged, an actor node from nodes/actor.toml,
    and training from the learner with nodes/learner.toml, all over CURVE."""
    learner_keys, actor_keys = tmp_path / "learner-box", tmp_path / "pi"
    for directory, name in ((learner_keys, "learner"), (actor_keys, "pi-actor-1")):
        result = _cli("keys", "generate", str(directory), "--name", name)
        assert result.returncode == 0, result.stderr
    (actor_keys / "learner.key").write_bytes((learner_keys / "learner.key").read_bytes())
    (learner_keys / "pi-actor-1.key").write_bytes((actor_keys / "pi-actor-1.key").read_bytes())
    actor = start_peer("pi-actor-1", "nodes/actor.toml", "--keys", str(actor_keys), tree="supervisors/actor_node.toml")
    try:
        out = tmp_path / "run"
        result = _cli(
            *("train", "q-learning", "FrozenLake-v1", "--node", "nodes/learner.toml"),
            *("--listen", "tcp://127.0.0.1:0", "--keys", str(learner_keys)),
            *("--attach", f"{actor.address}#pi-actor-1", "--episodes", "600"),
            *("--final-eval-episodes", "100", "--quiet", "--out", str(out)),
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads((out / "summary.json").read_text())
        assert summary["nodes"] == 2
        with (out / "metrics.csv").open() as f:
            workers = {row["worker"] for row in csv.DictReader(f)}
        assert workers == {"0", "1"}  # worker 1 ran on the actor node
    finally:
        assert actor.terminate() == 0, "".join(actor.output)
