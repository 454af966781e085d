"""Taxi: pick a passenger up at one of four stands and drop them at their destination.

Same dynamics, rewards, 200-step limit and seeding as gymnasium 1.4's ``Taxi-v4``
(``Taxi-v3`` is accepted as an alias and builds the same env). Actions: 0 south,
1 north, 2 east, 3 west, 4 pickup, 5 dropoff. Observation: ``encode(row, col,
passenger, destination)`` in ``[0, 500)``, a Python int. Rewards: -1 a step, +20 for a
right dropoff (the episode ends), -10 for an illegal pickup/dropoff.

``is_rainy`` makes moves slip sideways (``rainy_probability`` stays on course);
``fickle_passenger`` lets the passenger change destination once, after the first move
with them aboard, with ``fickle_probability`` drawn at reset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beamrl.rl.envs.tabular import TabularEnv, Transitions
from beamrl.rl.exp import Exp

MAP = [
    "+---------+",
    "|R: | : :G|",
    "| : | : : |",
    "| : : : : |",
    "| | : | : |",
    "|Y| : |B: |",
    "+---------+",
]
LOCS = [(0, 0), (0, 4), (4, 0), (4, 3)]
ROWS = COLS = 5
N_STATES, N_ACTIONS = 500, 6
#: (forward, left, right) moves for actions 0..3 when it rains
RAINY_MOVES = {
    0: ((1, 0), (0, 1), (0, -1)),
    1: ((-1, 0), (0, -1), (0, 1)),
    2: ((0, 1), (-1, 0), (1, 0)),
    3: ((0, -1), (1, 0), (-1, 0)),
}


def encode(row: int, col: int, passenger: int, destination: int) -> int:
    """The state index of taxi at (row, col), passenger at stand (4: in taxi), destination."""
    return ((row * 5 + col) * 5 + passenger) * 4 + destination


def decode(state: int) -> tuple[int, int, int, int]:
    """``(row, col, passenger, destination)`` of a state index."""
    rest, destination = divmod(state, 4)
    rest, passenger = divmod(rest, 5)
    row, col = divmod(rest, 5)
    return row, col, passenger, destination


class Taxi(TabularEnv):
    """``Taxi-v4``; ``info`` carries ``prob`` and ``action_mask`` like gymnasium's."""

    def __init__(
        self,
        is_rainy: bool = False,
        fickle_passenger: bool = False,
        rainy_probability: float = 0.8,
        fickle_probability: float = 0.3,
        *,
        max_episode_steps: int | None = 200,
        env_id: str = "Taxi-v4",
    ) -> None:
        self.desc = np.asarray(MAP, dtype="c")
        self.locs = LOCS
        self.is_rainy = is_rainy
        self.fickle_passenger = fickle_passenger
        self.rainy_probability = rainy_probability
        self.fickle_probability = fickle_probability
        self.fickle_step = False
        initial = np.zeros(N_STATES)
        P: Transitions = {s: {} for s in range(N_STATES)}
        for row in range(ROWS):
            for col in range(COLS):
                for passenger in range(5):
                    for destination in range(4):
                        state = encode(row, col, passenger, destination)
                        if passenger < 4 and passenger != destination:
                            initial[state] += 1
                        for action in range(N_ACTIONS):
                            build = self._rainy if is_rainy else self._dry
                            P[state][action] = build(row, col, passenger, destination, action)
        initial /= initial.sum()
        self._masks = np.array([self.action_mask(s) for s in range(N_STATES)])
        super().__init__(P, initial, max_episode_steps=max_episode_steps, env_id=env_id)

    # -- the model -----------------------------------------------------------------------

    def _open(self, row: int, col: int, side: int) -> bool:
        """True when no wall is east (side=+1) or west (side=-1) of cell (row, col)."""
        return bool(self.desc[1 + row, 2 * col + (2 if side > 0 else 0)] == b":")

    def _pickup(self, loc: tuple[int, int], passenger: int) -> tuple[int, int]:
        if passenger < 4 and loc == LOCS[passenger]:
            return 4, -1
        return passenger, -10

    def _dropoff(self, loc: tuple[int, int], passenger: int, destination: int) -> tuple[int, int, bool]:
        if loc == LOCS[destination] and passenger == 4:
            return destination, 20, True
        if loc in LOCS and passenger == 4:
            return LOCS.index(loc), -1, False
        return passenger, -10, False

    def _dry(self, row: int, col: int, passenger: int, destination: int, action: int) -> list:
        new_row, new_col, new_passenger, reward, terminated = row, col, passenger, -1, False
        if action == 0:
            new_row = min(row + 1, ROWS - 1)
        elif action == 1:
            new_row = max(row - 1, 0)
        elif action == 2 and self._open(row, col, +1):
            new_col = min(col + 1, COLS - 1)
        elif action == 3 and self._open(row, col, -1):
            new_col = max(col - 1, 0)
        elif action == 4:
            new_passenger, reward = self._pickup((row, col), passenger)
        elif action == 5:
            new_passenger, reward, terminated = self._dropoff((row, col), passenger, destination)
        return [(1.0, encode(new_row, new_col, new_passenger, destination), reward, terminated)]

    def _slide(self, row: int, col: int, move: tuple[int, int]) -> tuple[int, int]:
        dr, dc = move
        new_row = max(0, min(row + dr, ROWS - 1))
        new_col = max(0, min(col + dc, COLS - 1))
        if dc == 1 and self.desc[1 + new_row, 2 * new_col] != b":":
            return row, col
        if dc == -1 and self.desc[1 + new_row, 2 * new_col + 2] != b":":
            return row, col
        return new_row, new_col

    def _rainy(self, row: int, col: int, passenger: int, destination: int, action: int) -> list:
        new_row, new_col, new_passenger, reward, terminated = row, col, passenger, -1, False
        left = right = (row, col)
        if (
            (action == 0 and row < ROWS - 1)
            or (action == 1 and row > 0)
            or (action == 2 and self._open(row, col, +1))
            or (action == 3 and self._open(row, col, -1))
        ):
            forward, to_left, to_right = RAINY_MOVES[action]
            new_row = max(0, min(row + forward[0], ROWS - 1))
            new_col = max(0, min(col + forward[1], COLS - 1))
            left = self._slide(row, col, to_left)
            right = self._slide(row, col, to_right)
        elif action == 4:
            new_passenger, reward = self._pickup((row, col), passenger)
        elif action == 5:
            new_passenger, reward, terminated = self._dropoff((row, col), passenger, destination)
        intended = encode(new_row, new_col, new_passenger, destination)
        if action > 3:
            return [(1.0, intended, reward, terminated)]
        side = (1.0 - self.rainy_probability) / 2.0
        return [
            (self.rainy_probability, intended, -1, terminated),
            (side, encode(*left, new_passenger, destination), -1, terminated),
            (side, encode(*right, new_passenger, destination), -1, terminated),
        ]

    def action_mask(self, state: int) -> np.ndarray:
        """int8 mask of the actions that change the state (as gymnasium's ``action_mask``)."""
        mask = np.zeros(N_ACTIONS, dtype=np.int8)
        row, col, passenger, _ = decode(state)
        mask[0] = row < 4
        mask[1] = row > 0
        mask[2] = col < 4 and self._open(row, col, +1)
        mask[3] = col > 0 and self._open(row, col, -1)
        mask[4] = passenger < 4 and (row, col) == LOCS[passenger]
        mask[5] = passenger == 4 and (row, col) in LOCS
        return mask

    # -- Env -----------------------------------------------------------------------------

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Exp:
        exp = super().reset(seed=seed, options=options)
        self.fickle_step = bool(self.fickle_passenger and self.np_random.random() < self.fickle_probability)
        return exp

    def _reset_info(self) -> dict[str, Any]:
        assert self._s is not None
        return {"prob": 1.0, "action_mask": self._masks[self._s].copy()}

    def step(self, action: Any) -> Exp:
        before = self._s
        exp = super().step(action)
        if self.fickle_passenger and self.fickle_step and before is not None:
            row0, col0, passenger0, destination0 = decode(before)
            row, col, passenger, _ = decode(exp.next_state)
            if passenger0 == 4 and (row, col) != (row0, col0):
                self.fickle_step = False
                others = [d for d in range(4) if d != destination0]
                destination = int(self.np_random.choice(others))
                exp.next_state = self._s = encode(row, col, passenger, destination)
        exp.info["action_mask"] = self._masks[exp.next_state].copy()
        return exp

    def render(self) -> str:
        """The map: taxi yellow (green with the passenger aboard), passenger blue, goal magenta."""
        out = [[c.decode() for c in line] for line in self.desc.tolist()]
        if self._s is None:
            return "\n".join("".join(r) for r in out) + "\n\n"
        row, col, passenger, destination = decode(self._s)
        if passenger < 4:
            out[1 + row][2 * col + 1] = f"\x1b[43m{out[1 + row][2 * col + 1]}\x1b[0m"
            pi, pj = LOCS[passenger]
            out[1 + pi][2 * pj + 1] = f"\x1b[34;1m{out[1 + pi][2 * pj + 1]}\x1b[0m"
        else:
            cell = out[1 + row][2 * col + 1]
            out[1 + row][2 * col + 1] = f"\x1b[42m{'_' if cell == ' ' else cell}\x1b[0m"
        di, dj = LOCS[destination]
        out[1 + di][2 * dj + 1] = f"\x1b[35m{out[1 + di][2 * dj + 1]}\x1b[0m"
        names = ["South", "North", "East", "West", "Pickup", "Dropoff"]
        tail = f"  ({names[self.lastaction]})\n" if self.lastaction is not None else "\n"
        return "\n".join("".join(r) for r in out) + "\n" + tail
