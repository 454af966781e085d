"""The cookie: the shared secret that authenticates plaintext nodes (as Erlang's cookie does).

A node without CURVE keys proves in its ``hello`` that it knows the cookie, and the
node it dials proves the same in its ``welcome``; a hello that does not gets nothing
back and its connection is dropped. The cookie itself never travels:

    hello.auth   = HMAC-SHA256(cookie, "hello"   | nonce | time | name | creation | address | hidden)
    welcome.auth = HMAC-SHA256(cookie, "welcome" | hello's nonce | name | creation | address | hidden)

``nonce`` is 16 fresh random bytes per dial and ``time`` the dialler's clock. The
listener accepts a hello only within ``MAX_SKEW`` seconds of its own clock and only
once per nonce (it remembers the nonces of that window), so a recorded hello cannot be
replayed to it; the welcome's MAC covers the dialler's nonce, so a recorded welcome
cannot answer another dial. One round trip, as before: no extra message. What this
does not give: the traffic after the handshake is neither encrypted nor authenticated
(use CURVE keys off loopback), and a hello recorded on its way to one node could be
replayed to another node sharing the cookie within ``MAX_SKEW`` (a passive listener on
loopback needs root on that machine).

Where the cookie lives: ``$XDG_CONFIG_HOME/beamrl/cookie`` (``~/.config/beamrl/cookie``
when unset), created on first use with 32 random bytes, readable by its user only
(0600; a file others can read is refused). ``Node(cookie_file=...)``, ``cookie=...`` and
``beamrl node start --cookie-file`` override it per node.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

__all__ = ["MAX_SKEW", "CookieError", "NonceBook", "default_cookie_path", "load_cookie", "mac", "new_nonce"]

MAX_SKEW = 120.0  # seconds a hello's clock may differ from the listener's
NONCE_BYTES = 16
MAX_COOKIE_BYTES = 4096


class CookieError(ValueError):
    """The cookie file is missing, unreadable, empty or readable by others (message says which)."""


def default_cookie_path() -> Path:
    """``$XDG_CONFIG_HOME/beamrl/cookie``, or ``~/.config/beamrl/cookie``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "beamrl" / "cookie"


def load_cookie(path: str | os.PathLike[str] | None = None, *, create: bool = True) -> bytes:
    """The cookie in ``path`` (default: ``default_cookie_path()``), created on first use.

    Creating writes 32 random bytes (hex) with mode 0600, atomically and without
    replacing a file another process created at the same moment.
    """
    p = Path(path) if path is not None else default_cookie_path()
    if not p.exists() and create:
        _create(p)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise CookieError(f"cookie file {p} is not a regular file")
        if os.name != "nt" and st.st_mode & 0o077:
            raise CookieError(
                f"cookie file {p} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}): run `chmod 600 {p}`"
            )
        if st.st_size > MAX_COOKIE_BYTES:
            raise CookieError(f"cookie file {p} is larger than {MAX_COOKIE_BYTES} bytes")
        cookie = p.read_bytes().strip()
    except FileNotFoundError:
        raise CookieError(f"cookie file {p} does not exist (copy the cookie of the nodes to join there)") from None
    except OSError as e:
        raise CookieError(f"cannot read cookie file {p}: {e}") from e
    if not cookie:
        raise CookieError(f"cookie file {p} is empty: put a secret in it, or delete it to have one created")
    return cookie


def _create(p: Path) -> None:
    """Write a fresh cookie to ``p`` unless it exists; readers never see a partial file.

    The secret goes to a private temporary file first, which is then hard-linked to
    ``p``: the link fails if another process created ``p`` meanwhile (theirs is kept).
    """
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".cookie.", dir=p.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, p)
        except FileExistsError:
            pass  # another process created it first: read theirs
    finally:
        os.unlink(tmp)


def mac(cookie: bytes, *parts: object) -> bytes:
    """HMAC-SHA256 of ``parts`` (each length-prefixed, so no two lists collide)."""
    h = hmac.new(cookie, digestmod=hashlib.sha256)
    for part in parts:
        raw = part if isinstance(part, bytes) else repr(part).encode()
        h.update(len(raw).to_bytes(4, "big"))
        h.update(raw)
    return h.digest()


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


class NonceBook:
    """The nonces of accepted hellos within the skew window: each is accepted once."""

    def __init__(self, window: float = MAX_SKEW, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def fresh(self, nonce: bytes, sent_at: float) -> bool:
        """True once for a nonce sent within the window of now; records it."""
        now = self.clock()
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= 2 * self.window:
                break
            del self._seen[oldest]
        if abs(now - sent_at) > self.window or nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True
