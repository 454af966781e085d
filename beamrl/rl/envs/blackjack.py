"""Blackjack: beat the dealer with a hand closer to 21, cards from an infinite deck.

Same rules, rewards and seeding as gymnasium's ``Blackjack-v1``, whose registered
defaults are ``sab=True, natural=False`` (Sutton & Barto's Example 5.1: a natural
beats a non-natural dealer hand with +1). Actions: 0 stick, 1 hit. Observation:
``(player_sum, dealer_showing, usable_ace)`` as a tuple of Python ints. Rewards are
floats: +1 win, -1 loss, 0 draw, +1.5 for a winning natural when ``natural`` and not
``sab``. No time limit; there is no transition table ``P``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beamrl.rl.env import Env
from beamrl.rl.errors import InvalidAction
from beamrl.rl.exp import Exp
from beamrl.rl.spaces import Discrete, Tuple, np_random

#: card values; 10, J, Q, K all count 10 and the ace counts 1 (or 11 when usable)
DECK = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10]


def hand_value(hand: list[int]) -> tuple[int, int]:
    """``(sum, usable_ace)``: an ace counts 11 when that does not bust the hand."""
    total = sum(hand)
    if 1 in hand and total + 10 <= 21:
        return total + 10, 1
    return total, 0


def score(hand: list[int]) -> int:
    """The hand's value, 0 when bust."""
    total = hand_value(hand)[0]
    return 0 if total > 21 else total


def is_natural(hand: list[int]) -> bool:
    """An ace and a ten-valued card as the first two cards."""
    return sorted(hand) == [1, 10]


class Blackjack(Env):
    """``Blackjack-v1``; the draws follow gymnasium's, so seeded episodes match card for card."""

    def __init__(
        self,
        natural: bool = False,
        sab: bool = True,
        *,
        max_episode_steps: int | None = None,
        env_id: str = "Blackjack-v1",
    ) -> None:
        self.natural = natural
        self.sab = sab
        self.max_episode_steps = max_episode_steps
        self.env_id = env_id
        self.action_space = Discrete(2)
        self.observation_space = Tuple((Discrete(32), Discrete(11), Discrete(2)))
        self._rng: np.random.Generator | None = None
        self.player: list[int] = []
        self.dealer: list[int] = []
        self._elapsed = 0
        self._last: tuple[int, int, int] | None = None

    @property
    def np_random(self) -> np.random.Generator:
        """The env's generator; seeded by ``reset(seed=...)``, from fresh entropy otherwise."""
        if self._rng is None:
            self._rng = np_random(None)
        return self._rng

    def _draw(self) -> int:
        return int(self.np_random.choice(DECK))

    def _obs(self) -> tuple[int, int, int]:
        total, usable = hand_value(self.player)
        return (total, self.dealer[0], usable)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Exp:
        if seed is not None:
            self._rng = np_random(seed)
        self.dealer = [self._draw(), self._draw()]
        self.player = [self._draw(), self._draw()]
        # gymnasium draws the face-up card's look too; keep the generator in step with it
        self.dealer_suit = str(self.np_random.choice(["C", "D", "H", "S"]))
        if self.dealer[0] == 1:
            self.dealer_face = "A"
        elif self.dealer[0] == 10:
            self.dealer_face = str(self.np_random.choice(["J", "Q", "K"]))
        else:
            self.dealer_face = str(self.dealer[0])
        self._elapsed = 0
        self._last = self._obs()
        return Exp(next_state=self._last)

    def step(self, action: Any) -> Exp:
        if not self.action_space.contains(action):
            raise InvalidAction(f"action {action!r} is not in the action space {self.action_space!r}")
        if self._last is None:
            raise RuntimeError(f"{self.env_id}: call reset() before step()")
        if action:
            self.player.append(self._draw())
            terminated = hand_value(self.player)[0] > 21
            reward = -1.0 if terminated else 0.0
        else:
            terminated = True
            while hand_value(self.dealer)[0] < 17:
                self.dealer.append(self._draw())
            mine, theirs = score(self.player), score(self.dealer)
            reward = float(mine > theirs) - float(mine < theirs)
            if self.sab and is_natural(self.player) and not is_natural(self.dealer):
                reward = 1.0
            elif not self.sab and self.natural and is_natural(self.player) and reward == 1.0:
                reward = 1.5
        state, self._last = self._last, self._obs()
        self._elapsed += 1
        limit = self.max_episode_steps
        truncated = limit is not None and self._elapsed >= limit
        return Exp(state, int(action), reward, self._last, terminated, truncated, {})

    def render(self) -> str:
        """The dealer's face-up card and the player's hand."""
        if self._last is None:
            return "Blackjack: call reset()\n"
        total, showing, usable = self._last
        ace = " (usable ace)" if usable else ""
        return (
            f"Dealer shows {self.dealer_face}{self.dealer_suit} ({showing})\n"
            f"Player holds {self.player} = {total}{ace}\n"
        )
