"""The replay server's ledger: how many transitions it had taken in, written as they arrive.

A restarted ``ReplayServer`` compares the ledger with what its checkpoint restored and
reports the difference as lost. The ledger also carries the counts that outlive one
server process (``Ledger``: the transitions lost over every restore of its directory, and
the priority updates dropped for naming an earlier incarnation), so that a run with two
kills reports the sum, not the last one. The server writes it after every insert, so it must be
cheap: one fixed-length JSON record (padded with spaces) overwritten in place with a
single ``pwrite`` (~8 µs here, against ~600 µs for a write-and-rename). A killed process,
in-process ``kill`` or ``kill -9`` of its OS process, finishes that write call or never
starts it, so the ledger holds the count before or after it, never a mix. It is not
fsynced: a crash of the machine itself may lose its last writes or leave it unreadable
(then losses are reported as unknown).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import NamedTuple

from beamrl.rl.errors import ReplayError
from beamrl.rl.replay.memory import ReplayMemory

log = logging.getLogger("beamrl.replay")

#: the ledger's file name inside a checkpoint directory
LEDGER = "ledger.json"
LEDGER_FORMAT = "beamrl.replay-ledger/1"
#: every record is padded to this many bytes, so each write covers the one before
_RECORD_BYTES = 256
#: settings a restored memory must share with the one the server was asked for
MATCHED_CONFIG = ("capacity", "prioritized", "alpha", "n_step", "gamma")


class Ledger(NamedTuple):
    """One ledger record: the total-added counter, and counts over every incarnation of its directory."""

    total_added: int  #: ids handed out (``ReplayMemory.count``)
    lost: int = 0  #: transitions lost over every restore so far (each restore's ``lost``, summed)
    foreign_updates: int = 0  #: priority updates dropped for naming another incarnation, over all of them


def write_ledger(d: Path, record: Ledger) -> Ledger:
    """Write ``record`` (one write in place: see above); returns it."""
    doc = json.dumps({"format": LEDGER_FORMAT, **record._asdict(), "time": time.time()}).encode()
    fd = os.open(d / LEDGER, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, doc.ljust(_RECORD_BYTES), 0)
    finally:
        os.close(fd)
    return record


def read_ledger(d: Path) -> Ledger | None:
    """The record of the ledger in ``d``; None when there is none or it is unreadable.

    A record from before the counts over incarnations (only ``total_added``) reads as 0 of each.
    """
    try:
        doc = json.loads((d / LEDGER).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read the replay ledger %s: %s; losses are unknown", d / LEDGER, exc)
        return None
    if not isinstance(doc, dict) or doc.get("format") != LEDGER_FORMAT:
        log.warning("%s is not a %s ledger; losses are unknown", d / LEDGER, LEDGER_FORMAT)
        return None
    values = [doc.get(key, 0 if key in Ledger._field_defaults else None) for key in Ledger._fields]
    counts = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    if len(counts) != len(values):
        log.warning("%s is not a %s ledger; losses are unknown", d / LEDGER, LEDGER_FORMAT)
        return None
    return Ledger(*counts)


def check_config(restored: ReplayMemory, wanted: ReplayMemory, d: Path) -> None:
    """Refuse a restored memory whose settings differ from the ones asked for."""
    diff = [
        f"{key}={getattr(restored, key)!r} (asked for {getattr(wanted, key)!r})"
        for key in MATCHED_CONFIG
        if getattr(restored, key) != getattr(wanted, key)
    ]
    if diff:
        raise ReplayError(
            f"the checkpoint in {d} holds a memory with {', '.join(diff)}: "
            "start the server with the same settings, or point it at another checkpoint_dir"
        )
