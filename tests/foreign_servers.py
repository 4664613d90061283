"""Servers nobody here wrote run from venvs of their own; a test that needs one skips where it is missing,
except in CI, which installs them and sets WORKBENCH_REQUIRE_<NAME>=1 so that a missing one fails."""

from __future__ import annotations

import os

import pytest


def require(missing_reason: str | None, require_env: str) -> None:
    """Skip (or, with `require_env`=1, fail) with `missing_reason` when the server is not installed."""
    if missing_reason is None:
        return
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {missing_reason}", pytrace=False)
    pytest.skip(missing_reason)
