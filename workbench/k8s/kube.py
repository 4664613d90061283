"""A kubernetes API client with clear errors, and the few reads and writes the workbench needs.

Every call returns plain dicts (the API's JSON, camelCase keys) and raises `KubeError` with a message
a user can act on: which kubeconfig was missing, which object was not found, which server was unreachable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REQUEST_TIMEOUT = 30.0  # seconds per API call

ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


class KubeError(RuntimeError):
    """Something between us and the Kubernetes API went wrong; the message says what."""


class NotFoundError(KubeError):
    pass


class ConflictError(KubeError):
    pass


def kubeconfig_candidates(kube_config: str | None = None) -> list[Path]:
    """Where kubectl would look: the given file, else each path in $KUBECONFIG, else ~/.kube/config."""
    if kube_config:
        return [Path(kube_config).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def load_api_client(kube_config: str | None = None, context: str | None = None):
    """An `ApiClient` from a kubeconfig (like kubectl), or the in-cluster service account inside a pod."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    candidates = kubeconfig_candidates(kube_config)
    existing = [p for p in candidates if p.is_file()]
    configuration = client.Configuration()
    if not existing:
        if kube_config is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                config.load_incluster_config(client_configuration=configuration)
                return client.ApiClient(configuration)
            except ConfigException as exc:
                raise KubeError(f"no kubeconfig and the in-cluster service account did not load: {exc}") from exc
        looked = ", ".join(str(p) for p in candidates)
        raise KubeError(f"no kubeconfig: looked for {looked}. Point KUBECONFIG (or --kubeconfig) at your "
                        "cluster's config, e.g. `kind get kubeconfig --name NAME > kubeconfig`.")
    try:
        config.load_kube_config(config_file=os.pathsep.join(str(p) for p in existing), context=context,
                                client_configuration=configuration, persist_config=False)
    except ConfigException as exc:
        raise KubeError(f"kubeconfig {', '.join(map(str, existing))}: {exc}") from exc
    except (OSError, ValueError) as exc:  # unreadable or not YAML
        raise KubeError(f"kubeconfig {', '.join(map(str, existing))} could not be read: {exc}") from exc
    return client.ApiClient(configuration)


def _api_message(exc) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.body
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or exc.reason or "")


