"""Known divergences per server profile (reference doc §1 "Known defects" and §2 "Divergences").

A check that fails calls `diverge_or_fail(...)`: when the chosen profile knows this exact divergence
(same check, and the observed response matches what that server is known to do), the check is
reported as a *known divergence* (`pytest.xfail` with the reason); otherwise it fails. Under the
`strict` profile every divergence fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import httpx
import pytest

PROFILES = ("strict", "kserve", "mlserver", "triton")


def _status(*codes: int) -> Callable[[httpx.Response | None], bool]:
    return lambda response: response is not None and response.status_code in codes


def _empty_body(response: httpx.Response | None) -> bool:
    return response is not None and response.status_code == 200 and not response.content.strip()


def _any(_response: httpx.Response | None) -> bool:
    return True


@dataclass(frozen=True)
class Divergence:
    key: str
    profiles: tuple[str, ...]
    reason: str
    matches: Callable[[httpx.Response | None], bool]


DIVERGENCES: list[Divergence] = [
    Divergence("v2-malformed-json", ("kserve",),
               "KServe validates V2 bodies with FastAPI/pydantic: malformed JSON gets 422 {\"detail\": [...]}",
               _status(422)),
    Divergence("v2-malformed-json", ("mlserver",), "MLServer answers request validation errors with 422",
               _status(422)),
    Divergence("v2-missing-inputs", ("kserve", "mlserver"),
               "a V2 body without 'inputs' fails pydantic validation: 422 {\"detail\": [...]}", _status(422)),
    Divergence("v2-wrong-datatype", ("kserve",),
               "KServe's HF runtime does not check the input datatype; the tokenizer/numpy conversion fails: 500",
               _status(500)),
    Divergence("v2-wrong-datatype", ("mlserver",), "MLServer answers datatype validation errors with 422",
               _status(422)),
    Divergence("v2-shape-data-mismatch", ("kserve",),
               "KServe's HF runtime ignores the input shape and answers 200", _status(200)),
    Divergence("v1-missing-instances", ("kserve",),
               "KServe's get_predict_input reads payload['instances'] unguarded: 500 KeyError", _status(500)),
    Divergence("v1-non-json-content-type", ("kserve",),
               "KServe decodes a body without a JSON content type as raw bytes: a confusing 500", _status(500)),
    Divergence("v2-model-metadata-tensors", ("kserve",),
               "KServe's Model.get_input_types/get_output_types default to []: metadata inputs/outputs are empty",
               _any),
    Divergence("hf-entity-route", ("kserve", "mlserver", "triton"),
               "POST /models/{name} (the HF Inference API's entity route) is a workbench extension; other servers "
               "answer 404/405", _status(404, 405)),
    Divergence("v2-health-body", ("mlserver", "triton"),
               "MLServer and Triton answer health probes with an empty body (the status code is normative)",
               _empty_body),
    Divergence("v2-model-ready-body", ("mlserver", "triton"),
               "MLServer and Triton answer model-ready probes with an empty body (the status code is normative)",
               _empty_body),
]


def known_divergence(profile: str, key: str, response: httpx.Response | None) -> str | None:
    """The reason when `profile` knows divergence `key` and the response matches it, else None."""
    if profile == "strict":
        return None
    for divergence in DIVERGENCES:
        if divergence.key == key and profile in divergence.profiles and divergence.matches(response):
            return divergence.reason
    return None


def diverge_or_fail(profile: str, key: str, response: httpx.Response | None, message: str) -> None:
    """xfail with the reason when the divergence is known to `profile`; otherwise fail with `message`."""
    reason = known_divergence(profile, key, response)
    if reason is not None:
        pytest.xfail(f"known divergence [{profile}] {key}: {reason} -- observed: {message}")
    pytest.fail(message, pytrace=False)


def profile_keys(profile: str) -> list[str]:
    return sorted({d.key for d in DIVERGENCES if profile in d.profiles})
