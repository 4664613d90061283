"""Shared fixtures: tiny models built in code (never downloaded), and the slow-test switch."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (real pretrained model, real data)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("WORKBENCH_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or WORKBENCH_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A function task -> directory of a tiny model for that task, built once per session."""
    from workbench.testsupport.tiny_models import build_tiny_model

    built: dict[tuple, str] = {}

    def get(task: str, cased: bool = False) -> str:
        key = (task, cased)
        if key not in built:
            directory = tmp_path_factory.mktemp(f"tiny-{task}{'-cased' if cased else ''}")
            built[key] = str(build_tiny_model(task, directory, cased=cased))
        return built[key]

    return get
