"""The training processes under their earlier import path; they live in ``beamrl.rl.training``."""

from beamrl.rl.training.recorder import Recorder
from beamrl.rl.training.spec import ALGOS, EPISODIC_ALGOS, PLANNING_ALGOS, TD_ALGOS, RunSpec
from beamrl.rl.training.worker import Worker

__all__ = ["ALGOS", "EPISODIC_ALGOS", "PLANNING_ALGOS", "TD_ALGOS", "Recorder", "RunSpec", "Worker"]
