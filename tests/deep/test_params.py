"""Parameters as numpy: the numpy forward pass agrees with torch's, safetensors files round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from beamrl.rl.deep.params import NumpyPolicy, load_params, save_params

torch = pytest.importorskip("torch")

from beamrl.rl.deep.nets import (  # noqa: E402
    ActorCritic,
    DeterministicActor,
    DuelingQNet,
    QNet,
    module_params,
)

OBS = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32) * 3


@pytest.mark.parametrize("cls", [QNet, DuelingQNet])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_q_heads_agree_with_torch(cls: type, activation: str) -> None:
    torch.manual_seed(0)
    net = cls(6, 3, [32, 16], activation)
    policy = NumpyPolicy(net.spec(), module_params("q", net))
    with torch.no_grad():
        expected = net(torch.from_numpy(OBS)).numpy()
    np.testing.assert_allclose(policy.q_values(OBS), expected, atol=1e-5)
    assert (policy.greedy(OBS) == expected.argmax(1)).all()


@pytest.mark.parametrize("continuous", [False, True])
def test_actor_critic_agrees_with_torch(continuous: bool) -> None:
    torch.manual_seed(1)
    bounds = ([-2.0, -2.0], [2.0, 2.0]) if continuous else None
    net = ActorCritic(6, 2, [32, 32], "tanh", continuous, -0.5, bounds)
    for p in net.parameters():  # leave the small init so that outputs are not all ~0
        torch.nn.init.normal_(p, std=0.5)
    policy = NumpyPolicy(net.spec(), module_params("ac", net))
    with torch.no_grad():
        x = torch.from_numpy(OBS)
        out = net.pi(x).numpy()
        value = net.value(x).numpy()
    np.testing.assert_allclose(policy.output(OBS), out, atol=1e-5)
    np.testing.assert_allclose(policy.value(OBS), value, atol=1e-5)
    rng = np.random.default_rng(0)
    samples = policy.sample(OBS, rng)
    assert samples.shape == ((32, 2) if continuous else (32,))


def test_categorical_sampling_follows_the_probabilities() -> None:
    torch.manual_seed(2)
    net = ActorCritic(6, 3, [8], "tanh")
    torch.nn.init.normal_(net.pi[-1].weight, std=2.0)
    policy = NumpyPolicy(net.spec(), module_params("ac", net))
    obs = np.repeat(OBS[:1], 20_000, axis=0)
    counts = np.bincount(policy.sample(obs, np.random.default_rng(0)), minlength=3) / len(obs)
    with torch.no_grad():
        probs = torch.softmax(net.pi(torch.from_numpy(OBS[:1])), -1).numpy()[0]
    np.testing.assert_allclose(counts, probs, atol=0.02)


def test_deterministic_actor_agrees_with_torch_and_stays_in_bounds() -> None:
    torch.manual_seed(3)
    low, high = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
    net = DeterministicActor(6, 2, [32, 32], low, high)
    policy = NumpyPolicy(net.spec(), module_params("actor", net))
    with torch.no_grad():
        expected = net(torch.from_numpy(OBS)).numpy()
    got = policy.greedy(OBS)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got >= low).all() and (got <= high).all()


def test_safetensors_round_trip_keeps_arrays_and_metadata(tmp_path: Path) -> None:
    params = {"q.body.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.array(7, np.int64)}
    save_params(tmp_path / "m.safetensors", params, {"spec": {"kind": "q"}, "env_id": "CartPole-v1"})
    loaded, meta = load_params(tmp_path / "m.safetensors")
    assert meta == {"spec": {"kind": "q"}, "env_id": "CartPole-v1"}
    assert set(loaded) == set(params)
    for k, v in params.items():
        assert loaded[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded[k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left behind


def test_a_garbage_model_file_is_refused_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_params(bad)
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_params(tmp_path / "missing.safetensors")


def test_unknown_policy_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown policy kind"):
        NumpyPolicy({"kind": "quantum"})


def test_versioned_params_answer_only_when_newer_and_produce_once_per_version() -> None:
    from beamrl.rl.deep.params import VersionedParams

    made = []

    def produce() -> dict[str, np.ndarray]:
        made.append(1)
        return {"w": np.full(2, len(made), np.float32)}

    published = VersionedParams()
    first = published.get(None, 3, produce)
    assert first is not None and first[0] == 3
    assert published.get(3, 3, produce) is None and published.get(5, 3, produce) is None
    again = published.get(2, 3, produce)
    assert again is not None and again[1] is first[1] and len(made) == 1  # shared, made once
    newer = published.get(3, 4, produce)
    assert newer is not None and newer[0] == 4 and len(made) == 2
