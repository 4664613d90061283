"""MLServer with its Hugging Face runtime (mlserver-huggingface): a V2 server nobody here wrote.

It pins versions that clash with ours (transformers < 4.42 for `Conversation`), so it lives in a venv of its
own, made by `.ci/install_mlserver.sh VENV` (default `.venv-mlserver` in the checkout, or
`WORKBENCH_MLSERVER_PYTHON`). `served_mlserver(model_dir, task)` writes an MLServer repository for the model
(settings.json + model-settings.json), starts `mlserver start`, and yields the REST base URL once
`/v2/health/ready` answers 200. MLServer speaks V2 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from workbench.testsupport.servers import free_port, served_command

CHECKOUT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "bash .ci/install_mlserver.sh .venv-mlserver (or set WORKBENCH_MLSERVER_PYTHON)"
PIPELINE_TASKS = {"token_classification": "token-classification", "sequence_classification": "text-classification",
                  "fill_mask": "fill-mask"}


def mlserver_python() -> Path | None:
    configured = os.environ.get("WORKBENCH_MLSERVER_PYTHON")
    candidate = Path(configured) if configured else CHECKOUT / ".venv-mlserver" / "bin" / "python"
    return candidate if candidate.exists() else None


def missing_reason() -> str | None:
    if mlserver_python() is None:
        return f"MLServer with mlserver-huggingface is not installed; install it with: {INSTALL_HINT}"
    return None


def write_repository(directory: Path, model_dir: str | Path, task: str, model_name: str,
                     http_port: int, grpc_port: int, metrics_port: int) -> Path:
    """An MLServer model repository serving `model_dir` as `model_name` for `task`."""
    (directory / model_name).mkdir(parents=True, exist_ok=True)
    (directory / "settings.json").write_text(json.dumps(
        {"http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port, "parallel_workers": 0}))
    (directory / model_name / "model-settings.json").write_text(json.dumps(
        {"name": model_name, "implementation": "mlserver_huggingface.HuggingFaceRuntime",
         "parameters": {"extra": {"task": PIPELINE_TASKS[task], "pretrained_model": str(model_dir)}}}))
    return directory


@contextlib.contextmanager
def served_mlserver(model_dir: str | Path, task: str, model_name: str = "model",
                    timeout: float = 180.0) -> Iterator[str]:
    python = mlserver_python()
    if python is None:
        raise RuntimeError(missing_reason())
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="workbench-mlserver-") as tmp:
        repository = write_repository(Path(tmp), model_dir, task, model_name, port, free_port(), free_port())
        command = [str(Path(python).parent / "mlserver"), "start", str(repository)]
        env = {"PYTHONPATH": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        with served_command(command, port, timeout=timeout, env=env) as url:
            yield url
