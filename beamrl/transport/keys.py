"""CURVE key files for beamrl nodes (ZeroMQ's Ironhouse pattern).

A key directory holds, for node ``NODE``:

- ``DIR/NODE.key``         its public key (zmq.auth certificate format), and
- ``DIR/NODE.key_secret``  its secret key (keep this file private),

plus ``DIR/OTHER.key`` for every peer it trusts.  Every ``*.key`` file in the
directory is trusted: copy a node's ``.key`` (never its ``.key_secret``) into the
key directory of each node that should accept it.  Create a pair with
``beamrl keys generate DIR --name NODE``.
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth

GENERATE_HINT = "create it with: beamrl keys generate {dir} --name {name}"


class KeyFileError(ValueError):
    """A key file is missing or unreadable (message names the path and the fix)."""


def _check_curve() -> None:
    if not zmq.has("curve"):
        raise RuntimeError(
            "this libzmq was built without CURVE support; install a pyzmq wheel "
            "(pip install --force-reinstall pyzmq) to use keys"
        )


def generate_keys(directory: str | Path, name: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Create ``DIR/NAME.key`` and ``DIR/NAME.key_secret``; return their paths.

    Refuses to replace an existing secret key unless ``overwrite=True`` (peers that
    trust the old public key would no longer accept this node).
    """
    _check_curve()
    _check_name(name)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    secret = d / f"{name}.key_secret"
    if secret.exists() and not overwrite:
        raise FileExistsError(
            f"{secret} already exists; refusing to overwrite a node's secret key "
            "(pass overwrite=True, or --force on the command line, to replace it)"
        )
    pub_s, sec_s = zmq.auth.create_certificates(d, name)
    os.chmod(sec_s, 0o600)
    return Path(pub_s), Path(sec_s)


def load_keypair(directory: str | Path, name: str) -> tuple[bytes, bytes]:
    """Return ``(public, secret)`` z85 keys of node ``name`` from ``DIR/NAME.key_secret``."""
    _check_curve()
    d = Path(directory)
    secret_path = d / f"{name}.key_secret"
    if not secret_path.is_file():
        raise KeyFileError(
            f"no secret key for node {name!r}: {secret_path} does not exist; " + GENERATE_HINT.format(dir=d, name=name)
        )
    try:
        public, secret = zmq.auth.load_certificate(secret_path)
    except (OSError, ValueError) as e:
        raise KeyFileError(f"cannot read key file {secret_path}: {e}") from e
    if secret is None:
        hint = GENERATE_HINT.format(dir=d, name=name)
        raise KeyFileError(f"{secret_path} holds no secret key; {hint}")
    return public, secret


def trusted_keys(directory: str | Path) -> dict[str, bytes]:
    """Map node name -> z85 public key for every ``DIR/*.key`` file (the allow-list)."""
    _check_curve()
    d = Path(directory)
    if not d.is_dir():
        raise KeyFileError(f"key directory {d} does not exist; " + GENERATE_HINT.format(dir=d, name="NODE"))
    out: dict[str, bytes] = {}
    for path in sorted(d.glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as e:
            raise KeyFileError(f"cannot read public key file {path}: {e}") from e
        out[path.name[: -len(".key")]] = public
    return out


def keys_signature(directory: str | Path) -> tuple[tuple[str, int, int], ...]:
    """Name, modification time and size of each ``DIR/*.key``: changes when a key does."""
    out = []
    for path in Path(directory).glob("*.key"):
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"invalid node name for a key file: {name!r}")
