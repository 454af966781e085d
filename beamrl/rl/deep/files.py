"""The deep run's JSON files, written through ``beamrl.persist`` (a reader sees the old
file or the new one, never half of one)::

    write_json(Path("runs/x/summary.json"), summary)

Binary files use ``beamrl.persist.atomic_write_bytes`` directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from beamrl.persist import atomic_write_bytes

__all__ = ["json_bytes", "write_json"]


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented JSON text (numpy arrays as lists)."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=_plain) + "\n").encode()


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON (numpy arrays as lists), written atomically."""
    atomic_write_bytes(path, json_bytes(obj))


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def print_result(summary: dict[str, Any], out: Path | str, shown: tuple[str, ...]) -> None:
    """What ``beamrl train`` prints when a deep or Ape-X run ends: the headline, the judged return, the files."""
    print(json.dumps({k: summary[k] for k in shown}))
    mean = summary["eval_mean_return"]
    print(f"evaluated {summary['eval_episodes']} greedy episodes on {summary['judge']}: mean return {mean:.1f}")
    if summary["events"]:
        print(f"events: {json.dumps(summary['events'])}")
    print(f"wrote {out}/metrics.csv, {out}/summary.json, {out}/model.safetensors and the plot {summary.get('curve')}")
