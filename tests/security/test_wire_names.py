"""A name taken by another node: the real node wins under CURVE; both are told under the cookie."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from beamrl.errors import NodeDown
from beamrl.testing import eventually
from beamrl.transport import generate_keys
from tests.transport.test_zmq_transport import started


async def test_two_nodes_with_one_name_are_both_told(caplog: pytest.LogCaptureFixture) -> None:
    a, ra = await started("a")
    b, _ = await started("b")
    b2, _ = await started("b", creation=2, listen=None)
    try:
        assert await b.connect(a.address or "") == "a"
        with caplog.at_level(logging.WARNING, logger="beamrl.transport"):
            with pytest.raises(
                NodeDown, match=r"'b' is already connected \(listening at tcp://.*two nodes with one name"
            ):
                await b2.connect(a.address or "", timeout=2.0)
            await eventually(
                lambda: any("refused another node claiming our name" in r.getMessage() for r in caplog.records),
                what="the holder of the name to be told",
            )
        told = [r.getMessage() for r in caplog.records if r.name == "beamrl.transport"]
        assert any("refused our hello: node 'b' is already connected" in m for m in told)  # the claimant's log
        assert a.peer_info("b") is not None and a.peer_info("b").creation == 1  # type: ignore[union-attr]
        assert ra.down == []
    finally:
        await b2.close()
        await b.close()
        await a.close()


async def test_under_curve_the_real_node_takes_its_name_back_at_once(tmp_path: Path) -> None:
    keys = {n: tmp_path / n for n in ("a", "b")}
    for n, d in keys.items():
        generate_keys(d, n)
    shutil.copy(keys["a"] / "a.key", keys["b"])
    shutil.copy(keys["b"] / "b.key", keys["a"])
    a, ra = await started("a", keys=keys["a"])
    b, _ = await started("b", keys=keys["b"], listen=None)
    back, _ = await started("b", creation=2, keys=keys["b"], listen=None)  # b restarted, old path not yet timed out
    try:
        assert await b.connect(a.address or "") == "a"
        assert await back.connect(a.address or "", timeout=5.0) == "a"
        assert a.peer_info("b").creation == 2  # type: ignore[union-attr]
        assert ("b", "noconnection") in ra.down
    finally:
        await back.close()
        await b.close()
        await a.close()
