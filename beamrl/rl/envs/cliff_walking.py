"""CliffWalking: walk from the bottom-left corner to the bottom-right one along a cliff.

Same dynamics, rewards and seeding as gymnasium 1.4's ``CliffWalking-v1`` (no time
limit; ``CliffWalking-v0`` is accepted as an alias) and ``CliffWalkingSlippery-v1``.
A 4x12 grid; actions 0 up, 1 right, 2 down, 3 left; observation ``row * 12 + col``
(a Python int), start 36, goal 47. Every step costs -1; stepping onto the cliff costs
-100 and sends the agent back to the start (the episode goes on). With
``is_slippery`` the move goes the intended way or to either side, 1/3 each.
"""

from __future__ import annotations

import numpy as np

from beamrl.rl.envs.tabular import TabularEnv, Transitions

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVES = {UP: (-1, 0), RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1)}
SHAPE = (4, 12)
START = 36
GOAL = (3, 11)


def _on_cliff(row: int, col: int) -> bool:
    return row == 3 and 1 <= col <= 10


class CliffWalking(TabularEnv):
    """``CliffWalking-v1``; ``is_slippery=True`` gives ``CliffWalkingSlippery-v1``."""

    def __init__(
        self,
        is_slippery: bool = False,
        *,
        max_episode_steps: int | None = None,
        env_id: str = "CliffWalking-v1",
    ) -> None:
        self.shape = SHAPE
        self.is_slippery = is_slippery
        n_states = SHAPE[0] * SHAPE[1]
        P: Transitions = {}
        for s in range(n_states):
            row, col = divmod(s, SHAPE[1])
            P[s] = {a: self._outcomes(row, col, a) for a in (UP, RIGHT, DOWN, LEFT)}
        initial = np.zeros(n_states)
        initial[START] = 1.0
        super().__init__(P, initial, max_episode_steps=max_episode_steps, env_id=env_id)

    def _outcomes(self, row: int, col: int, action: int) -> list:
        moves = [action] if not self.is_slippery else [(action - 1) % 4, action, (action + 1) % 4]
        out = []
        for m in moves:
            dr, dc = MOVES[m]
            r = min(max(row + dr, 0), SHAPE[0] - 1)
            c = min(max(col + dc, 0), SHAPE[1] - 1)
            if _on_cliff(r, c):
                out.append((1 / len(moves), START, -100, False))
            else:
                out.append((1 / len(moves), r * SHAPE[1] + c, -1, (r, c) == GOAL))
        return out

    def render(self) -> str:
        """The grid: x the agent, C the cliff, T the goal, o the rest."""
        lines = []
        for row in range(SHAPE[0]):
            cells = []
            for col in range(SHAPE[1]):
                s = row * SHAPE[1] + col
                if self._s == s:
                    cells.append("x")
                elif (row, col) == GOAL:
                    cells.append("T")
                elif _on_cliff(row, col):
                    cells.append("C")
                else:
                    cells.append("o")
            lines.append("  ".join(cells) + "\n")
        return "".join(lines) + "\n"
