"""Local `evaluate` metric modules (loaded by path, so nothing is fetched from the Hub)."""
