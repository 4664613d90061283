"""Every difference from KServe's runtime that we keep on purpose (conformance.profiles.DIVERGENCES, profile
`kserve`) is true of the real runtime and not of our predictor: its probe goes to both servers."""

from __future__ import annotations

import httpx
import pytest

from conformance.checks import has_error_body
from conformance.profiles import DIVERGENCES
from tests.kserve_runtime.combos import COMBOS as ALL_COMBOS

COMBOS = ALL_COMBOS[:1]  # token classification, default mode
# Probes any model shows; a probe for one task (text_embedding's) goes to a server of that task
# (tests/conformance_meta/test_against_kserve_embeddings.py).
KSERVE = [d for d in DIVERGENCES if "kserve" in d.profiles and d.probe.task is None]


def send(divergence, url: str) -> httpx.Response:
    # A fresh connection per probe: after some error answers the runtime closes a kept-alive connection.
    with httpx.Client(timeout=60.0) as client:
        return divergence.probe.send(client, url)


@pytest.mark.parametrize("divergence", KSERVE, ids=[d.key for d in KSERVE])
def test_real_runtime_answers_as_the_kserve_profile_says(pair, divergence):
    response = send(divergence, pair.kserve)
    assert divergence.matches(response), (f"{divergence.key}: the kserve profile says {divergence.reason!r}, "
                                          f"but KServe's runtime answered {response.status_code}: {response.text[:300]}")


@pytest.mark.parametrize("divergence", KSERVE, ids=[d.key for d in KSERVE])
def test_our_predictor_does_not_share_the_divergence(pair, divergence):
    response = send(divergence, pair.ours)
    assert not divergence.matches(response), f"{divergence.key}: ours answers like KServe: {response.text[:300]}"
    if response.status_code >= 400:
        assert 400 <= response.status_code < 500 and has_error_body(response), \
            f"{divergence.key}: ours answered {response.status_code}: {response.text[:300]}"
