"""``train`` under its earlier import path; it lives in ``beamrl.rl.training.run``."""

from beamrl.rl.training.run import TrainingFailed, train

__all__ = ["TrainingFailed", "train"]
