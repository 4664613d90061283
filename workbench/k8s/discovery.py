"""Find a deployed InferenceService's endpoint: what the KServe docs do by hand with kubectl, in code.

    SERVICE_HOSTNAME=$(kubectl get inferenceservice NAME -o jsonpath='{.status.url}' | cut -d / -f 3)
    INGRESS_HOST=$(kubectl -n istio-system get service istio-ingressgateway \\
        -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
    INGRESS_PORT=$(kubectl -n istio-system get service istio-ingressgateway \\
        -o jsonpath='{.spec.ports[?(@.name=="http2")].port}')
    curl -H "Host: ${SERVICE_HOSTNAME}" http://${INGRESS_HOST}:${INGRESS_PORT}/v1/models/MODEL:predict ...

`resolve_isvc(name, namespace)` reads the InferenceService through the kubernetes client, waits until its
Ready condition is True, and returns the ingress base URL, the Host header, the model name and protocol.
Without a load balancer address it uses the http2 NodePort on a node's InternalIP; `ingress="host:port"`
overrides the lookup (e.g. after `kubectl port-forward -n istio-system svc/istio-ingressgateway 8080:80`).

Where the predictor exposes gRPC (a container port named `h2c`, KServe's spelling for Serverless, or
`grpc`/`grpc-*`; KServe's runtimes serve it on 8081), `grpc_endpoint_of` says where to reach it:
- Serverless (Knative, KServe's default mode): through the same ingress, with the InferenceService's host
  as the `:authority` (Knative routes that host to the h2c port);
- RawDeployment / Standard: the predictor's cluster address (`status.components.predictor.address.url`,
  else `status.address.url`) on the container port: reachable from inside the cluster, or after
  `kubectl port-forward svc/NAME-predictor 8081:8081`.
Neither path has run against a real cluster here (a mock Kubernetes API stands in; see the tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from workbench.k8s import kube
from workbench.k8s.manifests import (DEPLOYMENT_MODE_ANNOTATION, PROTOCOL_ANNOTATION, container_args, flag_names,
                                     predictor_runtime)

INGRESS_SERVICE = "istio-ingressgateway"
INGRESS_NAMESPACE = "istio-system"
INGRESS_PORT_NAME = "http2"
DEFAULT_POLL_INTERVAL = 2.0
GRPC_PORT_NAMES = ("h2c", "grpc")  # a container port so named (or grpc-*) serves gRPC
RAW_MODES = ("RawDeployment", "Standard")  # KServe's deployment modes without Knative (Standard: 0.15's name)


class DiscoveryError(kube.KubeError):
    """The endpoint could not be found; the message says why and what to do."""


@dataclass(frozen=True)
class GrpcEndpoint:
    address: str | None  # HOST:PORT; None when the port is declared but its address is unknown
    authority: str | None  # the :authority to send (the InferenceService's host, through the ingress)
    how: str  # one line: which port, reached how (or why there is no address)
    hint: str = ""  # how to reach it from outside the cluster instead (a port-forward and --grpc-endpoint)


@dataclass(frozen=True)
class ResolvedEndpoint:
    base_url: str  # where to send requests, e.g. "http://1.2.3.4:80"
    host_header: str | None  # e.g. "bert.default.example.com"; None when the URL needs none
    model_name: str  # the name in /v1/models/NAME and /v2/models/NAME
    protocol: str  # "v1" or "v2"
    isvc_url: str | None  # status.url
    task: str | None = None  # the predictor's --task, when it names one
    mode: str = "default"  # "default", "probabilities" or "logits", from the predictor's flags
    grpc: GrpcEndpoint | None = None  # where the predictor's gRPC port is reached; None: it exposes none

    @property
    def headers(self) -> dict[str, str]:
        return {"Host": self.host_header} if self.host_header else {}


# ---- pure functions on the API's JSON ---------------------------------------------------------------

def conditions(isvc: dict) -> list[dict]:
    return list(((isvc.get("status") or {}).get("conditions")) or [])


def is_ready(isvc: dict, min_generation: int | None = None) -> bool:
    """Ready=True, and (after a replace) the controller has seen the generation we wrote."""
    status = isvc.get("status") or {}
    if min_generation is not None and status.get("observedGeneration") is not None:
        if int(status["observedGeneration"]) < min_generation:
            return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions(isvc))


def describe_not_ready(isvc: dict, min_generation: int | None = None) -> str:
    """Each condition that is not True, with its reason and message; or why there are none."""
    status = isvc.get("status") or {}
    parts = []
    observed = status.get("observedGeneration")
    if min_generation is not None and observed is not None and int(observed) < min_generation:
        parts.append(f"the controller has not seen the new spec yet (observedGeneration {observed} "
                     f"< generation {min_generation})")
    for cond in conditions(isvc):
        if cond.get("status") != "True":
            detail = ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x)
            parts.append(f"{cond.get('type')}={cond.get('status')}" + (f" ({detail})" if detail else ""))
    if not conditions(isvc):
        parts.append("no status conditions yet (is the KServe controller running? "
                     "`kubectl get pods -n kserve`)")
    return "; ".join(parts) or "Ready condition not True"


def arg_value(args: list[str], flag: str) -> str | None:
    """The value of `flag` in args written `--flag=value` or `--flag value` (the last one wins, as argparse)."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        elif arg == flag and i + 1 < len(args):
            value = args[i + 1]
    return value


