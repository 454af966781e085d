"""``beamrl bench learn``: each learning-table row against Stable-Baselines3, and the acting path alone.

For every row of ``beamrl.rl.deep.config.TABLE`` (``--quick``: DQN and PPO on CartPole
with a tenth of the budget) it trains with ``beamrl train``'s default tree (``train_deep``:
one ``AgentServer`` process that acts and learns), then with the two-process tree
(``--split``: Learner + Actor; quick rows only) and then with Stable-Baselines3 with the
same hyper-parameters and step budget, back to back on this machine, one torch thread
each, and reports wall-clock (and CPU time: the fairer figure on a machine other jobs
load), env steps/s and the final return (20 greedy episodes on
the same gymnasium env and seeds; neither side runs periodic evaluations, both are
judged on their last policy). ``--seeds 0,1,2`` runs every row on each seed and compares
median returns, as the learning table does; ``--row ALGO:ENV`` picks rows. SB3 is the
optional ``peers`` extra; without it the rows say so. SB3 has no REINFORCE; its DQN has
no Double DQN and no n-step returns (the shared settings are the same: network, learning
rate, buffer, batch, ε schedule, target interval, train frequency).

Acting path alone: env steps/s of the single-node agent with learning off (the
``Agent`` loop the agent process runs: numpy policy, ε-greedy, replay writes) against a
plain loop stepping the same gymnasium env with the same Q-network in torch (ε-greedy,
no replay).
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np

from beamrl.node import run as run_on_uvloop
from beamrl.rl.deep.config import TABLE, Common, DDPGConfig, DQNConfig, PGConfig, Target, config_for
from beamrl.rl.deep.evaluate import EVAL_SEED, evaluate
from beamrl.rl.deep.run import FINAL_EVAL_EPISODES, train_deep

__all__ = ["run"]


def _ours(row: Target, steps: int, seed: int, split: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="beamrl-bench-learn-") as out:
        # like SB3's learn(): no periodic evaluations, the last policy is the one judged
        no_evals = {"eval_every": 0}
        summary: dict[str, Any] = run_on_uvloop(
            train_deep(row.algo, row.env_id, steps, seed, out, overrides=no_evals, progress=False, split=split)
        )
    return {"wall": summary["wall_seconds"], "cpu": summary["cpu_seconds"], "return": summary["eval_mean_return"]}


class _SB3Policy:
    """SB3's deterministic ``predict`` behind the ``greedy`` method ``evaluate`` calls."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        action, _ = self.model.predict(np.asarray(obs, np.float32), deterministic=True)
        return np.asarray([action])


