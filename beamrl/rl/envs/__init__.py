"""beamrl's environments: native tabular ones, the gymnasium adapter, vector envs, ``make``."""

from beamrl.rl.envs.blackjack import Blackjack
from beamrl.rl.envs.cliff_walking import CliffWalking
from beamrl.rl.envs.frozen_lake import FrozenLake, generate_random_map
from beamrl.rl.envs.gym_adapter import GymEnv
from beamrl.rl.envs.registry import NATIVE, make, make_vec
from beamrl.rl.envs.taxi import Taxi
from beamrl.rl.envs.vector import LoopVectorEnv, TabularVectorEnv, VectorEnv

__all__ = [
    "NATIVE",
    "Blackjack",
    "CliffWalking",
    "FrozenLake",
    "GymEnv",
    "LoopVectorEnv",
    "TabularVectorEnv",
    "Taxi",
    "VectorEnv",
    "generate_random_map",
    "make",
    "make_vec",
]
