"""Real servers on free ports, started once per session per (task, flags) and shared by tests."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from workbench.testsupport.servers import served


@pytest.fixture(scope="session")
def server(tiny_models):
    """server(task, *flags, cased=False) -> base URL of a running `workbench serve` for a tiny model."""
    stack = contextlib.ExitStack()
    urls: dict[tuple, str] = {}

    def get(task: str, *flags: str, cased: bool = False) -> str:
        key = (task, flags, cased)
        if key not in urls:
            urls[key] = stack.enter_context(served(tiny_models(task, cased=cased), *flags))
        return urls[key]

    with stack:
        yield get


@pytest.fixture(scope="session")
def http():
    with httpx.Client(timeout=60.0) as client:
        yield client


def v1(http, url, texts, model="model"):
    response = http.post(f"{url}/v1/models/{model}:predict", json={"instances": texts})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def v2(http, url, texts, model="model", **extra):
    body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}], **extra}
    response = http.post(f"{url}/v2/models/{model}/infer", json=body)
    assert response.status_code == 200, response.text
    return response.json()
