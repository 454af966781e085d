"""The agent a worker runs: hyper-parameters (the registry's tuned ones, then the user's),
schedules given as data, and resuming a restarted worker's schedules."""

from __future__ import annotations

from typing import Any

from beamrl.rl import schedules
from beamrl.rl.agents import (
    Agent,
    ExpectedSarsa,
    ExpectedSarsaConfig,
    MonteCarlo,
    MonteCarloConfig,
    QLearning,
    QLearningConfig,
    Sarsa,
    SarsaConfig,
)
from beamrl.rl.envs.registry import facts
from beamrl.rl.training.spec import ALGOS, RunSpec
from beamrl.rl.training.tabular import TableShape

TD_AGENTS: dict[str, tuple[type[Any], type[Any]]] = {
    "q-learning": (QLearning, QLearningConfig),
    "sarsa": (Sarsa, SarsaConfig),
    "expected-sarsa": (ExpectedSarsa, ExpectedSarsaConfig),
}

_SCHEDULES = {
    "constant": schedules.Constant,
    "linear": schedules.Linear,
    "exponential": schedules.Exponential,
    "glie": schedules.GLIE,
}


def default_hyper(algo: str, env_id: str) -> dict[str, Any]:
    """Hyper-parameters that reach the published targets on the native tabular envs."""
    return dict(facts(env_id).hyper.get("mc" if algo == "mc" else "td", {}))


def _schedule(value: Any) -> Any:
    if isinstance(value, dict):
        kind = value.get("kind")
        if kind not in _SCHEDULES:
            raise ValueError(f"schedule kind must be one of {', '.join(_SCHEDULES)}, got {kind!r}")
        return _SCHEDULES[kind](**{k: v for k, v in value.items() if k != "kind"})
    return value


def _scaled(schedule: Any, factor: int) -> Any:
    if factor == 1 or not callable(schedule):
        return schedule
    return lambda t: schedule(t * factor)


def agent_config(algo: str, hyper: dict[str, Any], seed: int, workers: int = 1) -> Any:
    """The agent's config dataclass from ``hyper`` (schedules given as dicts)."""
    values = {k: _schedule(v) for k, v in hyper.items()}
    if algo != "mc" and algo not in TD_AGENTS:
        raise ValueError(f"unknown algorithm {algo!r}: choose one of {', '.join(ALGOS)}")
    if workers > 1:
        defaults = MonteCarloConfig() if algo == "mc" else TD_AGENTS[algo][1]()
        for name in ("alpha", "epsilon"):
            value = values.get(name, getattr(defaults, name, None))
            if callable(value):
                values[name] = _scaled(value, workers)
    values.setdefault("seed", seed)
    values["record_updates"] = workers > 1  # several workers ship their TD targets (see Worker._ship)
    if algo == "mc":
        return MonteCarloConfig(**values)
    return TD_AGENTS[algo][1](**values)


def make_agent(spec: RunSpec, table: TableShape, worker: int) -> Any:
    """The agent a worker runs (seeded per worker, so workers explore differently)."""
    hyper = {**default_hyper(spec.algo, spec.env_id), **spec.hyper}
    config = agent_config(spec.algo, hyper, seed=spec.seed * 1000 + worker, workers=spec.workers)
    cls = MonteCarlo if spec.algo == "mc" else TD_AGENTS[spec.algo][0]
    return cls(table.n_states, table.n_actions, config, state_fn=table.state_fn())


def resume(agent: Agent, episodes: int) -> None:
    """Move an agent's schedules to ``episodes`` finished episodes (a restarted worker)."""
    agent.episodes = episodes
    refresh = getattr(agent, "_refresh", None)
    if refresh is not None:
        refresh()
    elif isinstance(agent, MonteCarlo):
        agent.epsilon = float(agent._eps_sched(episodes))