def _sb3_model(algo: str, env_id: str, cfg: Common, steps: int, seed: int) -> Any:
    import torch
    from stable_baselines3 import A2C, DDPG, DQN, PPO, TD3
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise

    act = torch.nn.ReLU if cfg.activation == "relu" else torch.nn.Tanh
    if isinstance(cfg, DQNConfig):
        lr0, lr1 = cfg.lr, cfg.lr if cfg.lr_end is None else cfg.lr_end
        return DQN(
            "MlpPolicy",
            make_vec_env(env_id, 1, seed=seed),
            learning_rate=lambda remaining: lr1 + remaining * (lr0 - lr1),
            buffer_size=cfg.buffer_size,
            learning_starts=cfg.learning_starts,
            batch_size=cfg.batch_size,
            gamma=cfg.gamma,
            train_freq=cfg.train_freq,
            gradient_steps=cfg.gradient_steps,
            target_update_interval=cfg.target_update * max(cfg.train_freq // max(cfg.gradient_steps, 1), 1),
            exploration_fraction=min(1.0, cfg.eps_steps / steps),
            exploration_initial_eps=cfg.eps_start,
            exploration_final_eps=cfg.eps_end,
            max_grad_norm=cfg.max_grad_norm,
            policy_kwargs={"net_arch": cfg.hidden, "activation_fn": act},
            seed=seed,
        )
    if isinstance(cfg, PGConfig):
        lr = cfg.lr
        schedule = (lambda remaining: remaining * lr) if cfg.lr_decay else lr
        common: dict[str, Any] = {
            "learning_rate": schedule,
            "n_steps": cfg.n_steps,
            "gamma": cfg.gamma,
            "gae_lambda": cfg.gae_lambda,
            "ent_coef": cfg.ent_coef,
            # ours weighs vf_coef * (V - R)^2 / 2 (CleanRL's), SB3 vf_coef * (V - R)^2: the same loss at half
            "vf_coef": cfg.vf_coef / 2,
            "max_grad_norm": cfg.max_grad_norm,
            "policy_kwargs": {
                "net_arch": {"pi": cfg.hidden, "vf": cfg.hidden},
                "activation_fn": act,
                "log_std_init": cfg.log_std_init,  # a Gaussian policy's; unused by categorical ones
            },
            "seed": seed,
        }
        venv = make_vec_env(env_id, cfg.num_envs, seed=seed)
        if algo == "ppo":
            clip = cfg.clip
            return PPO(
                "MlpPolicy",
                venv,
                batch_size=cfg.minibatch_size,
                n_epochs=cfg.epochs,
                clip_range=(lambda remaining: remaining * clip) if cfg.clip_decay else clip,
                **common,
            )
        return A2C("MlpPolicy", venv, use_rms_prop=cfg.optimizer == "rmsprop", **common)
    assert isinstance(cfg, DDPGConfig)
    venv = make_vec_env(env_id, 1, seed=seed)
    space: Any = venv.action_space
    half = (space.high - space.low) / 2
    noise = NormalActionNoise(np.zeros(space.shape), cfg.noise * half)
    kwargs: dict[str, Any] = {
        "learning_rate": cfg.lr,
        "buffer_size": cfg.buffer_size,
        "learning_starts": cfg.learning_starts,
        "batch_size": cfg.batch_size,
        "tau": cfg.tau,
        "gamma": cfg.gamma,
        "train_freq": cfg.train_freq,
        "gradient_steps": cfg.gradient_steps,
        "action_noise": noise,
        "policy_kwargs": {"net_arch": cfg.hidden, "activation_fn": act},
        "seed": seed,
    }
    if algo == "td3":
        return TD3(
            "MlpPolicy",
            venv,
            policy_delay=cfg.policy_delay,
            target_policy_noise=cfg.target_noise * float(half.max()),
            target_noise_clip=cfg.target_noise_clip * float(half.max()),
            **kwargs,
        )
    return DDPG("MlpPolicy", venv, **kwargs)


def _sb3(row: Target, steps: int, seed: int) -> dict[str, Any] | str:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return "Stable-Baselines3 not installed (pip install 'beamrl[peers]')"
    if row.algo == "reinforce":
        return "SB3 has no REINFORCE"
    import torch

    torch.set_num_threads(1)
    cfg = config_for(row.algo, row.env_id)
    started, cpu_started = time.monotonic(), time.process_time()
    model = _sb3_model(row.algo, row.env_id, cfg, steps, seed)
    model.learn(total_timesteps=steps)
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    returns = evaluate(_SB3Policy(model), row.env_id, FINAL_EVAL_EPISODES, seed=EVAL_SEED)  # type: ignore[arg-type]
    return {"wall": wall, "cpu": cpu, "return": float(np.mean(returns))}


def acting_path(steps: int = 20_000, seed: int = 0) -> list[dict[str, Any]]:
    """DQN CartPole: the single-node agent with learning off vs a plain gymnasium + torch loop of the same network."""
    import gymnasium
    import torch

    from beamrl.rl.deep.agent import Agent

    torch.set_num_threads(1)
    cfg = config_for("dqn", "CartPole-v1", {"learning_starts": 10**9, "eps_start": 0.05, "eval_every": 0})
    agent = Agent("dqn", "CartPole-v1", cfg, seed, steps)
    started = time.perf_counter()
    agent.run()  # the loop of the agent process; no batch is ever due, so it only acts
    ours = agent.acting.steps / (time.perf_counter() - started)

    env, q, rng = gymnasium.make("CartPole-v1"), agent.algorithm.modules["q"], np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    started = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            if rng.random() < 0.05:
                action = int(rng.integers(2))
            else:
                action = int(q(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())
            obs, _, term, trunc, _ = env.step(action)
            if term or trunc:
                obs, _ = env.reset()
    plain = steps / (time.perf_counter() - started)
    return [
        {"name": "plain loop: gymnasium CartPole + torch Q-net (floor)", "value": plain, "unit": "steps/s"},
        {
            "name": "beamrl agent, learning off (numpy policy, replay writes)",
            "value": ours,
            "unit": "steps/s",
            "note": f"{ours / plain:.2f}x the plain loop",
        },
    ]


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _each(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def _table_row(row: Target, steps: int, seeds: list[int], quick: bool) -> list[dict[str, Any]]:
    ours = [_ours(row, steps, s) for s in seeds]
    split = _ours(row, steps, seeds[0], split=True) if quick else None
    peers = [_sb3(row, steps, s) for s in seeds]
    several = len(seeds) > 1
    name = f"{row.algo} {row.env_id} {steps:,} steps" + (f", seeds {', '.join(map(str, seeds))}" if several else "")
    returns = [o["return"] for o in ours]
    note = f"median return {_median(returns):.1f} ({_each(returns)})" if several else f"return {returns[0]:.1f}"
    note += f" (target {row.target:g})"
    wall = sum(o["wall"] for o in ours)
    if all(isinstance(p, dict) for p in peers):
        done = [p for p in peers if isinstance(p, dict)]
        peer_wall, peer_returns = sum(p["wall"] for p in done), [p["return"] for p in done]
        ratio, cpu = wall / peer_wall, sum(o["cpu"] for o in ours) / sum(p["cpu"] for p in done)
        if several:
            note += f"; SB3 {peer_wall / len(seeds):.1f} s a seed, median return {_median(peer_returns):.1f}"
            note += f" ({_each(peer_returns)})"
        else:
            note += f"; SB3 {peer_wall:.1f} s, return {peer_returns[0]:.1f}"
        note += f"; wall {ratio:.2f}x SB3's, cpu {cpu:.2f}x"
    else:
        note += f"; {next(p for p in peers if isinstance(p, str))}"
    rows: list[dict[str, Any]] = [
        {"name": name, "value": wall / len(seeds), "unit": "s wall" + (" a seed" if several else ""), "note": note},
        {"name": "  env steps/s", "value": steps * len(seeds) / wall, "unit": "steps/s"},
    ]
    if split is not None:
        note = f"return {split['return']:.1f}"
        if isinstance(peers[0], dict):
            note += f"; wall {split['wall'] / peers[0]['wall']:.2f}x SB3's, cpu {split['cpu'] / peers[0]['cpu']:.2f}x"
        rows.append({"name": "  --split (learner + actor)", "value": split["wall"], "unit": "s wall", "note": note})
    return rows


def run(quick: bool = False, seeds: list[int] | None = None, only: list[Target] | None = None) -> list[dict[str, Any]]:
    """The rows of ``beamrl bench learn``: ``seeds`` (default ``[0]``) each row runs on, ``only`` these rows.

    With several seeds each side's return is the median over them (the learning table's
    measure) and the wall ratio is the sum of ours over the sum of SB3's.
    """
    seeds = seeds or [0]
    rows: list[dict[str, Any]] = acting_path(5_000 if quick else 20_000, seeds[0])
    if only is not None:
        table = only
    elif quick:
        table = [r for r in TABLE if r.env_id == "CartPole-v1" and r.algo in ("dqn", "ppo")]
    else:
        table = TABLE
    for row in table:
        rows.extend(_table_row(row, row.steps // 10 if quick else row.steps, seeds, quick))
    return rows
