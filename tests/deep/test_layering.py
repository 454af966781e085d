"""``import beamrl`` / ``beamrl.rl`` and the torch-free deep modules never import torch."""

from __future__ import annotations

import subprocess
import sys

TORCH_FREE = [
    "beamrl",
    "beamrl.rl",
    "beamrl.rl.deep",
    "beamrl.rl.deep.config",
    "beamrl.rl.deep.params",
    "beamrl.rl.deep.checkpoint",
    "beamrl.rl.deep.acting",
    "beamrl.rl.deep.actor",
    "beamrl.rl.deep.evaluate",
    "beamrl.cli",
]


def test_torch_free_modules_do_not_import_torch() -> None:
    code = "import importlib, sys\n"
    code += "".join(f"importlib.import_module({m!r})\n" for m in TORCH_FREE)
    code += "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
    code += "print(','.join(bad))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"torch was imported by a torch-free module: {out.stdout.strip()[:200]}"


def test_the_deep_learner_does_import_torch() -> None:
    """The check above can fail: the learner module really pulls torch in."""
    code = "import sys, beamrl.rl.deep.learner\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"
