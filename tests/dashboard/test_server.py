"""The dashboard's web server in-process: page, WebSocket pushes, control, token, origin checks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from beamrl import Node, child
from beamrl.testing import Counter, eventually

aiohttp = pytest.importorskip("aiohttp", reason="the dashboard extra (aiohttp) is not installed")

from beamrl.dashboard.server import Dashboard, is_loopback  # noqa: E402


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with Node("dash-srv") as n:
        await n.start_supervisor([child(Counter, 0, name="c1"), child(Counter, 0, name="c2")], name="sup")
        yield n


def _find(state: dict[str, Any], name: str) -> dict[str, Any]:
    def walk(entries: list[dict[str, Any]]) -> Any:
        for e in entries:
            if e["name"] == name:
                return e
            found = walk(e["children"])
            if found:
                return found
        return None

    for n in state["cluster"]:
        found = walk(n["tree"] + n["loose"])
        if found:
            return dict(found)
    raise AssertionError(f"{name} is not on the page's state")


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


async def test_page_state_and_static_files(node: Node) -> None:
    async with Dashboard(node, port=0, period=0.1) as dash, aiohttp.ClientSession() as http:
        assert dash.token is None and dash.url == f"http://127.0.0.1:{dash.port}/"
        async with http.get(dash.url) as r:
            assert r.status == 200 and "static/dashboard.js" in await r.text()
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
            assert r.headers["Referrer-Policy"] == "no-referrer"
        async with http.get(f"{dash.url}static/dashboard.js") as r:
            assert r.status == 200 and "new WebSocket" in await r.text()
        async with http.get(f"{dash.url}static/secrets.txt") as r:
            assert r.status == 404
        async with http.get(f"{dash.url}api/state") as r:
            state = await r.json()
        assert _find(state, "c1")["restarts"] == 0 and _find(state, "sup")["cls"] == "Supervisor"
        assert state["allow_control"] is False and state["cluster"][0]["status"] == "up"


async def test_updates_are_pushed_over_the_websocket(node: Node) -> None:
    async with (
        Dashboard(node, port=0, period=0.1) as dash,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{dash.url}ws") as ws,
    ):
        hello = json.loads((await ws.receive()).data)
        assert hello["type"] == "hello" and _find(hello, "c2")["pid"] == str(node.whereis("c2"))
        with pytest.raises(Exception, match="pushed"):
            await node.call("c2", ["crash", "pushed"])
        seen: list[dict[str, Any]] = []
        restarts = 0
        while restarts < 1 or not any(e["kind"] == "crash" for e in seen):
            update = json.loads((await ws.receive(timeout=5.0)).data)
            assert update["type"] == "update"
            seen += update["events"]
            restarts = _find(update, "c2")["restarts"]
        crash = next(e for e in seen if e["kind"] == "crash")
        assert crash["exc_type"] == "RuntimeError" and crash["exc_message"] == "pushed" and crash["name"] == "c2"


async def test_control_is_off_by_default(node: Node) -> None:
    async with Dashboard(node, port=0) as dash, aiohttp.ClientSession() as http:
        key = _find(dash.hello(), "c1")["key"]
        async with http.post(f"{dash.url}api/control", json={"action": "kill", "pid": key}) as r:
            assert r.status == 403 and "--allow-control" in (await r.json())["error"]
    assert node.whereis("c1") is not None and (await node.which_children("sup"))[0].restarts == 0


async def test_control_kills_and_stops_and_refuses_bad_requests(node: Node) -> None:
    async with Dashboard(node, port=0, allow_control=True, period=0.1) as dash, aiohttp.ClientSession() as http:
        url = f"{dash.url}api/control"
        key = _find(dash.hello(), "c1")["key"]
        async with http.post(url, json={"action": "kill", "pid": key}) as r:
            assert r.status == 200 and (await r.json())["ok"]
        await eventually(lambda: _find(dash.hello(), "c1")["restarts"] == 1, what="c1 restarted on the page")
        key2 = _find(dash.hello(), "c2")["key"]
        async with http.post(url, json={"action": "stop", "pid": key2}) as r:
            assert r.status == 200
        await eventually(lambda: _find(dash.hello(), "c2")["restarts"] == 1, what="c2 restarted on the page")
        assert any(e["kind"] == "control" for e in dash.hello()["events"])
        bad = [
            ({"action": "explode", "pid": key}, 400, "stop' or 'kill"),
            ({"action": "kill", "pid": "nope"}, 400, "node/id/creation"),
            ({"action": "kill"}, 400, "pid"),
            ({"action": "kill", "pid": "elsewhere/1/1"}, 404, "elsewhere"),
        ]
        for body, status, problem in bad:
            async with http.post(url, json=body) as r:
                assert r.status == status and problem in (await r.json())["error"], body
        async with http.post(url, data="action=kill", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        async with http.post(url, json={"action": "kill", "pid": key}, headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403


async def test_loopback_answers_only_loopback_hosts_and_its_own_origin(node: Node) -> None:
    async with Dashboard(node, port=0) as dash, aiohttp.ClientSession() as http:
        async with http.get(dash.url, headers={"Host": "rebound.example"}) as r:
            assert r.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(f"{dash.url}ws", headers={"Origin": "http://evil.example"})


async def test_beyond_loopback_every_request_needs_the_token(node: Node) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for a bare IP address, as browsers do
    async with Dashboard(node, host="0.0.0.0", port=0) as dash, aiohttp.ClientSession(cookie_jar=jar) as http:
        assert dash.token and f"?token={dash.token}" in dash.url
        base = f"http://127.0.0.1:{dash.port}/"
        for path in ("", "api/state", "static/dashboard.js"):
            async with http.get(base + path) as r:
                assert r.status == 401 and "token" in await r.text()
        async with http.get(base, params={"token": "wrong"}) as r:
            assert r.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(f"{base}ws")
        async with http.get(f"{base}api/state", headers={"X-Beamrl-Token": dash.token}) as r:
            assert r.status == 200
        async with http.ws_connect(f"{base}ws", params={"token": dash.token}) as ws:
            assert json.loads((await ws.receive()).data)["type"] == "hello"
        async with http.get(base, params={"token": dash.token}) as r:  # the page keeps the token in a cookie
            assert r.status == 200 and r.cookies["beamrl_token"].value == dash.token
        async with http.get(f"{base}static/dashboard.css") as r:
            assert r.status == 200


def test_bad_settings_are_refused() -> None:
    node = Node("unused")
    with pytest.raises(ValueError, match="port"):
        Dashboard(node, port=70000)
    with pytest.raises(ValueError, match="period"):
        Dashboard(node, period=0)


def test_import_beamrl_needs_no_web_server() -> None:
    code = (
        "import sys, beamrl, beamrl.rl, beamrl.dashboard.cluster, beamrl.dashboard.learning\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_the_bench_sees_each_crash_reach_an_open_page() -> None:
    from beamrl.bench.dashboard_bench import event_latencies

    latencies = await event_latencies(2)
    assert len(latencies) == 2 and all(t > 0 for t in latencies)
