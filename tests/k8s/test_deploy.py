"""`workbench deploy -f FILE` through the real kubernetes client.

No Kubernetes API server can run here: `fake_api` (tests/k8s/conftest.py) is a local HTTP server that
stands in for a cluster (it also plays KServe's controller, turning an InferenceService Ready after a
few reads), with a kubeconfig file pointing at it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from workbench.k8s import deploy, kube
from workbench.k8s.examples import EXAMPLES

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
ISVC = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
FAST = ["--poll-interval", "0.02"]


def test_create_waits_for_ready_and_prints_url_ingress_and_commands(fake_api, kubeconfig, capsys):
    fake_api.add_ingress_service(ip="10.0.0.5")
    fake_api.ready_after_create = 3

    assert deploy.main(["-f", str(MANIFESTS / "huggingface-bert-ner-v2.yaml"), *FAST]) == 0

    assert fake_api.writes("POST") == [ISVC]
    assert fake_api.writes("PUT") == []
    assert fake_api.reads[f"{ISVC}/huggingface-bert"] == 4
    sent = fake_api.bodies[0][2]
    assert sent["spec"]["predictor"]["model"]["storageUri"] == "hf://dslim/bert-base-NER"
    assert sent["metadata"]["namespace"] == "default"
    out, err = capsys.readouterr()
    assert "inferenceservice default/huggingface-bert created" in out
    assert "inferenceservice default/huggingface-bert is Ready: http://huggingface-bert.default.example.com" in out
    assert 'curl -H "Host: huggingface-bert.default.example.com" http://10.0.0.5:80/v2/models/bert/ready' in out
    assert "pytest conformance --isvc huggingface-bert --namespace default" in out
    assert "PredictorReady=False (RevisionMissing" in err  # progress while waiting


def test_replace_sends_the_resource_version_and_waits_for_the_new_generation(fake_api, kubeconfig, tmp_path):
    old = next(iter(EXAMPLES["bert-ner-v1"].documents()))
    path = fake_api.add_isvc(old, reads_until_ready=0)
    fake_api.add_ingress_service(ip="10.0.0.5")
    version = fake_api.objects[path]["metadata"]["resourceVersion"]
    assert fake_api.objects[path]["metadata"]["generation"] == 1
    original = fake_api._answer

    def controller_lags(method, request_path, body):
        if method == "PUT":  # the old generation's Ready status stays for two reads after the replace
            fake_api.reads_until_ready[path] = 2
        return original(method, request_path, body)

    fake_api._answer = controller_lags

    ready = deploy.deploy(str(MANIFESTS / "huggingface-bert-ner-v2.yaml"), poll_interval=0.02, timeout=10)

    assert fake_api.writes("POST") == []
    assert fake_api.writes("PUT") == [path]
    put = next(body for method, _, body in fake_api.bodies if method == "PUT")
    assert put["metadata"]["resourceVersion"] == version
    assert ready[0]["metadata"]["generation"] == 2
    assert ready[0]["status"]["observedGeneration"] == 2  # not the old generation's Ready
    assert fake_api.reads[path] == 3  # two reads saw the stale Ready of generation 1, then generation 2
    assert ready[0]["spec"]["predictor"]["model"]["protocolVersion"] == "v2"


def test_multi_document_file_applies_each_object(fake_api, kubeconfig, capsys):
    fake_api.add_ingress_service(ip="10.0.0.5")
    assert deploy.main(["-f", str(MANIFESTS / "trained-ner-s3.yaml"), "--namespace", "models", *FAST]) == 0
    assert fake_api.writes("POST") == [
        "/api/v1/namespaces/models/secrets",
        "/api/v1/namespaces/models/serviceaccounts",
        "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices",
    ]
    out = capsys.readouterr().out
    assert "inferenceservice models/workbench-ner-s3 is Ready" in out
    assert "model:       ner (v2)" in out


def test_existing_pvc_is_left_alone_and_cluster_scoped_objects_have_no_namespace(fake_api, kubeconfig, capsys):
    fake_api.objects["/api/v1/namespaces/default/persistentvolumeclaims/workbench-models"] = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "workbench-models", "namespace": "default", "resourceVersion": "7"}}
    assert deploy.main(["-f", str(MANIFESTS / "trained-ner-pvc.yaml"), "--no-wait", *FAST]) == 0
    assert deploy.main(["-f", str(MANIFESTS / "hf-storage-container.yaml"), *FAST]) == 0
    out = capsys.readouterr().out
    assert "persistentvolumeclaim default/workbench-models unchanged" in out
    assert "pod default/workbench-model-copy created" in out
    assert "inferenceservice default/workbench-ner created" in out
    assert "clusterstoragecontainer hf-hub created" in out
    assert "/apis/serving.kserve.io/v1alpha1/clusterstoragecontainers" in fake_api.writes("POST")
    assert not any("/persistentvolumeclaims" in p for p in fake_api.writes("PUT") + fake_api.writes("POST"))


def test_not_ready_exits_1_naming_the_condition(fake_api, kubeconfig, capsys, tmp_path):
    fake_api.ready_after_create = None  # never Ready
    code = deploy.main(["-f", str(MANIFESTS / "huggingface-distilbert-v1.yaml"), "--timeout", "0.2", *FAST])
    assert code == 1
    err = capsys.readouterr().err
    assert "workbench deploy: InferenceService default/huggingface-distilbert not Ready after 0.2s" in err
    assert "PredictorReady=False (RevisionMissing" in err


def test_ingress_override_and_missing_gateway(fake_api, kubeconfig, capsys):
    assert deploy.main(["-f", str(MANIFESTS / "huggingface-bert-fill-mask-v1.yaml"),
                        "--ingress", "127.0.0.1:8080", *FAST]) == 0
    out = capsys.readouterr().out
    assert 'curl -H "Host: huggingface-bert-fill-mask.default.example.com" ' \
           "http://127.0.0.1:8080/v1/models/bert" in out
    assert "--ingress 127.0.0.1:8080" in out
    assert not any("istio" in p for _, p in fake_api.requests)

    # Without the override and without a gateway, the deploy still succeeds and says what is missing.
    assert deploy.main(["-f", str(MANIFESTS / "huggingface-distilbert-v1.yaml"), *FAST]) == 0
    err = capsys.readouterr().err
    assert "ingress not found: no ingress address" in err


def test_unsupported_kind_fails_before_anything_is_applied(fake_api, kubeconfig, tmp_path, capsys):
    path = tmp_path / "mixed.yaml"
    path.write_text((MANIFESTS / "huggingface-bert-ner-v1.yaml").read_text()
                    + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n")
    assert deploy.main(["-f", str(path)]) == 1
    assert "cannot apply Deployment (apps/v1)" in capsys.readouterr().err
    assert fake_api.requests == []


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("a: [", "is not valid YAML"),
    ("", "holds no Kubernetes objects"),
    ("just: a map\n", "every document needs apiVersion and kind"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "file.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(kube.KubeError, match=message):
        deploy.load_documents(str(path))


def test_missing_kubeconfig(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert deploy.main(["-f", str(MANIFESTS / "huggingface-bert-ner-v1.yaml")]) == 1
    assert "workbench deploy: no kubeconfig: looked for" in capsys.readouterr().err


def test_conflict_on_create_falls_back_to_replace(fake_api, kubeconfig):
    """Someone else creates the object between our read and our create: we replace it instead."""
    doc = copy.deepcopy(next(iter(EXAMPLES["bert-ner-v1"].documents())))
    original = fake_api._answer

    def racing(method, path, body):
        if method == "POST" and path == ISVC and f"{ISVC}/huggingface-bert" not in fake_api.objects:
            fake_api.add_isvc(doc)
        return original(method, path, body)

    fake_api._answer = racing
    api_client = kube.load_api_client()
    try:
        action, stored = kube.apply_object(api_client, doc, "default")
    finally:
        api_client.close()
    assert action == "replaced"
    assert fake_api.writes("PUT") == [f"{ISVC}/huggingface-bert"]
