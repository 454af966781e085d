"""QTable / DictQTable: accessors, batched TD updates, persistence, state_index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamrl import Node
from beamrl.rl.errors import QTableError
from beamrl.rl.qtable import DictQTable, QTable
from beamrl.rl.spaces import state_index
from tests import start_peer


def test_get_set_values_defaults() -> None:
    q = QTable(3, 2)
    assert q.get(0, 1) == 0.0
    q.set(2, 1, 1.5)
    assert q.get(2, 1) == 1.5
    np.testing.assert_array_equal(q.values(2), [0.0, 1.5])
    assert q.to_array().shape == (3, 2)
    assert q.table is q.table  # live array
    vals = q.values(2)
    vals[0] = 9.0
    assert q.get(2, 0) == 0.0  # values() is a copy


def test_greedy_action_breaks_ties_with_seeded_rng() -> None:
    a = QTable(1, 4, seed=3)
    b = QTable(1, 4, seed=3)
    picks_a = [a.greedy_action(0) for _ in range(50)]
    picks_b = [b.greedy_action(0) for _ in range(50)]
    assert picks_a == picks_b
    assert set(picks_a) == {0, 1, 2, 3}
    a.set(0, 2, 0.1)
    assert {a.greedy_action(0) for _ in range(20)} == {2}


def test_td_update_matches_formula() -> None:
    q = QTable(2, 2)
    q.set(0, 1, 1.0)
    err = q.td_update([0, 1], [1, 0], [3.0, -2.0], alpha=0.5)
    np.testing.assert_allclose(err, [2.0, -2.0])
    assert q.get(0, 1) == pytest.approx(2.0)
    assert q.get(1, 0) == pytest.approx(-1.0)


def test_repeated_pairs_are_sequential() -> None:
    batched = QTable(1, 1)
    batched.td_update([0, 0, 0], [0, 0, 0], [1.0, 1.0, 4.0], alpha=0.5)
    one_by_one = QTable(1, 1)
    for t in (1.0, 1.0, 4.0):
        one_by_one.td_update([0], [0], [t], alpha=0.5)
    assert batched.get(0, 0) == pytest.approx(one_by_one.get(0, 0))
    assert batched.get(0, 0) == pytest.approx(((0.5 * 0.5 + 0.5) * 0.5) + 2.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 2),
            st.floats(-10, 10),
            st.floats(0.01, 1.0),
        ),
        max_size=20,
    )
)
def test_batch_equals_sequential_updates(rows: list[tuple[int, int, float, float]]) -> None:
    batched, seq, dq = QTable(4, 3), QTable(4, 3), DictQTable(3)
    if rows:
        s, a, t, al = (list(c) for c in zip(*rows, strict=True))
        batched.td_update(s, a, t, np.array(al))
        dq.td_update(s, a, t, np.array(al))
    for s_, a_, t_, al_ in rows:
        seq.td_update([s_], [a_], [t_], al_)
    np.testing.assert_allclose(batched.table, seq.table)
    for s_ in range(4):
        np.testing.assert_allclose(dq.values(s_), seq.values(s_))


def test_apply_batch_and_helpers() -> None:
    q = QTable(3, 2)
    q.apply_batch([(0, 1, 2.0), (2, 0, 4.0)], alpha=0.5)
    np.testing.assert_allclose(q.get_batch([0, 2], [1, 0]), [1.0, 2.0])
    q.set_batch([1, 1], [0, 1], [5.0, 6.0])
    np.testing.assert_allclose(q.values_batch([1]), [[5.0, 6.0]])
    np.testing.assert_array_equal(q.greedy_actions(), [1, 1, 0])
    v = q.version
    q.assign(np.ones((3, 2)))
    assert q.version > v
    assert q.get(2, 1) == 1.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda q: q.get(5, 0), "outside"),
        (lambda q: q.get(0, 9), "outside"),
        (lambda q: q.get("a", 0), "not an integer"),
        (lambda q: q.get(0.5, 0), "not an integer"),
        (lambda q: q.td_update([0], [0, 1], [1.0], 0.1), "equal length"),
        (lambda q: q.td_update([0], [0], [1.0, 2.0], 0.1), "values"),
        (lambda q: q.td_update([7], [0], [1.0], 0.1), "outside"),
        (lambda q: q.td_update([0], [0], [1.0], 0.0), "alpha"),
        (lambda q: q.td_update([0], [0], [1.0], 1.5), "alpha"),
        (lambda q: q.apply_batch([(0, 1)], 0.1), "triple"),
        (lambda q: q.assign(np.zeros((2, 2))), "shape"),
    ],
)
def test_input_errors_are_value_errors(call, match) -> None:
    q = QTable(3, 2)
    with pytest.raises(QTableError, match=match):
        call(q)
    assert issubclass(QTableError, ValueError)


def test_bad_shape() -> None:
    with pytest.raises(ValueError, match="n_states >= 1"):
        QTable(0, 2)


def test_save_load_roundtrip(tmp_path) -> None:
    q = QTable(4, 3)
    q.set(3, 2, -1.25)
    path = tmp_path / "q.npz"
    q.save(path)
    with np.load(path, allow_pickle=False) as data:
        assert data["q"].shape == (4, 3)
        assert data["q"].dtype == np.float64
    q2 = QTable.load(path)
    np.testing.assert_array_equal(q2.table, q.table)
    assert q2.version == q.version


def test_load_rejects_bad_files(tmp_path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, w=np.zeros(3))
    with pytest.raises(QTableError, match="no array 'q'"):
        QTable.load(path)
    np.savez(path, q=np.zeros(3))
    with pytest.raises(QTableError, match="2-D"):
        QTable.load(path)


def test_dict_qtable_same_api(tmp_path) -> None:
    q = DictQTable(2, seed=0)
    assert q.get((1, 2), 0) == 0.0
    q.set((1, 2), 1, 3.0)
    q.td_update([(0, 0)], [0], [2.0], 0.5)
    assert q.greedy_action((1, 2)) == 1
    assert q.get((0, 0), 0) == 1.0
    assert q.states() == [(1, 2), (0, 0)]
    assert q.to_array().shape == (2, 2)
    path = tmp_path / "d.npz"
    q.save(path)
    q2 = DictQTable.load(path)
    assert q2.get((1, 2), 1) == 3.0
    assert q2.states() == [(1, 2), (0, 0)]
    with pytest.raises(QTableError, match="hashable"):
        q.get([1, 2], 0)  # type: ignore[arg-type]
    q.set("text", 0, 1.0)
    with pytest.raises(QTableError, match="can be saved"):
        q.save(tmp_path / "x.npz")


def test_state_index_blackjack() -> None:
    gym = pytest.importorskip("gymnasium")
    space = gym.make("Blackjack-v1").observation_space
    idx = state_index(space)
    assert idx.n == 32 * 11 * 2
    assert idx((0, 0, 0)) == 0
    assert idx((31, 10, 1)) == idx.n - 1
    seen = {idx((a, b, c)) for a in range(32) for b in range(11) for c in range(2)}
    assert seen == set(range(idx.n))
    assert idx.inverse(idx((14, 7, 1))) == (14, 7, 1)
    assert state_index((32, 11, 2)) == idx
    with pytest.raises(QTableError, match="outside"):
        idx((32, 0, 0))
    with pytest.raises(QTableError, match="Tuple of Discrete"):
        state_index(object())


async def test_a_remote_caller_gets_qtable_error_as_itself_and_the_server_lives_on() -> None:
    peer = start_peer("qserver_peer", tree="tests/trees/qserver_peer.toml")
    try:
        async with Node("qtable_tester") as node:
            qserver = ("qserver", await node.connect(peer.address))
            with pytest.raises(QTableError, match=r"refused 'get'.*outside \[0, 4\)") as caught:
                await node.call(qserver, ["get", 99, 0])
            assert type(caught.value) is QTableError  # not a Rejected standing in for it
            await node.call(qserver, ["set", 3, 1, 2.5])
            assert await node.call(qserver, ["get", 3, 1]) == 2.5
    finally:
        assert peer.terminate() == 0, "".join(peer.output)


async def test_a_qserver_refuses_to_start_from_a_checkpoint_of_another_shape(tmp_path: Path) -> None:
    from beamrl.rl.qserver import QServer

    path = tmp_path / "q.npz"
    QTable(3, 2).save(path)
    async with Node("qtable_shapes") as node:
        with pytest.raises(QTableError, match=r"holds a \(3, 2\) table, expected \(5, 2\)"):
            await node.start(QServer, 5, 2, checkpoint=str(path))
        await node.start(QServer, 3, 2, checkpoint=str(path), name="q")
        assert (await node.call("q", ["info"]))["resumed"] is True
