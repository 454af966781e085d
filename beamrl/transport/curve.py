"""CURVE and who may listen where: the ZAP allow-list, socket set-up, the loopback rule.

A node that listens on a non-loopback address needs CURVE keys (or an explicit
``insecure``). With keys, the ROUTER is a CURVE server whose ZAP handler accepts only
the trusted public keys; DEALERs are CURVE clients that must know the server's key.
"""

from __future__ import annotations

import ipaddress
import logging

import zmq

from beamrl.ratelog import RateLimitedLog

log = logging.getLogger("beamrl.transport")

ZAP_DOMAIN = "beamrl"


def is_local(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback host."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(name: str, listen: str | None, has_keys: bool, insecure: bool) -> None:
    """Refuse plaintext on a non-loopback address unless ``insecure`` says the network is trusted."""
    if listen is not None and not has_keys and not insecure and not is_local(listen):
        raise ValueError(
            f"refusing to listen on {listen!r} without CURVE keys: traffic would be "
            "unencrypted and unauthenticated. Pass keys=DIR (create them with "
            f"`beamrl keys generate DIR --name {name}`), listen on tcp://127.0.0.1, "
            "or pass insecure=True (--insecure) if the network is trusted"
        )


def make_server(sock: zmq.Socket, public: bytes, secret: bytes) -> None:
    """Make ``sock`` (the ROUTER) a CURVE server checked by the ZAP handler."""
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)


def make_client(sock: zmq.Socket, serverkey: bytes, public: bytes, secret: bytes) -> None:
    """Make ``sock`` (a DEALER) a CURVE client of the server whose public key is ``serverkey``."""
    sock.setsockopt(zmq.CURVE_SERVERKEY, serverkey)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)


def curve_user(payload: zmq.Frame) -> bytes | None:
    """The z85 public key the ZAP handler authenticated for ``payload``'s connection."""
    try:
        user = payload.get("User-Id")
    except zmq.ZMQError:
        return None
    return user.encode() if isinstance(user, str) else None


class AllowList:
    """ZAP CURVE callback: accept exactly the trusted public keys (z85).

    ``keys`` may be replaced at any time (the key directory is read again when it
    changes). Refusals are logged at most once a second, with a count.
    """

    def __init__(self, keys: set[bytes], name: str = "", warn: RateLimitedLog | None = None) -> None:
        self.keys = keys
        self.name = name
        self.refused = 0
        self._warn = warn if warn is not None else RateLimitedLog(log)

    def callback(self, domain: str, key: bytes) -> bool:
        ok = key in self.keys
        if not ok:
            self.refused += 1
            self._warn(
                "curve-refused",
                "%s: refused a CURVE client with an untrusted key %s (%d refused so far); to trust it, "
                "copy its NAME.key into this node's key directory (read again within a second)",
                self.name,
                key.decode(errors="replace")[:40],
                self.refused,
            )
        return ok
