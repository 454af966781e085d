"""The handshake's messages and decisions, as pure functions (no sockets: tested alone).

The dialling side sends ``hello`` {v, name, creation, address, hidden} over its DEALER;
the listening side answers ``welcome`` {v, name, creation, address, hidden, peers} over
the same connection, or ``reject`` {name, reason}. Exactly one connection carries a
pair's traffic: when both sides dial each other at once, the connection dialled by the
node with the smaller name wins (the other is refused as ``simultaneous``), and a dial
that arrives once the pair already has a path is refused as ``duplicate``.

Without CURVE, both messages carry ``auth``, a MAC that proves knowledge of the cookie
(see ``cookie``): a hello without a valid one is answered with nothing at all.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple

from beamrl.errors import NodeDown
from beamrl.transport import cookie as cookies
from beamrl.transport.base import PeerInfo
from beamrl.transport.framing import MAX_NAME, PROTOCOL_VERSION, pack_control


class Known(NamedTuple):
    """What this node knows of a peer that is up under a name someone claims."""

    creation: int
    dialled_by_us: bool
    """Its path is our DEALER (we dialled it); else a connection on our ROUTER."""
    address: str | None = None
    """Where it listens (None: a client-only node)."""


MAX_WELCOME_PEERS = 64
"""Most peers a welcome announces, and most a dialler dials from one welcome."""


def hello(
    name: str, creation: int, address: str | None, hidden: bool, cookie: bytes | None = None, nonce: bytes = b""
) -> bytes:
    """A hello; with a cookie it carries ``nonce``, the time and their MAC (see ``cookie``)."""
    msg: dict[str, Any] = {
        "t": "hello",
        "v": PROTOCOL_VERSION,
        "name": name,
        "creation": creation,
        "address": address,
        "hidden": hidden,
    }
    if cookie is not None:
        sent_at = time.time()
        msg.update(nonce=nonce, ts=sent_at, auth=cookies.mac(cookie, "hello", nonce, sent_at, *_fields(msg)))
    return pack_control(msg)


def hello_auth(cookie: bytes, msg: Mapping[str, Any]) -> tuple[bytes, float] | None:
    """``(nonce, sent_at)`` of a hello whose MAC proves the cookie, else None."""
    nonce, sent_at, auth = msg.get("nonce"), msg.get("ts"), msg.get("auth")
    if not (isinstance(nonce, bytes) and len(nonce) == cookies.NONCE_BYTES and isinstance(auth, bytes)):
        return None
    if type(sent_at) is not float:
        return None
    expected = cookies.mac(cookie, "hello", nonce, sent_at, *_fields(msg))
    return (nonce, sent_at) if hmac.compare_digest(expected, auth) else None


def welcome(
    name: str,
    creation: int,
    address: str | None,
    hidden: bool,
    peers: list[list[str]],
    cookie: bytes | None = None,
    nonce: bytes = b"",
) -> bytes:
    """A welcome; with a cookie it carries the MAC of the dialler's ``nonce`` and its fields."""
    msg: dict[str, Any] = {
        "t": "welcome",
        "v": PROTOCOL_VERSION,
        "name": name,
        "creation": creation,
        "address": address,
        "hidden": hidden,
        "peers": peers[:MAX_WELCOME_PEERS],
    }
    if cookie is not None:
        msg["auth"] = cookies.mac(cookie, "welcome", nonce, *_fields(msg), repr(msg["peers"]))
    return pack_control(msg)


def welcome_auth(cookie: bytes, msg: Mapping[str, Any], nonce: bytes) -> bool:
    """Whether a welcome answering our hello (``nonce``) proves the cookie."""
    auth = msg.get("auth")
    if not isinstance(auth, bytes):
        return False
    expected = cookies.mac(cookie, "welcome", nonce, *_fields(msg), repr(msg.get("peers")))
    return hmac.compare_digest(expected, auth)


def _fields(msg: Mapping[str, Any]) -> tuple[Any, ...]:
    return (msg.get("v"), msg.get("name"), msg.get("creation"), msg.get("address"), msg.get("hidden"))


def reject(name: str, reason: str) -> bytes:
    return pack_control({"t": "reject", "name": name, "reason": reason})


def contested(me: str, claimant: PeerInfo) -> bytes:
    """Control to the holder of a name another node just claimed: it is told too."""
    return pack_control({"t": "contested", "at": me, "address": claimant.address, "creation": claimant.creation})


