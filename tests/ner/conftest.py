"""Fixtures for the NER training tests: where the shared CoNLL-2003 copy lives (if anywhere)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def conll_dir() -> Path:
    """The shared CoNLL-2003 files: $WORKBENCH_CONLL_DIR, else ../shared/data/conll2003 beside the repo."""
    if os.environ.get("WORKBENCH_CONLL_DIR"):
        return Path(os.environ["WORKBENCH_CONLL_DIR"])
    return (Path(__file__).resolve().parents[2] / "../shared/data/conll2003").resolve()


@pytest.fixture
def conll2003():
    directory = conll_dir()
    if not (directory / "train.txt").is_file():
        pytest.skip(f"CoNLL-2003 data not found in {directory} (set WORKBENCH_CONLL_DIR)")
    return directory
