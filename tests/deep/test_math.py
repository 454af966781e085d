"""The update math: GAE by hand, PPO's clip, (Double) DQN targets, n-step targets, target updates."""

from __future__ import annotations

import numpy as np
import pytest

from beamrl.rl.deep.config import DDPGConfig, DQNConfig, PGConfig, config_for, parse_sets
from beamrl.rl.exp import Exp
from beamrl.rl.replay import ReplayMemory
from beamrl.rl.spaces import Box, Discrete

torch = pytest.importorskip("torch")

from beamrl.rl.deep.algo import adam, adam_step  # noqa: E402
from beamrl.rl.deep.ddpg import DDPG  # noqa: E402
from beamrl.rl.deep.dqn import DQN, dqn_targets  # noqa: E402
from beamrl.rl.deep.nets import MLPGrad, mlp  # noqa: E402
from beamrl.rl.deep.pg import PG, gae, ppo_policy_loss  # noqa: E402


def test_gae_matches_a_hand_computed_case() -> None:
    # one env, 3 steps: the episode terminates at t=1, then a new one is cut by a time limit at t=2
    r = np.array([[1.0], [2.0], [3.0]])
    v = np.array([[0.5], [1.0], [1.5]])
    nv = np.array([[1.0], [9.0], [2.0]])  # t=1's next value is ignored (terminated); t=2 bootstraps
    term = np.array([[0.0], [1.0], [0.0]])
    done = np.array([[0.0], [1.0], [1.0]])
    g, lam = 0.9, 0.8
    d2 = 3.0 + g * 2.0 - 1.5
    d1 = 2.0 - 1.0
    d0 = 1.0 + g * 1.0 - 0.5
    a2 = d2
    a1 = d1  # the episode ended: nothing flows back from t=2
    a0 = d0 + g * lam * a1
    np.testing.assert_allclose(gae(r, v, nv, term, done, g, lam)[:, 0], [a0, a1, a2])


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value() -> None:
    r = np.array([[1.0], [1.0], [1.0]])
    v = np.array([[0.2], [0.3], [0.4]])
    nv = np.array([[0.3], [0.4], [0.0]])  # V(s_{t+1}), as a rollout gives it
    term = np.array([[0.0], [0.0], [1.0]])
    adv = gae(r, v, nv, term, term, 0.5, 1.0)[:, 0]
    np.testing.assert_allclose(adv, [1 + 0.5 + 0.25 - 0.2, 1 + 0.5 - 0.3, 1 - 0.4])


def test_gae_over_several_envs_is_gae_of_each_env_alone() -> None:
    rng = np.random.default_rng(0)
    shape = (50, 3)  # three envs: the vectorised loop; each alone: the one-env loop
    r, v, nv = rng.normal(size=shape), rng.normal(size=shape), rng.normal(size=shape)
    term = (rng.random(shape) < 0.1).astype(np.float32)
    done = np.maximum(term, rng.random(shape) < 0.05)
    together = gae(r, v, nv, term, done, 0.99, 0.9)
    for e in range(3):
        alone = gae(
            r[:, e : e + 1], v[:, e : e + 1], nv[:, e : e + 1], term[:, e : e + 1], done[:, e : e + 1], 0.99, 0.9
        )
        np.testing.assert_allclose(together[:, e : e + 1], alone, rtol=1e-12)


def test_ppo_clip_stops_the_gradient_outside_the_trust_region() -> None:
    old = torch.zeros(3)
    adv = torch.tensor([1.0, 1.0, -1.0])
    logp = torch.log(torch.tensor([1.5, 1.1, 0.5])).requires_grad_(True)  # ratios 1.5, 1.1, 0.5
    loss = ppo_policy_loss(logp, old, adv, clip=0.2)
    loss.backward()
    expected = -(1.2 * 1.0 + 1.1 * 1.0 + 0.8 * -1.0) / 3  # clipped, inside, clipped (pessimistic)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    grad = logp.grad
    assert grad is not None
    assert grad[0] == 0 and grad[2] == 0  # clipped ratios give no gradient
    assert grad[1] == pytest.approx(-1.1 / 3, rel=1e-5)


