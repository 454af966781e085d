"""Deep agents (issue 12): DQN family, REINFORCE, A2C, PPO, DDPG and TD3 on torch, as processes.

Layout (torch-free modules marked *; importing this package never imports torch)::

    config*     hyper-parameter dataclasses and the table of defaults per (algorithm, env)
    params*     parameters as dicts of numpy arrays, the numpy policy, safetensors files
    files*      JSON files via beamrl.persist;  checkpoint*  checkpoint folders (safetensors + JSON)
    acting*     environments + numpy policy + replay/rollouts: the acting half
    evaluate*   greedy evaluation and ``beamrl eval``
    nets, algo  torch networks and the ``Algorithm`` base;  dqn, pg, ddpg  the update math
    learner     the ``Learner`` process;  actor*  the ``Actor`` process
    served_env* an ``EnvServer`` as a local env, for acting in a worker thread
    env_servers*  ``--env-server``: the EnvServers a run steps, their checks, and losing one mid-run
    agent       acting and learning in one loop, no messages
    agent_server  the ``AgentServer`` process: that loop as one process (``beamrl train``'s default)
    run         ``beamrl train <deep algo> ENV``: the supervision tree and the run's files
"""

from beamrl.rl.deep.config import ALGOS, OFF_POLICY, ON_POLICY, config_for, parse_sets
from beamrl.rl.deep.params import NumpyPolicy, load_params, save_params

__all__ = ["ALGOS", "OFF_POLICY", "ON_POLICY", "NumpyPolicy", "config_for", "load_params", "parse_sets", "save_params"]
