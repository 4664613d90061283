"""`workbench deploy -f FILE`: create or replace what a manifest file holds, wait until Ready, print the URL.

    workbench deploy -f manifests/huggingface-bert-ner-v2.yaml
    workbench deploy -f my-isvc.yaml --namespace models --timeout 900 --ingress 127.0.0.1:8080

Every document in FILE is applied (InferenceService, ClusterStorageContainer, Secret, ServiceAccount,
PersistentVolumeClaim, Pod, ...); then each InferenceService is awaited until its Ready condition is True
for the spec just written. Prints the URL, the ingress and Host header to use, and the conformance command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from workbench.k8s import discovery, kube


def load_documents(path: str) -> list[dict]:
    """The non-empty YAML documents in a file ('-' for stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise kube.KubeError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as exc:
        raise kube.KubeError(f"{path} is not valid YAML: {exc}") from exc
    if not documents:
        raise kube.KubeError(f"{path} holds no Kubernetes objects")
    for doc in documents:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise kube.KubeError(f"{path}: every document needs apiVersion and kind")
        kube.kind_of(doc)  # fail before applying anything when a kind is not supported
    return documents


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench deploy",
        description="Create or replace the objects in a manifest file, wait until each InferenceService is "
                    "Ready, and print how to reach it.",
    )
    parser.add_argument("-f", "--filename", required=True, help="manifest file (YAML, several documents allowed; "
                                                                "'-' for stdin)")
    parser.add_argument("-n", "--namespace", default="default",
                        help="namespace for objects that do not name one (default: default)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for each InferenceService to be Ready (default: 600)")
    parser.add_argument("--poll-interval", type=float, default=discovery.DEFAULT_POLL_INTERVAL,
                        help="seconds between status reads (default: 2)")
    parser.add_argument("--no-wait", action="store_true", help="apply and return without waiting")
    parser.add_argument("--ingress", help="HOST:PORT of the ingress, instead of looking up istio-ingressgateway")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    return parser


def _progress(name: str):
    def report(elapsed: float, summary: str) -> None:
        print(f"  [{elapsed:5.0f}s] {name}: waiting: {summary}", file=sys.stderr, flush=True)
    return report


def _report_ready(api_client, isvc: dict, ingress: str | None) -> None:
    namespace, name = isvc["metadata"].get("namespace", "default"), isvc["metadata"]["name"]
    url = (isvc.get("status") or {}).get("url")
    print(f"inferenceservice {namespace}/{name} is Ready: {url}")
    try:
        base_url = discovery.parse_ingress(ingress) if ingress else discovery.find_ingress(api_client)
    except kube.KubeError as exc:
        print(f"  (ingress not found: {exc})", file=sys.stderr)
        base_url = None
    endpoint = discovery.endpoint_from_isvc(isvc, base_url or "http://INGRESS_HOST:INGRESS_PORT")
    if endpoint.protocol == "v2":
        route = f"/v2/models/{endpoint.model_name}/ready"
    else:
        route = f"/v1/models/{endpoint.model_name}"
    host = f' -H "Host: {endpoint.host_header}"' if endpoint.host_header else ""
    print(f"  ingress:     {endpoint.base_url}   Host: {endpoint.host_header}")
    print(f"  model:       {endpoint.model_name} ({endpoint.protocol})")
    print(f"  try:         curl{host} {endpoint.base_url}{route}")
    print(f"  conformance: pytest conformance --isvc {name} --namespace {namespace}"
          + (f" --ingress {ingress}" if ingress else ""))


def deploy(path: str, *, namespace: str = "default", timeout: float = 600.0, wait: bool = True,
           poll_interval: float = discovery.DEFAULT_POLL_INTERVAL, ingress: str | None = None,
           kube_config: str | None = None, context: str | None = None) -> list[dict]:
    """Apply every object in `path`; wait for each InferenceService. Returns the Ready InferenceServices."""
    documents = load_documents(path)
    api_client = kube.load_api_client(kube_config, context)
    try:
        awaited = []
        for doc in documents:
            action, stored = kube.apply_object(api_client, doc, namespace)
            meta = stored.get("metadata") or {}
            where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
            print(f"{doc['kind'].lower()} {where}{meta.get('name')} {action}")
            if doc["kind"] == "InferenceService":
                awaited.append((meta["name"], meta.get("namespace") or namespace, meta.get("generation")))
        if not wait:
            return []
        ready = []
        for name, ns, generation in awaited:
            isvc = discovery.wait_until_ready(
                api_client, name, ns, timeout=timeout, poll_interval=poll_interval,
                min_generation=int(generation) if generation is not None else None, on_change=_progress(name))
            _report_ready(api_client, isvc, ingress)
            ready.append(isvc)
        return ready
    finally:
        api_client.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        deploy(args.filename, namespace=args.namespace, timeout=args.timeout, wait=not args.no_wait,
               poll_interval=args.poll_interval, ingress=args.ingress, kube_config=args.kubeconfig,
               context=args.context)
    except kube.KubeError as exc:
        print(f"workbench deploy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
