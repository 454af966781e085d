"""ReplayMemory: storage order, sampling statistics, n-step returns, persistence, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamrl.errors import Rejected
from beamrl.rl.exp import Exp
from beamrl.rl.replay import COLUMNS, ReplayError, ReplayMemory, StaleIndex

# Upper 99.9% quantiles of the chi-square distribution (scipy.stats.chi2.ppf(0.999, k)),
# from standard tables. With fixed seeds the tests are deterministic; the quantile says
# that a correct sampler would fail them for fewer than 1 seed in 1000.
CHI2_999 = {7: 24.322, 9: 27.877}


def step(i: int, *, reward: float | None = None, term=False, trunc=False) -> Exp:
    """Step ``i`` of a toy episode: state [i, -i], action i % 3, next state [i+1, -(i+1)]."""
    return Exp(
        np.array([i, -i], dtype=np.float32),
        i % 3,
        float(i) if reward is None else reward,
        np.array([i + 1, -(i + 1)], dtype=np.float32),
        term,
        trunc,
    )


def columns(start: int, n: int) -> dict[str, np.ndarray]:
    i = np.arange(start, start + n)
    return {
        "state": np.stack([i, -i], axis=1).astype(np.float32),
        "action": i % 3,
        "reward": i.astype(np.float32),
        "next_state": np.stack([i + 1, -(i + 1)], axis=1).astype(np.float32),
        "terminated": np.zeros(n, dtype=bool),
        "truncated": np.zeros(n, dtype=bool),
    }


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def snapshot(memory: ReplayMemory) -> dict[str, np.ndarray]:
    out = memory.to_columns()
    out["count"] = np.array(memory.count)
    return out


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# -- storage ------------------------------------------------------------------------------


def test_ring_buffer_evicts_the_oldest_first():
    m = ReplayMemory(5)
    for i in range(8):
        ids = m.add(step(i))
        assert ids.tolist() == [i]
    assert len(m) == 5
    assert m.count == 8
    cols = m.to_columns()
    assert cols["indices"].tolist() == [3, 4, 5, 6, 7]
    assert cols["state"][:, 0].tolist() == [3, 4, 5, 6, 7]
    assert cols["action"].tolist() == [0, 1, 2, 0, 1]
    assert cols["next_state"][:, 1].tolist() == [-4, -5, -6, -7, -8]


def test_columns_and_exps_store_the_same_thing():
    a, b = ReplayMemory(20), ReplayMemory(20)
    a.add_batch([step(i) for i in range(7)])
    b.add_batch(**columns(0, 7))
    assert_same(a.to_columns(), b.to_columns())
    c = ReplayMemory(20)
    c.add_batch(columns(0, 7))  # one mapping works too
    assert_same(a.to_columns(), c.to_columns())
    assert a.spec == {
        "state": ((2,), "<f4"),
        "action": ((), np.dtype(np.int64).str),
        "reward": ((), "<f4"),
        "next_state": ((2,), "<f4"),
        "terminated": ((), "|b1"),
        "truncated": ((), "|b1"),
        "discount": ((), "<f4"),
    }


@pytest.mark.parametrize("prioritized", [False, True])
def test_single_adds_store_what_a_batch_stores(prioritized):
    exps = [step(i, term=i % 4 == 3) for i in range(9)]
    exps[2].state = exps[2].state.tolist()  # odd types take the general path
    exps[5].action = np.int64(2)
    exps[6].reward = np.float32(0.5)
    prios = [0.5, None, 2.0, 0.0, None, 1.0, 3.0, None, 0.25]
    a = ReplayMemory(6, prioritized=prioritized, alpha=0.7, seed=0)
    for e, p in zip(exps, prios, strict=True):
        a.add(e, priority=p if prioritized else None)
    b = ReplayMemory(6, prioritized=prioritized, alpha=0.7, seed=0)
    for e, p in zip(exps, prios, strict=True):
        b.add_batch([e], priorities=None if p is None or not prioritized else [p])
    assert_same(snapshot(a), snapshot(b))
    assert_same(a.get_batch(4), b.get_batch(4))


def test_a_batch_larger_than_the_memory_keeps_its_tail():
    m = ReplayMemory(4)
    m.add(step(100))
    ids = m.add_batch(**columns(0, 10))
    assert ids.tolist() == [7, 8, 9, 10]
    assert m.count == 11
    cols = m.to_columns()
    assert cols["indices"].tolist() == [7, 8, 9, 10]
    assert cols["state"][:, 0].tolist() == [6, 7, 8, 9]


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 12), sizes=st.lists(st.integers(1, 15), min_size=1, max_size=10))
def test_storage_matches_a_reference_deque(capacity, sizes):
    m = ReplayMemory(capacity)
    added: list[int] = []
    for n in sizes:
        start = len(added)
        m.add_batch(**columns(start, n))
        added.extend(range(start, start + n))
        kept = added[-capacity:]
        cols = m.to_columns()
        assert cols["state"][:, 0].tolist() == kept
        assert cols["indices"].tolist() == kept
        latest = m.get_batch(len(kept), mode="latest")
        assert latest["state"][:, 0].tolist() == kept


def test_latest_returns_the_most_recent_oldest_first():
    m = ReplayMemory(5)
    m.add_batch(**columns(0, 7))  # wraps: slots hold 5, 6, 2, 3, 4
    batch = m.get_batch(3, mode="latest")
    assert batch["indices"].tolist() == [4, 5, 6]
    assert batch["state"][:, 0].tolist() == [4, 5, 6]
    assert batch["reward"].tolist() == [4, 5, 6]
    assert m.get_batch(1, mode="latest")["indices"].tolist() == [6]


def test_batches_are_plain_dicts_of_contiguous_arrays():
    m = ReplayMemory(10, prioritized=True, seed=0)
    m.add_batch(**columns(0, 10))
    batch = m.get_batch(4)
    assert type(batch) is dict
    assert set(batch) == {*COLUMNS, "indices", "weights"}
    for key, arr in batch.items():
        assert type(arr) is np.ndarray, key
        assert arr.flags.c_contiguous, key
        assert arr.shape[0] == 4, key
    assert batch["state"].shape == (4, 2)
    assert batch["weights"].dtype == np.float32
    assert batch["indices"].dtype == np.int64
    batch["state"][:] = -99  # a batch is a copy, not a view of the memory
    assert (m.to_columns()["state"] != -99).all()


# -- sampling -----------------------------------------------------------------------------


def test_uniform_sampling_has_no_bias():
    m = ReplayMemory(10, seed=1)
    m.add_batch(**columns(0, 13))  # wrapped, so slots and ids differ
    batch_ids = [m.get_batch(10)["indices"] for _ in range(10000)]
    ids = np.concatenate(batch_ids)
    assert set(ids.tolist()) == set(range(3, 13))
    counts = np.bincount(ids - 3, minlength=10)
    assert chi_square(counts, np.full(10, 0.1)) < CHI2_999[9]
    b = m.get_batch(8)
    # a sampled id and its columns belong together
    np.testing.assert_array_equal(b["state"][:, 0], b["indices"])
    assert "weights" not in b


def test_prioritized_sampling_follows_p_to_the_alpha():
    alpha = 0.6
    m = ReplayMemory(8, prioritized=True, alpha=alpha, seed=2)
    ids = m.add_batch(**columns(0, 8))
    p = np.arange(1.0, 9.0)
    m.update_priorities(ids, p)
    probs = (p + m.eps) ** alpha
    probs /= probs.sum()
    drawn = np.concatenate([m.get_batch(8)["indices"] for _ in range(16000)])
    counts = np.bincount(drawn, minlength=8)
    # Stratified draws have less variance than independent ones: the bound is conservative.
    assert chi_square(counts, probs) < CHI2_999[7]
    np.testing.assert_allclose(counts / counts.sum(), probs, atol=0.005)


def test_zero_alpha_is_uniform_and_new_items_get_the_max_priority():
    m = ReplayMemory(6, prioritized=True, alpha=1.0, eps=1e-6, seed=0)
    m.add_batch(**columns(0, 2), priorities=[1.0, 3.0])
    m.add(step(2))  # no priority given: the max so far (3 + eps)
    m.add(step(3), priority=0.5)
    pri = m.to_columns()["priorities"]
    np.testing.assert_allclose(pri, [1.0, 3.0, 3.0, 0.5], rtol=1e-9, atol=1e-5)
    u = ReplayMemory(4, prioritized=True, alpha=0.0, seed=0)
    ids = u.add_batch(**columns(0, 4))
    u.update_priorities(ids, [1.0, 10.0, 100.0, 1000.0])
    drawn = np.concatenate([u.get_batch(4)["indices"] for _ in range(1000)])
    np.testing.assert_array_equal(np.bincount(drawn), [1000] * 4)  # stratified: exact


def test_importance_weights_follow_the_formula_with_the_memory_wide_max():
    alpha, beta = 0.7, 0.5
    m = ReplayMemory(6, prioritized=True, alpha=alpha, beta=beta, seed=3)
    ids = m.add_batch(**columns(0, 6))
    p = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
    m.update_priorities(ids, p)
    q = (p + m.eps) ** alpha
    prob = q / q.sum()
    w_all = (len(m) * prob) ** -beta
    for _ in range(20):
        b = m.get_batch(3)
        expected = w_all[b["indices"]] / w_all.max()  # max over the whole memory
        np.testing.assert_allclose(b["weights"], expected, rtol=1e-6)
    # the smallest-priority item has weight exactly 1; none exceeds 1
    b = m.get_batch(6, mode="latest")
    assert b["weights"][0] == 1.0
    assert (b["weights"] <= 1.0).all()


def test_beta_anneals_linearly_and_can_be_fixed():
    m = ReplayMemory(4, prioritized=True, beta=0.4, beta_steps=4, seed=0)
    m.add_batch(**columns(0, 4))
    seen = []
    for _ in range(6):
        seen.append(m.beta)
        m.get_batch(2)
    np.testing.assert_allclose(seen, [0.4, 0.55, 0.7, 0.85, 1.0, 1.0])
    m.set_beta(0.3)
    m.get_batch(2)
    assert m.beta == 0.3


def test_duplicate_indices_in_an_update_keep_the_last_priority():
    m = ReplayMemory(4, prioritized=True, alpha=1.0, seed=0)
    ids = m.add_batch(**columns(0, 4))
    assert m.update_priorities([ids[1], ids[2], ids[1]], [5.0, 2.0, 7.0]) == 2
    np.testing.assert_allclose(m.to_columns()["priorities"], [1.0, 7.0, 2.0, 1.0], atol=1e-5)


# -- n-step returns -----------------------------------------------------------------------


def run_episode(m: ReplayMemory, rewards, *, end: str | None, first: int = 0, stream=0):
    for k, r in enumerate(rewards):
        last = k == len(rewards) - 1
        m.add(
            step(first + k, reward=r, term=last and end == "term", trunc=last and end == "trunc"),
            stream=stream,
        )


def test_n_step_returns_stop_at_termination():
    m = ReplayMemory(10, n_step=3, gamma=0.5)
    run_episode(m, [1, 2, 3, 4], end="term")
    c = m.to_columns()
    np.testing.assert_allclose(c["reward"], [1 + 1 + 0.75, 2 + 1.5 + 1, 3 + 2, 4])
    assert c["state"][:, 0].tolist() == [0, 1, 2, 3]
    assert c["next_state"][:, 0].tolist() == [3, 4, 4, 4]
    np.testing.assert_allclose(c["discount"], [0.125, 0, 0, 0])
    assert c["terminated"].tolist() == [False, True, True, True]
    assert c["truncated"].tolist() == [False] * 4


def test_n_step_returns_bootstrap_through_truncation():
    m = ReplayMemory(10, n_step=3, gamma=0.5)
    run_episode(m, [1, 2, 3, 4], end="trunc")
    c = m.to_columns()
    np.testing.assert_allclose(c["reward"], [2.75, 4.5, 5, 4])
    assert c["next_state"][:, 0].tolist() == [3, 4, 4, 4]
    np.testing.assert_allclose(c["discount"], [0.125, 0.125, 0.25, 0.5])
    assert c["terminated"].tolist() == [False] * 4
    assert c["truncated"].tolist() == [False, True, True, True]


def test_n_larger_than_the_episode_and_episodes_do_not_mix():
    m = ReplayMemory(10, n_step=10, gamma=0.5)
    run_episode(m, [1, 2, 3], end="term")
    assert len(m) == 3
    run_episode(m, [8, 8], end="trunc", first=100)
    c = m.to_columns()
    np.testing.assert_allclose(c["reward"], [2.75, 3.5, 3, 12, 8])
    assert c["next_state"][:, 0].tolist() == [3, 3, 3, 102, 102]
    np.testing.assert_allclose(c["discount"], [0, 0, 0, 0.25, 0.5])


def test_streams_have_their_own_windows_and_flush_stores_the_rest():
    one = ReplayMemory(20, n_step=2, gamma=0.9)
    run_episode(one, [1, 2, 3], end="term")
    run_episode(one, [4, 5, 6], end="term", first=10)
    mixed = ReplayMemory(20, n_step=2, gamma=0.9)
    for k in range(3):  # interleave two environments step by step
        mixed.add(step(k, reward=k + 1, term=k == 2), stream="a")
        mixed.add(step(10 + k, reward=k + 4, term=k == 2), stream="b")
    a, b = one.to_columns(), mixed.to_columns()
    order = np.argsort(b["state"][:, 0], kind="stable")
    for key in COLUMNS:
        np.testing.assert_array_equal(a[key], b[key][order], err_msg=key)
    m = ReplayMemory(10, n_step=3, gamma=0.5)
    m.add(step(0, reward=1))
    m.add(step(1, reward=2))
    assert len(m) == 0  # waiting in the window
    ids = m.flush()
    assert ids.tolist() == [0, 1]
    c = m.to_columns()
    np.testing.assert_allclose(c["reward"], [2, 2])
    np.testing.assert_allclose(c["discount"], [0.25, 0.5])
    assert m.flush().size == 0


def test_one_step_discount_is_gamma_unless_terminated():
    m = ReplayMemory(10, gamma=0.9)
    run_episode(m, [1, 1, 1], end="term")
    run_episode(m, [1, 1], end="trunc")
    np.testing.assert_allclose(m.to_columns()["discount"], [0.9, 0.9, 0, 0.9, 0.9])


def test_n_step_priorities_belong_to_the_starting_step():
    m = ReplayMemory(10, prioritized=True, alpha=1.0, n_step=2, gamma=0.5)
    m.add_batch([step(0), step(1), step(2, term=True)], priorities=[3.0, 0.0, 5.0])
    np.testing.assert_allclose(m.to_columns()["priorities"], [3.0, 0.0, 5.0], atol=1e-5)


# -- persistence --------------------------------------------------------------------------


def filled(capacity=50, adds=73, *, prioritized=True, seed=4) -> ReplayMemory:
    m = ReplayMemory(capacity, prioritized=prioritized, alpha=0.5, n_step=1, seed=seed)
    m.add_batch(**columns(0, adds))
    if prioritized:
        b = m.get_batch(10)
        m.update_priorities(b["indices"], np.linspace(0.0, 3.0, 10))
    return m


@pytest.mark.parametrize("prioritized", [False, True])
def test_save_load_round_trip(tmp_path, prioritized):
    m = filled(prioritized=prioritized)
    path = tmp_path / "memory.npz"
    m.save(path)
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert all(data[k].dtype != object for k in data.files)
    r = ReplayMemory.load(path)
    assert_same(snapshot(m), snapshot(r))
    assert (r.capacity, r.prioritized, r.alpha, len(r)) == (m.capacity, m.prioritized, 0.5, 50)
    assert_same(m.get_batch(16), r.get_batch(16))  # the sampler state travels too
    m.add_batch(**columns(500, 3))
    r.add_batch(**columns(500, 3))
    assert_same(snapshot(m), snapshot(r))


def test_save_load_of_an_empty_memory(tmp_path):
    ReplayMemory(8, prioritized=True).save(tmp_path / "e.npz")
    r = ReplayMemory.load(tmp_path / "e.npz")
    assert len(r) == 0
    assert r.spec is None
    r.add(step(0))
    assert len(r) == 1


def test_incremental_checkpoints_write_only_what_changed(tmp_path):
    m = ReplayMemory(5000, prioritized=True, seed=5)
    m.add_batch(**columns(0, 5000))
    first = m.checkpoint(tmp_path)
    m.add_batch(**columns(5000, 10))
    b = m.get_batch(5)
    m.update_priorities(b["indices"], np.ones(5))
    second = m.checkpoint(tmp_path)
    assert second * 20 < first, (first, second)
    r = ReplayMemory.restore(tmp_path)
    assert_same(snapshot(m), snapshot(r))
    assert_same(m.get_batch(32), r.get_batch(32))
    # the restored memory keeps checkpointing incrementally into the same chain
    r.add_batch(**columns(9000, 3))
    third = r.checkpoint(tmp_path)
    assert third * 20 < first
    assert_same(snapshot(r), snapshot(ReplayMemory.restore(tmp_path)))


def test_a_memory_that_lost_the_head_of_the_chain_writes_a_full_base(tmp_path):
    m = ReplayMemory(2000, seed=0)
    m.add_batch(**columns(0, 2000))
    full = m.checkpoint(tmp_path)
    r = ReplayMemory.restore(tmp_path)
    r.add_batch(**columns(1000, 5))
    assert r.checkpoint(tmp_path) * 5 < full  # r now owns the head: incremental
    m.add_batch(**columns(2000, 5))
    assert m.checkpoint(tmp_path) * 5 > full  # m's chain was taken over: full base
    assert_same(snapshot(m), snapshot(ReplayMemory.restore(tmp_path)))


def test_checkpoints_compact_instead_of_growing_forever(tmp_path):
    m = ReplayMemory(20, seed=0)
    for k in range(30):
        m.add_batch(**columns(k * 7, 7))
        m.checkpoint(tmp_path)
        assert len(list(tmp_path.glob("seg-*.npz"))) <= 8
    assert_same(snapshot(m), snapshot(ReplayMemory.restore(tmp_path)))
    other = tmp_path / "elsewhere"  # a new directory gets a full base
    m.checkpoint(other)
    assert_same(snapshot(m), snapshot(ReplayMemory.restore(other)))


def test_pending_n_step_windows_do_not_hide_from_checkpoints(tmp_path):
    m = ReplayMemory(10, n_step=3, gamma=0.5)
    m.checkpoint(tmp_path)  # empty memory: a base with no rows
    run_episode(m, [1, 2, 3, 4], end="term")
    m.checkpoint(tmp_path)
    assert_same(snapshot(m), snapshot(ReplayMemory.restore(tmp_path)))


def test_unreadable_files_are_refused(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ReplayError, match="cannot read a replay memory"):
        ReplayMemory.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "nometa.npz", x=np.zeros(3))
    with pytest.raises(ReplayError, match="'meta' is missing"):
        ReplayMemory.load(tmp_path / "nometa.npz")
    with pytest.raises(ReplayError, match="cannot read"):
        ReplayMemory.restore(tmp_path / "nothing-here")


# -- bad input ----------------------------------------------------------------------------


def test_replay_errors_are_rejections_and_value_errors():
    assert issubclass(ReplayError, Rejected)
    assert issubclass(ReplayError, ValueError)
    assert issubclass(StaleIndex, ReplayError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0}, "capacity must be a positive integer"),
        ({"capacity": 4, "n_step": 0}, "n_step must be a positive integer"),
        ({"capacity": 4, "gamma": 1.5}, "gamma must lie in"),
        ({"capacity": 4, "beta": -0.1}, "beta must lie in"),
        ({"capacity": 4, "eps": 0.0}, "eps must be > 0"),
        ({"capacity": 4, "alpha": float("nan")}, "alpha must be >= 0"),
        ({"capacity": 4, "beta_steps": 0}, "beta_steps must be"),
    ],
)
def test_bad_configuration_is_refused(kwargs, match):
    with pytest.raises(ReplayError, match=match):
        ReplayMemory(**kwargs)


def bad_adds():
    good = columns(0, 3)

    def col(**over):
        return {**good, **over}

    return [
        (lambda m: m.add_batch(**col(state=np.zeros((3, 3), np.float32))), "state items have shape"),
        (lambda m: m.add_batch(**col(next_state=np.zeros((3, 1)))), "next_state items have shape"),
        (lambda m: m.add_batch(**col(action=np.zeros(3) + 0.5)), "action has dtype float64"),
        (lambda m: m.add_batch(**col(action=np.zeros((3, 2), int))), "action items have shape"),
        (lambda m: m.add_batch(**col(reward=np.array([1.0, np.nan, 0]))), "reward contains NaN"),
        (lambda m: m.add_batch(**col(reward=np.zeros(2))), "leading dimension of 2"),
        (lambda m: m.add_batch(**col(terminated=np.array([0, 2, 1]))), "terminated must be bool"),
        (lambda m: m.add_batch(state=good["state"]), "missing"),
        (lambda m: m.add_batch(**col(), info=[1, 2, 3]), "unknown"),
        (lambda m: m.add_batch([]), "empty batch"),
        (lambda m: m.add_batch([step(0), "x"]), "not an Exp"),
        (lambda m: m.add(Exp(next_state=np.zeros(2))), "from reset"),
        (lambda m: m.add_batch([step(0), Exp(np.zeros(5), 1, 0.0, np.zeros(5))]), "one shape"),
        (lambda m: m.add_batch(**good, priorities=[1.0, -1.0, 0.0]), "must be >= 0"),
        (lambda m: m.add_batch(**good, priorities=[1.0, np.inf, 0.0]), "NaN or infinity"),
        (lambda m: m.add_batch(**good, priorities=[1.0, 2.0]), "expected 3 priorities"),
        (lambda m: m.add(step(0), priority=float("nan")), "NaN or infinity"),
    ]


@pytest.mark.parametrize(("bad", "match"), bad_adds())
def test_bad_adds_are_refused_and_change_nothing(bad, match):
    m = ReplayMemory(5, prioritized=True, seed=0)
    m.add_batch(**columns(0, 7))
    before = snapshot(m)
    with pytest.raises(ReplayError, match=match):
        bad(m)
    assert_same(before, snapshot(m))
    m.add(step(50))  # still works
    assert m.to_columns()["state"][-1, 0] == 50


def test_bad_sampling_is_refused():
    m = ReplayMemory(5, seed=0)
    with pytest.raises(ReplayError, match="empty replay memory"):
        m.get_batch(1)
    m.add_batch(**columns(0, 3))
    with pytest.raises(ReplayError, match="asked for 4 transitions but the memory holds 3"):
        m.get_batch(4)
    with pytest.raises(ReplayError, match="positive integer"):
        m.get_batch(0)
    with pytest.raises(ReplayError, match="mode must be"):
        m.get_batch(2, mode="oldest")  # type: ignore[arg-type]
    with pytest.raises(ReplayError, match="prioritized=True"):
        m.update_priorities([0], [1.0])
    assert len(m.get_batch(3)["indices"]) == 3


def test_stale_and_unknown_indices_are_detected():
    m = ReplayMemory(4, prioritized=True, alpha=1.0, seed=0)
    old = m.add_batch(**columns(0, 4))  # ids 0..3
    m.add_batch(**columns(4, 2))  # evicts ids 0 and 1
    before = snapshot(m)
    with pytest.raises(StaleIndex, match="index 0 was evicted"):
        m.update_priorities(old, [9.0] * 4)
    with pytest.raises(StaleIndex, match="index 6 was never handed out"):
        m.update_priorities([2, 6], [1.0, 1.0])
    with pytest.raises(StaleIndex, match="never handed out"):
        m.update_priorities([-1], [1.0])
    with pytest.raises(ReplayError, match="1-d integer array"):
        m.update_priorities([2.0], [1.0])
    with pytest.raises(ReplayError, match="must be >= 0"):
        m.update_priorities([2, 3], [1.0, -2.0])
    with pytest.raises(ReplayError, match="NaN or infinity"):
        m.update_priorities([2, 3], [1.0, np.nan])
    assert_same(before, snapshot(m))
    assert m.update_priorities(old, [9.0] * 4, stale="skip") == 2
    np.testing.assert_allclose(m.to_columns()["priorities"], [9, 9, 1, 1], atol=1e-5)


# -- benchmark ----------------------------------------------------------------------------


def test_the_benchmark_runs_small():
    from beamrl.bench.replay_bench import format_rows, run

    rows = run(capacity=5000, calls=20, peers=False)
    assert {r["name"] for r in rows} >= {
        "replay add_batch, uniform",
        "replay get_batch(256), uniform",
        "replay get_batch(512) + update_priorities(512)",
    }
    for r in rows:
        assert set(r) == {"name", "value", "unit", "target", "note"}
        assert r["value"] > 0, r
    assert "get_batch(256)" in format_rows(rows)
