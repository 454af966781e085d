"""``ReplayMemory``: a ring buffer of transitions, uniform or prioritized, with n-step returns.

Usage loop (an actor adds, a learner samples and updates priorities)::

    memory = ReplayMemory(100_000, prioritized=True, n_step=3, gamma=0.99, seed=0)
    exp = env.reset(seed=0)
    while not exp.done:
        exp = env.step(policy(exp.next_state))
        memory.add(exp)                                    # priority: the current max
    batch = memory.get_batch(32)                           # a plain dict of numpy arrays
    target = batch["reward"] + batch["discount"] * q_next(batch["next_state"]).max(-1)
    memory.update_priorities(batch["indices"], abs(target - q(batch)))

Storage. Columns are numpy arrays allocated on the first ``add`` from the shapes and
dtypes seen (``state``/``next_state`` and ``action`` keep theirs; ``reward`` and
``discount`` are ``float32``; ``terminated``/``truncated`` are ``bool``). Later input
must have the same shapes and a dtype that casts to the stored one within its kind
(float64 into float32 is fine, float into an int action is not). ``Exp.info`` is not
stored. When full, the oldest transition is overwritten.

Indices. Every stored transition gets a global id, the number of transitions added
before it (0, 1, 2, ...). ``get_batch`` returns these ids as ``indices``; its slot is
``id % capacity``. ``update_priorities`` refuses an id whose slot has since been
overwritten (``StaleIndex``), so a slow learner never re-prioritises the wrong item.

n-step returns. With ``n_step = n``, each stream of consecutive steps (``stream=``,
one per environment) is held back in a window of ``n`` steps and each step ``t``
is stored as::

    reward     = r_t + γ r_{t+1} + ... + γ^{k-1} r_{t+k-1}
    next_state = s_{t+k}        (the next_state of step t+k-1)
    discount   = 0 if the episode terminated within those k steps, else γ^k

where ``k = n``, or fewer when the episode ended (``terminated`` or ``truncated``)
before ``n`` steps. ``terminated``/``truncated`` are those of step ``t+k-1``. So a
learner always computes ``target = reward + discount * max_a Q(next_state, a)``:
no bootstrap through a terminal state, a bootstrap through a time limit. With
``n_step = 1`` this is the usual ``discount = γ (1 - terminated)``. Steps still in
a window are not visible, not saved and not checkpointed until their window
closes (``n`` later steps, the episode's end, or ``flush()``).

Prioritized replay (Schaul et al. 2016, proportional variant). An item's priority
``p`` (e.g. ``|TD error|``) is stored as ``(p + eps) ** alpha`` in a sum tree and a
min tree; sampling draws item ``i`` with ``P(i) = (p_i + eps)^α / Σ_j (p_j + eps)^α``,
one draw in each of ``n`` equal slices of the total (stratified). A new item gets
the given priority or, without one, the largest priority seen so far (1.0 at
first). Importance-sampling weights are ``w_i = (N P(i))^-β / max_j w_j`` with the
maximum taken **over the whole memory** (``j`` ranges over every stored item, so
``max_j w_j`` belongs to the item of smallest priority, as in Ape-X and OpenAI
baselines): weights lie in ``(0, 1]`` and do not depend on which other items the
batch happened to draw. β is ``beta``, raised linearly to 1.0 over ``beta_steps``
prioritized batches when ``beta_steps`` is given; ``set_beta(b)`` fixes it.

On disk (``persistence``). ``save(path)`` writes one ``.npz`` (see ``state_dict``); ``checkpoint(dir)``
writes only what changed since its last call into ``dir`` (see ``checkpoint``).
Neither uses pickle: every entry is a plain numeric array, the metadata is JSON text
stored as a ``uint8`` array, and loading passes ``allow_pickle=False``.

Modules: ``nstep`` (the windows), ``storage`` (packed rows, input checks), ``persistence``
(files and checkpoints), ``memory`` (``ReplayMemory``: adding, sampling, priorities).
"""

from beamrl.rl.errors import ReplayError, StaleIndex
from beamrl.rl.replay.memory import ReplayMemory
from beamrl.rl.replay.persistence import CHECKPOINT_FORMAT, FORMAT, MANIFEST
from beamrl.rl.replay.storage import COLUMNS, INPUT_COLUMNS, Batch

__all__ = [
    "CHECKPOINT_FORMAT",
    "COLUMNS",
    "FORMAT",
    "INPUT_COLUMNS",
    "MANIFEST",
    "Batch",
    "ReplayError",
    "ReplayMemory",
    "StaleIndex",
]
