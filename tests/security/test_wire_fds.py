"""Out of file descriptors (EMFILE): the node logs it, frees what it can, and keeps serving."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

from beamrl import Node

CROWDED = textwrap.dedent(
    """
    import asyncio, resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    from beamrl import Node

    async def main():
        async with Node("crowded", listen="tcp://127.0.0.1:0") as node:
            print("listening on", node.address, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


def _crowded() -> subprocess.Popen[str]:
    """A node in a child process that has 64 file descriptors; stops when its stdin closes."""
    return subprocess.Popen(
        [sys.executable, "-c", CROWDED],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(child: subprocess.Popen[str]) -> tuple[int, str]:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    output = child.stdout.read()
    return child.wait(20), output


async def test_a_node_out_of_descriptors_keeps_serving() -> None:
    child = _crowded()
    flood: list[socket.socket] = []
    try:
        assert child.stdout is not None and child.stdin is not None
        address = child.stdout.readline().split()[-1]
        port = int(address.rsplit(":", 1)[1])
        for _ in range(150):  # more connections than it has descriptors, none says hello
            try:
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=5.0))
            except ConnectionRefusedError:  # a loaded machine's kernel may refuse once the accept queue is full
                break
        assert len(flood) > 64, f"only {len(flood)} connections: the node's 64 descriptors were never used up"
        async with Node("visitor") as visitor:
            assert await visitor.connect(address, timeout=20.0) == "crowded"
        code, output = _stop(child)
        assert code == 0, output
    finally:
        for s in flood:
            s.close()
        if child.poll() is None:
            child.kill()
            child.wait(10)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
    assert "could not accept a connection: Too many open files (out of file descriptors" in output
    assert output.count("could not accept") < 50, output[-2000:]  # rate-limited: counts, not lines
