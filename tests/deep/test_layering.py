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
    "beamrl.rl.deep.served_env",
    "beamrl.rl.deep.env_servers",
    "beamrl.rl.deep.evaluate",
    "beamrl.rl.deep.metrics",
    "beamrl.cli",
]


def test_torch_free_modules_do_not_import_torch() -> None:
    code = "import importlib, sys\n"
    code += "".join(f"importlib.import_module({m!r})\n" for m in TORCH_FREE)
    code += "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:3])\n"
    code += "import beamrl.rl.deep.learner\n"  # and the check can fail: the learner does pull torch in
    code += "print('torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    free, learner = out.stdout.strip().splitlines()
    assert free == "[]", f"torch was imported by a torch-free module: {free}"
    assert learner == "True"
