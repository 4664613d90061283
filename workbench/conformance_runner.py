"""`workbench conformance ...`: run the conformance suite shipped inside the installed package.

Equivalent to `pytest conformance ...` in a clone, for users who pip-installed workbench:

    workbench conformance --endpoint http://host:8080 --model-name bert --task token_classification \
        --profile kserve --conformance-report out.json

Every argument is passed to pytest (so pytest's own options such as `-k`, `-x`, `--junitxml` work too).
"""

from __future__ import annotations

import sys
from pathlib import Path


def conformance_dir() -> Path:
    """The directory of the installed `conformance` package (the suite's tests and conftest)."""
    import conformance

    return Path(conformance.__file__).resolve().parent


def pytest_args(argv: list[str]) -> list[str]:
    # -p no:cacheprovider: do not write .pytest_cache into site-packages.
    return [str(conformance_dir()), "-p", "no:cacheprovider", *argv]


def main(argv: list[str] | None = None) -> int:
    import pytest

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("Suite options (from `pytest --help`, group 'conformance suite'):\n")
    return int(pytest.main(pytest_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
