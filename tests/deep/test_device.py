"""The ``device`` hyper-parameter: its refusals, and every tensor of an algorithm on the configured device.

This machine has no GPU, so the placement is checked with two of torch's CPU-only tools,
each catching a different way to forget the device:

- ``device="meta"`` (tensors with a shape and a device, no data): an algorithm built
  there must hold nothing on the CPU, so a module, target network, scratch buffer or
  bound built on the CPU and never moved shows up in the walk over its object graph.
  ``learn`` cannot run there (results cannot leave a meta tensor, and fused Adam refuses it).
- ``learn`` under ``with torch.device("meta")`` with the algorithm on the CPU: a tensor an
  update creates without ``device=`` lands on meta instead, which breaks the update (an
  op mixing devices, or a result that cannot leave) or is found by the walk afterwards;
  with every tensor placed explicitly the updates are bit-identical to plain ones.

(torch's ``FakeTensorMode`` can fake ``cuda`` tensors on a CPU-only build, but autograd
and ``copy_`` on them abort the process there, so it cannot run these algorithms.)
``test_the_checks_catch_a_forgotten_device`` plants both mistakes and sees them caught.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from beamrl.rl.deep.config import config_for

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from beamrl.cli import main  # noqa: E402
from beamrl.rl.deep import device as device_module  # noqa: E402
from beamrl.rl.deep.agent import Agent  # noqa: E402
from beamrl.rl.deep.algo import Algorithm  # noqa: E402
from beamrl.rl.deep.device import replica_device, resolve_device  # noqa: E402
from beamrl.rl.deep.dqn import DQN  # noqa: E402
from beamrl.rl.deep.learner import make_algorithm  # noqa: E402

META = torch.device("meta")
#: (algo, env, overrides): every network kind and update path the algorithms have
CASES = {
    "dqn": ("dqn", "CartPole-v1", {"hidden": [16], "learning_starts": 64, "batch_size": 16, "prioritized": True}),
    "dqn-dueling": ("dqn", "CartPole-v1", {"hidden": [16], "learning_starts": 64, "batch_size": 16, "dueling": True}),
    "ppo": ("ppo", "CartPole-v1", {"hidden": [16], "num_envs": 2, "n_steps": 16, "minibatch_size": 16, "epochs": 2}),
    "a2c-gaussian": ("a2c", "Pendulum-v1", {"hidden": [16], "num_envs": 2}),
    "reinforce": ("reinforce", "CartPole-v1", {"hidden": [16], "n_steps": 64, "minibatch_size": 64}),
    "ddpg": ("ddpg", "Pendulum-v1", {"hidden": [16], "learning_starts": 64, "batch_size": 16}),
    "td3": ("td3", "Pendulum-v1", {"hidden": [16], "learning_starts": 64, "batch_size": 16, "policy_delay": 2}),
}
STEPS = 240  # a few updates of every case (a PPO rollout is 2 x 16 steps)


def tensors_of(obj: Any, path: str = "algo", seen: set[int] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor reachable from ``obj`` (attributes, containers, modules, gradients, optimizer state)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield path, obj
        if obj.grad is not None:
            yield f"{path}.grad", obj.grad
        return
    if isinstance(obj, torch.optim.Optimizer):
        for i, state in enumerate(obj.state.values()):
            for key, value in state.items():
                # torch keeps a non-fused optimizer's step count on the CPU by design, whatever the device
                if isinstance(value, torch.Tensor) and not (key == "step" and value.dim() == 0 and not value.is_meta):
                    yield f"{path}.state[{i}].{key}", value
        return
    if isinstance(obj, dict):
        items: Any = obj.items()
    elif isinstance(obj, list | tuple):
        items = enumerate(obj)
    elif isinstance(obj, nn.Module | Algorithm) or type(obj).__module__.startswith("beamrl."):
        items = vars(obj).items()
    else:
        return
    for key, value in items:
        yield from tensors_of(value, f"{path}.{key}", seen)


def off_device(algorithm: Algorithm, device: torch.device) -> list[str]:
    """The tensors of ``algorithm`` that are not on ``device``, and where they are."""
    return [f"{path} on {t.device}" for path, t in tensors_of(algorithm) if t.device != device]


def _cfg(case: str, **extra: Any) -> tuple[str, str, Any]:
    algo, env_id, overrides = CASES[case]
    return algo, env_id, config_for(algo, env_id, {**overrides, "eval_every": 0, **extra})


def _digest(algorithm: Algorithm) -> dict[str, np.ndarray]:
    return algorithm.state()[0]


# -- the setting and its refusals ---------------------------------------------------------------
def test_the_device_setting_is_spelled_cpu_auto_cuda_or_cuda_n() -> None:
    for good in ("cpu", "auto", "cuda", "cuda:0", "cuda:12"):
        assert config_for("dqn", "CartPole-v1", {"device": good}).device == good
    assert config_for("ppo", "CartPole-v1").device == "cpu"  # the default: what every run did before
    for bad in ("gpu", "cuda:", "cuda:x", "CPU", "mps", ""):
        with pytest.raises(ValueError, match=f"device must be 'cpu', 'auto', 'cuda' or 'cuda:N'.*got {bad!r}"):
            config_for("dqn", "CartPole-v1", {"device": bad})
    with pytest.raises(ValueError, match="device must be a string, got 0"):
        config_for("td3", "Pendulum-v1", {"device": 0})


def test_a_gpu_the_machine_does_not_have_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=f"device '{name}' needs a CUDA GPU.*use device=cpu"):
            resolve_device(name)
    with pytest.raises(ValueError, match="device 'cuda' needs a CUDA GPU"):
        make_algorithm("dqn", "CartPole-v1", config_for("dqn", "CartPole-v1", {"device": "cuda"}), 0)
    with pytest.raises(ValueError, match="backend 'nccl' needs CUDA"):
        replica_device("nccl", 0)
    assert replica_device("gloo", 1) == "cpu"  # gloo keeps the configured device
    # on a machine with two GPUs: "cuda" is GPU 0, "auto" takes it, GPU 2 does not exist
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(device_module.dist, "is_nccl_available", lambda: True)
    assert resolve_device("cuda") == resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"device 'cuda:2' names GPU 2, but this machine has 2 \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2")
    assert replica_device("nccl", 1, configured="cpu") == "cuda:1"  # nccl: the replica's own GPU
    with pytest.raises(ValueError, match="local_rank 2 has no GPU: this machine has 2"):
        replica_device("nccl", 2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without CUDA")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dqn", "CartPole-v1", "--set", "device=cuda"], "device 'cuda' needs a CUDA GPU"),
        (["ppo", "CartPole-v1", "--set", "device=gpu"], "device must be 'cpu', 'auto', 'cuda' or 'cuda:N'"),
        (["apex-dqn", "CartPole-v1", "--set", "device=cuda:1"], "device 'cuda:1' needs a CUDA GPU"),
        (["apex-dqn", "CartPole-v1", "--set", "learners=2", "--set", "learner_backend=nccl"], "'nccl' needs CUDA"),
        (["apex-dqn", "CartPole-v1", "--set", "learner_backend=nccl"], "it needs --set learners=G with G >= 2"),
        (["apex-dqn", "CartPole-v1", "--set", "learner_backend=mpi"], "learner_backend must be 'gloo'"),
    ],
)
def test_the_cli_refuses_a_device_or_backend_it_cannot_have(
    args: list[str], message: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["train", *args, "--steps", "100", "--out", str(out), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not out.exists()  # refused before anything started


# -- placement --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_algorithm_built_on_a_device_holds_nothing_elsewhere(case: str) -> None:
    algo, env_id, cfg = _cfg(case)
    algorithm = make_algorithm(algo, env_id, cfg, 0, device=META)
    assert algorithm.device == META
    found = list(tensors_of(algorithm))
    assert len(found) >= 4  # the walk does reach the weights
    assert off_device(algorithm, META) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_updates_create_every_tensor_on_the_algorithms_device(case: str) -> None:
    """Under ``torch.device("meta")`` a tensor made without ``device=`` would be meta (module docstring)."""
    algo, env_id, cfg = _cfg(case)
    plain = Agent(algo, env_id, cfg, seed=0, total_steps=STEPS)
    plain.run()
    placed = Agent(algo, env_id, cfg, seed=0, total_steps=STEPS)
    with torch.device(META):
        placed.run()
    assert placed.algorithm.updates == plain.algorithm.updates > 0
    assert off_device(placed.algorithm, torch.device("cpu")) == []
    assert any(path.endswith(".exp_avg") or path.endswith("square_avg") for path, _ in tensors_of(placed.algorithm))
    expected = _digest(plain.algorithm)
    for key, value in _digest(placed.algorithm).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


def test_the_checks_catch_a_forgotten_device(monkeypatch: pytest.MonkeyPatch) -> None:
    algo, env_id, cfg = _cfg("dqn")
    with monkeypatch.context() as m:  # a module built on the CPU and never moved
        m.setattr(Algorithm, "place", lambda self, module: module)
        forgot = make_algorithm(algo, env_id, cfg, 0, device=META)
        assert "algo.modules.q._modules.body._modules.0._parameters.weight on cpu" in off_device(forgot, META)

    class ScratchOnDefault(DQN):
        def learn(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
            self.scratch = torch.zeros(len(batch["reward"]))  # no device=: the planted mistake
            return super().learn(batch)

    with monkeypatch.context() as m:  # a tensor an update creates on the default device
        m.setattr("beamrl.rl.deep.learner.DQN", ScratchOnDefault)
        agent = Agent(algo, env_id, cfg, seed=0, total_steps=STEPS)
        with torch.device(META):
            agent.run()
        assert off_device(agent.algorithm, torch.device("cpu")) == ["algo.scratch on meta"]


@pytest.mark.filterwarnings("ignore:.*copying from a non-meta parameter:UserWarning")  # meta holds no values
@pytest.mark.parametrize("case", ["dqn", "ppo", "td3"])
def test_a_checkpoint_loads_onto_another_device(case: str) -> None:
    """Saved from the CPU, loaded by an algorithm on another device: every tensor lands there."""
    algo, env_id, cfg = _cfg(case)
    agent = Agent(algo, env_id, cfg, seed=0, total_steps=STEPS)
    agent.run()
    tensors, meta = agent.algorithm.state()
    elsewhere = make_algorithm(algo, env_id, cfg, 1, device=META)
    elsewhere.load_state(tensors, json.loads(json.dumps(meta)))
    assert elsewhere.updates == agent.algorithm.updates
    assert off_device(elsewhere, META) == []
    opt_state = [path for path, _ in tensors_of(elsewhere) if ".state[" in path]
    assert opt_state  # the optimizer moments came along, on the device


def test_explicit_cpu_and_auto_without_a_gpu_are_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    results = []
    for extra in ({}, {"device": "cpu"}, {"device": "auto"}):
        algo, env_id, cfg = _cfg("dqn", **extra)
        agent = Agent(algo, env_id, cfg, seed=2, total_steps=STEPS)
        agent.run()
        assert agent.algorithm.device == torch.device("cpu") and agent.live  # the acting half keeps its views
        results.append(_digest(agent.algorithm))
    for other in results[1:]:
        for key, value in other.items():
            np.testing.assert_array_equal(value, results[0][key], err_msg=key)


def test_apex_dqn_hands_its_device_to_the_learner_and_checks_its_backend() -> None:
    from beamrl.rl.apex.config import apex_config

    cfg = apex_config("CartPole-v1", {"device": "cuda:1", "learners": 2, "learner_backend": "nccl"})
    assert cfg.learner_overrides()["device"] == "cuda:1"
    assert config_for("dqn", "CartPole-v1", cfg.learner_overrides()).device == "cuda:1"
    assert apex_config("CartPole-v1").learner_overrides()["device"] == "cpu"
    with pytest.raises(ValueError, match=r"device must be 'cpu', 'auto', 'cuda' or 'cuda:N'.*got 'gpu0'"):
        apex_config("CartPole-v1", {"device": "gpu0"})
    with pytest.raises(ValueError, match=r"learner_backend must be 'gloo' .* or 'nccl' .*got 'mpi'"):
        apex_config("CartPole-v1", {"learners": 2, "learner_backend": "mpi"})
