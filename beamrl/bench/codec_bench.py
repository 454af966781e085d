"""``beamrl bench codec``: decode speed, and what one hostile message can cost a node.

Rows:

- decode time of typical messages (a call, an ``Exp``, 50 tabular steps, a dict of
  512-row columns, 10k floats, a 1 MB array out of band), best of 5;
- the worst memory one accepted message costs per byte of its body: for each of the
  densest shapes (one-entry dicts, empty lists, floats), the largest message of about
  ``ATTACK_BYTES`` (3 MB, where the object budget peaks) that the default ``Limits``
  accept (and one 48 MB bytes value), decoded in a fresh interpreter
  whose RSS is read before and after (the value kept alive);
- the longest event-loop stall one such message causes on the node receiving it: a
  peer in another OS process sends it, and a probe on the receiver's loop (a 1 ms
  sleep in a loop) records its largest lateness while the message is decoded and
  delivered (bodies up to ``INLINE_BYTES`` are decoded on the loop itself: the "on the
  loop" row is the densest such). The baseline row is the probe's own lateness with
  nothing arriving.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import numpy as np

from beamrl import codec
from beamrl.bench.report import Row
from beamrl.codec.core import object_budget
from beamrl.gen_server import GenServer
from beamrl.inbound import INLINE_BYTES
from beamrl.launch import NodeProcess
from beamrl.node import Node
from beamrl.node import run as run_on_uvloop
from beamrl.pid import Pid
from beamrl.rl.exp import Exp
from beamrl.testing import eventually

_LIM = codec.DEFAULT_LIMITS
#: where the object budget reaches ``max_objects``: the body size with the most objects per byte
ATTACK_BYTES = _LIM.bytes_per_object * (_LIM.max_objects - _LIM.object_allowance)
# the "one big bytes" message: a copy, no objects; inside the 64 MiB send window (a cast beyond it is dropped)
BIG_BYTES = 48 << 20
SHAPES = ("one-entry dicts", "empty lists", "floats", "one big bytes")
# per item: (wire bytes, objects counted: the item in its list, plus itself and its items)
_ITEMS = {"one-entry dicts": (3, 4), "empty lists": (1, 2), "floats": (9, 1)}


def attack(shape: str, size: int) -> list[Any]:
    """The value whose encoding is the densest message of about ``size`` bytes accepted."""
    if shape == "one big bytes":
        return [bytes(size)]
    wire, counted = _ITEMS[shape]
    if shape == "floats":
        size = max(size, wire * _LIM.max_objects)  # room for the longest list accepted
    count = (object_budget(size, codec.DEFAULT_LIMITS) - 16) // counted
    count = min(count, size // wire)
    item: Any = {0: 0} if shape == "one-entry dicts" else [] if shape == "empty lists" else 0.5
    return [[item] * count if shape != "empty lists" else [[] for _ in range(count)], bytes(size - count * wire)]


def _decode_times() -> list[Row]:
    pid = Pid("alpha", 7, 1)
    messages = {
        "a call": ["call", 12345, pid, "env", ["step", 1]],
        "a reply carrying an Exp": ["reply", 12345, True, Exp(3, 1, 0.0, 4, False, False, {})],
        "a cast of 50 tabular Exp": ["cast", "replay", ["add_batch", [Exp(3, 1, 0.0, 4, False, False, {})] * 50]],
        "a reply of 6 columns x 512 rows": ["reply", 1, True, {k: np.arange(512.0) for k in "abcdef"}],
        "a cast of 10k floats": ["cast", "x", [0.5] * 10_000],
        "a reply of a 1 MB array (out of band)": ["reply", 1, True, np.zeros(1 << 17)],
    }
    rows = []
    for name, value in messages.items():
        frames = [bytes(f) for f in codec.encode(value)]
        n = max(1, 100_000 // (1 + len(frames[0])))
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                codec.decode(frames)
            best = min(best, (time.perf_counter() - start) / n)
        rows.append({"name": f"decode {name}", "value": best * 1e6, "unit": "us", "note": f"{len(frames[0])} B body"})
    return rows


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def rss_ratio(shape: str, size: int) -> float:
    """Run in a fresh interpreter: RSS growth per body byte decoding ``attack(shape, size)``."""
    body = codec.packb(attack(shape, size))
    before = _rss_bytes()
    value = codec.unpackb(body)
    grown = _rss_bytes() - before
    del value
    return grown / len(body)


def _rss_rows() -> list[Row]:
    rows = []
    for shape in SHAPES:
        out = subprocess.run(
            [sys.executable, "-m", "beamrl.bench.codec_bench", "--rss", shape, str(ATTACK_BYTES)],
            capture_output=True,
            text=True,
            check=True,
        )
        ratio = float(out.stdout.split()[-1])
        rows.append(
            {"name": f"decoded RSS per body byte, {shape}", "value": ratio, "unit": "x", "note": "largest accepted"}
        )
    return rows


class Attacker(GenServer):
    """Runs in the peer: sends the attack messages it is asked for."""

    async def handle_call(self, request: Any, from_: Any) -> Any:
        shape, size, target = request
        value = attack(shape, size)
        self.node.cast(tuple(target), value)
        return len(codec.packb(value))


class Receiver(GenServer):
    """Counts what arrives, keeping nothing."""

    async def init(self) -> None:
        self.got = 0

    async def handle_call(self, request: Any, from_: Any) -> Any:
        return self.got

    async def handle_cast(self, request: Any) -> None:
        self.got += 1


PEER_TREE = """
[[children]]
start = "beamrl.bench.codec_bench:Attacker"
name = "attacker"
"""


async def _probe(lag: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        lag.append(time.perf_counter() - start - 0.001)


def stall_cases() -> list[tuple[str, str, int]]:
    """(row label, shape, body size) of each stall measured; the first is the baseline."""
    sizes = {"one big bytes": BIG_BYTES}
    cases = [(shape, shape, sizes.get(shape, ATTACK_BYTES)) for shape in ("baseline", *SHAPES)]
    cases.insert(1, ("one-entry dicts, on the loop", "one-entry dicts", INLINE_BYTES - 64))
    return cases


async def _stalls(address: str, cases: list[tuple[str, str, int]]) -> list[Row]:
    rows = []
    async with Node("victim", listen="tcp://127.0.0.1:0") as node:
        await node.start(Receiver, name="receiver")
        await node.connect(address)
        attacker = ("attacker", "bench-attacker")
        for label, shape, attack_bytes in cases:
            lag: list[float] = []
            stop = asyncio.Event()
            probe = asyncio.create_task(_probe(lag, stop))
            got = await node.call("receiver", "got")
            if shape != "baseline":
                size = await node.call(attacker, [shape, attack_bytes, ["receiver", "victim"]], timeout=120)

                async def arrived(before: int = got) -> bool:
                    return bool(await node.call("receiver", "got") != before)

                await eventually(arrived, timeout=120, what=f"the {shape} message")
            else:
                size = 0
                await asyncio.sleep(1.0)
            await asyncio.sleep(0.05)
            stop.set()
            await probe
            rows.append(
                {
                    "name": f"longest loop stall, {label}",
                    "value": max(lag) * 1e3,
                    "unit": "ms",
                    "note": f"{size / 1e6:.1f} MB message" if size else "nothing arriving",
                }
            )
    return rows


def run(quick: bool = False) -> list[Row]:
    rows = _decode_times() + _rss_rows()
    with NodeProcess("bench-attacker", tree_text=PEER_TREE) as peer:
        rows += run_on_uvloop(_stalls(peer.address, stall_cases()))
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rss"]:
        print(rss_ratio(sys.argv[2], int(sys.argv[3])))
    else:
        from beamrl.bench.report import format_rows  # the script form only

        print(format_rows(run(quick="--quick" in sys.argv)))
