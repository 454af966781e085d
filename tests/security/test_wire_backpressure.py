"""What is bounded: bytes queued for a peer, and (when asked) a process's mailbox."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from beamrl import GenServer, Node
from beamrl.errors import Backpressure
from beamrl.testing import Host, eventually
from tests import start_peer


async def test_a_stopped_peer_costs_at_most_max_send_bytes() -> None:
    limit = 1 << 20
    body = b"x" * 8000  # small: these travel in batches, and a batch counts its bytes
    with start_peer("stopped") as peer:
        async with Node("sender", max_send_bytes=limit, heartbeat_timeout=60.0) as node:
            await node.connect(peer.address)
            target = ("nobody", "stopped")
            peer.proc.send_signal(signal.SIGSTOP)
            try:
                accepted = 0
                refused: Backpressure | None = None
                for i in range(10 * limit // len(body)):
                    try:
                        node.send(target, body)
                    except Backpressure as exc:
                        refused = exc
                        break
                    accepted += len(body)
                    if i % 16 == 0:
                        await asyncio.sleep(0.001)  # let the batches go out
                assert refused is not None and "not acknowledged yet (max_send_bytes=1048576)" in str(refused)
                assert limit // 2 < accepted <= limit
            finally:
                peer.proc.send_signal(signal.SIGCONT)

            def sends() -> bool:
                try:
                    node.send(target, body)
                except Backpressure:
                    return False
                return True

            await eventually(sends, timeout=10.0, what="the window to reopen once the peer takes its bytes in")


class Slow(GenServer):
    """Takes casts in only when told to: its mailbox fills up."""

    async def init(self) -> None:
        self.gate = asyncio.Event()
        self.seen: list[Any] = []

    async def handle_call(self, request: Any, from_: Any) -> Any:
        if request == ["seen"]:
            return self.seen
        return request

    async def handle_cast(self, request: Any) -> None:
        if request == "open":
            self.gate.set()
            return
        await self.gate.wait()
        self.seen.append(request)

    async def handle_info(self, message: Any) -> None:
        self.seen.append(message)


async def test_a_bounded_mailbox_drops_casts_and_refuses_calls(host: Host) -> None:
    pid = await host.start("tests.security.test_wire_backpressure:Slow", name="slow", max_mailbox=5)
    node = host.node
    node.cast(pid, "blocks")  # taken in, then waits for the gate: the next ones pile up
    await eventually(lambda: _waiting(host, pid, 0), timeout=10.0, what="the first cast to be taken in")
    for i in range(20):
        node.cast(pid, i)
    await eventually(lambda: _dropped(host, pid), timeout=10.0, what="casts beyond the bound to be dropped")
    info = await _info(host, pid)
    assert info["mailbox"] == 5 and info["max_mailbox"] == 5 and info["dropped"] == 15
    with pytest.raises(Backpressure, match=r"max_mailbox=5"):
        await node.call(pid, ["echo"], timeout=5.0)
    node.send(pid, "info beyond the bound")  # dropped too, not raised
    await eventually(lambda: _dropped(host, pid, 16), timeout=10.0, what="the message to be dropped")
    node.kill(pid)  # signals always get in, however full the mailbox
    await eventually(lambda: _gone(host, pid), timeout=10.0, what="the kill to get through")


async def _info(host: Host, pid: Any) -> dict[str, Any]:
    info: dict[str, Any] = await host.process_info(pid)
    return info


async def _dropped(host: Host, pid: Any, at_least: int = 15) -> bool:
    return (await _info(host, pid))["dropped"] >= at_least


async def _waiting(host: Host, pid: Any, n: int) -> bool:
    return (await _info(host, pid))["mailbox"] == n


async def _gone(host: Host, pid: Any) -> bool:
    return await host.process_info(pid) is None


async def test_max_mailbox_must_be_positive() -> None:
    async with Node("mm") as node:
        with pytest.raises(ValueError, match="max_mailbox must be a positive integer"):
            await node.start(Slow, max_mailbox=0)
