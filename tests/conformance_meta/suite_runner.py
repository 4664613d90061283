"""Run the conformance suite as a user would (a subprocess) and read its JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = REPO_ROOT / "conformance"


class SuiteRun:
    def __init__(self, report: dict, returncode: int, output: str, wall_s: float):
        self.report = report
        self.returncode = returncode
        self.output = output
        self.wall_s = wall_s

    def outcomes(self, check_id: str) -> set[str]:
        """Outcomes of a check id across targets (e.g. {'fail'})."""
        return {c["outcome"] for c in self.report["checks"] if c["id"] == check_id}

    def ids_with(self, outcome: str) -> set[str]:
        return {c["id"] for c in self.report["checks"] if c["outcome"] == outcome}

    def describe(self) -> str:
        bad = [f"{c['outcome']} {c['target']} {c['id']}: {c['reason'][:300]}" for c in self.report["checks"]
               if c["outcome"] in ("fail", "known-divergence")]
        return f"summary {self.report['summary']}\n" + "\n".join(bad) + "\n--- output tail ---\n" + self.output[-3000:]


def run_suite(report_path: Path, *args: str, timeout: float = 900) -> SuiteRun:
    command = [sys.executable, "-m", "pytest", str(CONFORMANCE_DIR), "-q", "-p", "no:cacheprovider",
               "--conformance-report", str(report_path), *args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    json_path = report_path if report_path.suffix == ".json" else Path(f"{report_path}.json")
    if not json_path.exists():
        raise AssertionError(f"the suite wrote no report (exit {completed.returncode}):\n{output[-4000:]}")
    return SuiteRun(json.loads(json_path.read_text()), completed.returncode, output, wall)


# --- the same run in a forked child (the mutation score runs the suite ~80 times) ------------------

def preload_suite_modules() -> None:
    """Import what every suite run imports (pytest, torch, transformers, the suite) once, without running
    anything: children forked afterwards start the suite without paying for the imports again."""
    import pytest  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline  # noqa: F401
    import transformers.pipelines.token_classification  # noqa: F401

    import conformance.conftest  # noqa: F401
    import conformance.reference  # noqa: F401


class ForkedSuite:
    """`run_suite` in a child forked from this process (which should have called `preload_suite_modules`
    and run no torch computation): the same pytest command line, its output in a file, the same report.
    Start it, then `poll()` until it gives the SuiteRun (or raises like run_suite when no report came)."""

    def __init__(self, report_path: Path, *args: str, timeout: float = 900):
        self.report_path = report_path
        self.log_path = Path(f"{report_path}.log")
        self.timeout = timeout
        self.started = time.perf_counter()
        argv = [str(CONFORMANCE_DIR), "-q", "-p", "no:cacheprovider", "--conformance-report", str(report_path), *args]
        pid = os.fork()
        if pid == 0:  # the child: become the suite
            code = 1
            try:
                os.environ.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
                os.chdir(REPO_ROOT)
                fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                import pytest

                code = int(pytest.main(argv))
            except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.pid = pid

    def poll(self) -> SuiteRun | None:
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done == 0:
            if time.perf_counter() - self.started > self.timeout:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"the suite ran past {self.timeout:.0f} s")
            return None
        wall = time.perf_counter() - self.started
        returncode = os.waitstatus_to_exitcode(status)
        output = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        json_path = self.report_path if self.report_path.suffix == ".json" else Path(f"{self.report_path}.json")
        if not json_path.exists():
            raise AssertionError(f"the suite wrote no report (exit {returncode}):\n{output[-4000:]}")
        return SuiteRun(json.loads(json_path.read_text()), returncode, output, wall)
