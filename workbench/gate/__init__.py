"""`workbench gate`: a CI validation gate (train, serve, check, decide). See docs/gate.md."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from workbench.gate.cli import main as cli_main

    return cli_main(argv)
