"""A controller that plays its environment with a policy served on another node.

    python examples/pi_controller.py tcp://HOST:PORT [--episodes 100] [--name policy]

is what a Raspberry Pi runs against ``beamrl serve RUN_DIR`` on a bigger machine (or the
other way round: the Pi serves, a laptop asks): it connects with ``beamrl.connect``, asks
``["info"]`` which env the policy was trained on, then plays episodes of that env here,
sending every observation to the server (``policy.act(obs)``) and stepping with the action
it answers. It prints the mean return (and success rate for goal envs) and the round trip
of one ``act``: median and 99th percentile, and acts per second, beside the floor of a
bare remote call to the same node timed in the same run.

    python examples/pi_controller.py --demo [--episodes 100]

does everything on this machine: trains a small Q-learning run on FrozenLake
(``beamrl train``), serves it with ``beamrl serve`` as a separate OS process, plays
against it, and stops the server. ``--remote-batch N`` also times ``act_batch`` of N
observations, for a controller that steers N plants at once.

    Smoke test: --demo --episodes 50
    Smoke expect: served q-learning FrozenLake-v1
    Smoke expect: act round trip
    Smoke timeout: 120
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import beamrl
from beamrl.rl import make
from beamrl.rl.envs.registry import facts

BEAMRL = [sys.executable, "-m", "beamrl.cli"]


def play(address: str, name: str, episodes: int, batch: int) -> None:
    """Play ``episodes`` episodes of the served policy's env here, one ``act`` call per step."""
    with beamrl.connect(address) as session:
        policy = session.proxy(name)
        info = policy.info()
        print(f"served {info['algo']} {info['env_id']} from {info['file']} (torch imported: {info['torch_imported']})")
        env = make(info["env_id"], **info["env_kwargs"])
        judge = facts(info["env_id"])  # a goal env (FrozenLake...) has a success rate worth printing
        returns, successes, trips = [], [], []
        for episode in range(episodes):
            exp = env.reset(seed=episode)
            total = 0.0
            while not exp.done:
                started = time.perf_counter()
                action = policy.act(exp.next_state)
                trips.append(time.perf_counter() - started)
                exp = env.step(action)
                total += exp.reward
            returns.append(total)
            successes.append(judge.success(exp))
        success = f", success {np.mean(successes):.3f}" if judge.success_target is not None else ""
        print(f"{episodes} episodes: mean return {np.mean(returns):.3f}{success}, {len(trips)} steps")
        _report("act round trip", trips, 1)
        floor = []
        for _ in range(min(len(trips), 2_000)):
            started = time.perf_counter()
            session.registered()  # a remote call with a tiny answer and no policy work: the floor
            floor.append(time.perf_counter() - started)
        _report("floor: a bare remote call (registered names)", floor, 1)
        print(f"act / floor: {statistics.median(trips) / statistics.median(floor):.2f}x the median round trip")
        if batch:
            obs = np.stack([np.asarray(env.observation_space.sample()) for _ in range(batch)])
            times = []
            for _ in range(50):
                started = time.perf_counter()
                policy.act_batch(obs)
                times.append(time.perf_counter() - started)
            _report(f"act_batch({batch}) round trip", times, batch)


def _report(what: str, seconds: list[float], per_call: int) -> None:
    ordered = sorted(seconds)
    median = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    print(
        f"{what}: median {median * 1e6:,.0f} us, p99 {p99 * 1e6:,.0f} us "
        f"({per_call / median:,.0f} actions/s from one caller)"
    )


def demo(episodes: int, batch: int) -> None:
    """Train a small run, serve it as a separate OS process, play against it, stop it."""
    with tempfile.TemporaryDirectory(prefix="beamrl-serve-demo-") as tmp:
        run_dir = Path(tmp) / "lake"
        train = [*BEAMRL, "train", "q-learning", "FrozenLake-v1", "--episodes", "3000", "--quiet"]
        subprocess.run([*train, "--out", str(run_dir)], check=True, stdout=subprocess.DEVNULL)
        server = subprocess.Popen(
            [*BEAMRL, "serve", str(run_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            address = _wait_for_address(server)
            print(f"beamrl serve {run_dir.name} is listening on {address} (pid {server.pid})")
            play(address, "policy", episodes, batch)
        finally:
            server.terminate()
            server.wait(30)
            if server.stdout is not None:
                server.stdout.close()


def _wait_for_address(server: subprocess.Popen[str]) -> str:
    assert server.stdout is not None
    address = ""
    for line in server.stdout:
        match = re.search(r"listening on (tcp://\S+)", line)
        if match:
            address = match.group(1)
        if line.startswith("serving ") and address:
            return address
    raise RuntimeError(f"beamrl serve stopped before serving (exit code {server.wait()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("address", nargs="?", help="tcp://HOST:PORT of a node running beamrl serve")
    parser.add_argument("--demo", action="store_true", help="train, serve and play on this machine")
    parser.add_argument("--name", default="policy", help="the policy server's registered name")
    parser.add_argument("--episodes", type=int, default=100, help="episodes to play")
    parser.add_argument("--remote-batch", type=int, default=0, metavar="N", help="also time act_batch of N")
    args = parser.parse_args()
    if args.demo:
        demo(args.episodes, args.remote_batch)
    elif args.address:
        play(args.address, args.name, args.episodes, args.remote_batch)
    else:
        parser.error("give the address of a policy server, or --demo")


if __name__ == "__main__":
    main()
