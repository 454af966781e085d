"""``--env-server``: the ``EnvServer`` processes a deep run steps instead of environments of its own.

    targets = parse_env_servers(["local", "cartpole@tcp://192.168.1.20:7001"])
    servers = EnvServers("CartPole-v1", targets, wait=DEFAULT_WAIT)
    await servers.connect(node)          # remote ones: connect, check the spaces (refuses before anything is written)
    children = servers.children()        # the run's tree starts an EnvServer per ``local`` target
    servers.envs                         # what AgentServer / Actor take as ``envs=``: one call target per env
    await servers.watch(node)            # the driver, while the acting process does not answer
    await servers.report(node)           # per server: target, node, steps and episodes (summary.json)

A target is ``local`` (the run starts an ``EnvServer`` for its env id in its own tree,
named ``env<I>``, and steps it by calls: the process boundary without a second machine)
or ``NAME@ADDR``: the process registered as ``NAME`` on the node at ``ADDR``
(``tcp://HOST:PORT``, with ``#NODE`` to insist on the node's name, as ``--attach`` takes
it), e.g. a Raspberry Pi hosting the hardware, started with ``beamrl node start``. One
target per environment of the acting process; the same remote server twice is refused
(two envs would interleave its episodes), and so is a vector ``EnvServer``.

When an env server goes away mid-run: the acting process's next step fails and it
crashes; its supervisor restarts it from its last checkpoint, and the restarted process
waits up to ``wait`` seconds for its servers to answer again (reconnecting to a remote
node), resets them and goes on: the episodes in flight start over. A ``local`` server
is restarted by the same supervisor, so that is a short hiccup. Meanwhile the driver
probes the servers (``watch``): one that has not answered for ``wait`` seconds ends
the run with ``EnvServerLost``, naming it, and the checkpoints stay in the run
directory (``--resume DIR`` continues it, with the servers it was started with).
"""

from __future__ import annotations

import re
import time
from typing import Any, NamedTuple

from beamrl.child_spec import ChildSpec
from beamrl.errors import BeamError, CallTimeout, NodeDown, NoProc, ProcessCrashed
from beamrl.rl.envs import make
from beamrl.supervisor import child

__all__ = ["DEFAULT_WAIT", "EnvServerLost", "EnvServers", "EnvTarget", "parse_env_server", "parse_env_servers"]

DEFAULT_WAIT = 30.0  #: seconds a run waits for an env server that went away (``--env-server-wait``)

