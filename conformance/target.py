"""What the suite checks (`Target`) and the requests it sends.

A target is one endpoint serving one model in one task/mode. With `--endpoint` (or `--isvc`) there is
one target; without, the suite serves tiny models itself, one target per (task, mode).
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from conformance import semantics

from workbench.tasks import MODE_FLAGS, TEXT_EMBEDDING

SAMPLE_TEXTS = [
    "My name is Wolfgang and I live in Berlin",
    "My name is Lisa and I live in Paris",
    "Hello, my dog is cute",
    "I am feeling sad",
    "John works for a company based in New York",
    "The minister visited London yesterday",
]
FILL_MASK_TEMPLATES = [
    "The capital of France is {mask}.",
    "The capital of {mask} is paris.",
    "My name is {mask} and I live in Berlin",
    "Hello, my {mask} is cute",
    "The {mask} visited London yesterday",
    "I am feeling {mask}",
]


@dataclass
class Target:
    id: str
    base_url: str
    model_name: str
    task: str | None
    mode: str
    protocols: tuple[str, ...]
    profile: str
    host_header: str | None = None
    reference: Any = None  # conformance.reference.ReferenceModel or None
    mask_token: str = "[MASK]"
    input_name: str = "text"  # the V2 text input's name (from the model's metadata when it declares one)
    extra: dict = field(default_factory=dict)

    def v2_body(self, texts: list[str], request_id: str | None = None) -> dict:
        """A V2 inference request for `texts`, in the model's declared text input."""
        return v2_request(texts, request_id, self.input_name)

    def texts(self, count: int = 2, start: int = 0) -> list[str]:
        if self.task == "fill_mask":
            mask = self.reference.mask_token if self.reference is not None else self.mask_token
            pool = [t.format(mask=mask) for t in FILL_MASK_TEMPLATES]
        else:
            pool = SAMPLE_TEXTS
        return [pool[(start + i) % len(pool)] for i in range(count)]

    # --- paths -------------------------------------------------------------------------------
    @property
    def v1_predict_path(self) -> str:
        return f"/v1/models/{self.model_name}:predict"

    @property
    def v2_infer_path(self) -> str:
        return f"/v2/models/{self.model_name}/infer"


def v2_request(texts: list[str], request_id: str | None = None, input_name: str = "text") -> dict:
    body: dict[str, Any] = {"inputs": [{"name": input_name, "shape": [len(texts)], "datatype": "BYTES",
                                        "data": list(texts)}]}
    if request_id is not None:
        body["id"] = request_id
    return body


def new_request_id() -> str:
    return f"conformance-{uuid.uuid4().hex[:12]}"


def predict_v1(client, target: Target, texts: list[str]) -> list:
    """POST V1 predict and return canonical rows (fails with the rule broken)."""
    response = client.post(target.v1_predict_path, json_body={"instances": list(texts)})
    if response.status_code != 200:
        raise semantics.Violation(f"V1 predict answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    if not isinstance(body, dict) or "predictions" not in body:
        raise semantics.Violation(f"V1 predict body has no 'predictions': {response.text[:300]}")
    return semantics.v1_rows(target.task, target.mode, body["predictions"], len(texts))


def infer_v2(client, target: Target, texts: list[str], request_id: str | None = None) -> tuple[dict, list]:
    """POST V2 infer; return (body, canonical rows)."""
    response = client.post(target.v2_infer_path, json_body=v2_request(texts, request_id, target.input_name))
    if response.status_code != 200:
        raise semantics.Violation(f"V2 infer answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    tensor = semantics.find_output(body)
    return body, semantics.v2_rows(target.task, target.mode, tensor, len(texts))


def predict_rows(client, target: Target, texts: list[str], protocol: str) -> list:
    if protocol == "v1":
        return predict_v1(client, target, texts)
    return infer_v2(client, target, texts)[1]


# --- servers the suite starts itself -----------------------------------------------------------

def server_command(server: str, model_dir: str | Path, model_name: str, mode: str, port: int,
                   task: str | None = None) -> list[str]:
    """The command that serves `model_dir` in `mode` on `port` with the built-in predictor or KServe's.
    text_embedding is named (`--task`): KServe's runtime does not infer it from a headless architecture."""
    flags = (*MODE_FLAGS[mode], *(("--task", task) if task == TEXT_EMBEDDING else ()))
    if server == "builtin":
        return [sys.executable, "-m", "workbench", "serve", "--model_name", model_name, "--model_dir", str(model_dir),
                "--http_port", str(port), "--host", "127.0.0.1", "--disable_grpc", *flags]  # two run at once
    if server == "kserve":
        return [sys.executable, "-m", "workbench.testsupport.kserve_modelserver", "--model_name", model_name,
                "--model_dir", str(model_dir), "--http_port", str(port), *flags]
    if server == "kserve-runtime":
        from workbench.testsupport.kserve_runtime import missing_reason, runtime_command, runtime_python

        if runtime_python() is None:
            raise RuntimeError(missing_reason())
        from workbench.testsupport.servers import free_port

        return runtime_command(runtime_python(), model_dir, model_name, port, free_port(), flags)
    raise ValueError(f"unknown server {server!r}: builtin, kserve or kserve-runtime")


@contextlib.contextmanager
def serve_locally(server: str, model_dir: str | Path, model_name: str, mode: str, timeout: float = 120.0,
                  task: str | None = None) -> Iterator[str]:
    from workbench.testsupport.servers import free_port, served_command

    port = free_port()
    env = {"PYTHONPATH": ""} if server == "kserve-runtime" else None  # its own venv: keep our checkout off its path
    with served_command(server_command(server, model_dir, model_name, mode, port, task), port, timeout=timeout,
                        env=env) as url:
        yield url


class LocalServers:
    """The servers of an offline run, started one ahead (workbench.testsupport.servers.ServersAhead): while one
    target's checks run, the next target's server is already starting (server start-up is the slow part)."""

    def __init__(self, server: str, specs: list, model_dir_for, timeout: float = 120.0):
        from workbench.testsupport.servers import ServersAhead

        self.server = server
        self.timeout = timeout
        self.model_dir_for = model_dir_for  # called in the main thread only (the start thread only reads)
        specs = [spec for spec in specs if spec.endpoint is None]
        self.model_dirs = {spec.task: model_dir_for(spec.task) for spec in specs}
        self.ahead = ServersAhead(specs, self._start)

    def _start(self, spec):
        return serve_locally(self.server, self.model_dirs[spec.task], spec.model_name, spec.mode, self.timeout,
                             spec.task)

    @contextlib.contextmanager
    def serving(self, spec) -> Iterator[str]:
        """Yield the URL of `spec`'s server (started now or already starting); start the next one meanwhile."""
        if spec.task not in self.model_dirs:
            self.model_dirs[spec.task] = self.model_dir_for(spec.task)
        yield self.ahead.get(spec)

    def close(self) -> None:
        self.ahead.close()
