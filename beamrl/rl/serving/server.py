"""``PolicyServer``: a trained policy as a process, for controllers that only need actions.

    await node.start(PolicyServer, "runs/dqn", name="policy")
    policy = node.proxy("policy")
    await policy.act([0.01, 0.0, 0.02, 0.0])     # -> 1, the greedy action

Requests:

==========================  ==================================================================
``["act", obs]``            the greedy action for one observation: an ``int`` (discrete
                            actions) or a float32 array (continuous)
``["act_batch", obs]``      greedy actions for a batch (first axis), as one numpy array
``["output", obs]``         the policy's raw output for one observation: Q-values (a table's
                            row, a Q-network's), logits, Gaussian means or actor actions
``["output_batch", obs]``   the same for a batch, shape (batch, k)
``["info"]``                what is served: ``family`` (deep/tabular), ``algo``, ``env_id``,
                            ``env_kwargs``, ``policy``, ``observation_space``,
                            ``action_space``, ``file``, its ``sha256``, ``model_version``
                            (a deep run's parameter version), ``generation`` (1, then +1
                            per reload), ``acts`` (observations answered),
                            ``torch_imported`` (False: numpy only)
``["reload"]``              read the run directory again and serve what it holds now;
                            replies with the new ``info``
==========================  ==================================================================

An observation is checked against the observation space before the policy sees it (shape,
dtype, finite, within bounds; see ``beamrl.rl.serving.observations``): a bad one is refused
with ``InvalidObservation`` (a ``Rejected``) naming what is wrong, and the server goes on.
A ``reload`` that finds broken files is refused the same way and the old policy stays.
With ``watch=SECONDS`` the server looks at the policy file's size and modification time
that often and reloads when they change (a broken new file is logged once and skipped:
training writes its files atomically, so a complete file follows). Files are read on a
worker thread, so a reload never stalls answers already queued. Started for a peer, the
run directory must lie inside the node's data directory (``beamrl.trust``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from beamrl.api import send_after
from beamrl.errors import Rejected
from beamrl.gen_server import GenServer
from beamrl.reprs import short_repr
from beamrl.rl.serving.observations import MAX_BATCH
from beamrl.rl.serving.policies import ServedPolicy, load_run
from beamrl.trust import started_for_a_peer

__all__ = ["PolicyServer"]

log = logging.getLogger("beamrl.rl")

_REQUESTS = "act, act_batch, output, output_batch, info or reload"


def _stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of ``path``, None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class PolicyServer(GenServer):
    """A run directory's greedy policy served as a process; see the module docstring for requests."""

    async def init(self, run_dir: str, *, watch: float | None = None, max_batch: int = MAX_BATCH) -> None:
        if watch is not None and (isinstance(watch, bool) or not isinstance(watch, int | float) or not watch > 0):
            raise ValueError(f"PolicyServer: watch must be seconds > 0 or None, got {watch!r:.80}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"PolicyServer: max_batch must be an integer >= 1, got {max_batch!r:.80}")
        # started for a peer: the directory must stay inside the node's data dir (beamrl.trust)
        self.run_dir = self.node.data_path(run_dir, "run_dir")
        self._import_envs = not started_for_a_peer()
        self.max_batch = max_batch
        self.policy: ServedPolicy = await self._load()
        self.generation = 1
        self.acts = 0
        self.watch = None if watch is None else float(watch)
        self._stamp = _stamp(self.policy.file)
        self._refused_stamp: tuple[int, int] | None = None
        if self.watch is not None:
            send_after(self.watch, self.pid, "watch")

    async def _load(self) -> ServedPolicy:
        return await asyncio.to_thread(load_run, self.run_dir, import_envs=self._import_envs, max_batch=self.max_batch)

    async def handle_call(self, request: Any, from_: Any) -> Any:
        policy = self.policy
        match request:
            case ["act", obs]:
                actions = policy.act(policy.check.one(obs))
                self.acts += 1
                return policy.one_action(actions)
            case ["act_batch", obs]:
                actions = policy.act(policy.check.batch(obs))
                self.acts += len(actions)
                return actions
            case ["output", obs]:
                return policy.output(policy.check.one(obs))[0]
            case ["output_batch", obs]:
                return policy.output(policy.check.batch(obs))
            case ["info"]:
                return self.info()
            case ["reload"]:
                await self._reload()
                return self.info()
        raise Rejected(f"PolicyServer does not understand {_describe(request)}: use {_REQUESTS}")

    def info(self) -> dict[str, Any]:
        """What ``["info"]`` answers."""
        return {
            **self.policy.describe(),
            "run_dir": str(self.run_dir),
            "generation": self.generation,
            "acts": self.acts,
            "watch": self.watch,
            "torch_imported": "torch" in sys.modules,
        }

    async def _reload(self) -> None:
        before = _stamp(self.policy.file)  # taken before reading: a file replaced meanwhile is seen next time
        try:
            policy = await self._load()
        except (ValueError, OSError) as exc:
            raise Rejected(
                f"reload refused: {exc}; still serving generation {self.generation} ({self.policy.file})"
            ) from None
        self._stamp = before if policy.file == self.policy.file else _stamp(policy.file)
        self.policy = policy
        self.generation += 1
        log.info("policy server: serving generation %d from %s", self.generation, policy.file)

    async def handle_info(self, message: Any) -> None:
        if message != "watch" or self.watch is None:
            return
        stamp = _stamp(self.policy.file)
        if stamp is not None and stamp != self._stamp and stamp != self._refused_stamp:
            try:
                await self._reload()
            except Rejected as exc:
                self._refused_stamp = stamp  # said once; tried again when the file changes again
                log.warning("policy server: %s", exc)
        send_after(self.watch, self.pid, "watch")


def _describe(request: Any) -> str:
    if isinstance(request, list | tuple) and request and isinstance(request[0], str):
        return f"{short_repr(request[0], 40)} with {len(request) - 1} argument(s)"
    return short_repr(request, 80)
