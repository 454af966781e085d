"""What a machine with a GPU checks in one call (not run by the tests; this repository was built without one).

    .venv/bin/python scripts/gpu_check.py [--steps 3000] [--out DIR]

1. DQN on CartPole with ``device=cuda`` through ``beamrl train``'s path (``train_deep``:
   the AgentServer, its checkpoints, the final evaluation): every tensor of the learner
   on the GPU, the same initial weights as on the CPU.
2. The checkpoint it wrote (on cuda) loaded by an agent on the CPU, which goes on learning.
3. PPO and TD3 a few hundred steps each on cuda.
4. With two GPUs or more: two ``DataParallelLearner`` replicas over nccl (one OS process
   per GPU) learn different batches and end with the same weights.

Prints one line per check and exits 1 at the first that fails (or when there is no CUDA).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from beamrl.node import run
from beamrl.rl.deep.agent import Agent
from beamrl.rl.deep.algo import Algorithm
from beamrl.rl.deep.config import config_for
from beamrl.rl.deep.learner import make_algorithm
from beamrl.rl.deep.run import train_deep

TINY = {"dqn": {"hidden": [64, 64], "learning_starts": 500, "eval_every": 1_000, "checkpoint_every": 500}}


def say(ok: bool, what: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        sys.exit(1)


def off_device(algorithm: Algorithm) -> list[str]:
    """Weights, buffers and optimizer state of ``algorithm`` that are not on its device."""
    found = []
    for name, module in algorithm.modules.items():
        for key, t in module.state_dict(keep_vars=True).items():
            if t.device != algorithm.device:
                found.append(f"{name}.{key} on {t.device}")
    for name, opt in algorithm.optimizers.items():
        for i, state in enumerate(opt.state.values()):
            for key, t in state.items():
                if (
                    isinstance(t, torch.Tensor)
                    and t.device != algorithm.device
                    and not (key == "step" and t.dim() == 0)
                ):
                    found.append(f"optim {name}[{i}].{key} on {t.device}")
    return found


def check_dqn(steps: int, out: Path) -> None:
    cfg = config_for("dqn", "CartPole-v1", {**TINY["dqn"], "device": "cuda"})
    on_gpu = make_algorithm("dqn", "CartPole-v1", cfg, 0)
    on_cpu = make_algorithm("dqn", "CartPole-v1", config_for("dqn", "CartPole-v1", TINY["dqn"]), 0)
    same = all(
        np.array_equal(a, b)
        for a, b in zip(on_gpu.policy_params().values(), on_cpu.policy_params().values(), strict=True)
    )
    say(on_gpu.device.type == "cuda" and same, f"DQN built on {on_gpu.device} with the CPU's initial weights")
    agent = Agent("dqn", "CartPole-v1", cfg, seed=0, total_steps=1_000)
    agent.run()
    missing = off_device(agent.algorithm)
    say(
        agent.algorithm.updates > 0 and not missing, f"{agent.algorithm.updates} DQN updates on cuda, off it: {missing}"
    )
    summary = run(
        train_deep(
            "dqn",
            "CartPole-v1",
            steps,
            seed=0,
            out=str(out),
            overrides={**TINY["dqn"], "device": "cuda"},
            progress=False,
        )
    )
    say(
        summary["env_steps"] >= steps,
        f"train_deep dqn device=cuda: {summary['env_steps']} steps, "
        f"{summary['steps_per_s']:.0f} steps/s, final greedy return {summary['eval_mean_return']:.1f}",
    )


def check_checkpoint(steps: int, out: Path) -> None:
    cfg_cpu = config_for("dqn", "CartPole-v1", {**TINY["dqn"], "device": "cpu"})
    agent = Agent.load(out / "agent", "dqn", "CartPole-v1", cfg_cpu, seed=0, total_steps=steps + 500)
    saved = json.loads((out / "model.json").read_text())
    say(
        agent.algorithm.device.type == "cpu" and agent.acting.steps >= steps and not off_device(agent.algorithm),
        f"the cuda checkpoint loads on the CPU at step {agent.acting.steps} (model version {saved['version']})",
    )
    before = agent.algorithm.updates
    agent.run()
    say(agent.algorithm.updates > before, f"and goes on learning there: {before} -> {agent.algorithm.updates} updates")


def check_others() -> None:
    for algo, env_id, extra in [
        ("ppo", "CartPole-v1", {"num_envs": 4, "n_steps": 64}),
        ("td3", "Pendulum-v1", {"learning_starts": 200, "hidden": [64, 64]}),
    ]:
        cfg = config_for(algo, env_id, {**extra, "device": "cuda", "eval_every": 0})
        agent = Agent(algo, env_id, cfg, seed=0, total_steps=600)
        agent.run()
        missing = off_device(agent.algorithm)
        loss = agent.last.get("loss")
        say(
            agent.algorithm.updates > 0 and not missing and loss is not None and np.isfinite(loss),
            f"{algo} {env_id}: {agent.algorithm.updates} updates on cuda, loss {loss}, off it: {missing}",
        )


async def replica(rank: int, address: str) -> None:
    """One nccl replica (a child process of this script): learn 5 batches of its own, print its digest."""
    from beamrl import Node
    from beamrl.rl.deep.distributed import DataParallelLearner

    cfg = json.loads(json.dumps(vars(config_for("dqn", "CartPole-v1", {"hidden": [32], "batch_size": 16}))))
    rng = np.random.default_rng(rank)
    async with Node(f"replica{rank}") as node:
        pid = await node.start(
            DataParallelLearner,
            "dqn",
            "CartPole-v1",
            cfg,
            0,
            rank=rank,
            world_size=2,
            address=address,
            backend="nccl",
            timeout_s=60.0,
        )
        for _ in range(5):
            batch = {
                "state": rng.normal(size=(16, 4)).astype(np.float32),
                "next_state": rng.normal(size=(16, 4)).astype(np.float32),
                "action": rng.integers(0, 2, 16),
                "reward": rng.normal(size=16).astype(np.float32),
                "discount": np.full(16, 0.99, np.float32),
            }
            await node.call(pid, ["learn", batch], timeout=60.0)
        stats: dict[str, Any] = await node.call(pid, ["stats"], timeout=60.0)
        print(
            json.dumps(
                {"rank": rank, "device": stats["device"], "version": stats["version"], "digest": stats["digest"]}
            )
        )
        await node.stop(pid)


def check_nccl() -> None:
    if torch.cuda.device_count() < 2:
        print(f"skip nccl replicas: {torch.cuda.device_count()} GPU here, they need 2", flush=True)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    procs = [
        subprocess.Popen([sys.executable, __file__, "--replica", str(r), address], stdout=subprocess.PIPE, text=True)
        for r in range(2)
    ]
    lines = [json.loads(p.communicate(timeout=180)[0].strip().splitlines()[-1]) for p in procs]
    devices = [line["device"] for line in lines]
    say(
        all(p.returncode == 0 for p in procs)
        and devices == ["cuda:0", "cuda:1"]
        and lines[0]["digest"] == lines[1]["digest"]
        and lines[0]["version"] == 5,
        f"two nccl replicas on {devices} end at version {lines[0]['version']} with digests "
        f"{[line['digest'] for line in lines]}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3_000, help="env steps of the train_deep run")
    parser.add_argument("--out", type=Path, help="run directory (default: a temporary one)")
    parser.add_argument("--replica", nargs=2, metavar=("RANK", "ADDRESS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replica:
        asyncio.run(replica(int(args.replica[0]), args.replica[1]))
        return
    say(
        torch.cuda.is_available(),
        f"CUDA: torch {torch.__version__}, {torch.cuda.device_count()} GPU(s)"
        + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""),
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "dqn-cuda"
        check_dqn(args.steps, out)
        check_checkpoint(args.steps, out)
    check_others()
    check_nccl()
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
