"""`python -m conformance ...`: run the conformance suite, from a clone or an installed package.

The same as `pytest conformance ...` in a clone, for users who pip-installed workbench:

    python -m conformance --endpoint http://host:8080 --model-name bert --task token_classification \
        --profile kserve --conformance-report out.json

`--level protocol` checks only what the KServe V1 / OIP documents require (any V1/V2 server); `kserve` adds
what KServe's Hugging Face runtime does, `workbench` our extensions (default: all three). With --endpoint
the suite first checks that the endpoint answers and serves the model, and stops with one line if not.

Every argument is passed to pytest (so pytest's own options such as `-k`, `-x`, `--junitxml` work too).
`workbench conformance ...` runs this module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def suite_dir() -> Path:
    """The directory of the `conformance` package (the suite's checks and its conftest)."""
    return Path(__file__).resolve().parent


def pytest_args(argv: list[str]) -> list[str]:
    # -p no:cacheprovider: do not write .pytest_cache into site-packages.
    return [str(suite_dir()), "-p", "no:cacheprovider", *argv]


def main(argv: list[str] | None = None) -> int:
    import pytest

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("Suite options (from `pytest --help`, group 'conformance suite'):\n")
    try:
        code = int(pytest.main(pytest_args(argv)))
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
