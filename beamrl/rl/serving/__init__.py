"""Serving a trained policy to controllers: ``beamrl serve RUN_DIR`` (numpy only, never torch).

``observations``  ``InvalidObservation`` and the checks that turn observations into the policy's input
``policies``      ``load_run``: a run directory's greedy policy (a deep run's model.safetensors,
                  a tabular run's qtable.npz)
``server``        ``PolicyServer``: that policy as a process (``["act", obs]`` -> action)
"""

from beamrl.rl.serving.observations import InvalidObservation, observation_check
from beamrl.rl.serving.policies import DeepPolicy, ServedPolicy, TablePolicy, load_run
from beamrl.rl.serving.server import PolicyServer

__all__ = [
    "DeepPolicy",
    "InvalidObservation",
    "PolicyServer",
    "ServedPolicy",
    "TablePolicy",
    "load_run",
    "observation_check",
]
