"""Refuse a run that cannot do what it says, before anything starts.

``preflight`` checks what a ``RunSpec`` alone cannot: the env builds with the given
keywords, a tabular algorithm meets a discrete problem, every hyper-parameter is one the
algorithm takes, planners run on one node without faults, and each fault can fire (its
worker exists, its episode lies within the budget, its process is one the learner has).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from beamrl.rl.agents import (
    ExpectedSarsaConfig,
    MonteCarloConfig,
    PolicyIterationConfig,
    QLearningConfig,
    SarsaConfig,
    ValueIterationConfig,
)
from beamrl.rl.envs.registry import make
from beamrl.rl.spaces import Box
from beamrl.rl.training.spec import PLANNING_ALGOS, RunSpec
from beamrl.rl.training.tabular import TableShape, table_shape

#: the agent config dataclass behind each algorithm (its fields are the ``--set`` keys)
CONFIGS: dict[str, type[Any]] = {
    "q-learning": QLearningConfig,
    "sarsa": SarsaConfig,
    "expected-sarsa": ExpectedSarsaConfig,
    "mc": MonteCarloConfig,
    "value-iteration": ValueIterationConfig,
    "policy-iteration": PolicyIterationConfig,
}

#: learner-side processes a ``{"kill": NAME}`` fault may kill (each restarts under its supervisor)
KILLABLE = ("qserver",)

#: config fields the trainer sets itself
_SET_BY_THE_TRAINER = ("seed", "record_updates", "apply_locally")  # workers learn on their copy, ship changes


def hyper_keys(algo: str) -> list[str] | None:
    """The hyper-parameters ``algo`` accepts (``--set KEY=VALUE``); None if it has no entry in ``CONFIGS``."""
    config = CONFIGS.get(algo)
    if config is None:
        return None
    return [f.name for f in dataclasses.fields(config) if f.name not in _SET_BY_THE_TRAINER]


def describe_space(space: Any) -> str:
    """A short name for a space: ``Box(4,)`` rather than its bounds."""
    if isinstance(space, Box):
        return f"Box{tuple(space.shape)}"
    return repr(space)


def preflight(spec: RunSpec, nodes: int, attach: list[str]) -> tuple[Any, TableShape | None]:
    """The run's env and table shape, or a ``ValueError`` saying what cannot work and how to fix it.

    The table shape is None for an algorithm that is not tabular (not in ``CONFIGS``).
    """
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    if spec.algo in PLANNING_ALGOS:
        if nodes > 1 or attach:
            raise ValueError(f"{spec.algo} plans on one node from the env's model: leave out --nodes and --attach")
        if spec.chaos:
            raise ValueError(f"{spec.algo} plays no episodes, so a fault (--crash-at, --kill-at) would never fire")
        if spec.episodes is not None or spec.steps is not None or spec.stop_at_success is not None:
            raise ValueError(
                f"{spec.algo} solves the env's model and plays no episodes: leave out --episodes, --steps"
                " and --stop-at-success"
            )
    keys = hyper_keys(spec.algo)
    unknown = sorted(set(spec.hyper) - set(keys)) if keys is not None else []
    if keys is not None and unknown:
        raise ValueError(f"--set {unknown[0]}: {spec.algo} takes {', '.join(keys)}")
    try:
        env = make(spec.env_id, **spec.env_kwargs)
    except TypeError as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in spec.env_kwargs.items())
        raise ValueError(f"--env {given}: {spec.env_id} does not take these keywords ({exc})") from None
    if spec.algo not in CONFIGS:
        _check_faults(spec, max(nodes, 1) + len(attach))
        return env, None
    try:
        table = table_shape(env.observation_space, env.action_space)
    except ValueError:
        space = describe_space(env.observation_space)
        raise ValueError(
            f"{spec.algo} needs a discrete observation space; {spec.env_id} has {space}: try dqn"
        ) from None
    _check_faults(spec, max(nodes, 1) + len(attach))
    return env, table


def _check_faults(spec: RunSpec, workers: int) -> None:
    for chaos in spec.chaos:
        at = chaos.get("at")
        if spec.episodes is not None and isinstance(at, int) and at > spec.episodes:
            raise ValueError(f"a fault at episode {at} is past the {spec.episodes}-episode budget: it would never fire")
        if "fault" in chaos and not 0 <= chaos["fault"] < workers:
            raise ValueError(
                f"--crash-worker {chaos['fault']}: the run has {workers} worker(s), numbered 0..{workers - 1}"
                " (one per node: add --nodes or --attach for more)"
            )
        if "kill" in chaos and chaos["kill"] not in KILLABLE:
            raise ValueError(f"--kill-at {at}:{chaos['kill']}: the learner can kill {', '.join(KILLABLE)}")
