"""Mutation score of the conformance suite: how many deliberately wrong servers it catches.

    python -m tests.conformance_meta.mutation_score [--json PATH] [--workers 2] [--only NAME ...]

Serves each upstream the catalogue needs (tests/conformance_meta/mutants.py: a tiny model per task,
the built-in predictor in each mode, with --return_offsets_mapping where asked) once, puts mutant proxies
in front of it (one per worker), runs the whole suite (a subprocess, as a user runs it, with
--reference-model and a golden file) once transparently (the baseline must pass) and once per mutant,
and prints the score killed/total, the surviving mutants, which mutants each check kills, and the
checks that kill none with the reason. The gRPC mutants (GRPC_MUTANTS) come last: a gRPC proxy per mutant in
front of the built-in predictor's gRPC port, the suite's gRPC checks against it (`grpc_runs`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conformance_meta.mutants import (BY_NAME, CANNOT_KILL, GRPC_BY_NAME, GRPC_MUTANTS, GRPC_RECEIVE_LIMIT,
                                            GRPC_UPSTREAM, MUTANTS, Mutant, Upstream)
from tests.conformance_meta.suite_runner import ForkedSuite, preload_suite_modules, run_suite

PROXY = Path(__file__).with_name("mutant_proxy.py")
GRPC_PROXY = Path(__file__).with_name("grpc_mutant_proxy.py")
GRPC_CHECKS = "test_v2_grpc"
GOLDEN_TEXTS = 2


@dataclass
class Run:
    upstream: str
    mutation: str
    attempt: int
    failed: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    returncode: int = 0
    wall_s: float = 0.0
    error: str = ""
    strict: bool = True  # False: the upstream is KServe's runtime, checked under --profile kserve

    @property
    def killed(self) -> bool:
        return bool(self.failed)


def _golden_file(upstream: Upstream, model_dir: str, directory: Path) -> Path:
    from conformance.golden import golden_case_from_reference
    from conformance.reference import ReferenceModel
    from conformance.target import FILL_MASK_TEMPLATES, SAMPLE_TEXTS

    reference = ReferenceModel(model_dir, upstream.task)
    texts = ([t.format(mask=reference.mask_token) for t in FILL_MASK_TEMPLATES] if upstream.task == "fill_mask"
             else SAMPLE_TEXTS)[:GOLDEN_TEXTS]
    case = golden_case_from_reference(reference, f"tiny-{upstream.id}", f"tiny/{upstream.task}", upstream.mode, texts,
                                      model_names=["model"])
    path = directory / f"golden-{upstream.id}.json"
    path.write_text(json.dumps({"cases": [case]}))
    return path


def _record(run: Run, suite) -> Run:
    run.returncode, run.wall_s = suite.returncode, round(suite.wall_s, 1)
    for check in suite.report["checks"]:
        if check["outcome"] == "fail":
            run.failed.append(check["id"])
        elif check["outcome"] == "pass":
            run.passed.append(check["id"])
        elif check["outcome"] == "skip":
            run.skipped[check["id"]] = check["reason"][:200]
        elif run.strict:  # known divergences: never under strict; listed as a failure to look at
            run.failed.append(f"{check['id']} ({check['outcome']})")
    return run


def _in_child(fn, *args) -> None:
    """Run fn in a forked child (torch computations stay out of the process that forks the suite runs)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn(*args)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{fn.__name__}{args} failed in a child process")


def _servable(selected: list[Mutant], log) -> list[Mutant]:
    """The mutants whose upstreams can be served here: without KServe's runtime, those only it serves are left
    out (and said so)."""
    from workbench.testsupport.kserve_runtime import missing_reason

    reason = missing_reason()
    if reason is None:
        return selected
    if os.environ.get("WORKBENCH_REQUIRE_KSERVE_RUNTIME") == "1":
        raise RuntimeError(f"WORKBENCH_REQUIRE_KSERVE_RUNTIME=1 but {reason}")
    kept = [m for m in selected if any(u.server != "kserve-runtime" for u in m.targets)]
    if len(kept) < len(selected):
        log(f"{len(selected) - len(kept)} mutants left out (their upstream is KServe's runtime): {reason}")
    return [Mutant(m.name, m.breaks, tuple(u for u in m.targets if u.server != "kserve-runtime"), m.mutate,
                   m.rewrite_request, m.swap, m.repeat) for m in kept]