def test_double_dqn_evaluates_the_online_argmax_with_the_target_net() -> None:
    online = torch.tensor([[1.0, 5.0], [3.0, 2.0]])
    target = torch.tensor([[4.0, 0.5], [1.0, 7.0]])
    reward = torch.tensor([1.0, 0.0])
    discount = torch.tensor([0.5, 0.0])  # the second transition terminated
    assert dqn_targets(online, target, reward, discount, double=True).tolist() == [1.25, 0.0]
    assert dqn_targets(online, target, reward, discount, double=False).tolist() == [3.0, 0.0]


def _dqn(**overrides: object) -> DQN:
    cfg = config_for("dqn", "CartPole-v1", {"hidden": [8], "batch_size": 4, **overrides})
    assert isinstance(cfg, DQNConfig)
    return DQN(cfg, Box(-1.0, 1.0, (2,)), Discrete(2), seed=0)


def _batch(rng: np.random.Generator, n: int = 4) -> dict[str, np.ndarray]:
    return {
        "state": rng.normal(size=(n, 2)).astype(np.float32),
        "next_state": rng.normal(size=(n, 2)).astype(np.float32),
        "action": rng.integers(0, 2, n),
        "reward": rng.normal(size=n).astype(np.float32),
        "discount": np.full(n, 0.99, np.float32),
    }


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_hard_target_update_every_n_updates() -> None:
    algo, rng = _dqn(target_update=3), np.random.default_rng(0)
    assert _same(algo.q, algo.q_target)
    algo.learn(_batch(rng))
    assert not _same(algo.q, algo.q_target)
    algo.learn(_batch(rng))
    assert not _same(algo.q, algo.q_target)
    algo.learn(_batch(rng))
    assert _same(algo.q, algo.q_target)  # the third update copied the online net


def test_soft_target_update_mixes_by_tau() -> None:
    algo, rng = _dqn(tau=0.25), np.random.default_rng(0)
    before = [p.detach().clone() for p in algo.q_target.parameters()]
    algo.learn(_batch(rng))
    for old, new, online in zip(before, algo.q_target.parameters(), algo.q.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * online.detach())


def test_n_step_batches_give_the_n_step_target() -> None:
    memory = ReplayMemory(10, n_step=3, gamma=0.5)
    for t in range(4):
        s, s2 = np.array([t, 0.0], np.float32), np.array([t + 1, 0.0], np.float32)
        memory.add(Exp(s, 1, float(t + 1), s2, False, False))
    batch = memory.get_batch(2, mode="latest")  # the transitions starting at t=0 and t=1
    algo = _dqn(double=False)
    with torch.no_grad():
        q_boot = algo.q_target(torch.tensor([[3.0, 0.0], [4.0, 0.0]])).max(1).values.numpy()
        y = dqn_targets(
            algo.q(torch.from_numpy(batch["next_state"])),
            algo.q_target(torch.from_numpy(batch["next_state"])),
            torch.from_numpy(batch["reward"]),
            torch.from_numpy(batch["discount"]),
            double=False,
        ).numpy()
    expected = [1 + 0.5 * 2 + 0.25 * 3 + 0.125 * q_boot[0], 2 + 0.5 * 3 + 0.25 * 4 + 0.125 * q_boot[1]]
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_prioritized_learning_returns_td_errors_for_the_replay() -> None:
    algo, rng = _dqn(), np.random.default_rng(0)
    batch = _batch(rng)
    batch["weights"] = np.ones(4, np.float32)
    stats = algo.learn(batch)
    assert stats["td"].shape == (4,) and (stats["td"] >= 0).all()


