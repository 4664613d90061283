"""Kubernetes side of the workbench: KServe InferenceService manifests, deploy, and endpoint discovery.

- `manifests`: pure builders that return manifest dicts (no cluster needed).
- `manifests_cli`: `workbench manifests ...`, writes YAML.
- `kube`: loads a kubernetes API client with clear errors.
- `discovery`: `resolve_isvc(name, namespace)` -> base URL, Host header, model name, protocol.
- `deploy`: `workbench deploy -f FILE`, create or replace, wait for Ready, print the URL.
"""
