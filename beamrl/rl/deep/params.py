"""Network parameters without torch: dicts of numpy arrays, a numpy forward pass, safetensors files.

    params = learner_params                        # {"q.body.0.weight": ndarray, ...}
    policy = NumpyPolicy(spec, params)            # spec: the JSON description the learner gives
    actions = policy.greedy(obs_batch)            # what an actor (or a Raspberry Pi) runs
    save_params("model.safetensors", params, {"spec": spec})
    params, meta = load_params("model.safetensors")

Parameter names are those of the torch modules (``state_dict`` keys prefixed by the
module's name), so a numpy actor and the torch learner speak of the same tensors. An
MLP is an ``nn.Sequential`` of ``Linear`` layers with an activation between them: its
weights are ``PREFIX.I.weight`` / ``PREFIX.I.bias`` for increasing ``I``; ``mlp_forward``
runs it. ``spec["kind"]`` says which head the parameters hold:

``q``              greedy action = argmax of MLP ``q.body``
``dueling_q``      trunk MLP ``q.trunk`` (activation at its end), ``q.value`` and ``q.adv`` layers
``categorical``    logits from MLP ``ac.pi``; values from MLP ``ac.v``
``gaussian``       means from MLP ``ac.pi`` and ``ac.log_std``; values from ``ac.v``
``deterministic``  ``tanh`` of MLP ``actor.pi`` scaled to ``[low, high]``

A spec may name observation normalisation (``obs_mean``/``obs_var`` arrays in the params).

Files are written with ``safetensors.numpy`` (``pip install safetensors``; no torch, no
pickle); the metadata travels as JSON in the file header.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.persist import atomic_write_bytes

__all__ = [
    "NumpyPolicy",
    "Params",
    "VersionedParams",
    "load_params",
    "mlp_forward",
    "params_from_bytes",
    "params_to_bytes",
    "run_layers",
    "save_params",
]

Params = dict[str, np.ndarray]
_LAYER = re.compile(r"^(.*)\.(\d+)\.weight$")
_SAFETENSORS_HINT = "safetensors is needed to read and write model files: pip install 'beamrl[torch]' or safetensors"


def _layers(params: Params, prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
    found = []
    for key in params:
        m = _LAYER.match(key)
        if m and m.group(1) == prefix:
            found.append(int(m.group(2)))
    if not found:
        raise KeyError(f"no MLP layers named {prefix}.N.weight in the parameters (keys: {sorted(params)[:6]}...)")
    return [(params[f"{prefix}.{i}.weight"], params[f"{prefix}.{i}.bias"]) for i in sorted(found)]


def _act(x: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(x, 0.0, out=x)
    if activation == "tanh":
        return np.tanh(x, out=x)
    raise ValueError(f"unknown activation {activation!r}: expected 'relu' or 'tanh'")


def mlp_forward(
    params: Params, prefix: str, x: np.ndarray, activation: str = "relu", final_activation: bool = False
) -> np.ndarray:
    """The MLP ``prefix`` applied to ``x`` (shape (batch, in)), in float32 like torch."""
    return run_layers(_layers(params, prefix), x, activation, final_activation)


def run_layers(
    layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, activation: str, final_activation: bool = False
) -> np.ndarray:
    """``(weight, bias)`` layers applied to ``x`` with ``activation`` between them."""
    h = np.asarray(x, dtype=np.float32)
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1 or final_activation:
            h = _act(h, activation)
    return h


class NumpyPolicy:
    """A policy computed with numpy from a learner's parameters; see the module docstring for kinds."""

    def __init__(self, spec: dict[str, Any], params: Params | None = None) -> None:
        self.spec = dict(spec)
        self.kind = str(spec["kind"])
        if self.kind not in ("q", "dueling_q", "categorical", "gaussian", "deterministic"):
            raise ValueError(f"unknown policy kind {self.kind!r}")
        self.activation = str(spec.get("activation", "relu"))
        self.params: Params = {}
        self._live = False
        self._nets: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        if params is not None:
            self.load(params)

    def load(self, params: Params, live: bool = False) -> None:
        """Use these parameters from now on (arrays are converted to float32, not copied when already).

        ``live=True``: the arrays are views of weights that change in place (a torch learner's
        tensors in the same process); the policy keeps views of them (no cached copies), so it
        acts with the current weights without being loaded again.
        """
        self.params = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
        self._live = live
        self._nets = {}

    def _mlp(self, prefix: str, x: np.ndarray, final_activation: bool = False) -> np.ndarray:
        layers = self._nets.get(prefix)
        if layers is None:
            found = _layers(self.params, prefix)
            layers = self._nets[prefix] = [(w.T if self._live else w.T.copy(), b) for w, b in found]
        h = x
        for i, (wt, b) in enumerate(layers):
            h = h @ wt
            h += b
            if i < len(layers) - 1 or final_activation:
                h = _act(h, self.activation)
        return h

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if "obs_mean" in self.params:
            mean, var = self.params["obs_mean"], self.params["obs_var"]
            x = np.clip((x - mean) / np.sqrt(var + 1e-8), -10.0, 10.0).astype(np.float32)
        return x

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values, shape (batch, actions)."""
        x = self._obs(obs)
        if self.kind == "q":
            return self._mlp("q.body", x)
        if self.kind == "dueling_q":
            h = self._mlp("q.trunk", x, final_activation=True)
            value = h @ self.params["q.value.weight"].T + self.params["q.value.bias"]
            adv = h @ self.params["q.adv.weight"].T + self.params["q.adv.bias"]
            return value + adv - adv.mean(axis=1, keepdims=True)
        raise ValueError(f"a {self.kind} policy has no Q-values")

    def output(self, obs: np.ndarray) -> np.ndarray:
        """The policy network's raw output: logits, Gaussian means, or scaled deterministic actions."""
        x = self._obs(obs)
        if self.kind in ("q", "dueling_q"):
            return self.q_values(obs)
        if self.kind in ("categorical", "gaussian"):
            return self._mlp("ac.pi", x)
        low, high = np.asarray(self.spec["low"], np.float32), np.asarray(self.spec["high"], np.float32)
        return low + (np.tanh(self._mlp("actor.pi", x)) + 1.0) * 0.5 * (high - low)

    def value(self, obs: np.ndarray) -> np.ndarray:
        """State values of an actor-critic policy, shape (batch,)."""
        return self._mlp("ac.v", self._obs(obs))[:, 0]

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action for each observation (argmax, mean, or the actor's output)."""
        out = self.output(obs)
        if self.kind in ("q", "dueling_q", "categorical"):
            return np.asarray(out.argmax(axis=1))
        return self._clip(out)

    def sample(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A stochastic action per observation (categorical and Gaussian policies)."""
        out = self.output(obs)
        if self.kind == "categorical":
            z = out - out.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            u = rng.random((p.shape[0], 1))
            return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1)
        if self.kind == "gaussian":
            std = np.exp(self.params["ac.log_std"])
            return (out + std * rng.standard_normal(out.shape)).astype(np.float32)
        raise ValueError(f"a {self.kind} policy does not sample; use greedy plus exploration")

    def _clip(self, actions: np.ndarray) -> np.ndarray:
        if "low" in self.spec:
            return np.clip(actions, self.spec["low"], self.spec["high"]).astype(np.float32)
        return actions


class VersionedParams:
    """Parameters published under increasing versions; readers get them only when newer.

        published = VersionedParams()
        published.get(None, version, produce)   # (version, params): the first read always answers
        published.get(version, version, produce)  # None: nothing newer than what the reader holds

    ``produce()`` makes the parameters of the current version; it runs at most once per
    version however many readers ask, and all of them share the same arrays (read-only
    by convention: a reader that wants to change them copies first).
    """

    def __init__(self) -> None:
        self._version: int | None = None
        self._params: Params = {}

    def get(self, since: int | None, version: int, produce: Callable[[], Params]) -> tuple[int, Params] | None:
        if since is not None and version <= since:
            return None
        if self._version != version:
            self._params, self._version = produce(), version
        return version, self._params


def params_to_bytes(params: Params, meta: dict[str, Any] | None = None) -> bytes:
    """``params`` as safetensors bytes; ``meta`` (JSON-able) goes into the header as ``beamrl``."""
    try:
        from safetensors.numpy import save
    except ImportError as e:
        raise ImportError(_SAFETENSORS_HINT) from e
    arrays = {k: np.ascontiguousarray(v) for k, v in params.items()}
    header = {"beamrl": json.dumps(meta or {}, sort_keys=True)}
    data: bytes = save(arrays, metadata=header)
    return data


def params_from_bytes(data: bytes, what: str = "safetensors data") -> tuple[Params, dict[str, Any]]:
    """Parse safetensors bytes: (arrays, the ``beamrl`` metadata). Never unpickles anything."""
    try:
        from safetensors.numpy import load
    except ImportError as e:
        raise ImportError(_SAFETENSORS_HINT) from e
    try:
        arrays = load(data)
        meta = _read_header(data)
    except (ValueError, OSError, KeyError) as e:
        raise ValueError(f"{what} is not a valid safetensors file: {e}") from e
    except Exception as e:  # safetensors raises its own SafetensorError (not exported for numpy)
        if type(e).__name__ == "SafetensorError":
            raise ValueError(f"{what} is not a valid safetensors file: {e}") from e
        raise
    return dict(arrays), meta


def _read_header(data: bytes) -> dict[str, Any]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    text = header.get("__metadata__", {}).get("beamrl", "{}")
    meta = json.loads(text)
    if not isinstance(meta, dict):
        raise ValueError("the beamrl metadata is not a JSON object")
    return meta


def save_params(path: str | os.PathLike[str], params: Params, meta: dict[str, Any] | None = None) -> None:
    """Write ``params`` (+ ``meta``) to a safetensors file atomically."""
    atomic_write_bytes(path, params_to_bytes(params, meta))


def load_params(path: str | os.PathLike[str]) -> tuple[Params, dict[str, Any]]:
    """Read a safetensors file written by ``save_params``: (arrays, metadata)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no model file at {p}")
    return params_from_bytes(p.read_bytes(), str(p))