def parse_info(msg: Mapping[str, Any]) -> PeerInfo | None:
    """The ``PeerInfo`` a hello or welcome announces, None if malformed or another version."""
    name, creation, address = msg.get("name"), msg.get("creation"), msg.get("address")
    hidden = msg.get("hidden", False)
    if (
        msg.get("v") != PROTOCOL_VERSION
        or not isinstance(name, str)
        or not 0 < len(name.encode()) <= MAX_NAME
        or not isinstance(creation, int)
        or not (address is None or isinstance(address, str))
        or not isinstance(hidden, bool)
    ):
        return None
    return PeerInfo(name, creation, address, hidden)


def parse_peers(raw: Any) -> list[tuple[str, str]]:
    """The ``[name, address]`` pairs of a welcome's ``peers``: malformed entries dropped,
    at most ``MAX_WELCOME_PEERS`` (a welcome cannot make us open a socket per entry)."""
    if not isinstance(raw, list):
        return []
    return [
        (n, a)
        for n, a in (x for x in raw if isinstance(x, list) and len(x) == 2)
        if isinstance(n, str) and isinstance(a, str) and 0 < len(n.encode()) <= MAX_NAME and len(a) <= 256
    ][:MAX_WELCOME_PEERS]


def announce(peers: Iterable[PeerInfo], exclude: str) -> list[list[str]]:
    """The peers a welcome tells a newcomer to dial: not hidden, reachable, not itself."""
    return [[p.name, p.address] for p in peers if p.name != exclude and not p.hidden and p.address is not None]


def judge_hello(
    me: str,
    info: PeerInfo,
    old: Known | None,
    *,
    dialling_to_it: bool,
    key_matches: bool | None,
    old_path_gone: Callable[[], bool],
) -> str | None:
    """Whether to accept a hello from ``info``: None to accept, else the reason to refuse.

    ``key_matches`` is None without CURVE, else whether the connection's key is the
    one trusted for ``info.name`` (then the claim is authenticated). ``old_path_gone``
    probes whether the old ROUTER path of that name still routes (asked only when needed).
    """
    if info.name == me:
        return "that is the name of the node you dialled"
    if key_matches is False:
        return f"the CURVE key of this connection is not {info.name}.key"
    if old is None:
        if me < info.name and dialling_to_it:
            return "simultaneous"  # our dial to it carries the pair
        return None
    if old.dialled_by_us and old.creation == info.creation:
        return "duplicate"  # a crossed dial: ours already carries the pair
    if key_matches is None and not (not old.dialled_by_us and old_path_gone()):
        # any cookie holder may claim a name: a live path is replaced only when it is gone
        # (a restart we reach over our DEALER is noticed there: the new process resets it)
        where = f"listening at {old.address}" if old.address else "a client-only node"
        return (
            f"node {info.name!r} is already connected ({where}, creation {old.creation}): two nodes with "
            f"one name? Stop the other one or pick another name; if it just died, retry after the heartbeat timeout"
        )
    return None


WelcomeAction = Literal["mismatch", "switch", "keep", "up"]


def judge_welcome(me: str, info: PeerInfo, expect: str | None, old: Known | None) -> WelcomeAction:
    """What a welcome on our dial means.

    ``mismatch``: it is not the node we dialled. ``switch``: both sides dialled each
    other and our dial (the smaller name's) now carries the pair. ``keep``: the pair's
    path stays as it is. ``up``: the peer is up over this dial (replacing an old
    incarnation, if any).
    """
    if expect is not None and info.name != expect:
        return "mismatch"
    if old is not None and old.creation == info.creation:
        return "switch" if not old.dialled_by_us and me < info.name else "keep"
    return "up"


def wait_after_reject(reason: str, name: str | None, up: Callable[[str], bool]) -> bool:
    """After our hello was refused: wait for the pair's other path (True), or fail."""
    if reason == "simultaneous" and name:
        return True  # the other side's dial to us wins
    # "duplicate": the pair already has a path; if we don't see it, our view is stale:
    # fail, the redial comes back once the other side resets it
    return reason == "duplicate" and name is not None and up(name)


def dial_candidates(
    me: str, address: str, expect: str | None, trusted: Mapping[str, bytes] | None, keys_dir: Any
) -> list[tuple[str | None, bytes | None]]:
    """(expected name, server key) for each dial to try at once; ``trusted`` None: no CURVE."""
    if trusted is None:
        return [(expect, None)]
    if expect is not None:
        key = trusted.get(expect)
        if key is None:
            raise NodeDown(f"no trusted public key for node {expect!r}: copy its {expect}.key into {keys_dir}")
        return [(expect, key)]
    candidates: list[tuple[str | None, bytes | None]] = [(n, k) for n, k in trusted.items() if n != me]
    if not candidates:
        raise NodeDown(
            f"cannot connect to {address} with CURVE: {keys_dir} holds no trusted public key other than this node's own"
        )
    return candidates
