"""Ape-X acting without messages: ε per actor, n-step transitions and their initial priorities."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from beamrl.rl.apex.acting import ApexActing
from beamrl.rl.apex.config import actor_epsilon, actor_epsilons, apex_config
from beamrl.rl.replay import ReplayMemory

pytest.importorskip("gymnasium")

SPEC = {"kind": "q", "activation": "relu"}


def _params(seed: int = 0, hidden: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "q.body.0.weight": rng.normal(size=(hidden, 4)).astype(np.float32),
        "q.body.0.bias": rng.normal(size=hidden).astype(np.float32),
        "q.body.2.weight": rng.normal(size=(2, hidden)).astype(np.float32),
        "q.body.2.bias": rng.normal(size=2).astype(np.float32),
    }


def test_actor_epsilons_follow_the_apex_schedule() -> None:
    assert actor_epsilon(0, 1) == 0.4
    eps = [actor_epsilon(i, 8) for i in range(8)]
    assert eps == pytest.approx([0.4 ** (1 + 7 * i / 7) for i in range(8)])
    assert eps[0] == pytest.approx(0.4) and eps[-1] == pytest.approx(0.4**8)
    assert all(a > b for a, b in itertools.pairwise(eps))
    with pytest.raises(ValueError, match=r"actor index 3 is not in 0\.\.2"):
        actor_epsilon(3, 3)


def test_each_env_of_an_actor_is_one_slot_of_the_schedule() -> None:
    cfg = apex_config("CartPole-v1", {"num_envs": 4})
    slots = [e for i in range(3) for e in actor_epsilons(i, 3, cfg)]
    assert slots == pytest.approx([actor_epsilon(k, 12) for k in range(12)])
    shared = apex_config("CartPole-v1", {"num_envs": 4, "eps_per_env": False})
    assert actor_epsilons(1, 3, shared) == pytest.approx([actor_epsilon(1, 3)] * 4)


def test_config_refuses_unknown_and_bad_values() -> None:
    assert apex_config("Acrobot-v1").batch_size == 512 and apex_config("CartPole-v1").batch_size == 64
    assert apex_config("CartPole-v1", {"batch_size": 32}).batch_size == 32
    with pytest.raises(ValueError, match="no hyper-parameter 'bacth_size'"):
        apex_config("CartPole-v1", {"bacth_size": 64})
    with pytest.raises(ValueError, match="send_every must be >= 1"):
        apex_config("CartPole-v1", {"send_every": 0})
    with pytest.raises(ValueError, match="hidden must be a list of positive integers"):
        apex_config("CartPole-v1", {"hidden": "big"})


@pytest.mark.parametrize("epsilon", [0.0, 0.4])
def test_transitions_are_the_n_step_returns_of_the_steps_taken(epsilon: float) -> None:
    """The actor's n-step columns equal ReplayMemory's own n-step windows over the same raw steps."""
    cfg = apex_config("CartPole-v1", {"num_envs": 3, "n_step": 3, "send_every": 1})
    acting = ApexActing("CartPole-v1", cfg, SPEC, seed=3, epsilon=epsilon)
    acting.set_params(_params())
    reference = ReplayMemory(10_000, n_step=3, gamma=cfg.gamma)
    step = acting.envs.step

    def recording_step(actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, rew, term, trunc, nxt = step(actions)
        for i in range(len(actions)):
            reference.add_batch(
                state=obs[i : i + 1],
                action=actions[i : i + 1].astype(np.int64),
                reward=rew[i : i + 1],
                next_state=nxt[i : i + 1],
                terminated=term[i : i + 1],
                truncated=trunc[i : i + 1],
                stream=i,
            )
        return obs, rew, term, trunc, nxt

    acting.envs.step = recording_step  # type: ignore[method-assign]
    batches = []
    for _ in range(400):
        acting.step()
        if acting.ready():
            batches.append(acting.take()[0])
    got = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    want = reference.to_columns()
    assert len(got["reward"]) == len(want["reward"]) > 1000
    # both emit in the same order per env; compare as sets of rows keyed by (state, action)
    order_got = np.lexsort(np.c_[got["state"], got["action"]].T)
    order_want = np.lexsort(np.c_[want["state"], want["action"]].T)
    for key in ("state", "action", "reward", "next_state", "terminated", "truncated", "discount"):
        np.testing.assert_allclose(got[key][order_got], want[key][order_want], rtol=1e-5, err_msg=key)
    allowed = np.array([0.0, cfg.gamma, cfg.gamma**2, cfg.gamma**3], np.float32)
    assert np.isclose(got["discount"][:, None], allowed[None]).any(axis=1).all()
    assert (got["discount"] == 0).any() and np.isclose(got["discount"], cfg.gamma**3).any()


def test_initial_priorities_are_the_n_step_td_errors_of_the_actor_q_values() -> None:
    cfg = apex_config("CartPole-v1", {"num_envs": 2, "n_step": 3, "send_every": 64})
    acting = ApexActing("CartPole-v1", cfg, SPEC, seed=1, epsilon=0.3)
    acting.set_params(_params(5))
    acting.run_plain(40)  # windows fill, episodes end
    while not acting.ready():
        acting.step()
    batch, prios = acting.take()
    q = acting.policy.q_values
    q_sa = q(batch["state"])[np.arange(len(prios)), batch["action"]]
    expected = np.abs(batch["reward"] + batch["discount"] * q(batch["next_state"]).max(axis=1) - q_sa)
    np.testing.assert_allclose(prios, expected, rtol=1e-4, atol=1e-4)
    assert (prios >= 0).all() and np.isfinite(prios).all()
    assert acting.sent == len(prios)


def test_epsilon_sets_how_often_the_actor_explores() -> None:
    cfg = apex_config("CartPole-v1", {"num_envs": 4})
    for eps in (0.0, 0.5):
        acting = ApexActing("CartPole-v1", cfg, SPEC, seed=0, epsilon=eps)
        acting.set_params(_params(2))
        greedy = 0
        total = 0
        for _ in range(500):
            obs = acting.envs.obs.copy()
            wanted = acting.policy.q_values(obs).argmax(axis=1)
            before = acting.envs.step
            taken: list[np.ndarray] = []

            def spy(actions: np.ndarray, before=before, taken=taken) -> tuple[np.ndarray, ...]:
                taken.append(actions.copy())
                return before(actions)

            acting.envs.step = spy  # type: ignore[method-assign]
            acting.step()
            acting.envs.step = before  # type: ignore[method-assign]
            greedy += int((taken[0] == wanted).sum())
            total += len(wanted)
        rate = 1 - greedy / total
        # exploring picks a random one of 2 actions: half of the explored steps differ from greedy
        assert math.isclose(rate, eps / 2, abs_tol=0.04), (eps, rate)
