"""Replay-memory benchmark: ``ReplayMemory`` against a numpy floor and its peers.

Measures, for a memory of ``capacity`` CartPole transitions (state ``float32[4]``,
int64 action), the figures issue 6 sets budgets for:

- ``add_batch`` throughput (batches of 1000 rows), uniform and prioritized;
- uniform ``get_batch(256)`` latency;
- prioritized ``get_batch(512)`` followed by ``update_priorities(512)``;

and the same operations, where importable, on Stable-Baselines3's ``ReplayBuffer``
(uniform) and TorchRL's ``ReplayBuffer`` / ``PrioritizedReplayBuffer``, plus a
bare-numpy floor (draw 256 slots, gather seven separate columns). Peers run in the
same process, on the same machine, right after ours: compare the ratios, not the
absolute times. Latencies are medians over many calls. Torch is limited to one
thread, as numpy is here (intra-op threads only add noise for batches this small).

Run with any Python that can import beamrl (and optionally the peers)::

    python -m beamrl.bench.replay_bench            # a table
    python -m beamrl.bench.replay_bench --json     # the rows as JSON
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from beamrl.rl.exp import Exp
from beamrl.rl.replay import ReplayMemory

Row = dict[str, Any]

OBS = 4  # CartPole's observation size
ADD_BATCH = 1000


def _median_us(fn: Callable[[], object], calls: int) -> float:
    """Median wall time of one call, in microseconds (after a few warm-up calls)."""
    for _ in range(min(10, calls)):
        fn()
    times = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        t0 = clock()
        fn()
        times[i] = clock() - t0
    return float(np.median(times)) / 1e3


def _columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "state": rng.standard_normal((n, OBS), dtype=np.float32),
        "action": rng.integers(0, 2, n),
        "reward": np.ones(n, dtype=np.float32),
        "next_state": rng.standard_normal((n, OBS), dtype=np.float32),
        "terminated": rng.random(n) < 0.05,
        "truncated": np.zeros(n, dtype=bool),
    }


def _one_exp(rng: np.random.Generator) -> Exp:
    """One CartPole step as an actor sends it: ndarray states, int action, float reward."""
    cols = _columns(rng, 1)
    return Exp(cols["state"][0], 1, 1.0, cols["next_state"][0], False, False)


def _row(name: str, value: float, unit: str, target: str | None = None, note: str = "") -> Row:
    return {"name": name, "value": round(value, 3), "unit": unit, "target": target, "note": note}


def _ratio(name: str, ours: float, peer: float, higher_is_better: bool, peer_name: str) -> Row:
    ratio = ours / peer if higher_is_better else peer / ours
    return _row(name, ratio, "x", None, f"ours vs {peer_name}: >1 means beamrl is faster")


def _fill(memory: ReplayMemory, capacity: int, rng: np.random.Generator) -> float:
    """Fill ``memory`` with ``capacity`` rows in batches; return transitions per second."""
    batches = [_columns(rng, ADD_BATCH) for _ in range(8)]
    total = 0
    t0 = time.perf_counter()
    while total < capacity:
        memory.add_batch(batches[(total // ADD_BATCH) % len(batches)])
        total += ADD_BATCH
    return total / (time.perf_counter() - t0)


def bench_ours(capacity: int, calls: int, rng: np.random.Generator) -> dict[str, float]:
    out: dict[str, float] = {}
    uniform = ReplayMemory(capacity, seed=0)
    _fill(uniform, capacity, rng)  # the first pass pays for page faults
    out["add_uniform"] = _fill(uniform, capacity, rng)
    out["get256"] = _median_us(lambda: uniform.get_batch(256), calls)
    one = _one_exp(rng)
    out["add_one"] = _median_us(lambda: uniform.add(one), calls)
    uniform = ReplayMemory(1)  # frees the big one before the next is built

    prio = ReplayMemory(capacity, prioritized=True, seed=0)
    _fill(prio, capacity, rng)
    out["add_prio"] = _fill(prio, capacity, rng)
    out["add_one_prio"] = _median_us(lambda: prio.add(one), calls)
    new_p = rng.random(512) * 3

    def sample_update() -> None:
        batch = prio.get_batch(512)
        prio.update_priorities(batch["indices"], new_p)

    out["prio512"] = _median_us(sample_update, calls)
    out["prio_get512"] = _median_us(lambda: prio.get_batch(512), calls)
    return out


def bench_floor(capacity: int, calls: int, rng: np.random.Generator) -> float:
    """Bare numpy: 256 random slots and a fancy-index gather of seven separate columns."""
    cols = {name: np.asarray(v) for name, v in _columns(rng, capacity).items()}
    cols["discount"] = np.ones(capacity, dtype=np.float32)
    gen = np.random.default_rng(0)

    def gather() -> None:
        slots = gen.integers(0, capacity, 256)
        for col in cols.values():
            col[slots]

    return _median_us(gather, calls)


def bench_sb3(capacity: int, calls: int, rng: np.random.Generator) -> dict[str, float] | str:
    try:
        from gymnasium import spaces
        from stable_baselines3.common.buffers import ReplayBuffer
    except ImportError as exc:
        return f"stable-baselines3 not importable ({exc.name})"
    obs_space = spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
    buf = ReplayBuffer(capacity, obs_space, spaces.Discrete(2), device="cpu", n_envs=1)
    # fill its arrays directly: its add() stores one transition per call
    data = _columns(rng, capacity)
    buf.observations[:, 0] = data["state"]
    buf.next_observations[:, 0] = data["next_state"]
    buf.actions[:, 0, 0] = data["action"]
    buf.rewards[:, 0] = data["reward"]
    buf.dones[:, 0] = data["terminated"]
    buf.full, buf.pos = True, 0
    obs = data["state"][:1]
    nxt = data["next_state"][:1]
    act, rew, done = np.array([[1]]), np.array([1.0]), np.array([False])
    infos: list[dict[str, Any]] = [{}]
    add_one = _median_us(lambda: buf.add(obs, nxt, act, rew, done, infos), calls)
    return {
        "add_one": add_one,
        "add_rate": 1e6 / add_one,
        "get256": _median_us(lambda: buf.sample(256), calls),
    }


def bench_torchrl(capacity: int, calls: int, rng: np.random.Generator) -> dict[str, Any] | str:
    try:
        import torch
        from tensordict import TensorDict
        from torchrl.data import LazyTensorStorage, PrioritizedReplayBuffer, ReplayBuffer
    except ImportError as exc:
        return f"torchrl not importable ({exc.name})"
    import logging

    logging.getLogger("torchrl").setLevel(logging.WARNING)
    torch.set_num_threads(1)  # like numpy here: one core, and no fight with other work

    def tensordict(n: int) -> Any:
        cols = _columns(rng, n)
        return TensorDict({k: torch.from_numpy(v) for k, v in cols.items()}, batch_size=[n])

    out: dict[str, Any] = {}
    batches = [tensordict(ADD_BATCH) for _ in range(8)]
    big = tensordict(100_000)

    def fill(rb: Any) -> float:
        for _ in range(max(1, capacity // big.shape[0])):
            rb.extend(big)  # the first pass allocates (lazy storage)
        total = 0
        t0 = time.perf_counter()
        while total < capacity:
            rb.extend(batches[(total // ADD_BATCH) % len(batches)])
            total += ADD_BATCH
        return total / (time.perf_counter() - t0)

    rb = ReplayBuffer(storage=LazyTensorStorage(capacity), batch_size=256)
    out["add_uniform"] = fill(rb)
    out["get256"] = _median_us(rb.sample, calls)
    rb = None  # frees its storage
    try:
        prb = PrioritizedReplayBuffer(alpha=0.6, beta=0.4, storage=LazyTensorStorage(capacity), batch_size=512)
    except RuntimeError:  # its compiled segment tree did not load
        import torchrl

        out["prio_skipped"] = (
            f"skipped: torchrl {torchrl.__version__}'s compiled segment tree does not load "
            f"with torch {torch.__version__}"
        )
        return out
    fill(prb)
    new_p = torch.from_numpy(rng.random(512) * 3)

    def sample_update() -> None:
        batch = prb.sample()
        prb.update_priority(batch["index"], new_p)

    out["prio512"] = _median_us(sample_update, calls)
    return out


def run(capacity: int = 1_000_000, calls: int = 2000, peers: bool = True) -> list[Row]:
    """Measure and return rows ``{"name", "value", "unit", "target", "note"}``."""
    rng = np.random.default_rng(0)
    shape = f"capacity {capacity:,}, CartPole rows (float32[{OBS}] state)"
    ours = bench_ours(capacity, calls, rng)
    rows = [
        _row(
            "replay add_batch, uniform",
            ours["add_uniform"],
            "transitions/s",
            ">= 2,000,000",
            f"{shape}; batches of {ADD_BATCH}",
        ),
        _row(
            "replay add_batch, prioritized",
            ours["add_prio"],
            "transitions/s",
            ">= 2,000,000",
            f"batches of {ADD_BATCH}, sum+min trees updated by slices",
        ),
        _row("replay add(exp), uniform", ours["add_one"], "us", None, "one CartPole step"),
        _row("replay add(exp), prioritized", ours["add_one_prio"], "us", None, "trees: 2 paths"),
        _row("replay get_batch(256), uniform", ours["get256"], "us", "<= 50", "median"),
        _row(
            "replay get_batch(512) + update_priorities(512)",
            ours["prio512"] / 1e3,
            "ms",
            "<= 1",
            "median, prioritized (alpha 0.6), stratified",
        ),
        _row("replay get_batch(512), prioritized", ours["prio_get512"], "us", None, "median"),
    ]
    floor = bench_floor(capacity, calls, rng)
    rows.append(_row("floor: numpy draw + gather 7 columns (256)", floor, "us", None, "separate columns"))
    rows.append(_row("get_batch(256) vs numpy floor", floor / ours["get256"], "x", None, ""))
    if not peers:
        return rows
    sb3 = bench_sb3(capacity, calls, rng)
    if isinstance(sb3, str):
        rows.append(_row("SB3 ReplayBuffer", float("nan"), "", None, f"skipped: {sb3}"))
    else:
        rows += [
            _row("SB3 ReplayBuffer.add (one)", sb3["add_one"], "us", None, "n_envs=1"),
            _row("SB3 ReplayBuffer.sample(256)", sb3["get256"], "us", None, "torch tensors out"),
            _ratio("add one vs SB3", ours["add_one"], sb3["add_one"], False, "SB3 add"),
            _ratio("get_batch(256) vs SB3", ours["get256"], sb3["get256"], False, "SB3 sample"),
        ]
    trl = bench_torchrl(capacity, calls, rng)
    if isinstance(trl, str):
        rows.append(_row("TorchRL ReplayBuffer", float("nan"), "", None, f"skipped: {trl}"))
    else:
        rows += [
            _row("TorchRL ReplayBuffer.extend", trl["add_uniform"], "transitions/s", None, ""),
            _row("TorchRL ReplayBuffer.sample(256)", trl["get256"], "us", None, "LazyTensorStorage"),
            _ratio(
                "add_batch vs TorchRL extend",
                ours["add_uniform"],
                trl["add_uniform"],
                True,
                "TorchRL extend",
            ),
            _ratio("get_batch(256) vs TorchRL", ours["get256"], trl["get256"], False, "TorchRL"),
        ]
        if "prio512" in trl:
            rows += [
                _row(
                    "TorchRL PrioritizedReplayBuffer sample+update(512)",
                    trl["prio512"] / 1e3,
                    "ms",
                    None,
                    "",
                ),
                _ratio(
                    "prioritized 512 vs TorchRL",
                    ours["prio512"],
                    trl["prio512"],
                    False,
                    "TorchRL PrioritizedReplayBuffer",
                ),
            ]
        else:
            note = str(trl["prio_skipped"])
            rows.append(_row("TorchRL PrioritizedReplayBuffer", float("nan"), "", None, note))
    return rows


def format_rows(rows: list[Row]) -> str:
    lines = [f"{'name':52} {'value':>14} {'unit':14} {'target':14} note"]
    for r in rows:
        lines.append(f"{r['name']:52} {r['value']:>14,.3f} {r['unit']:14} {r['target'] or '':14} {r['note']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = run(args.capacity, args.calls, peers=not args.no_peers)
    print(json.dumps(rows, indent=1) if args.json else format_rows(rows))


if __name__ == "__main__":
    main()
