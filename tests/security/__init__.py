"""The standing security suite: each test is an attack that once worked (issue 10)."""
