"""Pure builders for KServe manifests: each function returns a plain dict, ready for YAML or the API.

Two ways to serve a Hugging Face encoder model on KServe:

- `runtime="huggingface"`: KServe's own Hugging Face runtime (`modelFormat: huggingface`), the way the
  KServe documentation deploys BERT NER, distilBERT sentiment and BERT fill-mask.
- `runtime="workbench"`: the workbench predictor as a custom container (`workbench serve`), same routes
  and outputs, plus batching and `/metrics`; GPU through `nvidia.com/gpu`.

Both take the model from `storageUri` (hf://, pvc://, s3://, ...), which KServe's storage initializer
downloads into /mnt/models before the predictor starts. Nothing here talks to a cluster.

Both serve OIP gRPC on 8081 beside REST on 8080; `grpc=True` declares that port (named `h2c`, KServe's and
Knative's name for a cleartext HTTP/2 port) so the cluster routes to it. How many ports a predictor may
declare depends on the deployment mode:
- Serverless (Knative; KServe's default, no annotation): one container port only (Knative refuses a second),
  and Knative routes all of the InferenceService's traffic to it. With `grpc=True` that port is `h2c` 8081:
  gRPC through the ingress, REST no longer reachable there (KServe's convention for a gRPC InferenceService).
  Our readiness probe stays on REST 8080 (Knative allows a probe port other than the serving port since 1.3).
- RawDeployment: REST 8080 first (the Service's port 80), then `h2c` 8081: both reachable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

API_VERSION = "serving.kserve.io/v1beta1"
STORAGE_API_VERSION = "serving.kserve.io/v1alpha1"

RUNTIMES = ("huggingface", "workbench")
PROTOCOLS = ("v1", "v2")
OUTPUTS = ("default", "probabilities", "raw_logits")
from workbench.serving.args import serve_flags
from workbench.tasks import TASKS
STORAGE_SCHEMES = ("hf://", "pvc://", "s3://", "gs://", "https://", "http://", "oci://")

# The image `docker build` makes from the repository's Dockerfile. registry.example.com is a placeholder:
# push the image to your own registry and pass --image (see docs/deploy.md).
DEFAULT_IMAGE = "registry.example.com/workbench/predictor:0.1.0"
DEFAULT_GPU_IMAGE = "registry.example.com/workbench/predictor:0.1.0-gpu"
STORAGE_INITIALIZER_IMAGE = "kserve/storage-initializer:latest"
MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts the model
HTTP_PORT = 8080
GRPC_PORT = 8081  # KServe's --grpc_port default, and ours
GRPC_PORT_NAME = "h2c"  # Knative routes a port so named as HTTP/2 cleartext (gRPC); KServe's docs name it so
DEPLOYMENT_MODES = ("Serverless", "RawDeployment")
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# Which protocol a custom-container predictor is meant to be checked with (the workbench predictor
# serves V1 and V2 at once; `spec.predictor.model.protocolVersion` does not exist for containers).
PROTOCOL_ANNOTATION = "workbench/protocol"

# Flags of KServe's model server (python/kserve/kserve/model_server.py), shared by every runtime.
KSERVE_MODEL_SERVER_FLAGS = frozenset({
    "--http_port", "--grpc_port", "--workers", "--max_threads", "--max_asyncio_workers", "--enable_grpc",
    "--enable_docs_url", "--enable_latency_logging", "--configure_logging", "--log_config_file",
    "--access_log_format", "--event-loop", "--timeout-keep-alive", "--model_name", "--predictor_host",
    "--protocol", "--predictor_protocol", "--predictor_use_ssl", "--predictor_request_timeout_seconds",
    "--grpc_max_send_message_length", "--grpc_max_receive_message_length", "--predictor_request_retries",
    "--enable_predictor_health_check", "--ssl_certfile", "--ssl_keyfile",
})

# KServe's Hugging Face runtime (huggingfaceserver/__main__.py, KServe 0.20). `--return_logits` and
# `--disable_postprocess`, which KServe's documentation shows, are NOT among them: the runtime ignores
# them silently and keeps answering class ids. Only `--return_raw_logits` gives raw logits.
KSERVE_HF_RUNTIME_FLAGS = KSERVE_MODEL_SERVER_FLAGS | frozenset({
    "--model_dir", "--model_id", "--model_revision", "--tokenizer_revision", "--max_length", "--max_model_len",
    "--disable_lower_case", "--disable_special_tokens", "--trust_remote_code", "--tensor_input_names",
    "--task", "--backend", "--return_token_type_ids", "--return_offsets_mapping", "--return_probabilities",
    "--return_raw_logits", "--disable_log_requests", "--max_log_len", "--max-log-len", "--dtype",
})

# `workbench serve`: KServe's spellings, plus device and batching limits, read from its own parser (the one
# source of the flags).
WORKBENCH_SERVE_FLAGS = serve_flags()

# The command a workbench container runs before its flags.
WORKBENCH_COMMAND = ("workbench", "serve")

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ManifestError(ValueError):
    """Options that cannot make a valid manifest; the message says which and why."""


@dataclass(frozen=True)
class Resources:
    """Container resources; `gpu` > 0 adds `nvidia.com/gpu` to requests and limits."""

    cpu_request: str = "1"
    memory_request: str = "2Gi"
    cpu_limit: str = "1"
    memory_limit: str = "2Gi"
    gpu: int = 0

    def to_k8s(self) -> dict:
        if self.gpu < 0:
            raise ManifestError(f"--gpu must be 0 or more (got {self.gpu})")
        limits = {"cpu": str(self.cpu_limit), "memory": str(self.memory_limit)}
        requests = {"cpu": str(self.cpu_request), "memory": str(self.memory_request)}
        if self.gpu:
            limits["nvidia.com/gpu"] = str(self.gpu)
            requests["nvidia.com/gpu"] = str(self.gpu)
        return {"limits": limits, "requests": requests}


@dataclass(frozen=True)
class PredictorOptions:
    """Everything an InferenceService for one encoder model needs."""

    name: str
    storage_uri: str
    model_name: str | None = None  # the name in URLs; defaults to `name`
    runtime: str = "huggingface"
    protocol: str = "v1"
    task: str | None = None
    output: str = "default"
    disable_lower_case: bool = False
    extra_args: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    namespace: str | None = None
    image: str = DEFAULT_IMAGE
    service_account: str | None = None
    grpc: bool = False  # declare the gRPC port (see the module docstring for what each mode allows)
    deployment_mode: str | None = None  # None: no annotation, KServe's default (Serverless)

    @property
    def served_name(self) -> str:
        return self.model_name or self.name


def flag_names(args: Iterable[str]) -> list[str]:
    """The flag names in a container's args (`--a=1`, `--b 2`, `--c`) -> ['--a', '--b', '--c']."""
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("--")]


