"""``beamrl serve RUN_DIR`` as a real OS process: runs trained by ``beamrl train``, queried over ZeroMQ.

The serving process never imports torch: its ``["info"]`` reports its own ``sys.modules``,
and on Linux its memory map (``/proc/PID/maps``) shows no torch library either.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import beamrl
from beamrl import NodeDown, NoProc, ProcessCrashed, Rejected
from beamrl.rl.deep.params import NumpyPolicy, load_params
from beamrl.transport.keys import generate_keys
from tests import ROOT

BEAMRL = [sys.executable, "-m", "beamrl.cli"]


class Served:
    """A ``beamrl serve`` child process; ``address`` is where it listens once it serves."""

    def __init__(self, *args: str, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [*BEAMRL, "serve", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.address = ""
        self._serving = threading.Event()
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + timeout
        while not self._serving.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"beamrl serve never served; its output:\n{''.join(self.output)}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            match = re.search(r"listening on (tcp://\S+)", line)
            if match:
                self.address = match.group(1)
            if line.startswith("serving "):
                self._serving.set()

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._drain.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


def _train(*args: str) -> None:
    done = subprocess.run([*BEAMRL, "train", *args, "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny tabular run, trained by the ``beamrl train`` command."""
    root = tmp_path_factory.mktemp("runs")
    _train("q-learning", "FrozenLake-v1", "--episodes", "200", "--out", str(root / "ql"))
    return {"ql": root / "ql"}


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny deep run, trained by the ``beamrl train`` command (torch trains it; serving needs none)."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("runs") / "dqn"
    _train("dqn", "CartPole-v1", "--steps", "600", "--out", str(out))
    return out


@pytest.fixture
def served_dqn(dqn_run: Path) -> Iterator[Served]:
    server = Served(str(dqn_run))
    try:
        yield server
    finally:
        assert server.stop() == 0, "".join(server.output)


def _maps_torch(pid: int) -> list[str]:
    """Libraries of torch mapped into process ``pid``."""
    with open(f"/proc/{pid}/maps") as f:
        return sorted({line.split()[-1] for line in f if "torch" in line.split()[-1]})


def test_a_served_deep_run_acts_as_its_numpy_policy_and_never_loads_torch(dqn_run: Path, served_dqn: Served) -> None:
    params, meta = load_params(dqn_run / "model.safetensors")
    reference = NumpyPolicy(meta["spec"], params)
    obs = np.random.default_rng(0).uniform(-0.2, 0.2, size=(64, 4)).astype(np.float32)
    with beamrl.connect(served_dqn.address) as session:
        policy = session.proxy("policy")
        info = policy.info()
        assert info["algo"] == "dqn" and info["env_id"] == "CartPole-v1" and info["family"] == "deep"
        assert info["model_version"] == meta["version"]
        assert info["torch_imported"] is False
        assert [policy.act(o.tolist()) for o in obs[:10]] == reference.greedy(obs[:10]).tolist()
        np.testing.assert_array_equal(policy.act_batch(obs), reference.greedy(obs))
        with pytest.raises(Rejected, match=r"observation\[1\] is nan"):
            policy.act([0.0, float("nan"), 0.0, 0.0])
        with pytest.raises(Rejected, match=r"has shape \(2,\); expected shape \(4,\)"):
            policy.act([0.0, 0.0])
        assert policy.act(obs[0]) == int(reference.greedy(obs[0])[0])  # still serving
        assert policy.info()["acts"] == 10 + 64 + 1
    if Path("/proc/self/maps").exists():
        import torch  # noqa: F401  (the check below must be able to see a torch library)

        assert _maps_torch(os.getpid()), "this test's own process has torch loaded: the check can see it"
        assert _maps_torch(served_dqn.proc.pid) == []


