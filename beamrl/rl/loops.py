"""Local training and evaluation loops: one agent, one environment, no processes.

::

    agent = QLearning(16, 4)
    result = train(agent, env, episodes=5_000, eval_every=500, eval_episodes=200, seed=0)
    result.returns, result.successes, result.evals      # per-episode arrays, eval records
    evaluate(agent, judge_env, episodes=2_000, seed=1)  # {"mean_return": ..., "success_rate": ...}

Success (``success_rate``) is decided on the last transition of an episode, by the rule
the env registry keeps for the env's id (``beamrl.rl.envs.registry.facts``), unless a
``success_fn`` is given.

A time-limit truncation is never a success. The training workers call ``run_episode``,
so its step loop does nothing per step beyond ``act``, ``step``, ``observe`` and a sum; a
TD agent learning plays the same episode through ``TDAgent.play``, its inlined loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from beamrl.rl.agents.base import Agent
from beamrl.rl.agents.td import TDAgent
from beamrl.rl.envs.registry import SuccessFn, facts, goal_reached, positive_terminal

__all__ = [
    "EpisodeResult",
    "TrainResult",
    "evaluate",
    "goal_reached",
    "positive_terminal",
    "run_episode",
    "success_fn_for",
    "train",
]

PolicyLike = Agent | np.ndarray | Callable[[Any], Any]

#: cap on an evaluation episode when the env has no time limit of its own
DEFAULT_EVAL_MAX_STEPS = 10_000


def success_fn_for(env: Any) -> SuccessFn:
    """The success rule the registry keeps for ``env``'s id (its ``env_id`` or gymnasium ``spec.id``)."""
    env_id = getattr(env, "env_id", "") or ""
    if not env_id:
        spec = getattr(env, "spec", None)
        env_id = getattr(spec, "id", "") or ""
    return facts(env_id).success


class EpisodeResult(NamedTuple):
    """What ``run_episode`` returns: unpacks as ``(ret, length, success)``."""

    #: undiscounted sum of rewards
    ret: float
    #: number of steps taken
    length: int
    #: whether the episode counted as a success (see the module table)
    success: bool


def run_episode(
    env: Any,
    agent: Agent,
    learn: bool = True,
    *,
    greedy: bool | None = None,
    seed: int | None = None,
    max_steps: int | None = None,
    success_fn: SuccessFn | None = None,
) -> EpisodeResult:
    """Play one episode; with ``learn`` the agent observes each step and ``end_episode`` runs.

    ``greedy`` defaults to ``not learn``. ``max_steps`` stops an episode early (counted as
    truncated) for environments without a time limit.
    """
    if greedy is None:
        greedy = not learn
    success = success_fn if success_fn is not None else success_fn_for(env)
    limit = max_steps if max_steps is not None else math.inf
    if learn and not greedy and isinstance(agent, TDAgent):  # the same episode in one tight loop
        total, n, last = agent.play(env, seed, limit)
        return EpisodeResult(total, n, success(last) if n else False)
    act = agent.act
    observe = agent.observe
    step = env.step
    exp = env.reset(seed=seed)
    total = 0.0
    n = 0
    while not (exp.terminated or exp.truncated) and n < limit:
        exp = step(act(exp.next_state, greedy))
        if learn:
            observe(exp)
        total += exp.reward
        n += 1
    if learn:
        agent.end_episode()
    return EpisodeResult(float(total), n, success(exp) if n else False)


def _policy_fn(policy: PolicyLike) -> Callable[[Any], Any]:
    if isinstance(policy, Agent):
        agent = policy
        return lambda s: agent.act(s, True)
    if isinstance(policy, np.ndarray):
        table = policy.tolist()
        return lambda s: table[s]
    if callable(policy):
        return policy
    raise TypeError(f"expected an Agent, a policy array or a callable, got {type(policy)!r}")


