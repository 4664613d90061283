"""`--isvc NAME --namespace NS --ingress HOST:PORT`: the suite finds its endpoint through KServe's API.

The Kubernetes API is the fake one of tests/k8s (the real one cannot run here); the "ingress" is our
predictor on a local port, so the requests the suite sends after discovery are real. The same server
serves gRPC on another port: an InferenceService that declares that port (a RawDeployment whose predictor
address is this machine) gets the gRPC checks run over it; one whose gRPC port cannot be reached, or that
declares none, gets them skipped with a reason that says what to pass.
"""

from __future__ import annotations

import copy

import pytest

from tests.conformance_meta.suite_runner import run_suite
from tests.k8s.conftest import FakeKubeAPI

ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "ner"},
    "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}, "protocolVersion": "v2",
                                     "args": ["--model_name=tiny", "--task=token_classification",
                                              "--return_probabilities"]}}},
}
CHECKS = "v2_model_ready or v2_output or v1_model or grpc_server_live or grpc_infer_typed_bytes"
GRPC_CHECKS = {"grpc_server_live", "grpc_infer_typed_bytes"}


@pytest.fixture(scope="module")
def predictor(tiny_models):
    """(REST base URL, gRPC port) of our predictor serving the tiny NER model as `tiny`."""
    from workbench.testsupport.servers import free_port, served

    port = free_port()
    with served(tiny_models("token_classification"), "--return_probabilities", "--grpc_port", str(port),
                model_name="tiny") as url:
        yield url, port


def with_ports(*ports: dict) -> dict:
    isvc = copy.deepcopy(ISVC)
    isvc["spec"]["predictor"]["model"]["ports"] = list(ports)
    return isvc


def run_with_isvc(tmp_path, monkeypatch, url: str, isvc: dict, ready_status: dict | None = None):
    api = FakeKubeAPI().start()
    try:
        api.add_isvc(isvc, namespace="team", ready_status=ready_status)
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path)))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        return run_suite(tmp_path / "isvc.json", "--isvc", "ner", "--namespace", "team",
                         "--ingress", url.removeprefix("http://"), "-k", CHECKS)
    finally:
        api.stop()


def grpc_skip_reasons(run) -> set[str]:
    return {c["reason"] for c in run.report["checks"] if c["id"] in GRPC_CHECKS and c["outcome"] == "skip"}


def test_isvc_resolves_url_host_model_task_mode_and_protocol(predictor, tmp_path, monkeypatch):
    run = run_with_isvc(tmp_path, monkeypatch, predictor[0], ISVC)
    outcomes = {c["id"]: c["outcome"] for c in run.report["checks"]}
    assert outcomes["v2_model_ready"] == "pass", run.describe()
    assert outcomes["v2_output_datatype_and_shape_for_task_and_mode"] == "pass", run.describe()
    assert outcomes["v1_model_ready"] == "skip", run.describe()  # protocolVersion v2: V1 not checked
    assert {c["target"] for c in run.report["checks"]} == {"token_classification-probabilities"}
    # no gRPC port declared: the gRPC checks skip, and say so
    (reason,) = grpc_skip_reasons(run)
    assert "InferenceService team/ner exposes no gRPC port" in reason and "--grpc-endpoint" in reason


def test_isvc_grpc_port_is_discovered_and_checked(predictor, tmp_path, monkeypatch):
    url, grpc_port = predictor
    status = {"deploymentMode": "RawDeployment",
              "components": {"predictor": {"address": {"url": "http://127.0.0.1"}}}}
    run = run_with_isvc(tmp_path, monkeypatch, url, with_ports({"name": "grpc", "containerPort": grpc_port}),
                        ready_status=status)
    outcomes = {c["id"]: c["outcome"] for c in run.report["checks"]}
    assert {outcomes[check] for check in GRPC_CHECKS} == {"pass"}, run.describe()
    assert outcomes["v2_model_ready"] == "pass", run.describe()


def test_unreachable_discovered_grpc_port_skips_the_grpc_checks_clearly(predictor, tmp_path, monkeypatch):
    # Serverless with h2c: gRPC goes through the ingress, which here is the REST port (it speaks no gRPC)
    url, _ = predictor
    run = run_with_isvc(tmp_path, monkeypatch, url, with_ports({"name": "h2c", "containerPort": 8081}))
    assert run.outcomes("v2_model_ready") == {"pass"}, run.describe()  # the REST checks still run
    (reason,) = grpc_skip_reasons(run)
    assert f"cannot reach gRPC endpoint {url.removeprefix('http://')} (discovered from InferenceService " \
           "team/ner: predictor container port h2c (8081), deployment mode Serverless" in reason
    assert "kubectl port-forward -n istio-system svc/istio-ingressgateway 8081:80" in reason
    assert "the gRPC checks skip" in run.output
