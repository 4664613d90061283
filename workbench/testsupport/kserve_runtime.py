"""KServe's real Hugging Face runtime (huggingfaceserver), run beside our predictor in tests.

It is installed into a virtual environment of its own (it pins its own versions of kserve and
transformers), from the KServe source shipped in `../shared/kserve`:

    python3 -m venv .venv-kserve
    bash ../shared/kserve/install_huggingfaceserver.sh .venv-kserve/bin/python

`runtime_python()` finds that interpreter (`WORKBENCH_KSERVE_PYTHON`, else `.venv-kserve/bin/python` in
the checkout); `served_runtime(model_dir, *flags)` serves a model directory with it, REST and gRPC on
free ports, and yields the REST base URL once `/v2/health/ready` answers 200.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from workbench.testsupport.servers import free_port, served_command

CHECKOUT = Path(__file__).resolve().parents[2]
# The runtime's default gRPC receive limit: kserve.constants.MAX_GRPC_MESSAGE_LENGTH (kserve 0.21).
GRPC_MAX_MESSAGE = 8388608
INSTALL_HINT = ("python3 -m venv .venv-kserve && bash ../shared/kserve/install_huggingfaceserver.sh "
                ".venv-kserve/bin/python (or set WORKBENCH_KSERVE_PYTHON to a Python that has it)")


def runtime_python() -> Path | None:
    """The Python that has KServe's huggingfaceserver installed, or None."""
    configured = os.environ.get("WORKBENCH_KSERVE_PYTHON")
    candidate = Path(configured) if configured else CHECKOUT / ".venv-kserve" / "bin" / "python"
    return candidate if candidate.exists() else None


def missing_reason() -> str | None:
    """Why the real runtime cannot be run here (None when it can)."""
    if runtime_python() is None:
        return f"KServe's huggingfaceserver is not installed; install it with: {INSTALL_HINT}"
    return None


def runtime_command(python: str | Path, model_dir: str | Path, model_name: str, http_port: int, grpc_port: int,
                    flags: tuple[str, ...] = ()) -> list[str]:
    return [str(python), "-m", "huggingfaceserver", "--backend", "huggingface", "--model_dir", str(model_dir),
            "--model_name", model_name, "--http_port", str(http_port), "--grpc_port", str(grpc_port), *flags]


@contextlib.contextmanager
def served_runtime(model_dir: str | Path, *flags: str, model_name: str = "model",
                   timeout: float = 180.0) -> Iterator[str]:
    """Serve `model_dir` with KServe's real huggingfaceserver; yield the REST base URL."""
    with served_runtime_with_grpc(model_dir, *flags, model_name=model_name, timeout=timeout) as (url, _):
        yield url


@contextlib.contextmanager
def served_runtime_with_grpc(model_dir: str | Path, *flags: str, model_name: str = "model",
                             timeout: float = 180.0) -> Iterator[tuple[str, str]]:
    """Serve `model_dir` with KServe's real huggingfaceserver; yield (REST base URL, gRPC "127.0.0.1:PORT")."""
    python = runtime_python()
    if python is None:
        raise RuntimeError(missing_reason())
    port, grpc_port = free_port(), free_port()
    command = runtime_command(python, model_dir, model_name, port, grpc_port, tuple(flags))
    # Its own venv: our PYTHONPATH (a checkout on it) must not leak into the runtime's imports.
    env = {"PYTHONPATH": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with served_command(command, port, timeout=timeout, env=env) as url:
        yield url, f"127.0.0.1:{grpc_port}"
