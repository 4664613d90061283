"""`--isvc NAME --namespace NS --ingress HOST:PORT`: the suite finds its endpoint through KServe's API.

The Kubernetes API is the fake one of tests/k8s (the real one cannot run here); the "ingress" is our
predictor on a local port, so the requests the suite sends after discovery are real.
"""

from __future__ import annotations

from tests.conformance_meta.suite_runner import run_suite
from tests.k8s.conftest import FakeKubeAPI

ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "ner"},
    "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}, "protocolVersion": "v2",
                                     "args": ["--model_name=tiny", "--task=token_classification",
                                              "--return_probabilities"]}}},
}


def test_isvc_resolves_url_host_model_task_mode_and_protocol(tiny_models, tmp_path, monkeypatch):
    from workbench.testsupport.servers import served

    api = FakeKubeAPI().start()
    try:
        api.add_isvc(ISVC, namespace="team")
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path)))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        with served(tiny_models("token_classification"), "--return_probabilities", model_name="tiny") as url:
            run = run_suite(tmp_path / "isvc.json", "--isvc", "ner", "--namespace", "team",
                            "--ingress", url.removeprefix("http://"), "-k", "v2_model_ready or v2_output or v1_model")
    finally:
        api.stop()
    outcomes = {c["id"]: c["outcome"] for c in run.report["checks"]}
    assert outcomes["v2_model_ready"] == "pass", run.describe()
    assert outcomes["v2_output_datatype_and_shape_for_task_and_mode"] == "pass", run.describe()
    assert outcomes["v1_model_ready"] == "skip", run.describe()  # protocolVersion v2: V1 not checked
    assert {c["target"] for c in run.report["checks"]} == {"token_classification-probabilities"}
