"""A trained policy read from a run directory, with numpy only: what ``beamrl serve`` hosts.

    policy = load_run("runs/ql")                  # a tabular run: qtable.npz (+ summary.json)
    policy = load_run("runs/dqn")                 # a deep run: model.safetensors
    policy.act(policy.check.one(obs))             # greedy actions for a batch of one
    policy.describe()                             # algo, env id, spaces, file, sha256, ...

``load_run`` reads the files of ``beamrl train --out DIR``:

=================  ==========================================================================
a deep run         ``model.safetensors``: the policy's weights, and in its header the policy
                   spec, algorithm, env id and parameter version (``beamrl.rl.deep.params``)
a tabular run      ``qtable.npz`` (array ``q``, shape (states, actions)) and ``summary.json``
                   (``algo``, ``env_id``, ``env_kwargs``)
=================  ==========================================================================

Greedy means: a Q-table's or Q-network's argmax (the first best action, as the judged
evaluation of ``beamrl train`` plays), a categorical policy's most likely action, a
Gaussian policy's mean, a deterministic actor's output (clipped to the action space).
The spaces come from the environment when it can be built here (native ids always;
others need gymnasium); otherwise from the model (a deep run: an unbounded ``Box`` of the
network's input size; a tabular run: ``Discrete(rows)``), and ``describe()`` says which.
Torch is never imported: a Raspberry Pi with numpy (and ``safetensors`` for deep runs)
serves what a GPU machine trained. A missing or broken file raises ``FileNotFoundError``
or ``ValueError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.rl.deep.params import NumpyPolicy, params_from_bytes
from beamrl.rl.envs import make
from beamrl.rl.errors import InvalidObservation, UnknownEnv
from beamrl.rl.serving.observations import MAX_BATCH, ObservationCheck, observation_check
from beamrl.rl.spaces import Box, Discrete, Tuple

__all__ = ["MODEL_FILE", "QTABLE_FILE", "SUMMARY_FILE", "DeepPolicy", "ServedPolicy", "TablePolicy", "load_run"]

MODEL_FILE = "model.safetensors"
QTABLE_FILE = "qtable.npz"
SUMMARY_FILE = "summary.json"

#: the MLP that maps observations to the policy's output, by ``spec["kind"]``
_INPUT_NET = {"q": "q.body", "dueling_q": "q.trunk", "categorical": "ac.pi", "gaussian": "ac.pi"}
_INPUT_NET["deterministic"] = "actor.pi"


class ServedPolicy(ABC):
    """A greedy policy over checked observations (see ``beamrl.rl.serving.observations``)."""

    #: ``"deep"`` or ``"tabular"``
    family: str

    def __init__(
        self,
        *,
        algo: str | None,
        env_id: str,
        env_kwargs: dict[str, Any],
        file: Path,
        data: bytes,
        observation_space: Any,
        action_space: Any,
        spaces_from: str,
        max_batch: int,
    ) -> None:
        self.algo = algo
        self.env_id = env_id
        self.env_kwargs = env_kwargs
        self.file = file
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.observation_space = observation_space
        self.action_space = action_space
        self.spaces_from = spaces_from
        self.check: ObservationCheck = observation_check(observation_space, max_batch)

    @abstractmethod
    def output(self, x: np.ndarray) -> np.ndarray:
        """The raw output for a checked batch: Q-values, logits, means or actions, shape (batch, k)."""

    @abstractmethod
    def greedy(self, x: np.ndarray) -> np.ndarray:
        """Greedy actions for a checked batch: integers (batch,) or floats (batch, action dims)."""

    def act(self, x: np.ndarray) -> np.ndarray:
        """Greedy actions in the action space (a ``Discrete``'s ``start`` added)."""
        actions = self.greedy(x)
        if isinstance(self.action_space, Discrete):
            return actions.astype(np.int64) + int(self.action_space.start)
        return actions

    def one_action(self, actions: np.ndarray) -> Any:
        """The first action of a batch as the env takes it: an ``int``, or a float32 array."""
        if isinstance(self.action_space, Discrete):
            return int(actions[0])
        return np.asarray(actions[0], np.float32).reshape(getattr(self.action_space, "shape", (-1,)))

    def describe(self) -> dict[str, Any]:
        """What is served, for ``["info"]``."""
        return {
            "family": self.family,
            "algo": self.algo,
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "spaces_from": self.spaces_from,
            "file": str(self.file),
            "sha256": self.sha256,
        }


class DeepPolicy(ServedPolicy):
    """A deep run's ``model.safetensors`` through ``NumpyPolicy``'s forward pass."""

    family = "deep"

    def __init__(self, policy: NumpyPolicy, meta: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        self.kind = policy.kind
        self.version = meta.get("version")

    def output(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.policy.output(x)
        bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
        if bad.any():  # finite inputs can still overflow float32 on the way through the network
            where = f"row {int(np.argmax(bad))} of the batch" if len(out) > 1 else "this observation"
            raise InvalidObservation(
                f"the network's output is not finite (NaN or inf) for {where}: "
                "is it far outside what the policy was trained on?"
            )
        return out

    def greedy(self, x: np.ndarray) -> np.ndarray:
        out = self.output(x)
        if self.kind in ("q", "dueling_q", "categorical"):
            return np.asarray(out.argmax(axis=1))
        if "low" in self.policy.spec:  # a Gaussian's mean or an actor's output, inside the bounds
            return np.clip(out, self.policy.spec["low"], self.policy.spec["high"]).astype(np.float32)
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "policy": self.kind, "model_version": self.version}


class TablePolicy(ServedPolicy):
    """A tabular run's Q-table: the greedy action of a state is the first best one of its row."""

    family = "tabular"

    def __init__(self, q: np.ndarray, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.q = q
        self.actions = np.argmax(q, axis=1)

    def output(self, x: np.ndarray) -> np.ndarray:
        return self.q[x]

    def greedy(self, x: np.ndarray) -> np.ndarray:
        return self.actions[x]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "policy": "q-table", "model_version": None, "table_shape": list(self.q.shape)}


def load_run(run_dir: str | Path, *, import_envs: bool = True, max_batch: int = MAX_BATCH) -> ServedPolicy:
    """The policy a run directory holds (``model.safetensors`` first, else ``qtable.npz``).

    ``import_envs=False`` builds no env whose id names a module (``"pkg.mod:Env-v0"``): the
    spaces then come from the model (a server started for a peer imports nothing it names).
    """
    root = Path(run_dir)
    if not root.exists():
        raise FileNotFoundError(f"no run directory at {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory: give the --out directory of a beamrl train run")
    if (root / MODEL_FILE).is_file():
        return _load_deep(root / MODEL_FILE, import_envs, max_batch)
    if (root / QTABLE_FILE).is_file():
        return _load_table(root, import_envs, max_batch)
    raise FileNotFoundError(
        f"{root} holds neither {MODEL_FILE} (a deep run) nor {QTABLE_FILE} (a tabular run): "
        "give the --out directory of a finished beamrl train run"
    )


def _env_spaces(env_id: str, kwargs: dict[str, Any], import_envs: bool) -> tuple[Any, Any] | None:
    """(observation space, action space) of ``env_id``, or None when it cannot be built here."""
    if not import_envs and ":" in env_id:
        return None
    try:
        env = make(env_id, **kwargs)
    except (ImportError, UnknownEnv):  # no gymnasium here (a Pi), or an id only the trainer's machine knows
        return None
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


# -- deep runs --------------------------------------------------------------------------------


def _load_deep(path: Path, import_envs: bool, max_batch: int) -> DeepPolicy:
    data = path.read_bytes()
    params, meta = params_from_bytes(data, str(path))
    spec, env_id = meta.get("spec"), meta.get("env_id")
    if not isinstance(spec, dict) or not isinstance(env_id, str):
        raise ValueError(f"{path} has no beamrl metadata (spec, env_id): it is not the model of a beamrl deep run")
    try:
        policy = NumpyPolicy(spec, params)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    bad = sorted(k for k, v in policy.params.items() if not np.isfinite(v).all())
    if bad:
        raise ValueError(f"{path} holds non-finite weights (NaN or inf) in {', '.join(bad[:4])}")
    inputs = _input_size(policy, path)
    spaces = _env_spaces(env_id, {}, import_envs)
    if spaces is None:
        obs_space: Any = Box(-np.inf, np.inf, (inputs,), np.float32)
        act_space = _action_space_of(policy, inputs, path)
    else:
        obs_space, act_space = spaces
        if not isinstance(obs_space, Box):
            raise ValueError(f"{path}: {env_id}'s observations are {obs_space!r}; a deep policy takes a Box")
        if math.prod(obs_space.shape) != inputs:
            raise ValueError(
                f"{path}: the network takes {inputs} inputs, but {env_id}'s observations have shape {obs_space.shape}"
            )
    served = DeepPolicy(
        policy,
        meta,
        algo=meta.get("algo"),
        env_id=env_id,
        env_kwargs={},
        file=path,
        data=data,
        observation_space=obs_space,
        action_space=act_space,
        spaces_from="model" if spaces is None else "env",
        max_batch=max_batch,
    )
    _probe(served, inputs, path)
    return served


def _input_size(policy: NumpyPolicy, path: Path) -> int:
    prefix = _INPUT_NET[policy.kind]
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.weight$")
    layers = sorted((int(m.group(1)), k) for k in policy.params if (m := pattern.match(k)))
    if not layers:
        raise ValueError(f"{path}: a {policy.kind} policy needs layers {prefix}.N.weight; the file has none")
    weight = policy.params[layers[0][1]]
    if weight.ndim != 2:
        raise ValueError(f"{path}: {layers[0][1]} has shape {weight.shape}, not (outputs, inputs)")
    return int(weight.shape[1])


def _action_space_of(policy: NumpyPolicy, inputs: int, path: Path) -> Any:
    """The action space the network implies, when the env cannot say."""
    out = policy.output(np.zeros((1, inputs), np.float32))
    if policy.kind in ("q", "dueling_q", "categorical"):
        return Discrete(int(out.shape[1]))
    low = policy.spec.get("low", -np.inf)
    high = policy.spec.get("high", np.inf)
    return Box(np.broadcast_to(low, out.shape[1:]), np.broadcast_to(high, out.shape[1:]), out.shape[1:], np.float32)


def _probe(served: DeepPolicy, inputs: int, path: Path) -> None:
    """Run the network once on zeros: layers that do not fit together fail here, not at the first act."""
    try:
        out = served.output(np.zeros((1, inputs), np.float32))
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{path}: the network's layers do not fit together: {exc}") from None
    space = served.action_space
    if isinstance(space, Discrete) and out.shape[1] != space.n:
        raise ValueError(f"{path}: the network has {out.shape[1]} outputs, but {served.env_id} has {space!r} actions")
    if isinstance(space, Box) and out.shape[1] != math.prod(space.shape):
        raise ValueError(f"{path}: the network has {out.shape[1]} outputs; {served.env_id}'s actions are {space!r}")


# -- tabular runs -----------------------------------------------------------------------------


def _load_table(root: Path, import_envs: bool, max_batch: int) -> TablePolicy:
    path, summary_path = root / QTABLE_FILE, root / SUMMARY_FILE
    summary = _read_summary(summary_path)
    env_id, env_kwargs = summary.get("env_id"), summary.get("env_kwargs") or {}
    if not isinstance(env_id, str) or not isinstance(env_kwargs, dict):
        raise ValueError(
            f"{summary_path} does not name the run's env (env_id, env_kwargs): not a tabular run's summary"
        )
    data = path.read_bytes()
    q = _read_table(path, data)
    try:
        spaces = _env_spaces(env_id, env_kwargs, import_envs)
    except TypeError as exc:  # env_kwargs the env does not take
        raise ValueError(f"{summary_path}: {env_id} cannot be built with env_kwargs {env_kwargs}: {exc}") from None
    if spaces is None:
        obs_space: Any = Discrete(q.shape[0])
        act_space: Any = Discrete(q.shape[1])
    else:
        obs_space, act_space = spaces
        states = _states(obs_space)
        if states is None or not isinstance(act_space, Discrete):
            raise ValueError(f"{path}: {env_id} is not tabular ({obs_space!r} -> {act_space!r})")
        if q.shape != (states, act_space.n):
            raise ValueError(
                f"{path} holds a {q.shape[0]} x {q.shape[1]} table, but {env_id} has {states} states "
                f"and {act_space.n} actions: is {SUMMARY_FILE} from the same run?"
            )
    return TablePolicy(
        q,
        algo=summary.get("algo"),
        env_id=env_id,
        env_kwargs=env_kwargs,
        file=path,
        data=data,
        observation_space=obs_space,
        action_space=act_space,
        spaces_from="model" if spaces is None else "env",
        max_batch=max_batch,
    )


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: a tabular run's summary names its env") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{path} is not a JSON object: not a beamrl run's summary")
    return summary


def _read_table(path: Path, data: bytes) -> np.ndarray:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            q = np.asarray(arrays["q"])
    except KeyError:
        raise ValueError(f"{path} has no array 'q': not a beamrl Q-table") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError, TypeError) as exc:
        # a file that is no .npz at all comes back from np.load as a refused pickle or a bad zip
        raise ValueError(f"{path} is not a readable .npz file: {exc}") from None
    if q.ndim != 2 or q.dtype.kind not in "iuf" or 0 in q.shape:
        raise ValueError(f"{path}: q must be a non-empty 2-d array of numbers, got {q.dtype} of shape {q.shape}")
    if not np.isfinite(q).all():
        raise ValueError(f"{path}: q holds non-finite values (NaN or inf)")
    return q.astype(np.float64)


def _states(space: Any) -> int | None:
    if isinstance(space, Discrete):
        return int(space.n)
    if isinstance(space, Tuple):
        parts = [s for s in space.spaces if isinstance(s, Discrete)]
        if len(parts) == len(space.spaces):
            return int(np.prod([int(s.n) for s in parts]))
    return None
