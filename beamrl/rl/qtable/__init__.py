"""Q-tables: action values for tabular agents, dense (numpy) or dict-backed.

``BaseQTable`` is the API agents and servers use; ``QTable`` stores a dense
``(n_states, n_actions)`` array, ``DictQTable`` a row per hashable state, created on first
write. The Elixir original's ``q_get`` / ``q_set`` / ``get_q`` / ``get_max_action`` are
``get`` / ``set`` / ``values`` / ``greedy_action``::

    q = QTable(n_states=16, n_actions=4, seed=0)
    q.get(s, a)                      # 0.0 until written
    q.set(s, a, 1.5)
    q.values(s)                      # copy of the row: every action's value
    q.greedy_action(s)               # argmax, ties broken by the table's seeded rng
    q.td_update([s0, s1], [a0, a1], [t0, t1], alpha=0.1)   # q[s,a] += alpha * (t - q[s,a])
    q.apply_batch([(s0, a0, t0), (s1, a1, t1)], alpha=0.1)  # same, as (s, a, target) rows
    q.save("q.npz"); q2 = QTable.load("q.npz"); q.restore("q.npz")

Batched updates apply in order: a pair that appears twice is updated twice, the second
time from the value the first left, exactly as two sequential ``td_update`` calls would.

Tables are ``beamrl.persist.Saveable``: ``save`` writes an ``.npz`` (no pickle) atomically.
``StateIndex``/``state_index`` (flattening Tuple observations) live in ``beamrl.rl.spaces``
and are importable from here as before. Modules: ``base`` (``BaseQTable``), ``dense``
(``QTable``), ``keyed`` (``DictQTable``).
"""

from beamrl.rl.errors import QTableError
from beamrl.rl.qtable.base import BaseQTable, Update
from beamrl.rl.qtable.dense import QTable
from beamrl.rl.qtable.keyed import DictQTable
from beamrl.rl.spaces import StateIndex, state_index

__all__ = ["BaseQTable", "DictQTable", "QTable", "QTableError", "StateIndex", "Update", "state_index"]
