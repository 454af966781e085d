"""A non-editable install carries everything ``beamrl train`` loads at run time.

``pip install`` (not ``-e``) builds a wheel from a copy of the package into a fresh
virtualenv, and ``beamrl train --nodes 3`` runs from an unrelated directory: the actor
nodes it starts load their tree from the installed package, not from this repository.
The fresh environment borrows the dependencies (numpy, pyzmq, ...) from the running one
through a ``.pth`` line; ``beamrl`` itself is checked to be the installed copy. The build
is offline (``--no-index --no-build-isolation``), with the setuptools of the dev extra.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _purelib(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def test_beamrl_train_on_three_nodes_works_from_a_wheel_installed_elsewhere(tmp_path: Path) -> None:
    source = tmp_path / "src"  # only what a wheel is built from: no supervisors/, no tests/
    shutil.copytree(ROOT / "beamrl", source / "beamrl", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = _purelib(python)
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    install += ["--no-deps", "--no-index", "--no-build-isolation", str(source)]
    built = subprocess.run(install, capture_output=True, text=True, env=clean, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (site / "beamrl" / "trees" / "actor_node.toml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import beamrl; print(beamrl.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=clean,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout

    script = env_dir / ("Scripts/beamrl.exe" if os.name == "nt" else "bin/beamrl")
    command = [str(script), "train", "q-learning", "FrozenLake-v1", "--nodes", "3", "--episodes", "300"]
    command += ["--out", "run", "--quiet", "--final-eval-episodes", "100"]
    result = subprocess.run(command, cwd=elsewhere, capture_output=True, text=True, env=clean, timeout=120)
    out = elsewhere / "run"
    logs = "".join(p.read_text() for p in out.glob("*.log")) if out.exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + logs
    for name in ("metrics.csv", "curve.png", "summary.json", "qtable.npz"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nodes"] == 3
    assert summary["episodes"] == 300
    # the two actor nodes ran the packaged tree (the run starts a worker on each, or fails)
    assert sorted(p.name for p in out.glob("*.log")) == ["learner-actor1.log", "learner-actor2.log"]
