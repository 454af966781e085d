"""beamrl's reinforcement-learning parts: spaces, experiences, environments and their processes."""

from beamrl.rl import spaces
from beamrl.rl.env import Env
from beamrl.rl.envs import GymEnv, generate_random_map, make, make_vec
from beamrl.rl.errors import InvalidAction, UnknownEnv
from beamrl.rl.exp import Exp
from beamrl.rl.replay import ReplayError, ReplayMemory, StaleIndex

__all__ = [
    "Env",
    "Exp",
    "GymEnv",
    "InvalidAction",
    "ReplayError",
    "ReplayMemory",
    "StaleIndex",
    "UnknownEnv",
    "generate_random_map",
    "make",
    "make_vec",
    "spaces",
]
