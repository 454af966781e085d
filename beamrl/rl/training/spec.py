"""``RunSpec``: what a training run does, as data that travels to every worker."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TD_ALGOS = ("q-learning", "sarsa", "expected-sarsa")
EPISODIC_ALGOS = (*TD_ALGOS, "mc")
PLANNING_ALGOS = ("value-iteration", "policy-iteration")
ALGOS = (*EPISODIC_ALGOS, *PLANNING_ALGOS)


@dataclass
class RunSpec:
    """What a training run does; travels to every worker as a plain dict."""

    algo: str
    """One of ``ALGOS``."""
    env_id: str
    """The environment id (native or gymnasium)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``make``."""
    episodes: int | None = None
    """Episode budget over all workers (None: use ``steps``)."""
    steps: int | None = None
    """Environment-step budget over all workers (None: use ``episodes``)."""
    seed: int = 0
    """Seeds the envs, the agents and the evaluations."""
    eval_every: int = 100
    """Evaluate the greedy policy every this many episodes (over all workers)."""
    eval_episodes: int = 200
    """Episodes per periodic evaluation where it is sampled (a native tabular env's is exact,
    computed from its model: see ``tabular.ExactEval``)."""
    hyper: dict[str, Any] = field(default_factory=dict)
    """Agent hyper-parameters (see ``agent_config``); schedules as {"kind": ..., ...}."""
    sync_every: int = 1
    """Episodes between a worker's refreshes of its local table from the QServer (taken at
    the end of a batch: at most once per batch)."""
    batch_steps: int = 1_000
    """Env steps a worker plays between two exchanges with the other processes (a grant of
    episodes from the recorder, its TD targets to the QServer, its episode rows, a table
    refresh), counted in whole episodes at its mean episode length."""
    stop_at_success: float | None = None
    """Stop once a periodic evaluation's success rate reaches this."""
    chaos: list[dict[str, Any]] = field(default_factory=list)
    """Faults to inject: ``{"at": episode, "fault": worker_index}`` makes that worker crash,
    ``{"at": episode, "kill": "qserver"}`` kills a learner-side process by name."""
    checkpoint_every: float = 1.0
    """Seconds between QServer checkpoints."""
    max_steps: int = 10_000
    """Cap on an episode's length for environments without a time limit."""
    workers: int = 1
    """How many workers share the table: each worker's schedules advance as if it had
    played ``workers`` times its own episodes, so ε and α follow the run's total."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"unknown algorithm {self.algo!r}: choose one of {', '.join(ALGOS)}")
        for name in ("episodes", "steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.algo not in PLANNING_ALGOS and self.episodes is None and self.steps is None:
            raise ValueError(f"{self.algo} needs a budget: episodes=N or steps=N")
        for name in ("eval_every", "eval_episodes", "sync_every", "batch_steps", "max_steps", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.stop_at_success is not None and not 0.0 < self.stop_at_success <= 1.0:
            raise ValueError(f"stop_at_success must lie in (0, 1], got {self.stop_at_success!r}")
        if not self.checkpoint_every > 0:
            raise ValueError(f"checkpoint_every must be > 0 seconds, got {self.checkpoint_every!r}")

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RunSpec:
        if not isinstance(data, dict):
            raise TypeError(f"a run spec is a dict, got {type(data).__name__}")
        return cls(**data)

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` applied (and checked)."""
        return RunSpec(**{**self.to_data(), **changes})


def default(name: str) -> Any:
    """The default of field ``name`` (what the CLI shows and uses when an option is left out)."""
    return RunSpec.__dataclass_fields__[name].default
