"""beamrl's reinforcement-learning parts: spaces, experiences, environments and their processes."""

from beamrl.rl import agents, loops, schedules, spaces
from beamrl.rl.agents import Agent
from beamrl.rl.env import Env
from beamrl.rl.env_server import EnvServer
from beamrl.rl.envs import GymEnv, generate_random_map, make, make_vec
from beamrl.rl.errors import InvalidAction, QTableError, ReplayError, StaleIndex, UnknownEnv
from beamrl.rl.exp import Exp
from beamrl.rl.qserver import QServer
from beamrl.rl.qtable import DictQTable, QTable
from beamrl.rl.replay import ReplayMemory
from beamrl.rl.replay_server import ReplayServer
from beamrl.rl.spaces import state_index

__all__ = [
    "Agent",
    "DictQTable",
    "Env",
    "EnvServer",
    "Exp",
    "GymEnv",
    "InvalidAction",
    "QServer",
    "QTable",
    "QTableError",
    "ReplayError",
    "ReplayMemory",
    "ReplayServer",
    "StaleIndex",
    "UnknownEnv",
    "agents",
    "generate_random_map",
    "loops",
    "make",
    "make_vec",
    "schedules",
    "spaces",
    "state_index",
]
