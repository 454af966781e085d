"""``beamrl node start --stop-with-parent``: a node a program starts does not outlive it.

The trainer's actor nodes run in their own session (a Ctrl-C reaches only the trainer,
which stops them); should the trainer die without stopping them, they stop by themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = """
import sys, time
from beamrl.launch import NodeProcess
node = NodeProcess("orphan", "--stop-with-parent", own_session=True)
print(node.proc.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running (an exited process that nobody reaped yet, a zombie, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads a process's state from /proc")
def test_a_node_started_with_stop_with_parent_stops_when_its_parent_dies(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)  # no goodbye: the node must notice by itself
        parent.wait(10)
        deadline = time.monotonic() + 60
        while _alive(child):
            status = Path(f"/proc/{child}/status").read_text()[:400]
            assert time.monotonic() < deadline, f"the node outlived the process that started it:\n{status}"
            time.sleep(0.05)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
        parent.stdout.close()