def score(names: list[str] | None = None, workers: int = 2, log=print, fork: bool = True) -> dict:
    """Serve, run the baseline and every selected mutant; return the result (see `summarize`).

    fork: start each suite run as a child forked from this process after the suite's imports (the same
    pytest command line, ~3 s less per run); otherwise a fresh `python -m pytest` subprocess per run."""
    from workbench.testsupport.servers import free_port, served, served_command
    from workbench.testsupport.tiny_models import build_tiny_model

    fork = fork and hasattr(os, "fork")
    selected: list[Mutant] = [BY_NAME[n] for n in names if n in BY_NAME] if names else list(MUTANTS)
    selected = _servable(selected, log)
    grpc_selected = [GRPC_BY_NAME[n] for n in names if n in GRPC_BY_NAME] if names else list(GRPC_MUTANTS)
    upstreams: list[Upstream] = list(dict.fromkeys(u for m in selected for u in m.targets))
    started = time.perf_counter()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="mutation-score-") as tmp, contextlib.ExitStack() as stack:
        tmp_path = Path(tmp)
        model_dirs = {task: str(tmp_path / task) for task in dict.fromkeys(u.task for u in upstreams)}
        goldens = {u: tmp_path / f"golden-{u.id}.json" for u in upstreams}
        def prepare() -> None:
            for task, directory in model_dirs.items():
                build_tiny_model(task, directory)
            for upstream in upstreams:
                _golden_file(upstream, model_dirs[upstream.task], tmp_path)

        if fork:
            _in_child(prepare)  # torch computes there, never in the process the suite runs are forked from
            preload_suite_modules()
        else:
            prepare()
        def serve(upstream: Upstream) -> list[str]:
            """Start the upstream and its proxies (in a thread: start-ups overlap); stopped with `stack`."""
            if upstream.server == "kserve-runtime":
                from workbench.testsupport.kserve_runtime import served_runtime

                managers = [served_runtime(model_dirs[upstream.task], *upstream.server_flags)]
            else:
                managers = [served(model_dirs[upstream.task], *upstream.server_flags)]
            url = managers[0].__enter__()
            urls = []
            for _ in range(workers):
                port = free_port()
                managers.append(served_command([sys.executable, str(PROXY), "--upstream", url, "--port", str(port)], port))
                urls.append(managers[-1].__enter__())
            for manager in reversed(managers):
                stack.callback(manager.__exit__, None, None, None)
            return urls

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=3) as pool:
            proxies: dict[Upstream, list[str]] = dict(zip(upstreams, pool.map(serve, upstreams)))
        log(f"{len(upstreams)} upstreams served in {time.perf_counter() - started:.0f} s")
        jobs: list[tuple[Upstream, str, int]] = [(u, "none", 1) for u in upstreams]
        jobs += [(u, m.name, attempt) for m in selected for u in m.targets for attempt in range(1, m.repeat + 1)]
        total_runs = len(jobs) + (len(grpc_selected) + 1 if grpc_selected else 0)

        def finished(run: Run) -> None:
            runs.append(run)
            verdict = "error" if run.error else ("killed" if run.killed else "SURVIVED")
            if run.mutation == "none":
                verdict = "baseline ok" if not run.failed and not run.error else "BASELINE FAILS"
            log(f"[{len(runs)}/{total_runs}] {run.upstream:40} {run.mutation:34} {verdict:14} {run.wall_s:5.1f} s "
                f"{len(run.failed)} failed")

        def start(job, slot: int):
            upstream, mutation, attempt = job
            proxy = proxies[upstream][slot]
            assert httpx.put(f"{proxy}/__mutation/{mutation}", timeout=10).status_code == 200
            args = ["--endpoint", proxy, *upstream.suite_args(), "--reference-model", model_dirs[upstream.task],
                    "--expect", str(goldens[upstream])]
            report = tmp_path / f"{upstream.id}-{mutation}-{attempt}.json"
            run = Run(upstream.id, mutation, attempt, strict=upstream.profile == "strict")
            if fork:
                return run, ForkedSuite(report, *args, timeout=600)
            try:
                return run, _record(run, run_suite(report, *args, timeout=600))
            except Exception as exc:  # noqa: BLE001 - a run that wrote no report is reported, not a kill
                run.error = f"{type(exc).__name__}: {str(exc)[:2000]}"
                return run, run

        # each slot owns one proxy per upstream, so runs at the same time never share a proxy's mutation
        pending = list(jobs)
        running: dict[int, tuple[Run, object]] = {}
        while pending or running:
            for slot in range(workers):
                if slot not in running and pending:
                    running[slot] = start(pending.pop(0), slot)
            for slot, (run, handle) in list(running.items()):
                if handle is run:  # finished synchronously (no fork)
                    del running[slot]
                    finished(run)
                    continue
                try:
                    suite = handle.poll()
                except Exception as exc:  # noqa: BLE001
                    run.error = f"{type(exc).__name__}: {str(exc)[:2000]}"
                    suite = run
                if suite is not None:
                    del running[slot]
                    finished(run if suite is run else _record(run, suite))
            if running:
                time.sleep(0.2)
        if grpc_selected:
            for run in grpc_runs([m.name for m in grpc_selected], model_dirs.get(GRPC_UPSTREAM.task), tmp_path, log):
                finished(run)
    return summarize([*selected, *grpc_selected], runs, time.perf_counter() - started)


