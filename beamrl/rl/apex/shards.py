"""The replay of an Ape-X run as its driver sees it: one ``replay``, or R shards ``replay-K``.

    replay_children(cfg, seed, out_dir)   # the apex supervisor's ReplayServer children
    await replay_stats(node, cfg)          # their stats (totals over shards, each one's in "shards")
    replay_summary(stats, loop_stats)      # summary.json's "replay" (lost: over every kill)
    kill_target("replay", cfg)             # "replay", or "replay-0" with shards

With ``replay_shards`` = R > 1 each shard holds ``buffer_size / R`` transitions with its
own seed (``seed + K``), checkpoint directory (``OUT/replay-K``) and rate limiter
(``ApexConfig.limiter``: ``min_replay / R``, the run's ratio and tolerance). Which actor
feeds which shard is ``beamrl.rl.apex.config.shard_of``; how the loop samples them is
``beamrl.rl.apex.loop``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beamrl.node import Node
from beamrl.rl.apex.config import ApexConfig, replay_names
from beamrl.rl.training.actors import quiet_call
from beamrl.supervisor import ChildSpec, child

__all__ = ["REPLAY_KEYS", "SUMMARY_KEYS", "kill_target", "replay_children", "replay_stats", "replay_summary"]

#: the replay counts summed over shards
REPLAY_KEYS = (
    "len",
    "capacity",
    "total_added",
    "samples",
    "lost",
    "lost_total",
    "stale_skipped",
    "foreign_updates",
    "foreign_updates_total",
)
#: summary.json's replay counts -> the ``stats`` key each comes from: ``lost`` and
#: ``foreign_updates`` over the whole run (every kill's restore, every incarnation), where
#: the stats' ``lost`` is the last restore's only
SUMMARY_KEYS = {
    "len": "len",
    "capacity": "capacity",
    "total_added": "total_added",
    "samples": "samples",
    "lost": "lost_total",
    "stale_skipped": "stale_skipped",
    "foreign_updates": "foreign_updates_total",
}


def replay_children(cfg: ApexConfig, seed: int, out_dir: Path) -> list[ChildSpec]:
    """The ``replay``, or its R shards ``replay-K`` (each its own seed, checkpoint directory and limiter)."""
    return [
        child(
            "beamrl.rl.replay_server:ReplayServer",
            cfg.shard_capacity(),
            prioritized=cfg.prioritized,
            alpha=cfg.alpha,
            beta=cfg.beta,
            n_step=1,
            gamma=cfg.gamma,
            seed=seed + k,
            rate_limiter=cfg.limiter(),
            checkpoint_dir=str(out_dir / name),
            checkpoint_every=cfg.replay_checkpoint_s,
            name=name,
            shutdown=30.0,
        )
        for k, name in enumerate(replay_names(cfg))
    ]


def kill_target(target: str, cfg: ApexConfig) -> str:
    """``--kill-at``'s ``replay`` is shard 0 of a sharded replay; ``replay-K`` must name one of its shards."""
    names = replay_names(cfg)
    if target == "replay":
        return names[0]
    if target.startswith("replay-") and target not in names:
        raise ValueError(
            f"--kill-at STEP:{target} names a replay shard this run does not have: "
            f"replay_shards={cfg.replay_shards} runs {', '.join(names)}"
        )
    return target


async def replay_stats(node: Node, cfg: ApexConfig, quiet: bool = True) -> dict[str, Any] | None:
    """The replay's ``stats``; with shards their totals, each shard's in ``shards``.

    ``quiet``: None while a shard is away (a poll goes on without it); otherwise its error raises.
    """
    shards = []
    for name in replay_names(cfg):
        stats = await quiet_call(node, name, ["stats"]) if quiet else await node.call(name, ["stats"])
        if stats is None:
            return None
        shards.append(stats | {"name": name})
    if len(shards) == 1:
        return shards[0]
    totals: dict[str, Any] = {k: sum(s[k] for s in shards) for k in (*REPLAY_KEYS, "restored")}
    limiters = [s["rate_limiter"] for s in shards if s.get("rate_limiter")]
    if limiters:
        inserts, samples = sum(lim["inserts"] for lim in limiters), sum(lim["samples"] for lim in limiters)
        ratio = samples / inserts if inserts else 0.0
        totals["rate_limiter"] = {"inserts": inserts, "samples": samples, "samples_per_insert_actual": ratio}
    return totals | {"shards": shards}


def replay_summary(stats: dict[str, Any], loop: dict[str, Any]) -> dict[str, Any]:
    """summary.json's ``replay``: the counts (``SUMMARY_KEYS``, totals over shards), and with shards each
    one's in ``shards`` (its counts, the transitions inserted and restored, and the batches the loop
    learnt from it)."""
    summary = {k: stats[key] for k, key in SUMMARY_KEYS.items()}
    if "shards" in stats:
        summary["shards"] = [
            {"name": s["name"], **{k: s[key] for k, key in SUMMARY_KEYS.items()}, "restored": s["restored"]}
            | {"inserts": (s.get("rate_limiter") or {}).get("inserts"), "learned_batches": learned["updates"]}
            for s, learned in zip(stats["shards"], loop["shards"], strict=True)
        ]
    return summary
