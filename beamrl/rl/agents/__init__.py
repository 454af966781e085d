"""Tabular agents: TD control, Monte Carlo control, dynamic programming."""

from beamrl.rl.agents.base import Agent
from beamrl.rl.agents.dp import (
    PolicyIteration,
    PolicyIterationConfig,
    ValueIteration,
    ValueIterationConfig,
    finite_horizon_return,
    model_arrays,
    policy_evaluation,
)
from beamrl.rl.agents.mc import MonteCarlo, MonteCarloConfig
from beamrl.rl.agents.td import (
    ExpectedSarsa,
    ExpectedSarsaConfig,
    QLearning,
    QLearningConfig,
    Sarsa,
    SarsaConfig,
    TDAgent,
    TDConfig,
)

__all__ = [
    "Agent",
    "ExpectedSarsa",
    "ExpectedSarsaConfig",
    "MonteCarlo",
    "MonteCarloConfig",
    "PolicyIteration",
    "PolicyIterationConfig",
    "QLearning",
    "QLearningConfig",
    "Sarsa",
    "SarsaConfig",
    "TDAgent",
    "TDConfig",
    "ValueIteration",
    "ValueIterationConfig",
    "finite_horizon_return",
    "model_arrays",
    "policy_evaluation",
]