def unknown_flags(args: Iterable[str], allowed: frozenset[str]) -> list[str]:
    return [name for name in flag_names(args) if name not in allowed]


def allowed_flags(runtime: str) -> frozenset[str]:
    return WORKBENCH_SERVE_FLAGS if runtime == "workbench" else KSERVE_HF_RUNTIME_FLAGS


def check_name(name: str, what: str = "name") -> None:
    if not name or len(name) > 63 or not _DNS_1035.match(name):
        raise ManifestError(
            f"{what} {name!r} is not a valid Kubernetes name: use at most 63 lowercase letters, digits "
            "and '-', starting with a letter and ending with a letter or digit")


def check_storage_uri(uri: str) -> None:
    if not uri.startswith(STORAGE_SCHEMES):
        raise ManifestError(f"storage URI {uri!r} must start with one of {', '.join(STORAGE_SCHEMES)}")
    if uri.startswith("pvc://") and len(uri[len("pvc://"):].split("/", 1)[0]) == 0:
        raise ManifestError(f"storage URI {uri!r}: a PVC URI reads pvc://CLAIM_NAME/PATH")


def _check_options(opts: PredictorOptions) -> None:
    check_name(opts.name, "InferenceService name")
    check_storage_uri(opts.storage_uri)
    if opts.runtime not in RUNTIMES:
        raise ManifestError(f"runtime {opts.runtime!r} is not one of {', '.join(RUNTIMES)}")
    if opts.protocol not in PROTOCOLS:
        raise ManifestError(f"protocol {opts.protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if opts.output not in OUTPUTS:
        raise ManifestError(f"output {opts.output!r} is not one of {', '.join(OUTPUTS)}")
    if opts.task is not None and opts.task not in TASKS:
        raise ManifestError(f"task {opts.task!r} is not one of {', '.join(TASKS)}")
    if opts.namespace is not None:
        check_name(opts.namespace, "namespace")
    if opts.deployment_mode is not None and opts.deployment_mode not in DEPLOYMENT_MODES:
        raise ManifestError(f"deployment mode {opts.deployment_mode!r} is not one of {', '.join(DEPLOYMENT_MODES)}")
    grpc_flags = {"--grpc_port", "--enable_grpc", "--disable_grpc"} & set(flag_names(opts.extra_args))
    if opts.grpc and grpc_flags:
        raise ManifestError(f"with the gRPC port declared ({GRPC_PORT}), the predictor's gRPC flags are the "
                            f"manifest's: drop {', '.join(sorted(grpc_flags))}")
    unknown = unknown_flags(opts.extra_args, allowed_flags(opts.runtime))
    if unknown:
        raise ManifestError(
            f"the {opts.runtime} runtime does not accept {', '.join(unknown)}"
            + (" (KServe's runtime knows only --return_raw_logits for raw logits)"
               if {"--return_logits", "--disable_postprocess"} & set(unknown) else ""))


def model_args(opts: PredictorOptions) -> list[str]:
    """The predictor flags both runtimes share, in KServe's spelling."""
    args = [f"--model_name={opts.served_name}"]
    if opts.task:
        args.append(f"--task={opts.task}")
    if opts.disable_lower_case:
        args.append("--disable_lower_case")
    if opts.output == "probabilities":
        args.append("--return_probabilities")
    elif opts.output == "raw_logits":
        args.append("--return_raw_logits")
    args.extend(opts.extra_args)
    return args


def workbench_args(opts: PredictorOptions) -> list[str]:
    """`workbench serve ...` as a container's args (the image has no ENTRYPOINT)."""
    args = [*WORKBENCH_COMMAND, f"--model_dir={MODEL_DIR}", *model_args(opts)]
    if opts.resources.gpu and "--device" not in flag_names(opts.extra_args):
        args.append("--device=cuda")  # fail loudly on a node without CUDA instead of running on CPU
    args.append(f"--http_port={HTTP_PORT}")
    if opts.grpc:
        args.append(f"--grpc_port={GRPC_PORT}")
    return args


def container_ports(opts: PredictorOptions) -> list[dict]:
    """The predictor's declared ports: REST only; with `grpc`, `h2c` alone (Serverless: one port) or after REST
    (RawDeployment)."""
    rest = {"containerPort": HTTP_PORT, "protocol": "TCP"}
    if not opts.grpc:
        return [rest]
    grpc = {"name": GRPC_PORT_NAME, "containerPort": GRPC_PORT, "protocol": "TCP"}
    return [rest, grpc] if opts.deployment_mode == "RawDeployment" else [grpc]


def _mode_annotations(opts: PredictorOptions) -> dict:
    return {DEPLOYMENT_MODE_ANNOTATION: opts.deployment_mode} if opts.deployment_mode else {}


def _metadata(name: str, namespace: str | None, annotations: dict | None = None) -> dict:
    metadata: dict = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def huggingface_inference_service(opts: PredictorOptions) -> dict:
    """An InferenceService on KServe's Hugging Face runtime (`modelFormat: huggingface`)."""
    model: dict = {"modelFormat": {"name": "huggingface"}}
    if opts.protocol == "v2":
        model["protocolVersion"] = "v2"
    model["args"] = model_args(opts)
    model["storageUri"] = opts.storage_uri
    if opts.grpc:  # the runtime serves gRPC on 8081 anyway; declaring the port routes to it
        model["ports"] = container_ports(opts)
    model["resources"] = opts.resources.to_k8s()
    predictor: dict = {}
    if opts.service_account:
        predictor["serviceAccountName"] = opts.service_account
    predictor["model"] = model
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": _metadata(opts.name, opts.namespace, _mode_annotations(opts)),
        "spec": {"predictor": predictor},
    }


