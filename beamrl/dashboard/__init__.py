"""The live web dashboard: a cluster's supervision trees, its events and its learning.

    beamrl dashboard tcp://127.0.0.1:7001 --port 8080      # a page for a running cluster
    beamrl train q-learning FrozenLake-v1 --dashboard       # the same page, from a training run

``beamrl.dashboard.server.Dashboard`` runs in the node's own event loop and needs
the ``dashboard`` extra (aiohttp); ``cluster`` and ``learning`` hold what it
shows as plain data and need nothing beyond beamrl. ``import beamrl`` never
imports this package.
"""
