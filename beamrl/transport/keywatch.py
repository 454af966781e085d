"""Trusted keys that change while a node runs: the key directory is read again when it changes.

A CURVE node trusts every ``DIR/*.key`` (see ``keys``). Copying a new peer's ``.key``
into the directory is enough: the heartbeat looks at the directory once a second
(names, sizes and modification times of its ``*.key`` files) and, when that changed,
reads the keys again (``reload_keys``), for the ZAP allow-list and for dialling. A key
removed from the directory refuses new connections with it; a peer already connected
with it stays connected until it leaves (restart the node to cut it off at once).
"""

from __future__ import annotations

import time

from beamrl.transport.keys import KeyFileError, keys_signature, trusted_keys
from beamrl.transport.state import TransportState, log

KEYS_POLL = 1.0  # seconds between looks at the key directory


class KeyWatch(TransportState):
    """Re-reading the trusted keys of a CURVE transport."""

    def reload_keys(self) -> bool:
        """Read the key directory again; True when the set of trusted keys changed."""
        if self._keys_dir is None:
            return False
        try:
            trusted = trusted_keys(self._keys_dir)
        except KeyFileError as e:
            self._warn("keys", "%s: kept the trusted keys it had: %s", self.name, e)
            return False
        if trusted == self._trusted:
            return False
        added = sorted(n for n in trusted if self._trusted.get(n) != trusted[n])
        removed = sorted(set(self._trusted) - set(trusted))
        self._trusted.clear()
        self._trusted.update(trusted)
        if self._allow is not None:
            self._allow.keys = set(trusted.values())
        log.info(
            "%s: trusted keys reloaded from %s: added or changed %s, removed %s",
            self.name,
            self._keys_dir,
            ", ".join(added) or "none",
            ", ".join(removed) or "none",
        )
        return True

    def _watch_keys(self) -> None:
        """Reload the keys when the directory changed (looked at once a ``KEYS_POLL``)."""
        if self._keys_dir is None:
            return
        now = time.monotonic()
        if now - self._keys_checked < KEYS_POLL:
            return
        self._keys_checked = now
        signature = keys_signature(self._keys_dir)
        if signature != self._keys_signature:
            self._keys_signature = signature
            self.reload_keys()
