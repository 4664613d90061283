"""Discovery (`resolve_isvc`) through the real kubernetes client.

No Kubernetes API server can run here: `fake_api` (tests/k8s/conftest.py) is a local HTTP server that
stands in for a cluster, answering the API paths the client uses, with a kubeconfig file pointing at it.
"""

from __future__ import annotations

import pytest

from workbench.k8s import discovery
from workbench.k8s.discovery import DiscoveryError, resolve_isvc
from workbench.k8s.examples import EXAMPLES

FAST = {"poll_interval": 0.02}


def example_isvc(name: str) -> dict:
    return next(d for d in EXAMPLES[name].documents() if d["kind"] == "InferenceService")


def test_ready_after_a_few_polls_gives_ingress_host_header_model_and_protocol(fake_api, kubeconfig):
    path = fake_api.add_isvc(example_isvc("bert-ner-v2"), reads_until_ready=3)
    fake_api.add_ingress_service(ip="10.0.0.5", port=80)

    endpoint = resolve_isvc("huggingface-bert", "default", timeout=10, **FAST)

    assert endpoint == discovery.ResolvedEndpoint(
        base_url="http://10.0.0.5:80", host_header="huggingface-bert.default.example.com", model_name="bert",
        protocol="v2", isvc_url="http://huggingface-bert.default.example.com", task=None, mode="default")
    assert endpoint.headers == {"Host": "huggingface-bert.default.example.com"}
    assert fake_api.reads[path] == 4  # three not-ready reads, then Ready
    assert ("GET", "/api/v1/nodes") not in fake_api.requests  # a load balancer address needs no node


def test_explicit_kubeconfig_and_other_namespace(fake_api, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    config = fake_api.kubeconfig(tmp_path)
    fake_api.add_isvc(example_isvc("distilbert-sentiment-v1"), namespace="models")
    fake_api.add_ingress_service(hostname="lb.example.net", port=8081)

    endpoint = resolve_isvc("huggingface-distilbert", "models", kube_config=str(config), context="fake", **FAST)

    assert endpoint.base_url == "http://lb.example.net:8081"
    assert endpoint.host_header == "huggingface-distilbert.models.example.com"
    assert (endpoint.model_name, endpoint.protocol) == ("distilbert", "v1")


def test_not_ready_within_timeout_names_the_false_condition_and_its_message(fake_api, kubeconfig):
    fake_api.add_isvc(example_isvc("bert-ner-v1"), reads_until_ready=None)
    fake_api.add_ingress_service(ip="10.0.0.5")

    with pytest.raises(DiscoveryError) as caught:
        resolve_isvc("huggingface-bert", timeout=0.2, **FAST)

    message = str(caught.value)
    assert "default/huggingface-bert not Ready after 0.2s" in message
    assert "PredictorReady=False (RevisionMissing: " in message
    assert 'Configuration "huggingface-bert-predictor" does not have any ready Revision.' in message


def test_unknown_isvc_is_not_found(fake_api, kubeconfig):
    with pytest.raises(DiscoveryError, match=r"InferenceService default/nope not found.*kubectl get "
                                             r"inferenceservices -n default"):
        resolve_isvc("nope", "default", timeout=5, **FAST)


def test_missing_kubeconfig_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(DiscoveryError, match=r"no kubeconfig: looked for .*absent"):
        resolve_isvc("bert", timeout=1)
    with pytest.raises(DiscoveryError, match=r"no kubeconfig: looked for .*other"):
        resolve_isvc("bert", kube_config=str(tmp_path / "other"), timeout=1)


def test_unknown_context_is_a_clear_error(fake_api, kubeconfig):
    with pytest.raises(DiscoveryError, match=r"kubeconfig .*: .*nowhere"):
        resolve_isvc("bert", context="nowhere", timeout=1)


def test_no_ingress_service_is_a_clear_error(fake_api, kubeconfig):
    fake_api.add_isvc(example_isvc("bert-ner-v1"))
    with pytest.raises(DiscoveryError, match=r"no ingress address: service istio-system/istio-ingressgateway "
                                             r"not found.*--ingress HOST:PORT"):
        resolve_isvc("huggingface-bert", timeout=5, **FAST)


def test_ingress_without_address_or_node_port_is_a_clear_error(fake_api, kubeconfig):
    fake_api.add_isvc(example_isvc("bert-ner-v1"))
    fake_api.add_ingress_service(service_type="ClusterIP")
    with pytest.raises(DiscoveryError, match=r"no ingress address: .*type ClusterIP.*http2:80.*--ingress"):
        resolve_isvc("huggingface-bert", timeout=5, **FAST)


def test_node_port_on_a_node_internal_ip(fake_api, kubeconfig):
    fake_api.add_isvc(example_isvc("bert-ner-v1"))
    fake_api.add_ingress_service(service_type="NodePort", node_port=31380)
    fake_api.add_node("172.18.0.2")
    endpoint = resolve_isvc("huggingface-bert", timeout=5, **FAST)
    assert endpoint.base_url == "http://172.18.0.2:31380"


def test_ingress_override_skips_the_gateway_lookup(fake_api, kubeconfig):
    fake_api.add_isvc(example_isvc("workbench-predictor-gpu"))
    endpoint = resolve_isvc("workbench-bert", ingress="127.0.0.1:8080", timeout=5, **FAST)
    assert endpoint.base_url == "http://127.0.0.1:8080"
    assert endpoint.host_header == "workbench-bert.default.example.com"
    assert (endpoint.model_name, endpoint.protocol) == ("bert", "v2")  # custom container: our annotation
    assert not any("istio" in path for _, path in fake_api.requests)


def test_bad_credentials_are_reported(fake_api, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = fake_api.kubeconfig(tmp_path, token="wrong")
    with pytest.raises(DiscoveryError, match=r"refused the credentials \(401\)"):
        resolve_isvc("bert", kube_config=str(config), timeout=1)


def test_unreachable_api_server_is_reported(fake_api, kubeconfig):
    fake_api.stop()
    with pytest.raises(DiscoveryError, match=r"cannot reach the Kubernetes API server at http://127.0.0.1:"):
        resolve_isvc("bert", timeout=1)


# ---- the pure parts ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, url", [
    ("10.1.2.3:31380", "http://10.1.2.3:31380"),
    ("localhost", "http://localhost:80"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("[::1]:8080", "http://[::1]:8080"),
])
def test_parse_ingress(text, url):
    assert discovery.parse_ingress(text) == url


@pytest.mark.parametrize("text", ["host:port", ":80", "http://"])
def test_parse_ingress_rejects_nonsense(text):
    with pytest.raises(DiscoveryError, match="expected HOST:PORT"):
        discovery.parse_ingress(text)


@pytest.mark.parametrize("example, task, mode", [
    ("bert-ner-probabilities", None, "probabilities"),
    ("distilbert-sentiment-raw-logits", None, "logits"),
    ("trained-ner-s3", "token_classification", "default"),
])
def test_task_and_mode_from_the_predictor_flags(example, task, mode):
    endpoint = discovery.endpoint_from_isvc(example_isvc(example), "http://x:80")
    assert (endpoint.task, endpoint.mode) == (task, mode)


def test_model_name_from_separate_arg_or_the_isvc_name():
    isvc = {"metadata": {"name": "svc"}, "spec": {"predictor": {"model": {"args": ["--model_name", "m"]}}}}
    assert discovery.model_name_of(isvc) == "m"
    isvc["spec"]["predictor"]["model"]["args"] = ["--disable_lower_case"]
    assert discovery.model_name_of(isvc) == "svc"
    assert discovery.protocol_of(isvc) == "v1"


def test_replaced_spec_is_not_ready_until_the_controller_observes_it():
    isvc = {"metadata": {"generation": 2}, "status": {"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True"}]}}
    assert discovery.is_ready(isvc)
    assert not discovery.is_ready(isvc, min_generation=2)
    assert "observedGeneration 1 < generation 2" in discovery.describe_not_ready(isvc, min_generation=2)
    assert "no status conditions yet" in discovery.describe_not_ready({"status": {}})