def test_config_table_and_set_overrides() -> None:
    cfg = config_for("dqn", "CartPole-v1", parse_sets(["lr=5e-4", "dueling=true", "hidden=[32,32]"]))
    assert isinstance(cfg, DQNConfig)
    assert (cfg.lr, cfg.dueling, cfg.hidden) == (5e-4, True, [32, 32])
    assert config_for("dqn", "Acrobot-v1").target_update == 250  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="no hyper-parameter 'lrr'"):
        config_for("dqn", "CartPole-v1", {"lrr": 1})
    with pytest.raises(ValueError, match="dueling must be true or false"):
        config_for("dqn", "CartPole-v1", {"dueling": "yes"})
    with pytest.raises(ValueError, match="--set expects KEY=VALUE"):
        parse_sets(["lr"])
    with pytest.raises(ValueError, match="unknown deep algorithm"):
        config_for("dqn2", "CartPole-v1")


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_the_hand_written_mlp_backward_matches_autograd(activation: str) -> None:
    torch.manual_seed(0)
    net = mlp([5, 32, 16, 3], activation)
    x, d_out = torch.randn(64, 5, requires_grad=True), torch.randn(64, 3)
    net(x).backward(d_out)
    run = MLPGrad(net, activation)
    with torch.no_grad():
        out = run.forward(x.detach())
        grads = run.backward(d_out)
        d_x = run.input_grad(d_out)
    np.testing.assert_allclose(out.numpy(), net(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert x.grad is not None
    np.testing.assert_allclose(d_x.numpy(), x.grad.numpy(), rtol=1e-4, atol=1e-6)
    for param, grad in zip(net.parameters(), grads, strict=True):
        assert param.grad is not None and grad.shape == param.shape
        np.testing.assert_allclose(grad.numpy(), param.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("huber", "weighted"), [(True, False), (True, True), (False, True)])
def test_the_dqn_gradient_by_hand_is_autograds(huber: bool, weighted: bool) -> None:
    cfg = config_for("dqn", "CartPole-v1", {"hidden": [32, 32], "huber": huber})
    assert isinstance(cfg, DQNConfig)
    learner = DQN(cfg, Box(-1.0, 1.0, (4,)), Discrete(2), seed=0)
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.normal(size=(64, 4)), dtype=torch.float32)
    act = torch.as_tensor(rng.integers(0, 2, (64, 1)))
    y = torch.as_tensor(rng.normal(size=64) * 3, dtype=torch.float32)  # |td| both below and above 1
    weights = torch.as_tensor(rng.uniform(0.1, 1.0, 64), dtype=torch.float32) if weighted else None
    auto = learner._gradients_autograd(obs, act, y, weights)
    auto_grads = [p.grad.clone() for p in learner.q.parameters() if p.grad is not None]
    by_hand = learner._gradients_by_hand(obs, act, y, weights)
    assert len(auto_grads) == 6
    for a, b in zip(auto, by_hand, strict=True):  # loss, Q(s, a), td
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    for a, param in zip(auto_grads, learner.q.parameters(), strict=True):
        assert param.grad is not None
        np.testing.assert_allclose(param.grad.numpy(), a.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("continuous", [False, True], ids=["categorical", "gaussian"])
@pytest.mark.parametrize(("mode", "clipping"), [("ppo", True), ("ppo", False), ("a2c", False)])
def test_the_policy_gradient_by_hand_is_autograds(continuous: bool, mode: str, clipping: bool) -> None:
    cfg = config_for(mode, "Pendulum-v1" if continuous else "CartPole-v1", {"hidden": [32, 32], "ent_coef": 0.05})
    assert isinstance(cfg, PGConfig)
    action_space = Box(-2.0, 2.0, (2,)) if continuous else Discrete(3)
    learner = PG(mode, cfg, Box(-1.0, 1.0, (4,)), action_space, seed=0)
    rng = np.random.default_rng(1)
    obs = torch.as_tensor(rng.normal(size=(64, 4)), dtype=torch.float32)
    act = (
        torch.as_tensor(rng.normal(size=(64, 2)), dtype=torch.float32)
        if continuous
        else torch.as_tensor(rng.integers(0, 3, 64))
    )
    with torch.no_grad():
        logp = learner.ac.dist(obs).log_prob(act)
    # off-policy by up to ±0.5 in log-probability: ratios far outside 1 ± 0.2, so the clip bites
    old_logp = logp + torch.as_tensor(rng.uniform(-0.5, 0.5, 64), dtype=torch.float32) if clipping else logp
    adv = torch.as_tensor(rng.normal(size=64), dtype=torch.float32)
    ret = torch.as_tensor(rng.normal(size=64) * 2, dtype=torch.float32)
    if clipping:
        ratio = (logp - old_logp).exp()
        assert ((ratio < 0.8) | (ratio > 1.2)).sum() > 10
    auto = learner._gradients_autograd(obs, act, old_logp, adv, ret, clip=0.2)
    auto_grads = [p.grad.clone() for p in learner.ac.parameters() if p.grad is not None]
    by_hand = learner._gradients_by_hand(obs, act, old_logp, adv, ret, clip=0.2)
    assert len(auto_grads) == (13 if continuous else 12)  # 3 layers x (weight, bias) x (policy, value), log σ
    np.testing.assert_allclose(by_hand.numpy(), auto.numpy(), rtol=1e-5, atol=1e-6)  # loss, pg, value, entropy
    for name, param in learner.ac.named_parameters():
        assert param.grad is not None
        expected = auto_grads[[n for n, _ in learner.ac.named_parameters()].index(name)]
        np.testing.assert_allclose(param.grad.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


def _ddpg(algo: str, seed: int = 0) -> DDPG:
    cfg = config_for(algo, "Pendulum-v1", {"hidden": [32, 32], "max_grad_norm": 0.5})
    assert isinstance(cfg, DDPGConfig)
    return DDPG(cfg, Box(-1.0, 1.0, (3,)), Box(-2.0, 2.0, (2,)), seed=seed)


def _ddpg_batch(rng: np.random.Generator, weighted: bool, size: int = 64) -> dict[str, np.ndarray]:
    batch = {
        "state": rng.normal(size=(size, 3)).astype(np.float32),
        "next_state": rng.normal(size=(size, 3)).astype(np.float32),
        "action": rng.uniform(-2, 2, (size, 2)).astype(np.float32),
        "reward": (rng.normal(size=size) * 3).astype(np.float32),
        "discount": np.full(size, 0.98, np.float32),
    }
    if weighted:
        batch["weights"] = rng.uniform(0.1, 1.0, size).astype(np.float32)
    return batch


@pytest.mark.parametrize("weighted", [False, True], ids=["uniform", "prioritized"])
@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_the_ddpg_and_td3_gradients_by_hand_are_autograds(algo: str, weighted: bool) -> None:
    learner = _ddpg(algo)
    batch = _ddpg_batch(np.random.default_rng(0), weighted)
    obs, act = torch.from_numpy(batch["state"]), torch.from_numpy(batch["action"])
    y = learner.targets(torch.from_numpy(batch["next_state"]), torch.from_numpy(batch["reward"]), torch.tensor(0.98))
    weights = torch.from_numpy(batch["weights"]) if weighted else None
    auto = learner._critic_gradients_autograd(obs, act, y, weights)
    auto_grads = [p.grad.clone() for p in learner.critics.parameters() if p.grad is not None]
    by_hand = learner._critic_gradients_by_hand(obs, act, y, weights)
    assert len(auto_grads) == (12 if algo == "td3" else 6)
    for a, b in zip(auto, by_hand, strict=True):  # loss, Q_1(s, a), td
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    for a, param in zip(auto_grads, learner.critics.parameters(), strict=True):
        assert param.grad is not None
        np.testing.assert_allclose(param.grad.numpy(), a.numpy(), rtol=1e-4, atol=1e-6)
    critic_grads = [p.grad.clone() for p in learner.critics.parameters() if p.grad is not None]
    loss = learner._actor_gradients_by_hand(obs)
    hand_grads = [p.grad.clone() for p in learner.actor.parameters() if p.grad is not None]
    # the actor's step leaves the critics' gradient buffer as the critic step wrote it
    for a, b in zip(critic_grads, learner._critic_grads.grads, strict=True):
        assert torch.equal(a, b)
    auto_loss = learner._actor_gradients_autograd(obs)
    assert len(hand_grads) == 6
    np.testing.assert_allclose(loss.numpy(), auto_loss.numpy(), rtol=1e-5)
    for a, param in zip(hand_grads, learner.actor.parameters(), strict=True):
        assert param.grad is not None
        np.testing.assert_allclose(a.numpy(), param.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_the_td3_target_takes_the_smaller_twin_of_the_smoothed_target_action() -> None:
    learner = _ddpg("td3")
    batch = _ddpg_batch(np.random.default_rng(1), weighted=False)
    nxt, reward = torch.from_numpy(batch["next_state"]), torch.from_numpy(batch["reward"])
    torch.manual_seed(5)
    y = learner.targets(nxt, reward, torch.tensor(0.98))
    torch.manual_seed(5)
    with torch.no_grad():
        a2 = learner.actor_target(nxt)
        half = learner.half
        noise = (torch.randn_like(a2) * 0.2 * half).clamp(-0.5 * half, 0.5 * half)
        a2 = torch.max(torch.min(a2 + noise, learner.high), learner.low)
        q1, q2 = (c(nxt, a2) for c in learner.critics_target)
    assert not torch.equal(q1, q2)
    np.testing.assert_allclose(y.numpy(), (reward + 0.98 * torch.minimum(q1, q2)).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("weighted", [False, True], ids=["uniform", "prioritized"])
@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_ddpg_and_td3_learn_by_hand_as_by_autograd(algo: str, weighted: bool) -> None:
    """Clipping, Adam, the delayed actor and the targets' Polyak step: the same weights after several updates."""
    runs = []
    for by_hand in (False, True):
        learner = _ddpg(algo, seed=3)
        learner.by_hand = by_hand
        rng = np.random.default_rng(2)
        stats = [learner.learn(_ddpg_batch(rng, weighted)) for _ in range(5)]
        runs.append((learner, stats))
    (auto, auto_stats), (hand, hand_stats) = runs
    assert ("actor_loss" in hand_stats[0]) == (algo == "ddpg") and "actor_loss" in hand_stats[1]
    for a, b in zip(auto_stats, hand_stats, strict=True):
        assert a.keys() == b.keys()
        np.testing.assert_allclose(b["td"], a["td"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose([b["loss"], b["q"]], [a["loss"], a["q"]], rtol=1e-4, atol=1e-5)
    for name, module in auto.modules.items():
        for (key, a), b in zip(module.state_dict().items(), hand.modules[name].state_dict().values(), strict=True):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{name}.{key}")
    assert not torch.equal(hand.actor_target.pi[0].weight, _ddpg(algo, seed=3).actor_target.pi[0].weight)


@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_ddpg_and_td3_learn_leave_no_subnormal_adam_moment_and_restore_the_flags(algo: str) -> None:
    learner = _ddpg(algo)
    rng = np.random.default_rng(4)
    learner.learn(_ddpg_batch(rng, weighted=False))  # the Adam state exists from here
    first = learner.critics[0].q[0]
    with torch.no_grad():
        first.bias[0] = -1e6  # a dead unit: its weights' gradients are exactly 0 from now on
    state = learner.critic_opt.state
    tiny = 1e-40  # subnormal in float32
    for param in (first.weight, first.bias):
        state[param]["exp_avg"].fill_(tiny)
    learner.learn(_ddpg_batch(rng, weighted=False))
    assert float(learner._critic_grads.of([first.weight])[0][0].abs().max()) == 0.0
    for param in (first.weight, first.bias):
        moment = state[param]["exp_avg"]
        subnormal = (moment != 0) & (moment.abs() < torch.finfo(torch.float32).tiny)
        assert not bool(subnormal.any())  # 0.9 * 1e-40 would have stayed subnormal
        assert float(moment[0].abs().max()) == 0.0
    # outside learn the thread computes with subnormals again
    assert float(torch.tensor([tiny]) * 0.5) > 0.0


def test_adam_step_is_the_fused_adam_step_bit_for_bit() -> None:
    torch.manual_seed(0)
    nets = [mlp([3, 16, 1]) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [adam(net.parameters(), 1e-2) for net in nets]
    for i in range(4):
        grads = [torch.randn_like(p) for p in nets[0].parameters()]
        if i == 2:
            for opt in opts:
                opt.param_groups[0]["lr"] = 3e-3  # what set_lr does
        for net, opt, step in zip(nets, opts, (lambda o: o.step(), adam_step), strict=True):
            for param, grad in zip(net.parameters(), grads, strict=True):
                param.grad = grad.clone()
            step(opt)
        # from the second step on (Adam's state exists) adam_step calls the kernel, never Optimizer.step
        opts[1].step = lambda *args, **kwargs: pytest.fail("adam_step fell back to Optimizer.step")  # type: ignore[method-assign]
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(opts[0].state.values(), opts[1].state.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    assert float(opts[1].state[next(nets[1].parameters())]["step"]) == 4
