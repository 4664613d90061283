"""Preflight: before any check runs against `--endpoint`, make sure there is something to check.

The suite connects once, reads the server's and the model's metadata, and stops with one line when
the endpoint cannot be reached, when it does not serve `--model-name` (naming the models it does
serve, where the server lists them), or — after collection, when a selected check needs the task —
when the task is neither given (`--task`) nor told by the server's metadata. Without this, an
unreachable endpoint or a typo in the model name made every check fail with its own traceback.

Everything here but `Probe.request` is pure: the probe gets a `request(method, path)` function that
returns an `httpx.Response` or raises `httpx.HTTPError`, so the rules are tested with fake servers
(tests/conformance_meta/test_preflight.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from conformance import semantics

Request = Callable[[str, str], httpx.Response]  # (method, path) -> response; raises httpx.HTTPError
NOT_FOUND = (400, 404)  # Triton answers metadata of an unknown model with 400, KServe with 404


class PreflightError(Exception):
    """The endpoint cannot be checked; the message is the one line the suite stops with."""


@dataclass
class Findings:
    """What preflight learned: the model's V2 metadata (if any) and what it tells of task and mode."""
    metadata: dict | None = None
    input_name: str | None = None  # the declared text input, when the metadata names one
    task: str | None = None
    mode: str | None = None
    statuses: dict[str, int] = field(default_factory=dict)


def connection_problem(exc: BaseException) -> str:
    """A short reason for a transport error: "connection refused", "timed out", "name or service not known"."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    cause = exc
    while cause.__cause__ is not None and cause.__cause__ is not cause:
        cause = cause.__cause__
    text = str(cause) or str(exc) or type(exc).__name__
    if isinstance(cause, OSError) and cause.strerror:
        text = cause.strerror
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text.strip()).splitlines()[0] if text.strip() else type(exc).__name__
    return text[:1].lower() + text[1:]


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def served_names(request: Request) -> tuple[list[str] | None, list[str]]:
    """The model names the server lists (GET /v1/models, then POST /v2/repository/index), or None;
    and what each listing attempt answered (for the message when none worked)."""
    tried: list[str] = []
    names: list[str] = []
    listed = False
    for method, path in (("GET", "/v1/models"), ("POST", "/v2/repository/index")):
        try:
            response = request(method, path)
        except httpx.HTTPError as exc:
            tried.append(f"{method} {path}: {connection_problem(exc)}")
            continue
        body = json_or_none(response)
        found = None
        if response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("models"), list):
            found = [str(name) for name in body["models"]]
        elif response.status_code == 200 and isinstance(body, list):  # OIP repository index: [{"name": ...}]
            found = [str(entry["name"]) for entry in body if isinstance(entry, dict) and "name" in entry]
        if found is None:
            tried.append(f"{method} {path}: {response.status_code}")
            continue
        listed = True
        names += [name for name in found if name not in names]
    return (names if listed else None), tried


def input_name_from_metadata(metadata: Any) -> str | None:
    """The name of the model's one BYTES input, when its V2 metadata declares exactly one (OIP: input
    names are the model's; a server may refuse or misread any other name)."""
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    texts = [t for t in inputs or [] if isinstance(t, dict) and t.get("datatype") == "BYTES"
             and isinstance(t.get("name"), str)]
    return texts[0]["name"] if len(texts) == 1 else None


def task_from_metadata(metadata: Any) -> str | None:
    """The task the V2 model metadata tells (workbench's server: parameters.task), if one of the suite's."""
    parameters = metadata.get("parameters") if isinstance(metadata, dict) else None
    task = parameters.get("task") if isinstance(parameters, dict) else None
    return task if task in semantics.SUITE_TASKS else None


def mode_from_metadata(metadata: Any) -> str | None:
    parameters = metadata.get("parameters") if isinstance(metadata, dict) else None
    mode = parameters.get("mode") if isinstance(parameters, dict) else None
    return mode if mode in semantics.MODES else None


def _where(base_url: str, host_header: str | None) -> str:
    return f"{base_url} (Host: {host_header})" if host_header else base_url


def probe(request: Request, base_url: str, model_name: str, protocols: tuple[str, ...],
          host_header: str | None = None) -> Findings:
    """Reach the endpoint and find the model; raise PreflightError with the one-line reason otherwise."""
    where = _where(base_url, host_header)
    first = "/v2/health/live" if "v2" in protocols else "/v1/models"
    try:
        request("GET", first)
    except httpx.HTTPError as exc:
        raise PreflightError(f"cannot reach {where}: {connection_problem(exc)} (GET {first})") from None
    findings = Findings()
    paths = {"v1": f"/v1/models/{model_name}", "v2": f"/v2/models/{model_name}"}
    for protocol in ("v2", "v1"):
        if protocol not in protocols:
            continue
        try:
            response = request("GET", paths[protocol])
        except httpx.HTTPError as exc:
            raise PreflightError(f"cannot reach {where}: {connection_problem(exc)} (GET {paths[protocol]})") from None
        findings.statuses[f"GET {paths[protocol]}"] = response.status_code
        if protocol == "v2" and response.status_code == 200:
            findings.metadata = json_or_none(response)
    codes = list(findings.statuses.values())
    if codes and 200 not in codes and all(code in NOT_FOUND for code in codes):
        raise PreflightError(unknown_model_message(request, where, model_name, findings.statuses))
    if findings.metadata is None and "v2" not in protocols:
        try:  # a V1-only run: the V2 metadata may still tell the task
            response = request("GET", paths["v2"])
            if response.status_code == 200:
                findings.metadata = json_or_none(response)
        except httpx.HTTPError:
            pass
    findings.task = task_from_metadata(findings.metadata)
    findings.input_name = input_name_from_metadata(findings.metadata)
    findings.mode = mode_from_metadata(findings.metadata)
    return findings


def unknown_model_message(request: Request, where: str, model_name: str, statuses: dict[str, int]) -> str:
    answered = ", ".join(f"{what} -> {code}" for what, code in statuses.items())
    names, tried = served_names(request)
    if names:
        served = f"it serves {', '.join(repr(n) for n in names[:20])}{' and more' if len(names) > 20 else ''}"
    elif names == []:
        served = "it lists no models"
    else:
        served = f"no model names could be listed ({'; '.join(tried)})"
    return f"model {model_name!r} is not served by {where} ({answered}); {served} -- pass the right --model-name"


def task_missing_message(base_url: str, model_name: str, needing: int) -> str:
    return (f"the task of model {model_name!r} at {base_url} is unknown and {needing} selected checks need it: "
            f"the server's metadata does not tell it; pass --task ({' | '.join(semantics.SUITE_TASKS)}), "
            f"or --level protocol to run only checks that do not need it")
