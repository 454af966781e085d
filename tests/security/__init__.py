"""The standing security suite: what an attacker on the wire or on the machine tries."""
