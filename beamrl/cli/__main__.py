"""``python -m beamrl.cli``: the ``beamrl`` command (how actor nodes are started)."""

import sys

from beamrl.cli import main

sys.exit(main())
