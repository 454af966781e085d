from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from beamrl import Node


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Run async tests on uvloop, the loop beamrl uses in production, where it exists."""
    if sys.platform == "win32":
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with Node("test") as n:
        yield n
