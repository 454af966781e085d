"""Training as processes: workers play episodes, a QServer learns, a recorder keeps score.

Modules, one concept each:

``spec``         ``RunSpec``: what a run does, as data every worker receives
``tabular``      ``TableShape`` (computed once per run), the greedy evaluation of a table (sampled,
                 or exact from a native env's model: ``ExactEval``)
``agent_setup``  the agent a worker runs: tuned and given hyper-parameters, schedules, resuming
``worker``       ``Worker``: plays batches of episodes on its own env, ships each batch's learning
``recorder``     ``Recorder``: grants and counts episodes, evaluates, ends the run
``chaos``        fault injection (a crashing worker, a killed QServer) for demos and tests
``progress``     the console: progress bar and notices
``actors``       worker subtrees as data, extra actor nodes on loopback
``outputs``      metrics.csv, curve.png, summary.json, qtable.npz
``run``          ``train``: the whole run, from tree to judged results
"""

from beamrl.rl.training.recorder import Recorder
from beamrl.rl.training.run import TrainingFailed, judge_env, train
from beamrl.rl.training.spec import ALGOS, EPISODIC_ALGOS, PLANNING_ALGOS, TD_ALGOS, RunSpec
from beamrl.rl.training.worker import Worker

__all__ = [
    "ALGOS",
    "EPISODIC_ALGOS",
    "PLANNING_ALGOS",
    "TD_ALGOS",
    "Recorder",
    "RunSpec",
    "TrainingFailed",
    "Worker",
    "judge_env",
    "train",
]