def workbench_inference_service(opts: PredictorOptions) -> dict:
    """An InferenceService whose predictor is the workbench image as a custom container.

    `STORAGE_URI` on the container named `kserve-container` makes KServe run its storage initializer,
    which downloads the model into /mnt/models; the readiness probe waits for the model to be loaded.
    """
    container = {
        "name": "kserve-container",
        "image": opts.image,
        "args": workbench_args(opts),
        "env": [
            {"name": "STORAGE_URI", "value": opts.storage_uri},
            {"name": "HF_HUB_OFFLINE", "value": "1"},
        ],
        "ports": container_ports(opts),
        "readinessProbe": {  # on REST, whichever port is declared
            "httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": opts.resources.to_k8s(),
    }
    predictor: dict = {}
    if opts.service_account:
        predictor["serviceAccountName"] = opts.service_account
    predictor["containers"] = [container]
    annotations = {
        PROTOCOL_ANNOTATION: opts.protocol,
        "serving.kserve.io/enable-prometheus-scraping": "true",
        "prometheus.kserve.io/port": str(HTTP_PORT),
        "prometheus.kserve.io/path": "/metrics",
        **_mode_annotations(opts),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": _metadata(opts.name, opts.namespace, annotations),
        "spec": {"predictor": predictor},
    }


def inference_service(opts: PredictorOptions) -> dict:
    """Check the options, then build the InferenceService for `opts.runtime`."""
    _check_options(opts)
    if opts.runtime == "workbench":
        return workbench_inference_service(opts)
    return huggingface_inference_service(opts)


def hf_storage_container(name: str = "hf-hub", secret_name: str = "hf-secret",
                         image: str = STORAGE_INITIALIZER_IMAGE) -> dict:
    """The ClusterStorageContainer that downloads `hf://` URIs with the token from `secret_name`."""
    check_name(name, "ClusterStorageContainer name")
    return {
        "apiVersion": STORAGE_API_VERSION,
        "kind": "ClusterStorageContainer",
        "metadata": {"name": name},
        "spec": {
            "container": {
                "name": "storage-initializer",  # KServe recognises the init container by this name
                "image": image,
                "env": [{
                    "name": "HF_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "HF_TOKEN", "optional": False}},
                }],
                "resources": {
                    "requests": {"memory": "2Gi", "cpu": "1"},
                    "limits": {"memory": "4Gi", "cpu": "1"},
                },
            },
            "supportedUriFormats": [{"prefix": "hf://"}],
        },
    }


def hf_token_secret(name: str = "hf-secret", namespace: str | None = None,
                    token: str = "REPLACE_WITH_YOUR_HF_TOKEN") -> dict:
    """The Secret holding HF_TOKEN for private hub models (the token here is a placeholder)."""
    check_name(name, "Secret name")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace),
        "type": "Opaque",
        "stringData": {"HF_TOKEN": token},
    }


