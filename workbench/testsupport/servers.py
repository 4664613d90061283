"""Start real servers in subprocesses for tests, the conformance suite, benchmarks and the gate.

`served(model_dir, ...)` runs `python -m workbench serve` on a free port, waits until
`/v2/health/ready` answers 200 and yields the base URL; on exit it stops the server. When the
server fails to start, the error carries the server's own log. gRPC is off unless the flags say
otherwise (`served(dir, "--grpc_port", str(free_port()))`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import httpx


# Flags that say what to do with gRPC; without any of them `served` turns gRPC off.
GRPC_FLAGS = ("--grpc_port", "--enable_grpc", "--disable_grpc")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerFailed(RuntimeError):
    pass


def wait_until_ready(url: str, process: subprocess.Popen | None, log_path: Path | None, timeout: float,
                     ready_path: str = "/v2/health/ready") -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            log = log_path.read_text(errors="replace") if log_path else ""
            raise ServerFailed(f"server exited with code {process.returncode} before it was ready:\n{log[-4000:]}")
        try:
            response = httpx.get(url + ready_path, timeout=2.0)
            if response.status_code == 200:
                return
            last_error = f"{ready_path} answered {response.status_code}"
        except httpx.HTTPError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    log = log_path.read_text(errors="replace") if log_path else ""
    raise ServerFailed(f"server at {url} not ready after {timeout:.0f}s ({last_error}):\n{log[-4000:]}")


@contextlib.contextmanager
def served_command(command: Sequence[str], port: int, *, timeout: float = 120.0,
                   ready_path: str = "/v2/health/ready", env: dict[str, str | None] | None = None) -> Iterator[str]:
    """Run any server command that listens on 127.0.0.1:`port`; yield its base URL once ready.
    `env` adds to this process's environment; a None value removes that variable."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="workbench-server-") as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            process_env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
            process_env.update(env or {})
            process_env = {key: value for key, value in process_env.items() if value is not None}
            process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, env=process_env)
            try:
                wait_until_ready(url, process, log_path, timeout, ready_path)
                yield url
            finally:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextlib.contextmanager
def served(model_dir: str | Path | None = None, *flags: str, model_name: str = "model",
           model_id: str | None = None, timeout: float = 120.0, env: dict[str, str | None] | None = None) -> Iterator[str]:
    """Serve a model with the built-in predictor (`workbench serve`); yield the base URL. Its torch runs
    one intra-op thread unless OMP_NUM_THREADS is set here or in `env` (None: the server's own rule)."""
    port = free_port()
    command = [sys.executable, "-m", "workbench", "serve", "--model_name", model_name,
               "--http_port", str(port), "--host", "127.0.0.1"]
    if model_dir is not None:
        command += ["--model_dir", str(model_dir)]
    if model_id is not None:
        command += ["--model_id", model_id]
    command += list(flags)
    if not any(flag.split("=")[0] in GRPC_FLAGS for flag in flags):
        command.append("--disable_grpc")  # never KServe's default 8081: tests run many servers at once
    # One intra-op thread unless a test says otherwise: tests run many servers at once on a shared
    # machine, the case where the default (all usable CPUs) loses latency (docs/serving.md, threads).
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
    with served_command(command, port, timeout=timeout, env=env) as url:
        yield url


class ServersAhead:
    """Servers used in a known order, each started while the previous one is in use.

    `start(key)` returns a context manager that starts a server (or a group of servers) and yields what
    tests need (a URL, a tuple of URLs). `get(key)` returns that value, stops the servers of every other
    key (memory: one group runs, one starts) and begins starting the next key of `order` meanwhile.
    """

    def __init__(self, order: Sequence, start):
        from concurrent.futures import ThreadPoolExecutor

        self.order = list(dict.fromkeys(order))
        self.start = start
        self.running: dict = {}
        self.pending: dict = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="servers-ahead")

    def _open(self, key):
        manager = self.start(key)
        return manager, manager.__enter__()

    def _submit(self, key) -> None:
        if key not in self.running and key not in self.pending:
            self.pending[key] = self.pool.submit(self._open, key)

    def _stop(self, key) -> None:
        manager, _ = self.running.pop(key)
        manager.__exit__(None, None, None)

    def get(self, key):
        for other in [k for k in self.running if k != key]:
            self._stop(other)
        if key not in self.running:
            self._submit(key)
            self.running[key] = self.pending.pop(key).result()
        if key in self.order and self.order.index(key) + 1 < len(self.order):
            self._submit(self.order[self.order.index(key) + 1])
        return self.running[key][1]

    def close(self) -> None:
        for key in list(self.running):
            self._stop(key)
        for future in self.pending.values():
            try:
                manager, _ = future.result()
                manager.__exit__(None, None, None)
            except Exception:  # a server that never started has nothing to stop
                pass
        self.pending.clear()
        self.pool.shutdown(wait=True)
