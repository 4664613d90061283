"""Fixtures for the Kubernetes tests.

No Kubernetes API server can run here, so `FakeKubeAPI` stands in for a cluster: a real HTTP server
(stdlib `http.server`, in a thread, on a free port) that answers the few API paths the workbench uses
(InferenceService GET/POST/PUT, other objects GET/POST/PUT, the istio-ingressgateway Service, nodes),
checks the bearer token, stores what it is sent, and plays KServe's controller by turning an
InferenceService Ready after a given number of reads. The workbench code talks to it through the real
`kubernetes` client and a real kubeconfig file, exactly as it would talk to a cluster.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TOKEN = "test-token"
REPO = Path(__file__).resolve().parents[2]


def kserve_dir() -> Path | None:
    """The KServe reference files: $WORKBENCH_KSERVE_DIR, else ../shared/kserve next to the repository."""
    candidates = [os.environ.get("WORKBENCH_KSERVE_DIR"), REPO.parent / "shared" / "kserve"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "crds").is_dir():
            return Path(candidate)
    return None


def isvc_path(namespace: str, name: str) -> str:
    return f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}"


class FakeKubeAPI:
    """A stand-in for a Kubernetes API server with KServe installed (see the module docstring)."""

    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.bodies: list[tuple[str, str, dict]] = []  # (method, path, body) for writes
        self.reads_until_ready: dict[str, int | None] = {}  # isvc path -> reads before Ready (None: never)
        self.ready_status: dict[str, dict] = {}  # isvc path -> more status fields once Ready (components, ...)
        self.reads: dict[str, int] = {}
        self.ready_after_create = 2
        self.nodes: list[dict] = []
        self._version = 100
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    # ---- test set-up ---------------------------------------------------------------------------
    def start(self) -> "FakeKubeAPI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_isvc(self, manifest: dict, namespace: str = "default", reads_until_ready: int | None = 0,
                 ready_status: dict | None = None) -> str:
        """Store an InferenceService; `ready_status` adds fields to the status the controller writes once Ready
        (e.g. `deploymentMode`, `components.predictor.address`)."""
        doc = copy.deepcopy(manifest)
        doc["metadata"]["namespace"] = namespace
        path = isvc_path(namespace, doc["metadata"]["name"])
        self._store(path, doc, generation=1)
        self.reads_until_ready[path] = reads_until_ready
        self.ready_status[path] = copy.deepcopy(ready_status or {})
        return path

    def add_ingress_service(self, *, ip: str | None = None, hostname: str | None = None, port: int = 80,
                            node_port: int | None = None, service_type: str = "LoadBalancer",
                            port_name: str = "http2") -> None:
        ports = [{"name": "status-port", "port": 15021, "protocol": "TCP"},
                 {"name": port_name, "port": port, "protocol": "TCP", "targetPort": 8080}]
        if node_port:
            ports[1]["nodePort"] = node_port
        ingress = [{k: v for k, v in (("ip", ip), ("hostname", hostname)) if v}] if (ip or hostname) else []
        service = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
                   "spec": {"type": service_type, "ports": ports},
                   "status": {"loadBalancer": {"ingress": ingress} if ingress else {}}}
        self._store("/api/v1/namespaces/istio-system/services/istio-ingressgateway", service, generation=1)

    def add_node(self, internal_ip: str, name: str = "kind-control-plane") -> None:
        self.nodes.append({"metadata": {"name": name}, "status": {"addresses": [
            {"type": "Hostname", "address": name}, {"type": "InternalIP", "address": internal_ip}]}})

    def kubeconfig(self, directory: Path, token: str = TOKEN) -> Path:
        path = directory / "kubeconfig"
        path.write_text(json.dumps({  # JSON is YAML
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
        }))
        return path

    def writes(self, method: str) -> list[str]:
        return [path for m, path in self.requests if m == method]

    # ---- server side ---------------------------------------------------------------------------
    def _store(self, path: str, doc: dict, generation: int) -> dict:
        self._version += 1
        meta = doc.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._version)
        meta["generation"] = generation
        meta.setdefault("uid", f"uid-{self._version}")
        self.objects[path] = doc
        return doc

    def _isvc_status(self, path: str, doc: dict) -> None:
        """Play KServe's controller: Ready after N reads of the current generation, else say why not."""
        self.reads[path] = self.reads.get(path, 0) + 1
        needed = self.reads_until_ready.get(path, self.ready_after_create)
        meta = doc["metadata"]
        if needed is not None and self.reads[path] > needed:
            url = f"http://{meta['name']}.{meta['namespace']}.example.com"
            doc["status"] = {"observedGeneration": meta["generation"], "url": url, "conditions": [
                {"type": "IngressReady", "status": "True"},
                {"type": "PredictorReady", "status": "True"},
                {"type": "Ready", "status": "True"}], **copy.deepcopy(self.ready_status.get(path, {}))}
        elif "status" not in doc or doc["status"].get("observedGeneration") == meta["generation"]:
            message = f'Configuration "{meta["name"]}-predictor" does not have any ready Revision.'
            doc["status"] = {"observedGeneration": meta["generation"], "conditions": [
                {"type": "PredictorReady", "status": "False", "reason": "RevisionMissing", "message": message},
                {"type": "Ready", "status": "False", "reason": "RevisionMissing", "message": message}]}
        # else: a replaced spec the controller has not seen: the old status (maybe Ready) stays

    def _answer(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        with self._lock:
            self.requests.append((method, path))
            if body is not None:
                self.bodies.append((method, path, body))
            if method == "GET" and path == "/api/v1/nodes":
                return 200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": self.nodes}
            if method == "GET":
                if path not in self.objects:
                    return _status(404, "NotFound", f'"{path.rsplit("/", 1)[-1]}" not found')
                doc = self.objects[path]
                if "/inferenceservices/" in path:
                    self._isvc_status(path, doc)
                return 200, doc
            if method == "POST":
                name = (body.get("metadata") or {}).get("name")
                target = f"{path}/{name}"
                if target in self.objects:
                    return _status(409, "AlreadyExists", f'"{name}" already exists')
                if "/namespaces/" in path:
                    namespace = path.split("/namespaces/")[1].split("/")[0]
                    if body["metadata"].get("namespace", namespace) != namespace:
                        return _status(400, "BadRequest", "the namespace of the object does not match the URL")
                doc = self._store(target, copy.deepcopy(body), generation=1)
                doc.pop("status", None)
                if "/inferenceservices/" in target:
                    self.reads_until_ready.setdefault(target, self.ready_after_create)
                return 201, doc
            if method == "PUT":
                if path not in self.objects:
                    return _status(404, "NotFound", f'"{path.rsplit("/", 1)[-1]}" not found')
                current = self.objects[path]
                version = (body.get("metadata") or {}).get("resourceVersion")
                if not version:
                    return _status(422, "Invalid",
                                   "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update")
                if version != current["metadata"]["resourceVersion"]:
                    return _status(409, "Conflict", "the object has been modified; please apply your changes "
                                                    "to the latest version and try again")
                doc = copy.deepcopy(body)
                generation = current["metadata"]["generation"]
                if doc.get("spec") != current.get("spec"):
                    generation += 1
                    self.reads[path] = 0
                if "status" in current:
                    doc["status"] = current["status"]  # the status subresource survives a replace
                return 200, self._store(path, doc, generation)
            return _status(405, "MethodNotAllowed", f"{method} is not supported here")

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    code, payload = _status(401, "Unauthorized", "Unauthorized")
                else:
                    code, payload = api._answer(method, path, body)
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._reply("GET")

            def do_POST(self):
                self._reply("POST")

            def do_PUT(self):
                self._reply("PUT")

            def log_message(self, *args):
                pass

        return Handler


def _status(code: int, reason: str, message: str) -> tuple[int, dict]:
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "code": code}