def s3_credentials_secret(name: str = "workbench-s3", namespace: str | None = None, *,
                          endpoint: str = "s3.amazonaws.com", region: str = "us-east-1",
                          use_https: bool = True) -> dict:
    """A Secret with S3 credentials in the form KServe's storage initializer reads (placeholders)."""
    check_name(name, "Secret name")
    annotations = {
        "serving.kserve.io/s3-endpoint": endpoint,
        "serving.kserve.io/s3-usehttps": "1" if use_https else "0",
        "serving.kserve.io/s3-region": region,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace, annotations),
        "type": "Opaque",
        "stringData": {
            "AWS_ACCESS_KEY_ID": "REPLACE_WITH_YOUR_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY": "REPLACE_WITH_YOUR_SECRET_ACCESS_KEY",
        },
    }


def service_account(name: str, secret_name: str, namespace: str | None = None) -> dict:
    """A ServiceAccount carrying `secret_name`: the predictor's storage initializer uses its credentials."""
    check_name(name, "ServiceAccount name")
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(name, namespace),
        "secrets": [{"name": secret_name}],
    }


def persistent_volume_claim(name: str, size: str = "5Gi", namespace: str | None = None,
                            access_mode: str = "ReadWriteOnce") -> dict:
    """A PVC to copy a trained model into (`pvc://NAME/PATH`)."""
    check_name(name, "PersistentVolumeClaim name")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(name, namespace),
        "spec": {"accessModes": [access_mode], "resources": {"requests": {"storage": size}}},
    }


def model_copy_pod(name: str, claim_name: str, namespace: str | None = None) -> dict:
    """A pod that mounts the PVC at /mnt/models so `kubectl cp` can put a model there."""
    check_name(name, "Pod name")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(name, namespace),
        "spec": {
            "containers": [{
                "name": "copy",
                "image": "busybox:1.36",
                "command": ["sh", "-c", "sleep 3600"],
                "volumeMounts": [{"name": "models", "mountPath": MODEL_DIR}],
            }],
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def container_args(manifest: dict) -> list[str]:
    """The predictor's args in an InferenceService (model-format or custom container)."""
    predictor = manifest.get("spec", {}).get("predictor", {})
    for key in ("model", "huggingface"):  # `huggingface:` is the older framework-specific spelling
        if key in predictor:
            return list(predictor[key].get("args") or [])
    containers = predictor.get("containers") or []
    return list(containers[0].get("args") or []) if containers else []


def predictor_runtime(manifest: dict) -> str:
    """'workbench' for a custom container running `workbench serve`, else 'huggingface'."""
    args = container_args(manifest)
    return "workbench" if tuple(args[:2]) == WORKBENCH_COMMAND else "huggingface"


def check_predictor_args(manifest: dict) -> list[str]:
    """Flags in an InferenceService's predictor args that its runtime does not accept ([] when all are fine)."""
    args = container_args(manifest)
    runtime = predictor_runtime(manifest)
    if runtime == "workbench":
        args = args[len(WORKBENCH_COMMAND):]
    return unknown_flags(args, allowed_flags(runtime))