def model_name_of(isvc: dict) -> str:
    """`--model_name` from the predictor's args (`--model_name=x` or `--model_name x`), else the isvc name."""
    return arg_value(container_args(isvc), "--model_name") or isvc["metadata"]["name"]


def mode_of(isvc: dict) -> str:
    """'probabilities', 'logits' (only --return_raw_logits works on KServe's runtime) or 'default'."""
    flags = set(flag_names(container_args(isvc)))
    if "--return_probabilities" in flags:
        return "probabilities"
    if "--return_raw_logits" in flags or (predictor_runtime(isvc) == "workbench"
                                          and flags & {"--return_logits", "--disable_postprocess"}):
        return "logits"
    return "default"


def protocol_of(isvc: dict) -> str:
    """spec.predictor.model.protocolVersion; for custom containers our annotation; else v1 (KServe's default)."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    version = (predictor.get("model") or {}).get("protocolVersion")
    if not version:
        version = ((isvc.get("metadata") or {}).get("annotations") or {}).get(PROTOCOL_ANNOTATION)
    version = (version or "v1").lower()
    return "v2" if version.startswith("v2") or version == "grpc-v2" else "v1"


def predictor_ports(isvc: dict) -> list[dict]:
    """The container ports of the predictor (model-format spec, `huggingface:`, or the first container)."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    for key in ("model", "huggingface"):
        if key in predictor:
            return list((predictor[key] or {}).get("ports") or [])
    containers = predictor.get("containers") or []
    return list(containers[0].get("ports") or []) if containers else []


def grpc_port_of(isvc: dict) -> dict | None:
    """The predictor's gRPC container port (named h2c, grpc or grpc-*), or None."""
    for port in predictor_ports(isvc):
        name = str(port.get("name") or "")
        if (name in GRPC_PORT_NAMES or name.startswith("grpc-")) and port.get("containerPort"):
            return port
    return None


def deployment_mode_of(isvc: dict) -> str:
    """status.deploymentMode, else the deploymentMode annotation, else Serverless (KServe's default)."""
    mode = (isvc.get("status") or {}).get("deploymentMode")
    if not mode:
        mode = ((isvc.get("metadata") or {}).get("annotations") or {}).get(DEPLOYMENT_MODE_ANNOTATION)
    return mode or "Serverless"


def predictor_address_host(isvc: dict) -> str | None:
    """The host of status.components.predictor.address.url, else of status.address.url."""
    status = isvc.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    for address in (predictor.get("address"), status.get("address")):
        url = (address or {}).get("url")
        if url and urlsplit(url).hostname:
            return urlsplit(url).hostname
    return None