def test_a_served_tabular_run_answers_its_tables_greedy_actions(runs: dict[str, Path]) -> None:
    with np.load(runs["ql"] / "qtable.npz") as data:
        q = data["q"]
    server = Served(str(runs["ql"]), "--name", "controller", "--node-name", "pi-1")
    try:
        assert "serving q-learning FrozenLake-v1" in "".join(server.output)
        with beamrl.connect(server.address) as session:
            assert session.peer == "pi-1"
            assert "controller" in session.registered()
            controller = session.proxy("controller")
            assert [controller.act(s) for s in range(16)] == np.argmax(q, axis=1).tolist()
            with pytest.raises(Rejected, match=r"= 16 is not a state of Discrete\(16\)"):
                controller.act(16)
            assert controller.info()["torch_imported"] is False
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_the_shell_reaches_the_policy_by_its_name(runs: dict[str, Path]) -> None:
    with np.load(runs["ql"] / "qtable.npz") as data:
        q = data["q"]
    server = Served(str(runs["ql"]))
    try:
        shell = subprocess.run(
            [*BEAMRL, "shell", server.address],
            input="print('action', policy.act(14))\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        assert server.stop() == 0, "".join(server.output)
    assert f"action {int(np.argmax(q[14]))}" in shell.stdout, shell.stdout + shell.stderr


def _serve_fails(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*BEAMRL, "serve", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "listening" not in done.stdout  # refused before a node started
    return done


def test_a_missing_or_broken_run_is_one_line_naming_the_file(tmp_path: Path) -> None:
    done = _serve_fails(str(tmp_path / "nope"))
    assert done.stderr.strip() == f"beamrl serve: no run directory at {tmp_path / 'nope'}"
    done = _serve_fails(str(tmp_path))
    assert "holds neither model.safetensors (a deep run) nor qtable.npz (a tabular run)" in done.stderr
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}" * 3)
    done = _serve_fails(str(tmp_path))
    assert f"{tmp_path / 'model.safetensors'} is not a valid safetensors file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_non_loopback_listen_needs_keys(runs: dict[str, Path]) -> None:
    done = _serve_fails(str(runs["ql"]), "--listen", "tcp://0.0.0.0:0")
    assert "--keys DIR" in done.stderr and "--insecure" in done.stderr


def test_with_keys_only_a_trusted_client_gets_actions(runs: dict[str, Path], tmp_path: Path) -> None:
    server_keys, client_keys, stranger_keys = tmp_path / "pi", tmp_path / "laptop", tmp_path / "stranger"
    generate_keys(server_keys, "pi-1")
    generate_keys(client_keys, "laptop")
    generate_keys(stranger_keys, "stranger")
    shutil.copy(client_keys / "laptop.key", server_keys)  # only public keys travel
    shutil.copy(server_keys / "pi-1.key", client_keys)
    shutil.copy(server_keys / "pi-1.key", stranger_keys)
    server = Served(str(runs["ql"]), "--keys", str(server_keys), "--node-name", "pi-1")
    try:
        with beamrl.connect(server.address, keys=client_keys, name="laptop") as session:
            assert session.call("policy", ["act", 0]) in range(4)
        with pytest.raises(NodeDown, match="not trusted"):
            beamrl.connect(server.address, keys=stranger_keys, name="stranger", timeout=3.0)
    finally:
        assert server.stop() == 0, "".join(server.output)


async def test_when_its_supervisor_gives_up_the_command_exits_with_1(runs: dict[str, Path]) -> None:
    """A policy server that keeps dying (killed here) takes the command down: no live node without a policy."""
    server = Served(str(runs["ql"]))
    try:
        async with beamrl.Node("killer") as node:
            peer = await node.connect(server.address)
            for _ in range(20):
                try:
                    await node.call(("policy", peer), ["info"], timeout=2.0)
                except (NoProc, NodeDown, ProcessCrashed, TimeoutError):
                    if server.proc.poll() is not None:
                        break
                    continue
                node.kill(("policy", peer))
        assert server.proc.wait(30) == 1
        assert "its supervisor gave up" in "".join(server.output)
    finally:
        server.stop()
