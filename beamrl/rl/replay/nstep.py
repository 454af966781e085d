"""n-step windows: a stream's last ``n`` steps, emitted as n-step transitions as they close.

See ``beamrl.rl.replay`` for the exact returns and discounts stored.
"""

from __future__ import annotations

from collections import deque

import numpy as np

# ---------------------------------------------------------------------------------------

# A step as held in a window: state, action, reward, next_state, terminated, truncated, priority
Step = tuple[np.ndarray, np.ndarray, float, np.ndarray, bool, bool, float | None]
# A stored transition: the above with the n-step reward and a discount before the priority
Out = tuple[np.ndarray, np.ndarray, float, np.ndarray, bool, bool, float, float | None]


class NStepWindow:
    """Holds the last ``n`` steps of one stream and emits n-step transitions as they close."""

    def __init__(self, n: int, gamma: float) -> None:
        self.n = n
        self.gamma = gamma
        self.steps: deque[Step] = deque()

    def push(self, step: Step, out: list[Out]) -> None:
        self.steps.append(step)
        if step[4] or step[5]:  # the episode ended: every pending step closes now
            self.close(out)
        elif len(self.steps) == self.n:
            s0 = self.steps[0]
            ret = 0.0
            for s in reversed(self.steps):
                ret = s[2] + self.gamma * ret
            out.append((s0[0], s0[1], ret, step[3], False, False, self.gamma**self.n, s0[6]))
            self.steps.popleft()

    def close(self, out: list[Out]) -> None:
        """Emit every pending step, bootstrapping from the last next_state unless terminated."""
        if not self.steps:
            return
        last = self.steps[-1]
        m = len(self.steps)
        returns = [0.0] * m
        ret = 0.0
        for i in range(m - 1, -1, -1):
            ret = self.steps[i][2] + self.gamma * ret
            returns[i] = ret
        for i, s in enumerate(self.steps):
            discount = 0.0 if last[4] else self.gamma ** (m - i)
            out.append((s[0], s[1], returns[i], last[3], last[4], last[5], discount, s[6]))
        self.steps.clear()