@pytest.fixture
def fake_api():
    api = FakeKubeAPI().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kubeconfig(fake_api, tmp_path, monkeypatch):
    """A kubeconfig file pointing at the fake API server; KUBECONFIG points at it too."""
    path = fake_api.kubeconfig(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


@pytest.fixture(scope="session")
def kserve_crds():
    """CRD validators by kind; skips when the KServe reference files are absent."""
    directory = kserve_dir()
    if directory is None:
        pytest.skip("KServe CRDs not found: set WORKBENCH_KSERVE_DIR or put them in ../shared/kserve/crds")
    from workbench.k8s.crd_schema import CrdValidator

    validators = {}
    for name in ("inferenceservices", "clusterstoragecontainers"):
        validator = CrdValidator.from_file(directory / "crds" / f"serving.kserve.io_{name}.yaml")
        validators[validator.kind] = validator
    return validators



def kubeflow_dir() -> Path | None:
    """The Kubeflow Trainer reference files: $WORKBENCH_KUBEFLOW_DIR, else ../shared/kubeflow."""
    for candidate in (os.environ.get("WORKBENCH_KUBEFLOW_DIR"), REPO.parent / "shared" / "kubeflow"):
        if candidate and (Path(candidate) / "crds").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def kubeflow():
    """The TrainJob CRD validator and the torch-distributed runtime; skips when the files are absent."""
    import yaml

    directory = kubeflow_dir()
    if directory is None:
        pytest.skip("Kubeflow Trainer CRDs not found: set WORKBENCH_KUBEFLOW_DIR or put them in ../shared/kubeflow")
    from workbench.k8s.crd_schema import CrdValidator

    return {"TrainJob": CrdValidator.from_file(directory / "crds" / "trainer.kubeflow.org_trainjobs.yaml"),
            "runtime": yaml.safe_load((directory / "torch_distributed_runtime.yaml").read_text())}
