"""The divergence matrix: the suite run against several servers, check x server, by level.

    python -m conformance.matrix [--servers workbench,kserve-runtime,kserve-modelserver,mlserver]
                                 [--out docs/conformance-matrix.md] [--reports DIR]

Each server serves the same tiny models (workbench.testsupport.tiny_models); the suite runs against it as a
user would (a pytest subprocess writing a JSON report), under the profile that names that server's known
divergences. The gRPC checks (`grpc_*`, conformance/test_v2_grpc.py): our predictor's offline run serves gRPC
itself; KServe's real runtime, whose offline run has no gRPC, gets one more run (task `GRPC_TASK`) with
`--endpoint` and `--grpc-endpoint` on a runtime started here, so its gRPC rows come from that run alone.
`render` turns the reports into Markdown: per check and server, `pass`, `known divergence`
(with the reason), `fail` (with the first reason) or `skip` (with why), aggregated over the server's targets
(task x mode). Nothing in the output is typed by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from conformance.levels import LEVELS
from conformance.profiles import DIVERGENCES

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Server:
    name: str
    profile: str
    description: str
    serve_with: str | None = None  # an offline-run server (--serve-with); None: started here, --endpoint
    suite_args: tuple[str, ...] = ()
    grpc_run: bool = False  # the offline run skips gRPC: run the gRPC checks against its gRPC port instead


SERVERS = [
    Server("workbench", "strict", "our predictor (`workbench serve`)", "builtin"),
    Server("kserve-runtime", "kserve", "KServe's real Hugging Face runtime (huggingfaceserver, kserve 0.21); "
           "gRPC checks: one run over its gRPC port (sequence_classification)", "kserve-runtime", grpc_run=True),
    Server("kserve-modelserver", "kserve", "KServe's ModelServer hosting a plain custom kserve.Model "
           "(workbench.testsupport.kserve_modelserver)", "kserve"),
    Server("mlserver", "mlserver", "MLServer 1.7 with mlserver-huggingface (V2 only; one text per request "
           "element is a positional pipeline argument); checked at level protocol only: it does not claim "
           "KServe's output layout", suite_args=("--level", "protocol")),
]
MLSERVER_TASKS = ("token_classification", "sequence_classification", "fill_mask")
GRPC_TASK = "sequence_classification"
GRPC_SELECTION = "grpc"  # -k: the checks of conformance/test_v2_grpc.py (every node id there holds it)


def offline_args(server: Server) -> list[str]:
    """The suite's arguments for a server's offline run (--serve-with)."""
    args = ["--serve-with", server.serve_with, "--profile", server.profile, *server.suite_args]
    return args + ["-k", f"not {GRPC_SELECTION}"] if server.grpc_run else args


def grpc_args(server: Server, url: str, address: str, max_message: int) -> list[str]:
    """The suite's arguments for the gRPC checks against a server started here (REST beside it, for the
    REST/gRPC equality checks and the metadata probe)."""
    return ["--endpoint", url, "--grpc-endpoint", address, "--task", GRPC_TASK, "--mode", "default",
            "--grpc-max-message", str(max_message), "--profile", server.profile, "-k", GRPC_SELECTION]


def suite_command(report: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", str(REPO_ROOT / "conformance"), "-q", "-p", "no:cacheprovider",
            "--conformance-report", str(report), *args]


def run_suite(report: Path, *args: str) -> dict:
    completed = subprocess.run(suite_command(report, *args), cwd=REPO_ROOT, capture_output=True, text=True)
    if not report.exists():
        raise RuntimeError(f"the suite wrote no report (exit {completed.returncode}):\n"
                           f"{(completed.stdout + completed.stderr)[-3000:]}")
    return json.loads(report.read_text())


@contextlib.contextmanager
def _mlserver_endpoint(task: str, workdir: Path) -> Iterator[str]:
    from workbench.testsupport.mlserver_runtime import served_mlserver
    from workbench.testsupport.tiny_models import build_tiny_model

    model_dir = build_tiny_model(task, workdir / f"tiny-{task}")
    with served_mlserver(model_dir, task) as url:
        yield url


def run_kserve_runtime_grpc(server: Server, reports: Path) -> dict:
    """The gRPC checks against KServe's real runtime serving a tiny `GRPC_TASK` model, REST and gRPC."""
    from workbench.testsupport.kserve_runtime import GRPC_MAX_MESSAGE, served_runtime_with_grpc
    from workbench.testsupport.tiny_models import build_tiny_model

    print(f"[matrix] {server.name}: gRPC run, {GRPC_TASK}", flush=True)
    model_dir = build_tiny_model(GRPC_TASK, reports / f"tiny-{GRPC_TASK}-grpc")
    with served_runtime_with_grpc(model_dir) as (url, address):
        return run_suite(reports / f"{server.name}-grpc.json", *grpc_args(server, url, address, GRPC_MAX_MESSAGE))