@contextlib.contextmanager
def _grpc_proxy(upstream: str, mutation: str):
    """The gRPC mutant proxy as a subprocess (this process forks suite runs: it never imports grpc)."""
    import socket
    import subprocess

    from workbench.testsupport.servers import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, str(GRPC_PROXY), "--upstream", upstream, "--port", str(port),
                                "--mutation", mutation], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gRPC proxy {mutation} exited: {process.stderr.read().decode()[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gRPC proxy {mutation} did not listen on {port} within 60 s")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def grpc_runs(names: list[str], model_dir: str | None, tmp_path: Path, log) -> list[Run]:
    """The gRPC mutants, one after another: the built-in predictor on the tiny model of GRPC_UPSTREAM with its gRPC
    port, a proxy per mutant in front of it, the suite's gRPC checks (`-k test_v2_grpc`) with `--grpc-endpoint`
    at the proxy and `--endpoint` at the real REST port. The baseline is the transparent proxy ("none")."""
    from workbench.testsupport.servers import free_port, served
    from workbench.testsupport.tiny_models import build_tiny_model

    if model_dir is None:
        model_dir = str(tmp_path / GRPC_UPSTREAM.task)
        build_tiny_model(GRPC_UPSTREAM.task, model_dir)
    upstream_id = f"{GRPC_UPSTREAM.id}@grpc"
    grpc_port = free_port()
    runs = []
    with served(model_dir, *GRPC_UPSTREAM.server_flags, "--grpc_port", str(grpc_port),
                "--grpc_max_receive_message_length", str(GRPC_RECEIVE_LIMIT)) as url:
        for mutation in ["none", *names]:
            run = Run(upstream_id, mutation, 1)
            try:
                with _grpc_proxy(f"127.0.0.1:{grpc_port}", mutation) as address:
                    suite = run_suite(tmp_path / f"{upstream_id}-{mutation}.json", "--endpoint", url,
                                      "--grpc-endpoint", address, *GRPC_UPSTREAM.suite_args(), "-k", GRPC_CHECKS,
                                      timeout=600)
                _record(run, suite)
            except Exception as exc:  # noqa: BLE001 - a run that wrote no report is reported, not a kill
                run.error = f"{type(exc).__name__}: {str(exc)[:2000]}"
            runs.append(run)
    return runs


def summarize(selected: list, runs: list[Run], wall_s: float) -> dict:
    baselines = {r.upstream: r for r in runs if r.mutation == "none"}
    broken_baselines = {u: (r.error or r.failed) for u, r in baselines.items() if r.error or r.failed}
    by_mutant: dict[str, list[Run]] = {}
    for run in runs:
        if run.mutation != "none":
            by_mutant.setdefault(run.mutation, []).append(run)
    # a mutant is killed when every run of it (each target, each repeat) fails at least one check
    killed = sorted(n for n, rs in by_mutant.items() if all(r.killed and not r.error for r in rs))
    survivors = sorted(m.name for m in selected if m.name not in killed)
    kills: dict[str, set[str]] = {}
    for name, rs in by_mutant.items():
        for run in rs:
            for check in run.failed:
                kills.setdefault(check, set()).add(name)
    checks_run = {c for r in baselines.values() for c in r.passed}
    skipped_everywhere: dict[str, str] = {}
    for run in baselines.values():
        for check, reason in run.skipped.items():
            if check not in checks_run:
                skipped_everywhere.setdefault(check, reason)
    kill_none = {c: CANNOT_KILL.get(c, "no mutant in the catalogue breaks what it checks")
                 for c in sorted(checks_run) if c not in kills}
    return {
        "score": {"killed": len(killed), "total": len(selected)},
        "wall_s": round(wall_s, 1),
        "survivors": {n: {"breaks": _breaks(n),
                          "runs": [{"upstream": r.upstream, "attempt": r.attempt, "error": r.error,
                                    "failed": r.failed} for r in by_mutant.get(n, [])]} for n in survivors},
        "broken_baselines": broken_baselines,
        "mutants": {n: {"breaks": _breaks(n), "killed": n in killed,
                        "killed_by": sorted({c for r in by_mutant.get(n, []) for c in r.failed})} for n in by_mutant},
        "kills_per_check": {c: sorted(ms) for c, ms in sorted(kills.items())},
        "checks_that_kill_none": kill_none,
        "checks_never_run": skipped_everywhere,
    }


def _breaks(name: str) -> str:
    return (BY_NAME.get(name) or GRPC_BY_NAME[name]).breaks


def report_text(result: dict) -> str:
    lines = [f"mutation score: {result['score']['killed']}/{result['score']['total']} mutants killed "
             f"({result['wall_s']:.0f} s)"]
    if result["broken_baselines"]:
        lines.append(f"BASELINE FAILS (the transparent proxy must pass): {result['broken_baselines']}")
    lines.append(f"surviving mutants: {', '.join(result['survivors']) or 'none'}")
    for name, info in result["survivors"].items():
        lines.append(f"  {name}: {info['breaks']}; runs: {info['runs']}")
    lines.append("checks and the mutants they kill:")
    for check, mutants in result["kills_per_check"].items():
        lines.append(f"  {check}: {len(mutants)}: {', '.join(mutants)}")
    lines.append("checks that kill no mutant:")
    for check, reason in result["checks_that_kill_none"].items():
        lines.append(f"  {check}: {reason}")
    if result["checks_never_run"]:
        lines.append("checks skipped on every upstream:")
        for check, reason in result["checks_never_run"].items():
            lines.append(f"  {check}: {reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    parser.add_argument("--workers", type=int, default=2, help="suite runs at a time (default 2)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted({*BY_NAME, *GRPC_BY_NAME}),
                        help="just these mutants (HTTP or gRPC)")
    parser.add_argument("--no-fork", action="store_true",
                        help="a fresh `python -m pytest` subprocess per run instead of a forked child")
    args = parser.parse_args(argv)
    result = score(args.only, args.workers, log=lambda line: print(line, flush=True), fork=not args.no_fork)
    print(report_text(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["score"]["killed"] == result["score"]["total"] and not result["broken_baselines"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