def _host_port(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def grpc_endpoint_of(isvc: dict, ingress_url: str) -> GrpcEndpoint | None:
    """Where the InferenceService's gRPC port is reached (see the module docstring); None: it exposes none."""
    port = grpc_port_of(isvc)
    if port is None:
        return None
    mode = deployment_mode_of(isvc)
    named = f"predictor container port {port.get('name')} ({port['containerPort']}), deployment mode {mode}"
    meta = isvc.get("metadata") or {}
    if mode in RAW_MODES:
        hint = (f"kubectl port-forward -n {meta.get('namespace', 'default')} svc/{meta.get('name')}-predictor "
                f"8081:{port['containerPort']}, then pass --grpc-endpoint 127.0.0.1:8081")
        host = predictor_address_host(isvc)
        if host is None:
            return GrpcEndpoint(None, None, f"{named}, but the InferenceService has no "
                                            "status.components.predictor.address.url to reach it on", hint)
        return GrpcEndpoint(_host_port(host, port["containerPort"]), None,
                            f"{named}: the predictor's cluster address {host}", hint)
    hint = (f"kubectl port-forward -n {INGRESS_NAMESPACE} svc/{INGRESS_SERVICE} 8081:80, then pass "
            "--grpc-endpoint 127.0.0.1:8081 (the authority stays the InferenceService's host)")
    ingress = urlsplit(ingress_url)
    if not ingress.hostname:
        return GrpcEndpoint(None, None, f"{named}, but no ingress address to reach it through", hint)
    authority = host_of((isvc.get("status") or {}).get("url"))
    return GrpcEndpoint(_host_port(ingress.hostname, ingress.port or 80), authority,
                        f"{named}: through the ingress with authority {authority}", hint)


def host_of(url: str | None) -> str | None:
    """The host part of status.url: what the Host header must say (the docs' `cut -d / -f 3`)."""
    if not url:
        return None
    return urlsplit(url).netloc or None


def _url(host: str, port: int | str) -> str:
    if ":" in host and not host.startswith("["):  # IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}"


def parse_ingress(text: str) -> str:
    """'host:port', 'host' (port 80) or 'http://host:port' -> 'http://host:port'."""
    text = text.strip().rstrip("/")
    if "://" in text:
        parts = urlsplit(text)
        if not parts.hostname:
            raise DiscoveryError(f"--ingress {text!r}: expected HOST:PORT")
        return f"{parts.scheme}://{parts.netloc}"
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, "80"
    if not host or not port.isdigit():
        raise DiscoveryError(f"--ingress {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return _url(host.strip("[]"), port)


def ingress_from_service(service: dict, nodes: list[dict]) -> str | None:
    """The ingress base URL from the gateway Service (and nodes, for a NodePort), or None when it has none."""
    spec = service.get("spec") or {}
    ports = spec.get("ports") or []
    http2 = next((p for p in ports if p.get("name") == INGRESS_PORT_NAME), None)
    if http2 is None:
        return None
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    for entry in ingress:
        host = entry.get("ip") or entry.get("hostname")
        if host:
            return _url(host, http2.get("port", 80))
    if http2.get("nodePort"):
        for node in nodes:
            for address in (node.get("status") or {}).get("addresses") or []:
                if address.get("type") == "InternalIP" and address.get("address"):
                    return _url(address["address"], http2["nodePort"])
    return None


# ---- cluster calls ----------------------------------------------------------------------------------

def find_ingress(api_client) -> str:
    """The Istio ingress gateway's base URL, as the KServe docs find it."""
    label = f"service {INGRESS_NAMESPACE}/{INGRESS_SERVICE}"
    hint = ("pass --ingress HOST:PORT (e.g. run `kubectl port-forward -n istio-system "
            "svc/istio-ingressgateway 8080:80` and pass --ingress 127.0.0.1:8080)")
    try:
        service = kube.get_service(api_client, INGRESS_SERVICE, INGRESS_NAMESPACE)
    except kube.NotFoundError as exc:
        raise DiscoveryError(f"no ingress address: {label} not found (is Istio installed, or does the cluster "
                             f"use another ingress?); {hint}") from exc
    nodes = []
    spec = service.get("spec") or {}
    if spec.get("type") in ("NodePort", "LoadBalancer") and not (
            (service.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
        nodes = kube.list_nodes(api_client)
    url = ingress_from_service(service, nodes)
    if url is None:
        ports = ", ".join(f"{p.get('name')}:{p.get('port')}" for p in spec.get("ports") or []) or "none"
        raise DiscoveryError(
            f"no ingress address: {label} (type {spec.get('type', '?')}, ports {ports}) has no load balancer "
            f"address and no {INGRESS_PORT_NAME} NodePort reachable on a node InternalIP; {hint}")
    return url


def wait_until_ready(api_client, name: str, namespace: str, *, timeout: float = 300.0,
                     poll_interval: float = DEFAULT_POLL_INTERVAL, min_generation: int | None = None,
                     on_change: Callable[[float, str], None] | None = None) -> dict:
    """Poll the InferenceService until Ready; return it. `on_change(elapsed, summary)` hears each new state."""
    start = time.monotonic()
    last = None
    while True:
        isvc = kube.get_isvc(api_client, name, namespace)
        if is_ready(isvc, min_generation):
            return isvc
        summary = describe_not_ready(isvc, min_generation)
        elapsed = time.monotonic() - start
        if on_change and summary != last:
            on_change(elapsed, summary)
        last = summary
        if elapsed >= timeout:
            raise DiscoveryError(f"InferenceService {namespace}/{name} not Ready after {timeout:g}s: {summary}")
        time.sleep(max(0.0, min(poll_interval, timeout - elapsed)))


def endpoint_from_isvc(isvc: dict, base_url: str) -> ResolvedEndpoint:
    url = (isvc.get("status") or {}).get("url")
    return ResolvedEndpoint(base_url=base_url, host_header=host_of(url), model_name=model_name_of(isvc),
                            protocol=protocol_of(isvc), isvc_url=url,
                            task=arg_value(container_args(isvc), "--task"), mode=mode_of(isvc),
                            grpc=grpc_endpoint_of(isvc, base_url))


def resolve_isvc(name: str, namespace: str = "default", *, ingress: str | None = None, timeout: float = 300.0,
                 kube_config: str | None = None, context: str | None = None,
                 poll_interval: float = DEFAULT_POLL_INTERVAL) -> ResolvedEndpoint:
    """Where and how to reach InferenceService `namespace/name` once it is Ready.

    Raises DiscoveryError for: no kubeconfig, InferenceService not found, not Ready within `timeout`
    (naming each condition that is not True), no ingress address.
    """
    try:
        base_url = parse_ingress(ingress) if ingress else None
        api_client = kube.load_api_client(kube_config, context)
        try:
            isvc = wait_until_ready(api_client, name, namespace, timeout=timeout, poll_interval=poll_interval)
            if (isvc.get("status") or {}).get("url") is None:
                raise DiscoveryError(f"InferenceService {namespace}/{name} is Ready but has no status.url")
            if base_url is None:
                base_url = find_ingress(api_client)
        finally:
            api_client.close()
    except DiscoveryError:
        raise
    except kube.KubeError as exc:
        raise DiscoveryError(str(exc)) from exc
    return endpoint_from_isvc(isvc, base_url)
