"""The secured shell: trusted keys reload while the node runs; refusals say why at once."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from beamrl import Node
from beamrl.errors import NodeDown
from beamrl.ratelog import RateLimitedLog
from beamrl.testing import eventually
from beamrl.transport import generate_keys
from beamrl.transport.curve import AllowList


def _pair(directory: Path, name: str) -> Path:
    public, _ = generate_keys(directory, name)
    return public


async def test_a_newly_trusted_key_is_accepted_without_a_restart(tmp_path: Path) -> None:
    server, client = tmp_path / "server", tmp_path / "client"
    _pair(client, "shell")
    shutil.copy(_pair(server, "a"), client / "a.key")
    _pair(tmp_path / "elsewhere", "other")
    shutil.copy(tmp_path / "elsewhere" / "other.key", client / "other.key")
    async with Node("a", listen="tcp://127.0.0.1:0", keys=server) as a:
        assert a.address is not None
        async with Node("shell", keys=client) as shell:
            with pytest.raises(NodeDown, match=r"key not trusted by 'a'.*copy .*shell\.key into its key directory"):
                await shell.connect(a.address + "#a", timeout=30.0)
            with pytest.raises(NodeDown, match="key not trusted by 'a'"):
                await shell.connect(a.address, timeout=30.0)  # every trusted key tried: each says why
            with pytest.raises(NodeDown, match=r"does not hold the key .*other\.key.*key/name mismatch"):
                await shell.connect(a.address + "#other", timeout=30.0)
        shutil.copy(client / "shell.key", server / "shell.key")  # trust it, node still running

        async def admitted() -> bool:
            async with Node("shell", keys=client) as shell:
                try:
                    return await shell.connect(a.address + "#a", timeout=5.0) == "a"  # type: ignore[operator]
                except NodeDown:
                    return False

        assert await eventually(admitted, timeout=15.0, what="the new key to be trusted")
        (server / "shell.key").unlink()  # and no longer trusted: new connections are refused

        async def refused() -> bool:
            return not await admitted()

        assert await eventually(refused, timeout=15.0, what="the removed key to be refused")


def test_curve_refusals_are_logged_once_a_second_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("beamrl.test.allow")
    allow = AllowList({b"trusted"}, "a", RateLimitedLog(logger, clock=lambda: now[0]))
    with caplog.at_level(logging.WARNING, logger="beamrl.test.allow"):
        for _ in range(50):
            assert not allow.callback("beamrl", b"intruder")
        assert allow.callback("beamrl", b"trusted")
        now[0] = 2.0
        assert not allow.callback("beamrl", b"intruder")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "refused a CURVE client with an untrusted key" in lines[0]
    assert "(51 refused so far)" in lines[1] and "(49 similar dropped)" in lines[1]
