"""A3C across nodes (issue 13): workers push n-step actor-critic gradients, one learner applies them.

Layout (torch-free modules marked *; importing this package never imports torch)::

    config*   A3CConfig: the loss's hyper-parameters and the distributed ones
    grads     the loss, a worker's gradient, the learner's shared model and optimizer (torch)
    learner   A3CLearner: applies pushes one at a time, drops stale ones, versions, checkpoints
    worker    A3CWorker: rollouts on its envs, gradient on its copy, push, pull (needs torch)
    run*      ``beamrl train a3c``: the learner node's tree, the worker nodes, faults, polling

Unlike Ape-X actors, A3C workers differentiate the loss, so a worker node needs torch.
"""

from beamrl.rl.a3c.config import A3CConfig, a3c_config

__all__ = ["A3CConfig", "a3c_config"]
