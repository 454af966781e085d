"""Ape-X DQN across nodes (issue 13): torch-free actors feeding one prioritized replay and learner.

Layout (torch-free modules marked *; importing this package never imports torch)::

    config*   ApexConfig: the learner's DQN fields and the distributed ones; actor_epsilon
    acting*   ApexActing: vector env + numpy Q-network + n-step windows + initial priorities
    actor*    ApexActor: the acting loop as a process, batches out as casts, parameters pulled
    loop*     LearnerLoop: replay -> Learner (beamrl.rl.deep.learner) -> priorities back
    run*      ``beamrl train apex-dqn``: the learner node's tree, the actor nodes, faults, polling
    outputs*  metrics.csv columns and curve.png

The Learner itself (torch) is ``beamrl.rl.deep.learner.Learner``, started by name.
"""

from beamrl.rl.apex.config import ApexConfig, actor_epsilon, apex_config

__all__ = ["ApexConfig", "actor_epsilon", "apex_config"]
