"""Every difference from KServe's runtime that we keep on purpose (conformance.profiles.DIVERGENCES, profile
`kserve`) is true of the real runtime and not of our predictor: its probe goes to both servers, an HTTP
`Probe` to their REST ports, a `GrpcProbe` to their gRPC ports."""

from __future__ import annotations

import httpx
import pytest

from conformance.checks import has_error_body
from conformance.profiles import DIVERGENCES, GrpcOutcome, GrpcProbe
from tests.kserve_runtime.combos import COMBOS as ALL_COMBOS

COMBOS = ALL_COMBOS[:1]  # token classification, default mode
# Probes any model shows; a probe for one task (text_embedding's) goes to a server of that task
# (tests/conformance_meta/test_against_kserve_embeddings.py).
KSERVE = [d for d in DIVERGENCES if "kserve" in d.profiles and d.probe.task is None]
# What our predictor may answer a gRPC probe instead: a request error, named as such, with a message.
CLIENT_ERROR_CODES = {"INVALID_ARGUMENT", "NOT_FOUND"}


def send(divergence, url: str, grpc_address: str) -> httpx.Response | GrpcOutcome:
    if isinstance(divergence.probe, GrpcProbe):
        from conformance.grpc_client import GrpcClient

        client = GrpcClient(grpc_address, timeout=60.0)
        try:
            return divergence.probe.send(client)
        finally:
            client.close()
    # A fresh connection per probe: after some error answers the runtime closes a kept-alive connection.
    with httpx.Client(timeout=60.0) as client:
        return divergence.probe.send(client, url)


def describe(answer: httpx.Response | GrpcOutcome) -> str:
    if isinstance(answer, GrpcOutcome):
        shown = f": {str(answer.response)[:300]}" if answer.response is not None else ""
        return f"{answer.code} {answer.details[:300]!r}{shown}"
    return f"{answer.status_code}: {answer.text[:300]}"


@pytest.mark.parametrize("divergence", KSERVE, ids=[d.key for d in KSERVE])
def test_real_runtime_answers_as_the_kserve_profile_says(pair, divergence):
    answer = send(divergence, pair.kserve, pair.kserve_grpc)
    assert divergence.matches(answer), (f"{divergence.key}: the kserve profile says {divergence.reason!r}, "
                                        f"but KServe's runtime answered {describe(answer)}")


@pytest.mark.parametrize("divergence", KSERVE, ids=[d.key for d in KSERVE])
def test_our_predictor_does_not_share_the_divergence(pair, divergence):
    answer = send(divergence, pair.ours, pair.ours_grpc)
    assert not divergence.matches(answer), f"{divergence.key}: ours answers like KServe: {describe(answer)}"
    if isinstance(answer, GrpcOutcome):
        assert answer.code == "OK" or (answer.code in CLIENT_ERROR_CODES and answer.details), \
            f"{divergence.key}: ours answered {describe(answer)}"
    elif answer.status_code >= 400:
        assert 400 <= answer.status_code < 500 and has_error_body(answer), \
            f"{divergence.key}: ours answered {describe(answer)}"
