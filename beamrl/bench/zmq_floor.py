"""Floors for the ZeroMQ transport: raw pyzmq against ``ZmqTransport``, two OS processes.

Each ``measure_*`` function starts a helper process (spawn context), measures on
loopback and returns one number; ``run()`` returns rows
``{"name", "value", "unit", "note"}``.  Both sides use uvloop when it is importable.

    python -m beamrl.bench.zmq_floor
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgpack
import zmq
import zmq.asyncio

from beamrl.errors import Backpressure
from beamrl.transport import PeerInfo, ZmqTransport

LOCAL = "tcp://127.0.0.1:*"
_REQUEST = ["call", ["step", 1], 42]


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _with_helper(target: Callable[..., None], body: Callable[[str], Any], *args: Any) -> Any:
    """Start ``target(conn, *args)`` in a spawned process; it sends its address first."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("benchmark helper process did not start")
        address = parent.recv()
        return body(address)
    finally:
        proc.kill()
        proc.join(10)
        parent.close()
        child.close()


# ---------------------------------------------------------------- raw pyzmq


def _raw_echo_server(conn: Any) -> None:
    async def main() -> None:
        ctx = zmq.asyncio.Context()
        s = ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, 0)
        s.bind(LOCAL)
        conn.send(s.getsockopt_string(zmq.LAST_ENDPOINT))
        try:
            while True:
                rid, payload = await s.recv_multipart()
                msg = msgpack.unpackb(payload)
                await s.send_multipart([rid, msgpack.packb(["reply", msg[2], msg[1]])])
        finally:
            s.close(0)
            ctx.term()

    _run(main())


def measure_raw_echo(n: int = 5000) -> float:
    """Sequential msgpack round trips/s: asyncio DEALER -> ROUTER echo in another process."""

    def body(address: str) -> float:
        async def main() -> float:
            ctx = zmq.asyncio.Context()
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(address)
            try:
                for _ in range(200):  # warm-up
                    await s.send(msgpack.packb(_REQUEST))
                    msgpack.unpackb(await s.recv())
                t0 = time.perf_counter()
                for _ in range(n):
                    await s.send(msgpack.packb(_REQUEST))
                    msgpack.unpackb(await s.recv())
                return n / (time.perf_counter() - t0)
            finally:
                s.close(0)
                ctx.term()

        return float(_run(main()))

    return float(_with_helper(_raw_echo_server, body))


def _raw_push_server(conn: Any, n: int) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(LOCAL)
    conn.send(s.getsockopt_string(zmq.LAST_ENDPOINT))
    conn.recv()  # go
    payload = msgpack.packb(_REQUEST)
    for _ in range(n):
        s.send(payload)
    conn.recv()  # done
    s.close(0)
    ctx.term()


