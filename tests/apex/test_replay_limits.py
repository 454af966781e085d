"""What Ape-X adds to the replay: transitions with their own discount, and the rate limiter."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beamrl import Node
from beamrl.rl.replay import ReplayError, ReplayMemory
from beamrl.rl.replay.ratelimit import RateLimiter
from beamrl.rl.replay_server import ReplayServer
from beamrl.supervisor import child
from beamrl.testing import eventually


def rows(n: int, start: int = 0, discount: bool = True) -> dict[str, np.ndarray]:
    step = np.arange(start, start + n)
    cols = {
        "state": np.stack([step, step], axis=1).astype(np.float32),
        "action": step % 2,
        "reward": step.astype(np.float32),
        "next_state": np.stack([step + 3, step + 3], axis=1).astype(np.float32),
        "terminated": step % 10 == 9,
        "truncated": np.zeros(n, bool),
    }
    if discount:
        cols["discount"] = np.where(step % 10 == 9, 0.0, 0.99**3).astype(np.float32)
    return cols


def test_a_discount_column_is_stored_as_given() -> None:
    memory = ReplayMemory(100, prioritized=True, gamma=0.99)
    memory.add_batch(rows(20), priorities=np.arange(20.0))
    stored = memory.to_columns()
    np.testing.assert_allclose(stored["discount"], rows(20)["discount"])
    without = ReplayMemory(100, gamma=0.99)
    without.add_batch(rows(20, discount=False))
    np.testing.assert_allclose(without.to_columns()["discount"], np.where(stored["terminated"], 0.0, 0.99))


def test_a_bad_discount_column_is_refused_whole() -> None:
    memory = ReplayMemory(100)
    bad = rows(5)
    bad["discount"][2] = 1.5
    with pytest.raises(ReplayError, match=r"discount values must lie in \[0, 1\]"):
        memory.add_batch(bad)
    with pytest.raises(ReplayError, match="use a memory with n_step=1"):
        ReplayMemory(100, n_step=3).add_batch(rows(5))
    with pytest.raises(ReplayError, match="unknown \\['bonus'\\]"):
        memory.add_batch({**rows(5), "bonus": np.zeros(5)})
    assert len(memory) == 0


def test_rate_limiter_counts_like_reverbs_sample_to_insert_ratio() -> None:
    limiter = RateLimiter(min_size=100, samples_per_insert=2.0, error_buffer=50.0)
    limiter.inserted(99)
    assert not limiter.can_sample(10, 99)  # below min_size
    limiter.inserted(1)
    assert limiter.can_sample(50, 100) and not limiter.can_sample(51, 100)  # the error buffer alone
    limiter.sampled(50)
    limiter.inserted(30)  # allows 2 * 30 more
    assert limiter.can_sample(60, 130) and not limiter.can_sample(61, 130)
    assert not limiter.behind
    limiter.inserted(1_000)
    assert limiter.behind  # the sampler lags: 2 * 1030 + 50 - 50 >> 2 * 50
    with pytest.raises(ValueError, match="samples_per_insert must be a positive number"):
        RateLimiter(samples_per_insert=0)
    with pytest.raises(ValueError, match="unknown keys \\['ratio'\\]"):
        RateLimiter.from_data({"ratio": 1})


async def test_a_rate_limited_server_holds_samples_until_inserts_allow_them() -> None:
    limiter = {"min_size": 40, "samples_per_insert": 1.0, "error_buffer": 16.0}
    async with Node("replay-test") as node:
        await node.start(ReplayServer, 1_000, rate_limiter=limiter, sample_wait=0.3, name="replay")
        node.cast("replay", ["add_batch", rows(30)])
        assert await node.call("replay", ["sample", 8]) is None  # 30 < min_size: answered None after 0.3 s
        waiting = asyncio.ensure_future(node.call("replay", ["sample", 8]))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        node.cast("replay", ["add_batch", rows(20, 30)])  # 50 >= 40: the waiting sample is served
        batch = await waiting
        assert batch is not None and batch["state"].shape == (8, 2)
        for _ in range(3):  # the allowance: 1.0 * (50 - 40) + 16 = 26 transitions, 8 already sampled
            assert await node.call("replay", ["sample", 6]) is not None
        assert await node.call("replay", ["sample", 6]) is None  # 26 - 8 - 18 = 0 left
        stats: dict[str, Any] = (await node.call("replay", ["stats"]))["rate_limiter"]
        assert stats["samples"] == 26 and stats["inserts"] == 50 and stats["timeouts"] == 2
        with pytest.raises(ReplayError, match="batch size must be a positive integer"):
            await node.call("replay", ["sample", 0])
        with pytest.raises(ReplayError, match="unknown keys"):
            await node.start(ReplayServer, 10, rate_limiter={"speed": 1})
        assert await node.call("replay", ["len"]) == 50  # still serving


async def test_a_restarted_server_goes_on_at_the_ratio_instead_of_owing_samples_for_what_it_restored(
    tmp_path: Path,
) -> None:
    limiter = {"min_size": 100, "samples_per_insert": 4.0, "error_buffer": 40.0}
    kwargs: dict[str, Any] = {"rate_limiter": limiter, "checkpoint_dir": str(tmp_path), "sample_wait": 0.05}
    async with Node("replay-test") as node:
        await node.start_supervisor([child(ReplayServer, 5_000, name="replay", **kwargs)], max_restarts=3)
        await node.call("replay", ["add_batch", rows(1_000)])
        await node.call("replay", ["checkpoint"])
        old = node.whereis("replay")
        node.kill("replay")
        await eventually(lambda: node.whereis("replay") not in (None, old), what="the restart")
        stats = (await node.call("replay", ["stats"]))["rate_limiter"]
        assert stats["inserts"] == 1_000 and stats["samples"] == 4 * (1_000 - 100)  # the ratio, kept
        # the actors may insert at once (10 more before the sampler lags by the error buffer) ...
        assert await node.call("replay", ["insert_headroom"]) == pytest.approx(40.0 / 4.0)
        # ... and the learner gets the error buffer's worth, not 3,640 transitions of old data
        assert await node.call("replay", ["sample", 40]) is not None
        assert await node.call("replay", ["sample", 1]) is None
        node.cast("replay", ["add_batch", rows(10, 1_000)])
        assert await node.call("replay", ["sample", 40]) is not None  # 4 per insert again
