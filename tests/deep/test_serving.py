"""A deep run's policy served with numpy answers what the torch network computes (<= 1e-5).

Each network is built with torch, saved as a deep run saves its model (``model.safetensors``
with the spec, algo, env id and version in its header), served by a ``PolicyServer``, and
queried through the server; torch's forward pass on the same observations is the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beamrl import Node
from beamrl.rl.deep.params import save_params
from beamrl.rl.serving import InvalidObservation, PolicyServer, load_run
from beamrl.rl.spaces import Box, Discrete

torch = pytest.importorskip("torch")

from beamrl.rl.deep.nets import ActorCritic, DeterministicActor, DuelingQNet, QNet, module_params  # noqa: E402


def save_run(
    root: Path, prefix: str, net: Any, env_id: str, algo: str, extra: dict[str, np.ndarray] | None = None
) -> Path:
    """A deep run's model file, as ``beamrl.rl.deep.run`` writes it."""
    root.mkdir(parents=True, exist_ok=True)
    params = {**module_params(prefix, net), **(extra or {})}
    meta = {"spec": net.spec(), "algo": algo, "env_id": env_id, "version": 1234, "selected": "last"}
    save_params(root / "model.safetensors", params, meta)
    return root


def observations(space: Box, n: int, seed: int = 0) -> np.ndarray:
    """``n`` observations inside ``space`` (unbounded parts drawn from [-3, 3])."""
    low = np.where(np.isfinite(space.low), space.low, -3.0)
    high = np.where(np.isfinite(space.high), space.high, 3.0)
    return np.random.default_rng(seed).uniform(low, high, size=(n, *space.shape)).astype(np.float32)


def _scrambled(net: Any, seed: int) -> Any:
    """Weights large enough that outputs differ clearly between observations."""
    torch.manual_seed(seed)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return net


@pytest.mark.parametrize("cls", [QNet, DuelingQNet])
async def test_a_q_network_served_with_numpy_agrees_with_torch(node: Node, tmp_path: Path, cls: type) -> None:
    net = _scrambled(cls(4, 2, [64, 64]), 0)
    run_dir = save_run(tmp_path / "dqn", "q", net, "CartPole-v1", "dqn")
    await node.start(PolicyServer, str(run_dir), name="policy")
    policy = node.proxy("policy")
    info = await policy.info()
    assert info["family"] == "deep" and info["algo"] == "dqn" and info["model_version"] == 1234
    assert info["action_space"] == Discrete(2) and info["spaces_from"] == "env"
    obs = observations(info["observation_space"], 256)
    with torch.no_grad():
        expected = net(torch.from_numpy(obs)).numpy()
    got = await policy.output_batch(obs)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(await policy.act_batch(obs), expected.argmax(axis=1))
    for o, q in zip(obs[:20], expected[:20], strict=True):
        action = await policy.act(o.tolist())  # a plain list, as a controller sends it
        assert action == int(q.argmax()) and type(action) is int
        np.testing.assert_allclose(await policy.output(o), q, atol=1e-5, rtol=0)


