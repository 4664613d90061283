"""Manifests: the checked-in files are `workbench manifests --all` output, valid against KServe's CRDs, and
every predictor flag in them is one the runtime accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from workbench.k8s import manifests as m
from workbench.k8s import manifests_cli
from workbench.k8s.examples import EXAMPLES

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"


def checked_in_documents() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        out += [(f"{path.name}#{i}", doc) for i, doc in enumerate(yaml.safe_load_all(path.read_text())) if doc]
    return out


DOCUMENTS = checked_in_documents()
ISVCS = [(name, doc) for name, doc in DOCUMENTS if doc["kind"] == "InferenceService"]


def test_checked_in_manifests_are_the_generator_output_byte_for_byte(tmp_path):
    assert manifests_cli.main(["--all", "--output", str(tmp_path)]) == 0
    generated = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    checked_in = {p.name: p.read_bytes() for p in MANIFESTS.iterdir() if p.is_file()}
    assert sorted(checked_in) == sorted(generated), "run: workbench manifests --all --output manifests/"
    for name, data in generated.items():
        assert checked_in[name] == data, f"manifests/{name} is out of date: workbench manifests --all --output manifests/"


def test_every_seed_deployment_is_there():
    wanted = {
        ("hf://dslim/bert-base-NER", "v1", None), ("hf://dslim/bert-base-NER", "v2", None),
        ("hf://dslim/bert-base-NER", "v2", "--return_probabilities"),
        ("hf://distilbert/distilbert-base-uncased-finetuned-sst-2-english", "v1", None),
        ("hf://distilbert/distilbert-base-uncased-finetuned-sst-2-english", "v2", None),
        ("hf://distilbert/distilbert-base-uncased-finetuned-sst-2-english", "v2", "--return_probabilities"),
        ("hf://distilbert/distilbert-base-uncased-finetuned-sst-2-english", "v2", "--return_raw_logits"),
        ("hf://google-bert/bert-base-uncased", "v1", None), ("hf://google-bert/bert-base-uncased", "v2", None),
        ("hf://google-bert/bert-base-uncased", "v2", "--return_probabilities"),
        ("hf://google-bert/bert-base-uncased", "v2", "--return_raw_logits"),
    }
    found = set()
    for _, doc in ISVCS:
        model = doc["spec"]["predictor"].get("model")
        if model and model["storageUri"].startswith("hf://"):
            mode = next((a for a in model["args"] if a in ("--return_probabilities", "--return_raw_logits")), None)
            found.add((model["storageUri"], model.get("protocolVersion", "v1"), mode))
    assert wanted <= found
    kinds = {doc["kind"] for _, doc in DOCUMENTS}
    assert {"ClusterStorageContainer", "Secret", "ServiceAccount", "PersistentVolumeClaim"} <= kinds
    uris = {doc["spec"]["predictor"].get("model", {}).get("storageUri") for _, doc in ISVCS}
    assert {"pvc://workbench-models/ner", "s3://workbench-models/ner"} <= uris


@pytest.mark.parametrize("name, doc", DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_valid_against_the_kserve_crds(name, doc, kserve_crds):
    if doc["kind"] == "TrainJob":
        pytest.skip("a Kubeflow Trainer kind: tests/k8s/test_trainjob.py validates it against its CRD")
    if doc["kind"] in kserve_crds:
        assert kserve_crds[doc["kind"]].errors(doc) == []
    else:  # core kinds: no CRD; check the shape kubectl needs
        assert doc["apiVersion"] == "v1" and doc["kind"] in {"Secret", "ServiceAccount", "PersistentVolumeClaim",
                                                              "Pod"}
        assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", doc["metadata"]["name"])


@pytest.mark.parametrize("name, doc", ISVCS, ids=[n for n, _ in ISVCS])
def test_predictor_args_are_flags_the_runtime_accepts(name, doc):
    assert m.check_predictor_args(doc) == []
    args = m.container_args(doc)
    assert not {"--return_logits", "--disable_postprocess"} & set(m.flag_names(args)), \
        "KServe's runtime ignores these silently; use --return_raw_logits"
    assert sum(a.startswith("--model_name=") for a in args) == 1


def test_workbench_custom_container_predictor():
    doc = next(d for d in EXAMPLES["workbench-predictor-gpu"].documents())
    container = doc["spec"]["predictor"]["containers"][0]
    assert container["name"] == "kserve-container"
    assert container["args"][:3] == ["workbench", "serve", "--model_dir=/mnt/models"]
    assert "--http_port=8080" in container["args"] and "--device=cuda" in container["args"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "STORAGE_URI", "value": "hf://dslim/bert-base-NER"} in container["env"]
    assert doc["metadata"]["annotations"][m.PROTOCOL_ANNOTATION] == "v2"
    assert m.predictor_runtime(doc) == "workbench"


def test_workbench_flags_are_the_serve_parsers():
    from workbench.serving.args import build_parser

    assert "--model_workers" in m.WORKBENCH_SERVE_FLAGS and "--num_threads" in m.WORKBENCH_SERVE_FLAGS
    assert m.unknown_flags(["--model_workers", "2"], m.WORKBENCH_SERVE_FLAGS) == []
    assert m.unknown_flags(["--no_such_flag", "1"], m.WORKBENCH_SERVE_FLAGS) == ["--no_such_flag"]
    assert m.WORKBENCH_SERVE_FLAGS == {option for action in build_parser()._actions for option in action.option_strings
                                       if option.startswith("--") and option != "--help"}


def test_kserve_model_server_flags_match_the_installed_kserve():
    # In a child process: kserve's and tritonclient.grpc's generated modules both register package `inference`
    # in protobuf's default pool, and the gRPC tests import tritonclient.grpc into this one.
    import json
    import subprocess
    import sys

    import importlib.util

    if importlib.util.find_spec("kserve") is None:
        pytest.skip("kserve is not installed (test extra)")
    script = ("import json, kserve.model_server as m; print(json.dumps(sorted(s for a in m.parser._actions "
              "for s in a.option_strings if s.startswith('--'))))")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    installed = set(json.loads(completed.stdout.strip().splitlines()[-1]))
    assert m.KSERVE_MODEL_SERVER_FLAGS <= installed
    assert {"--return_raw_logits", "--return_probabilities", "--disable_lower_case"} <= m.KSERVE_HF_RUNTIME_FLAGS
    assert not {"--return_logits", "--disable_postprocess", "--device"} & m.KSERVE_HF_RUNTIME_FLAGS


# ---- builders -------------------------------------------------------------------------------------

def test_cpu_only_has_no_gpu_resources_and_no_cuda_device():
    doc = m.inference_service(m.PredictorOptions(name="cpu-ner", storage_uri="pvc://models/ner",
                                                 runtime="workbench"))
    container = doc["spec"]["predictor"]["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert not any(a.startswith("--device") for a in container["args"])
    assert container["image"] == m.DEFAULT_IMAGE


@pytest.mark.parametrize("changes, message", [
    ({"name": "Bert_NER"}, "not a valid Kubernetes name"),
    ({"storage_uri": "/data/ner"}, "must start with one of"),
    ({"storage_uri": "pvc:///ner"}, "pvc://CLAIM_NAME/PATH"),
    ({"protocol": "v3"}, "protocol 'v3'"),
    ({"task": "ner"}, "task 'ner'"),
    ({"extra_args": ("--return_logits",)}, "does not accept --return_logits"),
    ({"extra_args": ("--device=cuda",)}, "does not accept --device"),
    ({"resources": m.Resources(gpu=-1)}, "--gpu must be 0 or more"),
])
def test_builder_rejects_bad_options(changes, message):
    options = {"name": "ner", "storage_uri": "hf://dslim/bert-base-NER", **changes}
    with pytest.raises(m.ManifestError, match=re.escape(message)):
        m.inference_service(m.PredictorOptions(**options))


# ---- the gRPC port ---------------------------------------------------------------------------------

def _grpc_isvc(runtime: str, mode: str | None = None, **changes) -> dict:
    return m.inference_service(m.PredictorOptions(name="ner", storage_uri="hf://dslim/bert-base-NER",
                                                  runtime=runtime, protocol="v2", grpc=True, deployment_mode=mode,
                                                  **changes))


def test_grpc_port_is_the_one_both_servers_use():
    args_module = pytest.importorskip("workbench.serving.args", reason="the predictor's parser is not there yet")
    assert args_module.build_parser().parse_args([]).grpc_port == m.GRPC_PORT == 8081  # and KServe's default
    from workbench.k8s.discovery import GRPC_PORT_NAMES

    assert m.GRPC_PORT_NAME in GRPC_PORT_NAMES


def test_workbench_serverless_grpc_declares_h2c_alone_with_the_readiness_probe_on_rest(kserve_crds):
    from workbench.k8s.discovery import grpc_endpoint_of

    doc = _grpc_isvc("workbench")
    assert kserve_crds["InferenceService"].errors(doc) == []
    container = doc["spec"]["predictor"]["containers"][0]
    # Knative: one container port, and all traffic goes to it; the probe may use another port (Knative >= 1.3)
    assert container["ports"] == [{"name": "h2c", "containerPort": 8081, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["args"][-2:] == ["--http_port=8080", "--grpc_port=8081"]
    assert m.DEPLOYMENT_MODE_ANNOTATION not in doc["metadata"]["annotations"]
    assert m.check_predictor_args(doc) == []
    doc["status"] = {"url": "http://ner.default.example.com"}
    endpoint = grpc_endpoint_of(doc, "http://10.0.0.1:31380")
    assert (endpoint.address, endpoint.authority) == ("10.0.0.1:31380", "ner.default.example.com")


def test_workbench_raw_deployment_declares_rest_then_h2c(kserve_crds):
    from workbench.k8s.discovery import grpc_endpoint_of

    doc = _grpc_isvc("workbench", "RawDeployment")
    assert kserve_crds["InferenceService"].errors(doc) == []
    container = doc["spec"]["predictor"]["containers"][0]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"},  # first: the Service's port 80
                                  {"name": "h2c", "containerPort": 8081, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["port"] == 8080
    assert doc["metadata"]["annotations"][m.DEPLOYMENT_MODE_ANNOTATION] == "RawDeployment"
    doc["status"] = {"components": {"predictor": {"address": {"url": "http://ner-predictor.default.svc"}}}}
    assert grpc_endpoint_of(doc, "http://10.0.0.1:31380").address == "ner-predictor.default.svc:8081"


@pytest.mark.parametrize("mode, ports", [
    (None, [{"name": "h2c", "containerPort": 8081, "protocol": "TCP"}]),
    ("RawDeployment", [{"containerPort": 8080, "protocol": "TCP"}, {"name": "h2c", "containerPort": 8081,
                                                                     "protocol": "TCP"}]),
])
def test_kserve_runtime_declares_the_port_its_runtime_serves_grpc_on(kserve_crds, mode, ports):
    doc = _grpc_isvc("huggingface", mode)
    assert kserve_crds["InferenceService"].errors(doc) == []
    model = doc["spec"]["predictor"]["model"]
    assert model["ports"] == ports
    assert model["protocolVersion"] == "v2"  # not grpc-v2: kserve-huggingfaceserver lists only v1 and v2
    assert m.check_predictor_args(doc) == []


def test_without_grpc_nothing_changes():
    doc = m.inference_service(m.PredictorOptions(name="ner", storage_uri="hf://x/y", runtime="huggingface"))
    assert "ports" not in doc["spec"]["predictor"]["model"] and "annotations" not in doc["metadata"]
    doc = m.inference_service(m.PredictorOptions(name="ner", storage_uri="hf://x/y", runtime="workbench"))
    assert doc["spec"]["predictor"]["containers"][0]["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert not any(a.startswith("--grpc_port") for a in m.container_args(doc))


@pytest.mark.parametrize("mode, changes, message", [
    ("Knative", {}, "deployment mode 'Knative' is not one of Serverless, RawDeployment"),
    (None, {"extra_args": ("--disable_grpc",)}, "drop --disable_grpc"),
    (None, {"extra_args": ("--grpc_port=9000",)}, "drop --grpc_port"),
])
def test_grpc_options_that_cannot_work_are_refused(mode, changes, message):
    with pytest.raises(m.ManifestError, match=re.escape(message)):
        _grpc_isvc("workbench", mode, **changes)


def test_workbench_runtime_accepts_its_own_flags():
    doc = m.inference_service(m.PredictorOptions(
        name="ner", storage_uri="hf://x/y", runtime="workbench", extra_args=("--max_batch_size=8", "--device=cpu"),
        resources=m.Resources(gpu=1)))
    args = m.container_args(doc)
    assert "--device=cpu" in args and "--device=cuda" not in args  # an explicit device wins


# ---- CLI ------------------------------------------------------------------------------------------

def test_cli_builds_a_valid_manifest_from_options(capsys, kserve_crds):
    code = manifests_cli.main([
        "--name", "my-ner", "--storage-uri", "s3://bucket/ner", "--task", "token_classification",
        "--protocol", "v2", "--return-probabilities", "--disable-lower-case", "--gpu", "2",
        "--memory-limit", "4Gi", "--namespace", "models", "--service-account", "sa", "--arg=--max_length=128"])
    assert code == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert kserve_crds["InferenceService"].errors(doc) == []
    model = doc["spec"]["predictor"]["model"]
    assert model["args"] == ["--model_name=my-ner", "--task=token_classification", "--disable_lower_case",
                             "--return_probabilities", "--max_length=128"]
    assert model["protocolVersion"] == "v2" and model["storageUri"] == "s3://bucket/ner"
    assert model["resources"]["limits"] == {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "2"}
    assert doc["metadata"] == {"name": "my-ner", "namespace": "models"}
    assert doc["spec"]["predictor"]["serviceAccountName"] == "sa"


def test_cli_workbench_runtime_to_a_directory(tmp_path, kserve_crds):
    code = manifests_cli.main(["--name", "wb", "--model-id", "dslim/bert-base-NER", "--runtime", "workbench",
                               "--gpu", "1", "--image", "ghcr.io/me/workbench:1", "--return-raw-logits",
                               "--output", str(tmp_path)])
    assert code == 0
    doc = yaml.safe_load((tmp_path / "wb.yaml").read_text())
    assert kserve_crds["InferenceService"].errors(doc) == []
    container = doc["spec"]["predictor"]["containers"][0]
    assert container["image"] == "ghcr.io/me/workbench:1"
    assert "--return_raw_logits" in container["args"]
    assert container["env"][0] == {"name": "STORAGE_URI", "value": "hf://dslim/bert-base-NER"}


def test_cli_grpc_raw_deployment_declares_both_ports(capsys, kserve_crds):
    code = manifests_cli.main(["--name", "wb", "--storage-uri", "pvc://models/ner", "--runtime", "workbench",
                               "--protocol", "v2", "--grpc", "--deployment-mode", "RawDeployment"])
    assert code == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert kserve_crds["InferenceService"].errors(doc) == []
    assert doc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    container = doc["spec"]["predictor"]["containers"][0]
    assert [p["containerPort"] for p in container["ports"]] == [8080, 8081]
    assert container["ports"][1]["name"] == "h2c" and "--grpc_port=8081" in container["args"]
    assert container["readinessProbe"]["httpGet"]["port"] == 8080


def test_cli_example_with_namespace_to_stdout(capsys):
    assert manifests_cli.main(["--example", "trained-ner-s3", "--namespace", "ml"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["metadata"]["namespace"] for d in docs] == ["ml", "ml", "ml"]
    assert manifests_cli.main(["--example", "hf-storage-container", "--namespace", "ml"]) == 0
    assert "namespace" not in yaml.safe_load(capsys.readouterr().out)["metadata"]  # cluster-scoped


@pytest.mark.parametrize("argv, message", [
    (["--name", "x"], "--name needs --model-id or --storage-uri"),
    (["--name", "X", "--model-id", "a/b"], "not a valid Kubernetes name"),
    (["--name", "x", "--storage-uri", "ftp://a"], "must start with one of"),
    (["--all", "--output", "-"], "give --output DIR"),
])
def test_cli_errors(argv, message, capsys):
    assert manifests_cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_probabilities_with_raw_logits():
    with pytest.raises(SystemExit) as exit_:
        manifests_cli.main(["--name", "x", "--model-id", "a/b", "--return-probabilities", "--return-raw-logits"])
    assert exit_.value.code == 2


def test_cli_list(capsys):
    assert manifests_cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXAMPLES)


# ---- Dockerfile -----------------------------------------------------------------------------------

def test_dockerfile_pins_the_project_torch_and_serves_on_8080():
    dockerfile = (REPO / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    torch_pin = re.search(r'"torch==([^"]+)"', pyproject).group(1)
    assert f"torch=={torch_pin}" in dockerfile
    assert "EXPOSE 8080" in dockerfile
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1)
    args = yaml.safe_load(cmd)
    assert args[:2] == ["workbench", "serve"]
    assert m.unknown_flags(args[2:], m.WORKBENCH_SERVE_FLAGS) == []
    assert not re.search(r"^ENTRYPOINT", dockerfile, re.M), "the manifests pass `workbench serve ...` as args"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


# ---- the workbench container's command, run for real ------------------------------------------------

def test_workbench_container_args_start_the_real_predictor(tiny_models):
    """The manifest's `workbench serve ...` args, with /mnt/models pointed at a tiny model and a free port,
    start the real predictor; the readiness probe's path answers, and the model answers under its name."""
    import sys

    import httpx

    from workbench.testsupport.servers import free_port, served_command

    doc = m.inference_service(m.PredictorOptions(
        name="wb-ner", storage_uri="pvc://models/ner", model_name="ner", runtime="workbench", protocol="v2",
        task="token_classification", output="probabilities", disable_lower_case=True))
    container = doc["spec"]["predictor"]["containers"][0]
    port = free_port()
    local = {f"--model_dir={m.MODEL_DIR}": f"--model_dir={tiny_models('token_classification')}",
             f"--http_port={m.HTTP_PORT}": f"--http_port={port}"}
    args = [local.get(arg, arg) for arg in container["args"][len(m.WORKBENCH_COMMAND):]]
    command = [sys.executable, "-m", "workbench", "serve", *args, "--host", "127.0.0.1", "--disable_grpc"]
    probe = container["readinessProbe"]["httpGet"]["path"]
    with served_command(command, port, ready_path=probe, timeout=120) as url:
        assert httpx.get(url + "/v2/models/ner/ready").status_code == 200
        answer = httpx.post(url + "/v1/models/ner:predict", json={"instances": ["Wolfgang lives in Berlin"]})
        assert answer.status_code == 200
        first_token = answer.json()["predictions"][0][0]
        assert isinstance(first_token, dict) and abs(sum(first_token.values()) - 1) < 1e-2  # probabilities