_ADDRESS = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[^\s:/#\[\]]+):(\d{1,5})(#[^\s#]+)?$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_UNREACHABLE = (NoProc, NodeDown, CallTimeout, ProcessCrashed)
_PROBE_S = 2.0  #: timeout of one probe, and of connecting again


class EnvServerLost(BeamError, RuntimeError):
    """An env server of the run stopped answering for longer than the run waits for it."""


class EnvTarget(NamedTuple):
    """One ``--env-server``: as given, the server's registered name, its node's address (None: local)."""

    text: str
    name: str
    address: str | None


def parse_env_server(text: str, index: int) -> EnvTarget:
    """``local`` (the run's own ``env<index>``) or ``NAME@tcp://HOST:PORT[#NODE]``."""
    if text == "local":
        return EnvTarget(text, f"env{index}", None)
    name, sep, address = text.partition("@")
    match = _ADDRESS.match(address)
    if not sep or not _NAME.match(name) or match is None or not 0 < int(match.group(2)) <= 65535:
        raise ValueError(
            f"--env-server takes local or NAME@tcp://HOST:PORT (the name the EnvServer is registered under on"
            f" that node, e.g. cartpole@tcp://192.168.1.20:7001), got {text!r}"
        )
    return EnvTarget(text, name, address)


def parse_env_servers(texts: list[str]) -> list[EnvTarget]:
    """Every ``--env-server``, in order; the same remote server twice is refused."""
    targets = [parse_env_server(text, i) for i, text in enumerate(texts)]
    remote = [t.text for t in targets if t.address is not None]
    twice = sorted({t for t in remote if remote.count(t) > 1})
    if twice:
        raise ValueError(
            f"--env-server {twice[0]} is given twice: each env of the agent needs a server of its own"
            " (two would interleave their episodes on one)"
        )
    return targets


class EnvServers:
    """See the module docstring."""

    def __init__(self, env_id: str, targets: list[EnvTarget], wait: float = DEFAULT_WAIT, run_dir: str = "DIR") -> None:
        if wait <= 0:
            raise ValueError(f"--env-server-wait must be a positive number of seconds, got {wait!r}")
        self.env_id, self.targets, self.wait, self.run_dir = env_id, list(targets), float(wait), run_dir
        self.peers: list[str | None] = [None] * len(targets)  #: node name of each remote target
        self._failing: dict[int, tuple[float, str]] = {}  #: target index -> (first failed probe, error)
        self._probed = 0.0

    @property
    def envs(self) -> list[Any]:
        """One call target per env: the local name, or ``(name, node)``."""
        return [t.name if peer is None else (t.name, peer) for t, peer in zip(self.targets, self.peers, strict=True)]

    def children(self) -> list[ChildSpec]:
        """An ``EnvServer`` child per ``local`` target (start them before the acting process)."""
        return [
            child("beamrl.rl.env_server:EnvServer", self.env_id, name=t.name) for t in self.targets if t.address is None
        ]

    async def connect(self, node: Any, timeout: float = 5.0) -> None:
        """Connect to the remote servers, check that each hosts one ``env_id`` (its spaces); else ``ValueError``."""
        want = _spaces_of(self.env_id)
        for i, t in enumerate(self.targets):
            if t.address is None:
                continue
            try:
                self.peers[i] = peer = await node.connect(t.address, timeout=timeout)
                spaces = await node.call((t.name, peer), ["spaces"], timeout=timeout)
                info = await node.call((t.name, peer), ["info"], timeout=timeout)
            except NodeDown as e:
                if "no answer from" not in str(e) or "answers as" in str(e):  # refused, or the wrong node
                    raise NodeDown(f"--env-server {t.text}: {e}") from None
                raise NodeDown(
                    f"--env-server {t.text}: nothing answered at {t.address} within {timeout:g} s: is"
                    " `beamrl node start` running there (and, if it uses CURVE keys, did you pass --keys DIR)?"
                ) from None
            except NoProc:
                raise NoProc(
                    f"--env-server {t.text}: node {peer!r} at {t.address} has no process named {t.name!r}"
                    " (`beamrl ps ADDR` lists its processes)"
                ) from None
            except (CallTimeout, ProcessCrashed) as e:
                raise NodeDown(f"--env-server {t.text}: {t.name!r} did not answer ['spaces']: {e}") from None
            if not isinstance(spaces, dict) or not isinstance(info, dict):
                raise ValueError(f"--env-server {t.text}: {t.name!r} on {peer!r} is not an EnvServer")
            if info.get("num_envs") is not None:
                raise ValueError(
                    f"--env-server {t.text}: {t.name!r} hosts a vector env ({info['num_envs']} copies);"
                    " give one --env-server per copy, each an EnvServer of one env"
                )
            for which in ("observation_space", "action_space"):
                if spaces.get(which) != want[which]:
                    raise ValueError(
                        f"--env-server {t.text}: {t.name!r} hosts {info.get('env_id')!r}, whose {which} is"
                        f" {spaces.get(which)!r}; {self.env_id} has {want[which]!r}: train on the env id the"
                        " server hosts, or point --env-server at a server of this one"
                    )

    async def watch(self, node: Any) -> None:
        """Probe every server (at most once a second); raise ``EnvServerLost`` for one silent for ``wait`` s."""
        now = time.monotonic()
        if now - self._probed < 1.0:
            return
        self._probed = now
        for i, t in enumerate(self.targets):
            error = await self._probe(node, i, t)
            if error is None:
                self._failing.pop(i, None)
                continue
            since, _ = self._failing.setdefault(i, (now, error))
            self._failing[i] = (since, error)
            if now - since >= self.wait:
                where = "this run's own tree" if t.address is None else f"node {self.peers[i]!r} at {t.address}"
                raise EnvServerLost(
                    f"env server {t.name!r} ({where}) has not answered for {self.wait:g} s ({error}): the run"
                    f" stopped; its checkpoints are kept, so once the server is back, --resume {self.run_dir} continues"
                    " it (with the same env servers, unless you give --env-server again)"
                )

    async def _probe(self, node: Any, i: int, t: EnvTarget) -> str | None:
        """None when the server answers; else what went wrong (reconnecting to a remote node first)."""
        try:
            if t.address is not None and self.peers[i] not in node.nodes():
                self.peers[i] = await node.connect(t.address, timeout=_PROBE_S)
            await node.call(self.envs[i], ["info"], timeout=_PROBE_S)
        except _UNREACHABLE as e:
            return f"{type(e).__name__}: {e}"
        return None

    async def report(self, node: Any) -> list[dict[str, Any]]:
        """Per server: the target, its name and node, and the steps and episodes it counts (None if unreachable)."""
        rows = []
        for i, t in enumerate(self.targets):
            try:
                info = await node.call(self.envs[i], ["info"], timeout=_PROBE_S)
            except _UNREACHABLE:
                info = {}
            rows.append(
                {
                    "target": t.text,
                    "name": t.name,
                    "node": self.peers[i] or node.name,
                    "address": t.address,
                    "steps": info.get("steps"),
                    "episodes": info.get("episodes"),
                }
            )
        return rows


def _spaces_of(env_id: str) -> dict[str, Any]:
    env = make(env_id)
    try:
        return {"observation_space": env.observation_space, "action_space": env.action_space}
    finally:
        env.close()
