"""Spaces: the sets actions and observations live in.

``Discrete``, ``Box``, ``MultiDiscrete``, ``MultiBinary``, ``Tuple`` and ``Dict`` mirror
gymnasium's spaces of the same names::

    space = Discrete(4)
    space.seed(0)
    a = space.sample()          # a Python int in [0, 4)
    assert space.contains(a)    # also: ``a in space``

Sampling is reproducible: ``seed(s)`` builds the same generator gymnasium builds
(``np.random.Generator(np.random.PCG64(np.random.SeedSequence(s)))``), and ``Discrete``
draws its samples the way gymnasium's does, so a seeded ``Discrete`` yields the same
values as a gymnasium ``Discrete`` seeded alike (as Python ints, not ``np.int64``).

On the wire a space is plain data: ``space.to_data()`` gives a dict of str/int/list/numpy
arrays, ``space_from_data(d)`` rebuilds it and raises ``ValueError`` on anything
malformed (it is fed untrusted bytes). The generator state does not travel.
``to_gym()``/``from_gym()`` convert to and from gymnasium spaces (gymnasium is optional).

``StateIndex``/``state_index`` flatten a Tuple of Discrete spaces (Blackjack's
``(32, 11, 2)``) into one index, so tabular agents can use a dense table.

Where things are: ``base`` (the ``Space`` ABC, seeding, limits), ``simple`` (Discrete,
Box, MultiDiscrete, MultiBinary), ``composite`` (Tuple, Dict), ``index``
(StateIndex), ``convert`` (gymnasium and wire conversions; the codec registration).
"""

from beamrl.rl.spaces.base import BOX_DTYPES, GYM_HINT, MAX_DEPTH, MAX_ELEMENTS, Space, gymnasium_module, np_random
from beamrl.rl.spaces.composite import Dict, Tuple
from beamrl.rl.spaces.convert import from_gym, space_from_data
from beamrl.rl.spaces.index import StateIndex, state_index
from beamrl.rl.spaces.simple import Box, Discrete, MultiBinary, MultiDiscrete

__all__ = [
    "BOX_DTYPES",
    "GYM_HINT",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "Box",
    "Dict",
    "Discrete",
    "MultiBinary",
    "MultiDiscrete",
    "Space",
    "StateIndex",
    "Tuple",
    "from_gym",
    "gymnasium_module",
    "np_random",
    "space_from_data",
    "state_index",
]
