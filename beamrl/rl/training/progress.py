"""What a run shows on the console: a progress bar and one-line notices above it."""

from __future__ import annotations

from typing import Any

from beamrl.rl.training.spec import RunSpec


def say(text: str) -> None:
    """Print a line above the progress bar (tqdm keeps the bar intact)."""
    from tqdm import tqdm  # deferred: tqdm is only needed once a run prints

    tqdm.write(text)


class Progress:
    """A tqdm bar counting episodes (or steps, for a step budget), with recent return and ε."""

    def __init__(self, spec: RunSpec) -> None:
        from tqdm import tqdm  # deferred: tqdm is only needed once a run shows progress

        self.by_episode = spec.episodes is not None
        total = spec.episodes if self.by_episode else spec.steps
        unit = "episode" if self.by_episode else "step"
        self.bar: Any = tqdm(total=total, unit=unit, desc=f"{spec.algo} {spec.env_id}", smoothing=0.05)
        self.recent: list[float] = []

    def episode(self, n: int, ret: float, length: int, epsilon: float) -> None:
        """Count episode ``n`` (its return, length and the ε it explored with)."""
        self.recent.append(ret)
        self.bar.update(1 if self.by_episode else length)
        if n % 50 == 0:
            recent = self.recent[-100:]
            self.bar.set_postfix(ret=f"{sum(recent) / len(recent):.3f}", eps=f"{epsilon:.3f}")

    def close(self) -> None:
        self.bar.close()
