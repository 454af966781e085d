"""FrozenLake: cross a frozen lake from S to G without falling into a hole (H).

Same maps, dynamics, rewards, time limits and seeding as gymnasium's ``FrozenLake-v1``
and ``FrozenLake8x8-v1``. Actions: 0 left, 1 down, 2 right, 3 up. Observation: the
cell index ``row * ncol + col`` as a Python int. Reward ``reward_schedule[0]`` (1) on
reaching G, else ``reward_schedule[1]``/``[2]`` (0) for H/F. On a slippery lake the
move goes the intended way with ``success_rate`` (1/3) and to each perpendicular side
with half the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from beamrl.rl.envs.tabular import TabularEnv, Transitions
from beamrl.rl.spaces import np_random

LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3

MAPS: dict[str, list[str]] = {
    "4x4": ["SFFF", "FHFH", "FFFH", "HFFG"],
    "8x8": [
        "SFFFFFFF",
        "FFFFFFFF",
        "FFFHFFFF",
        "FFFFFHFF",
        "FFFHFFFF",
        "FHHFFFHF",
        "FHFFHFHF",
        "FFFHFFFG",
    ],
}


def _reaches_goal(board: np.ndarray) -> bool:
    """Depth-first search from (0, 0) over non-hole cells; True when G is reachable."""
    size = board.shape[0]
    frontier, seen = [(0, 0)], set()
    while frontier:
        r, c = frontier.pop()
        if (r, c) in seen:
            continue
        seen.add((r, c))
        for dr, dc in ((1, 0), (0, 1), (-1, 0), (0, -1)):
            nr, nc = r + dr, c + dc
            if not (0 <= nr < size and 0 <= nc < size):
                continue
            if board[nr][nc] == "G":
                return True
            if board[nr][nc] != "H":
                frontier.append((nr, nc))
    return False


def generate_random_map(size: int = 8, p: float = 0.8, seed: int | None = None) -> list[str]:
    """A random ``size`` x ``size`` map with a path from S to G; each cell frozen with ``p``.

    Draws as gymnasium's ``generate_random_map`` does, so equal seeds give equal maps.
    """
    rng = np_random(seed)
    p = min(1, p)
    while True:
        board = rng.choice(["F", "H"], (size, size), p=[p, 1 - p])
        board[0][0] = "S"
        board[-1][-1] = "G"
        if _reaches_goal(board):
            return ["".join(row) for row in board]


class FrozenLake(TabularEnv):
    """``FrozenLake-v1`` (``map_name="4x4"``, 100 steps) and ``FrozenLake8x8-v1`` (200 steps).

    ``desc`` (a list of strings of S/F/H/G) overrides ``map_name``; with both None a
    random 8x8 map is generated.
    """

    def __init__(
        self,
        desc: Sequence[str] | None = None,
        map_name: str | None = "4x4",
        is_slippery: bool = True,
        success_rate: float = 1.0 / 3.0,
        reward_schedule: tuple[float, float, float] = (1, 0, 0),
        *,
        max_episode_steps: int | None = 100,
        env_id: str = "FrozenLake-v1",
    ) -> None:
        if desc is None and map_name is None:
            desc = generate_random_map()
        elif desc is None:
            if map_name not in MAPS:
                raise ValueError(f"unknown map_name {map_name!r}; known: {sorted(MAPS)}")
            desc = MAPS[map_name]
        rows = [str(r) for r in desc]
        if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
            raise ValueError(f"desc must be equal-length non-empty rows, got {desc!r}")
        if set("".join(rows)) - set("SFHG") or "S" not in "".join(rows):
            raise ValueError(f"desc holds only S/F/H/G and at least one S, got {desc!r}")
        self.desc = np.asarray(rows, dtype="c")
        self.nrow, self.ncol = len(rows), len(rows[0])
        self.is_slippery = is_slippery
        initial = (self.desc == b"S").astype(np.float64).ravel()
        initial /= initial.sum()
        P = self._transitions(rows, is_slippery, success_rate, reward_schedule)
        super().__init__(P, initial, max_episode_steps=max_episode_steps, env_id=env_id)

    def _transitions(
        self,
        rows: list[str],
        is_slippery: bool,
        success_rate: float,
        reward_schedule: tuple[float, float, float],
    ) -> Transitions:
        nrow, ncol = self.nrow, self.ncol
        fail_rate = (1.0 - success_rate) / 2.0

        def move(row: int, col: int, a: int) -> tuple[int, float, bool]:
            if a == LEFT:
                col = max(col - 1, 0)
            elif a == DOWN:
                row = min(row + 1, nrow - 1)
            elif a == RIGHT:
                col = min(col + 1, ncol - 1)
            else:
                row = max(row - 1, 0)
            letter = rows[row][col]
            reward = reward_schedule["GHF".index(letter if letter in "GHF" else "F")]
            return row * ncol + col, reward, letter in "GH"

        P: Transitions = {}
        for row in range(nrow):
            for col in range(ncol):
                s = row * ncol + col
                P[s] = {}
                for a in range(4):
                    if rows[row][col] in "GH":
                        P[s][a] = [(1.0, s, 0, True)]
                    elif is_slippery:
                        P[s][a] = [
                            (success_rate if b == a else fail_rate, *move(row, col, b))
                            for b in ((a - 1) % 4, a, (a + 1) % 4)
                        ]
                    else:
                        P[s][a] = [(1.0, *move(row, col, a))]
        return P

    def render(self) -> str:
        """The map with the agent's cell highlighted in red, under the last action."""
        cells = [[c.decode() for c in line] for line in self.desc.tolist()]
        if self._s is not None:
            row, col = divmod(self._s, self.ncol)
            cells[row][col] = f"\x1b[41m{cells[row][col]}\x1b[0m"
        head = f"  ({['Left', 'Down', 'Right', 'Up'][self.lastaction]})\n" if self.lastaction is not None else "\n"
        return head + "\n".join("".join(line) for line in cells) + "\n"
