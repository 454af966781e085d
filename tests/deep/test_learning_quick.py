"""Each algorithm learns something small within seconds (fixed seeds; thresholds well below what they reach)."""

from __future__ import annotations

import numpy as np
import pytest

from beamrl.rl.deep.config import DDPGConfig, config_for
from beamrl.rl.spaces import Box

torch = pytest.importorskip("torch")

from beamrl.rl.deep.agent import Agent  # noqa: E402
from beamrl.rl.deep.ddpg import DDPG  # noqa: E402
from beamrl.rl.deep.evaluate import evaluate  # noqa: E402

# greedy CartPole returns before learning are ~9-25; what these budgets reach is in the comments
CARTPOLE = [
    ("ppo", 12_000, {}, 200.0),  # reaches ~460
    ("a2c", 12_000, {}, 60.0),  # ~120
    ("reinforce", 12_000, {}, 50.0),  # ~100
    # ~145 (one update per 2 env steps, small batches: seconds on an idle core)
    (
        "dqn",
        4_000,
        {"hidden": [64, 64], "learning_starts": 300, "eps_steps": 2_000, "target_update": 100}
        | {"batch_size": 32, "train_freq": 2},
        80.0,
    ),
]


@pytest.mark.timeout(600)  # seconds on an idle machine; generous for a shared, loaded one
@pytest.mark.parametrize(("algo", "steps", "overrides", "floor"), CARTPOLE, ids=[c[0] for c in CARTPOLE])
def test_learns_cartpole_a_little(algo: str, steps: int, overrides: dict[str, object], floor: float) -> None:
    cfg = config_for(algo, "CartPole-v1", {"eval_every": 0, **overrides})
    agent = Agent(algo, "CartPole-v1", cfg, seed=0, total_steps=steps)
    before = float(np.mean(evaluate(agent.acting.policy, "CartPole-v1", 5)))
    agent.run()
    after = float(np.mean(evaluate(agent.acting.policy, "CartPole-v1", 10)))
    assert after >= floor > before


@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_actor_critic_finds_the_best_action_of_a_one_step_problem(algo: str) -> None:
    """reward = -(a - 0.5)^2 and no bootstrap: the actor must move to a = 0.5, the critic fit the parabola."""
    cfg = config_for(algo, "Pendulum-v1", {"hidden": [32, 32], "lr": 3e-3})
    assert isinstance(cfg, DDPGConfig)
    learner = DDPG(cfg, Box(-1.0, 1.0, (2,)), Box(-2.0, 2.0, (1,)), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(600):
        obs = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
        act = rng.uniform(-2, 2, (64, 1)).astype(np.float32)
        batch = {
            "state": obs,
            "action": act,
            "reward": -((act[:, 0] - 0.5) ** 2),
            "next_state": obs,
            "discount": np.zeros(64, np.float32),
        }
        stats = learner.learn(batch)
    assert stats["loss"] < 0.05
    with torch.no_grad():
        chosen = learner.actor(torch.from_numpy(rng.uniform(-1, 1, (16, 2)).astype(np.float32))).numpy()
    np.testing.assert_allclose(chosen, 0.5, atol=0.15)


@pytest.mark.parametrize(("algo", "total"), [("ppo", 100), ("reinforce", 150), ("dqn", 37)])
def test_a_run_never_takes_more_steps_than_its_budget(algo: str, total: int) -> None:
    overrides = {"dqn": {"learning_starts": 10, "batch_size": 8}, "ppo": {"num_envs": 2, "n_steps": 32}}
    cfg = config_for(algo, "CartPole-v1", {"hidden": [8], **overrides.get(algo, {"n_steps": 100})})
    agent = Agent(algo, "CartPole-v1", cfg, seed=0, total_steps=total)
    sizes = []
    agent.run(on_phase=lambda a: sizes.append(a.acting.steps))
    assert agent.acting.steps == total and max(sizes) == total
