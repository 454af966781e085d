"""The pieces of a training run on their own: table shapes as data, agents from the registry."""

from __future__ import annotations

import pytest

from beamrl import codec
from beamrl.rl.envs import make
from beamrl.rl.training import RunSpec
from beamrl.rl.training.actors import worker_spec
from beamrl.rl.training.agent_setup import default_hyper, make_agent
from beamrl.rl.training.tabular import TableShape, table_shape


def test_a_tuple_observation_gets_a_flat_index_that_travels_as_data() -> None:
    env = make("Blackjack-v1")
    shape = table_shape(env.observation_space, env.action_space)
    assert (shape.n_states, shape.n_actions) == (32 * 11 * 2, 2)
    again = TableShape.from_data(codec.unpackb(codec.packb(shape.to_data())))
    assert again == shape
    index = again.state_fn()
    assert index is not None and index((31, 10, 1)) == 703 and index((0, 0, 0)) == 0


def test_a_discrete_observation_is_its_own_row_unless_it_starts_elsewhere() -> None:
    env = make("FrozenLake-v1")
    assert table_shape(env.observation_space, env.action_space).state_fn() is None
    shifted = TableShape(5, 2, None, (3,))
    fn = shifted.state_fn()
    assert fn is not None and fn(3) == 0 and fn(7) == 4


def test_a_continuous_action_space_is_refused_clearly() -> None:
    from beamrl.rl.spaces import Box, Discrete

    with pytest.raises(ValueError, match="Discrete action space"):
        table_shape(Discrete(4), Box(-1.0, 1.0, (1,)))


def test_tuned_hyper_parameters_come_from_the_registry_and_the_user_wins() -> None:
    assert default_hyper("mc", "FrozenLake-v1") == {"alpha": 0.02, "init": 1.0}
    assert default_hyper("q-learning", "FrozenLake-v1") == {}
    assert default_hyper("sarsa", "CliffWalking-v1")["gamma"] == 1.0
    assert default_hyper("q-learning", "CartPole-v1") == {}
    spec = RunSpec("sarsa", "CliffWalking-v1", episodes=10, hyper={"gamma": 0.9})
    env = make("CliffWalking-v1")
    agent = make_agent(spec, table_shape(env.observation_space, env.action_space), worker=0)
    assert agent.config.gamma == 0.9
    assert agent.epsilon == 0.1  # the registry's constant ε for CliffWalking


def test_a_worker_subtree_is_plain_data_a_remote_node_can_start() -> None:
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=10, env_kwargs={"is_slippery": False})
    env = make("FrozenLake-v1")
    tree = worker_spec(spec, 2, "learner", table_shape(env.observation_space, env.action_space))
    assert codec.unpackb(codec.packb(tree)) == tree
    [worker_child] = tree["children"]  # the worker owns its env: no EnvServer to call per step
    assert worker_child["start"] == "beamrl.rl.training.worker:Worker"
    spec_data, index, env, *_ = worker_child["args"]
    assert RunSpec.from_data(spec_data).env_kwargs == {"is_slippery": False} and index == 2 and env is None
    assert TableShape.from_data(worker_child["args"][-1]).n_states == 16


def test_the_earlier_import_paths_still_name_the_same_things() -> None:
    from beamrl.rl import qtable, spaces, train, trainer, training
    from beamrl.rl.errors import QTableError

    assert train.train is training.train and train.TrainingFailed is training.TrainingFailed
    assert (trainer.RunSpec, trainer.Worker, trainer.Recorder) == (training.RunSpec, training.Worker, training.Recorder)
    assert (qtable.StateIndex, qtable.state_index, qtable.QTableError) == (
        spaces.StateIndex,
        spaces.state_index,
        QTableError,
    )