def run_server(server: Server, reports: Path) -> list[dict]:
    """The suite's reports for one server (one offline run, or one run per task for an endpoint)."""
    if server.serve_with is not None:
        report = reports / f"{server.name}.json"
        print(f"[matrix] {server.name}: offline run, --serve-with {server.serve_with}", flush=True)
        results = [run_suite(report, *offline_args(server))]
        if server.grpc_run:
            results.append(run_kserve_runtime_grpc(server, reports))
        return results
    results = []
    for task in MLSERVER_TASKS:
        print(f"[matrix] {server.name}: {task}", flush=True)
        with _mlserver_endpoint(task, reports) as url:
            results.append(run_suite(reports / f"{server.name}-{task}.json", "--endpoint", url, "--task", task,
                                     "--mode", "default", "--protocol", "v2", "--profile", server.profile,
                                     *server.suite_args))
    return results


# --- rendering (pure) ----------------------------------------------------------------------------

def _short(text: str, limit: int = 140) -> str:
    line = " ".join((text or "").split())
    line = line.replace("|", "\\|")
    return line if len(line) <= limit else line[:limit - 1] + "…"


def cell(checks: list[dict]) -> str:
    """One server's verdict on one check, over its targets."""
    if not checks:
        return "not checked"
    outcomes = Counter(c["outcome"] for c in checks)
    total = len(checks)
    for outcome, label in (("fail", "**fail**"), ("known-divergence", "known divergence")):
        if outcomes[outcome]:
            first = next(c for c in checks if c["outcome"] == outcome)
            reason = first["reason"]
            if outcome == "known-divergence" and "known divergence [" in reason:
                reason = reason.split("]", 1)[1].split(" -- observed", 1)[0].lstrip(" :")
            return f"{label} ({outcomes[outcome]}/{total}): {_short(reason)}"
    if outcomes["pass"]:
        skipped = f", {outcomes['skip']} skipped" if outcomes["skip"] else ""
        return f"pass ({outcomes['pass']}/{total}{skipped})"
    first = checks[0]["reason"].replace("[setup] ", "")
    return f"skip: {_short(first, 80)}"


def render(results: dict[str, list[dict]], servers: list[Server], command: str, machine: str) -> str:
    by_check: dict[str, dict] = {}
    for server, reports in results.items():
        for report in reports:
            for check in report["checks"]:
                entry = by_check.setdefault(check["id"], {"level": check.get("level"), "clause": check.get("clause"),
                                                          "servers": {}})
                entry["servers"].setdefault(server, []).append(check)
    shown = [s for s in servers if s.name in results]
    lines = ["# Conformance matrix", "",
             f"Generated by `{command}` on {machine}; do not edit by hand. Each cell aggregates the check over "
             "the server's targets (task x mode): pass, known divergence (the profile names it, with the reason), "
             "fail (the first reason), or skip (why).", "",
             "| server | profile | what it is | passed | failed | known divergences | skipped |",
             "|---|---|---|---|---|---|---|"]
    for server in shown:
        totals = Counter()
        for report in results[server.name]:
            totals.update(report["summary"])
        lines.append(f"| {server.name} | {server.profile} | {server.description} | {totals['passed']} | "
                     f"{totals['failed']} | {totals['known_divergences']} | {totals['skipped']} |")
    for level in LEVELS:
        ids = sorted(i for i, e in by_check.items() if e["level"] == level)
        if not ids:
            continue
        lines += ["", f"## Level `{level}`", "", "| check | " + " | ".join(s.name for s in shown) + " |",
                  "|---|" + "---|" * len(shown)]
        for check_id in ids:
            cells = [cell(by_check[check_id]["servers"].get(s.name, [])) for s in shown]
            lines.append(f"| `{check_id}` | " + " | ".join(cells) + " |")
    lines += ["", "## Known divergences (conformance/profiles.py)", "",
              "The `kserve` entries are also where our predictor differs from KServe's runtime on purpose; "
              "tests/kserve_runtime sends each probe to both.", "",
              "| key | profiles | reason | probe |", "|---|---|---|---|"]
    for divergence in DIVERGENCES:
        probe = f"`{divergence.probe.label}`" if divergence.probe else ""
        lines.append(f"| `{divergence.key}` | {', '.join(divergence.profiles)} | {_short(divergence.reason, 200)} "
                     f"| {probe} |")
    return "\n".join(lines) + "\n"


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {time.strftime('%Y-%m-%d')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default=",".join(s.name for s in SERVERS),
                        help="comma-separated servers to run (default: all)")
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "conformance-matrix.md"))
    parser.add_argument("--reports", default=None, help="keep the suite's JSON reports in this directory")
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = set(wanted) - {s.name for s in SERVERS}
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; known: {[s.name for s in SERVERS]}")
    servers = [s for s in SERVERS if s.name in wanted]
    with tempfile.TemporaryDirectory(prefix="conformance-matrix-") as tmp:
        reports = Path(args.reports) if args.reports else Path(tmp)
        reports.mkdir(parents=True, exist_ok=True)
        results = {server.name: run_server(server, reports) for server in servers}
    command = "python -m conformance.matrix" + (f" --servers {args.servers}" if argv and "--servers" in argv else "")
    Path(args.out).write_text(render(results, servers, command, machine_line()))
    print(f"[matrix] wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
