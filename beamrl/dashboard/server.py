"""The dashboard's web server: one page, a WebSocket of live updates, a small JSON API.

    async with Dashboard(node, port=8080) as dash:     # in the node's own event loop
        print(dash.url)

Every ``period`` seconds it polls the cluster (``ClusterView``), the trainer's
recorder when there is one (``LearningFeed``) and one environment process, and
pushes what changed to every open page over ``/ws``:

    {"type": "hello", ...}     once per page: the whole state so far
    {"type": "update", "cluster": [...], "events": [new...], "learning": {...} | null,
     "watch": {...} | null, "time": ...}

Routes: ``/`` (the page), ``/static/<file>``, ``/ws``, ``GET /api/state`` (the hello
as JSON) and, only with ``allow_control``, ``POST /api/control`` with JSON
``{"action": "stop" | "kill", "pid": "node/id/creation"}``.

Safe by default: it binds 127.0.0.1, and its page may not be framed nor load anything
from elsewhere (Content-Security-Policy). On any other address it needs a token (one is
generated and printed when none is given), asked for on every request and on the
WebSocket: ``?token=...`` (the page then keeps it in a strict same-site cookie) or
the ``X-Beamrl-Token`` header. On loopback it answers only requests whose Host is a
loopback name (no DNS rebinding), and WebSockets and control requests must come
from its own origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from beamrl.dashboard.cluster import ClusterView, parse_pid_key
from beamrl.dashboard.learning import LearningFeed, watch
from beamrl.errors import BeamError
from beamrl.node import Node

log = logging.getLogger("beamrl.dashboard")

STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "LICENSE.txt": "text/plain"}
_COOKIE = "beamrl_token"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
#: the page loads nothing from elsewhere, cannot be framed (its buttons kill processes) and leaks no token
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to bind) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _static(name: str) -> bytes:
    return resources.files("beamrl.dashboard").joinpath("static", name).read_bytes()


class Dashboard:
    """Serves the live page of ``node``'s cluster from ``node``'s event loop."""

    def __init__(
        self,
        node: Node,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        token: str | None = None,
        allow_control: bool = False,
        period: float = 0.5,
        recorder: Any = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must lie in 0..65535, got {port}")
        if not period > 0:
            raise ValueError(f"period must be > 0 seconds, got {period!r}")
        self.node = node
        self.host = host
        self.port = port
        self.loopback = is_loopback(host)
        if token is None and not self.loopback:
            token = secrets.token_urlsafe(18)
        self.token = token
        self.allow_control = allow_control
        self.period = period
        self.cluster = ClusterView(node)
        self._recorder = recorder  # None: the first process registered as "recorder" anywhere
        self.learning: LearningFeed | None = None
        self._watch: dict[str, Any] | None = None
        self._clients: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()  # a page gets its hello, then every update after it: none twice

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Dashboard:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> str:
        """Poll once, then listen; returns the page's URL (with its token)."""
        await self.cluster.start()
        await self._tick()
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{file}", self._static)
        app.router.add_get("/favicon.ico", _no_content)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/api/state", self._state)
        app.router.add_post("/api/control", self._control)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="beamrl-dashboard")
        return self.url

    async def close(self) -> None:
        """Stop polling, close the pages' sockets, stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.cluster.close()
        for ws in list(self._clients):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"/?token={self.token}" if self.token else "/"
        return f"http://{host}:{self.port}{query}"

    # -- polling ----------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self._tick()
            except Exception:  # the page's boundary: a bad reply must not freeze the page for good
                log.exception("dashboard: this update failed; the next one is in %s s", self.period)
            await asyncio.sleep(max(0.05, self.period - (time.monotonic() - started)))

    async def _tick(self) -> dict[str, Any]:
        async with self._sending:  # a page that opens meanwhile gets its hello after this update
            await self.cluster.poll()
            feed = self._feed()
            learning = await feed.poll() if feed is not None else None
            self._watch = await self._poll_watch()
            update = {
                "type": "update",
                "time": time.time(),
                "cluster": self.cluster.state(),
                "events": self.cluster.take_events(),
                "learning": learning,
                "watch": self._watch,
            }
            if self._clients:
                text = json.dumps(update, separators=(",", ":"))
                await asyncio.gather(*(self._send(ws, text) for ws in list(self._clients)))
        return update

    def _feed(self) -> LearningFeed | None:
        if self.learning is None:
            target = self._recorder
            if target is None:
                found = self.cluster.find(lambda e: e["name"] == "recorder")
                if not found:
                    return None
                target = ("recorder", found[0][0])
            self.learning = LearningFeed(self.node, target)
        return self.learning

    async def _poll_watch(self) -> dict[str, Any] | None:
        # an EnvServer, or a training Worker (it owns its env and answers the same info/render/observe)
        found = self.cluster.find(lambda e: e["cls"] in ("EnvServer", "Worker"))
        if not found:
            return None
        found.sort(key=lambda f: (f[1]["name"] not in ("env-0", "worker-0"), f[1]["name"] or "", f[0]))
        node, entry = found[0]
        state = await watch(self.node, parse_pid_key(entry["key"]))
        if state is None:
            return None
        return {**state, "node": node, "name": entry["name"], "pid": entry["pid"]}

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            await asyncio.wait_for(ws.send_str(text), timeout=self.period * 4)
        except (ConnectionError, RuntimeError):  # the page went away between two ticks
            self._clients.discard(ws)
        except TimeoutError:  # a page that cannot keep up is dropped; it reconnects and starts afresh
            self._clients.discard(ws)
            await ws.close()

    def hello(self) -> dict[str, Any]:
        """Everything a page that opens now needs."""
        return {
            "type": "hello",
            "node": self.node.name,
            "allow_control": self.allow_control,
            "period": self.period,
            "cluster": self.cluster.state(),
            "events": list(self.cluster.events),
            "learning": self.learning.history() if self.learning is not None else None,
            "watch": self._watch,
        }

    # -- safety -------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.loopback and (request.url.host or "") not in _LOOPBACK_NAMES:
            return web.Response(status=403, text="this dashboard answers only to http://127.0.0.1 or localhost\n")
        if self.token is not None and not self._has_token(request):
            return web.Response(
                status=401,
                text="this dashboard needs its token: open the URL it printed at start (.../?token=...)\n",
            )
        response: web.StreamResponse = await handler(request)
        response.headers.update(_HEADERS)
        return response

    def _has_token(self, request: web.Request) -> bool:
        assert self.token is not None
        given = request.query.get("token") or request.headers.get("X-Beamrl-Token") or request.cookies.get(_COOKIE)
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser page: tools and tests (the token still applies)
        return urlsplit(origin).netloc == request.host

    # -- handlers ---------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        response = web.Response(body=_static("index.html"), content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        if self.token is not None:
            response.set_cookie(_COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound(text=f"no static file {name!r}\n")
        return web.Response(body=_static(name), content_type=STATIC_FILES[name])

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.hello())

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if not self._same_origin(request):
            return web.Response(status=403, text="WebSocket from another origin refused\n")
        ws = web.WebSocketResponse(heartbeat=10.0)
        await ws.prepare(request)
        async with self._sending:
            await ws.send_str(json.dumps(self.hello(), separators=(",", ":")))
            self._clients.add(ws)
        try:
            async for msg in ws:  # the page sends nothing we act on; read until it closes
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._clients.discard(ws)
        return ws

    async def _control(self, request: web.Request) -> web.StreamResponse:
        if not self.allow_control:
            return _error(403, "control is off: start the dashboard with --allow-control to stop or kill processes")
        if not self._same_origin(request):
            return _error(403, "control requests from another origin are refused")
        if request.content_type != "application/json":
            return _error(415, "control requests are JSON: Content-Type: application/json")
        try:
            body = await request.json()
            action = body["action"]
            pid = parse_pid_key(body["pid"])
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f'expected {{"action": "stop" | "kill", "pid": "node/id/creation"}}: {exc}')
        if action not in ("stop", "kill"):
            return _error(400, f"action must be 'stop' or 'kill', got {action!r}")
        if not self.cluster.knows(pid.node):
            return _error(404, f"no node {pid.node!r} in this cluster")
        self.node.events.record("control", f"{action} {pid} from the dashboard", pid=pid)
        if action == "kill":
            self.node.kill(pid)
        else:
            try:
                await self.node.stop(pid, "shutdown", timeout=5.0)
            except BeamError as exc:
                return _error(409, f"could not stop {pid}: {exc}")
        return web.json_response({"ok": True, "action": action, "pid": str(pid)})


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)
