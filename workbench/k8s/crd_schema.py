"""Validate manifests against a CRD's OpenAPI v3 schema, offline, the way the API server would.

A CRD's `openAPIV3Schema` is nearly JSON Schema. What differs, and what this module converts:
- the API server drops or rejects unknown fields (kubectl applies with strict field validation), so
  every object that lists `properties` gets `additionalProperties: false`, unless it says
  `x-kubernetes-preserve-unknown-fields: true` or gives its own `additionalProperties`;
- `x-kubernetes-int-or-string: true` means an integer or a string (quantities like "2Gi" or 1);
- `nullable: true` also allows null;
- `metadata` is checked by the API server itself, not the schema: names must be DNS-1123 subdomains.

Needs `jsonschema` (a test dependency); the KServe CRDs come from outside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def openapi_to_jsonschema(node: Any) -> Any:
    """A JSON Schema (draft 7) equivalent of an openAPIV3Schema node, strict about unknown fields."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: openapi_to_jsonschema(sub) for name, sub in value.items()}
        else:
            out[key] = openapi_to_jsonschema(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in node and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    return out


def crd_schema(crd: dict, version: str | None = None) -> dict:
    """The converted schema of one served version of a CRD (the storage version by default)."""
    versions = crd["spec"]["versions"]
    chosen = next((v for v in versions if v["name"] == version), None) if version else \
        next((v for v in versions if v.get("storage")), versions[0])
    if chosen is None:
        raise ValueError(f"{crd['spec']['names']['kind']} has no version {version!r}")
    return openapi_to_jsonschema(chosen["schema"]["openAPIV3Schema"])


class CrdValidator:
    """Checks documents of one CRD's kind: apiVersion, kind, metadata.name, and the schema."""

    def __init__(self, crd: dict):
        import jsonschema

        self.group = crd["spec"]["group"]
        self.kind = crd["spec"]["names"]["kind"]
        self.versions = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served", True)}
        self._validators = {name: jsonschema.Draft7Validator(crd_schema(crd, name)) for name in self.versions}

    @classmethod
    def from_file(cls, path: str | Path) -> "CrdValidator":
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader reads the 2 MB CRD much faster
        return cls(yaml.load(Path(path).read_text(), Loader=loader))

    def errors(self, document: dict) -> list[str]:
        """Every problem found, as 'path: message' lines ([] when valid)."""
        problems = []
        api_version = document.get("apiVersion", "")
        group, _, version = api_version.rpartition("/")
        if group != self.group or version not in self.versions:
            return [f"apiVersion {api_version!r} is not {self.group}/{{{','.join(self.versions)}}}"]
        if document.get("kind") != self.kind:
            return [f"kind {document.get('kind')!r} is not {self.kind}"]
        name = (document.get("metadata") or {}).get("name", "")
        if not name or len(name) > 253 or not _NAME.match(name):
            problems.append(f"metadata.name {name!r} is not a valid DNS-1123 subdomain")
        for error in sorted(self._validators[version].iter_errors(document), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(f"{where}: {error.message}")
        return problems
