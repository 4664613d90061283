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
