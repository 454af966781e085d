"""Facts about an environment come from its registry entry, for native ids and others alike."""

from __future__ import annotations

import pytest

from beamrl.rl.envs import make
from beamrl.rl.envs.registry import ALIASES, GYM_FACTS, NATIVE, facts, goal_reached, positive_terminal
from beamrl.rl.exp import Exp
from beamrl.rl.loops import success_fn_for


def test_every_native_id_and_alias_has_its_entry() -> None:
    for env_id, spec in NATIVE.items():
        assert facts(env_id) is spec.facts
        assert facts(env_id).tabular
    for old, current in ALIASES.items():
        assert facts(old) is facts(current)


@pytest.mark.parametrize(
    ("env_id", "success", "episodes", "judged", "goal"),
    [
        ("FrozenLake-v1", positive_terminal, 5_000, 2_000, True),
        ("FrozenLake8x8-v1", positive_terminal, 20_000, 2_000, True),
        ("Taxi-v3", positive_terminal, 20_000, 1_000, True),
        ("CliffWalkingSlippery-v1", goal_reached, 1_000, 10, True),
        ("Blackjack-v1", positive_terminal, 300_000, 100_000, False),
    ],
)
def test_the_registry_states_each_envs_rules(env_id: str, success, episodes: int, judged: int, goal: bool) -> None:
    entry = facts(env_id)
    assert (entry.success, entry.episodes, entry.eval_episodes, entry.has_goal) == (success, episodes, judged, goal)


def test_an_id_gymnasium_builds_gets_the_default_entry() -> None:
    assert facts("CartPole-v1") is GYM_FACTS
    assert not GYM_FACTS.tabular and GYM_FACTS.success is positive_terminal


def test_success_rules_read_the_last_transition_and_loops_ask_the_registry() -> None:
    fell = Exp(0, 1, -100.0, 36, False, False, {})
    home = Exp(46, 2, -1.0, 47, True, False, {})
    timed_out = Exp(5, 1, 1.0, 6, False, True, {})
    assert goal_reached(home) and not goal_reached(fell) and not goal_reached(timed_out)
    assert not positive_terminal(home) and not positive_terminal(timed_out)
    assert success_fn_for(make("CliffWalking-v1")) is goal_reached
    assert success_fn_for(make("FrozenLake-v1")) is positive_terminal
