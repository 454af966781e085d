"""Every ``examples/*.py`` runs to completion as a user would run it.

Each script runs as ``python examples/NAME.py`` in a scratch directory, with a time limit,
and must exit 0 having printed something. A script tunes its smoke test with lines in its
module docstring (read with ``ast``, never imported here)::

    Smoke test: --quick --episodes 20     arguments for the smoke run (shell syntax)
    Smoke expect: sensor kept counting    text its output must contain (repeatable)
    Smoke timeout: 60                     seconds before it counts as hung (default 60)

New scripts are picked up by the glob; ``examples/README.md`` must mention each of them.
"""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import ROOT

EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


@dataclass
class Smoke:
    """How to smoke-test one script, as its docstring declares."""

    args: list[str] = field(default_factory=list)
    """Command-line arguments for the run."""
    expect: list[str] = field(default_factory=list)
    """Text the combined output must contain."""
    timeout: float = 60.0
    """Seconds before the run counts as hung."""


def smoke_of(script: Path) -> Smoke:
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"), str(script))) or ""
    smoke = Smoke()
    for line in doc.splitlines():
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        match key.strip().lower():
            case "smoke test":
                smoke.args = shlex.split(value)
            case "smoke expect":
                smoke.expect.append(value.strip())
            case "smoke timeout":
                smoke.timeout = float(value)
    return smoke


def test_there_are_examples_and_the_index_lists_each_one() -> None:
    assert SCRIPTS, f"no scripts found in {EXAMPLES}"
    index = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in SCRIPTS if p.name not in index]
    assert not missing, f"examples/README.md should have a line for each of {missing}"


def test_smoke_declarations_are_read_from_the_docstring(tmp_path: Path) -> None:
    script = tmp_path / "demo.py"
    script.write_text(
        '"""A demo.\n\n    Smoke test: --quick --name "two words"\n    Smoke expect: done\n'
        '    Smoke expect: all good\n    Smoke timeout: 12.5\n"""\nprint("done")\n',
        encoding="utf-8",
    )
    assert smoke_of(script) == Smoke(["--quick", "--name", "two words"], ["done", "all good"], 12.5)
    script.write_text('print("no docstring")\n', encoding="utf-8")
    assert smoke_of(script) == Smoke()


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs_to_completion(script: Path, tmp_path: Path) -> None:
    smoke = smoke_of(script)
    command = [sys.executable, str(script), *smoke.args]
    try:
        result = subprocess.run(
            command,
            cwd=tmp_path,  # examples must not depend on the current directory, nor litter the tree
            env=dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=smoke.timeout,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{shlex.join(command)} did not finish within {smoke.timeout} s; output so far:\n{exc.output}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{shlex.join(command)} exited {result.returncode}:\n{output}"
    assert result.stdout.strip(), f"{script.name} printed nothing:\n{output}"
    for text in smoke.expect:
        assert text in output, f"{script.name}: expected {text!r} in its output:\n{output}"
