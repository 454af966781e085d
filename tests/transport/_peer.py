"""A transport in its own OS process, for the multi-process tests and benchmarks.

usage: python _peer.py NAME LISTEN CREATION [KEYS|-] [JOIN]
Connects to JOIN when given, prints its address on stdout, then echoes every data
message back to its sender.
"""

import asyncio
import sys

from beamrl.transport import PeerInfo, ZmqTransport


class Echo:
    def __init__(self) -> None:
        self.t: ZmqTransport | None = None

    def on_message(self, peer: str, frames: list) -> None:
        assert self.t is not None
        self.t.send(peer, frames)

    def on_peer_up(self, peer: str, info: PeerInfo) -> None:
        pass

    def on_peer_down(self, peer: str, reason: str) -> None:
        pass


async def main() -> None:
    name, listen, creation = sys.argv[1], sys.argv[2], int(sys.argv[3])
    keys = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    join = sys.argv[5] if len(sys.argv) > 5 else None
    h = Echo()
    t = ZmqTransport(name, creation, listen=listen, keys=keys, heartbeat_interval=0.2, heartbeat_timeout=1.0)
    h.t = t
    await t.start(h)
    if join is not None:
        await t.connect(join)
    print(t.address, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await t.close()


if __name__ == "__main__":
    asyncio.run(main())