# ---- the gRPC port ---------------------------------------------------------------------------------

def with_ports(isvc: dict, *ports: dict) -> dict:
    import copy

    isvc = copy.deepcopy(isvc)
    predictor = isvc["spec"]["predictor"]
    section = predictor.get("model") or predictor.get("huggingface") or predictor["containers"][0]
    section["ports"] = list(ports)
    return isvc


H2C = {"name": "h2c", "containerPort": 8081, "protocol": "TCP"}


def test_serverless_h2c_port_is_reached_through_the_ingress_with_the_isvc_host(fake_api, kubeconfig):
    fake_api.add_isvc(with_ports(example_isvc("bert-ner-v2"), H2C))
    fake_api.add_ingress_service(ip="10.0.0.5", port=80)

    endpoint = resolve_isvc("huggingface-bert", "default", timeout=10, **FAST)

    assert endpoint.grpc.address == "10.0.0.5:80"
    assert endpoint.grpc.authority == "huggingface-bert.default.example.com"
    assert "port h2c (8081), deployment mode Serverless: through the ingress" in endpoint.grpc.how


def test_raw_deployment_grpc_port_is_on_the_predictors_cluster_address(fake_api, kubeconfig):
    status = {"deploymentMode": "RawDeployment", "address": {"url": "http://ignored.default.svc.cluster.local"},
              "components": {"predictor": {"address": {
                  "url": "http://huggingface-bert-predictor.default.svc.cluster.local"}}}}
    fake_api.add_isvc(with_ports(example_isvc("bert-ner-v2"), {"name": "http", "containerPort": 8080},
                                 {"name": "grpc-port", "containerPort": 9000}), ready_status=status)
    fake_api.add_ingress_service(ip="10.0.0.5", port=80)

    grpc = resolve_isvc("huggingface-bert", "default", timeout=10, **FAST).grpc

    assert grpc.address == "huggingface-bert-predictor.default.svc.cluster.local:9000" and grpc.authority is None
    assert "grpc-port (9000), deployment mode RawDeployment" in grpc.how


def test_grpc_discovery_pure_cases():
    isvc = example_isvc("bert-ner-v2")
    assert discovery.grpc_endpoint_of(isvc, "http://10.0.0.5:80") is None  # no gRPC port: none
    http_only = with_ports(isvc, {"name": "http1", "containerPort": 8080}, {"name": "grpcish", "containerPort": 1})
    assert discovery.grpc_port_of(http_only) is None  # neither h2c, grpc nor grpc-*
    standard = with_ports(isvc, {"name": "grpc", "containerPort": 8081})
    standard["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": "Standard"}
    no_address = discovery.grpc_endpoint_of(standard, "http://10.0.0.5:80")
    assert no_address.address is None and "no status.components.predictor.address.url" in no_address.how
    standard["status"] = {"address": {"url": "http://x.ns.svc.cluster.local"}}  # the isvc's address as fallback
    assert discovery.grpc_endpoint_of(standard, "http://10.0.0.5:80").address == "x.ns.svc.cluster.local:8081"
    custom = example_isvc("workbench-predictor-gpu")  # a custom container: its first container's ports
    custom = with_ports(custom, H2C)
    custom["status"] = {"url": "http://ner.team.example.com"}
    via = discovery.grpc_endpoint_of(custom, "http://[fd00::1]:8080")
    assert (via.address, via.authority) == ("[fd00::1]:8080", "ner.team.example.com")