def call(api_client, what: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """Run one API call; turn its failures into `KubeError`s that say `what` was being done."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        result = fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except ApiException as exc:
        message = _api_message(exc)
        if exc.status == 404:
            raise NotFoundError(f"{what}: not found ({message})") from exc
        if exc.status == 409:
            raise ConflictError(f"{what}: conflict ({message})") from exc
        if exc.status in (401, 403):
            raise KubeError(f"{what}: the API server refused the credentials ({exc.status}): {message}") from exc
        raise KubeError(f"{what}: the API server answered {exc.status} {exc.reason}: {message}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        host = api_client.configuration.host
        raise KubeError(f"{what}: cannot reach the Kubernetes API server at {host} ({exc})") from exc
    if isinstance(result, dict):
        return result
    return api_client.sanitize_for_serialization(result)


# ---- InferenceService --------------------------------------------------------------------------------

def get_isvc(api_client, name: str, namespace: str) -> dict:
    from kubernetes import client

    api = client.CustomObjectsApi(api_client)
    try:
        return call(api_client, f"InferenceService {namespace}/{name}", api.get_namespaced_custom_object,
                    ISVC_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL, name)
    except NotFoundError as exc:
        raise NotFoundError(f"InferenceService {namespace}/{name} not found: check the name and namespace "
                            f"(`kubectl get inferenceservices -n {namespace}`)") from exc


def get_service(api_client, name: str, namespace: str) -> dict:
    from kubernetes import client

    return call(api_client, f"Service {namespace}/{name}", client.CoreV1Api(api_client).read_namespaced_service,
                name, namespace)


def list_nodes(api_client) -> list[dict]:
    from kubernetes import client

    return call(api_client, "listing nodes", client.CoreV1Api(api_client).list_node).get("items") or []


# ---- create or replace any object a manifest file holds ----------------------------------------------

@dataclass(frozen=True)
class Kind:
    """How to reach one kind through the client: a custom resource, or a core/v1 kind by method suffix."""

    group: str | None  # None for core/v1
    version: str
    plural: str
    namespaced: bool
    core_suffix: str | None = None  # e.g. "secret" for read_namespaced_secret
    replaceable: bool = True  # False where a spec cannot be replaced once created (PVC, Pod)


KINDS: dict[tuple[str, str], Kind] = {
    ("serving.kserve.io/v1beta1", "InferenceService"): Kind(ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL, True),
    ("serving.kserve.io/v1alpha1", "ClusterStorageContainer"):
        Kind("serving.kserve.io", "v1alpha1", "clusterstoragecontainers", False),
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"):
        Kind("serving.kserve.io", "v1alpha1", "clusterservingruntimes", False),
    ("serving.kserve.io/v1alpha1", "ServingRuntime"):
        Kind("serving.kserve.io", "v1alpha1", "servingruntimes", True),
    ("v1", "Secret"): Kind(None, "v1", "secrets", True, "secret"),
    ("v1", "ServiceAccount"): Kind(None, "v1", "serviceaccounts", True, "service_account"),
    ("v1", "ConfigMap"): Kind(None, "v1", "configmaps", True, "config_map"),
    ("v1", "PersistentVolumeClaim"): Kind(None, "v1", "persistentvolumeclaims", True,
                                          "persistent_volume_claim", replaceable=False),
    ("v1", "Pod"): Kind(None, "v1", "pods", True, "pod", replaceable=False),
}


def kind_of(document: dict) -> Kind:
    key = (document.get("apiVersion", ""), document.get("kind", ""))
    if key not in KINDS:
        known = ", ".join(f"{k} ({v})" for v, k in KINDS)
        raise KubeError(f"cannot apply {key[1] or '?'} ({key[0] or '?'}): this tool applies {known}; "
                        "use kubectl for anything else")
    return KINDS[key]


def _ops(api_client, kind: Kind, namespace: str | None, name: str):
    """(read, create, replace) callables for one object."""
    from kubernetes import client

    if kind.core_suffix:
        core = client.CoreV1Api(api_client)
        return (lambda **kw: getattr(core, f"read_namespaced_{kind.core_suffix}")(name, namespace, **kw),
                lambda body, **kw: getattr(core, f"create_namespaced_{kind.core_suffix}")(namespace, body, **kw),
                lambda body, **kw: getattr(core, f"replace_namespaced_{kind.core_suffix}")(name, namespace, body,
                                                                                            **kw))
    custom = client.CustomObjectsApi(api_client)
    g, v, p = kind.group, kind.version, kind.plural
    if kind.namespaced:
        return (lambda **kw: custom.get_namespaced_custom_object(g, v, namespace, p, name, **kw),
                lambda body, **kw: custom.create_namespaced_custom_object(g, v, namespace, p, body, **kw),
                lambda body, **kw: custom.replace_namespaced_custom_object(g, v, namespace, p, name, body, **kw))
    return (lambda **kw: custom.get_cluster_custom_object(g, v, p, name, **kw),
            lambda body, **kw: custom.create_cluster_custom_object(g, v, p, body, **kw),
            lambda body, **kw: custom.replace_cluster_custom_object(g, v, p, name, body, **kw))


def apply_object(api_client, document: dict, namespace: str) -> tuple[str, dict]:
    """Create the object, or replace it when it exists. Returns (what happened, the object the server keeps).

    A replace carries the current `resourceVersion`, as the API requires for custom resources. PVCs and
    pods are left as they are when they exist: most of their spec cannot change after creation.
    """
    kind = kind_of(document)
    name = (document.get("metadata") or {}).get("name")
    if not name:
        raise KubeError(f"{document.get('kind')} without metadata.name")
    body = json.loads(json.dumps(document))  # a private copy
    ns = None
    if kind.namespaced:
        ns = body["metadata"].get("namespace") or namespace
        body["metadata"]["namespace"] = ns
    label = f"{document['kind']} {ns + '/' if ns else ''}{name}"
    read, create, replace = _ops(api_client, kind, ns, name)
    try:
        current = call(api_client, f"reading {label}", read)
    except NotFoundError:
        try:
            return "created", call(api_client, f"creating {label}", create, body)
        except ConflictError:  # created by someone else since we looked
            current = call(api_client, f"reading {label}", read)
    if not kind.replaceable:
        return "unchanged (exists; delete it first to change it)", current
    body["metadata"]["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
    return "replaced", call(api_client, f"replacing {label}", replace, body)