def measure_raw_push_pull(n: int = 300_000) -> float:
    """One-way messages/s: PUSH in another process -> PULL here (sync pyzmq, msgpack decode)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_raw_push_server, args=(child, n), daemon=True)
    proc.start()
    zctx = zmq.Context()
    s = zctx.socket(zmq.PULL)
    s.setsockopt(zmq.LINGER, 0)
    try:
        if not parent.poll(60):
            raise RuntimeError("benchmark helper process did not start")
        s.connect(parent.recv())
        parent.send("go")
        msgpack.unpackb(s.recv())
        t0 = time.perf_counter()
        for _ in range(n - 1):
            msgpack.unpackb(s.recv())
        rate = (n - 1) / (time.perf_counter() - t0)
        parent.send("done")
        return rate
    finally:
        s.close(0)
        zctx.term()
        proc.kill()
        proc.join(10)
        parent.close()
        child.close()


# ---------------------------------------------------------------- ZmqTransport


class _Handler:
    def __init__(self, on_message: Callable[[str, list[Any]], None]) -> None:
        self.on_message = on_message
        self.up: asyncio.Event | None = None

    def on_peer_up(self, peer: str, info: PeerInfo) -> None:
        if self.up is not None:
            self.up.set()

    def on_peer_down(self, peer: str, reason: str) -> None:
        pass


def _transport_server(conn: Any, mode: str) -> None:
    async def main() -> None:
        t = ZmqTransport("server", 1, listen=LOCAL, hwm=100_000)
        count = 0

        def echo(peer: str, frames: list[Any]) -> None:
            msg = msgpack.unpackb(frames[0])
            t.send(peer, [msgpack.packb(["reply", msg[2], msg[1]])])

        def sink(peer: str, frames: list[Any]) -> None:
            nonlocal count
            msg = msgpack.unpackb(frames[0])
            count += 1
            if msg[0] == "last":
                t.send(peer, [msgpack.packb(count)])
                count = 0

        await t.start(_Handler(echo if mode == "echo" else sink))
        conn.send(t.address)
        try:
            await asyncio.Event().wait()
        finally:
            await t.close()

    _run(main())


def measure_transport_echo(n: int = 5000) -> float:
    """Sequential msgpack round trips/s through two ZmqTransports in two processes."""

    def body(address: str) -> float:
        async def main() -> float:
            loop = asyncio.get_running_loop()
            waiter: list[asyncio.Future[Any]] = []

            def on_message(peer: str, frames: list[Any]) -> None:
                waiter.pop().set_result(msgpack.unpackb(frames[0]))

            t = ZmqTransport("client", 1)
            await t.start(_Handler(on_message))
            try:
                await t.connect(address)

                async def one() -> None:
                    f = loop.create_future()
                    waiter.append(f)
                    t.send("server", [msgpack.packb(_REQUEST)])
                    await f

                for _ in range(200):
                    await one()
                t0 = time.perf_counter()
                for _ in range(n):
                    await one()
                return n / (time.perf_counter() - t0)
            finally:
                await t.close()

        return float(_run(main()))

    return float(_with_helper(_transport_server, body, "echo"))


def measure_transport_oneway(n: int = 300_000) -> float:
    """One-way msgpack messages/s through ZmqTransport (sender here, counting receiver there)."""

    def body(address: str) -> float:
        async def main() -> float:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[Any] = loop.create_future()

            def on_message(peer: str, frames: list[Any]) -> None:
                if not done.done():
                    done.set_result(msgpack.unpackb(frames[0]))

            t = ZmqTransport("client", 1, hwm=100_000)
            await t.start(_Handler(on_message))
            try:
                await t.connect(address)
                payload = msgpack.packb(_REQUEST)
                t0 = time.perf_counter()
                sent = 0
                while sent < n - 1:
                    try:
                        t.send("server", [msgpack.packb(_REQUEST) if sent & 1 else payload])
                        sent += 1
                    except Backpressure:
                        await asyncio.sleep(0.0005)
                    if sent % 5000 == 0:
                        await asyncio.sleep(0)  # let heartbeats run
                while True:
                    try:
                        t.send("server", [msgpack.packb(["last"])])
                        break
                    except Backpressure:
                        await asyncio.sleep(0.001)
                count = await asyncio.wait_for(done, 120)
                elapsed = time.perf_counter() - t0
                if count != n:
                    raise RuntimeError(f"receiver counted {count} of {n} messages")
                return n / elapsed
            finally:
                await t.close()

        return float(_run(main()))

    return float(_with_helper(_transport_server, body, "sink"))


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure every floor; rows ``{"name", "value", "unit", "note"}`` (ratios included)."""
    k = 5 if quick else 1
    loop = _loop_name()
    raw_echo = measure_raw_echo(5000 // k)
    tr_echo = measure_transport_echo(5000 // k)
    raw_push = measure_raw_push_pull(300_000 // k)
    tr_push = measure_transport_oneway(300_000 // k)
    note = f"two OS processes, loopback, msgpack, {loop}"
    return [
        {"name": "raw_zmq_echo", "value": raw_echo, "unit": "round trips/s", "note": note},
        {"name": "transport_echo", "value": tr_echo, "unit": "round trips/s", "note": note},
        {"name": "transport_echo_ratio", "value": tr_echo / raw_echo, "unit": "x raw", "note": "target >= 0.8"},
        {"name": "raw_zmq_push_pull", "value": raw_push, "unit": "msgs/s", "note": note},
        {"name": "transport_oneway", "value": tr_push, "unit": "msgs/s", "note": note},
        {
            "name": "transport_oneway_ratio",
            "value": tr_push / raw_push,
            "unit": "x raw",
            "note": "target >= 200,000 msgs/s",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:24s} {row['value']:>12,.2f} {row['unit']:14s} {row['note']}")