async def test_a_categorical_policy_with_observation_normalisation_agrees_with_torch(
    node: Node, tmp_path: Path
) -> None:
    net = _scrambled(ActorCritic(4, 2, [32, 32], "tanh"), 1)
    mean = np.array([0.1, -0.2, 0.01, 0.3], np.float32)
    var = np.array([0.5, 2.0, 0.01, 1.5], np.float32)
    run_dir = save_run(tmp_path / "ppo", "ac", net, "CartPole-v1", "ppo", {"obs_mean": mean, "obs_var": var})
    await node.start(PolicyServer, str(run_dir), name="policy")
    obs = observations((await node.call("policy", ["info"]))["observation_space"], 128, seed=1)
    normalised = np.clip((obs - mean) / np.sqrt(var + 1e-8), -10.0, 10.0).astype(np.float32)
    with torch.no_grad():
        logits = net.pi(torch.from_numpy(normalised)).numpy()
    np.testing.assert_allclose(await node.call("policy", ["output_batch", obs]), logits, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(await node.call("policy", ["act_batch", obs]), logits.argmax(axis=1))


async def test_continuous_policies_answer_float_actions_inside_the_action_space(node: Node, tmp_path: Path) -> None:
    low, high = np.array([-2.0], np.float32), np.array([2.0], np.float32)
    actor = _scrambled(DeterministicActor(3, 1, [32, 32], low, high), 2)
    gaussian = _scrambled(ActorCritic(3, 1, [32], "tanh", continuous=True, bounds=([-2.0], [2.0])), 3)
    await node.start(PolicyServer, str(save_run(tmp_path / "td3", "actor", actor, "Pendulum-v1", "td3")), name="td3")
    await node.start(PolicyServer, str(save_run(tmp_path / "ppo", "ac", gaussian, "Pendulum-v1", "ppo")), name="ppo")
    info = await node.call("td3", ["info"])
    assert info["action_space"] == Box(-2.0, 2.0, (1,), np.float32)
    obs = observations(info["observation_space"], 64, seed=2)
    with torch.no_grad():
        x = torch.from_numpy(obs)
        deterministic = actor(x).numpy()
        means = np.clip(gaussian.pi(x).numpy(), -2.0, 2.0)
    np.testing.assert_allclose(await node.call("td3", ["act_batch", obs]), deterministic, atol=1e-5, rtol=0)
    np.testing.assert_allclose(await node.call("ppo", ["act_batch", obs]), means, atol=1e-5, rtol=0)
    one = await node.call("td3", ["act", obs[0]])
    assert one.dtype == np.float32 and one.shape == (1,)
    np.testing.assert_allclose(one, deterministic[0], atol=1e-5, rtol=0)


# (observation for CartPole, what the refusal says)
BAD_OBSERVATIONS = [
    ([0.0, 0.0, 0.0], r"has shape \(3,\); expected shape \(4,\)"),
    ([[0.0, 0.0, 0.0, 0.0]], r"has shape \(1, 4\); expected shape \(4,\)"),
    ([0.0, float("nan"), 0.0, 0.0], r"observation\[1\] is nan .*must be finite"),
    ([0.0, 0.0, 0.0, float("-inf")], r"observation\[3\] is -inf"),
    ([0.0, 1e39, 0.0, 0.0], r"observation\[1\] is inf \(as float32\)"),
    ([9.0, 0.0, 0.0, 0.0], r"observation\[0\] = 9 is outside the observation space's bounds \[-4\.8, 4\.8\]"),
    (["a", "b", "c", "d"], r"dtype <U1 .*expected numbers"),
    ([None, 0.0, 0.0, 0.0], r"is not made of numbers"),
    ([[0.0, 1.0], [2.0]], r"is not an array of numbers"),
    (0.5, r"has shape \(\); expected shape \(4,\)"),
    ([0.0, 3e38, 0.0, -3e38], r"the network's output is not finite .* for this observation"),
]


@pytest.mark.parametrize(("obs", "message"), BAD_OBSERVATIONS)
async def test_a_bad_observation_is_refused_and_the_server_goes_on(
    node: Node, tmp_path: Path, obs: Any, message: str
) -> None:
    net = _scrambled(QNet(4, 2, [16]), 4)
    pid = await node.start(PolicyServer, str(save_run(tmp_path / "run", "q", net, "CartPole-v1", "dqn")), name="p")
    with pytest.raises(InvalidObservation, match=message):
        await node.call("p", ["act", obs])
    assert node.whereis("p") == pid
    assert await node.call("p", ["act", [0.0, 0.0, 0.0, 0.0]]) in (0, 1)


async def test_a_bad_row_in_a_batch_is_named(node: Node, tmp_path: Path) -> None:
    net = _scrambled(QNet(4, 2, [16]), 5)
    await node.start(PolicyServer, str(save_run(tmp_path / "run", "q", net, "CartPole-v1", "dqn")), name="p")
    batch = np.zeros((5, 4), np.float32)
    batch[3, 2] = 1.0  # the pole's angle is bounded by +-0.418 rad
    with pytest.raises(
        InvalidObservation, match=r"observation\[2\] of row 3 = 1 is outside .*\[-0\.418879, 0\.418879\]"
    ):
        await node.call("p", ["act_batch", batch])
    with pytest.raises(InvalidObservation, match=r"act_batch takes an array of shape \(n, 4\), got shape \(4,\)"):
        await node.call("p", ["act_batch", batch[0]])


def test_an_env_that_cannot_be_built_here_takes_its_spaces_from_the_model(tmp_path: Path) -> None:
    """What a Pi without gymnasium sees: the network's input size, any finite numbers."""
    net = _scrambled(QNet(5, 3, [8]), 6)
    policy = load_run(save_run(tmp_path / "run", "q", net, "NoSuchEnv-v0", "dqn"))
    assert policy.spaces_from == "model"
    assert policy.observation_space == Box(-np.inf, np.inf, (5,), np.float32)
    assert policy.action_space == Discrete(3)
    obs = np.full((1, 5), 1e6, np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(policy.output(policy.check.one(obs[0])), expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, m: (p, {**m, "env_id": "Acrobot-v1"}), r"network takes 4 inputs, but Acrobot-v1's observations"),
        (lambda p, m: (p, {**m, "env_id": "MountainCar-v0"}), r"takes 4 inputs"),
        (lambda p, m: (p, {"algo": "dqn"}), r"has no beamrl metadata \(spec, env_id\)"),
        (lambda p, m: (p, {**m, "spec": {"kind": "quantum"}}), r"unknown policy kind 'quantum'"),
        (lambda p, m: ({**p, "q.body.2.weight": np.zeros((16, 8), np.float32)}, m), r"layers do not fit together"),
        (lambda p, m: ({k: v * np.nan for k, v in p.items()}, m), r"holds non-finite weights"),
    ],
)
def test_a_model_that_does_not_fit_is_refused_naming_the_file(tmp_path: Path, change: Any, message: str) -> None:
    net = _scrambled(QNet(4, 2, [16, 16]), 7)
    meta = {"spec": net.spec(), "algo": "dqn", "env_id": "CartPole-v1", "version": 1}
    params, meta = change(module_params("q", net), meta)
    (tmp_path / "run").mkdir()
    save_params(tmp_path / "run" / "model.safetensors", params, meta)
    with pytest.raises(ValueError, match=message) as caught:
        load_run(tmp_path / "run")
    assert "model.safetensors" in str(caught.value)
