"""Helpers shared by the checks: the `clause` marker and error-response assertions."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conformance.levels import LEVELS
from conformance.profiles import diverge_or_fail

clause = pytest.mark.clause
needs_task = pytest.mark.needs_task


def level(name: str):
    """`@level("protocol")`: the level of a check (one of LEVELS)."""
    if name not in LEVELS:
        raise ValueError(f"unknown conformance level {name!r}: one of {', '.join(LEVELS)}")
    return pytest.mark.level(name)


def protocol(name: str):
    return pytest.mark.protocol(name)


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, ValueError):
        return None


def has_error_body(response: httpx.Response) -> bool:
    body = json_body(response)
    return isinstance(body, dict) and isinstance(body.get("error"), str) and bool(body["error"])


def expect_client_error(response: httpx.Response, *, profile: str, divergence: str, what: str,
                        allowed: tuple[int, ...] = (400,)) -> None:
    """The server must refuse `what` with a 4xx in `allowed` and a JSON `{"error": "..."}` body."""
    if response.status_code in allowed and has_error_body(response):
        return
    if response.status_code in allowed:
        message = (f"{what}: status {response.status_code} is right but the body is not {{\"error\": \"...\"}}: "
                   f"{response.text[:200]}")
    else:
        message = (f"{what}: expected {'/'.join(map(str, allowed))} with {{\"error\": \"...\"}}, got "
                   f"{response.status_code}: {response.text[:200]}")
    diverge_or_fail(profile, divergence, response, message)


def expect_still_healthy(client, target) -> None:
    """After a bad request the endpoint still answers readiness and a good inference."""
    ready = client.get("/v2/health/ready") if "v2" in target.protocols else client.get(f"/v1/models/{target.model_name}")
    assert ready.status_code == 200, f"endpoint unhealthy after a bad request: readiness answered {ready.status_code}"
    good = (client.post(target.v2_infer_path, json_body={"inputs": [{"name": target.input_name, "shape": [1], "datatype": "BYTES",
                                                                      "data": target.texts(1)}]})
            if "v2" in target.protocols else client.post(target.v1_predict_path, json_body={"instances": target.texts(1)}))
    assert good.status_code == 200, f"endpoint broken after a bad request: a good request answered {good.status_code}"