def evaluate(
    policy: PolicyLike,
    env: Any,
    episodes: int = 100,
    seed: int | None = 0,
    *,
    max_steps: int | None = None,
    success_fn: SuccessFn | None = None,
) -> dict[str, float]:
    """Run ``policy`` (an Agent acting greedily, a state->action array, or a callable).

    The first reset uses ``seed``, later ones continue the env's rng. Returns
    ``mean_return``, ``std_return``, ``success_rate``, ``mean_length``, ``episodes``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    fn = _policy_fn(policy)
    success = success_fn if success_fn is not None else success_fn_for(env)
    cap = max_steps or getattr(env, "max_episode_steps", None) or DEFAULT_EVAL_MAX_STEPS
    step = env.step
    returns = np.empty(episodes)
    lengths = np.empty(episodes)
    wins = 0
    for i in range(episodes):
        exp = env.reset(seed=seed if i == 0 else None)
        total = 0.0
        n = 0
        while not (exp.terminated or exp.truncated) and n < cap:
            exp = step(fn(exp.next_state))
            total += exp.reward
            n += 1
        returns[i] = total
        lengths[i] = n
        wins += bool(n and success(exp))
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "success_rate": wins / episodes,
        "mean_length": float(lengths.mean()),
        "episodes": float(episodes),
    }


@dataclass
class TrainResult:
    """Per-episode metrics of a ``train`` run and its periodic evaluations."""

    #: return of each training episode (exploring policy)
    returns: np.ndarray
    #: length of each training episode
    lengths: np.ndarray
    #: success flag of each training episode
    successes: np.ndarray
    #: exploration rate in force during each episode (NaN when the agent has none)
    epsilons: np.ndarray
    #: one dict per evaluation: ``episode`` (episodes trained so far) plus the eval metrics
    evals: list[dict[str, float]] = field(default_factory=list)
    #: wall-clock seconds the run took (evaluations included)
    wall_time: float = 0.0
    #: whether ``stop_when`` or ``on_episode`` ended the run early
    stopped_early: bool = False

    @property
    def episodes(self) -> int:
        """Episodes actually trained."""
        return len(self.returns)

    def rows(self) -> list[dict[str, float]]:
        """One dict per episode (``episode, return, length, success, epsilon``), for CSV."""
        return [
            {
                "episode": i + 1,
                "return": float(r),
                "length": int(n),
                "success": int(s),
                "epsilon": float(e),
            }
            for i, (r, n, s, e) in enumerate(
                zip(self.returns, self.lengths, self.successes, self.epsilons, strict=True)
            )
        ]


def train(
    agent: Agent,
    env: Any,
    episodes: int = 1_000,
    *,
    eval_every: int = 0,
    eval_episodes: int = 100,
    eval_env: Any = None,
    eval_fn: Callable[[Agent], Mapping[str, float]] | None = None,
    stop_when: Callable[[Mapping[str, float]], bool] | None = None,
    seed: int | None = 0,
    max_steps: int | None = None,
    success_fn: SuccessFn | None = None,
    on_episode: Callable[[int, EpisodeResult, Agent], bool | None] | None = None,
) -> TrainResult:
    """Train ``agent`` on ``env`` for up to ``episodes`` episodes.

    ``env`` is reset with ``seed`` once, then continues its rng. Every ``eval_every``
    episodes (0: never) the greedy agent is evaluated — by ``eval_fn(agent)`` when given
    (e.g. an exact evaluation through the model), else by ``evaluate`` over
    ``eval_episodes`` on ``eval_env`` (default: ``env``; evaluating on the training env
    resets it). ``stop_when(eval_metrics)`` returning True ends the run, as does
    ``on_episode(index, result, agent)`` returning True.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    success = success_fn if success_fn is not None else success_fn_for(env)
    judge = eval_env if eval_env is not None else env
    rets = np.zeros(episodes)
    lens = np.zeros(episodes, dtype=np.int64)
    wins = np.zeros(episodes, dtype=bool)
    epss = np.full(episodes, np.nan)
    evals: list[dict[str, float]] = []
    start = time.perf_counter()
    stopped = False
    done = 0
    eval_seed = None if seed is None else seed + 1
    for i in range(episodes):
        epss[i] = getattr(agent, "epsilon", np.nan)
        res = run_episode(
            env,
            agent,
            True,
            seed=seed if i == 0 else None,
            max_steps=max_steps,
            success_fn=success,
        )
        rets[i], lens[i], wins[i] = res
        done = i + 1
        if on_episode is not None and on_episode(i, res, agent):
            stopped = True
            break
        if eval_every and done % eval_every == 0:
            if eval_fn is not None:
                metrics = dict(eval_fn(agent))
            else:
                metrics = evaluate(agent, judge, eval_episodes, eval_seed, success_fn=success)
            metrics["episode"] = float(done)
            evals.append(metrics)
            if stop_when is not None and stop_when(metrics):
                stopped = True
                break
    return TrainResult(
        returns=rets[:done],
        lengths=lens[:done],
        successes=wins[:done],
        epsilons=epss[:done],
        evals=evals,
        wall_time=time.perf_counter() - start,
        stopped_early=stopped,
    )
